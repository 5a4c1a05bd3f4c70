/* "%.17g" by exact integer arithmetic: v = m * 2^-s exactly (m < 2^53), so v * 10^k = m * 10^k /
 * 2^s, computed in 128 bits and rounded once; k is chosen so that the result has 17 digits. */
#include "core/real_text.h"

#include <math.h>
#include <stdint.h>
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

/* round(m * 10^k / 2^s), ties to even; k <= 20, s in 1..120. */
static u128 scaled(uint64_t m, int k, int s)
{
    u128 n = (u128)m;
    if (k > 19) {
        n *= pow10_u64[19];
        k -= 19;
    }
    n *= pow10_u64[k];
    u128 q = n >> s;
    u128 r = n - (q << s);
    u128 half = (u128)1 << (s - 1);
    if (r > half || (r == half && (q & 1)))
        q++;
    return q;
}

size_t cbx__real17(double v, char out[32])
{
    if (!isfinite(v))
        return 0;
    double a = fabs(v);
    if (!(a >= 1e-4 && a < 1e15))
        return 0;
    int e2;
    double f = frexp(a, &e2);            /* a = f * 2^e2, f in [0.5, 1) */
    uint64_t m = (uint64_t)ldexp(f, 53); /* exact: a = m * 2^(e2 - 53) */
    int s = 53 - e2;                     /* a < 2^50: s > 0 */
    int x = (int)floor(log10(a));        /* the decimal exponent, maybe off by one */
    const u128 lo = pow10_u64[16], hi = (u128)pow10_u64[17];
    int k = 16 - x;
    u128 q = 0;
    for (int tries = 0; tries < 4; tries++) {
        if (k < 0 || k > 20)
            return 0;
        q = scaled(m, k, s);
        if (q < lo)
            k++;
        else if (q >= hi)
            k--;
        else
            break;
    }
    if (q < lo || q >= hi)
        return 0;
    x = 16 - k; /* the exponent %g decides by: -4 <= x < 17 here, so fixed notation */
    if (x < -4 || x >= 17)
        return 0;
    char digits[17];
    uint64_t d = (uint64_t)q;
    for (int i = 16; i >= 0; i--) {
        digits[i] = (char)('0' + d % 10);
        d /= 10;
    }
    int nd = 17; /* %g drops trailing zeros (of the fraction; the integer part has x + 1 digits) */
    while (nd > (x >= 0 ? x + 1 : 1) && digits[nd - 1] == '0')
        nd--;
    size_t o = 0;
    if (v < 0)
        out[o++] = '-';
    if (x >= 0) {
        memcpy(out + o, digits, (size_t)x + 1);
        o += (size_t)x + 1;
        if (nd > x + 1) {
            out[o++] = '.';
            memcpy(out + o, digits + x + 1, (size_t)(nd - x - 1));
            o += (size_t)(nd - x - 1);
        }
    } else {
        out[o++] = '0';
        out[o++] = '.';
        for (int i = 0; i < -x - 1; i++)
            out[o++] = '0';
        memcpy(out + o, digits, (size_t)nd);
        o += (size_t)nd;
    }
    out[o] = '\0';
    return o;
}
