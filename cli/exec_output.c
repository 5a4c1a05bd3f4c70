/* cbx exec: a result printed (outputs, a command's streams, -v lines, the --repeat summary) and
 * the exit code it gives. */
#define _GNU_SOURCE /* sigabbrev_np */
#include "exec_cli.h"

#include "cbx/units.h"
#include "core/select.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int exec_is_breaker_refusal(int rc)
{
    return rc == CBX_ECIRCUIT_OPEN || rc == CBX_EHALF_OPEN_FULL || rc == CBX_EFORCED_OPEN;
}

void exec_counts_add(exec_counts *c, const cbx_result *r)
{
    if (r->status == CBX_STATUS_SUCCESS || r->fallback_used) {
        c->ok++;
        c->fallbacks += r->fallback_used;
    } else if (r->status == CBX_STATUS_TIMEOUT) {
        c->timeouts++;
    } else if (r->status == CBX_STATUS_CANCELLED) {
        c->cancelled++;
    } else if (r->status == CBX_STATUS_REJECTED) {
        if (exec_is_breaker_refusal(r->rc))
            c->breaker_open++;
        else if (r->rc == CBX_EUNKNOWN_TYPE || r->rc == CBX_EINVAL_CONFIG)
            c->invalid++;
        else
            c->refused++;
    } else {
        c->failed++;
    }
}

/* -v: one line per retry, as it is decided. */
void exec_on_retry_verbose(cbx_execution *ex, uint32_t attempt, uint64_t delay_ns,
                           const char *error, void *ud)
{
    (void)ex;
    (void)ud;
    char d[32];
    cli_err("exec: attempt %u failed (%s); retry in %s", attempt,
            error && error[0] ? error : "no detail", cbx_duration_human(delay_ns, d, sizeof d));
}

/* -v: how each attempt of a result ended, and what the breaker and the fallback decided. */
void exec_verbose_result(const cbx_result *res)
{
    size_t i;
    json_t *a;
    json_array_foreach(res->attempts, i, a)
    {
        const char *err = json_string_value(json_object_get(a, "error"));
        cli_err("exec: attempt %lld: %s after %.1f ms%s%s",
                (long long)json_integer_value(json_object_get(a, "number")),
                json_string_value(json_object_get(a, "outcome")),
                json_number_value(json_object_get(a, "duration_ms")), err ? ": " : "",
                err ? err : "");
    }
    if (res->status == CBX_STATUS_REJECTED)
        cli_err("exec: refused: %s", res->error);
    if (res->fallback_used)
        cli_err("exec: the fallback answered (%s)", cbx_status_name(res->status));
    cli_err("exec: %s after %u attempt%s in %.1f ms", cbx_status_name(res->status),
            res->attempt_count, res->attempt_count == 1 ? "" : "s", (double)res->duration_ns / 1e6);
}

/* A signal name from the command executor ("SIGKILL", "SIG37") as its number; 0 if unknown. */
static int signal_number(const char *name)
{
    if (!name || strncmp(name, "SIG", 3) != 0)
        return 0;
    if (name[3] >= '0' && name[3] <= '9')
        return atoi(name + 3);
    for (int i = 1; i < 65; i++) {
        const char *ab = sigabbrev_np(i);
        if (ab && strcmp(ab, name + 3) == 0)
            return i;
    }
    return 0;
}

/* A field of the command's outputs: from the outputs when it succeeded, else from the last
 * attempt's metadata. */
static const json_t *cmd_field(const cbx_result *r, const char *key)
{
    const json_t *v = r->outputs ? json_object_get(r->outputs, key) : NULL;
    if (!v && r->metadata)
        v = json_object_get(r->metadata, key);
    return v;
}

static void write_stream(int fd, const json_t *v)
{
    if (json_is_string(v))
        cli_write_all(fd, json_string_value(v), json_string_length(v));
}

/* The exit code a failed command run gives, as a shell would. */
static int command_exit_code(const cbx_result *r)
{
    const json_t *code = cmd_field(r, "exit_code");
    if (json_is_integer(code) && json_integer_value(code) != 0)
        return (int)json_integer_value(code);
    int sig = signal_number(json_string_value(cmd_field(r, "signal")));
    if (sig)
        return 128 + sig;
    const json_t *spawn = cmd_field(r, "spawn_error");
    if (json_is_string(spawn)) {
        const char *e = json_string_value(spawn);
        if (strstr(e, strerror(ENOENT)))
            return 127;
        if (strstr(e, strerror(EACCES)) || strstr(e, strerror(ENOEXEC)))
            return 126;
    }
    return CLI_EXIT_FAILED;
}

/* Say so when what was written is not all the command wrote: never silently. */
static void capture_notes(const cbx_result *r)
{
    static const char *const streams[] = {"stdout", "stderr"};
    for (int i = 0; i < 2; i++) {
        char key[32];
        snprintf(key, sizeof key, "%s_truncated", streams[i]);
        if (json_is_true(cmd_field(r, key))) {
            const json_t *kept = cmd_field(r, streams[i]);
            snprintf(key, sizeof key, "%s_bytes", streams[i]);
            cli_err("exec: the command's %s was cut at %zu of %lld bytes (raise -p %s_max)",
                    streams[i], json_string_length(kept),
                    (long long)json_integer_value(cmd_field(r, key)), streams[i]);
        }
        snprintf(key, sizeof key, "%s_lossy", streams[i]);
        if (json_is_true(cmd_field(r, key)))
            cli_err("exec: the command's %s was not UTF-8 text: invalid bytes became U+FFFD",
                    streams[i]);
    }
}

const json_t *cli_exec_cmd_field(const cbx_result *r, const char *key)
{
    return cmd_field(r, key);
}

int cli_exec_result_code(const cbx_result *r, int cmd_mode)
{
    if (r->status == CBX_STATUS_SUCCESS || r->fallback_used) {
        if (cmd_mode && !r->fallback_used) {
            const json_t *code = cmd_field(r, "exit_code");
            return json_is_integer(code) ? (int)json_integer_value(code) : CLI_EXIT_OK;
        }
        return CLI_EXIT_OK;
    }
    switch (r->status) {
    case CBX_STATUS_TIMEOUT:
        return CLI_EXIT_TIMEOUT;
    case CBX_STATUS_CANCELLED:
        return CLI_EXIT_CANCELLED;
    case CBX_STATUS_REJECTED:
        return exec_is_breaker_refusal(r->rc) ? CLI_EXIT_BREAKER_OPEN : CLI_EXIT_REFUSED;
    default:
        return cmd_mode ? command_exit_code(r) : CLI_EXIT_FAILED;
    }
}

/* Print outputs (a string as text, else JSON). */
static void print_outputs(const json_t *out)
{
    if (!out)
        return;
    if (json_is_string(out)) {
        size_t n = json_string_length(out);
        const char *p = json_string_value(out);
        cli_write_all(STDOUT_FILENO, p, n);
        if (n && p[n - 1] != '\n')
            cli_write_all(STDOUT_FILENO, "\n", 1);
        return;
    }
    cli_print_json(stdout, out);
}

/* The exit code of one result, and its line on stderr. */
int exec_finish_one(const exec_cfg *c, const cbx_result *r, exec_stream *st)
{
    int cmd_mode = c->cmd != NULL;
    int ok = r->status == CBX_STATUS_SUCCESS || r->fallback_used;
    if (c->json) {
        json_t *j = cbx_result_to_json(r);
        if (st)
            exec_stream_attach(st, j);
        cli_print_json(stdout, j);
        json_decref(j);
    } else if (cmd_mode && !r->fallback_used && c->stream) {
        /* every attempt's output went out as the command wrote it */
    } else if (!cmd_mode && !r->fallback_used && st && st->text_chunks) {
        /* the executor's text went out as it came (a model's tokens): that is its answer;
         * the outputs are for --json */
        if (ok && !c->quiet && st->mid_line)
            cli_write_all(STDOUT_FILENO, "\n", 1);
    } else if (cmd_mode && !r->fallback_used) {
        /* what the command wrote (after a failure, a timeout or a refusal between retries:
         * what the result kept of the last attempt) */
        write_stream(STDOUT_FILENO, cmd_field(r, "stdout"));
        write_stream(STDERR_FILENO, cmd_field(r, "stderr"));
        if (!c->quiet)
            capture_notes(r);
    } else if (ok && cmd_mode) {
        const json_t *o = r->outputs;
        if (json_is_object(o) && json_object_get(o, "stdout")) {
            write_stream(STDOUT_FILENO, json_object_get(o, "stdout"));
            write_stream(STDERR_FILENO, json_object_get(o, "stderr"));
        } else if (!c->quiet) {
            print_outputs(o);
        }
    } else if (ok && !c->quiet) {
        print_outputs(r->outputs);
    }
    const char *kept = json_string_value(json_object_get(r->metadata, "tmpdir"));
    if (kept && !c->quiet)
        cli_err("exec: kept the temporary directory %s", kept);
    int code = cli_exec_result_code(r, cmd_mode);
    if (ok)
        return code;
    /* a command's own failure speaks through its stderr and exit code */
    int says_itself =
        cmd_mode && r->status == CBX_STATUS_FAILED &&
        (json_is_integer(cmd_field(r, "exit_code")) || json_is_string(cmd_field(r, "signal")));
    if (!c->quiet && !says_itself) {
        if (r->status == CBX_STATUS_FAILED && r->attempt_count > 1)
            cli_err("exec: %s: failed after %u attempts: %s", r->executor, r->attempt_count,
                    r->error);
        else if (r->status == CBX_STATUS_FAILED)
            cli_err("exec: %s: failed: %s", r->executor, r->error);
        else if (r->status == CBX_STATUS_TIMEOUT && strncmp(r->error, "timed out", 9) == 0)
            cli_err("exec: %s: %s", r->executor, r->error);
        else if (r->status == CBX_STATUS_TIMEOUT)
            cli_err("exec: %s: timed out: %s", r->executor, r->error);
        else if (r->status == CBX_STATUS_CANCELLED)
            cli_err("exec: %s: cancelled", r->executor);
        else
            cli_err("exec: %s: refused: %s", r->executor, r->error);
    }
    return code;
}

int exec_finish_many(run_state *s, uint64_t elapsed_ns)
{
    const exec_cfg *c = s->cfg;
    uint64_t p50 = 0, p95 = 0, max = 0;
    uint64_t refused = s->n.refused + s->n.invalid;
    if (s->n_lat) { /* selected in place: as a sort would place them, without a copy */
        size_t n = s->n_lat, k95 = (n * 95 + 99) / 100 - 1;
        p95 = cbx__select_u64(s->lat_ns, n, k95);
        p50 = cbx__select_u64(s->lat_ns, k95 + 1, (n - 1) / 2); /* the lower side holds it */
        max = p95;
        for (size_t i = k95 + 1; i < n; i++)
            max = s->lat_ns[i] > max ? s->lat_ns[i] : max;
    }
    if (c->json) {
        json_t *j = json_pack(
            "{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:f, s:{s:f, s:f, s:f}, s:o}", "runs",
            (json_int_t)c->repeat, "done", (json_int_t)s->done, "succeeded", (json_int_t)s->n.ok,
            "fallbacks", (json_int_t)s->n.fallbacks, "failed", (json_int_t)s->n.failed, "timeouts",
            (json_int_t)s->n.timeouts, "breaker_open", (json_int_t)s->n.breaker_open, "refused",
            (json_int_t)refused, "cancelled", (json_int_t)s->n.cancelled, "elapsed_ms",
            (double)elapsed_ns / 1e6, "latency_ms", "p50", (double)p50 / 1e6, "p95",
            (double)p95 / 1e6, "max", (double)max / 1e6, "results", s->all);
        s->all = NULL;
        cli_print_json(stdout, j);
        json_decref(j);
    } else if (!c->quiet) {
        char el[32], a[32], b[32], m[32];
        cbx_duration_human(elapsed_ns, el, sizeof el);
        printf("%llu runs in %s: %llu succeeded", (unsigned long long)s->done, el,
               (unsigned long long)s->n.ok);
        if (s->n.fallbacks)
            printf(" (%llu by fallback)", (unsigned long long)s->n.fallbacks);
        printf(", %llu failed, %llu timed out, %llu refused by the breaker, %llu refused, "
               "%llu cancelled\n",
               (unsigned long long)s->n.failed, (unsigned long long)s->n.timeouts,
               (unsigned long long)s->n.breaker_open, (unsigned long long)refused,
               (unsigned long long)s->n.cancelled);
        if (s->n_lat)
            printf("latency: p50 %s  p95 %s  max %s\n", cbx_duration_human(p50, a, sizeof a),
                   cbx_duration_human(p95, b, sizeof b), cbx_duration_human(max, m, sizeof m));
        fflush(stdout);
        if (s->last_error[0] && s->n.ok < s->done)
            cli_err("exec: last error: %s", s->last_error);
    }
    if (s->n.cancelled || s->stopping)
        return CLI_EXIT_CANCELLED;
    if (s->n.invalid)
        return CLI_EXIT_USAGE;
    if (s->n.failed)
        return CLI_EXIT_FAILED;
    if (s->n.timeouts)
        return CLI_EXIT_TIMEOUT;
    if (s->n.breaker_open)
        return CLI_EXIT_BREAKER_OPEN;
    if (s->n.refused)
        return CLI_EXIT_REFUSED;
    return CLI_EXIT_OK;
}

/* 1 when name is a program in $PATH (for a hint when it was given as a TYPE). */
static int on_path(const char *name)
{
    const char *path = getenv("PATH");
    if (!path || strchr(name, '/'))
        return 0;
    while (*path) {
        size_t n = strcspn(path, ":");
        char file[4096];
        if (n && snprintf(file, sizeof file, "%.*s/%s", (int)n, path, name) < (int)sizeof file &&
            access(file, X_OK) == 0)
            return 1;
        path += n + (path[n] == ':');
    }
    return 0;
}

/* The one-line message for a request the runtime refused as invalid. */
void exec_report_invalid(const exec_cfg *c, const cbx_registry *reg, const cbx_diag *d,
                         const json_t *params, const json_t *notes)
{
    if (!d->n) {
        cli_err("exec: the request was refused");
        return;
    }
    if (d->items[0].code == CBX_EUNKNOWN_TYPE) {
        const char *best = cli_suggest_type(reg, c->type);
        if (best)
            cli_err("exec: unknown executor type '%s' (did you mean '%s'?)", c->type, best);
        else if (on_path(c->type))
            cli_err("exec: unknown executor type '%s' (to run the program: cbx exec -- %s ...)",
                    c->type, c->type);
        else
            cli_err("exec: unknown executor type '%s' (see 'cbx types')", c->type);
        return;
    }
    char line[2048];
    size_t n = 0;
    for (size_t i = 0; i < d->n && n < sizeof line; i++) {
        const cbx_err *e = &d->items[i];
        const char *sep = i ? "; " : "";
        if (strncmp(e->msg, "unknown parameter", 17) == 0 || !e->where[0]) {
            n += (size_t)snprintf(line + n, sizeof line - n, "%s%s", sep, e->msg);
            continue;
        }
        /* a type's validate hook may have named the parameter already ("url: not a URL") */
        size_t wl = strlen(e->where);
        const char *msg = e->msg;
        if (strncmp(msg, e->where, wl) == 0 && msg[wl] == ':' && msg[wl + 1] == ' ')
            msg += wl + 2;
        n +=
            (size_t)snprintf(line + n, sizeof line - n, "%sparameter '%s': %s", sep, e->where, msg);
        /* show the text given for a value that was left a string */
        const json_t *v = json_object_get(params, e->where);
        if (n < sizeof line && json_is_string(v) && strstr(e->msg, "got string") &&
            !strstr(e->msg, "\""))
            n += (size_t)snprintf(line + n, sizeof line - n, " \"%.60s%s\"", json_string_value(v),
                                  json_string_length(v) > 60 ? "..." : "");
        const json_t *note = json_object_get(notes, e->where);
        if (n < sizeof line && json_is_string(note))
            n += (size_t)snprintf(line + n, sizeof line - n, " (%s)", json_string_value(note));
    }
    cli_err("exec: %s", line);
}
