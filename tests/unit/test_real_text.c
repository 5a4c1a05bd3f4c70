/* cbx__real17 writes what printf's "%.17g" writes, byte for byte, or declines. */
#include <criterion/criterion.h>

#include "core/real_text.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

static void same_as_printf(double v)
{
    char want[64], got[32];
    snprintf(want, sizeof want, "%.17g", v);
    size_t n = cbx__real17(v, got);
    double a = fabs(v);
    if (a >= 1e-4 && a < 1e15)
        cr_assert_gt(n, 0, "%s declined", want);
    if (n)
        cr_assert_str_eq(got, want, "%a", v);
}

Test(real_text, usual_values)
{
    const double v[] = {1.0,    -1.0,   6.964,  8.871,      0.5,     1.5,       2.5,
                        0.1,    0.3,    1e-4,   0.00012345, 123.456, 1e14,      999999999999999.9,
                        3.0,    10.0,   100.25, 1.0 / 3,    2.0 / 3, 0.1 + 0.2, 1234567.0,
                        -0.001, 99.999, 1e-3,   5e-4};
    for (size_t i = 0; i < sizeof v / sizeof *v; i++)
        same_as_printf(v[i]);
}

Test(real_text, declines_what_it_does_not_cover)
{
    char out[32];
    cr_assert_eq(cbx__real17(0.0, out), 0);
    cr_assert_eq(cbx__real17(1e15, out), 0);
    cr_assert_eq(cbx__real17(1e-5, out), 0);
    cr_assert_eq(cbx__real17(NAN, out), 0);
    cr_assert_eq(cbx__real17(INFINITY, out), 0);
}

/* a million doubles from a fixed xorshift stream, over the covered range's every decade, plus
 * durations in ms as the runtime makes them (ns / 1e6) */
Test(real_text, random_values)
{
    uint64_t x = 88172645463325252ull;
    for (int i = 0; i < 1000000; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        double mant = (double)(x >> 11) / 9007199254740992.0; /* [0, 1) */
        int dec = (int)(x % 20) - 4;                          /* 10^-4 .. 10^15 */
        double v = (1.0 + 9.0 * mant) * pow(10.0, dec);
        same_as_printf(i & 1 ? -v : v);
        same_as_printf((double)(x % 100000000000ull) / 1e6);
    }
}
