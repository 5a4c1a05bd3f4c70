/* Redaction of secret headers and environment variables, alone and through the journal. */
#define _GNU_SOURCE /* memmem */
#include "cbx/journal.h"
#include "runtime/redact.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static json_t *parse(const char *text)
{
    json_error_t e;
    json_t *v = json_loads(text, 0, &e);
    cr_assert_not_null(v, "%s: %s", text, e.text);
    return v;
}

static const char *str_at(json_t *v, const char *path)
{
    /* path: keys and [n] indices separated by '.', e.g. "a.b.[1].c" */
    char buf[256];
    snprintf(buf, sizeof buf, "%s", path);
    json_t *cur = v;
    for (char *save = NULL, *tok = strtok_r(buf, ".", &save); tok;
         tok = strtok_r(NULL, ".", &save)) {
        if (tok[0] == '[')
            cur = json_array_get(cur, (size_t)atoi(tok + 1));
        else
            cur = json_object_get(cur, tok);
        cr_assert_not_null(cur, "%s: nothing at %s", path, tok);
    }
    cr_assert(json_is_string(cur), "%s is not a string", path);
    return json_string_value(cur);
}

Test(redact_names, header_names_any_case)
{
    const char *secret[] = {"Authorization",       "authorization", "AUTHORIZATION",
                            "Proxy-Authorization", "Cookie",        "set-cookie",
                            "X-Api-Key",           "api-key",       "X-Auth-Token",
                            "X-Client-Secret",     "X-Csrf-Token"};
    for (size_t i = 0; i < sizeof secret / sizeof secret[0]; i++)
        cr_assert(cbx__redact_header_name(NULL, secret[i]), "%s should be secret", secret[i]);
    const char *plain[] = {
        "Content-Type",           "Accept", "User-Agent", "Keep-Alive", "X-Request-Id",
        "Authorization-Hint-Not", ""};
    for (size_t i = 0; i < sizeof plain / sizeof plain[0]; i++)
        cr_assert_not(cbx__redact_header_name(NULL, plain[i]), "%s should not be secret", plain[i]);
}

Test(redact_names, env_names_builtin_and_extra)
{
    const char *secret[] = {"GITHUB_TOKEN",          "token",
                            "DB_PASSWORD",           "MYSQL_PASSWD",
                            "CLIENT_SECRET",         "STRIPE_KEY",
                            "OPENAI_API_KEY",        "GOOGLEAPIKEY",
                            "AWS_SECRET_ACCESS_KEY", "GPG_PASSPHRASE",
                            "SSH_PRIVATE_KEY_FILE",  "GOOGLE_APPLICATION_CREDENTIALS",
                            "aws_session_token"};
    for (size_t i = 0; i < sizeof secret / sizeof secret[0]; i++)
        cr_assert(cbx__redact_env_name(NULL, secret[i]), "%s should be secret", secret[i]);
    const char *plain[] = {"PATH", "HOME", "LANG", "KEYBOARD", "AWS_REGION", "PWD", "DB_USER"};
    for (size_t i = 0; i < sizeof plain / sizeof plain[0]; i++)
        cr_assert_not(cbx__redact_env_name(NULL, plain[i]), "%s should not be secret", plain[i]);

    cbx__redact_rules r;
    const char *extra[] = {"DB_USER", "INTERNAL_*", NULL};
    cr_assert_eq(cbx__redact_rules_init(&r, extra), 0);
    cr_assert(cbx__redact_env_name(&r, "DB_USER"));
    cr_assert(cbx__redact_env_name(&r, "internal_url"));
    cr_assert(cbx__redact_env_name(&r, "GITHUB_TOKEN"), "the built-in list still applies");
    cr_assert_not(cbx__redact_env_name(&r, "PATH"));
    cbx__redact_rules_clear(&r);
    cbx__redact_rules_clear(&r);
}

Test(redact_json, objects_anywhere_and_the_input_untouched)
{
    const char *text = "{\"url\": \"http://x\", \"headers\": {\"Authorization\": \"Bearer s3cr3t\","
                       " \"Accept\": \"*/*\"},"
                       " \"env\": {\"GITHUB_TOKEN\": \"ghp_abc\", \"PATH\": \"/bin\"},"
                       " \"steps\": [{\"config\": {\"Headers\": {\"cookie\": \"sid=1\"},"
                       " \"environment\": {\"DB_PASSWORD\": 42}}}],"
                       " \"token\": \"not in an env block: kept\"}";
    json_t *in = parse(text);
    char *before = json_dumps(in, JSON_SORT_KEYS);
    cr_assert_eq(cbx__redact_count(NULL, in), 4);
    json_t *out = NULL;
    cr_assert_eq(cbx__redact_json(NULL, in, &out), 0);
    cr_assert_not_null(out);
    cr_assert_str_eq(str_at(out, "headers.Authorization"), "***");
    cr_assert_str_eq(str_at(out, "headers.Accept"), "*/*");
    cr_assert_str_eq(str_at(out, "env.GITHUB_TOKEN"), "***");
    cr_assert_str_eq(str_at(out, "env.PATH"), "/bin");
    cr_assert_str_eq(str_at(out, "steps.[0].config.Headers.cookie"), "***");
    cr_assert_str_eq(str_at(out, "steps.[0].config.environment.DB_PASSWORD"), "***");
    cr_assert_str_eq(str_at(out, "token"), "not in an env block: kept");
    cr_assert_str_eq(str_at(out, "url"), "http://x");
    cr_assert_eq(cbx__redact_count(NULL, out), 0, "already redacted");

    char *after = json_dumps(in, JSON_SORT_KEYS);
    cr_assert_str_eq(before, after);
    free(before);
    free(after);
    json_decref(out);
    json_decref(in);
}

Test(redact_json, string_forms_in_arrays)
{
    json_t *in = parse("{\"env\": [\"API_TOKEN=abc\", \"PATH=/bin\", \"NOEQUALS\","
                       " \"SECRET_X=a=b\"],"
                       " \"headers\": [\"Authorization: Basic dXNlcjpwYXNz\","
                       " \"Content-Type: text/plain\", \"X-Api-Key:k1\","
                       " {\"name\": \"Cookie\", \"value\": \"c=1\"},"
                       " {\"name\": \"Accept\", \"value\": \"a\"}]}");
    json_t *out = NULL;
    cr_assert_eq(cbx__redact_json(NULL, in, &out), 0);
    cr_assert_not_null(out);
    cr_assert_str_eq(str_at(out, "env.[0]"), "API_TOKEN=***");
    cr_assert_str_eq(str_at(out, "env.[1]"), "PATH=/bin");
    cr_assert_str_eq(str_at(out, "env.[2]"), "NOEQUALS");
    cr_assert_str_eq(str_at(out, "env.[3]"), "SECRET_X=***");
    cr_assert_str_eq(str_at(out, "headers.[0]"), "Authorization: ***");
    cr_assert_str_eq(str_at(out, "headers.[1]"), "Content-Type: text/plain");
    cr_assert_str_eq(str_at(out, "headers.[2]"), "X-Api-Key: ***");
    cr_assert_str_eq(str_at(out, "headers.[3].value"), "***");
    cr_assert_str_eq(str_at(out, "headers.[4].value"), "a");
    json_decref(out);
    json_decref(in);
}

Test(redact_json, nothing_secret_gives_no_copy)
{
    json_t *in = parse("{\"argv\": [\"ls\", \"-l\"], \"env\": {\"PATH\": \"/bin\"},"
                       " \"headers\": {\"Accept\": \"x\"}, \"headers_extra\": {\"Cookie\": 1}}");
    json_t *out = (json_t *)1;
    cr_assert_eq(cbx__redact_json(NULL, in, &out), 0);
    cr_assert_null(out);
    cr_assert_eq(cbx__redact_count(NULL, in), 0);
    cr_assert_eq(cbx__redact_count(NULL, NULL), 0);
    json_decref(in);
    json_t *s = json_string("Authorization: x");
    cr_assert_eq(cbx__redact_count(NULL, s), 0, "a lone string is not in a headers block");
    json_decref(s);
}

/* ---- through the journal: the secret never reaches the file ------------------------------ */

static const char *const secrets[] = {
    "s3cr3t-bearer-value", "ghp_tokenvalue123", "hunter2-password", "sid=cookievalue",
    "ENV-ARRAY-SECRET",    "custom-var-value",  "setcookie-out",
};

/* Every text column of every table, read back with SQLite. */
static void assert_db_free_of(const char *path, const char *needle)
{
    sqlite3 *db;
    cr_assert_eq(sqlite3_open(path, &db), SQLITE_OK);
    sqlite3_stmt *tables;
    cr_assert_eq(sqlite3_prepare_v2(db, "SELECT name FROM sqlite_master WHERE type = 'table'", -1,
                                    &tables, NULL),
                 SQLITE_OK);
    int ntables = 0, nvalues = 0;
    while (sqlite3_step(tables) == SQLITE_ROW) {
        char sql[256];
        snprintf(sql, sizeof sql, "SELECT * FROM \"%s\"", sqlite3_column_text(tables, 0));
        sqlite3_stmt *st;
        cr_assert_eq(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
        while (sqlite3_step(st) == SQLITE_ROW) {
            for (int c = 0; c < sqlite3_column_count(st); c++) {
                const char *t = (const char *)sqlite3_column_text(st, c);
                if (!t)
                    continue;
                nvalues++;
                cr_assert(strstr(t, needle) == NULL, "%s found in %s.%s: %s", needle,
                          sqlite3_column_text(tables, 0), sqlite3_column_name(st, c), t);
            }
        }
        sqlite3_finalize(st);
        ntables++;
    }
    sqlite3_finalize(tables);
    sqlite3_close(db);
    cr_assert_geq(ntables, 2);
    cr_assert_gt(nvalues, 10);
}

/* 1 when the raw bytes of the file hold needle; 0 when they do not or there is no file. */
static int file_contains(const char *path, const char *needle)
{
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return 0;
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    cr_assert_not_null(buf);
    cr_assert_eq(fread(buf, 1, (size_t)n, fp), (size_t)n);
    fclose(fp);
    int found = memmem(buf, (size_t)n, needle, strlen(needle)) != NULL;
    free(buf);
    return found;
}

static void assert_file_free_of(const char *path, const char *needle)
{
    cr_assert_not(file_contains(path, needle), "%s found in %s", needle, path);
}

Test(redact_journal, secrets_never_reach_the_file)
{
    char dir[] = "/tmp/cbx-redact-test-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char path[256], wal[270];
    snprintf(path, sizeof path, "%s/j.db", dir);
    snprintf(wal, sizeof wal, "%s-wal", path);
    const char *extra[] = {"MY_CUSTOM_*", NULL};
    cbx_journal *j = NULL;
    cbx_err err;
    cr_assert_eq(cbx_journal_open(&j, &(cbx_journal_opts){.path = path, .redact_env = extra}, &err),
                 0, "%s", err.msg);

    json_t *params = json_pack(
        "{s:s, s:{s:s, s:s, s:s}, s:{s:s, s:s, s:s}}", "url", "http://127.0.0.1/x", "headers",
        "Authorization", "Bearer s3cr3t-bearer-value", "Cookie", "sid=cookievalue", "Accept",
        "application/json", "env", "GITHUB_TOKEN", "ghp_tokenvalue123", "DB_PASSWORD",
        "hunter2-password", "MY_CUSTOM_VAR", "custom-var-value");
    json_t *metadata =
        json_pack("{s:[s, s], s:i}", "env", "DEPLOY_TOKEN=ENV-ARRAY-SECRET", "LANG=C", "pid", 42);
    json_t *outputs = json_pack("{s:i, s:{s:s, s:s}}", "status", 200, "headers", "Set-Cookie",
                                "setcookie-out", "Content-Type", "text/plain");
    for (int i = 0; i < 3; i++) {
        char id[16];
        snprintf(id, sizeof id, "s%d", i);
        cbx_journal_execution e = {
            .id = id, .executor = "http", .params = params, .submitted_ms = 1000 + (uint64_t)i};
        cr_assert_eq(cbx_journal_execution_start(j, &e, &err), 0, "%s", err.msg);
        cbx_journal_attempt_info a = {
            .execution_id = id, .number = 1, .outcome = "success", .metadata = metadata};
        cr_assert_eq(cbx_journal_attempt(j, &a, &err), 0, "%s", err.msg);
        cbx_journal_end end = {.execution_id = id,
                               .status = "success",
                               .attempts = 1,
                               .outputs = outputs,
                               .ended_ms = 1010 + (uint64_t)i,
                               .duration_ns = 10000000};
        cr_assert_eq(cbx_journal_execution_end(j, &end, &err), 0, "%s", err.msg);
    }
    /* the caller's values were not changed */
    cr_assert_str_eq(str_at(params, "headers.Authorization"), "Bearer s3cr3t-bearer-value");

    /* what the journal gives back is redacted, the rest intact */
    json_t *row = NULL;
    cr_assert_eq(cbx_journal_get(j, "s1", &row, &err), 0, "%s", err.msg);
    cr_assert_str_eq(str_at(row, "params.headers.Authorization"), "***");
    cr_assert_str_eq(str_at(row, "params.headers.Accept"), "application/json");
    cr_assert_str_eq(str_at(row, "params.env.MY_CUSTOM_VAR"), "***");
    cr_assert_str_eq(str_at(row, "params.url"), "http://127.0.0.1/x");
    cr_assert_str_eq(str_at(row, "attempts.[0].metadata.env.[0]"), "DEPLOY_TOKEN=***");
    cr_assert_str_eq(str_at(row, "attempts.[0].metadata.env.[1]"), "LANG=C");
    cr_assert_str_eq(str_at(row, "outputs.headers.Set-Cookie"), "***");
    json_decref(row);

    /* while the batch may still be in the WAL, and after close */
    cr_assert_eq(cbx_journal_flush(j, &err), 0, "%s", err.msg);
    for (size_t i = 0; i < sizeof secrets / sizeof secrets[0]; i++) {
        assert_file_free_of(path, secrets[i]);
        assert_file_free_of(wal, secrets[i]);
    }
    cbx_journal_close(j);
    /* the files as the journal left them, then as SQLite reads them */
    cr_assert(file_contains(path, "application/json") || file_contains(wal, "application/json"));
    for (size_t i = 0; i < sizeof secrets / sizeof secrets[0]; i++) {
        assert_file_free_of(path, secrets[i]);
        assert_file_free_of(wal, secrets[i]);
    }
    for (size_t i = 0; i < sizeof secrets / sizeof secrets[0]; i++) {
        assert_db_free_of(path, secrets[i]);
        assert_file_free_of(path, secrets[i]);
        assert_file_free_of(wal, secrets[i]);
    }
    /* the checks can fail: the unredacted neighbour is there, in the database or its WAL */
    cr_assert(file_contains(path, "application/json") || file_contains(wal, "application/json"));

    json_decref(params);
    json_decref(metadata);
    json_decref(outputs);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_assert_eq(system(cmd), 0);
}

/* ---- the writer: the same text as jansson's, masked ---------------------------------------- */

/* got is want, or, where want has reals, the same value in no more bytes (reals are written
 * with the fewest digits that read back: 0.1, not jansson's 0.10000000000000001). */
static void assert_same_text(const char *got, size_t len, const char *want)
{
    if (!strpbrk(want, ".eE")) {
        cr_assert_eq(len, strlen(want), "%.*s vs %s", (int)len, got, want);
        cr_assert_eq(memcmp(got, want, len), 0, "%.*s vs %s", (int)len, got, want);
        return;
    }
    cr_assert_leq(len, strlen(want), "%.*s longer than %s", (int)len, got, want);
    json_t *a = json_loadb(got, len, JSON_DECODE_ANY, NULL),
           *b = json_loads(want, JSON_DECODE_ANY, NULL);
    cr_assert(a && b && json_equal(a, b), "%.*s vs %s", (int)len, got, want);
    json_decref(a);
    json_decref(b);
}

static void assert_dump_matches_jansson(const char *text)
{
    json_error_t e;
    json_t *v = json_loads(text, JSON_DECODE_ANY, &e);
    cr_assert_not_null(v, "%s: %s", text, e.text);
    json_t *red = NULL;
    cr_assert_eq(cbx__redact_json(NULL, v, &red), 0);
    char *want = json_dumps(red ? red : v, JSON_COMPACT | JSON_ENCODE_ANY);
    cbx__strbuf b = {0};
    cr_assert_eq(cbx__redact_dump(NULL, v, &b), 0);
    assert_same_text(b.p, b.len, want);
    free(want);
    free(b.p);
    json_decref(red);
    json_decref(v);
}

Test(redact_dump, writes_what_jansson_writes)
{
    const char *cases[] = {
        "null",
        "true",
        "[]",
        "{}",
        "\"\"",
        "0",
        "-9223372036854775808",
        "9223372036854775807",
        "[1.5, -0.25, 1e300, 1e-300, 3.0, 0.1, 123456789.125, -1e22, 2.5e-8]",
        "\"quote \\\" backslash \\\\ slash / tab \\t nl \\n cr \\r bs \\b ff \\f\"",
        "\"ctl \\u0001 \\u001f del \\u007f\"",
        "\"utf-8: \\u00e9 \\u4e2d \\ud83d\\ude00\"",
        "{\"a\": {\"b\": [1, {\"c\": null}], \"d\": false}, \"e\\n\": \"x\"}",
        "{\"headers\": {\"Authorization\": \"Bearer x\", \"Accept\": \"a\"},"
        " \"env\": [\"A_TOKEN=1\", \"PATH=/bin\", 7], \"ENVIRONMENT\": {\"DB_PASSWORD\": [1]},"
        " \"nested\": [{\"headers\": [\"Cookie: c\", {\"name\": \"Set-Cookie\", \"value\": 1,"
        " \"x\": 2}, {\"name\": \"Accept\", \"value\": \"v\"}]}]}",
        "{\"headers\": \"not a block\", \"env\": 42}",
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        assert_dump_matches_jansson(cases[i]);
}

Test(redact_dump, reals_with_the_fewest_digits)
{
    json_t *v = json_pack("[f,f,f,f]", 2.5710000000000002, 0.1, 1e-5, 3.0);
    char *got = cbx__json_text(v);
    cr_assert_str_eq(got, "[2.571,0.1,1e-5,3.0]");
    free(got);
    json_decref(v);
}

Test(redact_dump, plain_text_is_jansson_s_unmasked)
{
    const char *cases[] = {
        "null",
        "[1.5, -0.25, 1e300, 1e-300, 3.0, 0.1, 0.032408, 123456789.125, -1e22, 2.5e-8]",
        "\"quote \\\" backslash \\\\ ctl \\u0001 utf-8 \\u00e9 \\ud83d\\ude00\"",
        "{\"id\": \"x\", \"password\": \"p\", \"headers\": {\"Authorization\": \"Bearer x\"},"
        " \"env\": [\"A_TOKEN=1\"], \"attempts\": [{\"duration_ms\": 0.5, \"n\": 1}]}",
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_error_t e;
        json_t *v = json_loads(cases[i], JSON_DECODE_ANY, &e);
        cr_assert_not_null(v, "%s: %s", cases[i], e.text);
        char *want = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
        char *got = cbx__json_text(v);
        cr_assert_not_null(got);
        assert_same_text(got, strlen(got), want);
        free(want);
        free(got);
        json_decref(v);
    }
}

Test(redact_dump, masks_without_touching_the_value)
{
    json_t *v = parse("{\"headers\": {\"X-Api-Key\": \"k-123\"}, \"env\": [\"PGPASSWORD=pw\"]}");
    cbx__strbuf b = {0};
    cr_assert_eq(cbx__redact_dump(NULL, v, &b), 0);
    cr_assert_null(memmem(b.p, b.len, "k-123", 5));
    cr_assert_null(memmem(b.p, b.len, "=pw", 3));
    cr_assert_not_null(memmem(b.p, b.len, "\"PGPASSWORD=***\"", 16));
    cr_assert_str_eq(str_at(v, "headers.X-Api-Key"), "k-123");
    /* the buffer is reused: a second dump replaces the first */
    json_t *small = json_integer(5);
    cr_assert_eq(cbx__redact_dump(NULL, small, &b), 0);
    cr_assert_eq(b.len, 1);
    cr_assert_eq(b.p[0], '5');
    json_decref(small);
    free(b.p);
    json_decref(v);
}

Test(redact_dump, refuses_a_cycle)
{
    json_t *a = json_array();
    json_t *inner = json_array();
    json_array_append(a, inner);
    json_array_append(inner, a); /* jansson allows building this; dumping must stop */
    cbx__strbuf b = {0};
    cr_assert_eq(cbx__redact_dump(NULL, a, &b), -ELOOP);
    free(b.p);
    json_array_clear(inner);
    json_decref(inner);
    json_decref(a);
}

Test(redact_json, common_secret_member_names_anywhere)
{
    json_t *in =
        parse("{\"GITHUB_PAT\": \"ghp_1\", \"db_password\": \"pw-2\","
              " \"nested\": [{\"session-token\": \"tok-3\", \"api_key\": {\"v\": \"k-4\"}}],"
              " \"CLIENT_SECRET\": 5, \"max_tokens\": 100, \"token\": \"kept-6\","
              " \"key\": \"kept-7\", \"sort_by\": \"kept-8\"}");
    size_t n = cbx__redact_count(NULL, in);
    cr_assert_eq(n, 5, "%zu secrets", n);
    cbx__strbuf b = {0};
    cr_assert_eq(cbx__redact_dump(NULL, in, &b), 0);
    const char *gone[] = {"ghp_1", "pw-2", "tok-3", "k-4", "\"CLIENT_SECRET\":5"};
    for (size_t i = 0; i < sizeof gone / sizeof gone[0]; i++)
        cr_assert_null(memmem(b.p, b.len, gone[i], strlen(gone[i])), "%s written", gone[i]);
    const char *kept[] = {"\"max_tokens\":100", "kept-6", "kept-7", "kept-8"};
    for (size_t i = 0; i < sizeof kept / sizeof kept[0]; i++)
        cr_assert_not_null(memmem(b.p, b.len, kept[i], strlen(kept[i])), "%s masked", kept[i]);
    json_t *out = NULL;
    cr_assert_eq(cbx__redact_json(NULL, in, &out), 0);
    cr_assert_str_eq(str_at(out, "nested.[0].session-token"), "***");
    cr_assert_str_eq(str_at(out, "nested.[0].api_key"), "***");
    json_decref(out);
    free(b.p);
    json_decref(in);
}

Test(redact_dump, a_value_over_the_cap_is_cut_and_flagged)
{
    char *big = malloc(100001);
    memset(big, 'a', 100000);
    big[100000] = '\0';
    json_t *v = json_pack("{s:s, s:i, s:{s:s}}", "stdout", big, "exit_code", 0, "headers",
                          "Authorization", "Bearer sekrit");
    cbx__strbuf b = {0};
    int cut = -1;
    /* under the cap: written whole, not flagged */
    cr_assert_eq(cbx__redact_dump_capped(NULL, v, 200000, &b, &cut), 0);
    cr_assert_eq(cut, 0);
    cr_assert_gt(b.len, 100000);
    /* over it: cut, flagged with the whole length, still JSON, still masked */
    cr_assert_eq(cbx__redact_dump_capped(NULL, v, 4096, &b, &cut), 0);
    cr_assert_eq(cut, 1);
    cr_assert_leq(b.len, 4096);
    json_t *back = json_loadb(b.p, b.len, 0, NULL);
    cr_assert_not_null(back, "not JSON: %.*s", (int)b.len, b.p);
    cr_assert_gt(json_integer_value(json_object_get(back, "cbx_truncated")), 100000);
    cr_assert_eq(json_integer_value(json_object_get(back, "exit_code")), 0);
    const char *s = json_string_value(json_object_get(back, "stdout"));
    cr_assert_not_null(strstr(s, "bytes cut]"));
    cr_assert_null(memmem(b.p, b.len, "sekrit", 6));
    json_decref(back);
    /* not an object: wrapped */
    json_t *str = json_string(big);
    cr_assert_eq(cbx__redact_dump_capped(NULL, str, 1024, &b, &cut), 0);
    back = json_loadb(b.p, b.len, 0, NULL);
    cr_assert_not_null(back);
    cr_assert(json_is_string(json_object_get(back, "value")));
    cr_assert_leq(b.len, 1024);
    json_decref(back);
    json_decref(str);
    free(b.p);
    free(big);
    json_decref(v);
}
