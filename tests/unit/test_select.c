/* cbx__select_u64 puts the k-th smallest where a sort would, the smaller before it and the
 * larger after it: against qsort, for random, sorted, reversed, repeated and tiny arrays. */
#include <criterion/criterion.h>

#include "core/select.h"

#include <stdlib.h>
#include <string.h>

static int cmp(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void check(const uint64_t *v, size_t n, size_t k)
{
    uint64_t *a = malloc(n * sizeof *a), *sorted = malloc(n * sizeof *a);
    memcpy(a, v, n * sizeof *a);
    memcpy(sorted, v, n * sizeof *a);
    qsort(sorted, n, sizeof *sorted, cmp);
    uint64_t got = cbx__select_u64(a, n, k);
    cr_assert_eq(got, sorted[k], "n %zu k %zu: %llu, not %llu", n, k, (unsigned long long)got,
                 (unsigned long long)sorted[k]);
    cr_assert_eq(a[k], got);
    for (size_t i = 0; i < n; i++)
        cr_assert(i < k ? a[i] <= got : i > k ? a[i] >= got : 1, "n %zu k %zu at %zu", n, k, i);
    qsort(a, n, sizeof *a, cmp); /* a permutation of v */
    cr_assert_eq(memcmp(a, sorted, n * sizeof *a), 0);
    free(a);
    free(sorted);
}

Test(select, against_a_sort)
{
    enum { N = 2000 };
    static uint64_t v[N];
    uint64_t x = 88172645463325252ull;
    for (size_t shape = 0; shape < 5; shape++) {
        for (size_t i = 0; i < N; i++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            v[i] = shape == 0   ? x % 1000000
                   : shape == 1 ? i
                   : shape == 2 ? N - i
                   : shape == 3 ? 7
                                : x % 3; /* few distinct values */
        }
        for (size_t n = 1; n <= N; n = n * 3 + 1)
            for (size_t k = 0; k < n; k += n / 7 + 1) {
                check(v, n, k);
                check(v, n, n - 1);
            }
    }
}
