/* A small, fast pseudo-random generator for jitter and sampling inside libcbx.
 *
 * SplitMix64 (Steele, Lea and Flood, "Fast splittable pseudorandom number generators",
 * OOPSLA 2014): one 64-bit word of state, period 2^64, good statistical quality, and every
 * seed (0 included) gives a usable stream. The state is a plain uint64_t so that it fits in
 * caller-owned structs such as cbx_retry_state. Not for cryptography.
 *
 * A state is owned by one thread at a time; the functions are not synchronised.
 */
#ifndef CBX_RESILIENCE_RNG_H
#define CBX_RESILIENCE_RNG_H

#include <stdint.h>

/* Set *state from seed. Equal seeds give equal streams. */
void cbx__rng_seed(uint64_t *state, uint64_t seed);

/* A seed that differs between calls, threads and processes: a process-wide counter mixed
 * with the monotonic time and the address of a caller-supplied object. Thread-safe. */
uint64_t cbx__rng_entropy(const void *salt);

/* The next 64 uniformly distributed bits. */
uint64_t cbx__rng_next(uint64_t *state);

/* Uniform in [0, bound). bound 0 gives 0. Unbiased (rejection sampling). */
uint64_t cbx__rng_below(uint64_t *state, uint64_t bound);

/* Uniform in [lo, hi], both ends included. hi < lo gives lo. */
uint64_t cbx__rng_between(uint64_t *state, uint64_t lo, uint64_t hi);

/* Uniform double in [0, 1), 53 bits of precision. */
double cbx__rng_unit(uint64_t *state);

#endif
