/* The flows and workflows directories: a definition's file by its name, the names a directory
 * holds, and the first problem of a definition that does not load, as one line. */
#include "server.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

static const char *const exts[] = {".yaml", ".yml", ".json"};

int srv_def_path(const char *dir, const char *name, char *path, size_t len)
{
    if (!dir || !name[0] || strlen(name) > 100 || name[0] == '.')
        return -ENOENT;
    for (const char *p = name; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '_' || *p == '-' || *p == '.'))
            return -ENOENT;
    for (size_t i = 0; i < sizeof exts / sizeof *exts; i++) {
        snprintf(path, len, "%s/%s%s", dir, name, exts[i]);
        FILE *f = fopen(path, "r");
        if (f) {
            fclose(f);
            return 0;
        }
    }
    return -ENOENT;
}

int srv_def_next(DIR *dir, char name[256])
{
    struct dirent *de;
    while (dir && (de = readdir(dir))) {
        snprintf(name, 256, "%s", de->d_name);
        char *dot = strrchr(name, '.');
        if (!dot || name[0] == '.')
            continue;
        for (size_t i = 0; i < sizeof exts / sizeof *exts; i++)
            if (strcmp(dot, exts[i]) == 0) {
                *dot = '\0';
                return 1;
            }
    }
    return 0;
}

void srv_diag_line(const cbx_diag *d, char *buf, size_t len)
{
    cbx_err e;
    cbx_diag_first(d, &e);
    if (e.line)
        snprintf(buf, len, "%.200s:%d:%d: %.400s", e.where, e.line, e.col, e.msg);
    else if (e.where[0])
        snprintf(buf, len, "%.200s: %.400s", e.where, e.msg);
    else
        snprintf(buf, len, "%.400s", e.msg);
}
