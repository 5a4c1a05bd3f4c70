/* Retention by size, the record cap, and the retention cut flow runs follow. */
#include "cbx/journal.h"

#include <criterion/criterion.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static char tmpdir[256];

static void setup_dir(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/cbx-journal-retention-XXXXXX");
    cr_assert_not_null(mkdtemp(tmpdir));
}

static void teardown_dir(void)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    cr_assert_eq(system(cmd), 0);
}

TestSuite(journal_retention, .init = setup_dir, .fini = teardown_dir);

/* One whole execution, submitted at ms, with an output of n bytes. */
static void write_big(cbx_journal *j, int i, uint64_t ms, size_t n)
{
    char id[40];
    snprintf(id, sizeof id, "ex-%06d", i);
    char *text = malloc(n + 1);
    memset(text, 'a' + i % 26, n);
    text[n] = '\0';
    json_t *out = json_pack("{s:s}", "stdout", text);
    free(text);
    cbx_err err;
    cr_assert_eq(
        cbx_journal_execution_start(
            j, &(cbx_journal_execution){.id = id, .executor = "command", .submitted_ms = ms}, &err),
        0, "%s", err.msg);
    cr_assert_eq(cbx_journal_execution_end(j,
                                           &(cbx_journal_end){.execution_id = id,
                                                              .status = "success",
                                                              .outputs = out,
                                                              .ended_ms = ms + 1,
                                                              .duration_ns = 1000000},
                                           &err),
                 0, "%s", err.msg);
    json_decref(out);
}

static int64_t sql_int(const char *path, const char *sql)
{
    sqlite3 *db = NULL;
    cr_assert_eq(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_stmt *st = NULL;
    cr_assert_eq(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK, "%s", sqlite3_errmsg(db));
    cr_assert_eq(sqlite3_step(st), SQLITE_ROW, "%s", sql);
    int64_t v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
}

Test(journal_retention, the_oldest_go_when_the_pages_in_use_exceed_max_bytes)
{
    char path[300];
    snprintf(path, sizeof path, "%s/j.db", tmpdir);
    const uint64_t max = 1024 * 1024;
    cbx_journal *j = NULL;
    cbx_err err;
    cr_assert_eq(
        cbx_journal_open(
            &j, &(cbx_journal_opts){.path = path, .max_bytes = max, .max_record_bytes = UINT64_MAX},
            &err),
        0, "%s", err.msg);
    /* 200 executions of 20 KB: 4 MB of outputs, four times the bound */
    for (int i = 0; i < 200; i++) {
        write_big(j, i, 1000000 + (uint64_t)i, 20000);
        if (i % 25 == 24)
            cr_assert_eq(cbx_journal_prune(j, &err), 0, "%s", err.msg);
    }
    cr_assert_eq(cbx_journal_prune(j, &err), 0, "%s", err.msg);
    json_t *rows = NULL;
    cr_assert_eq(cbx_journal_history(j, &(cbx_history_filter){.limit = 1000}, &rows, &err), 0);
    size_t kept = json_array_size(rows);
    cr_assert(kept > 10 && kept < 60, "%zu kept of 200", kept);
    /* the newest are kept, in one run from the newest down */
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(rows, 0), "id")),
                     "ex-000199");
    char oldest[40];
    snprintf(oldest, sizeof oldest, "ex-%06zu", 200 - kept);
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(rows, kept - 1), "id")),
                     oldest);
    json_decref(rows);
    cbx_journal_close(j);
    int64_t used = sql_int(path, "SELECT (SELECT page_count FROM pragma_page_count) -"
                                 " (SELECT freelist_count FROM pragma_freelist_count)") *
                   sql_int(path, "PRAGMA page_size");
    cr_assert_leq(used, (int64_t)max, "%lld bytes in use", (long long)used);
    /* the cut flow runs follow: every execution before it is gone */
    cr_assert_eq(sql_int(path, "SELECT cut_ms FROM journal_retention"),
                 sql_int(path, "SELECT min(submitted_ms) FROM executions"));
}

Test(journal_retention, no_cut_before_anything_was_dropped)
{
    char path[300];
    snprintf(path, sizeof path, "%s/j.db", tmpdir);
    cbx_journal *j = NULL;
    cbx_err err;
    cr_assert_eq(cbx_journal_open(&j, &(cbx_journal_opts){.path = path}, &err), 0, "%s", err.msg);
    write_big(j, 1, 1000, 10);
    cr_assert_eq(cbx_journal_prune(j, &err), 0, "%s", err.msg);
    cbx_journal_close(j);
    cr_assert_eq(sql_int(path, "SELECT count(*) FROM journal_retention"), 0);
}

Test(journal_retention, an_output_over_the_record_cap_is_cut_and_flagged)
{
    char path[300];
    snprintf(path, sizeof path, "%s/j.db", tmpdir);
    cbx_journal *j = NULL;
    cbx_err err;
    cr_assert_eq(
        cbx_journal_open(&j, &(cbx_journal_opts){.path = path, .max_record_bytes = 65536}, &err), 0,
        "%s", err.msg);
    write_big(j, 7, 1000, 1024 * 1024);
    json_t *row = NULL;
    cr_assert_eq(cbx_journal_get(j, "ex-000007", &row, &err), 0, "%s", err.msg);
    json_t *out = json_object_get(row, "outputs");
    cr_assert_gt(json_integer_value(json_object_get(out, "cbx_truncated")), 1024 * 1024);
    const char *s = json_string_value(json_object_get(out, "stdout"));
    cr_assert_not_null(s);
    cr_assert_lt(strlen(s), 65536);
    cr_assert_not_null(strstr(s, "bytes cut]"));
    json_decref(row);
    cbx_journal_close(j);
    cr_assert_leq(sql_int(path, "SELECT max(length(outputs)) FROM executions"), 65536);
}

/* Records are encoded in a buffer each thread keeps (let go past 64 KiB) and copied into their
 * own block: a large record then small ones, each read back whole and as its own. */
Test(journal_retention, records_large_then_small_each_keep_their_own_text)
{
    char path[300];
    snprintf(path, sizeof path, "%s/j.db", tmpdir);
    cbx_journal *j = NULL;
    cbx_err err;
    cr_assert_eq(cbx_journal_open(
                     &j, &(cbx_journal_opts){.path = path, .max_record_bytes = UINT64_MAX}, &err),
                 0, "%s", err.msg);
    const size_t sizes[] = {200 * 1024, 10, 70 * 1024, 3, 5000};
    const size_t n = sizeof sizes / sizeof *sizes;
    for (size_t i = 0; i < n; i++)
        write_big(j, (int)i, 1000 + i, sizes[i]);
    for (size_t i = 0; i < n; i++) {
        char id[40];
        snprintf(id, sizeof id, "ex-%06d", (int)i);
        json_t *row = NULL;
        cr_assert_eq(cbx_journal_get(j, id, &row, &err), 0, "%s", err.msg);
        const char *s =
            json_string_value(json_object_get(json_object_get(row, "outputs"), "stdout"));
        cr_assert_not_null(s, "%s", id);
        cr_assert_eq(strlen(s), sizes[i], "%s", id);
        cr_assert_eq(strspn(s, (char[]){(char)('a' + (int)i % 26), 0}), sizes[i], "%s", id);
        json_decref(row);
    }
    /* the encoder other modules use: the same buffer, its own copy */
    json_t *big = json_pack("{s:s%}", "k", "", (size_t)0);
    char *fill = malloc(100 * 1024 + 1);
    memset(fill, 'z', 100 * 1024);
    fill[100 * 1024] = '\0';
    json_object_set_new(big, "k", json_string(fill));
    free(fill);
    json_t *small = json_pack("{s:i}", "n", 7);
    char *t1 = NULL, *t2 = NULL;
    size_t l1 = 0, l2 = 0;
    cr_assert_eq(cbx_journal_encode(j, big, &t1, &l1, NULL, &err), 0, "%s", err.msg);
    cr_assert_eq(cbx_journal_encode(j, small, &t2, &l2, NULL, &err), 0, "%s", err.msg);
    cr_assert_eq(l1, 100 * 1024 + 8);
    cr_assert_eq(strlen(t1), l1);
    cr_assert_str_eq(t2, "{\"n\":7}");
    cr_assert_eq(l2, 7);
    free(t1);
    free(t2);
    json_decref(big);
    json_decref(small);
    cbx_journal_close(j);
}
