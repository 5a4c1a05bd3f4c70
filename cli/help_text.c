/* What the subcommands say about themselves: their --help text and their option tables, read
 * by running them (with --help, or in probe mode) with stdout and stderr captured, so that the
 * manual pages and the completion scripts are made from the same source as --help. */
#include "args.h"
#include "cli.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Run c with argv while fds 1 and 2 go to out (1) and /dev/null (2). Returns c's exit code, or
 * -1 when the descriptors could not be moved. */
static int run_captured(const cli_cmd *c, int argc, char **argv, int out_fd)
{
    int null_fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
    if (null_fd < 0)
        return -1;
    fflush(stdout);
    fflush(stderr);
    int saved1 = dup(1), saved2 = dup(2), rc = -1;
    if (saved1 >= 0 && saved2 >= 0 && dup2(out_fd >= 0 ? out_fd : null_fd, 1) >= 0 &&
        dup2(null_fd, 2) >= 0) {
        cli_ctx ctx = {0};
        rc = c ? c->fn(&ctx, argc, argv) : (cli_usage(stdout), 0);
    }
    fflush(stdout);
    fflush(stderr);
    if (saved1 >= 0) {
        dup2(saved1, 1);
        close(saved1);
    }
    if (saved2 >= 0) {
        dup2(saved2, 2);
        close(saved2);
    }
    close(null_fd);
    return rc;
}

char *cli_help_text(const cli_cmd *c)
{
    FILE *t = tmpfile();
    if (!t)
        return NULL;
    char *argv[] = {c ? (char *)c->name : "cbx", "--help", NULL};
    char *text = NULL;
    if (run_captured(c, 2, argv, fileno(t)) >= 0 && fseek(t, 0, SEEK_END) == 0) {
        long n = ftell(t);
        rewind(t);
        text = n >= 0 ? malloc((size_t)n + 1) : NULL;
        if (text && fread(text, 1, (size_t)n, t) != (size_t)n) {
            free(text);
            text = NULL;
        } else if (text) {
            text[n] = '\0';
        }
    }
    fclose(t);
    return text;
}

const cli_opt *cli_opt_table(const cli_cmd *c)
{
    char *argv[] = {(char *)c->name, "--help", NULL};
    cli_args_probe_begin();
    run_captured(c, 2, argv, -1);
    return cli_args_probe_end();
}
