/* The executor registry: types sorted by name, each with its parsed defaults, and the plugin
 * handles that must outlive them. */
#include <dlfcn.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cbx/registry.h"
#include "runtime/builtins.h"
#include "runtime/runtime_internal.h"

typedef struct entry {
    const cbx_executor_type *t;
    /* One per parameter, NULL where none (cbx__schema_check). A built-in type's schema is
     * checked and its defaults parsed when it is first validated, not at every start (73 JSON
     * texts for the 14 built-in types, a fifth of `cbx exec -- true`'s instructions):
     * NULL until then, NO_DEFAULTS for a schema without any. */
    _Atomic(json_t **) defaults;
    int builtin;
    uint64_t seq; /* registration order */
} entry;

struct cbx_registry {
    entry *v; /* sorted by name */
    size_t n, cap;
    void **handles; /* dlopen handles, in load order */
    size_t nh, caph;
    uint64_t seq;
};

/* defaults of a checked schema that has none */
static json_t *no_defaults_mark;
#define NO_DEFAULTS (&no_defaults_mark)

static void defaults_free(json_t **d, const cbx_param *params)
{
    if (d != NO_DEFAULTS)
        cbx__schema_defaults_free(d, params);
}

static int name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 63)
        return 0;
    for (; *s; s++) {
        char c = *s;
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-'))
            return 0;
    }
    return 1;
}

/* A declaration of outputs: names given, distinct, types known. */
static int outputs_check(const char *type, const cbx_output *outs, cbx_err *err)
{
    for (const cbx_output *o = outs; o && o->name; o++) {
        if (!o->name[0])
            return cbx_err_set_at(err, CBX_EINVAL_CONFIG, type, 0, 0,
                                  "executor type '%s': outputs[%zu]: an output needs a name", type,
                                  (size_t)(o - outs));
        if ((unsigned)o->type >= CBX_PARAM_TYPE__COUNT)
            return cbx_err_set_at(err, CBX_EINVAL_CONFIG, type, 0, 0,
                                  "executor type '%s': output '%s': unknown type %d", type, o->name,
                                  (int)o->type);
        for (const cbx_output *p = outs; p < o; p++)
            if (strcmp(p->name, o->name) == 0)
                return cbx_err_set_at(err, CBX_EINVAL_CONFIG, type, 0, 0,
                                      "executor type '%s': output '%s' is declared twice", type,
                                      o->name);
    }
    return 0;
}

/* Index of name, or where it would go (with *found 0). */
static size_t locate(const cbx_registry *r, const char *name, int *found)
{
    size_t lo = 0, hi = r->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(r->v[mid].t->name, name);
        if (c == 0) {
            *found = 1;
            return mid;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = 0;
    return lo;
}

static int add(cbx_registry *r, const cbx_executor_type *t, int builtin, cbx_err *err)
{
    if (!r || !t)
        return cbx_err_set(err, CBX_EINVAL_CONFIG, "no registry or no executor type given");
    const char *name = t->name ? t->name : "";
    if (t->abi < CBX_EXECUTOR_ABI_MIN || t->abi > CBX_EXECUTOR_ABI)
        return cbx_err_set_at(err, CBX_EABI, name, 0, 0,
                              "executor type '%s' is built for executor ABI %u; this runtime has "
                              "ABI %u (and accepts %u to %u)",
                              name, (unsigned)t->abi, (unsigned)CBX_EXECUTOR_ABI,
                              (unsigned)CBX_EXECUTOR_ABI_MIN, (unsigned)CBX_EXECUTOR_ABI);
    if (!name_ok(name))
        return cbx_err_set_at(err, CBX_EINVAL_CONFIG, name, 0, 0,
                              "bad executor type name '%s': 1 to 63 of [a-z0-9_.-]", name);
    int found;
    size_t at = locate(r, name, &found);
    if (found)
        return cbx_err_set_at(err, CBX_EEXISTS, name, 0, 0,
                              "executor type '%s' is already registered%s", name,
                              r->v[at].builtin ? " (built in)" : "");
    if (t->start && t->run)
        return cbx_err_set_at(err, CBX_EINVAL_CONFIG, name, 0, 0,
                              "executor type '%s' has both start and run; give one", name);
    if (!t->start && !t->run)
        return cbx_err_set_at(err, CBX_EINVAL_CONFIG, name, 0, 0,
                              "executor type '%s' has neither start nor run", name);
    if (t->start && !t->cancel)
        return cbx_err_set_at(err, CBX_EINVAL_CONFIG, name, 0, 0,
                              "executor type '%s' has start but no cancel", name);
    int orc = outputs_check(name, cbx_executor_type_outputs(t), err);
    if (orc)
        return orc;
    json_t **defaults = NULL; /* a built-in type's: at its first validation */
    if (!builtin) {
        int rc = cbx__schema_check(name, t->params, &defaults, err);
        if (rc)
            return rc;
        if (!defaults)
            defaults = NO_DEFAULTS;
    }
    if (r->n == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 16;
        entry *v = realloc(r->v, cap * sizeof *v);
        if (!v) {
            defaults_free(defaults, t->params);
            return cbx_err_set(err, -ENOMEM, "out of memory");
        }
        r->v = v;
        r->cap = cap;
    }
    memmove(&r->v[at + 1], &r->v[at], (r->n - at) * sizeof *r->v);
    r->v[at] = (entry){.t = t, .defaults = defaults, .builtin = builtin, .seq = r->seq++};
    r->n++;
    return 0;
}

int cbx_registry_register(cbx_registry *r, const cbx_executor_type *t, cbx_err *err)
{
    return add(r, t, 0, err);
}

int cbx__registry_register_builtin(cbx_registry *r, const cbx_executor_type *t, cbx_err *err)
{
    return add(r, t, 1, err);
}

int cbx_registry_new(cbx_registry **out, cbx_err *err)
{
    *out = NULL;
    cbx_registry *r = calloc(1, sizeof *r);
    if (!r)
        return cbx_err_set(err, -ENOMEM, "out of memory");
    int rc = cbx__register_builtins(r, err);
    if (rc) {
        cbx_registry_free(r);
        return rc;
    }
    *out = r;
    return 0;
}

/* Remove entry i and call its destroy (added types only). */
static void drop(cbx_registry *r, size_t i)
{
    entry e = r->v[i];
    memmove(&r->v[i], &r->v[i + 1], (r->n - i - 1) * sizeof *r->v);
    r->n--;
    defaults_free(atomic_load(&e.defaults), e.t->params);
    if (!e.builtin && e.t->destroy)
        e.t->destroy(e.t);
}

/* Index of the most recently registered entry with seq >= mark, or r->n when none. */
static size_t newest_since(const cbx_registry *r, uint64_t mark)
{
    size_t best = r->n;
    for (size_t i = 0; i < r->n; i++)
        if (r->v[i].seq >= mark && (best == r->n || r->v[i].seq > r->v[best].seq))
            best = i;
    return best;
}

uint64_t cbx__registry_mark(const cbx_registry *r)
{
    return r->seq;
}

void cbx__registry_rollback(cbx_registry *r, uint64_t mark)
{
    size_t i;
    while ((i = newest_since(r, mark)) < r->n)
        drop(r, i);
}

int cbx__registry_keep_handle(cbx_registry *r, void *handle)
{
    if (r->nh == r->caph) {
        size_t cap = r->caph ? r->caph * 2 : 4;
        void **h = realloc(r->handles, cap * sizeof *h);
        if (!h)
            return -ENOMEM;
        r->handles = h;
        r->caph = cap;
    }
    r->handles[r->nh++] = handle;
    return 0;
}

int cbx__registry_has_handle(const cbx_registry *r, void *handle)
{
    for (size_t i = 0; i < r->nh; i++)
        if (r->handles[i] == handle)
            return 1;
    return 0;
}

void cbx_registry_free(cbx_registry *r)
{
    if (!r)
        return;
    /* Newest first, so a type may rely on the ones registered before it; plugin code is unloaded
     * only once every destroy hook has run. */
    cbx__registry_rollback(r, 0);
    for (size_t i = r->nh; i-- > 0;)
        dlclose(r->handles[i]);
    free(r->handles);
    free(r->v);
    free(r);
}

int cbx_registry_unregister(cbx_registry *r, const char *name, cbx_err *err)
{
    int found = 0;
    size_t at = r && name ? locate(r, name, &found) : 0;
    if (!found)
        return cbx_err_set_at(err, CBX_EUNKNOWN_TYPE, name ? name : "", 0, 0,
                              "unknown executor type '%s'", name ? name : "");
    if (r->v[at].builtin)
        return cbx_err_set_at(err, CBX_EBUILTIN, name, 0, 0,
                              "executor type '%s' is built in and cannot be removed", name);
    drop(r, at);
    return 0;
}

const cbx_executor_type *cbx_registry_find(const cbx_registry *r, const char *name)
{
    if (!r || !name)
        return NULL;
    int found;
    size_t at = locate(r, name, &found);
    return found ? r->v[at].t : NULL;
}

int cbx_registry_is_builtin(const cbx_registry *r, const char *name)
{
    if (!r || !name)
        return 0;
    int found;
    size_t at = locate(r, name, &found);
    return found && r->v[at].builtin;
}

size_t cbx_registry_list(const cbx_registry *r, const cbx_executor_type **out, size_t max)
{
    if (!r)
        return 0;
    for (size_t i = 0; i < r->n && i < max; i++)
        out[i] = r->v[i].t;
    return r->n;
}

static int unknown_type(const cbx_registry *r, const char *type, cbx_diag *diag)
{
    const char *name = type ? type : "";
    const char *best = NULL;
    size_t best_d = 99;
    for (size_t i = 0; r && i < r->n; i++) {
        size_t d = cbx__edit_distance(name, r->v[i].t->name);
        if (d < best_d) {
            best_d = d;
            best = r->v[i].t->name;
        }
    }
    if (!diag)
        return CBX_EUNKNOWN_TYPE;
    if (best && cbx__close_enough(best_d, strlen(name)))
        return cbx_diag_add(diag, CBX_EUNKNOWN_TYPE, name, 0, 0,
                            "unknown executor type '%s'; did you mean '%s'?", name, best);
    return cbx_diag_add(diag, CBX_EUNKNOWN_TYPE, name, 0, 0, "unknown executor type '%s'", name);
}

/* The defaults of e, its schema checked first when it has not been (a built-in type's first
 * validation; threads that race each check it, and the first one's result is kept). */
static int entry_defaults(const entry *e, json_t ***out, cbx_diag *diag)
{
    entry *me = (entry *)e; /* the entry's lazily filled cache, not its contents */
    json_t **d = atomic_load(&me->defaults);
    if (!d) {
        cbx_err he;
        cbx_err_clear(&he);
        if (cbx__schema_check(e->t->name, e->t->params, &d, &he) != 0) {
            if (diag)
                cbx_diag_push(diag, &he);
            return he.code ? he.code : CBX_EINVAL_CONFIG;
        }
        json_t **mine = d ? d : NO_DEFAULTS, **expected = NULL;
        if (atomic_compare_exchange_strong(&me->defaults, &expected, mine)) {
            d = mine;
        } else {
            defaults_free(mine, e->t->params);
            d = expected;
        }
    }
    *out = d == NO_DEFAULTS ? NULL : d;
    return 0;
}

/* Validation of params for the type of e; see cbx__registry_admit for same. */
static int validate_entry(const entry *e, const json_t *params, json_t *same, json_t **normalized,
                          cbx_diag *diag)
{
    const cbx_executor_type *t = e->t;
    json_t *norm = NULL;
    json_t **defaults;
    int drc = entry_defaults(e, &defaults, diag);
    if (drc)
        return drc;
    if (same && cbx__schema_revalidate(t->params, defaults, params, same, &norm)) {
        /* params fit the schema: same was checked, and params differ from it only in members
         * that were checked alone */
    } else {
        int rc = cbx__schema_validate(t->params, defaults, params,
                                      normalized || t->validate ? &norm : NULL, diag);
        if (rc)
            return rc;
    }
    if (t->validate) {
        cbx_err he;
        cbx_err_clear(&he);
        if (t->validate(t, norm, &he) != 0) {
            if (he.code >= 0)
                he.code = CBX_EINVAL_CONFIG;
            if (!he.msg[0])
                snprintf(he.msg, sizeof he.msg, "rejected by the validate hook of '%s'", t->name);
            if (diag)
                cbx_diag_push(diag, &he);
            json_decref(norm);
            return CBX_EINVAL_CONFIG;
        }
    }
    if (normalized)
        *normalized = norm;
    else
        json_decref(norm);
    return 0;
}

int cbx_registry_validate(const cbx_registry *r, const char *type, const json_t *params,
                          json_t **normalized, cbx_diag *diag)
{
    if (normalized)
        *normalized = NULL;
    int found = 0;
    size_t at = r && type ? locate(r, type, &found) : 0;
    if (!found)
        return unknown_type(r, type, diag);
    return validate_entry(&r->v[at], params, NULL, normalized, diag);
}

int cbx__registry_admit(const cbx_registry *r, const char *type, const json_t *params,
                        const cbx_executor_type *same_type, json_t *same,
                        const cbx_executor_type **found_type, json_t **normalized, cbx_diag *diag)
{
    *found_type = NULL;
    *normalized = NULL;
    int found = 0;
    size_t at = r && type ? locate(r, type, &found) : 0;
    if (!found)
        return CBX_EUNKNOWN_TYPE;
    *found_type = r->v[at].t;
    return validate_entry(&r->v[at], params, r->v[at].t == same_type ? same : NULL, normalized,
                          diag);
}
