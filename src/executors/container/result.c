/* One container attempt's result: outputs, metadata, outcome and the one-line error.
 *
 * Outcomes: SUCCESS for an exit code in success_exit_codes; the "oom" kind when the engine says
 * the container was OOM-killed, or it exited 137 under a memory limit without cbx having sent a
 * signal (on hosts with cgroup v1 the engine's OOMKilled flag is not always set); ERROR for
 * other exit codes and for the engine's refusals (no such image, a pull that failed, a daemon
 * that does not answer). A cancelled attempt is recorded by the runtime as TIMEOUT or CANCELLED.
 */
#include "executors/container/container.h"

#include "executors/exit_params.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The last non-empty line of a capture, control characters as spaces. */
static void last_line(const cbx__capture *c, char *buf, size_t len)
{
    buf[0] = '\0';
    size_t end = c->len;
    while (end > 0 && (c->data[end - 1] == '\n' || c->data[end - 1] == '\r'))
        end--;
    size_t start = end;
    while (start > 0 && c->data[start - 1] != '\n')
        start--;
    size_t n = end - start;
    if (n >= len)
        n = len - 1;
    for (size_t i = 0; i < n; i++) {
        char ch = c->data[start + i];
        buf[i] = (unsigned char)ch < 0x20 ? ' ' : ch;
    }
    buf[n] = '\0';
}

static double ms_between(uint64_t a, uint64_t b)
{
    return a && b > a ? round((double)(b - a) / 1e3) / 1e3 : 0.0;
}

void cbx__ctr_run_deliver(cbx__ctr_run *r)
{
    cbx_task *t = r->task;
    const json_t *p = cbx_task_params(t);
    int out_lossy = 0, err_lossy = 0;
    json_t *out_s = cbx__capture_json(&r->logs.out, &out_lossy);
    json_t *err_s = cbx__capture_json(&r->logs.err, &err_lossy);
    int out_trunc = cbx__capture_truncated(&r->logs.out);
    int err_trunc = cbx__capture_truncated(&r->logs.err);
    int timed_out = r->cancelled && cbx_task_timed_out(t);
    int oom = r->have_exit && !r->cancelled &&
              (r->oom_killed ||
               (r->exit_code == 137 && r->memory_limit > 0 && !r->kill_sent && !r->term_sent));

    json_t *outputs = NULL, *m = json_object();
    if (r->id[0]) {
        outputs = json_object();
        json_object_set_new(outputs, "exit_code",
                            r->have_exit ? json_integer(r->exit_code) : json_null());
        json_object_set_new(outputs, "stdout", out_s ? out_s : json_string(""));
        json_object_set_new(outputs, "stderr", err_s ? err_s : json_string(""));
        json_object_set_new(outputs, "container_id", json_string(r->id));
        json_object_set_new(outputs, "oom", json_boolean(oom));
    } else {
        json_decref(out_s);
        json_decref(err_s);
    }
    json_object_set_new(m, "container_id", r->id[0] ? json_string(r->id) : json_null());
    json_object_set_new(m, "image", json_string(r->image));
    json_object_set_new(m, "socket", json_string(r->socket));
    json_object_set_new(m, "exit_code", r->have_exit ? json_integer(r->exit_code) : json_null());
    json_object_set_new(m, "oom", json_boolean(oom));
    json_object_set_new(m, "oom_killed_flag", json_boolean(r->oom_killed));
    json_object_set_new(m, "memory_limit_bytes",
                        r->memory_limit > 0 ? json_integer(r->memory_limit) : json_null());
    json_object_set_new(m, "stdout_bytes", json_integer((json_int_t)r->logs.out.total));
    json_object_set_new(m, "stderr_bytes", json_integer((json_int_t)r->logs.err.total));
    json_object_set_new(m, "stdout_truncated", json_boolean(out_trunc));
    json_object_set_new(m, "stderr_truncated", json_boolean(err_trunc));
    json_object_set_new(m, "stdout_lossy", json_boolean(out_lossy));
    json_object_set_new(m, "stderr_lossy", json_boolean(err_lossy));
    json_object_set_new(m, "peak_memory_bytes",
                        r->mem_peak >= 0 ? json_integer(r->mem_peak) : json_null());
    json_object_set_new(m, "cpu_ms",
                        r->cpu_ns >= 0 ? json_real(round((double)r->cpu_ns / 1e3) / 1e3)
                                       : json_null());
    json_object_set_new(m, "duration_ms", json_real(ms_between(r->t0_ns, uv_hrtime())));
    json_object_set_new(m, "run_ms", json_real(ms_between(r->t_started_ns, r->t_exited_ns)));
    json_object_set_new(m, "pulled", json_boolean(r->pulled));
    json_object_set_new(m, "removed", json_boolean(r->removed));
    if (r->remove_error)
        json_object_set_new(m, "remove_error", json_string(r->remove_error));
    json_object_set_new(m, "killed_by",
                        !r->cancelled ? json_null()
                                      : json_string(timed_out ? "timeout" : "cancel"));
    json_object_set_new(m, "signals",
                        r->kill_sent && r->term_sent ? json_string("SIGTERM, then SIGKILL")
                        : r->kill_sent               ? json_string("SIGKILL")
                        : r->term_sent               ? json_string("SIGTERM")
                                                     : json_null());

    cbx_outcome k = CBX_OUTCOME_ERROR;
    char msg[600] = "", line[160];
    if (r->cancelled) {
        snprintf(msg, sizeof msg, "%s: container %.12s stopped (%s)%s",
                 timed_out ? "timed out" : "cancelled", r->id[0] ? r->id : "(not created)",
                 r->kill_sent && r->term_sent ? "SIGTERM, then SIGKILL"
                 : r->kill_sent               ? "SIGKILL"
                 : r->term_sent               ? "SIGTERM"
                                              : "before it ran",
                 r->removed ? " and removed" : "");
    } else if (r->error[0]) {
        snprintf(msg, sizeof msg, "%s", r->error);
    } else if (!r->have_exit) {
        snprintf(msg, sizeof msg, "container %.12s: the engine gave no exit code", r->id);
    } else if (oom) {
        k = CBX_OUTCOME_OOM;
        snprintf(msg, sizeof msg,
                 "out of memory: container %.12s killed at its memory limit "
                 "(%lld bytes; exit code %ld)",
                 r->id, (long long)r->memory_limit, r->exit_code);
    } else if (!cbx__exit_code_succeeds(json_object_get(p, "success_exit_codes"), r->exit_code)) {
        last_line(&r->logs.err, line, sizeof line);
        snprintf(msg, sizeof msg, "exit code %ld%s%s", r->exit_code, line[0] ? ": " : "", line);
    } else {
        k = CBX_OUTCOME_SUCCESS;
    }
    cbx__capture_free(&r->logs.out);
    cbx__capture_free(&r->logs.err);
    json_decref(r->create_body);
    r->create_body = NULL;
    free(r->remove_error);
    r->remove_error = NULL;
    cbx__http_loop_end(r->cl->http);
    cbx__ctr_loop_release(r->cl);
    /* r lives in the task's state, which is released by this call */
    if (msg[0])
        cbx_task_done(t, k, outputs, m, "%s", msg);
    else
        cbx_task_done(t, k, outputs, m, NULL);
}
