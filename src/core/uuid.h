/* Time-ordered ids (UUID version 7): 48 bits of wall-clock milliseconds, then random bits. */
#ifndef CBX_CORE_UUID_H
#define CBX_CORE_UUID_H

#include <stdint.h>

/* Write the id made of ms and two random words (the version and variant bits are set here) as
 * 36 characters and a NUL into out. */
void cbx__uuid7_format(uint64_t ms, uint64_t r1, uint64_t r2, char out[40]);

/* What keeps one generator's ids in creation order within a millisecond: rand_a (12 bits) is a
 * counter (RFC 9562, section 6.2, method 1) that starts at a random point under 0x800 in each new
 * millisecond and grows by one per id; when it runs out the id borrows the next millisecond. A
 * clock that steps back is held at the last millisecond used. Zero-initialise; one thread at a
 * time. */
typedef struct cbx__uuid_seq {
    uint64_t last_ms;
    uint32_t counter;
} cbx__uuid_seq;

/* The next id of seq for wall time ms, with two random words (r1 seeds a new millisecond's
 * counter, r2 fills the tail). */
void cbx__uuid7_next(cbx__uuid_seq *seq, uint64_t ms, uint64_t r1, uint64_t r2, char out[40]);

/* The next word of a splitmix64 generator whose state is *s (not for secrets: for the random
 * bits of ids). */
static inline uint64_t cbx__splitmix64(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* A new id from the wall clock and random bits (a generator per thread, seeded from the
 * kernel's random source when the thread first asks and again in a forked child); ids of one
 * process sort by creation (a process-wide sequence under a lock). */
void cbx__uuid7(char out[40]);

#endif
