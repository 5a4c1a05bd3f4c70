/* cbx__real17 writes what printf's "%.17g" writes, byte for byte, or declines;
 * cbx__real_shortest the fewest digits that read back; cbx__real_json a JSON number. */
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

/* n doubles from a fixed xorshift stream over the covered range's every decade, each checked
 * with either sign, plus durations in ms as the runtime makes them (ns / 1e6), and with
 * neighbours the double below each */
static void random_stream(int n, void (*check)(double), int neighbours)
{
    uint64_t x = 88172645463325252ull;
    for (int i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        double mant = (double)(x >> 11) / 9007199254740992.0; /* [0, 1) */
        int dec = (int)(x % 20) - 4;                          /* 10^-4 .. 10^15 */
        double v = (1.0 + 9.0 * mant) * pow(10.0, dec);
        check(i & 1 ? -v : v);
        check((double)(x % 100000000000ull) / 1e6);
        if (neighbours)
            check(nextafter(v, 0));
    }
}

Test(real_text, random_values)
{
    random_stream(1000000, same_as_printf, 0);
}

/* The fewest significant digits of any text that reads back as v: printf's at each precision in
 * turn (a reference as slow as it is plain). */
static int fewest_digits(double v)
{
    char buf[64];
    for (int n = 1; n < 17; n++) {
        snprintf(buf, sizeof buf, "%.*e", n - 1, v);
        if (strtod(buf, NULL) == v)
            return n;
    }
    return 17;
}

/* The significant digits of a fixed-notation text. */
static int digits_in(const char *s)
{
    int n = 0, leading = 1;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            continue;
        if (*s == '0' && leading)
            continue;
        leading = 0;
        n++;
    }
    return n;
}

static void shortest_reads_back(double v)
{
    char got[32];
    size_t n = cbx__real_shortest(v, got);
    double a = fabs(v);
    if (!(a >= 1e-4 && a < 1e15)) {
        cr_assert_eq(n, 0);
        return;
    }
    cr_assert_gt(n, 0, "%a declined", v);
    cr_assert_eq(strlen(got), n);
    cr_assert_eq(strtod(got, NULL), v, "%s does not read back as %a", got, v);
    char p17[64];
    snprintf(p17, sizeof p17, "%.17g", v);
    cr_assert_leq(n, strlen(p17), "%s longer than %s", got, p17);
    int want = fewest_digits(v), have = digits_in(got);
    /* an integer written whole may show zeros the fewest digits do not need (1e14) */
    if (!strchr(got, '.'))
        cr_assert_geq(have, want, "%s: %d digits, %d needed", got, have, want);
    else
        cr_assert_eq(have, want, "%s: %d digits, %d needed (%.17g)", got, have, want, v);
}

typedef struct want_text {
    double v;
    const char *want;
} want_text;

/* fn writes each value as wanted, and declines NaN */
static void writes_as_wanted(size_t (*fn)(double, char *), const want_text *w, size_t n)
{
    char out[40];
    for (size_t i = 0; i < n; i++) {
        cr_assert_eq(fn(w[i].v, out), strlen(w[i].want), "%s: %s", w[i].want, out);
        cr_assert_str_eq(out, w[i].want);
    }
    cr_assert_eq(fn(NAN, out), 0);
}

Test(real_text, shortest_usual_values)
{
    const want_text w[] = {{2.5710000000000002, "2.571"},
                           {4.9109999999999996, "4.911"},
                           {0.1, "0.1"},
                           {0.1 + 0.2, "0.30000000000000004"},
                           {1.0 / 3, "0.3333333333333333"},
                           {2.0 / 3, "0.6666666666666666"},
                           {1e14, "100000000000000"},
                           {-0.001, "-0.001"},
                           {1e-4, "0.0001"},
                           {123.456, "123.456"},
                           {999999999999999.9, "999999999999999.9"},
                           {6.964, "6.964"}};
    writes_as_wanted(cbx__real_shortest, w, sizeof w / sizeof *w);
}

/* the same stream as random_values with neighbours, and powers of two (where the double below
 * is nearer) */
Test(real_text, shortest_random_values)
{
    random_stream(300000, shortest_reads_back, 1);
    for (int e = -13; e < 50; e++) {
        shortest_reads_back(ldexp(1.0, e));
        shortest_reads_back(nextafter(ldexp(1.0, e), 0));
        shortest_reads_back(nextafter(ldexp(1.0, e), INFINITY));
    }
}

Test(real_text, json_numbers)
{
    const want_text w[] = {{3.0, "3.0"},         {-0.0, "-0.0"},
                           {0.0, "0.0"},         {2.5710000000000002, "2.571"},
                           {1e-5, "1e-5"},       {1e20, "1e20"},
                           {1.5e300, "1.5e300"}, {-2.5e-7, "-2.5e-7"},
                           {1e15, "1e15"},       {0.1 + 0.2, "0.30000000000000004"}};
    writes_as_wanted(cbx__real_json, w, sizeof w / sizeof *w);
    char out[40];
    cr_assert_eq(cbx__real_json(INFINITY, out), 0);
}

Test(real_text, plain_numbers)
{
    const want_text w[] = {{3.0, "3"},
                           {0.1, "0.1"},
                           {-0.0, "-0"},
                           {1e-5, "1e-5"},
                           {1e20, "1e20"},
                           {2.571, "2.571"},
                           {1e14, "100000000000000"}};
    writes_as_wanted(cbx__real_plain, w, sizeof w / sizeof *w);
}
