/* The bearer token that mutations need: read from --token-file, or made at first start into the
 * state directory's serve.token (mode 0600, 32 random bytes as hex) and read from there later. */
#include "server.h"

#include "cbx/state_dir.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

static int read_token(const char *path, char *buf, size_t len, char *errbuf, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        int e = errno;
        snprintf(errbuf, errlen, "token file %s: %s", path, strerror(e));
        return -e;
    }
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        snprintf(errbuf, errlen, "token file %s: not a regular file", path);
        return CBX_EINVAL_CONFIG;
    }
    if (st.st_mode & 0077) {
        close(fd);
        snprintf(errbuf, errlen, "token file %s: readable by others (mode %03o); chmod 600 it",
                 path, (unsigned)(st.st_mode & 0777));
        return CBX_EINVAL_CONFIG;
    }
    ssize_t n = read(fd, buf, len - 1);
    close(fd);
    if (n < 0) {
        snprintf(errbuf, errlen, "token file %s: %s", path, strerror(errno));
        return -EIO;
    }
    buf[n] = '\0';
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' '))
        buf[--n] = '\0';
    if (n < 16 || (size_t)n >= len - 1) {
        snprintf(errbuf, errlen, "token file %s: the token must be 16 to %zu characters", path,
                 len - 2);
        return CBX_EINVAL_CONFIG;
    }
    for (ssize_t i = 0; i < n; i++)
        if (buf[i] <= ' ' || buf[i] > '~') {
            snprintf(errbuf, errlen,
                     "token file %s: the token must be printable ASCII without spaces", path);
            return CBX_EINVAL_CONFIG;
        }
    return 0;
}

int srv_token_load(const char *file, char *buf, size_t len, char *errbuf, size_t errlen)
{
    if (file)
        return read_token(file, buf, len, errbuf, errlen);
    char dir[4096], path[4200];
    cbx_err err;
    cbx_err_clear(&err);
    int r = cbx_state_dir_get(dir, sizeof dir, &err);
    if (r < 0) {
        snprintf(errbuf, errlen, "state directory: %s", err.msg[0] ? err.msg : cbx_strerror(r));
        return r;
    }
    snprintf(path, sizeof path, "%s/serve.token", dir);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0 && errno == EEXIST)
        return read_token(path, buf, len, errbuf, errlen);
    if (fd < 0) {
        int e = errno;
        snprintf(errbuf, errlen, "token file %s: %s", path, strerror(e));
        return -e;
    }
    unsigned char raw[32];
    if (getrandom(raw, sizeof raw, 0) != (ssize_t)sizeof raw) {
        close(fd);
        unlink(path);
        snprintf(errbuf, errlen, "token: no random bytes: %s", strerror(errno));
        return -EIO;
    }
    for (size_t i = 0; i < sizeof raw; i++)
        snprintf(buf + 2 * i, 3, "%02x", raw[i]);
    char line[80];
    int n = snprintf(line, sizeof line, "%s\n", buf);
    if (write(fd, line, (size_t)n) != n || fsync(fd) < 0) {
        int e = errno;
        close(fd);
        unlink(path);
        snprintf(errbuf, errlen, "token file %s: %s", path, strerror(e));
        return -e;
    }
    close(fd);
    return 0;
}
