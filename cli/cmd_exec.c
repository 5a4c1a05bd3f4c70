/* cbx exec: run an executor type, or a command (-- CMD ARGS), under a policy.
 *
 * The policy is one policy block (docs/policy.md): --policy FILE or --policy-json, with the
 * policy flags written over its keys. A named breaker (--breaker) lives in the host-wide store,
 * so that runs from a shell script trip and recover it together. */
#include "args.h"
#include "cli.h"
#include "exec_cli.h"
#include "exec_each.h"
#include "exec_stdin.h"
#include "exec_tty.h"
#include "output.h"
#include "signals.h"

#include "executors/command.h"

#include "cbx/breaker_store.h"
#include "cbx/journal.h"
#include "cbx/runtime.h"
#include "cbx/template.h"
#include "cbx/units.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

/* One run submitted: its chunks' state (each run has its own line buffers). */
typedef struct run_slot {
    run_state *s;
    uint64_t number; /* 1, 2, ... */
    exec_stream out;
} run_slot;

/* A chunk of a run: written (after the progress line is wiped), or kept for --json. */
static int on_chunk(cbx_execution *ex, const cbx_chunk *c, void *ud)
{
    (void)ex;
    run_slot *slot = ud;
    if (c->event && c->channel && strcmp(c->channel, "verbose") == 0 && !slot->out.collect) {
        /* an executor's account of its progress (an agent's iterations): a line with -v */
        if (slot->s->cfg->verbose) {
            char *d = json_dumps(c->event, JSON_COMPACT);
            cli_progress_clear(&slot->s->progress);
            if (d)
                cli_err("exec: %s", d);
            free(d);
        }
        return CBX_CHUNK_MORE;
    }
    if (!slot->out.collect)
        cli_progress_clear(&slot->s->progress);
    return exec_stream_chunk(&slot->out, c);
}

static void on_done(cbx_execution *ex, const cbx_result *res, void *ud)
{
    run_slot *slot = ud;
    run_state *s = slot->s;
    exec_stream_end(&slot->out);
    if (s->cfg->verbose)
        exec_verbose_result(res);
    if (ex == s->current)
        s->current = NULL;
    s->done++;
    exec_counts_add(&s->n, res);
    if (res->status != CBX_STATUS_SUCCESS && res->error[0])
        snprintf(s->last_error, sizeof s->last_error, "%s", res->error);
    if (res->status != CBX_STATUS_REJECTED && s->lat_ns)
        s->lat_ns[s->n_lat++] = res->duration_ns;
    if (s->cfg->repeat == 1 && !s->have_first) {
        s->first = *res;
        json_incref(s->first.outputs);
        json_incref(s->first.metadata);
        json_incref(s->first.attempts);
        s->have_first = 1;
        s->first_stream = slot->out; /* its chunks go with it */
        memset(&slot->out, 0, sizeof slot->out);
    } else if (s->all) {
        json_t *j = cbx_result_to_json(res);
        exec_stream_attach(&slot->out, j);
        json_array_append_new(s->all, j);
    }
    exec_stream_free(&slot->out);
    free(slot);
}

static void draw(run_state *s)
{
    if (s->cfg->repeat > 1) {
        cli_progress_draw(&s->progress, s->done, s->cfg->repeat, s->n.ok,
                          s->n.failed + s->n.timeouts + s->n.cancelled,
                          s->n.refused + s->n.breaker_open + s->n.invalid);
    } else if (s->current && cli_progress_elapsed_ns(&s->progress) >= CBX_NS_PER_S) {
        char line[160];
        snprintf(line, sizeof line, "%s: %s", s->cfg->type,
                 cbx_status_name(cbx_execution_status(s->current)));
        cli_progress_text(&s->progress, line);
    }
}

static void on_tick(uv_timer_t *t)
{
    draw(t->data);
}

static void on_signal(uv_signal_t *h, int signum)
{
    run_state *s = h->data;
    if (s->signals++) {
        cli_progress_clear(&s->progress);
        _exit(CLI_EXIT_CANCELLED);
    }
    (void)signum;
    s->stopping = 1;
    cbx_runtime_cancel_all(s->rt);
}

/* ---- the run -------------------------------------------------------------------------------- */

static void close_cb(uv_handle_t *h)
{
    (void)h;
}

/* The policy's fallback.cache.key template expanded against {executor, params}: the fallback
 * cache key of every run of this command (*out malloc'd; NULL when the policy has no template:
 * the runtime then keys by the executor and its canonical parameters). 0 or an exit code. */
int cli_exec_fallback_key(const char *type, const cbx_policy *policy, const json_t *params,
                          char **out)
{
    *out = NULL;
    const char *tpl = policy ? cbx_policy_fallback_key(policy) : NULL;
    if (!tpl)
        return 0;
    cbx_template_env *env = NULL;
    cbx_err e;
    cbx_err_clear(&e);
    json_t *t = json_string(tpl), *v = NULL;
    json_t *ctx = json_pack("{s:s, s:O}", "executor", type, "params",
                            params ? (json_t *)params : json_object());
    int r = t && ctx ? cbx_template_env_new(&env, NULL, &e) : -ENOMEM;
    if (r == 0)
        r = cbx_template_render(env, t, ctx, &v, &e);
    int code = 0;
    if (r < 0) {
        cli_err("exec: fallback.cache.key: %s", e.msg[0] ? e.msg : cbx_strerror(r));
        code = CLI_EXIT_USAGE;
    } else if (json_is_string(v) && json_string_length(v) > 0) {
        *out = strdup(json_string_value(v));
    } else if (json_is_number(v)) {
        *out = json_dumps(v, JSON_ENCODE_ANY);
    } else {
        cli_err("exec: fallback.cache.key '%s' gave %s, not a key", tpl,
                json_is_string(v) ? "an empty string" : "a value that is not text");
        code = CLI_EXIT_USAGE;
    }
    json_decref(v);
    json_decref(t);
    json_decref(ctx);
    cbx_template_env_free(env);
    return code;
}

/* The options stored with a breaker win over the --breaker-* flags: say so when they differ. */
static void breaker_opts_check(cbx_breaker_store *store, const exec_cfg *c)
{
    cbx_breaker_opts o;
    if (cbx_breaker_store_get_opts(store, c->breaker, &o) != 0)
        return; /* a new name: the flags make it */
    char mine[160] = "", theirs[160] = "", a[32], b[32];
    size_t n = 0, m = 0;
    uint64_t open_ns = o.open_ns ? o.open_ns : 60 * CBX_NS_PER_S;
    uint32_t probes = o.half_open_probes ? o.half_open_probes : 1;
    if ((c->breaker_given & 1) && o.consecutive_failures != c->breaker_failures) {
        n += (size_t)snprintf(mine + n, sizeof mine - n, " --failures %llu",
                              (unsigned long long)c->breaker_failures);
        m += (size_t)snprintf(theirs + m, sizeof theirs - m, "%sfailures %u", m ? ", " : "",
                              o.consecutive_failures);
    }
    if ((c->breaker_given & 2) && open_ns != c->breaker_open_ns) {
        n += (size_t)snprintf(mine + n, sizeof mine - n, " --open %s",
                              cbx_duration_human(c->breaker_open_ns, a, sizeof a));
        m += (size_t)snprintf(theirs + m, sizeof theirs - m, "%sopen %s", m ? ", " : "",
                              cbx_duration_human(open_ns, b, sizeof b));
    }
    if ((c->breaker_given & 4) && probes != c->breaker_probes) {
        n += (size_t)snprintf(mine + n, sizeof mine - n, " --probes %llu",
                              (unsigned long long)c->breaker_probes);
        snprintf(theirs + m, sizeof theirs - m, "%sprobes %u", m ? ", " : "", probes);
    }
    if (n)
        cli_err("exec: breaker '%s' keeps its stored options (%s), not those of the "
                "--breaker-* flags; to change them: cbx breaker set %s%s",
                c->breaker, theirs, c->breaker, mine);
}

static int run(const exec_cfg *c, cli_ctx *ctx, cbx_registry *reg, cbx_policy *policy,
               json_t *params, json_t *notes)
{
    int code = CLI_EXIT_INTERNAL;
    cbx_err err;
    cbx_err_clear(&err);
    cbx_journal *journal = NULL;
    cbx_breaker_store *store = NULL;
    cbx_runtime *rt = NULL;
    uv_loop_t loop;
    int loop_ok = 0, handles_ok = 0;
    run_state s = {.cfg = c};
    /* (a command run once with a tee of the caller's own prints its output at the end) */
    s.chunks = exec_takes_chunks(c->cmd != NULL, c->type, c->json) &&
               (!c->cmd || c->stream || c->repeat > 1);
    char *fb_key = NULL;
    if ((code = cli_exec_fallback_key(c->type, policy, params, &fb_key)) != 0)
        return code;
    code = CLI_EXIT_INTERNAL;

    if (c->repeat > 1) {
        s.lat_ns = calloc(c->repeat, sizeof *s.lat_ns);
        if (c->json)
            s.all = json_array();
        if (!s.lat_ns || (c->json && !s.all)) {
            cli_err("exec: out of memory");
            goto out;
        }
    }

    /* The command's cgroups and their guard process first, while this process is small and has
     * one thread (the guard is forked) */
    if (c->cmd)
        cbx__cgroup_warm();
    /* One command at a time: spawned on this thread (clone(CLONE_VFORK) holds it until the
     * child's exec), not handed to a spawner thread and back: that thread's start and the two
     * wake-ups, each a wait for a CPU on a busy machine, for a loop with nothing else to do. */
    if (c->cmd && c->repeat == 1)
        cbx__cmd_inline_spawn = 1;
    /* A command (-- CMD) runs while the journal's thread opens the database (SQLite's open, the
     * WAL's index, the schema): a failure there is said at the end (cli_journal_finish), and
     * the command's records are lost. Other types may read the journal as they run (an agent's
     * memory): opened before. */
    int jr = ctx->no_journal ? 0
             : c->cmd        ? cli_journal_open_writer(NULL, &journal)
                             : cli_journal_open(NULL, 0, &journal);
    if (jr) {
        code = jr; /* 2 for a bad CBX_JOURNAL_* value, 70 when it cannot be opened */
        goto out;
    }
    /* Host-wide breakers: a named one (--breaker), or the ones an executor keeps per provider
     * (llm and agent with a providers list), so that they trip across invocations. */
    int host_breakers = c->breaker || json_array_size(json_object_get(params, "providers")) > 0 ||
                        cbx_policy_rate_limit_pending(policy); /* rate_limit.key: shared */
    if (host_breakers && cli_breaker_store_open(&store, &err) < 0) {
        cli_err("breaker store: %s", err.msg[0] ? err.msg : cbx_strerror(err.code));
        if (err.code == -ENOSPC)
            code = CLI_EXIT_REFUSED; /* as when the name cannot be added: nothing ran */
        goto out;
    }
    if (store && c->breaker_given && !c->quiet)
        breaker_opts_check(store, c);
    if (uv_loop_init(&loop) < 0) {
        cli_err("exec: cannot make the event loop");
        goto out;
    }
    loop_ok = 1;
    cbx_runtime_opts ro = {.loop = &loop,
                           .registry = reg,
                           .journal = journal,
                           .breakers = store,
                           .max_concurrent = (uint32_t)c->parallel,
                           .max_queued = (uint32_t)(c->parallel + 1)};
    if (cbx_runtime_new(&rt, &ro, &err) < 0) {
        cli_err("exec: cannot make the runtime: %s", err.msg[0] ? err.msg : cbx_strerror(err.code));
        goto out;
    }

    cbx_breaker_opts bo;
    cbx_breaker_opts_default(&bo);
    bo.name = c->breaker;
    bo.consecutive_failures = (uint32_t)c->breaker_failures;
    bo.open_ns = c->breaker_open_ns;
    bo.half_open_probes = (uint32_t)c->breaker_probes;
    cbx_request req = {.executor = c->type,
                       .params = params,
                       .policy = policy,
                       .breaker = c->breaker,
                       .breaker_opts = c->breaker ? &bo : NULL,
                       .fallback_key = fb_key,
                       .tmpdir = c->tmpdir,
                       .on_done = on_done,
                       .on_retry = c->verbose ? exec_on_retry_verbose : NULL,
                       .on_chunk = s.chunks ? on_chunk : NULL};

    s.rt = rt;
    s.loop = &loop;
    s.req = &req;
    uv_signal_init(&loop, &s.sigint);
    uv_signal_init(&loop, &s.sigterm);
    s.sigint.data = s.sigterm.data = &s;
    uv_signal_start(&s.sigint, on_signal, SIGINT);
    uv_signal_start(&s.sigterm, on_signal, SIGTERM);
    cli_signals_guard(); /* a second signal exits even while the loop is busy */
    uv_timer_init(&loop, &s.tick);
    s.tick.data = &s;
    handles_ok = 1;
    /* a progress line for parallel runs, and for a long single run of a TYPE (with -- CMD the
     * terminal's stderr is the command's) */
    cli_progress_start(&s.progress, !c->quiet && (c->repeat > 1 || !c->cmd));
    if (s.progress.on)
        uv_timer_start(&s.tick, on_tick, 100, 100);
    uint64_t t0 = cbx_clock_now_ns(NULL);

    cbx_diag diag = {0};
    int invalid = 0;
    while (s.done < c->repeat) {
        while (!s.stopping && s.submitted < c->repeat && s.submitted - s.done < c->parallel) {
            run_slot *slot = calloc(1, sizeof *slot);
            if (!slot) {
                cli_err("exec: out of memory");
                s.stopping = 1;
                break;
            }
            s.submitted++;
            slot->s = &s;
            slot->number = s.submitted;
            char tag[24];
            snprintf(tag, sizeof tag, "%llu", (unsigned long long)slot->number);
            /* one run: passed through as it comes; several at once: whole lines (or, with
             * --group, all of it when the run ends); --json: kept for the result */
            exec_stream_init(&slot->out,
                             c->repeat == 1 ? EXEC_STREAM_RAW
                             : c->group     ? EXEC_STREAM_GROUP
                                            : EXEC_STREAM_LINES,
                             c->tag ? tag : NULL, c->json);
            req.ud = slot;
            req.chunk_ud = slot;
            int r = cbx_runtime_submit(rt, &req, &s.current, s.submitted == 1 ? &diag : NULL);
            if (r == CBX_EUNKNOWN_TYPE || r == CBX_EINVAL_CONFIG) {
                invalid = 1;
                s.stopping = 1; /* every other run would be refused the same way */
            }
        }
        if (s.stopping && s.submitted - s.done == 0)
            break;
        uv_run(&loop, UV_RUN_ONCE);
    }
    uint64_t elapsed = cbx_clock_now_ns(NULL) - t0;
    cli_tty_restore(); /* before cbx's own lines */
    cli_progress_clear(&s.progress);
    uv_timer_stop(&s.tick);
    uv_signal_stop(&s.sigint);
    uv_signal_stop(&s.sigterm);

    if (invalid) {
        exec_report_invalid(c, reg, &diag, params, notes);
        code = CLI_EXIT_USAGE;
        if (c->json && s.have_first) {
            json_t *j = cbx_result_to_json(&s.first);
            cli_print_json(stdout, j);
            json_decref(j);
        } else if (c->json && s.all) {
            cli_print_json(stdout, s.all);
        }
    } else if (c->repeat == 1 && s.have_first) {
        code = exec_finish_one(c, &s.first, &s.first_stream);
    } else if (c->repeat == 1) {
        code = s.stopping ? CLI_EXIT_CANCELLED : CLI_EXIT_INTERNAL;
    } else {
        code = exec_finish_many(&s, elapsed);
    }
    cbx_diag_clear(&diag);
out:
    if (s.have_first)
        cbx_result_clear(&s.first);
    exec_stream_free(&s.first_stream);
    json_decref(s.all);
    free(s.lat_ns);
    if (loop_ok) {
        if (handles_ok) {
            uv_close((uv_handle_t *)&s.sigint, close_cb);
            uv_close((uv_handle_t *)&s.sigterm, close_cb);
            uv_close((uv_handle_t *)&s.tick, close_cb);
        }
        cbx_runtime_free(rt);
        uv_run(&loop, UV_RUN_DEFAULT);
        uv_loop_close(&loop);
    }
    cbx_breaker_store_free(store);
    if (cli_journal_finish("exec", journal) && c->journal_required && code != CLI_EXIT_USAGE)
        code = CLI_EXIT_JOURNAL;
    cbx_journal_close(journal);
    free(fb_key);
    return code;
}

int cli_cmd_exec(cli_ctx *ctx, int argc, char **argv)
{
    exec_cfg c = {0};
    cbx_registry *reg = NULL;
    cbx_policy *policy = NULL;
    cbx_breaker_store *rate_store = NULL; /* --rate-key: holds the limiter's word */
    cbx_err err;
    cbx_err_clear(&err);
    json_t *params = NULL, *notes = json_object();
    int code = exec_parse(ctx, argc, argv, &c);
    if (code)
        goto out;
    /* the host store, or the cluster's with CBX_BREAKER_STORE=nats */
    if (c.rate_key && cli_breaker_store_open(&rate_store, &err) < 0) {
        cli_err("breaker store: %s", err.msg[0] ? err.msg : cbx_strerror(err.code));
        code = err.code == -ENOSPC             ? CLI_EXIT_REFUSED
               : err.code == CBX_EINVAL_CONFIG ? CLI_EXIT_USAGE
                                               : CLI_EXIT_INTERNAL;
        goto out;
    }
    code = exec_build_policy(&c, rate_store, &policy);
    if (code)
        goto out;
    cli_log_install(c.verbose);
    code = cli_registry_open(&c.src, &reg);
    if (code)
        goto out;
    if (c.remote_result) {
        code = exec_remote_result(&c, ctx, reg);
        goto out;
    }
    const cbx_executor_type *type = cbx_registry_find(reg, c.type);
    if (cli_params_build("exec", type ? type->params : NULL, c.params_json, c.kv, c.n_kv, &params,
                         notes) < 0) {
        code = CLI_EXIT_USAGE;
        goto out;
    }
    if (c.cmd) {
        /* the command after -- is the argv, here or on a worker */
        if (json_object_get(params, "argv")) {
            cli_err("exec: -p argv: the command after -- is the argv");
            code = CLI_EXIT_USAGE;
            goto out;
        }
        json_t *av = json_array();
        for (int i = 0; i < c.ncmd; i++) {
            json_t *arg = json_string(c.cmd[i]);
            if (!arg) {
                cli_err("exec: argument %d of the command is not UTF-8 text", i);
                json_decref(av);
                code = CLI_EXIT_USAGE;
                goto out;
            }
            json_array_append_new(av, arg);
        }
        json_object_set_new(params, "argv", av);
    }
    if (c.remote) {
        code = exec_remote(&c, ctx, reg, params);
        goto out;
    }
    if (c.cmd) {
        /* Run once: the command's output streams through as it comes, each attempt's (its
         * chunks, cbx_task_emit) */
        c.stream = !c.each && c.repeat == 1 && !c.json &&
                   !json_object_get(params, "tee_stdout_fd") &&
                   !json_object_get(params, "tee_stderr_fd");
        /* cbx's stdin is the command's (with --each it holds the items; -p KEY=@- read it) */
        int stdin_used = c.each;
        for (size_t i = 0; i < c.n_kv; i++) {
            const char *at = strstr(c.kv[i], "=@-");
            stdin_used |= at && at[3] == '\0';
        }
        if (!stdin_used && (code = cli_exec_stdin(params, c.max_attempts * c.repeat, c.stdin_max)))
            goto out;
        /* On a terminal, the command gets a terminal: a pty that cbx's keys are typed into */
        c.tty = c.stream && !json_object_get(params, "pty") && isatty(STDIN_FILENO) &&
                isatty(STDOUT_FILENO) &&
                json_integer_value(json_object_get(params, "stdin_fd")) == STDIN_FILENO &&
                json_object_get(params, "stdin_fd");
        if (c.tty)
            json_object_set_new(params, "pty", json_true());
    }
    if (c.each) {
        cbx_breaker_opts bo;
        cbx_breaker_opts_default(&bo);
        bo.name = c.breaker;
        bo.consecutive_failures = (uint32_t)c.breaker_failures;
        bo.open_ns = c.breaker_open_ns;
        bo.half_open_probes = (uint32_t)c.breaker_probes;
        cli_each_opts *eo = &c.each_opts;
        eo->type = c.type;
        eo->cmd_mode = c.cmd != NULL;
        eo->jobs = c.parallel;
        eo->json = c.json;
        eo->quiet = c.quiet;
        eo->breaker = c.breaker;
        eo->breaker_opts = &bo;
        eo->tmpdir = c.tmpdir;
        code = cli_exec_each(eo, ctx, reg, policy, params);
    } else {
        if (c.tty)
            cli_tty_raw(STDIN_FILENO);
        code = run(&c, ctx, reg, policy, params, notes);
        cli_tty_restore();
    }
out:
    if (code < 0)
        code = CLI_EXIT_OK; /* --help */
    json_decref(params);
    json_decref(notes);
    cbx_policy_free(policy);
    cbx_breaker_store_free(rate_store);
    cbx_registry_free(reg);
    free(c.kv);
    return code;
}
