/* bench/alloc_count.h - a counting allocator for the benchmarks.
 *
 * Linking alloc_count.c into an executable replaces malloc, calloc, realloc, reallocarray,
 * free, posix_memalign, aligned_alloc, memalign, valloc and pvalloc for the whole process
 * (libcbx included, since the executable's definitions win symbol resolution). Each forwards
 * to glibc's own allocator (__libc_malloc and friends) after counting the call. Only
 * allocations are counted (free is not): a benchmark reads a counter before and after N
 * calls and asserts the difference is zero.
 *
 * glibc only; not for use with sanitizers, which install an allocator of their own.
 */
#ifndef CBX_BENCH_ALLOC_COUNT_H
#define CBX_BENCH_ALLOC_COUNT_H

#include <stdint.h>

/* Allocations made by every thread since the process started. Thread-safe. */
uint64_t alloc_count_total(void);

/* Allocations made by the calling thread since it started. */
uint64_t alloc_count_thread(void);

/* 0 when the counter sees an allocation made inside libc (by fopen), -1 when it does not (the
 * interposition is not in effect and the counts would prove nothing). */
int alloc_count_selftest(void);

#endif
