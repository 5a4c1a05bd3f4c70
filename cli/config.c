/* The cbx configuration file: read, checked key by key, applied under the environment. */
#define _GNU_SOURCE /* asprintf */
#include "config.h"
#include "nats_opts.h"

#include "args.h"
#include "output.h"

#include "cbx/breaker.h"
#include "cbx/llm.h"
#include "cbx/policy.h"
#include "cbx/units.h"
#include "cbx/yaml.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static cli_config cfg = {
    .breaker_failures = 5, .breaker_open_ns = 30 * CBX_NS_PER_S, .breaker_probes = 1};

const cli_config *cli_config_get(void)
{
    return &cfg;
}

static const char *const top_keys[] = {"state_dir", "plugin_path", "lua_path", "breaker",
                                       "policies",  "llm",         "nats"};
static const char *const breaker_keys[] = {"failures", "open", "probes"};

/* "file:line:col: " + message, on one line. */
static int bad(const cbx_yaml_doc *doc, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int bad(const cbx_yaml_doc *doc, const char *path, const char *fmt, ...)
{
    int line = 0, col = 0;
    cbx_yaml_where(doc, path, &line, &col);
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    cli_err("%s:%d:%d: %s", doc->file, line, col, msg);
    return CLI_EXIT_USAGE;
}

static int unknown_key(const cbx_yaml_doc *doc, const char *path, const char *key,
                       const char *const *keys, size_t n, const char *section)
{
    const char *best = cli_suggest(key, keys, n);
    if (best)
        return bad(doc, path, "unknown key '%s' (did you mean '%s'?)", key, best);
    char list[200] = "";
    for (size_t i = 0; i < n; i++)
        snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", i ? ", " : "", keys[i]);
    return bad(doc, path, "unknown key '%s'%s (expected one of %s)", key, section, list);
}

static void note_where(const cbx_yaml_doc *doc, const char *path)
{
    int line = 0, col = 0;
    cbx_yaml_where(doc, path, &line, &col);
    char buf[600];
    snprintf(buf, sizeof buf, "%s:%d:%d", doc->file, line, col);
    json_object_set_new(cfg.where, path, json_string(buf));
}

/* A path of the file: ~/ is $HOME, a relative path is relative to the file's directory. */
static char *resolve(const char *file, const char *p)
{
    const char *home = getenv("HOME");
    char *out = NULL;
    if (p[0] == '~' && (p[1] == '/' || !p[1]) && home) {
        if (asprintf(&out, "%s%s", home, p + 1) < 0)
            return NULL;
    } else if (p[0] != '/') {
        const char *slash = strrchr(file, '/');
        int dir = slash ? (int)(slash - file) : 1;
        if (asprintf(&out, "%.*s/%s", dir, slash ? file : ".", p) < 0)
            return NULL;
    } else {
        out = strdup(p);
    }
    return out;
}

/* A path list: a string (colon-separated) or a sequence of strings; joined with ':'. */
static int path_list(const cbx_yaml_doc *doc, const char *key, const json_t *v, char **out)
{
    if (!json_is_string(v) && !json_is_array(v))
        return bad(doc, key, "%s: expected a path or a list of paths, got %s", key,
                   cli_json_kind(v));
    char *joined = strdup("");
    size_t i;
    json_t *item;
    json_t *one = json_is_string(v) ? json_pack("[O]", v) : json_incref((json_t *)v);
    int rc = 0;
    json_array_foreach(one, i, item)
    {
        char path[300];
        snprintf(path, sizeof path, json_is_array(v) ? "%s[%zu]" : "%s", key, i);
        if (!json_is_string(item) || !json_string_value(item)[0]) {
            rc = bad(doc, path, "%s: expected a path, got %s", key, cli_json_kind(item));
            break;
        }
        char *copy = strdup(json_string_value(item)), *save = NULL;
        for (char *e = strtok_r(copy, ":", &save); e; e = strtok_r(NULL, ":", &save)) {
            char *abs = resolve(doc->file, e), *next = NULL;
            if (abs && asprintf(&next, "%s%s%s", joined, joined[0] ? ":" : "", abs) >= 0) {
                free(joined);
                joined = next;
            }
            free(abs);
        }
        free(copy);
    }
    json_decref(one);
    if (rc) {
        free(joined);
        return rc;
    }
    note_where(doc, key);
    *out = joined;
    return 0;
}

static int uint_key(const cbx_yaml_doc *doc, const char *path, const json_t *v, uint64_t max,
                    uint64_t *out)
{
    if (!json_is_integer(v) || json_integer_value(v) < 1 || (uint64_t)json_integer_value(v) > max) {
        return bad(doc, path, "%s: expected a whole number from 1 to %llu", path,
                   (unsigned long long)max);
    }
    *out = (uint64_t)json_integer_value(v);
    note_where(doc, path);
    return 0;
}

static int breaker_section(const cbx_yaml_doc *doc, const json_t *b)
{
    if (!json_is_object(b))
        return bad(doc, "breaker", "breaker: expected a mapping, got %s", cli_json_kind(b));
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)b, k, v)
    {
        char path[300];
        snprintf(path, sizeof path, "breaker.%s", k);
        int rc = 0;
        if (strcmp(k, "failures") == 0) {
            rc = uint_key(doc, path, v, 1000000, &cfg.breaker_failures);
        } else if (strcmp(k, "probes") == 0) {
            rc = uint_key(doc, path, v, CBX_BREAKER_MAX_PROBES, &cfg.breaker_probes);
        } else if (strcmp(k, "open") == 0) {
            uint64_t ns = 0;
            if (!json_is_string(v) || cbx_duration_parse_ns(json_string_value(v), &ns) < 0 || !ns)
                return bad(doc, path, "%s: expected a duration > 0 like 30s or 1m", path);
            cfg.breaker_open_ns = ns;
            note_where(doc, path);
        } else {
            return unknown_key(doc, path, k, breaker_keys, 3, " in breaker");
        }
        if (rc)
            return rc;
    }
    return 0;
}

static int policies_section(const cbx_yaml_doc *doc, const json_t *p)
{
    if (!json_is_object(p))
        return bad(doc, "policies",
                   "policies: expected a mapping of names to policy blocks, got %s",
                   cli_json_kind(p));
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)p, k, v)
    {
        char path[300];
        snprintf(path, sizeof path, "policies.%s", k);
        if (!json_is_object(v))
            return bad(doc, path, "policy '%s': expected a policy block (a mapping), got %s", k,
                       cli_json_kind(v));
        /* checked now, so that a mistake is reported against the file, not at its use */
        cbx_policy *pol = NULL;
        cbx_err err;
        cbx_err_clear(&err);
        int r = cbx_policy_new_json(&pol, v, NULL, &err);
        cbx_policy_free(pol);
        if (r == -ENOMEM) {
            cli_err("out of memory");
            return CLI_EXIT_INTERNAL;
        }
        if (r < 0) {
            char at[600];
            snprintf(at, sizeof at, "%s%s%s", path, err.where[0] ? "." : "", err.where);
            return bad(doc, at, "policy '%s': %s", k, err.msg[0] ? err.msg : cbx_strerror(r));
        }
        json_object_set(cfg.policies, k, v);
        note_where(doc, path);
    }
    return 0;
}

/* llm: {provider_prefixes, prices}: the llm executor's process-wide tables (cbx/llm.h). */
static int llm_section(const cbx_yaml_doc *doc, const json_t *v)
{
    cbx_err err;
    cbx_err_clear(&err);
    if (cbx_llm_settings_set(v, &err) != 0) {
        /* the message starts with the key path ("llm.prices.gpt-4o: ...") */
        char path[300];
        snprintf(path, sizeof path, "%.*s", (int)strcspn(err.msg, ":"), err.msg);
        return bad(doc, path, "%s", err.msg);
    }
    note_where(doc, "llm");
    json_decref(cfg.llm);
    cfg.llm = json_deep_copy(v);
    return 0;
}

/* nats: the connection options (nats_opts.h), into the environment where it lacks them */
static int nats_section(const cbx_yaml_doc *doc, const json_t *v)
{
    char why[300], path[300];
    const char *key = "";
    if (cli_nats_config(v, doc->file, why, sizeof why, &key) != 0) {
        snprintf(path, sizeof path, "nats%s%s", key[0] ? "." : "", key);
        return bad(doc, path, "%s", why);
    }
    note_where(doc, "nats");
    return 0;
}

static int check(const cbx_yaml_doc *doc)
{
    const json_t *root = doc->root;
    if (!root)
        return 0; /* an empty file */
    if (!json_is_object(root))
        return bad(doc, "", "expected a mapping of settings, got %s", cli_json_kind(root));
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)root, k, v)
    {
        int rc;
        if (strcmp(k, "state_dir") == 0) {
            if (!json_is_string(v) || !json_string_value(v)[0])
                return bad(doc, k, "state_dir: expected a directory, got %s", cli_json_kind(v));
            cfg.state_dir = resolve(doc->file, json_string_value(v));
            note_where(doc, k);
            rc = 0;
        } else if (strcmp(k, "plugin_path") == 0) {
            rc = path_list(doc, k, v, &cfg.plugin_path);
        } else if (strcmp(k, "lua_path") == 0) {
            rc = path_list(doc, k, v, &cfg.lua_path);
        } else if (strcmp(k, "breaker") == 0) {
            rc = breaker_section(doc, v);
        } else if (strcmp(k, "policies") == 0) {
            rc = policies_section(doc, v);
        } else if (strcmp(k, "llm") == 0) {
            rc = llm_section(doc, v);
        } else if (strcmp(k, "nats") == 0) {
            rc = nats_section(doc, v);
        } else {
            rc = unknown_key(doc, k, k, top_keys, 7, "");
        }
        if (rc)
            return rc;
    }
    return 0;
}

static char *env_copy(const char *name)
{
    const char *v = getenv(name);
    return v && *v ? strdup(v) : NULL;
}

int cli_config_load(const char *path)
{
    cfg.policies = json_object();
    cfg.where = json_object();
    cfg.env_state_dir = env_copy("CBX_STATE_DIR");
    cfg.env_plugin_path = env_copy("CBX_PLUGIN_PATH");
    cfg.env_lua_path = env_copy("CBX_LUA_PATH");
    const char *what = "--config";
    if (!path) {
        path = getenv("CBX_CONFIG");
        what = "CBX_CONFIG";
        if (path && !*path)
            path = NULL;
    }
    char def[4096];
    if (!path) {
        const char *xdg = getenv("XDG_CONFIG_HOME"), *home = getenv("HOME");
        if (xdg && xdg[0] == '/')
            snprintf(def, sizeof def, "%s/cbx/config.yaml", xdg);
        else if (home && *home)
            snprintf(def, sizeof def, "%s/.config/cbx/config.yaml", home);
        else
            return 0;
        struct stat st;
        if (stat(def, &st) < 0 && errno == ENOENT)
            return 0;
        path = def;
        what = NULL;
    }
    struct stat st;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
        cli_err("%s%s'%s' is a directory, not a configuration file", what ? what : "",
                what ? ": " : "", path);
        return CLI_EXIT_USAGE;
    }
    cbx_yaml_doc doc;
    cbx_err err;
    cbx_err_clear(&err);
    int r = cbx_yaml_load_file(path, &doc, &err);
    if (r < 0) {
        char buf[900];
        if (r == CBX_EPARSE)
            cli_err("%s", cbx_err_format(&err, buf, sizeof buf));
        else
            cli_err("%s%scannot read configuration '%s': %s", what ? what : "", what ? ": " : "",
                    path, strerror(-r));
        cbx_yaml_doc_clear(&doc);
        return r == -ENOMEM ? CLI_EXIT_INTERNAL : CLI_EXIT_USAGE;
    }
    cfg.file = strdup(path);
    int rc = check(&doc);
    cbx_yaml_doc_clear(&doc);
    if (rc)
        return rc;
    /* the environment wins over the file: fill only what it lacks */
    if (cfg.plugin_path && !cfg.env_plugin_path)
        setenv("CBX_PLUGIN_PATH", cfg.plugin_path, 1);
    if (cfg.lua_path && !cfg.env_lua_path)
        setenv("CBX_LUA_PATH", cfg.lua_path, 1);
    return 0;
}

/* ---- --policy NAME|FILE ------------------------------------------------------------------- */

int cli_config_policy(const char *arg, const char *flag, json_t **out)
{
    json_t *named = json_object_get(cfg.policies, arg);
    if (named) {
        *out = json_deep_copy(named);
        return 0;
    }
    struct stat st;
    if (stat(arg, &st) < 0 && !strchr(arg, '/') && !strchr(arg, '.')) {
        /* a name, not a path */
        const char *names[64];
        size_t n = 0;
        const char *k;
        json_t *v;
        json_object_foreach(cfg.policies, k, v) if (n < 64) names[n++] = k;
        const char *best = cli_suggest(arg, names, n);
        if (best)
            cli_err("%s: no policy named '%s' (did you mean '%s'?) and no such file", flag, arg,
                    best);
        else
            cli_err("%s: no policy named '%s' in %s and no such file", flag, arg,
                    cfg.file ? cfg.file : "the configuration (there is none)");
        return CLI_EXIT_USAGE;
    }
    cbx_yaml_doc doc;
    cbx_err err;
    cbx_err_clear(&err);
    int r = cbx_yaml_load_file(arg, &doc, &err);
    if (r < 0) {
        char buf[900];
        if (r == CBX_EPARSE)
            cli_err("%s: %s", flag, cbx_err_format(&err, buf, sizeof buf));
        else
            cli_err("%s: cannot read '%s': %s", flag, arg, strerror(-r));
        cbx_yaml_doc_clear(&doc);
        return CLI_EXIT_USAGE;
    }
    *out = doc.root ? json_incref(doc.root) : json_null();
    cbx_yaml_doc_clear(&doc);
    return 0;
}
