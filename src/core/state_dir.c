/* Where cbx keeps its state (the journal, the host-wide breaker store), and the rules it must
 * meet: see cbx/state_dir.h. */
#include "cbx/state_dir.h"
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

int cbx_state_dir_check(const char *dir, cbx_err *err)
{
    struct stat st;
    if (stat(dir, &st) != 0) {
        int e = errno;
        return cbx_err_set_at(err, -e, dir, 0, 0, "state directory %s: %s", dir, strerror(e));
    }
    if (!S_ISDIR(st.st_mode))
        return cbx_err_set_at(err, -ENOTDIR, dir, 0, 0, "state directory %s: not a directory", dir);
    if (st.st_uid != geteuid())
        return cbx_err_set_at(err, -EPERM, dir, 0, 0,
                              "state directory %s is owned by uid %u, not by this user (uid %u): "
                              "refusing it; use a directory of your own",
                              dir, (unsigned)st.st_uid, (unsigned)geteuid());
    if (st.st_mode & (S_IWGRP | S_IWOTH))
        return cbx_err_set_at(err, -EPERM, dir, 0, 0,
                              "state directory %s can be written by %s (mode %04o): refusing it, "
                              "as files planted there would be opened; use a directory only you "
                              "can write (chmod go-w %s)",
                              dir, st.st_mode & S_IWOTH ? "anyone" : "its group",
                              (unsigned)(st.st_mode & 07777), dir);
    return 0;
}

int cbx_state_dir(char *buf, size_t len)
{
    return cbx_state_dir_get(buf, len, NULL);
}

int cbx_state_dir_get(char *buf, size_t len, cbx_err *err)
{
    int r = cbx_state_dir_path(buf, len, err);
    if (r)
        return r;
    r = mkdir_p(buf);
    if (r)
        return cbx_err_set_at(err, r, buf, 0, 0, "state directory %s: %s", buf, strerror(-r));
    return cbx_state_dir_check(buf, err);
}

int cbx_state_dir_path(char *buf, size_t len, cbx_err *err)
{
    if (!buf || len == 0)
        return cbx_err_set(err, -EINVAL, "state directory: no buffer");
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
        return cbx_err_set(err, -ENOENT,
                           "state directory: no CBX_STATE_DIR, XDG_STATE_HOME or home directory");
    }
    if (n < 0 || (size_t)n >= len) {
        buf[0] = '\0';
        return cbx_err_set(err, -ENAMETOOLONG, "state directory: path too long");
    }
    for (size_t i = (size_t)n; i > 1 && buf[i - 1] == '/'; i--)
        buf[i - 1] = '\0';
    return 0;
}
