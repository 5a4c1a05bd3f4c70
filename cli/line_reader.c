/* Items of cbx exec --each's input, read on the event loop when they come from a pipe or a
 * terminal (see line_reader.h). */
#include "line_reader.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#define READ_AHEAD (64 * 1024)

static int reserve(char **p, size_t *cap, size_t need)
{
    if (need <= *cap)
        return 0;
    size_t nc = *cap ? *cap : 256;
    while (nc < need)
        nc *= 2;
    char *g = realloc(*p, nc);
    if (!g)
        return -ENOMEM;
    *p = g;
    *cap = nc;
    return 0;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    cli_line_reader *r = h->data;
    (void)suggested;
    if (r->off > 0 && r->off == r->len)
        r->off = r->len = 0;
    if (reserve(&r->buf, &r->cap, r->len + READ_AHEAD) < 0) {
        *buf = uv_buf_init(NULL, 0); /* the read reports UV_ENOBUFS */
        return;
    }
    *buf = uv_buf_init(r->buf + r->len, (unsigned)(r->cap - r->len));
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    cli_line_reader *r = s->data;
    (void)buf;
    if (n > 0) {
        r->len += (size_t)n;
        if (r->len - r->off >= READ_AHEAD) {
            uv_read_stop(s);
            r->reading = 0;
        }
    } else if (n < 0) {
        if (n != UV_EOF)
            r->error = (int)n;
        r->eof = 1;
        uv_read_stop(s);
        r->reading = 0;
    }
}

int cli_line_reader_init(cli_line_reader *r, uv_loop_t *loop, FILE *f, int delim)
{
    memset(r, 0, sizeof *r);
    r->f = f;
    r->delim = delim;
    int fd = fileno(f);
    uv_handle_type t = uv_guess_handle(fd);
    int rc = -1;
    if (t == UV_NAMED_PIPE) {
        rc = uv_pipe_init(loop, &r->h.pipe, 0);
        if (rc == 0 && (rc = uv_pipe_open(&r->h.pipe, fd)) < 0)
            uv_close((uv_handle_t *)&r->h.pipe, NULL);
    } else if (t == UV_TTY) {
        rc = uv_tty_init(loop, &r->h.tty, fd, 1);
        if (rc < 0)
            uv_close((uv_handle_t *)&r->h.tty, NULL);
    }
    r->async = rc == 0; /* else plain reads: a regular file, or what libuv cannot watch */
    if (r->async)
        r->h.pipe.data = r;
    return 0;
}

/* Hand out [off, off + n) as the item, and skip its delimiter too when it has one. */
static int take(cli_line_reader *r, size_t n, int delimited)
{
    if (reserve(&r->line, &r->line_cap, n + 1) < 0)
        return -ENOMEM;
    memcpy(r->line, r->buf + r->off, n);
    r->line[n] = '\0';
    r->off += n + (delimited ? 1 : 0);
    return 1;
}

int cli_line_reader_next(cli_line_reader *r, const char **item)
{
    if (!r->async) {
        if (r->eof)
            return 0;
        ssize_t n = getdelim(&r->line, &r->line_cap, r->delim, r->f);
        if (n < 0) {
            r->eof = 1;
            r->error = ferror(r->f) ? -EIO : 0;
            return 0;
        }
        if (n > 0 && r->line[n - 1] == (char)r->delim)
            r->line[n - 1] = '\0';
        *item = r->line;
        return 1;
    }
    char *start = r->buf + r->off;
    char *end = r->len > r->off ? memchr(start, r->delim, r->len - r->off) : NULL;
    int rc = 0;
    if (end)
        rc = take(r, (size_t)(end - start), 1);
    else if (r->eof && r->len > r->off)
        rc = take(r, r->len - r->off, 0); /* the last item, without its delimiter */
    if (rc == 1)
        *item = r->line;
    /* keep reading ahead while there is room */
    if (!r->eof && !r->reading && r->len - r->off < READ_AHEAD) {
        if (r->off > 0) {
            memmove(r->buf, r->buf + r->off, r->len - r->off);
            r->len -= r->off;
            r->off = 0;
        }
        int e = uv_read_start((uv_stream_t *)&r->h.pipe, on_alloc, on_read);
        if (e < 0) {
            r->error = e;
            r->eof = 1;
        } else {
            r->reading = 1;
        }
    }
    return rc;
}

void cli_line_reader_close(cli_line_reader *r)
{
    if (r->async && !uv_is_closing((uv_handle_t *)&r->h.pipe)) {
        /* libuv made the descriptor non-blocking; whoever shares it after us expects blocking */
        int fd = -1;
        if (uv_fileno((uv_handle_t *)&r->h.pipe, &fd) == 0 && fd >= 0) {
            int fl = fcntl(fd, F_GETFL);
            if (fl >= 0)
                fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
        }
        uv_close((uv_handle_t *)&r->h.pipe, NULL);
    }
    free(r->buf);
    free(r->line);
    r->buf = r->line = NULL;
}
