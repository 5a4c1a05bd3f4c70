/* cbx/units.h - the text forms of durations and ratios used in policy blocks.
 *
 * Durations: a non-negative decimal number followed by a unit: "250ms", "5s", "1.5m", "2h",
 * "1d", "100us", "10ns" (units ns, us, ms, s/sec, m/min, h, d); compound forms with each unit
 * smaller than the one before, "1h30m", "2m15.5s"; ISO-8601 without years and months, "PT5S",
 * "PT1H30M", "P1DT12H". A bare number is milliseconds. Ratios: "50%" or a plain number 0..1
 * ("0.5"). Rates: "50/s", "600/min", "3/m", "10/h" or a bare number (per second).
 */
#ifndef CBX_UNITS_H
#define CBX_UNITS_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Parse a duration into nanoseconds. Returns 0, or CBX_EPARSE (bad syntax, unknown unit,
 * negative, overflow). */
int cbx_duration_parse_ns(const char *text, uint64_t *out_ns);

/* Parse a ratio into 0..1. Returns 0, or CBX_EPARSE (bad syntax or outside 0..1 / 0..100%). */
int cbx_ratio_parse(const char *text, double *out);

/* Parse a rate into events per second. Returns 0, or CBX_EPARSE. */
int cbx_rate_parse(const char *text, double *per_second);

/* Write a duration in the shortest exact unit ("250ms", "5s", "1m30s" is written "90s").
 * Returns buf. */
const char *cbx_duration_format(uint64_t ns, char *buf, unsigned len);

/* Write a duration rounded for people: "850us", "260ms", "2.5s", "4m10s". Returns buf. */
const char *cbx_duration_human(uint64_t ns, char *buf, unsigned len);

#ifdef __cplusplus
}
#endif
#endif
