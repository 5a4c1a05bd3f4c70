/* The batch state file of cbx run --batch (see batch_state.h). */
#include "batch_state.h"

#include "core/uuid.h"

#include "cbx/state_dir.h"

#include <errno.h>
#include <stdarg.h>
#include <string.h>
#include <sys/stat.h>

static int fail(int code, char *msg, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int fail(int code, char *msg, size_t len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, len, fmt, ap);
    va_end(ap);
    return code;
}

static int path_of(cli_batch_state *s, const char *id, int make, char *msg, size_t len)
{
    char dir[sizeof s->path - 64]; /* room for "/batches/<id>.jsonl" */
    cbx_err e;
    if (cbx_state_dir_get(dir, sizeof dir, &e) < 0)
        return fail(e.code < 0 ? e.code : -EIO, msg, len, "%s", e.msg);
    size_t n = strlen(dir);
    if (n + sizeof "/batches/" + 40 + sizeof ".jsonl" > sizeof s->path)
        return fail(-ENAMETOOLONG, msg, len, "the state directory's path is too long");
    snprintf(s->path, sizeof s->path, "%s/batches", dir);
    if (make && mkdir(s->path, 0700) < 0 && errno != EEXIST)
        return fail(-errno, msg, len, "cannot make %s: %s", s->path, strerror(errno));
    snprintf(s->path + strlen(s->path), sizeof s->path - strlen(s->path), "/%s.jsonl", id);
    snprintf(s->id, sizeof s->id, "%s", id);
    return 0;
}

static int put(cli_batch_state *s, json_t *rec)
{
    int r = rec && json_dumpf(rec, s->f, JSON_COMPACT) == 0 && fputc('\n', s->f) != EOF &&
                    fflush(s->f) == 0
                ? 0
                : -EIO;
    json_decref(rec);
    return r;
}

int cli_batch_state_new(cli_batch_state *s, const char *flow, const char *data, char *msg,
                        size_t len)
{
    memset(s, 0, sizeof *s);
    char id[40];
    cbx__uuid7(id);
    int r = path_of(s, id, 1, msg, len);
    if (r < 0)
        return r;
    if (!(s->f = fopen(s->path, "wx")))
        return fail(-errno, msg, len, "cannot write %s: %s", s->path, strerror(errno));
    if (put(s, json_pack("{s:s, s:s, s:s}", "batch", id, "flow", flow, "data", data)) < 0)
        return fail(-EIO, msg, len, "cannot write %s", s->path);
    return 0;
}

int cli_batch_state_resume(cli_batch_state *s, const char *id, const char *flow, json_t **lines,
                           char *msg, size_t len)
{
    memset(s, 0, sizeof *s);
    *lines = NULL;
    for (const char *c = id; *c; c++)
        if (!((*c >= '0' && *c <= '9') || (*c >= 'a' && *c <= 'f') || *c == '-') || c - id >= 39)
            return fail(-ENOENT, msg, len, "'%s' is not a batch id", id);
    int r = path_of(s, id, 0, msg, len);
    if (r < 0)
        return r;
    FILE *in = fopen(s->path, "r");
    if (!in)
        return fail(errno == ENOENT ? -ENOENT : -errno, msg, len, "no batch '%s' (%s: %s)", id,
                    s->path, strerror(errno));
    json_t *map = json_object();
    char buf[8192];
    int first = 1, bad = 0, ended = 1;
    while (fgets(buf, sizeof buf, in)) {
        ended = buf[0] && buf[strlen(buf) - 1] == '\n';
        json_t *rec = json_loads(buf, 0, NULL);
        if (first) {
            const char *was = json_string_value(json_object_get(rec, "flow"));
            if (!was || strcmp(was, flow) != 0)
                bad = fail(-EINVAL, msg, len, "batch %s ran the flow %s, not %s", id,
                           was ? was : "(unknown)", flow);
            first = 0;
        } else if (rec && json_is_string(json_object_get(rec, "run_id"))) {
            /* a line cut by a kill is no record: that line runs afresh */
            char key[32];
            snprintf(key, sizeof key, "%lld",
                     (long long)json_integer_value(json_object_get(rec, "line")));
            json_object_set(map, key, json_object_get(rec, "run_id"));
        }
        json_decref(rec);
        if (bad)
            break;
    }
    fclose(in);
    if (bad || first) {
        json_decref(map);
        return bad ? bad : fail(-EINVAL, msg, len, "%s: not a batch file", s->path);
    }
    if (!(s->f = fopen(s->path, "a"))) {
        json_decref(map);
        return fail(-errno, msg, len, "cannot write %s: %s", s->path, strerror(errno));
    }
    if (!ended) /* the last record was cut: the next starts on a line of its own */
        fputc('\n', s->f);
    *lines = map;
    return 0;
}

int cli_batch_state_add(cli_batch_state *s, int line, const char *run_id)
{
    if (!s->f)
        return 0;
    /* a run id is a UUID: nothing in it to escape */
    return fprintf(s->f, "{\"line\":%d,\"run_id\":\"%s\"}\n", line, run_id) < 0 ? -EIO : 0;
}

int cli_batch_state_sync(cli_batch_state *s)
{
    return s->f && fflush(s->f) != 0 ? -EIO : 0;
}

int cli_batch_state_note(cli_batch_state *s, int line, const char *run_id)
{
    int r = cli_batch_state_add(s, line, run_id);
    return r ? r : cli_batch_state_sync(s);
}

void cli_batch_state_close(cli_batch_state *s)
{
    if (s && s->f)
        fclose(s->f);
    if (s)
        s->f = NULL;
}
