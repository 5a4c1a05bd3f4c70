/* cbx exec: chunks of partial output written as they arrive (see exec_chunks.h). */
#define _GNU_SOURCE
#include "exec_chunks.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* A line longer than this is written in pieces. */
#define LINE_MAX_BYTES ((size_t)64 * 1024)
/* --json: what the result keeps. */
#define KEEP_CHUNKS 10000
#define KEEP_BYTES  ((size_t)1 << 20)

/* Write all of it without dying of SIGPIPE when the reader has gone: -EPIPE instead. A
 * descriptor left non-blocking by whoever started cbx is waited on while it is full. */
static int write_quiet(int fd, const char *p, size_t n)
{
    sigset_t pipe_set, old, pending;
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
    int r = 0;
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            struct pollfd pfd = {.fd = fd, .events = POLLOUT};
            if (poll(&pfd, 1, -1) >= 0 || errno == EINTR)
                continue;
        }
        if (w < 0) {
            r = -errno;
            break;
        }
        p += w;
        n -= (size_t)w;
    }
    sigpending(&pending);
    if (r == -EPIPE && sigismember(&pending, SIGPIPE) && !sigismember(&old, SIGPIPE)) {
        struct timespec zero = {0, 0};
        sigtimedwait(&pipe_set, NULL, &zero); /* the one this write raised */
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return r;
}

void exec_stream_init(exec_stream *x, int mode, const char *tag, int collect)
{
    memset(x, 0, sizeof *x);
    x->lines = mode != EXEC_STREAM_RAW;
    x->group = mode == EXEC_STREAM_GROUP;
    x->tag = tag ? strdup(tag) : NULL;
    x->collect = collect;
}

/* One line (or piece) out, with the tag before it (unless it goes on a line already begun), in
 * one write so that it stays whole. */
static void put_piece(exec_stream *x, int fd, const char *p, size_t n, int cont)
{
    if (x->stopped || !n)
        return;
    int r;
    if (x->tag && !cont) {
        size_t tl = strlen(x->tag);
        char *line = malloc(tl + 1 + n);
        if (!line)
            return;
        memcpy(line, x->tag, tl);
        line[tl] = '\t';
        memcpy(line + tl + 1, p, n);
        r = write_quiet(fd, line, tl + 1 + n);
        free(line);
    } else {
        r = write_quiet(fd, p, n);
    }
    if (r == -EPIPE)
        x->stopped = 1;
    if (fd == STDOUT_FILENO)
        x->mid_line = p[n - 1] != '\n';
}

static void put_line(exec_stream *x, int fd, const char *p, size_t n)
{
    put_piece(x, fd, p, n, 0);
}

/* A buffer's content out: a whole line, or a piece of a long one. */
static void put_buf(exec_stream *x, int which, exec_linebuf *b)
{
    if (!b->len)
        return;
    put_piece(x, which ? STDERR_FILENO : STDOUT_FILENO, b->p, b->len, b->cont);
    b->cont = b->p[b->len - 1] != '\n';
    b->len = 0;
}

/* Write what a buffer holds as a last line (a newline added when it has none). */
static void flush_tail(exec_stream *x, int which)
{
    exec_linebuf *b = &x->buf[which];
    if (!b->len)
        return;
    if (b->p[b->len - 1] != '\n' && b->len < b->cap)
        b->p[b->len++] = '\n';
    put_buf(x, which, b);
}

static void take_lines(exec_stream *x, int which, const char *p, size_t n)
{
    exec_linebuf *b = &x->buf[which];
    while (n) {
        const char *nl = memchr(p, '\n', n);
        size_t piece = nl ? (size_t)(nl - p) + 1 : n;
        if (b->len + piece + 1 > b->cap) {
            size_t cap = b->cap ? b->cap : 256;
            while (cap < b->len + piece + 1 && cap < LINE_MAX_BYTES + 1)
                cap *= 2;
            if (cap > LINE_MAX_BYTES + 1)
                cap = LINE_MAX_BYTES + 1;
            char *g = cap > b->cap ? realloc(b->p, cap) : NULL;
            if (g) {
                b->p = g;
                b->cap = cap;
            }
        }
        size_t room = b->cap > b->len + 1 ? b->cap - b->len - 1 : 0;
        size_t take = piece < room ? piece : room;
        if (!take) { /* a line longer than the bound: out in pieces */
            put_buf(x, which, b);
            if (!b->cap)
                return; /* no memory at all */
            continue;
        }
        memcpy(b->p + b->len, p, take);
        b->len += take;
        p += take;
        n -= take;
        if (take == piece && nl)
            put_buf(x, which, b);
    }
}

/* --group: held whole until the end. */
static void hold(exec_stream *x, int which, const char *p, size_t n)
{
    exec_linebuf *b = &x->buf[which];
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *g = realloc(b->p, cap);
        if (!g) { /* out it goes now, as lines */
            x->group = 0;
            take_lines(x, which, p, n);
            return;
        }
        b->p = g;
        b->cap = cap;
    }
    memcpy(b->p + b->len, p, n);
    b->len += n;
}

/* --group at the end: what was held, line by line when tagged. */
static void release(exec_stream *x, int which)
{
    exec_linebuf *b = &x->buf[which];
    if (!x->tag) {
        flush_tail(x, which);
        return;
    }
    size_t len = b->len;
    b->len = 0;
    char *all = b->p;
    b->p = NULL;
    b->cap = 0;
    take_lines(x, which, all, len);
    free(all);
    flush_tail(x, which);
}

static void keep(exec_stream *x, const cbx_chunk *c)
{
    size_t bytes = c->event ? 64 : c->len;
    if (!x->chunks)
        x->chunks = json_array();
    if (!x->chunks || json_array_size(x->chunks) >= KEEP_CHUNKS ||
        x->kept_bytes + bytes > KEEP_BYTES) {
        x->dropped++;
        return;
    }
    json_t *o = json_pack("{s:i, s:I, s:s}", "attempt", (int)c->attempt, "seq", (json_int_t)c->seq,
                          "channel", c->channel);
    if (!o)
        return;
    if (c->event) {
        json_object_set(o, "event", (json_t *)c->event);
    } else {
        json_t *t = json_stringn(c->text, c->len);
        if (!t) { /* not UTF-8 (a character cut between chunks): as much as is */
            char *copy = malloc(c->len + 1);
            if (copy) {
                for (size_t i = 0; i < c->len; i++)
                    copy[i] = (unsigned char)c->text[i] < 0x80 ? c->text[i] : '?';
                t = json_stringn(copy, c->len);
                free(copy);
            }
        }
        json_object_set_new(o, "text", t ? t : json_string(""));
    }
    json_array_append_new(x->chunks, o);
    x->kept_bytes += bytes;
}

int exec_stream_chunk(exec_stream *x, const cbx_chunk *c)
{
    if (c->text)
        x->text_chunks++;
    if (x->collect) {
        keep(x, c);
        return CBX_CHUNK_MORE;
    }
    if (x->stopped)
        return CBX_CHUNK_STOP;
    if (x->lines && !x->group &&
        c->attempt != x->attempt) { /* a retry: the last attempt's lines end here */
        flush_tail(x, 0);
        flush_tail(x, 1);
    }
    x->attempt = c->attempt;
    int which = c->channel && strcmp(c->channel, "stderr") == 0;
    if (c->event) {
        char *d = json_dumps(c->event, JSON_COMPACT | JSON_ENCODE_ANY);
        if (d) {
            size_t n = strlen(d);
            d[n] = '\n'; /* over the NUL: the length is kept */
            if (x->group)
                hold(x, 0, d, n + 1);
            else if (x->lines)
                flush_tail(x, 0);
            if (!x->group)
                put_line(x, STDOUT_FILENO, d, n + 1);
            free(d);
        }
    } else if (x->group) {
        hold(x, which, c->text, c->len);
    } else if (x->lines) {
        take_lines(x, which, c->text, c->len);
    } else {
        put_line(x, which ? STDERR_FILENO : STDOUT_FILENO, c->text, c->len);
    }
    return x->stopped ? CBX_CHUNK_STOP : CBX_CHUNK_MORE;
}

void exec_stream_end(exec_stream *x)
{
    if (x->group) {
        x->group = 0;
        release(x, 0);
        release(x, 1);
        return;
    }
    flush_tail(x, 0);
    flush_tail(x, 1);
}

void exec_stream_attach(exec_stream *x, json_t *result)
{
    if (!json_is_object(result) || (!x->chunks && !x->dropped))
        return;
    json_object_set(result, "chunks", x->chunks ? x->chunks : json_array());
    if (x->dropped)
        json_object_set_new(result, "chunks_dropped", json_integer((json_int_t)x->dropped));
}

void exec_stream_free(exec_stream *x)
{
    free(x->tag);
    free(x->buf[0].p);
    free(x->buf[1].p);
    json_decref(x->chunks);
    memset(x, 0, sizeof *x);
}

int exec_takes_chunks(int cmd_mode, const char *type, int json)
{
    if (cmd_mode)
        return !json;
    return !type || strcmp(type, "command") != 0;
}
