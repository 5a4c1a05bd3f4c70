/* Building a span on the caller's stack: ids, times, attributes and status copied into the
 * span's own text, so that it can be queued by value. */
#include "telemetry/trace.h"

#include <pthread.h>
#include <string.h>
#include <time.h>

uint64_t cbx__trace_unix_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Unix time minus CLOCK_MONOTONIC, taken once: every span's times come from the monotonic
 * clock through it, so that a child never seems to end after its parent because two readings
 * of two clocks were taken apart (a wall-clock step later does not move spans). */
static pthread_once_t offset_once = PTHREAD_ONCE_INIT;
static int64_t offset_ns;

static void take_offset(void)
{
    struct timespec m;
    clock_gettime(CLOCK_MONOTONIC, &m);
    offset_ns = (int64_t)cbx__trace_unix_ns() - ((int64_t)m.tv_sec * 1000000000 + m.tv_nsec);
}

uint64_t cbx__trace_mono_to_unix(uint64_t mono_ns)
{
    pthread_once(&offset_once, take_offset);
    return (uint64_t)((int64_t)mono_ns + offset_ns);
}

uint64_t cbx__trace_now_ns(void)
{
    struct timespec m;
    clock_gettime(CLOCK_MONOTONIC, &m);
    return cbx__trace_mono_to_unix((uint64_t)m.tv_sec * 1000000000ull + (uint64_t)m.tv_nsec);
}

/* Length of a valid UTF-8 sequence at p (at most n bytes), 0 when there is none. */
static size_t utf8_len(const unsigned char *p, size_t n)
{
    size_t len = p[0] < 0x80             ? 1
                 : (p[0] & 0xe0) == 0xc0 ? 2
                 : (p[0] & 0xf0) == 0xe0 ? 3
                 : (p[0] & 0xf8) == 0xf0 ? 4
                                         : 0;
    if (!len || len > n || (len == 2 && p[0] < 0xc2))
        return 0;
    for (size_t i = 1; i < len; i++)
        if ((p[i] & 0xc0) != 0x80)
            return 0;
    return len;
}

/* Copy v into s's text: its offset, or UINT16_MAX when there is no room for it at all. */
static uint16_t put_text(cbx__span *s, const char *v)
{
    size_t room = sizeof s->text - s->used;
    if (room < 2)
        return UINT16_MAX;
    uint16_t off = s->used;
    char *out = s->text + off;
    size_t n = strlen(v), o = 0;
    const unsigned char *p = (const unsigned char *)v;
    for (size_t i = 0; i < n && o + 1 < room;) {
        size_t a = i; /* a run of ASCII goes in one copy */
        while (a < n && p[a] < 0x80)
            a++;
        if (a > i) {
            size_t k = a - i < room - 1 - o ? a - i : room - 1 - o;
            memcpy(out + o, p + i, k);
            o += k;
            i += k;
            continue;
        }
        size_t l = utf8_len(p + i, n - i);
        if (l == 0) {
            out[o++] = '?';
            i++;
        } else if (o + l < room) {
            memcpy(out + o, p + i, l);
            o += l;
            i += l;
        } else {
            break;
        }
    }
    out[o] = '\0';
    s->used = (uint16_t)(off + o + 1);
    return off;
}

void cbx__span_begin(cbx__span *s, const cbx__trace_ctx *ctx, uint64_t id, const char *name,
                     int kind, uint64_t start_ns, uint64_t end_ns)
{
    memcpy(s->trace, ctx->trace, sizeof s->trace);
    s->id = id;
    s->parent = ctx->parent;
    s->start_ns = start_ns;
    s->end_ns = end_ns < start_ns ? start_ns : end_ns;
    s->kind = (uint8_t)kind;
    s->status = CBX__SPAN_UNSET;
    s->nattrs = 0;
    s->msg = 0;
    s->text[0] = '\0';
    s->used = 1; /* offset 0: the empty string */
    s->name = put_text(s, name);
}

static cbx__span_attr *add(cbx__span *s, const char *key, int type)
{
    if (s->nattrs >= CBX__SPAN_ATTRS)
        return NULL;
    cbx__span_attr *a = &s->attrs[s->nattrs];
    a->key = key;
    a->type = (uint8_t)type;
    a->off = 0;
    return a;
}

void cbx__span_str(cbx__span *s, const char *key, const char *v)
{
    if (!v)
        return;
    cbx__span_attr *a = add(s, key, CBX__ATTR_STR);
    if (!a)
        return;
    uint16_t off = put_text(s, v);
    if (off == UINT16_MAX)
        return;
    a->off = off;
    s->nattrs++;
}

void cbx__span_int(cbx__span *s, const char *key, int64_t v)
{
    cbx__span_attr *a = add(s, key, CBX__ATTR_INT);
    if (a) {
        a->v.i = v;
        s->nattrs++;
    }
}

void cbx__span_bool(cbx__span *s, const char *key, int v)
{
    cbx__span_attr *a = add(s, key, CBX__ATTR_BOOL);
    if (a) {
        a->v.i = v != 0;
        s->nattrs++;
    }
}

void cbx__span_double(cbx__span *s, const char *key, double v)
{
    cbx__span_attr *a = add(s, key, CBX__ATTR_DOUBLE);
    if (a) {
        a->v.d = v;
        s->nattrs++;
    }
}

void cbx__span_status(cbx__span *s, int code, const char *msg)
{
    s->status = (uint8_t)code;
    if (code == CBX__SPAN_ERROR && msg && *msg) {
        uint16_t off = put_text(s, msg);
        s->msg = off == UINT16_MAX ? 0 : off;
    }
}
