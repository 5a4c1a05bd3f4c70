/* Where cbx keeps its state (the journal, the host-wide breaker store). */
#include "cbx/journal.h"

#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* mkdir -p: each missing directory is made 0700; existing ones are left as they are. */
static int mkdir_p(char *path)
{
    for (char *p = path + 1;; p++) {
        if (*p != '/' && *p != '\0')
            continue;
        char c = *p;
        *p = '\0';
        int rc = mkdir(path, 0700);
        int e = errno;
        *p = c;
        if (rc != 0 && e != EEXIST)
            return -e;
        if (c == '\0')
            break;
    }
    struct stat st;
    if (stat(path, &st) != 0)
        return -errno;
    return S_ISDIR(st.st_mode) ? 0 : -ENOTDIR;
}

static const char *home_dir(char *pwbuf, size_t len)
{
    const char *home = getenv("HOME");
    if (home && *home)
        return home;
    struct passwd pw, *res = NULL;
    if (getpwuid_r(getuid(), &pw, pwbuf, len, &res) == 0 && res && res->pw_dir && *res->pw_dir)
        return res->pw_dir;
    return NULL;
}

int cbx_state_dir(char *buf, size_t len)
{
    if (!buf || len == 0)
        return -EINVAL;
    buf[0] = '\0';
    const char *v;
    char pwbuf[4096];
    int n;
    if ((v = getenv("CBX_STATE_DIR")) && *v) {
        n = snprintf(buf, len, "%s", v);
    } else if ((v = getenv("XDG_STATE_HOME")) && v[0] == '/') {
        /* The XDG base directory spec says a relative value is to be ignored. */
        n = snprintf(buf, len, "%s/cbx", v);
    } else if ((v = home_dir(pwbuf, sizeof pwbuf))) {
        n = snprintf(buf, len, "%s/.local/state/cbx", v);
    } else {
        return -ENOENT;
    }
    if (n < 0 || (size_t)n >= len) {
        buf[0] = '\0';
        return -ENAMETOOLONG;
    }
    for (size_t i = (size_t)n; i > 1 && buf[i - 1] == '/'; i--)
        buf[i - 1] = '\0';
    return mkdir_p(buf);
}
