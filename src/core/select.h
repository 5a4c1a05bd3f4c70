/* The k-th smallest of an array, in place: percentiles of a long run without sorting it. */
#ifndef CBX_CORE_SELECT_H
#define CBX_CORE_SELECT_H

#include <stddef.h>
#include <stdint.h>

/* Reorder v[0, n) so that v[k] is the value a sort would put there, every value before it is
 * <= it and every value after it >= it; return v[k]. k < n. Expected time linear in n, no memory
 * of its own (a sort of the copy qsort makes took as much again as the array). */
uint64_t cbx__select_u64(uint64_t *v, size_t n, size_t k);

#endif
