/* Without cgroups: the orphans a command leaves are collected and killed.
 *
 * Where no cgroup can be made (not root, no delegated subtree), the tree is the process group,
 * and a process that makes a session of its own leaves it. To reach such processes anyway, this
 * process becomes a child subreaper (PR_SET_CHILD_SUBREAPER) the first time a command runs
 * without a cgroup: a process whose parent dies is then reparented to us instead of to init.
 * Each attempt's child carries a mark in its environment, CBX_TREE=<our pid>.<attempt>, which
 * its descendants inherit. At the end of the attempt (after the group's SIGKILL) our children
 * are listed (/proc/self/task/<pid>/children: orphans go to the main thread), and every one
 * carrying the attempt's mark gets SIGKILL and is reaped; its own children come to us in turn
 * and are found by the next round.
 *
 * Limits, documented: a descendant that clears its environment is not recognised; an orphan
 * that has already exited when the attempt ends is a zombie whose environment can no longer be
 * read, and stays one (until cbx exits); descendants that are still attached to a living
 * parent outside the group are reached only once that parent has been killed (the rounds). */
#define _GNU_SOURCE
#include "executors/command.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

/* Rounds of listing and killing: each reaches one more generation of a tree. */
#define ROUNDS 32

static pthread_once_t once = PTHREAD_ONCE_INIT;
static int subreaper;

static void become_subreaper(void)
{
    subreaper = prctl(PR_SET_CHILD_SUBREAPER, 1) == 0;
}

int cbx__orphans_enable(void)
{
    pthread_once(&once, become_subreaper);
    return subreaper ? 0 : -ENOTSUP;
}

void cbx__orphans_mark(char *buf, size_t len)
{
    static _Atomic unsigned long long seq;
    snprintf(buf, len, "CBX_TREE=%d.%llu", (int)getpid(), ++seq);
}

/* 1 when the process's environment holds exactly the entry mark. */
static int carries(pid_t pid, const char *mark)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/environ", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    /* Entries are NUL-separated; the mark may straddle two reads: keep the tail. */
    size_t mlen = strlen(mark);
    char buf[8192];
    size_t have = 0;
    int found = 0;
    for (;;) {
        ssize_t n = read(fd, buf + have, sizeof buf - have);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        have += (size_t)n;
        size_t start = 0;
        for (size_t i = 0; i < have; i++) {
            if (buf[i] != '\0')
                continue;
            if (i - start == mlen && memcmp(buf + start, mark, mlen) == 0) {
                found = 1;
                break;
            }
            start = i + 1;
        }
        if (found)
            break;
        if (start == 0 && have == sizeof buf) /* one entry longer than the buffer: skip it */
            start = have;
        memmove(buf, buf + start, have - start);
        have -= start;
    }
    close(fd);
    return found;
}

int cbx__orphans_kill(const char *mark, pid_t leader)
{
    if (!subreaper)
        return 0;
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/task/%d/children", (int)getpid(), (int)getpid());
    int killed = 0;
    for (int round = 0; round < ROUNDS; round++) {
        char buf[4096];
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            return killed;
        ssize_t n = read(fd, buf, sizeof buf - 1);
        close(fd);
        if (n <= 0)
            return killed;
        buf[n] = '\0';
        int found = 0;
        for (char *p = buf; *p;) {
            char *end;
            long pid = strtol(p, &end, 10);
            if (end == p)
                break;
            p = end;
            while (*p == ' ' || *p == '\n')
                p++;
            if (pid <= 0 || (pid_t)pid == leader || !carries((pid_t)pid, mark))
                continue;
            kill((pid_t)pid, SIGKILL);
            kill(-(pid_t)pid, SIGKILL); /* the group it may lead */
            while (waitpid((pid_t)pid, NULL, 0) < 0 && errno == EINTR)
                ;
            found++;
        }
        killed += found;
        if (!found)
            break;
    }
    return killed;
}
