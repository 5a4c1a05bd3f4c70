/* cmd_alloc MIB [BURN_MS]: allocates MIB mebibytes in 1 MiB blocks and touches every page, then
 * burns CPU for BURN_MS milliseconds. Exits 0, or 2 with "out of memory after N MiB" on stderr
 * when an allocation fails. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static char *blocks[1 << 16]; /* kept reachable: the memory is in use, not leaked */

int main(int argc, char **argv)
{
    if (argc < 2)
        return 64;
    long mib = atol(argv[1]);
    double burn = argc > 2 ? atof(argv[2]) : 0;
    if (mib > (long)(sizeof blocks / sizeof blocks[0]))
        mib = (long)(sizeof blocks / sizeof blocks[0]);
    for (long i = 0; i < mib; i++) {
        char *p = blocks[i] = malloc(1 << 20);
        if (!p) {
            fprintf(stderr, "out of memory after %ld MiB\n", i);
            return 2;
        }
        memset(p, (int)(i & 0xff) | 1, 1 << 20);
    }
    volatile unsigned long x = 1;
    double end = now_ms() + burn;
    while (now_ms() < end)
        for (int i = 0; i < 100000; i++)
            x = x * 6364136223846793005ul + 1442695040888963407ul;
    printf("allocated %ld MiB\n", mib);
    return 0;
}
