/* cbx breaker list|show|set|reset|open|close: the named breakers of the host-wide store. */
#include "args.h"
#include "cli.h"
#include "output.h"

#include "cbx/breaker_store.h"
#include "cbx/units.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

static const char help[] =
    "Usage: cbx breaker list [--json]\n"
    "       cbx breaker show NAME [--json]\n"
    "       cbx breaker set NAME [--failures N] [--open DUR] [--probes N]\n"
    "       cbx breaker reset|open|close NAME\n"
    "\n"
    "The named breakers of the host-wide store, which every cbx process on this machine\n"
    "shares ('cbx exec --breaker NAME' uses them). It lives in the state directory\n"
    "($CBX_STATE_DIR/breakers, see --state-dir), which must be yours and writable by no one\n"
    "else; 'breakers' must not be a symbolic link. Each breaker takes 32 KiB there.\n"
    "\n"
    "Actions:\n"
    "  list         every breaker: state, mode, calls, failures, rejections, consecutive\n"
    "               failures, time to the next probe\n"
    "  show NAME    one breaker's options and metrics: counts by outcome, success rate,\n"
    "               latency percentiles, opens, time in state, time to the next probe\n"
    "  set NAME     change the options stored with the breaker (making it if new); every\n"
    "               process uses them from its next call. Options not given keep their\n"
    "               stored value. Its state is kept unless --probes changes (then it\n"
    "               starts afresh, closed)\n"
    "  reset NAME   back to normal and closed, with empty windows (counters are kept)\n"
    "  open NAME    force it open: every call is refused (exit 75) until 'reset'\n"
    "  close NAME   force it closed: every call is admitted and it never trips until 'reset'\n"
    "\n"
    "Options:\n"
    "  --failures N     (set) consecutive failures that open it\n"
    "  --open DUR       (set) how long it stays open before a probe\n"
    "  --probes N       (set) probes admitted at once when half-open\n"
    "  --json           JSON instead of a table\n"
    "  --state-dir DIR  the store's directory (CBX_STATE_DIR)\n"
    "  -h, --help       this help\n"
    "\n"
    "Examples:\n"
    "  cbx breaker list\n"
    "  cbx breaker show db --json\n"
    "  cbx breaker set db --failures 3 --open 1m\n"
    "  cbx breaker open db      # maintenance: refuse every call\n"
    "  cbx breaker reset db\n"
    "\n"
    "A NAME that the store does not hold exits 1; an empty NAME, or one longer than 200\n"
    "bytes, exits 2.\n"
    "\n";

enum { OPT_FAILURES = CLI_OPT_OWN, OPT_OPEN, OPT_PROBES };

static const cli_opt opts[] = {
    CLI_OPTS_COMMON,          {"json", 0, 0, CLI_OPT_JSON}, {"failures", 0, 1, OPT_FAILURES},
    {"open", 0, 1, OPT_OPEN}, {"probes", 0, 1, OPT_PROBES}, {0},
};

static const char *str_of(const json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : "";
}

static long long int_of(const json_t *o, const char *key)
{
    return (long long)json_integer_value(json_object_get(o, key));
}

/* "closed", or "open (forced_open)" when a mode overrides the state. */
static void state_cell(cli_table *t, const json_t *b)
{
    const char *state = str_of(b, "state"), *mode = str_of(b, "mode");
    if (strcmp(mode, "normal") == 0 || !mode[0])
        cli_table_cell(t, state, cli_status_color(state));
    else
        cli_table_cellf(t, cli_status_color(mode), "%s (%s)", state, mode);
}

static void retry_cell(cli_table *t, const json_t *b)
{
    long long ms = int_of(b, "retry_in_ms");
    char buf[32];
    if (strcmp(str_of(b, "state"), "closed") == 0 || ms <= 0)
        cli_table_cell(t, "-", NULL);
    else
        cli_table_cell(t, cbx_duration_human((uint64_t)ms * CBX_NS_PER_MS, buf, sizeof buf), NULL);
}

static void list_table(const json_t *arr)
{
    static const char *const heads[] = {"NAME",       "STATE",       "CALLS",     "FAILURES",
                                        "REJECTIONS", "CONSECUTIVE", "NEXT PROBE"};
    cli_table *t = cli_table_new(7, heads);
    if (!t)
        return;
    for (size_t c = 2; c < 7; c++)
        cli_table_align_right(t, c);
    size_t i;
    json_t *b;
    json_array_foreach(arr, i, b)
    {
        cli_table_row(t);
        cli_table_cell(t, str_of(b, "name"), CLI_BOLD);
        state_cell(t, b);
        cli_table_cellf(t, NULL, "%lld", int_of(b, "calls"));
        cli_table_cellf(t, NULL, "%lld", int_of(b, "failures"));
        cli_table_cellf(t, NULL, "%lld", int_of(b, "rejections"));
        cli_table_cellf(t, NULL, "%lld", int_of(b, "consecutive_failures"));
        retry_cell(t, b);
    }
    cli_table_print(t, stdout);
    cli_table_free(t);
}

static void show_text(const json_t *b)
{
    char a[32], c[32], d[32];
    const char *state = str_of(b, "state"), *mode = str_of(b, "mode");
    cli_paint(stdout, CLI_BOLD, str_of(b, "name"));
    printf(": ");
    cli_paint(stdout, cli_status_color(state), state);
    if (mode[0] && strcmp(mode, "normal") != 0)
        printf(" (%s)", mode);
    long long in_state = int_of(b, "time_in_state_ms");
    printf(" for %s", cbx_duration_human((uint64_t)(in_state > 0 ? in_state : 0) * CBX_NS_PER_MS, a,
                                         sizeof a));
    long long retry = int_of(b, "retry_in_ms");
    if (strcmp(state, "closed") != 0 && retry > 0)
        printf("; next probe in %s",
               cbx_duration_human((uint64_t)retry * CBX_NS_PER_MS, a, sizeof a));
    printf("\n");
    const json_t *o = json_object_get(b, "options");
    if (json_is_object(o))
        printf("options: failures %lld, open %s, probes %lld\n", int_of(o, "consecutive_failures"),
               cbx_duration_human((uint64_t)int_of(o, "open_ms") * CBX_NS_PER_MS, c, sizeof c),
               int_of(o, "half_open_probes"));
    printf("calls %lld: %lld successes, %lld failures, %lld ignored; %lld rejected\n",
           int_of(b, "calls"), int_of(b, "successes"), int_of(b, "failures"), int_of(b, "ignored"),
           int_of(b, "rejections"));
    const json_t *kinds = json_object_get(b, "by_kind");
    if (json_is_object(kinds)) {
        printf("by outcome:");
        const char *k;
        json_t *v;
        json_object_foreach((json_t *)kinds, k, v)
        {
            if (json_integer_value(v))
                printf(" %s %lld", k, (long long)json_integer_value(v));
        }
        printf("\n");
    }
    printf("consecutive failures %lld; opened %lld times; re-opens %lld; probes in flight %lld\n",
           int_of(b, "consecutive_failures"), int_of(b, "opens"), int_of(b, "reopens"),
           int_of(b, "probes_in_flight"));
    printf("success rate %.1f%%\n", json_number_value(json_object_get(b, "success_rate")) * 100);
    char e[32]; /* one buffer per figure: they are all printed by the one printf */
    if (int_of(b, "latency_count"))
        printf("latency mean %s  p50 %s  p95 %s  p99 %s\n",
               cli_format_ms(json_object_get(b, "latency_mean_ms"), a, sizeof a),
               cli_format_ms(json_object_get(b, "latency_p50_ms"), c, sizeof c),
               cli_format_ms(json_object_get(b, "latency_p95_ms"), d, sizeof d),
               cli_format_ms(json_object_get(b, "latency_p99_ms"), e, sizeof e));
    fflush(stdout);
}

/* A name the store does not hold: exit 1, with the closest known name when there is one. */
static int unknown_breaker(cbx_breaker_store *s, const char *action, const char *name)
{
    json_t *arr = NULL;
    const char *best = NULL;
    const char *names[256];
    size_t n = 0;
    if (cbx_breaker_store_list(s, &arr, NULL) == 0) {
        size_t i;
        json_t *b;
        json_array_foreach(arr, i, b)
        {
            if (n < 256)
                names[n++] = str_of(b, "name");
        }
        best = cli_suggest(name, names, n);
    }
    if (best)
        cli_err("breaker %s: no breaker named '%s' (did you mean '%s'?)", action, name, best);
    else
        cli_err("breaker %s: no breaker named '%s' (see 'cbx breaker list')", action, name);
    json_decref(arr);
    return CLI_EXIT_FAILED;
}

int cli_cmd_breaker(cli_ctx *ctx, int argc, char **argv)
{
    static const char *const actions[] = {"list", "show", "set", "reset", "open", "close", NULL};
    uint64_t failures = 0, open_ns = 0, probes = 0;
    cli_args a;
    cli_args_init(&a, "breaker", argc, argv, opts);
    const char *action = NULL, *name = NULL;
    int json = 0, id;
    const char *val;
    while ((id = cli_args_next(&a, &val)) != CLI_ARGS_END) {
        switch (id) {
        case CLI_ARGS_ERROR:
            return CLI_EXIT_USAGE;
        case CLI_OPT_HELP:
            fputs(help, stdout);
            fputs(cli_exit_codes_help, stdout);
            return CLI_EXIT_OK;
        case CLI_OPT_STATE_DIR:
        case CLI_OPT_NO_JOURNAL:
        case CLI_OPT_UTC:
        case CLI_OPT_JSON:
            if (cli_common_option(ctx, id, val, &json))
                return CLI_EXIT_USAGE;
            break;
        case OPT_FAILURES:
            if (cli_parse_uint("--failures", val, 1, 1000000, &failures))
                return CLI_EXIT_USAGE;
            break;
        case OPT_OPEN:
            if (cli_parse_duration("--open", val, &open_ns))
                return CLI_EXIT_USAGE;
            if (!open_ns) {
                cli_err("--open: expected a duration > 0, got '%s'", val);
                return CLI_EXIT_USAGE;
            }
            break;
        case OPT_PROBES:
            if (cli_parse_uint("--probes", val, 1, CBX_BREAKER_MAX_PROBES, &probes))
                return CLI_EXIT_USAGE;
            break;
        case CLI_ARGS_POSITIONAL:
            if (!action) {
                if (cli_parse_choice("breaker", val, actions))
                    return CLI_EXIT_USAGE;
                action = val;
            } else if (!name && strcmp(action, "list") != 0) {
                name = val;
            } else {
                cli_err("breaker %s: unexpected argument '%s'", action, val);
                return CLI_EXIT_USAGE;
            }
            break;
        default:
            break;
        }
    }
    if (a.dashdash && a.rest < argc) {
        if (!action || name || strcmp(action, "list") == 0) {
            cli_err("breaker: unexpected argument '%s'", argv[a.rest]);
            return CLI_EXIT_USAGE;
        }
        name = argv[a.rest]; /* a name that starts with '-' */
    }
    if (!action) {
        cli_err("breaker: expected an action: list, show, set, reset, open or close");
        return CLI_EXIT_USAGE;
    }
    if (strcmp(action, "list") != 0 && !name) {
        cli_err("breaker %s: expected a breaker NAME", action);
        return CLI_EXIT_USAGE;
    }
    if ((failures || open_ns || probes) && strcmp(action, "set") != 0) {
        cli_err("breaker %s: --failures, --open and --probes go with 'set'", action);
        return CLI_EXIT_USAGE;
    }
    if (name && (!name[0] || strlen(name) > CBX_BREAKER_NAME_MAX)) {
        cli_err("breaker %s: a breaker name is 1 to %d bytes, got %zu", action,
                CBX_BREAKER_NAME_MAX, strlen(name));
        return CLI_EXIT_USAGE;
    }

    cbx_breaker_store *s = NULL;
    cbx_err err;
    cbx_err_clear(&err);
    if (cli_breaker_store_open(&s, &err) < 0) {
        cli_err("breaker store: %s", err.msg[0] ? err.msg : cbx_strerror(err.code));
        return CLI_EXIT_INTERNAL;
    }
    int rc = CLI_EXIT_OK;
    if (strcmp(action, "list") == 0) {
        json_t *arr = NULL;
        int r = cbx_breaker_store_list(s, &arr, &err);
        if (r < 0) {
            cli_err("breaker list: %s", err.msg[0] ? err.msg : cbx_strerror(r));
            rc = CLI_EXIT_INTERNAL;
        } else if (json) {
            rc = cli_print_json(stdout, arr) ? CLI_EXIT_INTERNAL : CLI_EXIT_OK;
        } else if (!json_array_size(arr)) {
            printf("no breakers yet (cbx exec --breaker NAME makes one)\n");
        } else {
            list_table(arr);
        }
        json_decref(arr);
    } else if (strcmp(action, "show") == 0) {
        json_t *b = NULL;
        int r = cbx_breaker_store_show(s, name, &b, &err);
        if (r == -ENOENT)
            rc = unknown_breaker(s, action, name);
        else if (r < 0) {
            cli_err("breaker show: %s", err.msg[0] ? err.msg : cbx_strerror(r));
            rc = r == CBX_EINVAL_CONFIG || r == -EINVAL ? CLI_EXIT_USAGE : CLI_EXIT_INTERNAL;
        } else if (json)
            rc = cli_print_json(stdout, b) ? CLI_EXIT_INTERNAL : CLI_EXIT_OK;
        else
            show_text(b);
        json_decref(b);
    } else if (strcmp(action, "set") == 0) {
        cbx_breaker_opts o;
        int r = cbx_breaker_store_get_opts(s, name, &o);
        if (r == -ENOENT) { /* as 'cbx exec --breaker NAME' would make it */
            cbx_breaker_opts_default(&o);
            o.open_ns = 30 * CBX_NS_PER_S;
        }
        if (failures)
            o.consecutive_failures = (uint32_t)failures;
        if (open_ns)
            o.open_ns = open_ns;
        if (probes)
            o.half_open_probes = (uint32_t)probes;
        r = r == 0 || r == -ENOENT ? cbx_breaker_store_set_opts(s, name, &o, &err) : r;
        json_t *b = NULL;
        if (r == 0)
            r = cbx_breaker_store_show(s, name, &b, &err);
        if (r < 0) {
            cli_err("breaker set: %s", err.msg[0] ? err.msg : cbx_strerror(r));
            rc = r == CBX_EINVAL_CONFIG ? CLI_EXIT_USAGE
                 : r == -ENOSPC         ? CLI_EXIT_REFUSED
                                        : CLI_EXIT_INTERNAL;
        } else if (json) {
            rc = cli_print_json(stdout, b) ? CLI_EXIT_INTERNAL : CLI_EXIT_OK;
        } else {
            char d[32];
            const json_t *oj = json_object_get(b, "options");
            printf("breaker '%s': failures %lld, open %s, probes %lld\n", name,
                   int_of(oj, "consecutive_failures"),
                   cbx_duration_human((uint64_t)int_of(oj, "open_ms") * CBX_NS_PER_MS, d, sizeof d),
                   int_of(oj, "half_open_probes"));
        }
        json_decref(b);
    } else {
        cbx_breaker_mode mode = strcmp(action, "reset") == 0  ? CBX_BREAKER_NORMAL
                                : strcmp(action, "open") == 0 ? CBX_BREAKER_FORCED_OPEN
                                                              : CBX_BREAKER_FORCED_CLOSED;
        int r = cbx_breaker_store_set_mode(s, name, mode);
        if (r == -ENOENT) {
            rc = unknown_breaker(s, action, name);
        } else if (r == -EAGAIN) {
            cli_err("breaker %s: breaker '%s' stayed locked by another process for %llu s", action,
                    name, (unsigned long long)(CBX_BREAKER_STORE_WAIT_NS / CBX_NS_PER_S));
            rc = CLI_EXIT_INTERNAL;
        } else if (r < 0) {
            cli_err("breaker %s: %s", action, cbx_strerror(r));
            rc = r == CBX_EINVAL_CONFIG ? CLI_EXIT_USAGE : CLI_EXIT_INTERNAL;
        } else if (json) {
            json_t *b = NULL;
            if (cbx_breaker_store_show(s, name, &b, NULL) == 0)
                cli_print_json(stdout, b);
            json_decref(b);
        } else {
            static const char *const done[] = {"reset: closed", "forced open", "forced closed"};
            printf("breaker '%s' %s\n", name, done[mode]);
        }
    }
    cbx_breaker_store_free(s);
    return rc;
}
