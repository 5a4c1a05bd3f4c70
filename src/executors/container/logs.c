/* The engine's multiplexed log stream, split into stdout and stderr captures. */
#include "executors/container/container.h"

#include <string.h>

static void payload(cbx__ctr_logs *l, const char *p, size_t n)
{
    cbx__capture_add(l->stream == 1 ? &l->out : &l->err, p, n);
}

int cbx__ctr_logs_feed(void *data, const char *p, size_t n)
{
    cbx__ctr_logs *l = data;
    if (!l->started && n > 0) {
        l->started = 1;
        /* A multiplexed stream starts with a header: stream 0..3, then three zero bytes. */
        unsigned char b0 = (unsigned char)p[0];
        l->raw = b0 > 3;
    }
    if (l->raw) {
        cbx__capture_add(&l->out, p, n);
        return 0;
    }
    while (n > 0) {
        if (l->left > 0) {
            size_t take = n < l->left ? n : l->left;
            payload(l, p, take);
            l->left -= (uint32_t)take;
            p += take;
            n -= take;
            continue;
        }
        size_t take = sizeof l->hdr - l->hdr_len;
        if (take > n)
            take = n;
        memcpy(l->hdr + l->hdr_len, p, take);
        l->hdr_len += take;
        p += take;
        n -= take;
        if (l->hdr_len < sizeof l->hdr)
            break;
        l->hdr_len = 0;
        l->stream = l->hdr[0];
        l->left = (uint32_t)l->hdr[4] << 24 | (uint32_t)l->hdr[5] << 16 | (uint32_t)l->hdr[6] << 8 |
                  (uint32_t)l->hdr[7];
    }
    return 0;
}
