/* Who owns a record: a process id and its start time, which together name one process even
 * after its pid is reused. */
#include "core/proc.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cbx__proc_start_ticks(int pid, uint64_t *out)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "re");
    if (!f)
        return -errno;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    /* "pid (comm) state ppid ...": comm may hold spaces and parentheses; field 22 is the
     * start time, the 20th after the last ')' */
    char *p = strrchr(buf, ')');
    if (!p)
        return -EINVAL;
    p++;
    for (int field = 3; field < 22; field++) {
        p = strchr(p + 1, ' ');
        if (!p)
            return -EINVAL;
    }
    char *end = NULL;
    unsigned long long v = strtoull(p + 1, &end, 10);
    if (end == p + 1)
        return -EINVAL;
    *out = v;
    return 0;
}

int cbx__proc_alive(int pid, uint64_t start_ticks)
{
    if (pid <= 0)
        return -1;
    uint64_t now = 0;
    int r = cbx__proc_start_ticks(pid, &now);
    if (r == -ENOENT)
        return 0; /* no such process */
    if (r < 0)
        return kill(pid, 0) == 0 || errno == EPERM ? -1 : 0; /* no /proc: cannot tell */
    return now == start_ticks;
}
