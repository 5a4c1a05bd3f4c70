/* A flow's inputs: given values checked against the declarations, defaults applied. */
#include "flow/flow_load.h"
#include "runtime/builtins.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdarg.h>

/* Text cut to its buffer on purpose: vsnprintf keeps the compiler's truncation checks, meant for
 * fixed formats, out of the way. */
static void textf(char *buf, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void textf(char *buf, size_t len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, len, fmt, ap);
    va_end(ap);
}

int cbx__flow_input_check(const cbx__flow_input *in, const json_t *v, char *msg, size_t len)
{
    if (!cbx__param_type_accepts(in->type, v)) {
        textf(msg, len, "expected %s, got %s", cbx_param_type_name(in->type), cbx__json_kind(v));
        return CBX_EINVAL_CONFIG;
    }
    if (!in->enum_values)
        return 0;
    size_t i;
    json_t *e;
    json_array_foreach(in->enum_values, i, e)
    {
        if (json_equal(e, (json_t *)v))
            return 0;
    }
    char *allowed = json_dumps(in->enum_values, JSON_COMPACT | JSON_ENCODE_ANY);
    char *got = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    /* the list without its brackets reads as "one of "a", "b"" */
    size_t alen = allowed ? strlen(allowed) : 0;
    textf(msg, len, "expected one of %.*s; got %.100s", alen > 2 ? (int)(alen - 2) : 0,
          alen > 2 ? allowed + 1 : "", got ? got : "?");
    free(allowed);
    free(got);
    return CBX_EINVAL_CONFIG;
}

int cbx_flow_inputs(const cbx_flow *f, const json_t *given, json_t **out, cbx_diag *diag)
{
    *out = NULL;
    if (!f)
        return -EINVAL;
    cbx_diag local = {0};
    cbx_diag *d = diag ? diag : &local;
    size_t before = d->n;
    int bad = 0;
    if (given && !json_is_object(given)) {
        cbx_diag_add(d, CBX_EINVAL_CONFIG, "", 0, 0, "expected the inputs as an object, got %s",
                     cbx__json_kind(given));
        cbx_diag_clear(&local);
        return CBX_EINVAL_CONFIG;
    }
    const char **names = calloc(f->ninputs + 1, sizeof *names);
    if (!names) {
        cbx_diag_clear(&local);
        return -ENOMEM;
    }
    for (size_t i = 0; i < f->ninputs; i++)
        names[i] = f->inputs[i].name;

    if (given) {
        const char *key;
        json_t *v;
        json_object_foreach((json_t *)given, key, v)
        {
            const cbx__flow_input *in = NULL;
            for (size_t i = 0; i < f->ninputs && !in; i++)
                if (strcmp(f->inputs[i].name, key) == 0)
                    in = &f->inputs[i];
            if (!in) {
                const char *best = cbx__flow_suggest(key, names);
                if (best)
                    cbx_diag_add(d, CBX_EINVAL_CONFIG, key, 0, 0,
                                 "unknown input '%s'; did you mean '%s'?", key, best);
                else if (f->ninputs == 0)
                    cbx_diag_add(d, CBX_EINVAL_CONFIG, key, 0, 0,
                                 "unknown input '%s' (the flow declares no inputs)", key);
                else
                    cbx_diag_add(d, CBX_EINVAL_CONFIG, key, 0, 0, "unknown input '%s'", key);
                bad++;
                continue;
            }
            char msg[400];
            if (cbx__flow_input_check(in, v, msg, sizeof msg) < 0) {
                cbx_diag_add(d, CBX_EINVAL_CONFIG, key, 0, 0, "%s", msg);
                bad++;
            }
        }
    }
    json_t *res = given ? json_deep_copy(given) : json_object();
    if (!res) {
        free(names);
        cbx_diag_clear(&local);
        return -ENOMEM;
    }
    for (size_t i = 0; i < f->ninputs; i++) {
        const cbx__flow_input *in = &f->inputs[i];
        if (json_object_get(res, in->name))
            continue;
        if (in->def) {
            json_t *copy = json_deep_copy(in->def);
            if (!copy || json_object_set_new(res, in->name, copy) < 0) {
                json_decref(res);
                free(names);
                cbx_diag_clear(&local);
                return -ENOMEM;
            }
        } else if (in->required) {
            cbx_diag_add(d, CBX_EINVAL_CONFIG, in->name, 0, 0, "missing required input (%s)",
                         cbx_param_type_name(in->type));
            bad++;
        }
    }
    free(names);
    cbx_diag_clear(&local);
    if (bad) {
        json_decref(res);
        if (diag && d->n == before)
            return -ENOMEM;
        return CBX_EINVAL_CONFIG;
    }
    *out = res;
    return 0;
}
