/* Time-ordered ids: ids of one generator sort by creation (a counter within the millisecond),
 * which keeps index appends local and lets people sort by id. */
#include "core/uuid.h"

#include <pthread.h>
#include <stdatomic.h>
#include <sys/random.h>
#include <time.h>

void cbx__uuid7_format(uint64_t ms, uint64_t r1, uint64_t r2, char out[40])
{
    static const char hex[] = "0123456789abcdef";
    uint64_t a = (ms << 16) | (r1 & 0x0fffULL) | 0x7000ULL;            /* version 7 */
    uint64_t b = (r2 & 0x3fffffffffffffffULL) | 0x8000000000000000ULL; /* variant 10 */
    char *o = out;
    for (int i = 0; i < 32; i++) { /* 8-4-4-4-12, written by hand: no printf per id */
        if (i == 8 || i == 12 || i == 16 || i == 20)
            *o++ = '-';
        uint64_t w = i < 16 ? a : b;
        *o++ = hex[(w >> (60 - 4 * (i % 16))) & 0xf];
    }
    *o = '\0';
}

void cbx__uuid7_next(cbx__uuid_seq *seq, uint64_t ms, uint64_t r1, uint64_t r2, char out[40])
{
    if (ms > seq->last_ms) {
        seq->last_ms = ms;
        seq->counter = (uint32_t)(r1 & 0x7ff); /* room for 2048 more ids in this millisecond */
    } else if (++seq->counter > 0xfff) {
        seq->last_ms++; /* out of counter: borrow the next millisecond */
        seq->counter = 0;
    }
    cbx__uuid7_format(seq->last_ms, seq->counter, r2, out);
}

/* Each thread's generator of random bits: seeded from the kernel once (a system call per id
 * cost a --batch's line more than its id's share of the journal), and again in a forked child,
 * which would otherwise make the ids its parent makes. */
static atomic_uint fork_gen;
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;
static _Thread_local uint64_t rng;
static _Thread_local unsigned rng_gen;
static _Thread_local int rng_seeded;

static void after_fork(void)
{
    atomic_fetch_add(&fork_gen, 1);
}

static void atfork_register(void)
{
    pthread_atfork(NULL, NULL, after_fork);
}

static void random_words(uint64_t r[2], const struct timespec *ts)
{
    pthread_once(&atfork_once, atfork_register);
    unsigned gen = atomic_load(&fork_gen);
    if (!rng_seeded || rng_gen != gen) {
        uint64_t seed = 0;
        if (getrandom(&seed, sizeof seed, 0) != (ssize_t)sizeof seed)
            seed = ((uint64_t)ts->tv_nsec * 0x9e3779b97f4a7c15ULL) ^ (uint64_t)ts->tv_sec ^
                   ((uint64_t)(uintptr_t)&rng * 0xbf58476d1ce4e5b9ULL);
        rng = seed;
        rng_gen = gen;
        rng_seeded = 1;
    }
    r[0] = cbx__splitmix64(&rng);
    r[1] = cbx__splitmix64(&rng);
}

void cbx__uuid7(char out[40])
{
    static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
    static cbx__uuid_seq seq;
    uint64_t r[2];
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    random_words(r, &ts);
    uint64_t ms = (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
    pthread_mutex_lock(&lock);
    cbx__uuid7_next(&seq, ms, r[0], r[1], out);
    pthread_mutex_unlock(&lock);
}
