/* One server per journal: a server numbers its events from the journal's largest id at start, so
 * two sharing a journal would give two events one id. The server holds an exclusive flock on
 * JOURNAL.serve-lock (its pid written in it) for as long as it runs; a second server on the same
 * journal is refused, naming the first. The kernel drops the lock with the process, so a server
 * killed with SIGKILL leaves nothing that stops the next one. */
#include "server/server.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

int srv_journal_lock(srv *s, char *errbuf, size_t errlen)
{
    if (!s->journal)
        return 0;
    const char *db = cbx_journal_path(s->journal);
    if (!db || !strcmp(db, ":memory:"))
        return 0;
    char path[4096];
    if ((size_t)snprintf(path, sizeof path, "%s.serve-lock", db) >= sizeof path) {
        snprintf(errbuf, errlen, "journal %.200s: path too long for its lock file", db);
        return -ENAMETOOLONG;
    }
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        int e = errno;
        snprintf(errbuf, errlen, "%.300s: %s", path, strerror(e));
        return -e;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        int e = errno;
        char pid[32] = "";
        ssize_t n = pread(fd, pid, sizeof pid - 1, 0);
        pid[n > 0 ? n : 0] = '\0';
        pid[strcspn(pid, "\n")] = '\0';
        close(fd);
        if (e != EWOULDBLOCK) {
            snprintf(errbuf, errlen, "%.300s: %s", path, strerror(e));
            return -e;
        }
        snprintf(errbuf, errlen,
                 "journal %.300s is in use by another cbx serve (pid %s); one server per "
                 "journal: give this one another --state-dir",
                 db, pid[0] ? pid : "unknown");
        return -EBUSY;
    }
    char pid[32];
    int n = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
    ssize_t w = ftruncate(fd, 0) == 0 ? pwrite(fd, pid, (size_t)n, 0) : -1;
    (void)w; /* the lock holds without the pid: a second server's refusal says "unknown" */
    s->lock_fd = fd;
    return 0;
}

void srv_journal_unlock(srv *s)
{
    if (s->lock_fd >= 0)
        close(s->lock_fd);
    s->lock_fd = -1;
}
