/* The joblog of cbx exec --each, in GNU parallel's format (see joblog.h). */
#include "joblog.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

static const char header[] =
    "Seq\tHost\tStarttime\tJobRuntime\tSend\tReceive\tExitval\tSignal\tCommand";

int cli_joblog_open(cli_joblog *j, const char *path, int append)
{
    memset(j, 0, sizeof *j);
    int has_header = 0;
    if (append) {
        FILE *r = fopen(path, "r");
        if (r) {
            char first[sizeof header + 1];
            has_header = fgets(first, sizeof first, r) && strncmp(first, header, 3) == 0;
            fclose(r);
        }
    }
    j->f = fopen(path, has_header ? "a" : "w");
    if (!j->f)
        return -errno;
    if (!has_header && (fprintf(j->f, "%s\n", header) < 0 || fflush(j->f) != 0)) {
        int e = errno ? -errno : -EIO;
        fclose(j->f);
        j->f = NULL;
        return e;
    }
    return 0;
}

int cli_joblog_write(cli_joblog *j, const cli_joblog_row *r)
{
    if (!j->f)
        return 0;
    if (fprintf(j->f, "%" PRIu64 "\t:\t%.3f\t%10.3f\t0\t%" PRIu64 "\t%d\t%d\t%s\n", r->seq,
                r->start_s, r->runtime_s, r->receive, r->exitval, r->signal,
                r->command ? r->command : "") < 0 ||
        fflush(j->f) != 0)
        return errno ? -errno : -EIO;
    return 0;
}

void cli_joblog_close(cli_joblog *j)
{
    if (j->f)
        fclose(j->f);
    memset(j, 0, sizeof *j);
}

int cli_joblog_read(const char *path, int only_ok, uint8_t **done, size_t *n)
{
    *done = NULL;
    *n = 0;
    FILE *f = fopen(path, "r");
    if (!f)
        return errno == ENOENT ? 0 : -errno;
    char *line = NULL;
    size_t cap = 0, len = 0;
    uint8_t *set = NULL;
    int rc = 0, first = 1;
    while (getline(&line, &cap, f) >= 0) {
        if (first) {
            first = 0;
            if (strncmp(line, header, 3) != 0) {
                rc = -EINVAL;
                break;
            }
            continue;
        }
        /* Seq, Host, Starttime, JobRuntime, Send, Receive, Exitval, Signal, Command */
        char *field[8], *save = NULL, *p = line;
        int k = 0;
        for (char *t = strtok_r(p, "\t", &save); t && k < 8; t = strtok_r(NULL, "\t", &save))
            field[k++] = t;
        if (k < 8)
            continue; /* a row cut short by a kill: that job is not done */
        char *end;
        unsigned long long seq = strtoull(field[0], &end, 10);
        if (*end || seq == 0 || seq > (1ull << 40))
            continue;
        if (only_ok && (atoi(field[6]) != 0 || atoi(field[7]) != 0))
            continue;
        if (seq >= len) {
            size_t nl = len ? len : 1024;
            while (nl <= seq)
                nl *= 2;
            uint8_t *g = realloc(set, nl);
            if (!g) {
                rc = -ENOMEM;
                break;
            }
            memset(g + len, 0, nl - len);
            set = g;
            len = nl;
        }
        set[seq] = 1;
    }
    free(line);
    fclose(f);
    if (rc < 0) {
        free(set);
        return rc;
    }
    *done = set;
    *n = len;
    return 0;
}

static int put(char **buf, size_t *len, size_t *cap, const char *s, size_t n)
{
    if (*len + n + 1 > *cap) {
        size_t nc = *cap ? *cap : 128;
        while (nc < *len + n + 1)
            nc *= 2;
        char *g = realloc(*buf, nc);
        if (!g)
            return -ENOMEM;
        *buf = g;
        *cap = nc;
    }
    memcpy(*buf + *len, s, n);
    *len += n;
    (*buf)[*len] = '\0';
    return 0;
}

int cli_shell_quote(char **buf, size_t *len, size_t *cap, const char *s)
{
    static const char safe[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
                               "@%_-+=:,./";
    if (*s && strspn(s, safe) == strlen(s))
        return put(buf, len, cap, s, strlen(s));
    if (put(buf, len, cap, "'", 1) < 0)
        return -ENOMEM;
    for (const char *p = s; *p; p++) {
        if (*p == '\'' ? put(buf, len, cap, "'\\''", 4) < 0 : put(buf, len, cap, p, 1) < 0)
            return -ENOMEM;
    }
    return put(buf, len, cap, "'", 1);
}
