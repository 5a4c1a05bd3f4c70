/* A breaker's whole dynamic state as plain bytes, for stores shared between processes.
 *
 * The record is little-endian and self-describing enough to be refused when it does not fit:
 *
 *   magic "CBXS" (u32)  version (u16)  reserved (u16)  length of the whole record (u32)
 *   shape fingerprint (u64): count-window size, time-window buckets and bucket length, probe
 *                            slots, histogram buckets, outcome kinds, expired-lease memory
 *   word, open_until, state_since (u64)  consecutive (u32)
 *   by_kind[] (u64 each; 8 kinds since version 3, 7 before oom), failures, ignored,
 *   slow_calls, rejections, expired_probes, late_results, opens (u64)
 *   reopens, probe_successes, probes_in_flight, lease_serial (u32)
 *   probe tally (half_open_judge rate): calls, failures, slow (u32)           since version 2
 *   trip: reason, consecutive, calls, failures, slow (u32)
 *   probes: n (u16), then n x {slot u16, lease u32, deadline u64}            occupied slots only
 *   expired leases: n (u16), then n x {index u16, serial u32}                  non-zero only
 *   histogram: sum (u64), n (u16), then n x {index u16, count u64}            non-zero only
 *   count window (when it has one): n (u64), failures, slow (u32), the ring at 2 bits a call
 *   time window (when it has one): n (u16), then n x {index u16, epoch u64, calls, failures,
 *                                  slow u32}                        buckets still in the window
 *
 * Loading checks everything before it writes anything, so a refused record leaves the breaker
 * as it was.
 */
#include "resilience/breaker_internal.h"

#include <errno.h>
#include <string.h>

#define STATE_MAGIC   0x53584243u /* "CBXS" read as little-endian */
#define STATE_VERSION 3u
/* Version 2 records had one outcome kind fewer (before oom): read, with no oom counted. */
#define V2_KINDS 7
_Static_assert(CBX_OUTCOME_OOM == V2_KINDS && CBX_OUTCOME__COUNT == V2_KINDS + 1,
               "outcome kinds are only ever added at the end");

#define HDR_BYTES (4 + 2 + 2 + 4 + 8)
#define FIXED_BYTES                                                                                \
    (HDR_BYTES + 3 * 8 + 4 + CBX_OUTCOME__COUNT * 8 + 7 * 8 + 4 * 4 + 3 * 4 + 5 * 4 + 2 + 2 + 8 + 2)
#define PROBE_BYTES   (2 + 4 + 8)
#define EXPIRED_BYTES (2 + 4)
#define HIST_BYTES    (2 + 8)
#define BUCKET_BYTES  (2 + 8 + 4 + 4 + 4)

_Static_assert(CBX__HIST_BUCKETS % 8 == 0 && CBX__EXPIRED_MEMORY % 8 == 0, "scanned by eights");

/* ---- little-endian cursor ----------------------------------------------------------------- */

typedef struct wcur {
    uint8_t *p;
    size_t off, cap;
} wcur;

typedef struct rcur {
    const uint8_t *p;
    size_t off, len;
    int bad;
} rcur;

#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define LE16(v) (v)
#define LE32(v) (v)
#define LE64(v) (v)
#else
#define LE16(v) __builtin_bswap16(v)
#define LE32(v) __builtin_bswap32(v)
#define LE64(v) __builtin_bswap64(v)
#endif

#define PUT(bits)                                                                                  \
    static void put##bits(wcur *w, uint##bits##_t v)                                               \
    {                                                                                              \
        v = LE##bits(v);                                                                           \
        memcpy(w->p + w->off, &v, sizeof v);                                                       \
        w->off += sizeof v;                                                                        \
    }
#define GET(bits)                                                                                  \
    static uint##bits##_t get##bits(rcur *r)                                                       \
    {                                                                                              \
        uint##bits##_t v;                                                                          \
        if (r->bad || r->len - r->off < sizeof v) {                                                \
            r->bad = 1;                                                                            \
            return 0;                                                                              \
        }                                                                                          \
        memcpy(&v, r->p + r->off, sizeof v);                                                       \
        r->off += sizeof v;                                                                        \
        return LE##bits(v);                                                                        \
    }
PUT(16)
PUT(32)
PUT(64)
GET(16)
GET(32)
GET(64)

static void put8(wcur *w, unsigned v)
{
    w->p[w->off++] = (uint8_t)v;
}

/* ---- shape ------------------------------------------------------------------------------- */

static uint64_t mix(uint64_t h, uint64_t v)
{
    h ^= v + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2);
    return h * 0xff51afd7ed558ccdULL;
}

static uint64_t fingerprint(const cbx_breaker *b, unsigned version, unsigned kinds)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    h = mix(h, version);
    h = mix(h, b->has_count_window ? b->cw.size : 0);
    h = mix(h, b->has_time_window ? b->tw.buckets : 0);
    h = mix(h, b->has_time_window ? b->tw.bucket_ns : 0);
    h = mix(h, b->max_probes);
    h = mix(h, (uint64_t)CBX__HIST_BUCKETS);
    h = mix(h, kinds);
    h = mix(h, CBX__EXPIRED_MEMORY);
    return h ^ (h >> 31);
}

static uint32_t ring_bytes(const cbx_breaker *b)
{
    return b->has_count_window ? (b->cw.size + 3) / 4 : 0;
}

size_t cbx__breaker_state_size(const cbx_breaker *b)
{
    size_t n = FIXED_BYTES + (size_t)b->max_probes * PROBE_BYTES +
               (size_t)CBX__EXPIRED_MEMORY * EXPIRED_BYTES + (size_t)CBX__HIST_BUCKETS * HIST_BYTES;
    if (b->has_count_window)
        n += 8 + 4 + 4 + ring_bytes(b);
    if (b->has_time_window)
        n += 2 + (size_t)b->tw.buckets * BUCKET_BYTES;
    return n;
}

/* ---- stamp ------------------------------------------------------------------------------- */

#define LOAD(x) atomic_load_explicit(&(x), memory_order_relaxed)

/* Every change of state moves at least one of these: the word (every transition and mode
 * change bumps its generation), a counter (every outcome, refusal, lease, expiry), the lease
 * serial or the latency sum. Mixed, not summed, so that changes cannot cancel out. */
uint64_t cbx__breaker_state_stamp(cbx_breaker *b)
{
    uint64_t h = mix(0, LOAD(b->word));
    h = mix(h, LOAD(b->open_until_ns));
    h = mix(h, b->state_since_ns);
    h = mix(h, LOAD(b->consecutive));
    for (int k = 0; k < CBX_OUTCOME__COUNT; k++)
        h = mix(h, LOAD(b->by_kind[k]));
    h = mix(h, LOAD(b->failures));
    h = mix(h, LOAD(b->ignored));
    h = mix(h, LOAD(b->slow_calls));
    h = mix(h, LOAD(b->rejections));
    h = mix(h, LOAD(b->expired_probes));
    h = mix(h, LOAD(b->late_results));
    h = mix(h, LOAD(b->opens));
    h = mix(h, ((uint64_t)b->reopens << 32) | b->probe_successes);
    h = mix(h, ((uint64_t)b->probes_in_flight << 32) | b->lease_serial);
    h = mix(h, ((uint64_t)b->probe_tally.calls << 32) | b->probe_tally.failures);
    h = mix(h, b->probe_tally.slow);
    h = mix(h, LOAD(b->hist.sum_ns));
    if (b->has_count_window)
        h = mix(h, LOAD(b->cw.n));
    return h;
}

/* ---- save -------------------------------------------------------------------------------- */

static int bucket_live(const cbx__time_window *tw, uint64_t epoch, uint64_t now_epoch)
{
    if (epoch == UINT64_MAX)
        return 0;
    /* one from the future (a clock that went back) is kept as it is */
    return epoch > now_epoch || now_epoch - epoch < tw->buckets;
}

int cbx__breaker_state_save(cbx_breaker *b, void *buf, size_t len)
{
    if (len < cbx__breaker_state_size(b))
        return -ENOSPC;
    wcur w = {.p = buf, .cap = len};
    put32(&w, STATE_MAGIC);
    put16(&w, STATE_VERSION);
    put16(&w, 0);
    size_t len_at = w.off;
    put32(&w, 0); /* the length, filled in at the end */
    put64(&w, fingerprint(b, STATE_VERSION, CBX_OUTCOME__COUNT));

    put64(&w, LOAD(b->word));
    put64(&w, LOAD(b->open_until_ns));
    put64(&w, b->state_since_ns);
    put32(&w, LOAD(b->consecutive));
    for (int k = 0; k < CBX_OUTCOME__COUNT; k++)
        put64(&w, LOAD(b->by_kind[k]));
    put64(&w, LOAD(b->failures));
    put64(&w, LOAD(b->ignored));
    put64(&w, LOAD(b->slow_calls));
    put64(&w, LOAD(b->rejections));
    put64(&w, LOAD(b->expired_probes));
    put64(&w, LOAD(b->late_results));
    put64(&w, LOAD(b->opens));
    put32(&w, b->reopens);
    put32(&w, b->probe_successes);
    put32(&w, b->probes_in_flight);
    put32(&w, b->lease_serial);
    put32(&w, b->probe_tally.calls);
    put32(&w, b->probe_tally.failures);
    put32(&w, b->probe_tally.slow);
    put32(&w, (uint32_t)b->trip.reason);
    put32(&w, b->trip.consecutive);
    put32(&w, b->trip.window.calls);
    put32(&w, b->trip.window.failures);
    put32(&w, b->trip.window.slow);

    /* each list: its length (filled in after), then its entries */
    size_t count_at = w.off;
    uint16_t n = 0;
    put16(&w, 0);
    for (uint32_t i = 0; i < b->max_probes; i++) {
        if (!b->probes[i].lease)
            continue;
        put16(&w, (uint16_t)i);
        put32(&w, b->probes[i].lease);
        put64(&w, b->probes[i].deadline_ns);
        n++;
    }
    wcur at = {.p = w.p, .off = count_at, .cap = w.cap};
    put16(&at, n);

    count_at = w.off;
    n = 0;
    put16(&w, 0);
    for (uint32_t g = 0; g < CBX__EXPIRED_MEMORY; g += 8) {
        const uint32_t *e = &b->expired_leases[g];
        if (!(e[0] | e[1] | e[2] | e[3] | e[4] | e[5] | e[6] | e[7]))
            continue; /* mostly empty: skip by eights */
        for (uint32_t i = g; i < g + 8; i++) {
            if (!b->expired_leases[i])
                continue;
            put16(&w, (uint16_t)i);
            put32(&w, b->expired_leases[i]);
            n++;
        }
    }
    at = (wcur){.p = w.p, .off = count_at, .cap = w.cap};
    put16(&at, n);

    put64(&w, LOAD(b->hist.sum_ns));
    count_at = w.off;
    put16(&w, 0);
    n = 0;
    for (unsigned g = 0; g < CBX__HIST_BUCKETS; g += 8) {
        uint64_t c[8], any = 0;
        for (unsigned j = 0; j < 8; j++)
            any |= c[j] = LOAD(b->hist.bucket[g + j]);
        if (!any)
            continue;
        for (unsigned j = 0; j < 8; j++) {
            if (!c[j])
                continue;
            put16(&w, (uint16_t)(g + j));
            put64(&w, c[j]);
            n++;
        }
    }
    at = (wcur){.p = w.p, .off = count_at, .cap = w.cap};
    put16(&at, n);

    if (b->has_count_window) {
        put64(&w, LOAD(b->cw.n));
        put32(&w, LOAD(b->cw.failures));
        put32(&w, LOAD(b->cw.slow));
        uint32_t bytes = ring_bytes(b);
        for (uint32_t i = 0; i < bytes; i++) {
            unsigned v = 0;
            for (uint32_t j = 0; j < 4 && i * 4 + j < b->cw.size; j++)
                v |= (LOAD(b->cw.ring[i * 4 + j]) & 3u) << (2 * j);
            put8(&w, v);
        }
    }

    if (b->has_time_window) {
        uint64_t now_epoch = cbx_clock_now_ns(b->clock) / b->tw.bucket_ns;
        count_at = w.off;
        put16(&w, 0);
        n = 0;
        for (uint32_t i = 0; i < b->tw.buckets; i++) {
            cbx__time_bucket *tb = &b->tw.ring[i];
            uint64_t e = LOAD(tb->epoch);
            if (!bucket_live(&b->tw, e, now_epoch))
                continue;
            put16(&w, (uint16_t)i);
            put64(&w, e);
            put32(&w, LOAD(tb->calls));
            put32(&w, LOAD(tb->failures));
            put32(&w, LOAD(tb->slow));
            n++;
        }
        at = (wcur){.p = w.p, .off = count_at, .cap = w.cap};
        put16(&at, n);
    }

    at = (wcur){.p = w.p, .off = len_at, .cap = w.cap};
    put32(&at, (uint32_t)w.off);
    return (int)w.off;
}

/* ---- load -------------------------------------------------------------------------------- */

#define STORE(x, v) atomic_store_explicit(&(x), (v), memory_order_relaxed)

/* Reads the record; checks it when apply is 0, writes it into b when apply is 1 (only after a
 * checking pass has passed). Returns 0 or CBX_EPARSE. */
static int decode(cbx_breaker *b, const void *buf, size_t len, int apply)
{
    rcur r = {.p = buf, .len = len};
    if (get32(&r) != STATE_MAGIC)
        return CBX_EPARSE;
    unsigned version = get16(&r);
    if (version != STATE_VERSION && version != 2)
        return CBX_EPARSE;
    unsigned kinds = version == 2 ? V2_KINDS : CBX_OUTCOME__COUNT;
    (void)get16(&r); /* reserved */
    if (get32(&r) != len || get64(&r) != fingerprint(b, version, kinds) || r.bad)
        return CBX_EPARSE;

    uint64_t word = get64(&r);
    if ((word & 0xffffffffu & ~(uint64_t)W_LOW_BITS) || W_STATE(word) > CBX_BREAKER_HALF_OPEN ||
        W_MODE(word) > CBX_BREAKER_METRICS_ONLY)
        return CBX_EPARSE;
    uint64_t open_until = get64(&r), since = get64(&r);
    uint32_t consecutive = get32(&r);
    uint64_t by_kind[CBX_OUTCOME__COUNT] = {0};
    for (unsigned k = 0; k < kinds; k++)
        by_kind[k] = get64(&r);
    uint64_t failures = get64(&r), ignored = get64(&r), slow_calls = get64(&r),
             rejections = get64(&r), expired_probes = get64(&r), late = get64(&r),
             opens = get64(&r);
    uint32_t reopens = get32(&r), probe_successes = get32(&r), in_flight = get32(&r),
             lease_serial = get32(&r);
    cbx__win_totals tally;
    tally.calls = get32(&r);
    tally.failures = get32(&r);
    tally.slow = get32(&r);
    trip_info trip;
    uint32_t reason = get32(&r);
    if (reason > CBX__BREAKER_REASON_LAST)
        return CBX_EPARSE;
    trip.reason = (cbx_breaker_reason)reason;
    trip.consecutive = get32(&r);
    trip.window.calls = get32(&r);
    trip.window.failures = get32(&r);
    trip.window.slow = get32(&r);
    if (r.bad || in_flight > b->max_probes || tally.failures > tally.calls ||
        tally.slow > tally.calls)
        return CBX_EPARSE;
    if (apply) {
        STORE(b->word, word);
        STORE(b->open_until_ns, open_until);
        b->state_since_ns = since;
        STORE(b->consecutive, consecutive);
        for (int k = 0; k < CBX_OUTCOME__COUNT; k++)
            STORE(b->by_kind[k], by_kind[k]);
        STORE(b->failures, failures);
        STORE(b->ignored, ignored);
        STORE(b->slow_calls, slow_calls);
        STORE(b->rejections, rejections);
        STORE(b->expired_probes, expired_probes);
        STORE(b->late_results, late);
        STORE(b->opens, opens);
        b->reopens = reopens;
        b->probe_successes = probe_successes;
        b->probes_in_flight = in_flight;
        b->lease_serial = lease_serial;
        b->probe_tally = tally;
        b->trip = trip;
        memset(b->probes, 0, sizeof b->probes);
        memset(b->expired_leases, 0, sizeof b->expired_leases);
    }

    /* probes: strictly increasing slots below max_probes, as many as are in flight */
    uint16_t n = get16(&r);
    if (n != in_flight)
        return CBX_EPARSE;
    int prev = -1;
    for (uint16_t i = 0; i < n; i++) {
        uint16_t slot = get16(&r);
        uint32_t lease = get32(&r);
        uint64_t deadline = get64(&r);
        if (r.bad || (int)slot <= prev || slot >= b->max_probes || lease == 0)
            return CBX_EPARSE;
        prev = slot;
        if (apply)
            b->probes[slot] = (probe_slot){.deadline_ns = deadline, .lease = lease};
    }

    /* expired leases: each at its serial's place */
    n = get16(&r);
    prev = -1;
    for (uint16_t i = 0; i < n; i++) {
        uint16_t idx = get16(&r);
        uint32_t serial = get32(&r);
        if (r.bad || (int)idx <= prev || idx >= CBX__EXPIRED_MEMORY || serial == 0 ||
            serial % CBX__EXPIRED_MEMORY != idx)
            return CBX_EPARSE;
        prev = idx;
        if (apply)
            b->expired_leases[idx] = serial;
    }

    uint64_t sum = get64(&r);
    n = get16(&r);
    if (apply) {
        STORE(b->hist.sum_ns, sum);
        for (unsigned i = 0; i < CBX__HIST_BUCKETS; i++)
            STORE(b->hist.bucket[i], 0);
    }
    prev = -1;
    for (uint16_t i = 0; i < n; i++) {
        uint16_t idx = get16(&r);
        uint64_t c = get64(&r);
        if (r.bad || (int)idx <= prev || idx >= CBX__HIST_BUCKETS || c == 0)
            return CBX_EPARSE;
        prev = idx;
        if (apply)
            STORE(b->hist.bucket[idx], c);
    }

    if (b->has_count_window) {
        uint64_t cn = get64(&r);
        uint32_t cf = get32(&r), cs = get32(&r);
        uint32_t bytes = ring_bytes(b), seen_f = 0, seen_s = 0;
        if (r.bad || r.len - r.off < bytes)
            return CBX_EPARSE;
        uint64_t used = cn < b->cw.size ? cn : b->cw.size;
        for (uint32_t i = 0; i < b->cw.size; i++) {
            unsigned v = (r.p[r.off + i / 4] >> (2 * (i % 4))) & 3u;
            if (v && i >= used)
                return CBX_EPARSE; /* a call in a part of the ring not yet reached */
            seen_f += (v & CBX__WIN_FAIL) != 0;
            seen_s += (v & CBX__WIN_SLOW) != 0;
            if (apply)
                STORE(b->cw.ring[i], (uint8_t)v);
        }
        if (seen_f != cf || seen_s != cs)
            return CBX_EPARSE;
        r.off += bytes;
        if (apply) {
            STORE(b->cw.failures, cf);
            STORE(b->cw.slow, cs);
            STORE(b->cw.n, cn);
        }
    }

    if (b->has_time_window) {
        n = get16(&r);
        if (apply)
            for (uint32_t i = 0; i < b->tw.buckets; i++)
                STORE(b->tw.ring[i].epoch, UINT64_MAX);
        prev = -1;
        for (uint16_t i = 0; i < n; i++) {
            uint16_t idx = get16(&r);
            uint64_t e = get64(&r);
            uint32_t calls = get32(&r), f = get32(&r), s = get32(&r);
            if (r.bad || (int)idx <= prev || idx >= b->tw.buckets || e == UINT64_MAX ||
                e % b->tw.buckets != idx || f > calls || s > calls)
                return CBX_EPARSE;
            prev = idx;
            if (apply) {
                cbx__time_bucket *tb = &b->tw.ring[idx];
                STORE(tb->calls, calls);
                STORE(tb->failures, f);
                STORE(tb->slow, s);
                STORE(tb->epoch, e);
            }
        }
        if (apply)
            for (uint32_t i = 0; i < b->tw.buckets; i++)
                if (atomic_load_explicit(&b->tw.ring[i].epoch, memory_order_relaxed) ==
                    UINT64_MAX) {
                    STORE(b->tw.ring[i].calls, 0);
                    STORE(b->tw.ring[i].failures, 0);
                    STORE(b->tw.ring[i].slow, 0);
                }
    }

    if (r.bad || r.off != len)
        return CBX_EPARSE;
    return 0;
}

int cbx__breaker_state_load(cbx_breaker *b, const void *buf, size_t len)
{
    if (!buf || len < HDR_BYTES)
        return CBX_EPARSE;
    int r = decode(b, buf, len, 0);
    if (r)
        return r;
    r = decode(b, buf, len, 1);
    /* Publish the plain fields written above to threads that next take the lock-free path. */
    atomic_thread_fence(memory_order_release);
    return r;
}
