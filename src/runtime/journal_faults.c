/* Writes the journal could not make: counted on the handle, and recorded in the loss ledger.
 *
 * The ledger is a file of one page beside the database (PATH-lost), made and filled with zeros
 * when the journal is first opened. A loss rewrites that page in place, which needs no new
 * block of the file system: it works when the disk is full, which is when losses happen. The
 * page is text ("writes=N" lines), rewritten under flock by any process that loses writes, read
 * by `cbx history`, and zeroed by cbx_journal_losses_reset. */
#include "runtime/journal_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define LEDGER_MAGIC "cbx journal losses 1\n"

static char *ledger_path(const cbx_journal *j)
{
    size_t n = strlen(j->path) + sizeof CBX__JOURNAL_LEDGER_SUFFIX;
    char *p = malloc(n);
    if (p)
        snprintf(p, n, "%s" CBX__JOURNAL_LEDGER_SUFFIX, j->path);
    return p;
}

void cbx__journal_ledger_open(cbx_journal *j)
{
    j->lost_fd = -1;
    if (strcmp(j->path, ":memory:") == 0)
        return;
    char *path = ledger_path(j);
    if (!path)
        return;
    int fd =
        open(path, (j->read_only ? O_RDONLY : O_RDWR | O_CREAT) | O_CLOEXEC | O_NOFOLLOW, 0600);
    free(path);
    if (fd < 0)
        return;
    struct stat st;
    if (!j->read_only && flock(fd, LOCK_EX) == 0) {
        /* a new ledger: allocate its page now, while there is room */
        static const char zeros[CBX__JOURNAL_LEDGER_SIZE];
        if (fstat(fd, &st) == 0 && st.st_size < CBX__JOURNAL_LEDGER_SIZE &&
            pwrite(fd, zeros, sizeof zeros, 0) != (ssize_t)sizeof zeros) {
            if (ftruncate(fd, 0) != 0) { /* nothing more to do: it stays empty */
            }
        }
        flock(fd, LOCK_UN);
    }
    j->lost_fd = fd;
}

void cbx__journal_ledger_close(cbx_journal *j)
{
    if (j->lost_fd >= 0)
        close(j->lost_fd);
    j->lost_fd = -1;
}

/* Parse a ledger page (NUL-terminated) into *l; an empty or foreign page is no loss. */
static void ledger_parse(const char *page, cbx_journal_losses *l)
{
    *l = (cbx_journal_losses){0};
    if (strncmp(page, LEDGER_MAGIC, sizeof LEDGER_MAGIC - 1) != 0)
        return;
    for (const char *p = page + sizeof LEDGER_MAGIC - 1; *p;) {
        const char *nl = strchr(p, '\n');
        size_t n = nl ? (size_t)(nl - p) : strlen(p);
        if (sscanf(p, "writes=%" SCNu64, &l->writes) == 1 ||
            sscanf(p, "first_ms=%" SCNu64, &l->first_ms) == 1 ||
            sscanf(p, "last_ms=%" SCNu64, &l->last_ms) == 1) {
        } else if (strncmp(p, "last_error=", 11) == 0) {
            size_t m = n - 11 < sizeof l->last_error - 1 ? n - 11 : sizeof l->last_error - 1;
            memcpy(l->last_error, p + 11, m);
            l->last_error[m] = '\0';
        }
        p += n + (nl ? 1 : 0);
    }
}

static int ledger_read(int fd, cbx_journal_losses *l)
{
    char page[CBX__JOURNAL_LEDGER_SIZE + 1];
    ssize_t n = pread(fd, page, CBX__JOURNAL_LEDGER_SIZE, 0);
    if (n < 0)
        return -errno;
    page[n] = '\0';
    ledger_parse(page, l);
    return 0;
}

static int ledger_write(int fd, const cbx_journal_losses *l)
{
    char page[CBX__JOURNAL_LEDGER_SIZE] = {0};
    if (l->writes)
        snprintf(page, sizeof page,
                 LEDGER_MAGIC "writes=%" PRIu64 "\nfirst_ms=%" PRIu64 "\nlast_ms=%" PRIu64
                              "\nlast_error=%s\n",
                 l->writes, l->first_ms, l->last_ms, l->last_error);
    /* the whole page, in place: no block to allocate */
    return pwrite(fd, page, sizeof page, 0) == (ssize_t)sizeof page ? 0 : -errno;
}

/* Add n losses at now_ms with msg to *l. */
static void losses_add(cbx_journal_losses *l, uint64_t n, uint64_t now_ms, const char *msg)
{
    if (!l->writes)
        l->first_ms = now_ms;
    l->writes += n;
    l->last_ms = now_ms;
    snprintf(l->last_error, sizeof l->last_error, "%s", msg);
    for (char *c = l->last_error; *c; c++)
        if (*c == '\n' || *c == '\r')
            *c = ' ';
}

void cbx__journal_lost_locked(cbx_journal *j, uint64_t n, const char *what)
{
    if (n == 0)
        return;
    const char *msg = what ? what : j->db ? sqlite3_errmsg(j->db) : "no database";
    uint64_t now = cbx__journal_wall_ms();
    losses_add(&j->lost, n, now, msg);
    if (j->lost_fd < 0 || j->read_only || flock(j->lost_fd, LOCK_EX) != 0)
        return;
    cbx_journal_losses l = {0};
    if (ledger_read(j->lost_fd, &l) == 0) {
        losses_add(&l, n, now, msg);
        (void)ledger_write(j->lost_fd, &l);
    }
    flock(j->lost_fd, LOCK_UN);
}

int cbx_journal_losses_get(cbx_journal *j, int recorded, cbx_journal_losses *out, cbx_err *err)
{
    if (!out)
        return cbx_err_set(err, -EINVAL, "cbx_journal_losses_get: out is NULL");
    *out = (cbx_journal_losses){0};
    if (!j)
        return cbx_err_set(err, -EINVAL, "cbx_journal_losses_get: no journal");
    cbx__journal_lock(j);
    cbx__journal_drain_locked(j); /* a queued write that fails counts */
    int r = 0;
    if (!recorded) {
        *out = j->lost;
    } else if (j->lost_fd >= 0) {
        flock(j->lost_fd, LOCK_SH);
        r = ledger_read(j->lost_fd, out);
        flock(j->lost_fd, LOCK_UN);
        if (r != 0)
            cbx_err_set(err, r, "journal %s: loss ledger: %s", j->path, strerror(-r));
    }
    pthread_mutex_unlock(&j->mu);
    return r;
}

int cbx_journal_losses_reset(cbx_journal *j, cbx_err *err)
{
    if (!j)
        return cbx_err_set(err, -EINVAL, "cbx_journal_losses_reset: no journal");
    cbx__journal_lock(j);
    j->lost = (cbx_journal_losses){0};
    int r = 0;
    if (j->lost_fd >= 0 && !j->read_only) {
        flock(j->lost_fd, LOCK_EX);
        r = ledger_write(j->lost_fd, &j->lost);
        flock(j->lost_fd, LOCK_UN);
        if (r != 0)
            cbx_err_set(err, r, "journal %s: loss ledger: %s", j->path, strerror(-r));
    }
    pthread_mutex_unlock(&j->mu);
    return r;
}
