/* SplitMix64: the generator behind jitter and sampling. */
#include "resilience/rng.h"

#include <stdatomic.h>
#include <time.h>

#define GOLDEN_GAMMA 0x9e3779b97f4a7c15ULL

static uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void cbx__rng_seed(uint64_t *state, uint64_t seed)
{
    /* Scramble once so that nearby seeds (1, 2, 3...) start far apart in the sequence. */
    *state = mix64(seed ^ GOLDEN_GAMMA);
}

uint64_t cbx__rng_entropy(const void *salt)
{
    static _Atomic uint64_t counter;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t n = atomic_fetch_add_explicit(&counter, 1, memory_order_relaxed);
    uint64_t t = (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
    return mix64(t ^ mix64((uint64_t)(uintptr_t)salt ^ mix64(n * GOLDEN_GAMMA)));
}

uint64_t cbx__rng_next(uint64_t *state)
{
    *state += GOLDEN_GAMMA;
    return mix64(*state);
}

uint64_t cbx__rng_below(uint64_t *state, uint64_t bound)
{
    if (bound == 0)
        return 0;
    /* Reject the low values that would make some residues more likely than others:
     * 2^64 mod bound of them, which is (-bound) % bound in unsigned arithmetic. */
    uint64_t threshold = (0 - bound) % bound;
    for (;;) {
        uint64_t r = cbx__rng_next(state);
        if (r >= threshold)
            return r % bound;
    }
}

uint64_t cbx__rng_between(uint64_t *state, uint64_t lo, uint64_t hi)
{
    if (hi <= lo)
        return lo;
    uint64_t span = hi - lo;
    if (span == UINT64_MAX)
        return cbx__rng_next(state);
    return lo + cbx__rng_below(state, span + 1);
}

double cbx__rng_unit(uint64_t *state)
{
    return (double)(cbx__rng_next(state) >> 11) * (1.0 / 9007199254740992.0);
}
