/* Conversation memory: the turns of a conversation id kept in the runtime's journal (a table of
 * its own, llm_memory, written in the journal's batches with its redaction), read back before
 * the next call, trimmed to a token estimate with the system prompt kept. */
#include "executors/llm/llm.h"

#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cbx/journal.h"

static const char schema[] =
    "CREATE TABLE IF NOT EXISTS llm_memory (conversation TEXT NOT NULL, seq INTEGER NOT NULL,"
    " message TEXT NOT NULL, created_ms INTEGER, PRIMARY KEY (conversation, seq))";
static const char insert_sql[] =
    "INSERT INTO llm_memory (conversation, seq, message, created_ms) VALUES (?1,"
    " (SELECT coalesce(max(seq), 0) + 1 FROM llm_memory WHERE conversation = ?1), ?2, ?3)";
static const char select_sql[] =
    "SELECT message FROM llm_memory WHERE conversation = ?1 ORDER BY seq";
static const char delete_sql[] = "DELETE FROM llm_memory WHERE conversation = ?1";

long long cbx__llm_estimate_tokens(const json_t *msg)
{
    /* about four bytes of English per token, and a few tokens of framing per message */
    size_t bytes = 0;
    const char *content = json_string_value(json_object_get(msg, "content"));
    if (content)
        bytes += strlen(content);
    const json_t *calls = json_object_get(msg, "tool_calls");
    if (calls) {
        char *s = json_dumps(calls, JSON_COMPACT);
        bytes += s ? strlen(s) : 0;
        free(s);
    }
    return (long long)((bytes + 3) / 4) + 4;
}

typedef struct mem_op {
    const char *id;
    const json_t *msgs; /* save: the messages; load: NULL */
    json_t *out;        /* load: the messages read */
    cbx_journal *j;
    int clear;
} mem_op;

static int db_fail(cbx_err *err, sqlite3 *db, const char *what)
{
    return cbx_err_set(err, CBX_EJOURNAL, "conversation memory: %s: %s", what, sqlite3_errmsg(db));
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static int write_fn(sqlite3 *db, void *ud, cbx_err *err)
{
    mem_op *op = ud;
    if (sqlite3_exec(db, schema, NULL, NULL, NULL) != SQLITE_OK)
        return db_fail(err, db, "create");
    sqlite3_stmt *st;
    int r;
    if (op->clear) {
        if ((r = cbx_journal_stmt(op->j, delete_sql, &st, err)) != 0)
            return r;
        sqlite3_bind_text(st, 1, op->id, -1, SQLITE_TRANSIENT);
        int rc = sqlite3_step(st);
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
        if (rc != SQLITE_DONE)
            return db_fail(err, db, "clear");
    }
    if ((r = cbx_journal_stmt(op->j, insert_sql, &st, err)) != 0)
        return r;
    size_t i;
    const json_t *m;
    json_array_foreach(op->msgs, i, m)
    {
        char *text = NULL;
        size_t len = 0;
        if ((r = cbx_journal_encode(op->j, m, &text, &len, NULL, err)) != 0)
            return r;
        sqlite3_bind_text(st, 1, op->id, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 2, text, (int)len, free);
        sqlite3_bind_int64(st, 3, (sqlite3_int64)now_ms());
        int rc = sqlite3_step(st);
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
        if (rc != SQLITE_DONE)
            return db_fail(err, db, "save");
    }
    return 0;
}

static int read_fn(sqlite3 *db, void *ud, cbx_err *err)
{
    mem_op *op = ud;
    (void)db;
    sqlite3_stmt *st;
    cbx_err e;
    cbx_err_clear(&e);
    if (cbx_journal_stmt(op->j, select_sql, &st, &e) != 0) {
        if (strstr(e.msg, "no such table"))
            return 0; /* nothing was ever kept */
        *err = e;
        return e.code;
    }
    sqlite3_bind_text(st, 1, op->id, -1, SQLITE_TRANSIENT);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *text = (const char *)sqlite3_column_text(st, 0);
        json_t *m = text ? json_loads(text, 0, NULL) : NULL;
        if (json_is_object(m))
            json_array_append_new(op->out, m);
        else
            json_decref(m);
    }
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    if (rc != SQLITE_DONE)
        return db_fail(err, db, "read");
    return 0;
}

int cbx__llm_memory_load(llm_call *c, json_t **out, cbx_err *err)
{
    *out = json_array();
    const char *id = json_string_value(json_object_get(c->params, "conversation"));
    if (!id)
        return 0;
    cbx_journal *j = cbx_runtime_journal(c->rt);
    if (!j)
        return cbx_err_set_at(err, CBX_EINVAL_CONFIG, "conversation", 0, 0,
                              "parameter 'conversation': the runtime has no journal to keep it in");
    mem_op op = {.id = id, .j = j, .out = *out};
    if (json_is_true(json_object_get(c->params, "memory_clear"))) {
        op.clear = 1;
        json_t *none = json_array();
        op.msgs = none;
        int r = cbx_journal_write_db(j, write_fn, &op, NULL, err);
        json_decref(none);
        if (r != 0)
            return r;
        return 0;
    }
    return cbx_journal_read_db(j, read_fn, &op, err);
}

int cbx__llm_memory_save(llm_call *c, size_t from, cbx_err *err)
{
    const char *id = json_string_value(json_object_get(c->params, "conversation"));
    cbx_journal *j = cbx_runtime_journal(c->rt);
    if (!id || !j)
        return 0;
    json_t *msgs = json_array();
    for (size_t i = from; i < json_array_size(c->messages); i++)
        json_array_append(msgs, json_array_get(c->messages, i));
    mem_op op = {.id = id, .j = j, .msgs = msgs};
    int r = cbx_journal_write_db(j, write_fn, &op, NULL, err);
    json_decref(msgs);
    return r;
}

json_t *cbx__llm_memory_trim(json_t *history, long long budget, long long keep_tokens)
{
    if (budget <= 0)
        return history;
    size_t n = json_array_size(history), from = 0;
    long long total = keep_tokens;
    for (size_t i = 0; i < n; i++)
        total += cbx__llm_estimate_tokens(json_array_get(history, i));
    while (from < n && total > budget) {
        total -= cbx__llm_estimate_tokens(json_array_get(history, from));
        from++;
    }
    /* never start on a tool result: its assistant message went */
    while (from < n) {
        const char *role =
            json_string_value(json_object_get(json_array_get(history, from), "role"));
        if (!role || strcmp(role, "tool") != 0)
            break;
        from++;
    }
    json_t *out = json_array();
    for (size_t i = from; i < n; i++)
        json_array_append(out, json_array_get(history, i));
    json_decref(history);
    return out;
}
