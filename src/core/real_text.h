/* A double as printf's "%.17g" writes it, without printf, for the common values (the journal
 * writes a few per record: durations, timings). */
#ifndef CBX_CORE_REAL_TEXT_H
#define CBX_CORE_REAL_TEXT_H

#include <stddef.h>

/* Write v as "%.17g" would in the C locale into out (NUL-terminated) and return its length, for
 * finite v with 1e-4 <= |v| < 1e15; return 0 for any other v (the caller uses snprintf). The
 * text is the same, byte for byte: 17 significant digits rounded to nearest, ties to even, then
 * %g's removal of trailing zeros. */
size_t cbx__real17(double v, char out[32]);

#endif
