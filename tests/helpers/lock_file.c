/* lock_file PATH [NAME]: takes a write lock with an open file description lock, as a cbx process
 * holds a breaker store's locks: on the whole of PATH, or with NAME only on the record of the
 * breaker NAME in the store file PATH (its first byte; offsets as docs/breaker-store.md gives
 * them). Writes "locked" on stdout and holds the lock until stdin closes or a signal ends the
 * process. Exits 2 when it cannot lock, or finds no such breaker. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    if (argc != 2 && argc != 3) {
        fprintf(stderr, "usage: lock_file PATH [NAME]\n");
        return 2;
    }
    int fd = open(argv[1], O_RDWR | O_CLOEXEC);
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0};
    if (fd >= 0 && argc == 3) {
        /* header 4096 bytes; records of 32768 bytes: u32 state (1 = in use), u32 name length,
         * ..., the name at 160 */
        size_t len = strlen(argv[2]);
        off_t found = -1;
        for (off_t k = 0; k < 512 && found < 0; k++) {
            off_t at = 4096 + k * 32768;
            uint32_t head[2];
            char name[201] = {0};
            if (pread(fd, head, sizeof head, at) != (ssize_t)sizeof head ||
                pread(fd, name, 200, at + 160) != 200)
                break;
            if (head[0] == 1 && head[1] == len && memcmp(name, argv[2], len) == 0)
                found = at;
        }
        if (found < 0) {
            fprintf(stderr, "lock_file %s: no breaker named '%s'\n", argv[1], argv[2]);
            return 2;
        }
        fl.l_start = found;
        fl.l_len = 1;
    }
    if (fd < 0 || fcntl(fd, F_OFD_SETLKW, &fl) < 0) {
        fprintf(stderr, "lock_file %s: %s\n", argv[1], strerror(errno));
        return 2;
    }
    printf("locked\n");
    fflush(stdout);
    char buf[64];
    while (read(STDIN_FILENO, buf, sizeof buf) > 0) {
    }
    return 0;
}
