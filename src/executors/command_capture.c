/* Bounded capture of a child's output stream.
 *
 * Reads land in a per-thread scratch buffer and are copied into the capture while it is below its
 * cap; past the cap they are counted and dropped. So a command that writes gigabytes costs the
 * cap plus one scratch buffer per loop thread, and the pipe keeps draining (a child blocked on a
 * full pipe would never exit). */
#include "executors/command.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define SCRATCH_SIZE ((size_t)64 * 1024)

static pthread_key_t scratch_key;
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;
static int scratch_key_ok;
static _Thread_local char *scratch;
static _Thread_local char fallback[256]; /* when the scratch buffer cannot be allocated */

static void scratch_key_make(void)
{
    scratch_key_ok = pthread_key_create(&scratch_key, free) == 0;
}

void cbx__capture_buf(size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    if (!scratch) {
        pthread_once(&scratch_once, scratch_key_make);
        char *p = malloc(SCRATCH_SIZE);
        if (p && scratch_key_ok && pthread_setspecific(scratch_key, p) == 0) {
            scratch = p; /* freed by the key's destructor when the thread ends */
        } else {
            free(p);
            *buf = uv_buf_init(fallback, sizeof fallback);
            return;
        }
    }
    *buf = uv_buf_init(scratch, SCRATCH_SIZE);
}

void cbx__capture_add(cbx__capture *c, const char *p, size_t n)
{
    c->total += n;
    if (c->failed || c->len >= c->max)
        return;
    size_t keep = c->max - c->len < n ? c->max - c->len : n;
    if (c->len + keep > c->alloc) {
        size_t want = c->alloc ? c->alloc : 4096;
        while (want < c->len + keep)
            want *= 2;
        if (want > c->max)
            want = c->max;
        char *d = realloc(c->data, want);
        if (!d) {
            c->failed = 1;
            return;
        }
        c->data = d;
        c->alloc = want;
    }
    memcpy(c->data + c->len, p, keep);
    c->len += keep;
}

int cbx__capture_truncated(const cbx__capture *c)
{
    return c->total > c->len;
}

/* Length of the valid UTF-8 sequence at s[0..n), or 0 when it is not one (RFC 3629: no
 * overlongs, no surrogates, nothing above U+10FFFF). */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    if (c < 0x80)
        return 1;
    size_t len;
    unsigned lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        if (c == 0xE0)
            lo = 0xA0;
        else if (c == 0xED)
            hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        if (c == 0xF0)
            lo = 0x90;
        else if (c == 0xF4)
            hi = 0x8F;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    if (s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < len; i++)
        if (s[i] < 0x80 || s[i] > 0xBF)
            return 0;
    return len;
}

/* Bytes at the end of s[0..n) that start a multi-byte character and could be completed by more
 * bytes: dropped when the stream was cut there. */
static size_t cut_tail(const unsigned char *s, size_t n)
{
    for (size_t back = 1; back <= 3 && back <= n; back++) {
        unsigned char c = s[n - back];
        if (c < 0x80)
            return 0;
        if (c >= 0xC0) {
            size_t need = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : 2;
            return need > back ? back : 0;
        }
    }
    return 0;
}

/* The "" of every empty stream: one string, held forever, that outputs share (nothing changes
 * an output's strings in place). Most commands of a big flow write nothing: two strings fewer
 * each, 160 bytes. */
static json_t *empty_text;
static pthread_once_t empty_once = PTHREAD_ONCE_INIT;

static void empty_text_make(void)
{
    empty_text = json_string("");
}

json_t *cbx__capture_json(const cbx__capture *c, int *lossy)
{
    *lossy = 0;
    const unsigned char *s = (const unsigned char *)(c->data ? c->data : "");
    size_t n = c->len;
    if (cbx__capture_truncated(c))
        n -= cut_tail(s, n);
    if (n == 0) {
        pthread_once(&empty_once, empty_text_make);
        if (empty_text)
            return json_incref(empty_text);
    }
    json_t *j = json_stringn((const char *)s, n); /* NULL when not valid UTF-8 */
    if (j)
        return j;
    char *out = malloc(n * 3 + 1); /* each bad byte becomes the 3 bytes of U+FFFD */
    if (!out)
        return NULL;
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        size_t k = utf8_seq(s + i, n - i);
        if (k) {
            memcpy(out + o, s + i, k);
            o += k;
            i += k;
        } else {
            static const char replacement[3] = {'\xEF', '\xBF', '\xBD'}; /* U+FFFD */
            memcpy(out + o, replacement, sizeof replacement);
            o += sizeof replacement;
            i++;
        }
    }
    *lossy = 1;
    j = json_stringn_nocheck(out, o);
    free(out);
    return j;
}

void cbx__capture_free(cbx__capture *c)
{
    size_t max = c->max;
    free(c->data);
    memset(c, 0, sizeof *c);
    c->max = max;
}
