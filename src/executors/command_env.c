/* The child's environment, and where its program is looked for.
 *
 * Both are built in the parent before the child is started: the child, which shares the
 * parent's memory until exec, only walks ready arrays. Inherited entries are borrowed from the
 * process's environ (valid while nobody calls setenv meanwhile; the loop thread builds and uses
 * them without yielding). */
#include "executors/command.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

extern char **environ;

/* "NAME=..." has the given name. */
static int entry_is(const char *entry, const char *name, size_t name_len)
{
    return strncmp(entry, name, name_len) == 0 && entry[name_len] == '=';
}

static int in_unset(const char *entry, const json_t *unset)
{
    size_t i;
    json_t *v;
    json_array_foreach(unset, i, v)
    {
        const char *name = json_string_value(v);
        if (name && entry_is(entry, name, strlen(name)))
            return 1;
    }
    return 0;
}

static int in_env(const char *entry, const json_t *env)
{
    const char *eq = strchr(entry, '=');
    if (!eq)
        return 0;
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)env, key, v)
    {
        size_t n = strlen(key);
        if ((size_t)(eq - entry) == n && strncmp(entry, key, n) == 0)
            return 1;
    }
    return 0;
}

int cbx__cmd_env_build(int clear, const json_t *env, const json_t *unset, char ***envp, int *owned,
                       const char **path)
{
    size_t nset = json_is_object(env) ? json_object_size(env) : 0;
    size_t nunset = json_is_array(unset) ? json_array_size(unset) : 0;
    *owned = 0;
    if (!clear && nset == 0 && nunset == 0) {
        *envp = environ;
        *path = getenv("PATH");
        return 0;
    }

    size_t ninherit = 0;
    if (!clear)
        for (char **e = environ; e && *e; e++)
            ninherit++;
    size_t bytes = 0;
    const char *key;
    json_t *v;
    if (nset)
        json_object_foreach((json_t *)env, key, v)
        {
            const char *val = json_string_value(v) ? json_string_value(v) : "";
            bytes += strlen(key) + 1 + strlen(val) + 1;
        }
    size_t slots = ninherit + nset + 1;
    char **out = malloc(slots * sizeof *out + bytes);
    if (!out)
        return -ENOMEM;
    char *text = (char *)(out + slots);
    size_t n = 0;
    if (!clear)
        for (char **e = environ; e && *e; e++) {
            if (nunset && in_unset(*e, unset))
                continue;
            if (nset && in_env(*e, env))
                continue;
            out[n++] = *e;
        }
    if (nset)
        json_object_foreach((json_t *)env, key, v)
        {
            const char *val = json_string_value(v) ? json_string_value(v) : "";
            size_t kl = strlen(key), vl = strlen(val);
            memcpy(text, key, kl);
            text[kl] = '=';
            memcpy(text + kl + 1, val, vl + 1);
            out[n++] = text;
            text += kl + 1 + vl + 1;
        }
    out[n] = NULL;

    *path = NULL;
    for (size_t i = 0; i < n; i++)
        if (entry_is(out[i], "PATH", 4)) {
            *path = out[i] + 5;
            break;
        }
    *envp = out;
    *owned = 1;
    return 0;
}

char **cbx__cmd_path_candidates(const char *name, const char *path)
{
    if (!path)
        path = "/usr/local/bin:/usr/bin:/bin";
    size_t nl = strlen(name), entries = 1;
    for (const char *p = path; *p; p++)
        entries += *p == ':';
    /* each entry: dir (or "." for an empty one) + '/' + name + NUL */
    size_t bytes = strlen(path) + entries * (nl + 3);
    char **out = malloc((entries + 1) * sizeof *out + bytes);
    if (!out)
        return NULL;
    char *text = (char *)(out + entries + 1);
    size_t n = 0;
    const char *p = path;
    for (;;) {
        const char *end = strchr(p, ':');
        size_t dl = end ? (size_t)(end - p) : strlen(p);
        out[n++] = text;
        if (dl == 0) {
            *text++ = '.';
        } else {
            memcpy(text, p, dl);
            text += dl;
        }
        *text++ = '/';
        memcpy(text, name, nl + 1);
        text += nl + 1;
        if (!end)
            break;
        p = end + 1;
    }
    out[n] = NULL;
    return out;
}
