/* PostgreSQL results as JSON: rows typed by their column's type, and one-line error text. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "executors/db/pg.h"

/* Type OIDs from PostgreSQL's catalog (pg_type.dat); stable across versions. */
enum {
    OID_BOOL = 16,
    OID_INT8 = 20,
    OID_INT2 = 21,
    OID_INT4 = 23,
    OID_OID = 26,
    OID_JSON = 114,
    OID_FLOAT4 = 700,
    OID_FLOAT8 = 701,
    OID_NUMERIC = 1700,
    OID_JSONB = 3802,
};

/* A number's text as JSON: an integer when it is one and fits, else a real; NaN and infinities
 * (which JSON has no numbers for) stay strings. */
static json_t *number(const char *s)
{
    char *end;
    errno = 0;
    long long i = strtoll(s, &end, 10);
    if (*end == '\0' && errno == 0 && end != s)
        return json_integer((json_int_t)i);
    double d = strtod(s, &end);
    if (*end == '\0' && end != s && isfinite(d))
        return json_real(d);
    return json_string(s);
}

static json_t *value(const PGresult *res, int row, int col, Oid type)
{
    if (PQgetisnull(res, row, col))
        return json_null();
    const char *s = PQgetvalue(res, row, col);
    switch (type) {
    case OID_BOOL:
        return json_boolean(s[0] == 't');
    case OID_INT2:
    case OID_INT4:
    case OID_INT8:
    case OID_OID:
    case OID_FLOAT4:
    case OID_FLOAT8:
    case OID_NUMERIC:
        return number(s);
    case OID_JSON:
    case OID_JSONB: {
        json_t *v = json_loadb(s, (size_t)PQgetlength(res, row, col), JSON_DECODE_ANY, NULL);
        return v ? v : json_string(s);
    }
    default:
        return json_stringn(s, (size_t)PQgetlength(res, row, col));
    }
}

json_t *cbx__pg_result_json(const PGresult *res, json_int_t max_rows)
{
    int nf = PQnfields(res), nt = PQntuples(res);
    json_t *out = json_object(), *cols = json_array(), *rows = json_array();
    if (!out || !cols || !rows)
        goto oom;
    for (int c = 0; c < nf; c++)
        json_array_append_new(cols, json_string(PQfname(res, c)));
    json_int_t keep = nt < max_rows ? nt : max_rows;
    for (json_int_t r = 0; r < keep; r++) {
        json_t *row = json_object();
        if (!row)
            goto oom;
        for (int c = 0; c < nf; c++) {
            json_t *v = value(res, (int)r, c, PQftype(res, c));
            if (!v || json_object_set_new(row, PQfname(res, c), v) < 0) {
                json_decref(row);
                goto oom;
            }
        }
        json_array_append_new(rows, row);
    }
    json_object_set_new(out, "columns", cols);
    json_object_set_new(out, "rows", rows);
    json_object_set_new(out, "row_count", json_integer(keep));
    json_object_set_new(out, "truncated", json_boolean(nt > keep));
    json_object_set_new(out, "command", json_string(PQcmdStatus((PGresult *)res)));
    const char *aff = PQcmdTuples((PGresult *)res);
    if (aff && aff[0])
        json_object_set_new(out, "affected", json_integer(strtoll(aff, NULL, 10)));
    return out;
oom:
    json_decref(out);
    json_decref(cols);
    json_decref(rows);
    return NULL;
}

void cbx__pg_one_line(const char *msg, char *buf, size_t len)
{
    size_t n = 0;
    for (const char *p = msg ? msg : ""; *p && n + 1 < len; p++) {
        char ch = (*p == '\n' || *p == '\r' || *p == '\t') ? ' ' : *p;
        if (ch == ' ' && (n == 0 || buf[n - 1] == ' '))
            continue; /* one space for a line break and the indent after it */
        buf[n++] = ch;
    }
    while (n > 0 && buf[n - 1] == ' ')
        n--;
    buf[n] = '\0';
}

void cbx__pg_result_error(const PGresult *res, char *buf, size_t len, json_t **meta)
{
    const char *sev = PQresultErrorField(res, PG_DIAG_SEVERITY_NONLOCALIZED);
    const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    const char *prim = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
    const char *pos = PQresultErrorField(res, PG_DIAG_STATEMENT_POSITION);
    const char *detail = PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL);
    const char *hint = PQresultErrorField(res, PG_DIAG_MESSAGE_HINT);
    char line[400];
    if (prim) {
        cbx__pg_one_line(prim, line, sizeof line);
        if (pos)
            snprintf(buf, len, "%s %s: %s (at character %s)", sev ? sev : "ERROR",
                     state ? state : "?", line, pos);
        else
            snprintf(buf, len, "%s %s: %s", sev ? sev : "ERROR", state ? state : "?", line);
    } else {
        cbx__pg_one_line(PQresultErrorMessage(res), line, sizeof line);
        snprintf(buf, len, "%s", line[0] ? line : "the statement failed");
    }
    if (!meta)
        return;
    json_t *m = json_object();
    if (m) {
        if (state)
            json_object_set_new(m, "sqlstate", json_string(state));
        if (sev)
            json_object_set_new(m, "severity", json_string(sev));
        if (pos)
            json_object_set_new(m, "position", json_integer(atoi(pos)));
        if (detail)
            json_object_set_new(m, "detail", json_string(detail));
        if (hint)
            json_object_set_new(m, "hint", json_string(hint));
    }
    *meta = m;
}
