/* NATS connection options from flags and the configuration file, handed to libcbx through the
 * environment it reads (nats_opts.h). */
#include "nats_opts.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct setting {
    int id;
    const char *key; /* in the configuration file */
    const char *env;
    int path, flag; /* a file path (relative to the configuration file); a yes/no */
} setting;

static const setting settings[] = {
    {0, "url", "NATS_URL", 0, 0},
    {CLI_OPT_NATS_TOKEN, "token", "NATS_TOKEN", 0, 0},
    {CLI_OPT_NATS_USER, "user", "NATS_USER", 0, 0},
    {CLI_OPT_NATS_PASSWORD, "password", "NATS_PASSWORD", 0, 0},
    {CLI_OPT_NATS_CREDS, "creds", "NATS_CREDS", 1, 0},
    {CLI_OPT_NATS_CA, "ca", "NATS_CA", 1, 0},
    {CLI_OPT_NATS_CERT, "cert", "NATS_CERT", 1, 0},
    {CLI_OPT_NATS_KEY, "key", "NATS_KEY", 1, 0},
    {CLI_OPT_NATS_TLS, "tls", "NATS_TLS", 0, 1},
};
#define NSETTINGS (sizeof settings / sizeof settings[0])

const char cli_nats_opts_help[] =
    "  --nats-token TOKEN      authenticate with a token ($NATS_TOKEN)\n"
    "  --nats-user USER        authenticate as USER ($NATS_USER), with --nats-password\n"
    "  --nats-password PASS    ($NATS_PASSWORD)\n"
    "  --nats-creds FILE       a .creds file: JWT and NKey seed ($NATS_CREDS)\n"
    "  --nats-ca FILE          TLS: the CA certificates (PEM) to verify the server ($NATS_CA)\n"
    "  --nats-cert FILE        TLS: a client certificate ($NATS_CERT), with --nats-key FILE\n"
    "  --nats-key FILE         ($NATS_KEY)\n"
    "  --nats-tls              require TLS ($NATS_TLS=1; a tls:// URL or --nats-ca imply it)\n";

int cli_nats_option(int id, const char *val)
{
    for (size_t i = 0; i < NSETTINGS; i++) {
        if (settings[i].id && settings[i].id == id) {
            setenv(settings[i].env, settings[i].flag ? "1" : val, 1);
            return 1;
        }
    }
    return 0;
}

int cli_nats_config(const json_t *section, const char *file, char *why, size_t len,
                    const char **bad)
{
    *bad = "";
    if (!json_is_object(section)) {
        snprintf(why, len,
                 "nats: expected a mapping (url, token, user, password, creds, ca, "
                 "cert, key, tls)");
        return -1;
    }
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)section, k, v)
    {
        const setting *s = NULL;
        for (size_t i = 0; i < NSETTINGS && !s; i++)
            if (strcmp(settings[i].key, k) == 0)
                s = &settings[i];
        *bad = k;
        if (!s) {
            snprintf(why, len,
                     "nats.%s: unknown key (url, token, user, password, creds, ca, cert, key, "
                     "tls)",
                     k);
            return -1;
        }
        if (s->flag ? !json_is_boolean(v) : !(json_is_string(v) && json_string_length(v))) {
            snprintf(why, len, "nats.%s: expected %s", k,
                     s->flag ? "true or false" : "a non-empty string");
            return -1;
        }
        const char *have = getenv(s->env);
        if (have && *have)
            continue; /* the environment wins over the file */
        if (s->flag) {
            if (json_is_true(v))
                setenv(s->env, "1", 1);
            continue;
        }
        const char *text = json_string_value(v);
        char path[PATH_MAX];
        if (s->path && text[0] != '/' && file && strchr(file, '/')) {
            /* relative to the configuration file's directory */
            snprintf(path, sizeof path, "%.*s/%s", (int)(strrchr(file, '/') - file), file, text);
            text = path;
        }
        setenv(s->env, text, 1);
    }
    *bad = "";
    return 0;
}
