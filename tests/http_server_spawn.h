/* Starting tests/helpers/http_server (a real HTTP/1.1 server on loopback) from a test: it prints
 * its port on stdout and dies with its parent. Shared by the Criterion tests and the stress
 * tests (plain programs), so it reports failures instead of asserting. */
#ifndef CBX_TESTS_HTTP_SERVER_SPAWN_H
#define CBX_TESTS_HTTP_SERVER_SPAWN_H

#include <errno.h>
#include <spawn.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

extern char **environ;

/* Start the server binary at path: its port, and its pid in *pid; or -1 with a one-line reason
 * in why (a failed spawn, or no port printed; then no server is left running unreaped). */
static inline int cbx_test_http_server_spawn(const char *path, pid_t *pid, char *why, size_t len)
{
    int fds[2];
    if (pipe(fds) != 0) {
        snprintf(why, len, "pipe: %s", strerror(errno));
        return -1;
    }
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fds[1], STDOUT_FILENO);
    posix_spawn_file_actions_addclose(&fa, fds[0]);
    posix_spawn_file_actions_addclose(&fa, fds[1]);
    char *argv[] = {(char *)path, "--die-with-parent", NULL};
    int rc = posix_spawn(pid, path, &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(fds[1]);
    if (rc != 0) {
        close(fds[0]);
        snprintf(why, len, "spawn %s: %s", path, strerror(rc));
        return -1;
    }
    FILE *f = fdopen(fds[0], "r");
    int port = -1;
    if (!f || fscanf(f, "%d", &port) != 1 || port <= 0) {
        snprintf(why, len, "%s did not print its port", path);
        port = -1;
    }
    if (f)
        fclose(f);
    else
        close(fds[0]);
    return port;
}

#endif
