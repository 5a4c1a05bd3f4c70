/* Executor types written in Lua, through the runtime: the examples, validation, the hooks,
 * errors with their file and line, a runaway script stopped by the attempt timeout, and files
 * refused at load time. Real files, real loop, real thread pool. */
#include "cbx/lua_executor.h"
#include "cbx/policy.h"
#include "cbx/runtime.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static cbx_runtime *rt;
static cbx_registry *reg;
static char dir[64];

static void setup(void)
{
    snprintf(dir, sizeof dir, "/tmp/cbx-lua-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    cbx_err err;
    cr_assert_eq(cbx_registry_new(&reg, &err), 0, "%s", err.msg);
    cr_assert_eq(
        cbx_runtime_new(&rt, &(cbx_runtime_opts){.registry = reg, .max_concurrent = 32}, &err), 0,
        "%s", err.msg);
}

static void teardown(void)
{
    cbx_runtime_free(rt);
    cbx_registry_free(reg);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_assert_eq(system(cmd), 0);
}

TestSuite(lua, .init = setup, .fini = teardown, .timeout = 60);

/* Write text to dir/name; returns the path (static buffer per call site is enough here). */
static const char *write_file(const char *name, const char *text)
{
    static char path[8][256];
    static int next;
    char *p = path[next++ % 8];
    snprintf(p, 256, "%s/%s", dir, name);
    FILE *f = fopen(p, "w");
    cr_assert_not_null(f);
    fputs(text, f);
    fclose(f);
    return p;
}

static void load(const char *path)
{
    cbx_err err;
    cbx_err_clear(&err);
    int rc = cbx_lua_executor_load(reg, path, &err);
    cr_assert_eq(rc, 0, "%s:%d: %s", err.where, err.line, err.msg);
}

static const char *load_source(const char *name, const char *text)
{
    const char *path = write_file(name, text);
    load(path);
    return path;
}

/* Load must fail: returns the error. */
static cbx_err load_fails(const char *name, const char *text)
{
    const char *path = write_file(name, text);
    cbx_err err;
    cbx_err_clear(&err);
    int rc = cbx_lua_executor_load(reg, path, &err);
    cr_assert_neq(rc, 0, "%s should be refused", name);
    cr_assert_eq(rc, err.code);
    cr_assert_str_eq(err.where, path);
    return err;
}

static int run(const char *type, const char *params_json, cbx_policy *pol, uint64_t timeout_ms,
               cbx_result *r, cbx_diag *d)
{
    json_error_t je;
    json_t *p = json_loads(params_json, 0, &je);
    cr_assert_not_null(p, "%s: %s", params_json, je.text);
    int rc = cbx_runtime_execute(
        rt,
        &(cbx_request){
            .executor = type, .params = p, .policy = pol, .timeout_ns = timeout_ms * CBX_NS_PER_MS},
        r, d);
    json_decref(p);
    return rc;
}

static void assert_json(const json_t *got, const char *want_text)
{
    json_t *want = json_loads(want_text, JSON_DECODE_ANY, NULL);
    cr_assert_not_null(want, "%s", want_text);
    char *g = got ? json_dumps(got, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY) : NULL;
    cr_assert(got && json_equal(got, want), "got %s, want %s", g ? g : "NULL", want_text);
    free(g);
    json_decref(want);
}

/* ---- the examples -----------------------------------------------------------------------------
 */

Test(lua, the_word_count_example_runs)
{
    load(CBX_SOURCE_DIR "/examples/lua/word_count.lua");
    const cbx_executor_type *t = cbx_registry_find(reg, "word_count");
    cr_assert_not_null(t);
    cr_assert_str_eq(t->summary, "Counts the words of a text");
    cr_assert_str_eq(t->params[0].name, "min"); /* a map of params is sorted by name */
    cr_assert_eq(t->params[0].type, CBX_PARAM_INTEGER);
    cr_assert_str_eq(t->params[0].default_json, "0");
    cr_assert_str_eq(t->params[1].name, "text");
    cr_assert_eq(t->params[1].required, 1);
    cr_assert_str_eq(t->params[1].description, "the text");
    cr_assert_null(t->params[2].name);

    cbx_result r;
    int rc = run("word_count", "{\"text\": \"the quick  brown\\tfox\\njumps\"}", NULL, 0, &r, NULL);
    cr_assert_eq(rc, 0, "%s", r.error);
    assert_json(r.outputs, "{\"words\": 5, \"longest\": \"quick\"}");
    cr_assert_gt(
        json_integer_value(json_object_get(json_object_get(r.metadata, "lua"), "instructions")),
        -1);
    cbx_result_clear(&r);
    rc = run("word_count", "{\"text\": \"a bb ccc dddd\", \"min\": 3}", NULL, 0, &r, NULL);
    cr_assert_eq(rc, 0, "%s", r.error);
    assert_json(r.outputs, "{\"words\": 2, \"longest\": \"dddd\"}");
    cbx_result_clear(&r);
}

Test(lua, bad_params_are_rejected_with_the_param_named)
{
    load(CBX_SOURCE_DIR "/examples/lua/word_count.lua");
    cbx_result r;
    cbx_diag d = {0};
    int rc = run("word_count", "{\"min\": \"three\"}", NULL, 0, &r, &d);
    cr_assert_eq(rc, CBX_EINVAL_CONFIG);
    cr_assert_eq(r.status, CBX_STATUS_REJECTED);
    cr_assert_eq(d.n, 2);
    int saw_text = 0, saw_min = 0;
    for (size_t i = 0; i < d.n; i++) {
        saw_text |= strcmp(d.items[i].where, "text") == 0;
        saw_min |= strcmp(d.items[i].where, "min") == 0;
    }
    cr_assert(saw_text && saw_min);
    cbx_diag_clear(&d);
    cbx_result_clear(&r);
}

Test(lua, the_validate_hook_refuses_naming_the_param)
{
    load_source("v.lua", "return executor {\n"
                         "  name = 'v',\n"
                         "  params = {n = {type = 'integer', default = 1}},\n"
                         "  validate = function(p)\n"
                         "    if p.n > 10 then return {n = 'at most 10, got ' .. p.n} end\n"
                         "    if p.n < 0 then return nil, 'negative' end\n"
                         "  end,\n"
                         "  run = function(p) return p.n end,\n"
                         "}\n");
    cbx_result r;
    cbx_diag d = {0};
    int rc = run("v", "{\"n\": 11}", NULL, 0, &r, &d);
    cr_assert_eq(rc, CBX_EINVAL_CONFIG);
    cr_assert_eq(d.n, 1);
    cr_assert_str_eq(d.items[0].where, "n");
    cr_assert_str_eq(d.items[0].msg, "n: at most 10, got 11");
    cbx_diag_clear(&d);
    cbx_result_clear(&r);
    rc = run("v", "{\"n\": -1}", NULL, 0, &r, NULL);
    cr_assert_eq(rc, CBX_EINVAL_CONFIG);
    cr_assert(strstr(r.error, "negative"), "%s", r.error);
    cbx_result_clear(&r);
    rc = run("v", "{}", NULL, 0, &r, NULL);
    cr_assert_eq(rc, 0, "%s", r.error);
    cr_assert_eq(json_integer_value(r.outputs), 1);
    cbx_result_clear(&r);
}

Test(lua, the_grade_example_reports_quality_to_the_policy)
{
    load(CBX_SOURCE_DIR "/examples/lua/keyword_grade.lua");
    cbx_result r;
    const char *good = "{\"answer\": \"It trips OPEN, then a probe closes it\","
                       " \"keywords\": [\"open\", \"probe\"]}";
    const char *poor = "{\"answer\": \"It trips\", \"keywords\": [\"open\", \"probe\"]}";
    int rc = run("keyword_grade", good, NULL, 0, &r, NULL);
    cr_assert_eq(rc, 0, "%s", r.error);
    cr_assert_float_eq(json_number_value(json_object_get(r.outputs, "score")), 1.0, 1e-9);
    cr_assert(json_is_number(json_object_get(r.outputs, "cpu_seconds")), "after ran");
    cr_assert_float_eq(json_number_value(json_object_get(r.metadata, "quality")), 1.0, 1e-9);
    cbx_result_clear(&r);

    json_t *b = json_loads("{\"quality\": {\"threshold\": 0.5}}", 0, NULL);
    cbx_policy *pol = NULL;
    cr_assert_eq(cbx_policy_new_json(&pol, b, NULL, NULL), 0);
    json_decref(b);
    rc = run("keyword_grade", poor, pol, 0, &r, NULL);
    cr_assert_neq(rc, 0);
    cr_assert_eq(r.status, CBX_STATUS_FAILED);
    cbx_result_clear(&r);
    rc = run("keyword_grade", good, pol, 0, &r, NULL);
    cr_assert_eq(rc, 0, "%s", r.error);
    cbx_result_clear(&r);
    cbx_policy_free(pol);

    cbx_diag d = {0};
    rc = run("keyword_grade", "{\"answer\": \"x\", \"keywords\": [\"a\", \"\"]}", NULL, 0, &r, &d);
    cr_assert_eq(rc, CBX_EINVAL_CONFIG);
    cr_assert_str_eq(d.items[0].where, "keywords");
    cbx_diag_clear(&d);
    cbx_result_clear(&r);
}

/* ---- hooks --------------------------------------------------------------------------------------
 */

static const char hooks_lua[] =
    "local seen = {}\n"
    "return executor {\n"
    "  name = 'hooks',\n"
    "  params = {\n"
    "    {name = 'n', type = 'integer', default = 1},\n"
    "    {name = 'mode', type = 'string', default = 'ok', enum = {'ok', 'refuse', 'reject'}},\n"
    "  },\n"
    "  before = function(p, ctx)\n"
    "    if p.mode == 'refuse' then return 'refused by before' end\n"
    "    seen.before = ctx.attempt\n"
    "    seen.id = ctx.execution_id\n"
    "  end,\n"
    "  run = function(p, ctx)\n"
    "    return {before_saw = seen.before, same_id = seen.id == ctx.execution_id, n = p.n}\n"
    "  end,\n"
    "  after = function(p, out, info)\n"
    "    if p.mode == 'reject' then return nil, 'rejected by after' end\n"
    "    if out then out.after = info.outcome .. '#' .. info.attempt return out end\n"
    "  end,\n"
    "}\n";

Test(lua, before_and_after_run_around_each_attempt)
{
    load_source("hooks.lua", hooks_lua);
    const cbx_executor_type *t = cbx_registry_find(reg, "hooks");
    cr_assert_str_eq(t->params[0].name, "n"); /* a list of params keeps its order */
    cr_assert_str_eq(t->params[1].enum_values[2], "reject");
    cbx_result r;
    int rc = run("hooks", "{\"n\": 4}", NULL, 0, &r, NULL);
    cr_assert_eq(rc, 0, "%s", r.error);
    assert_json(r.outputs,
                "{\"before_saw\": 1, \"same_id\": true, \"n\": 4, \"after\": \"success#1\"}");
    cbx_result_clear(&r);

    rc = run("hooks", "{\"mode\": \"refuse\"}", NULL, 0, &r, NULL);
    cr_assert_eq(rc, CBX_EFAILED);
    cr_assert(strstr(r.error, "refused by before"), "%s", r.error);
    cbx_result_clear(&r);

    rc = run("hooks", "{\"mode\": \"reject\"}", NULL, 0, &r, NULL);
    cr_assert_eq(rc, CBX_EFAILED);
    cr_assert_str_eq(r.error, "rejected by after");
    cr_assert_eq(r.status, CBX_STATUS_FAILED);
    cbx_result_clear(&r);
}

Test(lua, each_attempt_gets_a_fresh_state)
{
    load_source("fresh.lua", "count = (count or 0) + 1\n"
                             "return executor {name = 'fresh',\n"
                             "  run = function() count = count + 1 return count end}\n");
    json_t *p = json_object();
    cbx_policy *pol = NULL;
    json_t *b = json_loads("{\"retry\": {\"attempts\": 3, \"initial\": \"1ms\"}}", 0, NULL);
    cr_assert_eq(cbx_policy_new_json(&pol, b, NULL, NULL), 0);
    json_decref(b);
    for (int i = 0; i < 3; i++) {
        cbx_result r;
        int rc = run("fresh", "{}", pol, 0, &r, NULL);
        cr_assert_eq(rc, 0, "%s", r.error);
        cr_assert_eq(json_integer_value(r.outputs), 2, "state leaked between attempts");
        cbx_result_clear(&r);
    }
    cbx_policy_free(pol);
    json_decref(p);
}

Test(lua, attempts_run_in_parallel)
{
    load(CBX_SOURCE_DIR "/examples/lua/word_count.lua");
    enum { N = 32 };
    cbx_request reqs[N];
    cbx_result res[N];
    json_t *ps[N];
    for (int i = 0; i < N; i++) {
        char text[64];
        snprintf(text, sizeof text, "%.*s", 2 * (i % 10) + 1, "a b c d e f g h i j k l m n o p");
        ps[i] = json_pack("{s:s}", "text", text);
        reqs[i] = (cbx_request){.executor = "word_count", .params = ps[i]};
    }
    cr_assert_eq(cbx_runtime_execute_many(rt, reqs, N, 0, res), N);
    for (int i = 0; i < N; i++) {
        cr_assert_eq(json_integer_value(json_object_get(res[i].outputs, "words")), i % 10 + 1);
        cbx_result_clear(&res[i]);
        json_decref(ps[i]);
    }
}

/* ---- failures of an attempt ---------------------------------------------------------------------
 */

Test(lua, an_error_in_run_is_a_failed_attempt_with_the_lua_message)
{
    const char *path = load_source("boom.lua", "return executor {\n"
                                               "  name = 'boom',\n"
                                               "  run = function(p)\n"
                                               "    local t = nil\n"
                                               "    return t.field\n"
                                               "  end,\n"
                                               "}\n");
    cbx_result r;
    int rc = run("boom", "{}", NULL, 0, &r, NULL);
    cr_assert_eq(rc, CBX_EFAILED);
    cr_assert_eq(r.status, CBX_STATUS_FAILED);
    char want[400];
    snprintf(want, sizeof want, "%s:5: attempt to index a nil value (local 't')", path);
    cr_assert_str_eq(r.error, want);
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(r.attempts, 0), "outcome")),
                     "error");
    cbx_result_clear(&r);
}

Test(lua, run_may_return_an_error_message)
{
    load_source("soft.lua", "return executor {name = 'soft', run = function(p)\n"
                            "  return nil, 'upstream said no' end}\n");
    cbx_result r;
    int rc = run("soft", "{}", NULL, 0, &r, NULL);
    cr_assert_eq(rc, CBX_EFAILED);
    cr_assert_str_eq(r.error, "upstream said no");
    cbx_result_clear(&r);
}

Test(lua, the_sandbox_holds_inside_run)
{
    load_source("escape.lua", "return executor {name = 'escape', run = function(p)\n"
                              "  return io.open('/etc/passwd'):read('a') end}\n");
    cbx_result r;
    int rc = run("escape", "{}", NULL, 0, &r, NULL);
    cr_assert_eq(rc, CBX_EFAILED);
    cr_assert(strstr(r.error, ":2: io is not available in the sandbox"), "%s", r.error);
    cbx_result_clear(&r);

    load_source("hog.lua", "return executor {name = 'hog', limits = {memory = 1048576},\n"
                           "  run = function(p) return #string.rep('x', 1e7) end}\n");
    rc = run("hog", "{}", NULL, 0, &r, NULL);
    cr_assert_eq(rc, CBX_EFAILED);
    cr_assert(strstr(r.error, "memory limit exceeded"), "%s", r.error);
    cbx_result_clear(&r);
}

Test(lua, a_script_that_loops_forever_is_stopped_at_the_attempt_timeout)
{
    load_source("spin.lua", "return executor {\n"
                            "  name = 'spin',\n"
                            "  run = function(p)\n"
                            "    local n = 0\n"
                            "    while true do n = n + 1 end\n"
                            "  end,\n"
                            "  after = function(p, out, info) end,\n"
                            "}\n");
    cbx_result r;
    int rc = run("spin", "{}", NULL, 100, &r, NULL);
    cr_assert_eq(rc, CBX_ETIMEDOUT);
    cr_assert_eq(r.status, CBX_STATUS_TIMEOUT);
    cr_assert_geq(r.duration_ns, 100 * CBX_NS_PER_MS);
    cbx_result_clear(&r);
    /* the pool thread came back: more work runs, and the teardown does not hang */
    load(CBX_SOURCE_DIR "/examples/lua/word_count.lua");
    for (int i = 0; i < 8; i++) {
        rc = run("word_count", "{\"text\": \"still here\"}", NULL, 0, &r, NULL);
        cr_assert_eq(rc, 0, "%s", r.error);
        cbx_result_clear(&r);
    }
}

Test(lua, limits_instructions_bounds_run)
{
    load_source("bounded.lua", "return executor {name = 'bounded', limits = {instructions = 1e5},\n"
                               "  run = function(p) while true do end end}\n");
    cbx_result r;
    int rc = run("bounded", "{}", NULL, 0, &r, NULL);
    cr_assert_eq(rc, CBX_EFAILED);
    cr_assert(strstr(r.error, "instruction limit exceeded"), "%s", r.error);
    cbx_result_clear(&r);
}

/* ---- files refused at load time -----------------------------------------------------------------
 */

Test(lua, a_syntax_error_is_refused_with_file_and_line)
{
    cbx_err err = load_fails("syntax.lua", "return executor {\n"
                                           "  name = 'syntax',\n"
                                           "  run = function(p) return p + end,\n"
                                           "}\n");
    cr_assert_eq(err.code, CBX_EPARSE);
    cr_assert_eq(err.line, 3);
    cr_assert(strstr(err.msg, "unexpected symbol near 'end'"), "%s", err.msg);
}

Test(lua, a_bad_schema_is_refused_with_file_and_line)
{
    cbx_err err = load_fails("schema.lua", "-- a comment\n"
                                           "\n"
                                           "return executor {\n"
                                           "  name = 'schema',\n"
                                           "  params = {text = {type = 'strng'}},\n"
                                           "  run = function(p) end,\n"
                                           "}\n");
    cr_assert_eq(err.code, CBX_EINVAL_CONFIG);
    cr_assert_eq(err.line, 3);
    cr_assert(strstr(err.msg, "params.text.type: unknown type 'strng'"), "%s", err.msg);

    err = load_fails("field.lua", "return executor {name = 'field',\n"
                                  "  params = {text = {type = 'string', requird = true}},\n"
                                  "  run = function(p) end}\n");
    cr_assert_str_eq(err.msg, "params.text: unknown field 'requird'; did you mean 'required'?");
    cr_assert_eq(err.line, 1);

    err = load_fails("norun.lua", "return executor {name = 'norun'}\n");
    cr_assert_str_eq(err.msg, "run: expected a function, got nil");

    err = load_fails("top.lua", "return executor {name = 'top', rn = function() end}\n");
    cr_assert(strstr(err.msg, "executor: unknown field 'rn'; did you mean 'run'?"), "%s", err.msg);

    err = load_fails("enum.lua", "return executor {name = 'enum', run = function() end,\n"
                                 "  params = {m = {type = 'string', enum = {'a', 2}}}}\n");
    cr_assert(strstr(err.msg, "params.m.enum[2]: expected a string, got number"), "%s", err.msg);

    /* the registry's own checks: a default that does not fit its type */
    err = load_fails("default.lua", "\nreturn executor {name = 'default', run = function() end,\n"
                                    "  params = {n = {type = 'integer', default = 'ten'}}}\n");
    cr_assert_eq(err.code, CBX_EINVAL_CONFIG);
    cr_assert_eq(err.line, 2);
    cr_assert(strstr(err.msg, "default"), "%s", err.msg);

    err = load_fails("name.lua", "return executor {name = 'Bad Name', run = function() end}\n");
    cr_assert(strstr(err.msg, "bad executor type name"), "%s", err.msg);
    cr_assert_null(cbx_registry_find(reg, "schema"));
}

Test(lua, a_file_that_fails_when_run_is_refused_with_its_line)
{
    cbx_err err = load_fails("fails.lua", "local x = 1\n"
                                          "\n"
                                          "error('not today')\n");
    cr_assert_eq(err.code, CBX_EINVAL_CONFIG);
    cr_assert_eq(err.line, 3);
    cr_assert(strstr(err.msg, "not today"), "%s", err.msg);

    err = load_fails("nothing.lua", "local x = 1\n");
    cr_assert(strstr(err.msg, "must return executor { ... }"), "%s", err.msg);

    err = load_fails("loop.lua", "while true do end\n");
    cr_assert(strstr(err.msg, "instruction limit exceeded"), "%s", err.msg);

    err = load_fails("sneaky.lua", "local f = io.open('/etc/passwd')\n");
    cr_assert(strstr(err.msg, "io is not available in the sandbox"), "%s", err.msg);
}

Test(lua, a_missing_file_or_a_taken_name_is_refused)
{
    cbx_err err;
    int rc = cbx_lua_executor_load(reg, "/nonexistent/x.lua", &err);
    cr_assert_eq(rc, -ENOENT);
    cr_assert_str_eq(err.where, "/nonexistent/x.lua");

    load(CBX_SOURCE_DIR "/examples/lua/word_count.lua");
    cbx_err e2 =
        load_fails("again.lua", "return executor {name = 'word_count', run = function() end}\n");
    cr_assert_eq(e2.code, CBX_EEXISTS);
    cr_assert_eq(e2.line, 1);
    cr_assert(strstr(e2.msg, "'word_count' is already registered"), "%s", e2.msg);
}

Test(lua, a_directory_of_files_loads_in_name_order_and_unregisters)
{
    write_file("b.lua", "return executor {name = 'b_type', run = function() return 'b' end}\n");
    write_file("a.lua", "return executor {name = 'a_type', run = function() return 'a' end}\n");
    write_file("notes.txt", "not Lua\n");
    char path[200];
    snprintf(path, sizeof path, "/nonexistent:%s", dir);
    cbx_err err;
    cr_assert_eq(cbx_lua_executor_load_path(reg, path, &err), 2);
    cbx_result r;
    cr_assert_eq(run("a_type", "{}", NULL, 0, &r, NULL), 0);
    cr_assert_str_eq(json_string_value(r.outputs), "a");
    cbx_result_clear(&r);
    cr_assert_eq(cbx_registry_unregister(reg, "a_type", &err), 0);
    cr_assert_null(cbx_registry_find(reg, "a_type"));
    cr_assert_not_null(cbx_registry_find(reg, "b_type"));
}

Test(lua, a_secret_param_stays_secret)
{
    load_source("secret.lua", "return executor {name = 'secret',\n"
                              "  params = {token = {type = 'string', secret = true}},\n"
                              "  run = function(p) return #p.token end}\n");
    const cbx_executor_type *t = cbx_registry_find(reg, "secret");
    json_t *v = json_pack("{s:s}", "token", "hunter2");
    json_t *shown = cbx_schema_redact(t->params, v);
    cr_assert_str_eq(json_string_value(json_object_get(shown, "token")), "***");
    json_decref(shown);
    cbx_result r;
    cr_assert_eq(
        cbx_runtime_execute(rt, &(cbx_request){.executor = "secret", .params = v}, &r, NULL), 0);
    cr_assert_eq(json_integer_value(r.outputs), 7);
    cbx_result_clear(&r);
    json_decref(v);
}
