/* cmd_flood STDOUT_BYTES [STDERR_BYTES]: writes that many bytes ('x' lines) to each stream,
 * stdout first, in 1 MiB writes. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int flood(int fd, unsigned long long n)
{
    static char buf[1 << 20];
    if (!buf[0]) {
        memset(buf, 'x', sizeof buf);
        for (size_t i = 79; i < sizeof buf; i += 80)
            buf[i] = '\n';
    }
    while (n > 0) {
        size_t chunk = n < sizeof buf ? (size_t)n : sizeof buf;
        ssize_t w = write(fd, buf, chunk);
        if (w <= 0)
            return 1;
        n -= (unsigned long long)w;
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return 64;
    if (flood(1, strtoull(argv[1], NULL, 10)))
        return 1;
    if (argc > 2 && flood(2, strtoull(argv[2], NULL, 10)))
        return 1;
    return 0;
}
