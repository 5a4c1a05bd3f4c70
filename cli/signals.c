/* The second-signal exit: a handler that counts SIGINT and SIGTERM and chains to the one it
 * replaced. It does only async-signal-safe things: an atomic add, write(2), _exit(2). */
#include "signals.h"

#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>
#include <unistd.h>

#include "cli.h"

static struct sigaction chained[2]; /* SIGINT, SIGTERM: what ran before */
static atomic_int received;
static int clear_line; /* stderr is a terminal: clear a progress line before leaving */

static void on_signal(int sig, siginfo_t *info, void *uctx)
{
    if (atomic_fetch_add(&received, 1) > 0) {
        if (clear_line) {
            ssize_t w = write(STDERR_FILENO, "\r\033[K", 4);
            (void)w;
        }
        _exit(CLI_EXIT_CANCELLED);
    }
    const struct sigaction *next = &chained[sig == SIGTERM];
    if (next->sa_flags & SA_SIGINFO)
        next->sa_sigaction(sig, info, uctx);
    else if (next->sa_handler == SIG_DFL)
        _exit(CLI_EXIT_CANCELLED); /* nothing to hand it to: as the default would, but 130 */
    else if (next->sa_handler != SIG_IGN)
        next->sa_handler(sig);
}

void cli_signals_guard(void)
{
    static const int sigs[2] = {SIGINT, SIGTERM};
    clear_line = isatty(STDERR_FILENO);
    for (int i = 0; i < 2; i++) {
        struct sigaction old, sa;
        if (sigaction(sigs[i], NULL, &old) < 0)
            continue;
        if ((old.sa_flags & SA_SIGINFO) && old.sa_sigaction == on_signal)
            continue; /* already in front */
        chained[i] = old;
        sa = old;
        sa.sa_sigaction = on_signal;
        sa.sa_flags = (old.sa_flags & ~SA_RESETHAND) | SA_SIGINFO | SA_RESTART;
        sigaction(sigs[i], &sa, NULL);
    }
}
