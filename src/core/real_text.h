/* A double as decimal text without printf, for the common values (the journal and the server
 * write a few per record: durations, timings). */
#ifndef CBX_CORE_REAL_TEXT_H
#define CBX_CORE_REAL_TEXT_H

#include <stddef.h>

/* Write v as "%.17g" would in the C locale into out (NUL-terminated) and return its length, for
 * finite v with 1e-4 <= |v| < 1e15; return 0 for any other v (the caller uses snprintf). The
 * text is the same, byte for byte: 17 significant digits rounded to nearest, ties to even, then
 * %g's removal of trailing zeros. */
size_t cbx__real17(double v, char out[32]);

/* The same range, the same notation (fixed, trailing zeros of the fraction dropped), but the
 * fewest significant digits that read back as v (strtod gives v again): 2.571 where "%.17g"
 * writes 2.5710000000000002, 0.1 for 0.1. Returns the length, or 0 for any other v. */
size_t cbx__real_shortest(double v, char out[32]);

/* v as a JSON number, as jansson writes a real but with the fewest digits that read back: always
 * a '.' or an exponent ("3.0", "1e-05"), '.' whatever the locale, no '+' nor leading zeros in
 * the exponent, "-0.0" for minus zero. Returns the length (NUL-terminated), or 0 for a value
 * JSON cannot hold (NaN, an infinity). */
size_t cbx__real_json(double v, char out[40]);

/* v as a number in text that others read back (an SQL parameter, a DynamoDB number, a query
 * string, a label): as cbx__real_json but without the ".0" ("3", "0.1", "1e-5", "-0"). Returns
 * the length, or 0 for NaN and the infinities. */
size_t cbx__real_plain(double v, char out[40]);

#endif
