/* cmd_hang [--ignore-term] [--children N] [--children-ignore-term] [--escape] [--grandchild]
 *          [--pidfile PATH]
 *
 * Hangs until killed. With --children, first forks N children that hang too (they keep this
 * process's stdout and stderr open); --escape puts them in a session of their own (out of the
 * process group); --grandchild makes each child (after its setsid) fork one more process that
 * hangs. Every pid (this one first) is written to PATH, one per line, and "ready" to stdout once
 * everything is in place. */
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
    int ign = 0, children = 0, children_ign = 0, escape = 0, grandchild = 0;
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
        else if (strcmp(argv[i], "--grandchild") == 0)
            grandchild = 1;
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
        int ready[2];
        if (pipe(ready) < 0) {
            perror("pipe");
            return 1;
        }
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
            pid_t g = grandchild ? fork() : 0;
            if (g < 0) {
                perror("fork");
                _exit(1);
            }
            if (grandchild && g == 0) {
                for (;;)
                    pause();
            }
            /* the grandchild's pid (0: none) to the parent, which writes the pidfile */
            if (write(ready[1], &g, sizeof g) != sizeof g)
                _exit(1);
            for (;;)
                pause();
        }
        pid_t g = 0;
        close(ready[1]);
        if (read(ready[0], &g, sizeof g) != sizeof g)
            g = 0;
        close(ready[0]);
        if (pf) {
            fprintf(pf, "%d\n", (int)pid);
            if (g > 0)
                fprintf(pf, "%d\n", (int)g);
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
