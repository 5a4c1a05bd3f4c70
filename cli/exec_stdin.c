/* cbx exec -- CMD: the command's standard input is cbx's.
 *
 * Run once, the command reads cbx's stdin itself (a descriptor passed on). Run more than once (a
 * retry, --repeat), each run must see the same input: a file is opened anew for each (the
 * executor does that for a regular file), and a pipe is read to its end first, into a memfd
 * that is then such a file. A terminal is passed as is: each run reads what is typed then. */
#define _GNU_SOURCE /* memfd_create */
#include "exec_stdin.h"

#include "cli.h"
#include "output.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* Read fd 0 to its end into a new memfd: its descriptor, or -1 after a line on stderr (*code). */
static int buffer_stdin(uint64_t max, int *code)
{
    int mfd = memfd_create("cbx-stdin", MFD_CLOEXEC);
    if (mfd < 0) {
        cli_err("exec: stdin: cannot keep a copy for retries: %s", strerror(errno));
        *code = CLI_EXIT_INTERNAL;
        return -1;
    }
    char buf[65536];
    uint64_t total = 0;
    for (;;) {
        ssize_t n = read(STDIN_FILENO, buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            cli_err("exec: stdin: %s", strerror(errno));
            *code = CLI_EXIT_INTERNAL;
            break;
        }
        if (n == 0)
            return mfd;
        total += (uint64_t)n;
        if (total > max) {
            cli_err("exec: stdin: more than %llu bytes came through a pipe, too many to keep for "
                    "a retry or repeat to read again (raise --stdin-max, or run once)",
                    (unsigned long long)max);
            *code = CLI_EXIT_USAGE;
            break;
        }
        if (cli_write_all(mfd, buf, (size_t)n) < 0) {
            cli_err("exec: stdin: cannot keep a copy for retries: %s", strerror(errno));
            *code = CLI_EXIT_INTERNAL;
            break;
        }
    }
    close(mfd);
    return -1;
}

int cli_exec_stdin(json_t *params, uint64_t runs, uint64_t max)
{
    if (json_object_get(params, "stdin") || json_object_get(params, "stdin_fd"))
        return 0;
    struct stat st;
    if (fstat(STDIN_FILENO, &st) < 0)
        return 0; /* no stdin: the command gets /dev/null */
    int fd = STDIN_FILENO;
    if (runs > 1 && (S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode))) {
        int code = 0;
        fd = buffer_stdin(max, &code);
        if (fd < 0)
            return code;
        /* kept open until cbx exits: every run reads it */
    }
    json_object_set_new(params, "stdin_fd", json_integer(fd));
    return 0;
}
