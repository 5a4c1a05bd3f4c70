/* The registry: registration checks, unregister, find and list, built-ins, validation through a
 * type (schema, defaults, validate hook) and the destroy hooks. */
#include <criterion/criterion.h>

#include <string.h>

#include "cbx/registry.h"
#include "runtime/builtins.h"

static cbx_outcome run_ok(cbx_task *t, json_t **outputs, json_t **metadata, cbx_err *err)
{
    (void)t, (void)outputs, (void)metadata, (void)err;
    return CBX_OUTCOME_SUCCESS;
}

static int start_ok(cbx_task *t)
{
    (void)t;
    return 0;
}

static void cancel_ok(cbx_task *t)
{
    (void)t;
}

/* Which types were destroyed, in order. */
static char destroyed[16][64];
static int n_destroyed;

static void record_destroy(const cbx_executor_type *t)
{
    cr_assert_lt(n_destroyed, 16);
    snprintf(destroyed[n_destroyed++], sizeof destroyed[0], "%s", t->name);
}

static const cbx_param small_schema[] = {
    {.name = "n", .type = CBX_PARAM_INTEGER, .default_json = "2", .has_min = 1, .min = 0},
    {.name = "word", .type = CBX_PARAM_STRING, .required = 1},
    {0},
};

/* A type named name with run and the small schema. */
#define TYPE(nm)                                                                                   \
    ((cbx_executor_type){.abi = CBX_EXECUTOR_ABI,                                                  \
                         .name = (nm),                                                             \
                         .summary = "a test type",                                                 \
                         .params = small_schema,                                                   \
                         .run = run_ok,                                                            \
                         .destroy = record_destroy})

static cbx_registry *fresh(void)
{
    cbx_registry *r = NULL;
    cbx_err err;
    cr_assert_eq(cbx_registry_new(&r, &err), 0, "%s", err.msg);
    cr_assert_not_null(r);
    n_destroyed = 0;
    return r;
}

/* Register t and expect code, with err.msg holding fragment. */
static void refuse(cbx_registry *r, const cbx_executor_type *t, int code, const char *fragment)
{
    cbx_err err;
    cbx_err_clear(&err);
    int rc = cbx_registry_register(r, t, &err);
    cr_assert_eq(rc, code, "%s: got %s (%s)", t->name ? t->name : "(null)", cbx_err_name(rc),
                 err.msg);
    cr_assert_eq(err.code, code);
    cr_assert_not_null(strstr(err.msg, fragment), "'%s' lacks '%s'", err.msg, fragment);
    if (t->name)
        cr_assert_neq(cbx_registry_find(r, t->name), t, "a refused type is not registered");
}

Test(registry, builtins_are_marked_and_listed_sorted)
{
    cbx_registry *r = fresh();
    const cbx_executor_type *all[64];
    size_t n = cbx_registry_list(r, all, 64);
    cr_assert_leq(n, 64);
    for (size_t i = 0; i < n; i++) {
        cr_assert(cbx_registry_is_builtin(r, all[i]->name), "%s", all[i]->name);
        cr_assert_eq(cbx_registry_find(r, all[i]->name), all[i]);
        if (i > 0)
            cr_assert_lt(strcmp(all[i - 1]->name, all[i]->name), 0);
    }
    cr_assert_not(cbx_registry_is_builtin(r, "no-such-type"));
    cr_assert_not(cbx_registry_is_builtin(r, NULL));
    cbx_registry_free(r);
}

/* A built-in type's schema is checked at its first validation, not at registration: every
 * built-in schema must pass the check a registered type's passes. */
Test(registry, builtin_schemas_pass_the_check)
{
    cbx_registry *r = fresh();
    const cbx_executor_type *all[64];
    size_t n = cbx_registry_list(r, all, 64);
    cr_assert_gt(n, 0);
    for (size_t i = 0; i < n; i++) {
        json_t **defaults = NULL;
        cbx_err err;
        cbx_err_clear(&err);
        cr_assert_eq(cbx__schema_check(all[i]->name, all[i]->params, &defaults, &err), 0, "%s: %s",
                     all[i]->name, err.msg);
        cbx__schema_defaults_free(defaults, all[i]->params);
    }
    cbx_registry_free(r);
}

Test(registry, a_builtin_schema_is_checked_when_first_validated)
{
    cbx_registry *r = fresh();
    static const cbx_param bad[] = {
        {.name = "p", .type = CBX_PARAM_INTEGER, .default_json = "thirty"}, {0}};
    cbx_executor_type b = TYPE("builtin-bad");
    b.params = bad;
    cbx_err err;
    cbx_err_clear(&err);
    cr_assert_eq(cbx__registry_register_builtin(r, &b, &err), 0, "%s", err.msg);
    for (int round = 0; round < 2; round++) {
        cbx_diag d = {0};
        json_t *p = json_object();
        cr_assert_eq(cbx_registry_validate(r, "builtin-bad", p, NULL, &d), CBX_EINVAL_CONFIG);
        cr_assert_gt(d.n, 0);
        cr_assert_not_null(strstr(d.items[0].msg, "default is not JSON"), "%s", d.items[0].msg);
        cbx_diag_clear(&d);
        json_decref(p);
    }
    /* a good built-in schema gets its defaults applied, the first time and the next */
    cbx_executor_type g = TYPE("builtin-good");
    cr_assert_eq(cbx__registry_register_builtin(r, &g, &err), 0, "%s", err.msg);
    for (int round = 0; round < 2; round++) {
        json_t *p = json_pack("{s:s}", "word", "w"), *norm = NULL;
        cr_assert_eq(cbx_registry_validate(r, "builtin-good", p, &norm, NULL), 0);
        cr_assert_eq(json_integer_value(json_object_get(norm, "n")), 2);
        json_decref(norm);
        json_decref(p);
    }
    cbx_registry_free(r);
}

Test(registry, register_find_unregister)
{
    cbx_registry *r = fresh();
    cbx_executor_type t = TYPE("echo");
    cbx_err err;
    cr_assert_eq(cbx_registry_register(r, &t, &err), 0, "%s", err.msg);
    cr_assert_eq(cbx_registry_find(r, "echo"), &t);
    cr_assert_not(cbx_registry_is_builtin(r, "echo"));
    cr_assert_null(cbx_registry_find(r, "ech"));
    cr_assert_null(cbx_registry_find(r, NULL));
    cr_assert_null(cbx_registry_find(NULL, "echo"));
    cr_assert_eq(cbx_registry_unregister(r, "echo", &err), 0);
    cr_assert_eq(n_destroyed, 1, "unregister calls destroy");
    cr_assert_str_eq(destroyed[0], "echo");
    cr_assert_null(cbx_registry_find(r, "echo"));
    /* and the name is free again */
    cr_assert_eq(cbx_registry_register(r, &t, &err), 0, "%s", err.msg);
    cbx_registry_free(r);
    cr_assert_eq(n_destroyed, 2, "free calls destroy of what is left");
}

Test(registry, asynchronous_types_register)
{
    cbx_registry *r = fresh();
    cbx_executor_type t = TYPE("async");
    t.run = NULL;
    t.start = start_ok;
    t.cancel = cancel_ok;
    t.params = NULL;
    cbx_err err;
    cr_assert_eq(cbx_registry_register(r, &t, &err), 0, "%s", err.msg);
    cbx_registry_free(r);
}

Test(registry, list_is_sorted_and_counts_all)
{
    cbx_registry *r = fresh();
    size_t base = cbx_registry_list(r, NULL, 0);
    cbx_executor_type z = TYPE("zz-last"), a = TYPE("aa.first"), m = TYPE("mm_mid");
    cr_assert_eq(cbx_registry_register(r, &z, NULL), 0);
    cr_assert_eq(cbx_registry_register(r, &a, NULL), 0);
    cr_assert_eq(cbx_registry_register(r, &m, NULL), 0);
    const cbx_executor_type *all[64];
    size_t n = cbx_registry_list(r, all, 64);
    cr_assert_eq(n, base + 3);
    for (size_t i = 1; i < n; i++)
        cr_assert_lt(strcmp(all[i - 1]->name, all[i]->name), 0, "%s before %s", all[i - 1]->name,
                     all[i]->name);
    cr_assert_eq(all[0], &a, "aa.first sorts before every built-in");
    cr_assert_eq(all[n - 1], &z);
    /* a short buffer gets the first ones, and the total comes back */
    const cbx_executor_type *two[2] = {NULL, NULL};
    cr_assert_eq(cbx_registry_list(r, two, 1), n);
    cr_assert_eq(two[0], &a);
    cr_assert_null(two[1]);
    cbx_registry_free(r);
}

Test(registry, refuses_wrong_abi_with_both_numbers)
{
    cbx_registry *r = fresh();
    cbx_executor_type t = TYPE("old");
    t.abi = CBX_EXECUTOR_ABI + 1;
    char want[64];
    snprintf(want, sizeof want, "ABI %d; this runtime has ABI %d", CBX_EXECUTOR_ABI + 1,
             CBX_EXECUTOR_ABI);
    refuse(r, &t, CBX_EABI, want);
    cbx_registry_free(r);
    cr_assert_eq(n_destroyed, 0, "a refused type is never destroyed");
}

Test(registry, accepts_older_abis_down_to_the_minimum)
{
    cbx_registry *r = fresh();
    cbx_executor_type t = TYPE("two");
    t.abi = CBX_EXECUTOR_ABI_MIN;
    cr_assert_eq(cbx_registry_register(r, &t, NULL), 0);
    cbx_executor_type too_old = TYPE("one");
    too_old.abi = CBX_EXECUTOR_ABI_MIN - 1;
    refuse(r, &too_old, CBX_EABI, "and accepts 2 to 3");
    cbx_registry_free(r);
}

Test(registry, checks_the_outputs_declared)
{
    static const cbx_output unnamed[] = {{.name = "", .type = CBX_PARAM_STRING}, {0}};
    static const cbx_output twice[] = {
        {.name = "a", .type = CBX_PARAM_STRING}, {.name = "a", .type = CBX_PARAM_INTEGER}, {0}};
    static const cbx_output bad_type[] = {{.name = "a", .type = (cbx_param_type)99}, {0}};
    static const cbx_output good[] = {{.name = "a", .type = CBX_PARAM_STRING},
                                      {.name = "b", .type = CBX_PARAM_ANY, .optional = 1},
                                      {0}};
    cbx_registry *r = fresh();
    cbx_executor_type t = TYPE("t");
    t.outputs = unnamed;
    refuse(r, &t, CBX_EINVAL_CONFIG, "outputs[0]: an output needs a name");
    t.outputs = twice;
    refuse(r, &t, CBX_EINVAL_CONFIG, "output 'a' is declared twice");
    t.outputs = bad_type;
    refuse(r, &t, CBX_EINVAL_CONFIG, "output 'a': unknown type 99");
    t.outputs = good;
    cr_assert_eq(cbx_registry_register(r, &t, NULL), 0);
    const cbx_output *o = cbx_executor_type_outputs(cbx_registry_find(r, "t"));
    cr_assert_eq(o, good);
    cr_assert_eq(cbx_output_find(o, "b"), &good[1]);
    cr_assert_null(cbx_output_find(o, "c"));
    json_t *j = cbx_outputs_to_json(o);
    json_t *want =
        json_loads("{\"type\": \"object\", \"properties\": {\"a\": {\"type\": \"string\"},"
                   " \"b\": {}}, \"required\": [\"a\"]}",
                   0, NULL);
    cr_assert(json_equal(j, want));
    json_decref(j);
    json_decref(want);
    /* the same struct marked ABI 2 has no outputs, whatever the field holds */
    cbx_executor_type old = TYPE("old");
    old.abi = 2;
    old.outputs = good;
    cr_assert_null(cbx_executor_type_outputs(&old));
    cr_assert(json_is_null(cbx_outputs_to_json(NULL)));
    cbx_registry_free(r);
}

Test(registry, refuses_bad_names)
{
    cbx_registry *r = fresh();
    const char *bad[] = {"", "Upper", "has space", "semi;colon", "slash/", "é"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cbx_executor_type t = TYPE(bad[i]);
        refuse(r, &t, CBX_EINVAL_CONFIG, "bad executor type name");
    }
    cbx_executor_type t = TYPE(NULL);
    refuse(r, &t, CBX_EINVAL_CONFIG, "bad executor type name");
    char longname[80];
    memset(longname, 'a', 64);
    longname[64] = '\0';
    t = TYPE(longname);
    refuse(r, &t, CBX_EINVAL_CONFIG, "1 to 63");
    longname[63] = '\0';
    t = TYPE(longname);
    cr_assert_eq(cbx_registry_register(r, &t, NULL), 0, "63 characters are fine");
    cbx_registry_free(r);
}

Test(registry, refuses_a_taken_name)
{
    cbx_registry *r = fresh();
    cbx_executor_type t = TYPE("dup"), u = TYPE("dup");
    cr_assert_eq(cbx_registry_register(r, &t, NULL), 0);
    refuse(r, &u, CBX_EEXISTS, "'dup' is already registered");
    cr_assert_eq(cbx_registry_find(r, "dup"), &t, "the first one stays");
    cbx_registry_free(r);
}

Test(registry, refuses_bad_ops)
{
    cbx_registry *r = fresh();
    cbx_executor_type t = TYPE("ops");
    t.start = start_ok;
    t.cancel = cancel_ok;
    refuse(r, &t, CBX_EINVAL_CONFIG, "has both start and run");
    t.run = NULL;
    t.cancel = NULL;
    refuse(r, &t, CBX_EINVAL_CONFIG, "has start but no cancel");
    t.start = NULL;
    refuse(r, &t, CBX_EINVAL_CONFIG, "has neither start nor run");
    cbx_registry_free(r);
}

/* A one-parameter schema in a type named "s", expected to be refused with fragment. */
static void refuse_param(cbx_param p, const char *fragment)
{
    cbx_registry *r = fresh();
    cbx_param ps[2] = {p, {0}};
    cbx_executor_type t = TYPE("s");
    t.params = ps;
    refuse(r, &t, CBX_EINVAL_CONFIG, fragment);
    cbx_err err;
    cbx_registry_register(r, &t, &err);
    cr_assert_not_null(strstr(err.msg, "executor type 's'"), "%s", err.msg);
    cr_assert_str_eq(err.where, "s.p");
    cbx_registry_free(r);
}

Test(registry, refuses_bad_schemas)
{
    static const char *const colours[] = {"red", "blue", NULL};
    static const char *const none[] = {NULL};
    refuse_param((cbx_param){.name = "p", .type = CBX_PARAM_INTEGER, .default_json = "thirty"},
                 "default is not JSON");
    refuse_param((cbx_param){.name = "p", .type = CBX_PARAM_INTEGER, .default_json = "\"30\""},
                 "default \"30\" does not fit: expected integer, got string");
    refuse_param((cbx_param){.name = "p", .type = CBX_PARAM_INTEGER, .default_json = "1.5"},
                 "expected integer, got number");
    refuse_param(
        (cbx_param){
            .name = "p", .type = CBX_PARAM_INTEGER, .default_json = "0", .has_min = 1, .min = 1},
        "expected integer >= 1, got 0");
    refuse_param((cbx_param){.name = "p",
                             .type = CBX_PARAM_STRING,
                             .default_json = "\"green\"",
                             .enum_values = colours},
                 "expected one of red, blue");
    refuse_param((cbx_param){.name = "p",
                             .type = CBX_PARAM_ARRAY,
                             .items = CBX_PARAM_INTEGER,
                             .default_json = "[1, \"x\"]"},
                 "expected integer, got string");
    refuse_param((cbx_param){.name = "p", .type = CBX_PARAM_INTEGER, .enum_values = colours},
                 "enum values are only for strings, not integer");
    refuse_param((cbx_param){.name = "p", .type = CBX_PARAM_STRING, .enum_values = none},
                 "empty enum");
    refuse_param((cbx_param){.name = "p", .type = CBX_PARAM_BOOLEAN, .has_max = 1, .max = 1},
                 "bounds do not apply to boolean");
    refuse_param(
        (cbx_param){.name = "p", .type = CBX_PARAM_NUMBER, .has_min = 1, .min = 2, .has_max = 1},
        "min <= max");
    refuse_param((cbx_param){.name = "p", .type = CBX_PARAM_TYPE__COUNT}, "unknown parameter type");
    refuse_param((cbx_param){.name = "p", .type = CBX_PARAM_ARRAY, .items = CBX_PARAM_TYPE__COUNT},
                 "unknown array item type");
    refuse_param(
        (cbx_param){.name = "p", .type = CBX_PARAM_STRING, .required = 1, .default_json = "\"\""},
        "a required parameter cannot have a default");
}

Test(registry, refuses_bad_parameter_names_and_duplicates)
{
    cbx_registry *r = fresh();
    cbx_param bad[] = {{.name = "a.b", .type = CBX_PARAM_STRING}, {0}};
    cbx_executor_type t = TYPE("s");
    t.params = bad;
    refuse(r, &t, CBX_EINVAL_CONFIG, "parameter 'a.b'");
    cbx_param twice[] = {
        {.name = "x", .type = CBX_PARAM_STRING}, {.name = "x", .type = CBX_PARAM_INTEGER}, {0}};
    t.params = twice;
    refuse(r, &t, CBX_EINVAL_CONFIG, "parameter 'x': declared twice");
    cbx_registry_free(r);
}

Test(registry, unregister_errors)
{
    cbx_registry *r = fresh();
    cbx_err err;
    cr_assert_eq(cbx_registry_unregister(r, "nope", &err), CBX_EUNKNOWN_TYPE);
    cr_assert_str_eq(err.where, "nope");
    cr_assert_not_null(strstr(err.msg, "unknown executor type 'nope'"));
    cr_assert_eq(cbx_registry_unregister(r, NULL, &err), CBX_EUNKNOWN_TYPE);

    cbx_executor_type b = TYPE("builtin-like");
    cr_assert_eq(cbx__registry_register_builtin(r, &b, &err), 0, "%s", err.msg);
    cr_assert(cbx_registry_is_builtin(r, "builtin-like"));
    cr_assert_eq(cbx_registry_unregister(r, "builtin-like", &err), CBX_EBUILTIN);
    cr_assert_not_null(strstr(err.msg, "'builtin-like' is built in"));
    cr_assert_eq(cbx_registry_find(r, "builtin-like"), &b, "still there");
    cr_assert_eq(n_destroyed, 0);
    cbx_registry_free(r);
    cr_assert_eq(n_destroyed, 0, "a built-in's destroy is not called by a registry");

    /* every real built-in is refused too */
    r = fresh();
    const cbx_executor_type *all[64];
    size_t n = cbx_registry_list(r, all, 64);
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(cbx_registry_unregister(r, all[i]->name, NULL), CBX_EBUILTIN, "%s",
                     all[i]->name);
    cbx_registry_free(r);
}

Test(registry, free_destroys_newest_first)
{
    cbx_registry *r = fresh();
    cbx_executor_type a = TYPE("b-first"), b = TYPE("a-second"), c = TYPE("c-third");
    cr_assert_eq(cbx_registry_register(r, &a, NULL), 0);
    cr_assert_eq(cbx_registry_register(r, &b, NULL), 0);
    cr_assert_eq(cbx_registry_register(r, &c, NULL), 0);
    cbx_registry_free(r);
    cr_assert_eq(n_destroyed, 3);
    cr_assert_str_eq(destroyed[0], "c-third");
    cr_assert_str_eq(destroyed[1], "a-second");
    cr_assert_str_eq(destroyed[2], "b-first");
    cbx_registry_free(NULL);
}

/* ---- validation through a type ----------------------------------------------------------- */

static int hook_calls;
static json_t *hook_saw;

static int no_nine(const cbx_executor_type *type, const json_t *params, cbx_err *err)
{
    (void)type;
    hook_calls++;
    json_decref(hook_saw);
    hook_saw = json_deep_copy(params);
    if (json_integer_value(json_object_get(params, "n")) == 9)
        return cbx_err_set_at(err, CBX_EINVAL_CONFIG, "n", 0, 0, "nine is not allowed");
    return 0;
}

static int silent_refusal(const cbx_executor_type *type, const json_t *params, cbx_err *err)
{
    (void)type, (void)params, (void)err;
    return CBX_EINVAL_CONFIG;
}

Test(registry, validate_applies_defaults_then_the_hook)
{
    cbx_registry *r = fresh();
    cbx_executor_type t = TYPE("hooked");
    t.validate = no_nine;
    cr_assert_eq(cbx_registry_register(r, &t, NULL), 0);
    hook_calls = 0;

    json_t *in = json_pack("{s:s}", "word", "hi");
    json_t *norm = NULL;
    cbx_diag d = {0};
    cr_assert_eq(cbx_registry_validate(r, "hooked", in, &norm, &d), 0);
    cr_assert_eq(d.n, 0);
    cr_assert_eq(hook_calls, 1);
    cr_assert_eq(json_integer_value(json_object_get(hook_saw, "n")), 2, "the hook sees defaults");
    cr_assert_eq(json_integer_value(json_object_get(norm, "n")), 2);
    cr_assert_null(json_object_get(in, "n"), "the input is not changed");
    json_decref(norm);

    /* the hook runs even when no normalized copy is asked for */
    cr_assert_eq(cbx_registry_validate(r, "hooked", in, NULL, &d), 0);
    cr_assert_eq(hook_calls, 2);

    /* the hook's refusal is a problem in the diag */
    json_object_set_new(in, "n", json_integer(9));
    norm = (json_t *)1;
    cr_assert_eq(cbx_registry_validate(r, "hooked", in, &norm, &d), CBX_EINVAL_CONFIG);
    cr_assert_null(norm);
    cr_assert_eq(d.n, 1);
    cr_assert_str_eq(d.items[0].where, "n");
    cr_assert_str_eq(d.items[0].msg, "nine is not allowed");
    cbx_diag_clear(&d);

    /* the hook does not run when the schema already failed */
    json_object_set_new(in, "n", json_string("x"));
    cr_assert_eq(cbx_registry_validate(r, "hooked", in, NULL, &d), CBX_EINVAL_CONFIG);
    cr_assert_eq(hook_calls, 3);
    cr_assert_eq(d.n, 1);
    cr_assert_str_eq(d.items[0].msg, "expected integer, got string");
    cbx_diag_clear(&d);

    json_decref(in);
    json_decref(hook_saw);
    hook_saw = NULL;
    cbx_registry_free(r);
}

Test(registry, a_silent_hook_refusal_still_explains)
{
    cbx_registry *r = fresh();
    cbx_executor_type t = TYPE("quiet");
    t.validate = silent_refusal;
    cr_assert_eq(cbx_registry_register(r, &t, NULL), 0);
    json_t *in = json_pack("{s:s}", "word", "hi");
    cbx_diag d = {0};
    cr_assert_eq(cbx_registry_validate(r, "quiet", in, NULL, &d), CBX_EINVAL_CONFIG);
    cr_assert_eq(d.n, 1);
    cr_assert_eq(d.items[0].code, CBX_EINVAL_CONFIG);
    cr_assert_not_null(strstr(d.items[0].msg, "validate hook of 'quiet'"));
    cbx_diag_clear(&d);
    json_decref(in);
    cbx_registry_free(r);
}

Test(registry, validate_unknown_type)
{
    cbx_registry *r = fresh();
    cbx_executor_type t = TYPE("fetcher");
    cr_assert_eq(cbx_registry_register(r, &t, NULL), 0);
    json_t *in = json_object();
    cbx_diag d = {0};
    json_t *norm = (json_t *)1;
    cr_assert_eq(cbx_registry_validate(r, "fetchr", in, &norm, &d), CBX_EUNKNOWN_TYPE);
    cr_assert_null(norm);
    cr_assert_eq(d.n, 1);
    cr_assert_eq(d.items[0].code, CBX_EUNKNOWN_TYPE);
    cr_assert_str_eq(d.items[0].where, "fetchr");
    cr_assert_str_eq(d.items[0].msg, "unknown executor type 'fetchr'; did you mean 'fetcher'?");
    cbx_diag_clear(&d);
    cr_assert_eq(cbx_registry_validate(r, "qqqqqqqqqq", in, NULL, &d), CBX_EUNKNOWN_TYPE);
    cr_assert_str_eq(d.items[0].msg, "unknown executor type 'qqqqqqqqqq'");
    cbx_diag_clear(&d);
    cr_assert_eq(cbx_registry_validate(r, NULL, in, NULL, NULL), CBX_EUNKNOWN_TYPE);
    json_decref(in);
    cbx_registry_free(r);
}

Test(registry, validate_reports_every_problem)
{
    cbx_registry *r = fresh();
    cbx_executor_type t = TYPE("many");
    cr_assert_eq(cbx_registry_register(r, &t, NULL), 0);
    json_t *in = json_pack("{s:i, s:b}", "n", -1, "wrd", 1);
    cbx_diag d = {0};
    cr_assert_eq(cbx_registry_validate(r, "many", in, NULL, &d), CBX_EINVAL_CONFIG);
    cr_assert_eq(d.n, 3);
    cr_assert_str_eq(d.items[0].where, "n");
    cr_assert_str_eq(d.items[0].msg, "expected integer >= 0, got -1");
    cr_assert_str_eq(d.items[1].where, "word");
    cr_assert_str_eq(d.items[2].where, "wrd");
    cr_assert_not_null(strstr(d.items[2].msg, "did you mean 'word'?"));
    cbx_diag_clear(&d);
    json_decref(in);
    cbx_registry_free(r);
}
