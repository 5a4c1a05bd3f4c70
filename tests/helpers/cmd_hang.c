/* cmd_hang [--ignore-term] [--children N] [--children-ignore-term] [--escape] [--pidfile PATH]
 *
 * Hangs until killed. With --children, first forks N children that hang too (they keep this
 * process's stdout and stderr open); --escape puts them in a session of their own (out of the
 * process group). Every pid (this one first) is written to PATH, one per line, and "ready" to
 * stdout once everything is in place. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void ignore_term(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = SIG_IGN;
    sigaction(SIGTERM, &sa, NULL);
}

int main(int argc, char **argv)
{
    int ign = 0, children = 0, children_ign = 0, escape = 0;
    const char *pidfile = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--ignore-term") == 0)
            ign = 1;
        else if (strcmp(argv[i], "--children") == 0 && i + 1 < argc)
            children = atoi(argv[++i]);
        else if (strcmp(argv[i], "--children-ignore-term") == 0)
            children_ign = 1;
        else if (strcmp(argv[i], "--escape") == 0)
            escape = 1;
        else if (strcmp(argv[i], "--pidfile") == 0 && i + 1 < argc)
            pidfile = argv[++i];
        else {
            fprintf(stderr, "cmd_hang: unknown argument %s\n", argv[i]);
            return 64;
        }
    }
    if (ign)
        ignore_term();
    FILE *pf = pidfile ? fopen(pidfile, "w") : NULL;
    if (pf) {
        fprintf(pf, "%d\n", (int)getpid());
        fflush(pf);
    }
    for (int i = 0; i < children; i++) {
        fflush(stdout);
        pid_t pid = fork();
        if (pid < 0) {
            perror("fork");
            return 1;
        }
        if (pid == 0) {
            if (pf)
                fclose(pf);
            if (escape)
                setsid();
            if (children_ign)
                ignore_term();
            for (;;)
                pause();
        }
        if (pf) {
            fprintf(pf, "%d\n", (int)pid);
            fflush(pf);
        }
    }
    if (pf)
        fclose(pf);
    fputs("ready\n", stdout);
    fflush(stdout);
    for (;;)
        pause();
}
