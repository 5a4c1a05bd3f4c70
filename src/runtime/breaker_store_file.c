/* The host breaker store's file: made whole under a temporary name and then linked into place
 * (so no process ever sees a half-made file), opened without following symbolic links, its
 * records' blocks allocated with posix_fallocate before anything touches them (so a full file
 * system is an -ENOSPC from here, never a SIGBUS from the mapping), and locks waited for with a
 * deadline. See docs/breaker-store.md. */
#define _GNU_SOURCE
#include "runtime/breaker_store_file.h"

#include "cbx/clock.h"

#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define BACKOFF_MIN_NS (20 * CBX_NS_PER_US)
#define BACKOFF_MAX_NS (2 * CBX_NS_PER_MS)

int cbx__bsf_backoff(uint64_t *step_ns, uint64_t deadline_ns)
{
    uint64_t now = cbx_clock_now_ns(NULL);
    if (deadline_ns == 0 || now >= deadline_ns)
        return -EAGAIN;
    uint64_t step = *step_ns ? *step_ns * 2 : BACKOFF_MIN_NS;
    if (step > BACKOFF_MAX_NS)
        step = BACKOFF_MAX_NS;
    *step_ns = step;
    if (step > deadline_ns - now)
        step = deadline_ns - now;
    struct timespec ts = {.tv_sec = (time_t)(step / CBX_NS_PER_S),
                          .tv_nsec = (long)(step % CBX_NS_PER_S)};
    nanosleep(&ts, NULL); /* a signal cuts it short: the caller just tries again */
    return 0;
}

int cbx__bsf_lock(int fd, off_t at, uint64_t deadline_ns)
{
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = at, .l_len = 1};
    uint64_t step = 0;
    for (;;) {
        if (fcntl(fd, F_OFD_SETLK, &fl) == 0)
            return 0;
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN && errno != EACCES)
            return -errno;
        int r = cbx__bsf_backoff(&step, deadline_ns);
        if (r)
            return r;
    }
}

void cbx__bsf_unlock(int fd, off_t at)
{
    struct flock fl = {.l_type = F_UNLCK, .l_whence = SEEK_SET, .l_start = at, .l_len = 1};
    while (fcntl(fd, F_OFD_SETLK, &fl) < 0 && errno == EINTR) {
    }
}

int cbx__bsf_allocated(const uint8_t *map, uint32_t k)
{
    const host_header *h = (const host_header *)map;
    uint64_t w = atomic_load_explicit(&h->allocated[k / 64], memory_order_acquire);
    return (int)((w >> (k % 64)) & 1);
}

int cbx__bsf_allocate(int fd, uint8_t *map, const host_geom *g, uint32_t k)
{
    if (cbx__bsf_allocated(map, k))
        return 0;
    off_t at = (off_t)g->header_size + (off_t)k * g->record_size;
    int e;
    while ((e = posix_fallocate(fd, at, (off_t)g->record_size)) == EINTR) {
    }
    if (e)
        return -e;
    host_header *h = (host_header *)map;
    atomic_fetch_or_explicit(&h->allocated[k / 64], 1ULL << (k % 64), memory_order_release);
    return 0;
}

static void read_boot_id(char *buf, size_t len)
{
    memset(buf, 0, len);
    FILE *f = fopen("/proc/sys/kernel/random/boot_id", "re");
    if (!f)
        return;
    if (fgets(buf, (int)len, f))
        buf[strcspn(buf, "\n")] = '\0';
    fclose(f);
}

static void geom_default(host_geom *g)
{
    g->header_size = HOST_HEADER_SIZE;
    g->record_size = HOST_RECORD_SIZE;
    g->capacity = HOST_CAPACITY;
    g->map_len = HOST_HEADER_SIZE + (size_t)HOST_CAPACITY * HOST_RECORD_SIZE;
}

static int fail(cbx_err *err, const char *path, int code, const char *what)
{
    if (code == -ENOSPC)
        return cbx_err_set_at(err, code, path, 0, 0,
                              "breaker store %s: no space left on its file system (%s; a new "
                              "breaker needs %u KiB): free some space, or run without the "
                              "shared breaker",
                              path, what, HOST_RECORD_SIZE / 1024);
    return cbx_err_set_at(err, code, path, 0, 0, "breaker store %s: %s: %s", path, what,
                          strerror(-code));
}

/* A complete new file under a temporary name beside path: its header's blocks allocated and
 * written, the records sparse. *fd and tmp (of tmp_len bytes) name it. */
static int make_fresh(const char *path, const char *boot_id, char *tmp, size_t tmp_len, int *fd,
                      cbx_err *err)
{
    int n = snprintf(tmp, tmp_len, "%s.new.XXXXXX", path);
    if (n < 0 || (size_t)n >= tmp_len)
        return fail(err, path, -ENAMETOOLONG, "cannot make it");
    int f = mkostemp(tmp, O_CLOEXEC);
    if (f < 0)
        return fail(err, path, -errno, "cannot make it");
    uint8_t page[HOST_HEADER_SIZE] = {0};
    host_header h = {.magic = HOST_MAGIC,
                     .version = HOST_VERSION,
                     .header_size = HOST_HEADER_SIZE,
                     .record_size = HOST_RECORD_SIZE,
                     .capacity = HOST_CAPACITY};
    memcpy(h.boot_id, boot_id, sizeof h.boot_id);
    memcpy(page, &h, sizeof h);
    size_t size = HOST_HEADER_SIZE + (size_t)HOST_CAPACITY * HOST_RECORD_SIZE;
    int e = posix_fallocate(f, 0, HOST_HEADER_SIZE);
    if (e == 0 && ftruncate(f, (off_t)size) != 0)
        e = errno;
    if (e == 0) {
        ssize_t w = pwrite(f, page, sizeof page, 0);
        if (w != (ssize_t)sizeof page)
            e = w < 0 ? errno : EIO;
    }
    if (e) {
        unlink(tmp);
        close(f);
        return fail(err, path, -e, "cannot make it");
    }
    *fd = f;
    return 0;
}

static int all_zero(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i])
            return 0;
    return 1;
}

/* 0: a good file of this boot (*g set); 1: to be made again (empty, left unfinished, an older
 * version, another boot); or an error. */
static int check_header(int fd, const struct stat *st, const char *path, const char *boot_id,
                        host_geom *g, cbx_err *err)
{
    uint8_t page[HOST_HEADER_SIZE];
    size_t size = st->st_size < (off_t)sizeof page ? (size_t)st->st_size : sizeof page;
    /* the fixed fields first; the rest of the page only when they are all zeros */
    size_t have = size < HOST_ALLOC_AT ? size : HOST_ALLOC_AT;
    if (have && pread(fd, page, have, 0) != (ssize_t)have)
        return fail(err, path, errno ? -errno : -EIO, "cannot read it");
    if (all_zero(page, have) && size > have) {
        if (pread(fd, page + have, size - have, (off_t)have) != (ssize_t)(size - have))
            return fail(err, path, errno ? -errno : -EIO, "cannot read it");
        have = size;
    }
    if (all_zero(page, have))
        return 1; /* made by ftruncate and never written: a creation that did not finish */
    host_header h;
    if (have < sizeof h)
        return cbx_err_set_at(err, CBX_EPARSE, path, 0, 0,
                              "breaker store %s: not a breaker store file", path);
    memcpy(&h, page, sizeof h);
    if (h.magic != HOST_MAGIC)
        return cbx_err_set_at(err, CBX_EPARSE, path, 0, 0,
                              "breaker store %s: not a breaker store file", path);
    int upgrade = h.version == 2; /* the same layout, with every record a breaker (kind 0) */
    if (h.version < 2)
        return 1;
    if (h.version != HOST_VERSION && !upgrade)
        return cbx_err_set_at(err, CBX_EPARSE, path, 0, 0,
                              "breaker store %s: version %u, this build reads version %u", path,
                              h.version, HOST_VERSION);
    if (h.header_size > (1u << 20) || h.record_size < 2048 || h.record_size > (1u << 24) ||
        h.record_size % 8 || h.capacity == 0 || h.capacity > 65536 ||
        HOST_ALLOC_AT + (size_t)(h.capacity + 63) / 64 * 8 > h.header_size || h.header_size % 8)
        return cbx_err_set_at(err, CBX_EPARSE, path, 0, 0, "breaker store %s: damaged header",
                              path);
    size_t want = h.header_size + (size_t)h.capacity * h.record_size;
    if ((size_t)st->st_size < want)
        return cbx_err_set_at(err, CBX_EPARSE, path, 0, 0,
                              "breaker store %s: truncated (%lld bytes, expected %zu)", path,
                              (long long)st->st_size, want);
    if (boot_id[0] && strncmp(h.boot_id, boot_id, sizeof h.boot_id) != 0)
        return 1; /* its times are from another boot's CLOCK_MONOTONIC */
    if (upgrade) {
        /* the table lock is held: no process of this version reads the header meanwhile, and
         * one of version 2 refuses the file from now on (its records may hold limiters) */
        uint32_t v = HOST_VERSION;
        if (pwrite(fd, &v, sizeof v, offsetof(host_header, version)) != (ssize_t)sizeof v)
            return fail(err, path, errno ? -errno : -EIO, "cannot upgrade it to version 3");
    }
    g->header_size = h.header_size;
    g->record_size = h.record_size;
    g->capacity = h.capacity;
    g->map_len = want;
    return 0;
}

/* The file opened: a regular file of this user, not through a symbolic link. */
static int open_existing(const char *path, struct stat *st, cbx_err *err)
{
    int fd = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        int e = errno;
        if (e == ELOOP)
            return cbx_err_set_at(err, -ELOOP, path, 0, 0,
                                  "breaker store %s: a symbolic link; refusing to follow it "
                                  "(remove it, or use another state directory)",
                                  path);
        if (e == ENOENT)
            return -ENOENT; /* the caller makes it */
        return fail(err, path, -e, "cannot open it");
    }
    int r = 0;
    if (fstat(fd, st) != 0)
        r = fail(err, path, -errno, "cannot stat it");
    else if (!S_ISREG(st->st_mode))
        r = cbx_err_set_at(err, -EPERM, path, 0, 0, "breaker store %s: not a regular file", path);
    else if (st->st_uid != geteuid())
        r = cbx_err_set_at(err, -EPERM, path, 0, 0,
                           "breaker store %s: owned by uid %u, not by this user (uid %u); "
                           "refusing it",
                           path, (unsigned)st->st_uid, (unsigned)geteuid());
    if (r) {
        close(fd);
        return r;
    }
    return fd;
}

int cbx__bsf_open(const char *path, int *out, host_geom *g, uint64_t deadline_ns, cbx_err *err)
{
    *out = -1;
    char boot_id[48], tmp[4200];
    read_boot_id(boot_id, sizeof boot_id);
    for (int tries = 0; tries < 64; tries++) {
        struct stat st = {0};
        int fd = open_existing(path, &st, err);
        if (fd == -ENOENT) {
            int r = make_fresh(path, boot_id, tmp, sizeof tmp, &fd, err);
            if (r)
                return r;
            /* link, unlike rename, never replaces a file another process made meanwhile */
            if (link(tmp, path) != 0) {
                int e = errno;
                unlink(tmp);
                close(fd);
                if (e == EEXIST)
                    continue;
                return fail(err, path, -e, "cannot make it");
            }
            unlink(tmp);
            geom_default(g);
            *out = fd;
            return 0;
        }
        if (fd < 0)
            return fd;
        int r = cbx__bsf_lock(fd, 0, deadline_ns);
        if (r) {
            close(fd);
            if (r == -EAGAIN)
                return cbx_err_set_at(err, r, path, 0, 0,
                                      "breaker store %s: locked by another process until the "
                                      "deadline",
                                      path);
            return fail(err, path, r, "lock");
        }
        /* Replaced since we opened it (by a process that repaired it): open the new one. */
        struct stat now;
        if (lstat(path, &now) != 0 || now.st_ino != st.st_ino || now.st_dev != st.st_dev) {
            cbx__bsf_unlock(fd, 0);
            close(fd);
            continue;
        }
        r = check_header(fd, &st, path, boot_id, g, err);
        if (r == 1) {
            int nfd = -1;
            r = make_fresh(path, boot_id, tmp, sizeof tmp, &nfd, err);
            if (r == 0 && rename(tmp, path) != 0) {
                r = fail(err, path, -errno, "cannot replace it");
                unlink(tmp);
                close(nfd);
            }
            cbx__bsf_unlock(fd, 0);
            close(fd);
            if (r)
                return r;
            geom_default(g);
            *out = nfd;
            return 0;
        }
        cbx__bsf_unlock(fd, 0);
        if (r) {
            close(fd);
            return r;
        }
        *out = fd;
        return 0;
    }
    return cbx_err_set_at(err, -EAGAIN, path, 0, 0,
                          "breaker store %s: replaced again and again while opening it", path);
}
