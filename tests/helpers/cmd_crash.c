/* cmd_crash: dies of SIGSEGV (the default action, even under a sanitizer that would catch it). */
#include <signal.h>
#include <stdio.h>
#include <string.h>

int main(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = SIG_DFL;
    sigaction(SIGSEGV, &sa, NULL);
    fputs("about to crash\n", stdout);
    fflush(stdout);
    raise(SIGSEGV);
    return 0;
}
