/* Option parsing and the value forms of the cbx command line. */
#include "args.h"

#include "output.h"

#include "cbx/units.h"
#include "cbx/yaml.h"
#include "core/text.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- options ------------------------------------------------------------------------------- */

static struct {
    int on;
    const cli_opt *table;
} probe;

void cli_args_probe_begin(void)
{
    probe.on = 1;
    probe.table = NULL;
}

const cli_opt *cli_args_probe_end(void)
{
    probe.on = 0;
    return probe.table;
}

void cli_args_init(cli_args *a, const char *cmd, int argc, char **argv, const cli_opt *opts)
{
    *a = (cli_args){.cmd = cmd, .argc = argc, .argv = argv, .i = 1, .opts = opts, .rest = argc};
    if (probe.on) {
        a->probe = 1;
        if (!probe.table)
            probe.table = opts;
    }
}

const char *cli_args_name(const cli_args *a, int id)
{
    static char buf[80];
    for (const cli_opt *o = a->opts; o->name; o++)
        if (o->id == id) {
            snprintf(buf, sizeof buf, "--%s", o->name);
            return buf;
        }
    return "?";
}

static void unknown_option(const cli_args *a, const char *shown, const char *name)
{
    const char *cands[64];
    size_t n = 0;
    for (const cli_opt *o = a->opts; o->name && n < 64; o++)
        cands[n++] = o->name;
    const char *best = cli_suggest(name, cands, n);
    if (best)
        cli_err("%s: unknown option '%s' (did you mean '--%s'?)", a->cmd, shown, best);
    else
        cli_err("%s: unknown option '%s' (see 'cbx %s --help')", a->cmd, shown, a->cmd);
}

static int take_value(cli_args *a, const cli_opt *o, const char *attached, const char **val)
{
    if (attached) {
        *val = attached;
        return o->id;
    }
    if (a->i >= a->argc) {
        if (o->short_name && !o->name[1])
            cli_err("%s: option '-%c' needs a value", a->cmd, o->short_name);
        else
            cli_err("%s: option '--%s' needs a value", a->cmd, o->name);
        return CLI_ARGS_ERROR;
    }
    *val = a->argv[a->i++];
    return o->id;
}

static int next_short(cli_args *a, const char **val)
{
    char c = *a->cluster++;
    const cli_opt *o = a->opts;
    while (o->name && o->short_name != c)
        o++;
    if (!o->name) {
        char shown[3] = {'-', c, 0};
        a->cluster = NULL;
        cli_err("%s: unknown option '%s' (see 'cbx %s --help')", a->cmd, shown, a->cmd);
        return CLI_ARGS_ERROR;
    }
    if (o->has_arg) {
        const char *attached = *a->cluster ? a->cluster : NULL;
        a->cluster = NULL;
        return take_value(a, o, attached, val);
    }
    if (!*a->cluster)
        a->cluster = NULL;
    *val = NULL;
    return o->id;
}

int cli_args_next(cli_args *a, const char **val)
{
    *val = NULL;
    if (a->probe)
        return CLI_ARGS_ERROR;
    if (a->cluster)
        return next_short(a, val);
    if (a->i >= a->argc) {
        a->rest = a->argc;
        return CLI_ARGS_END;
    }
    const char *s = a->argv[a->i];
    if (strcmp(s, "--") == 0) {
        a->dashdash = 1;
        a->rest = a->i + 1;
        a->i = a->argc;
        return CLI_ARGS_END;
    }
    a->i++;
    if (s[0] == '-' && s[1] == '-') {
        const char *name = s + 2;
        const char *eq = strchr(name, '=');
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        for (const cli_opt *o = a->opts; o->name; o++) {
            if (strlen(o->name) != len || strncmp(o->name, name, len) != 0)
                continue;
            if (!o->has_arg && eq) {
                cli_err("%s: option '--%s' takes no value", a->cmd, o->name);
                return CLI_ARGS_ERROR;
            }
            return o->has_arg ? take_value(a, o, eq ? eq + 1 : NULL, val) : o->id;
        }
        char word[128];
        snprintf(word, sizeof word, "%.*s", (int)(len < 120 ? len : 120), name);
        char shown[132];
        snprintf(shown, sizeof shown, "--%s", word);
        unknown_option(a, shown, word);
        return CLI_ARGS_ERROR;
    }
    if (s[0] == '-' && s[1]) {
        a->cluster = s + 1;
        return next_short(a, val);
    }
    *val = s;
    return CLI_ARGS_POSITIONAL;
}

/* ---- value forms --------------------------------------------------------------------------- */

int cli_parse_duration(const char *flag, const char *text, uint64_t *out_ns)
{
    if (cbx_duration_parse_ns(text, out_ns) == 0)
        return 0;
    cli_err("%s: expected a duration like 250ms or 5s, got '%s'", flag, text);
    return CLI_ARGS_ERROR;
}

int cli_parse_uint(const char *flag, const char *text, uint64_t min, uint64_t max, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = (text[0] >= '0' && text[0] <= '9') ? strtoull(text, &end, 10) : 0;
    if (!(text[0] >= '0' && text[0] <= '9') || *end || errno == ERANGE || v < min || v > max) {
        if (max == UINT64_MAX)
            cli_err("%s: expected a whole number >= %llu, got '%s'", flag, (unsigned long long)min,
                    text);
        else
            cli_err("%s: expected a whole number from %llu to %llu, got '%s'", flag,
                    (unsigned long long)min, (unsigned long long)max, text);
        return CLI_ARGS_ERROR;
    }
    *out = v;
    return 0;
}

int cli_parse_rate(const char *flag, const char *text, double *per_second)
{
    if (cbx_rate_parse(text, per_second) == 0 && *per_second > 0)
        return 0;
    cli_err("%s: expected a rate like 5/s, 600/min or 10, got '%s'", flag, text);
    return CLI_ARGS_ERROR;
}

int cli_parse_object(const char *cmd, const char *flag, const char *text, json_t **out)
{
    json_error_t je;
    *out = json_loads(text, 0, &je);
    if (json_is_object(*out))
        return 0;
    cli_err("%s: %s: expected a JSON object%s%s", cmd, flag, *out ? "" : ": ", *out ? "" : je.text);
    json_decref(*out);
    *out = NULL;
    return CLI_ARGS_ERROR;
}

int cli_parse_choice(const char *flag, const char *text, const char *const *choices)
{
    size_t n = 0;
    for (; choices[n]; n++)
        if (strcmp(choices[n], text) == 0)
            return 0;
    char list[256] = "";
    size_t used = 0;
    for (size_t i = 0; i < n && used < sizeof list; i++)
        used +=
            (size_t)snprintf(list + used, sizeof list - used, "%s%s", i ? ", " : "", choices[i]);
    const char *best = cli_suggest(text, choices, n);
    if (best)
        cli_err("%s: expected one of %s, got '%s' (did you mean '%s'?)", flag, list, text, best);
    else
        cli_err("%s: expected one of %s, got '%s'", flag, list, text);
    return CLI_ARGS_ERROR;
}

int cli_read_file(const char *path, char **buf, size_t *len)
{
    int fd = strcmp(path, "-") == 0 ? STDIN_FILENO : open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    size_t cap = 4096, n = 0, limit = cbx_yaml_max_bytes();
    char *b = malloc(cap);
    int rc = b ? 0 : -ENOMEM;
    while (rc == 0) {
        if (n > limit) {
            rc = -EFBIG;
            break;
        }
        if (n + 1 >= cap) {
            char *nb = realloc(b, cap * 2);
            if (!nb) {
                rc = -ENOMEM;
                break;
            }
            b = nb;
            cap *= 2;
        }
        size_t want = cap - n - 1;
        if (want > limit + 1 - n) /* one byte past the limit tells it is passed */
            want = limit + 1 - n;
        ssize_t r = read(fd, b + n, want);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            rc = -errno;
        else if (r == 0)
            break;
        else
            n += (size_t)r;
    }
    if (fd != STDIN_FILENO)
        close(fd);
    if (rc < 0) {
        free(b);
        return rc;
    }
    b[n] = '\0';
    *buf = b;
    *len = n;
    return 0;
}

const char *cli_read_error(int r)
{
    static char msg[160];
    if (r != -EFBIG)
        return strerror(-r);
    snprintf(msg, sizeof msg, "larger than %zu bytes, the limit on input (CBX_MAX_INPUT raises it)",
             cbx_yaml_max_bytes());
    return msg;
}

int cli_input_limit_from_env(void)
{
    const char *v = getenv("CBX_MAX_INPUT");
    if (!v || !*v)
        return 0;
    char *end;
    errno = 0;
    unsigned long long n = strtoull(v, &end, 10);
    unsigned shift = 0;
    if (*end == 'K' || *end == 'k')
        shift = 10;
    else if (*end == 'M' || *end == 'm')
        shift = 20;
    else if (*end == 'G' || *end == 'g')
        shift = 30;
    if (shift)
        end++;
    if (errno || end == v || *end || v[0] == '-' || n == 0 || n > (SIZE_MAX >> shift)) {
        cli_err("CBX_MAX_INPUT: expected a size in bytes such as 1048576 or 64M, got '%s'", v);
        return -EINVAL;
    }
    cbx_yaml_set_max_bytes((size_t)n << shift);
    return 0;
}

const char *cli_suggest(const char *word, const char *const *cands, size_t n)
{
    size_t len = strlen(word);
    size_t limit = len / 3 > 2 ? len / 3 : 2;
    const char *best = NULL;
    size_t best_d = limit + 1;
    /* an unambiguous abbreviation ("expo") first */
    for (size_t i = 0; len >= 2 && i < n; i++) {
        if (strncmp(cands[i], word, len) != 0)
            continue;
        if (best)
            return NULL;
        best = cands[i];
    }
    if (best)
        return best;
    for (size_t i = 0; i < n; i++) {
        size_t d = cbx__edit_distance(word, cands[i]);
        if (d < best_d && d < len) {
            best_d = d;
            best = cands[i];
        }
    }
    return best;
}

/* ---- executor parameters ------------------------------------------------------------------- */

static int parse_integer(const char *s, json_int_t *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (end == s || *end || errno == ERANGE)
        return -1;
    *out = (json_int_t)v;
    return 0;
}

static int parse_number(const char *s, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || *end || errno == ERANGE || !isfinite(v))
        return -1;
    *out = v;
    return 0;
}

/* The text with surrounding white space removed (a file's trailing newline), copied. */
static char *trimmed(const char *text, size_t len)
{
    while (len && (*text == ' ' || *text == '\t' || *text == '\n' || *text == '\r')) {
        text++;
        len--;
    }
    while (len && (text[len - 1] == ' ' || text[len - 1] == '\t' || text[len - 1] == '\n' ||
                   text[len - 1] == '\r'))
        len--;
    char *s = malloc(len + 1);
    if (s) {
        memcpy(s, text, len);
        s[len] = '\0';
    }
    return s;
}

json_t *cli_param_value(const cbx_param *p, const char *text, size_t len, char *note,
                        size_t note_len)
{
    if (note_len)
        note[0] = '\0';
    if (!p || p->type == CBX_PARAM_STRING)
        return json_stringn(text, len);
    char *t = trimmed(text, len);
    if (!t)
        return NULL;
    json_t *v = NULL;
    switch (p->type) {
    case CBX_PARAM_INTEGER: {
        json_int_t i;
        if (parse_integer(t, &i) == 0)
            v = json_integer(i);
        break;
    }
    case CBX_PARAM_NUMBER: {
        double d;
        if (parse_number(t, &d) == 0)
            v = json_real(d);
        break;
    }
    case CBX_PARAM_BOOLEAN:
        if (strcmp(t, "true") == 0)
            v = json_true();
        else if (strcmp(t, "false") == 0)
            v = json_false();
        break;
    case CBX_PARAM_ARRAY:
    case CBX_PARAM_OBJECT:
    case CBX_PARAM_ANY: {
        json_error_t je;
        v = json_loads(t, JSON_DECODE_ANY, &je);
        if (!v && p->type != CBX_PARAM_ANY && note_len)
            snprintf(note, note_len, "not valid JSON: %s", je.text);
        break;
    }
    default:
        break;
    }
    free(t);
    return v ? v : json_stringn(text, len);
}

static const cbx_param *find_param(const cbx_param *params, const char *name)
{
    for (const cbx_param *p = params; p && p->name; p++)
        if (strcmp(p->name, name) == 0)
            return p;
    return NULL;
}

int cli_params_build(const char *cmd, const cbx_param *params, const char *object_text,
                     const char *const *kv, size_t n, json_t **out, json_t *notes)
{
    *out = NULL;
    json_t *obj;
    if (object_text) {
        json_error_t je;
        obj = json_loads(object_text, 0, &je);
        if (!obj || !json_is_object(obj)) {
            if (obj)
                cli_err("--params-json: expected a JSON object, got %s", cli_json_kind(obj));
            else
                cli_err("--params-json: not valid JSON: %s (at column %d)", je.text, je.column);
            json_decref(obj);
            return CLI_ARGS_ERROR;
        }
    } else {
        obj = json_object();
        if (!obj)
            return CLI_ARGS_ERROR;
    }
    for (size_t i = 0; i < n; i++) {
        const char *eq = strchr(kv[i], '=');
        if (!eq || eq == kv[i]) {
            cli_err("%s: -p: expected key=value or key=@file, got '%s'", cmd, kv[i]);
            json_decref(obj);
            return CLI_ARGS_ERROR;
        }
        char key[256];
        snprintf(key, sizeof key, "%.*s", (int)(eq - kv[i] < 255 ? eq - kv[i] : 255), kv[i]);
        const cbx_param *p = find_param(params, key);
        const char *text = eq + 1;
        size_t len = strlen(text);
        char *file = NULL;
        if (text[0] == '@') {
            len = 0;
            int rc = cli_read_file(text + 1, &file, &len);
            if (rc < 0) {
                cli_err("%s: -p %s: cannot read '%s': %s", cmd, key, text + 1, cli_read_error(rc));
                json_decref(obj);
                return CLI_ARGS_ERROR;
            }
            text = file ? file : "";
        }
        char note[256];
        json_t *v = cli_param_value(p, text, len, note, sizeof note);
        free(file);
        if (!v) {
            cli_err("%s: -p %s: the value is not UTF-8 text", cmd, key);
            json_decref(obj);
            return CLI_ARGS_ERROR;
        }
        if (notes && note[0])
            json_object_set_new(notes, key, json_string(note));
        json_object_set_new(obj, key, v);
    }
    *out = obj;
    return 0;
}
