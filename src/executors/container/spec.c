/* The container executor's parameters: their checks, and the create request they make. */
#include "executors/container/container.h"

#include "executors/exit_params.h"

#include "core/problems.h"
#include "core/real_text.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

/* ---- words and sizes ---------------------------------------------------------------------- */

json_t *cbx__ctr_split_words(const char *s, cbx_err *err)
{
    json_t *words = json_array();
    size_t cap = strlen(s) + 1;
    char *w = malloc(cap);
    if (!words || !w) {
        json_decref(words);
        free(w);
        cbx_err_set(err, -ENOMEM, "command: out of memory");
        return NULL;
    }
    size_t n = 0;
    int in_word = 0;
    char quote = 0;
    for (const char *p = s;; p++) {
        char ch = *p;
        if (ch == '\0') {
            if (quote) {
                json_decref(words);
                free(w);
                cbx_err_set(err, CBX_EINVAL_CONFIG, "command: unterminated %s quote",
                            quote == '\'' ? "single" : "double");
                return NULL;
            }
            break;
        }
        if (quote == '\'') {
            if (ch == '\'')
                quote = 0;
            else
                w[n++] = ch;
            continue;
        }
        if (quote == '"') {
            if (ch == '"')
                quote = 0;
            else if (ch == '\\' && p[1] && strchr("\"\\$`", p[1]))
                w[n++] = *++p;
            else
                w[n++] = ch;
            continue;
        }
        if (ch == ' ' || ch == '\t' || ch == '\n') {
            if (in_word) {
                json_array_append_new(words, json_stringn(w, n));
                n = 0;
                in_word = 0;
            }
            continue;
        }
        in_word = 1;
        if (ch == '\'' || ch == '"')
            quote = ch;
        else if (ch == '\\' && p[1])
            w[n++] = *++p;
        else
            w[n++] = ch;
    }
    if (in_word)
        json_array_append_new(words, json_stringn(w, n));
    free(w);
    return words;
}

int cbx__ctr_parse_bytes(const json_t *v, int64_t *out)
{
    if (json_is_integer(v)) {
        if (json_integer_value(v) <= 0)
            return -1;
        *out = json_integer_value(v);
        return 0;
    }
    if (!json_is_string(v))
        return -1;
    const char *s = json_string_value(v);
    char *end;
    errno = 0;
    double x = strtod(s, &end);
    if (end == s || errno || !(x > 0) || !isfinite(x))
        return -1;
    while (*end == ' ')
        end++;
    static const struct {
        const char *suffix;
        double mult;
    } units[] = {{"", 1},
                 {"b", 1},
                 {"k", 1024.0},
                 {"kb", 1024.0},
                 {"kib", 1024.0},
                 {"m", 1048576.0},
                 {"mb", 1048576.0},
                 {"mib", 1048576.0},
                 {"g", 1073741824.0},
                 {"gb", 1073741824.0},
                 {"gib", 1073741824.0}};
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        if (strcasecmp(end, units[i].suffix) == 0) {
            double b = x * units[i].mult;
            if (b < 1 || b > 9.0e18)
                return -1;
            *out = (int64_t)b;
            return 0;
        }
    }
    return -1;
}

/* ---- validation --------------------------------------------------------------------------- */

/* A volume name as the engines take it: [A-Za-z0-9][A-Za-z0-9_.-]*. */
static int volume_name(const char *s, size_t n)
{
    if (n == 0 || !isalnum((unsigned char)s[0]))
        return 0;
    for (size_t i = 1; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && !strchr("_.-", s[i]))
            return 0;
    return 1;
}

static void check_volume(cbx__problems *pr, size_t i, const json_t *v)
{
    char where[32];
    snprintf(where, sizeof where, "volumes[%zu]", i);
    if (!cbx__c_string(v)) {
        cbx__problem(pr, where, "expected a string host:container[:ro]");
        return;
    }
    const char *s = json_string_value(v);
    const char *c1 = strchr(s, ':');
    const char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
    if (!c1 || c1 == s || (c2 && strchr(c2 + 1, ':'))) {
        cbx__problem(pr, where, "'%.100s' is not host:container[:ro]", s);
        return;
    }
    size_t hlen = (size_t)(c1 - s);
    size_t clen = c2 ? (size_t)(c2 - c1 - 1) : strlen(c1 + 1);
    if (clen == 0 || c1[1] != '/') {
        cbx__problem(pr, where, "'%.100s': the container path must be absolute", s);
        return;
    }
    if (c2) {
        const char *o = c2 + 1;
        if (strcmp(o, "ro") != 0 && strcmp(o, "rw") != 0) {
            cbx__problem(pr, where, "'%.100s': the option must be ro or rw, not '%.20s'", s, o);
            return;
        }
    }
    if (s[0] == '/') {
        char host[4096];
        snprintf(host, sizeof host, "%.*s", (int)hlen, s);
        struct stat st;
        if (stat(host, &st) != 0)
            cbx__problem(pr, where, "host path %.200s: %s", host, strerror(errno));
    } else if (!volume_name(s, hlen)) {
        cbx__problem(pr, where, "'%.100s': the host side must be an absolute path or a volume name",
                     s);
    }
}

int cbx__ctr_spec_validate(const json_t *p, cbx_err *err)
{
    cbx__problems pr = {.err = err};
    char where[80];
    const json_t *image = json_object_get(p, "image");
    if (!cbx__c_string(image) || json_string_length(image) == 0)
        cbx__problem(&pr, "image", "expected a non-empty image name");

    const json_t *cmd = json_object_get(p, "command");
    if (json_is_string(cmd)) {
        cbx_err e;
        cbx_err_clear(&e);
        json_t *w = cbx__c_string(cmd) ? cbx__ctr_split_words(json_string_value(cmd), &e) : NULL;
        if (!cbx__c_string(cmd))
            cbx__problem(&pr, "command", "expected a string without NUL characters");
        else if (!w)
            cbx__problem(&pr, "command", "%s", e.msg + strlen("command: "));
        else if (json_array_size(w) == 0)
            cbx__problem(&pr, "command", "no words in the command string");
        json_decref(w);
    } else if (json_is_array(cmd)) {
        size_t i;
        json_t *v;
        if (json_array_size(cmd) == 0)
            cbx__problem(&pr, "command", "an empty array (leave command out for the image's own)");
        json_array_foreach(cmd, i, v)
        {
            snprintf(where, sizeof where, "command[%zu]", i);
            if (!cbx__c_string(v))
                cbx__problem(&pr, where, "expected a string without NUL characters");
        }
    } else if (json_is_number(cmd) || json_is_boolean(cmd)) {
        /* one word: "command: true" in YAML, -p command=true on the command line */
    } else if (cmd && !json_is_null(cmd)) {
        cbx__problem(&pr, "command", "expected a string (split into words) or an array of strings");
    }

    const json_t *env = json_object_get(p, "environment");
    if (env) {
        const char *key;
        json_t *v;
        json_object_foreach((json_t *)env, key, v)
        {
            snprintf(where, sizeof where, "environment.%.58s", key);
            if (!key[0] || strchr(key, '='))
                cbx__problem(&pr, where, "a variable name must be non-empty and without '='");
            if (!cbx__c_string(v) && !json_is_number(v) && !json_is_boolean(v))
                cbx__problem(&pr, where, "expected a string, number or boolean");
        }
    }
    const json_t *labels = json_object_get(p, "labels");
    if (labels) {
        const char *key;
        json_t *v;
        json_object_foreach((json_t *)labels, key, v)
        {
            snprintf(where, sizeof where, "labels.%.58s", key);
            if (!key[0])
                cbx__problem(&pr, where, "a label name must be non-empty");
            else if (strncmp(key, "io.cbx.", 7) == 0)
                cbx__problem(&pr, where, "io.cbx.* labels are cbx's own");
            if (!cbx__c_string(v))
                cbx__problem(&pr, where, "expected a string");
        }
    }
    const json_t *vols = json_object_get(p, "volumes");
    if (vols) {
        size_t i;
        json_t *v;
        json_array_foreach(vols, i, v)
        {
            check_volume(&pr, i, v);
        }
    }
    const json_t *mem = json_object_get(p, "memory");
    int64_t bytes;
    if (mem && cbx__ctr_parse_bytes(mem, &bytes) < 0)
        cbx__problem(&pr, "memory",
                     "expected bytes: an integer, or a string such as \"256m\" or "
                     "\"1g\"");
    cbx__exit_codes_check(p, &pr);
    /* the parameter, else DOCKER_HOST (read now: a tcp:// value is refused at submission) */
    char path[256];
    cbx_err e;
    cbx_err_clear(&e);
    if (cbx__ctr_socket_path(json_string_value(json_object_get(p, "docker_host")), path,
                             sizeof path, &e) < 0)
        cbx__problem(&pr, e.where, "%s", e.msg + strlen(e.where) + 2);
    return pr.n ? CBX_EINVAL_CONFIG : 0;
}

/* ---- the create request ------------------------------------------------------------------- */

static json_t *env_array(const json_t *env)
{
    json_t *a = json_array();
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)env, key, v)
    {
        char num[64];
        const char *text = num;
        if (json_is_string(v))
            text = json_string_value(v);
        else if (json_is_integer(v))
            snprintf(num, sizeof num, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        else if (json_is_real(v))
            cbx__real_plain(json_real_value(v), num);
        else
            text = json_is_true(v) ? "true" : "false";
        size_t n = strlen(key) + strlen(text) + 2;
        char *kv = malloc(n);
        if (!kv)
            continue;
        snprintf(kv, n, "%s=%s", key, text);
        json_array_append_new(a, json_string(kv));
        free(kv);
    }
    return a;
}

json_t *cbx__ctr_spec_build(const json_t *p, const char *execution_id, cbx_err *err)
{
    json_t *body = json_object(), *hc = json_object(), *labels = json_object();
    if (!body || !hc || !labels) {
        json_decref(body);
        json_decref(hc);
        json_decref(labels);
        cbx_err_set(err, -ENOMEM, "out of memory");
        return NULL;
    }
    json_object_set(body, "Image", json_object_get(p, "image"));
    const json_t *cmd = json_object_get(p, "command");
    if (json_is_string(cmd)) {
        json_t *w = cbx__ctr_split_words(json_string_value(cmd), err);
        if (!w) {
            json_decref(body);
            json_decref(hc);
            json_decref(labels);
            return NULL;
        }
        json_object_set_new(body, "Cmd", w);
    } else if (json_is_array(cmd)) {
        json_object_set(body, "Cmd", (json_t *)cmd);
    } else if (json_is_number(cmd) || json_is_boolean(cmd)) {
        char *word = json_dumps(cmd, JSON_ENCODE_ANY);
        json_object_set_new(body, "Cmd", json_pack("[s]", word ? word : ""));
        free(word);
    }
    const json_t *env = json_object_get(p, "environment");
    if (env)
        json_object_set_new(body, "Env", env_array(env));
    const char *s;
    if ((s = json_string_value(json_object_get(p, "workdir"))) != NULL)
        json_object_set_new(body, "WorkingDir", json_string(s));
    if ((s = json_string_value(json_object_get(p, "user"))) != NULL)
        json_object_set_new(body, "User", json_string(s));

    const json_t *user_labels = json_object_get(p, "labels");
    if (user_labels)
        json_object_update(labels, (json_t *)user_labels);
    int remove = !json_is_false(json_object_get(p, "remove"));
    json_object_set_new(labels, CBX__CTR_LABEL_OWNER, json_string(cbx__ctr_owner_label()));
    json_object_set_new(labels, CBX__CTR_LABEL_REMOVE, json_string(remove ? "1" : "0"));
    if (execution_id)
        json_object_set_new(labels, CBX__CTR_LABEL_EXEC, json_string(execution_id));
    json_object_set_new(body, "Labels", labels);

    const char *net = json_string_value(json_object_get(p, "network"));
    if (!net)
        net = "none";
    json_object_set_new(hc, "NetworkMode", json_string(net));
    if (strcmp(net, "none") == 0)
        json_object_set_new(body, "NetworkDisabled", json_true());
    const json_t *vols = json_object_get(p, "volumes");
    if (json_array_size(vols) > 0)
        json_object_set(hc, "Binds", (json_t *)vols);
    int64_t mem;
    if (cbx__ctr_parse_bytes(json_object_get(p, "memory"), &mem) == 0) {
        json_object_set_new(hc, "Memory", json_integer(mem));
        json_object_set_new(hc, "MemorySwap", json_integer(mem)); /* no swap beyond it */
    }
    const json_t *cpus = json_object_get(p, "cpus");
    if (json_is_number(cpus))
        json_object_set_new(hc, "NanoCpus",
                            json_integer((json_int_t)llround(json_number_value(cpus) * 1e9)));
    const json_t *pids = json_object_get(p, "pids_limit");
    if (json_is_integer(pids))
        json_object_set_new(hc, "PidsLimit", json_integer(json_integer_value(pids)));
    json_object_set_new(body, "HostConfig", hc);
    return body;
}
