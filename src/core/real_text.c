/* Decimal text of a double by exact integer arithmetic: v = m * 2^-s exactly (m < 2^54), so
 * v * 10^k = m * 10^k / 2^s, computed in 128 bits and rounded once; k is chosen so that the
 * result has the digits wanted. Whether a shorter text reads back as v is decided the same way:
 * it does when it lies inside the interval of reals that round to v. */
#include "core/real_text.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* GCC and Clang on 64-bit targets (the ones cbx builds for) */
__extension__ typedef unsigned __int128 u128;

static const uint64_t pow10_u64[] = {1ull,
                                     10ull,
                                     100ull,
                                     1000ull,
                                     10000ull,
                                     100000ull,
                                     1000000ull,
                                     10000000ull,
                                     100000000ull,
                                     1000000000ull,
                                     10000000000ull,
                                     100000000000ull,
                                     1000000000000ull,
                                     10000000000000ull,
                                     100000000000000ull,
                                     1000000000000000ull,
                                     10000000000000000ull,
                                     100000000000000000ull,
                                     1000000000000000000ull,
                                     10000000000000000000ull};

/* m * 10^k, k <= 38 (fits: m < 2^54) */
static u128 times_pow10(uint64_t m, int k)
{
    u128 n = (u128)m;
    while (k > 19) {
        n *= pow10_u64[19];
        k -= 19;
    }
    return n * pow10_u64[k];
}

/* round(m * 10^k / 2^s), ties to even; k <= 20, s in 1..120. */
static u128 scaled(uint64_t m, int k, int s)
{
    u128 n = times_pow10(m, k);
    u128 q = n >> s;
    u128 r = n - (q << s);
    u128 half = (u128)1 << (s - 1);
    if (r > half || (r == half && (q & 1)))
        q++;
    return q;
}

typedef struct parts {
    uint64_t m; /* |v| = m * 2^-s */
    int s;
    int x; /* floor(log10 |v|), maybe off by one */
} parts;

static int split(double v, parts *p)
{
    if (!isfinite(v))
        return -1;
    double a = fabs(v);
    if (!(a >= 1e-4 && a < 1e15))
        return -1;
    int e2;
    double f = frexp(a, &e2);      /* a = f * 2^e2, f in [0.5, 1) */
    p->m = (uint64_t)ldexp(f, 53); /* exact: a = m * 2^(e2 - 53) */
    p->s = 53 - e2;                /* a < 2^50: s > 0 */
    p->x = (int)floor(log10(a));
    return 0;
}

/* |v| rounded to n significant digits (1 <= n <= 17): *q in [10^(n-1), 10^n) and the decimal
 * exponent of its first digit in *x; -1 when out of reach. */
static int digits(const parts *p, int n, uint64_t *q, int *x)
{
    const u128 lo = pow10_u64[n - 1], hi = (u128)pow10_u64[n];
    int k = (n - 1) - p->x;
    u128 d = 0;
    for (int tries = 0; tries < 4; tries++) {
        if (k < 0 || k > 20)
            return -1;
        d = scaled(p->m, k, p->s);
        if (d < lo)
            k++;
        else if (d >= hi)
            k--;
        else
            break;
    }
    if (d < lo || d >= hi)
        return -1;
    /* 10^(n-1) may be a rounding up, from just below it: then the next finer step has n digits
     * too, and it is the rounding at v's own exponent (as printf's %e finds it) */
    if (d == lo && k < 20) {
        u128 finer = scaled(p->m, k + 1, p->s);
        if (finer < hi) {
            d = finer;
            k++;
        }
    }
    *q = (uint64_t)d;
    *x = (n - 1) - k;
    return 0;
}

/* Whether q * 10^-(n-1-x) reads back as m * 2^-s: it lies within half a unit in the last place
 * of it (a quarter below a power of two, where the double below is nearer), ends included when
 * m is even (reading rounds ties to even). In units of 2^-s / 4, times 10^k: 4 q 2^s against
 * (4m - 2 or 1) 10^k and (4m + 2) 10^k, all under 2^123. */
static int reads_back(const parts *p, uint64_t q, int n, int x)
{
    int k = (n - 1) - x;
    if (k < 0 || k > 20 || p->s > 66)
        return 0;
    u128 d = ((u128)q << 2) << p->s;
    uint64_t below = p->m == (1ull << 52) ? 1 : 2;
    u128 lo = times_pow10(4 * p->m - below, k), hi = times_pow10(4 * p->m + 2, k);
    if (p->m & 1)
        return d > lo && d < hi;
    return d >= lo && d <= hi;
}

/* q's n digits with the trailing zeros of the fraction dropped, in fixed notation (x is the
 * decimal exponent of the first digit, -4 <= x < n); returns the length. */
static size_t fixed(int neg, uint64_t q, int n, int x, char out[32])
{
    char dg[17] = {0}; /* n >= 1 fills it; zeroed for the analyzers */
    for (int i = n - 1; i >= 0; i--) {
        dg[i] = (char)('0' + q % 10);
        q /= 10;
    }
    int nd = n;
    while (nd > (x >= 0 ? x + 1 : 1) && dg[nd - 1] == '0')
        nd--;
    size_t o = 0;
    if (neg)
        out[o++] = '-';
    if (x >= 0) { /* n > x: the digits cover the integer part */
        memcpy(out + o, dg, (size_t)x + 1);
        o += (size_t)x + 1;
        if (nd > x + 1) {
            out[o++] = '.';
            memcpy(out + o, dg + x + 1, (size_t)(nd - x - 1));
            o += (size_t)(nd - x - 1);
        }
    } else {
        out[o++] = '0';
        out[o++] = '.';
        for (int i = 0; i < -x - 1; i++)
            out[o++] = '0';
        memcpy(out + o, dg, (size_t)nd);
        o += (size_t)nd;
    }
    out[o] = '\0';
    return o;
}

/* v (split into p) with 17 digits, as "%.17g"; 0 out of fixed notation's reach. */
static size_t with17(const parts *p, int neg, char out[32])
{
    uint64_t q;
    int x;
    if (digits(p, 17, &q, &x) != 0 || x < -4 || x >= 17)
        return 0;
    return fixed(neg, q, 17, x, out);
}

size_t cbx__real17(double v, char out[32])
{
    parts p;
    return split(v, &p) == 0 ? with17(&p, v < 0, out) : 0;
}

size_t cbx__real_shortest(double v, char out[32])
{
    parts p;
    uint64_t q;
    int x;
    if (split(v, &p) != 0)
        return 0;
    /* A text of at most 15 digits that reads back as v is the 15-digit rounding of v with its
     * trailing zeros dropped: v is within 2^-53 of it, relatively, and the 15-digit steps are
     * wider than twice that. So 15 digits, then 16, then 17, which always read back. */
    for (int n = 15; n <= 16; n++)
        if (digits(&p, n, &q, &x) == 0 && x >= -4 && x < 17 && reads_back(&p, q, n, x))
            return fixed(v < 0, q, n, x, out);
    return with17(&p, v < 0, out);
}

/* v with the fewest digits that read back, in %g's notation with '.' whatever the locale and
 * no '+' nor leading zeros in the exponent; with json, a ".0" when that has neither '.' nor
 * 'e', and "-0.0" or "0.0" for a zero. */
static size_t real_text(double v, char out[40], int json)
{
    if (!isfinite(v))
        return 0;
    if (v == 0) {
        const char *z = signbit(v) ? (json ? "-0.0" : "-0") : (json ? "0.0" : "0");
        size_t n = strlen(z);
        memcpy(out, z, n + 1);
        return n;
    }
    size_t n = cbx__real_shortest(v, out);
    if (!n) { /* outside the fast range: printf's shortest text that reads back (fewer digits
               * may take more bytes: 3.336026444256318e+16 against 33360264442563180) */
        char buf[40], cand[40];
        int k = 0;
        for (int digits = 15; digits <= 17; digits++) {
            int c = snprintf(cand, sizeof cand, "%.*g", digits, v);
            if (c <= 0 || (size_t)c >= sizeof cand)
                return 0;
            if ((!k || c < k) && (digits == 17 || strtod(cand, NULL) == v)) { /* same locale */
                memcpy(buf, cand, (size_t)c + 1);
                k = c;
            }
        }
        for (int i = 0; i < k; i++) {
            char c = buf[i] == ',' ? '.' : buf[i];
            out[n++] = c;
            if (c != 'e')
                continue;
            if (buf[i + 1] == '-')
                out[n++] = buf[++i];
            else if (buf[i + 1] == '+')
                i++;
            while (buf[i + 1] == '0' && i + 2 < k)
                i++;
        }
    }
    if (json && !memchr(out, '.', n) && !memchr(out, 'e', n)) {
        memcpy(out + n, ".0", 2);
        n += 2;
    }
    out[n] = '\0';
    return n;
}

size_t cbx__real_json(double v, char out[40])
{
    return real_text(v, out, 1);
}

size_t cbx__real_plain(double v, char out[40])
{
    return real_text(v, out, 0);
}
