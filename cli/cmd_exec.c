/* cbx exec: run an executor type, or a command (-- CMD ARGS), under a policy.
 *
 * The policy is one policy block (docs/policy.md): --policy FILE or --policy-json, with the
 * policy flags written over its keys. A named breaker (--breaker) lives in the host-wide store,
 * so that runs from a shell script trip and recover it together. */
#define _GNU_SOURCE /* sigabbrev_np */
#include "args.h"
#include "cli.h"
#include "config.h"
#include "exec_each.h"
#include "exec_stdin.h"
#include "exec_tty.h"
#include "output.h"
#include "signals.h"

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

static const char help_usage[] =
    "Usage: cbx exec [OPTIONS] TYPE [-p KEY=VALUE]... [--params-json JSON]\n"
    "       cbx exec [OPTIONS] -- CMD [ARGS]...\n"
    "\n"
    "Run one execution of an executor TYPE (see 'cbx types'), or run CMD with the command\n"
    "executor (no shell) as a drop-in wrapper: its stdout and stderr stream through as the\n"
    "command writes them (each attempt's, when it is retried), and cbx exits with its exit\n"
    "code (128+N when killed by signal N), with the policy below around it. Every attempt is\n"
    "journaled with its captured output (see 'cbx history').\n"
    "\n"
    "Parameters:\n"
    "  -p, --param KEY=VALUE   a parameter, typed by the type's schema: integer, number and\n"
    "                          boolean (true/false) values are parsed; array and object\n"
    "                          values are JSON; other values are strings\n"
    "  -p KEY=@FILE            the file's content (JSON for array and object parameters;\n"
    "                          @- reads stdin)\n"
    "  --params-json JSON      every parameter as one JSON object (-p values override it)\n"
    "\n"
    "Policy (each flag overrides its key of --policy / --policy-json):\n"
    "  --timeout DUR           limit on each attempt (250ms, 5s, 2m); default none\n"
    "  --deadline DUR          limit on the whole execution, retries included; default none\n"
    "  --retries N             extra attempts after the first (attempts = N+1); default 0\n"
    "  --backoff KIND          fixed, linear, exponential or decorrelated; default exponential\n"
    "  --retry-delay DUR       the first delay between attempts; default 100ms\n"
    "  --retry-max-delay DUR   cap on every delay; default 30s\n"
    "  --jitter KIND           none, full or equal; default full\n"
    "  --retry-on KINDS        comma list of outcomes worth a retry: error, timeout,\n"
    "                          rate_limited, quality, custom; default error,timeout,rate_limited\n"
    "                          (any retry flag without --retries makes 3 attempts in all)\n"
    "  --breaker NAME          guard every attempt with the named breaker of the host-wide\n"
    "                          store, shared by every cbx process (see 'cbx breaker')\n"
    "  --breaker-failures N    consecutive failures that open it; default 5\n"
    "  --breaker-open DUR      how long it stays open before a probe; default 30s\n"
    "  --breaker-probes N      probes admitted at once when half-open; default 1\n"
    "                          (the breaker options apply when the name is first used,\n"
    "                          and are stored with it: 'cbx breaker set' changes them;\n"
    "                          when the store has no room for a new name, the state\n"
    "                          directory's file system being full, nothing runs: exit 76)\n"
    "  --fallback JSON         a static answer when the execution does not succeed\n"
    "  --rate LIMIT            rate limit on attempts (5/s, 600/min); over it: refused\n"
    "  --rate-key NAME         share the rate limit with every cbx process on the host that\n"
    "                          gives the same NAME (kept in the state directory's store)\n"
    "  --rate-wait MAX         over the rate, wait for the next token up to MAX (2s)\n"
    "                          instead of refusing; a token further off than MAX or the\n"
    "                          deadline is refused at once (exit 76)\n"
    "  --policy NAME|FILE      a named policy of the config file ('cbx config show'), else\n"
    "                          a policy block from a file (YAML or JSON)\n"
    "  --policy-json JSON      a policy block (docs/policy.md)\n"
    "\n";

static const char help_running[] =
    "Running:\n"
    "  --repeat N              run the same request N times; default 1\n"
    "  --parallel P, -j P      with --repeat or --each: P at a time; default 1\n"
    "  --each                  one execution per line of stdin: {} in the command's arguments\n"
    "                          (or a TYPE's string parameters) is the line, as in GNU\n"
    "                          parallel ({.} {/} {//} {/.} {#} {%} too); a command without {}\n"
    "                          gets the line as its last argument (docs/cli.md)\n"
    "  --stdin-max BYTES       -- CMD run more than once (retries, --repeat) with stdin on a\n"
    "                          pipe: it is read to its end first and each run reads it again;\n"
    "                          more than BYTES is refused (exit 2); default 67108864 (64 MiB)\n"
    "  -a, --arg-file FILE     --each with the lines of FILE\n"
    "  -0, --null              --each items end with NUL, not newline\n"
    "  --joblog FILE           --each: a row per finished job (GNU parallel's columns)\n"
    "  --resume                --each: skip the lines the joblog has; --resume-failed: skip\n"
    "                          only those that succeeded\n"
    "  --plugin-path DIRS      load the plugins (*.so) of these colon-separated directories\n"
    "                          or files; also $CBX_PLUGIN_PATH\n"
    "  --lua FILE              load the executor type defined in a Lua file, or every *.lua\n"
    "                          of a directory (repeatable); also $CBX_LUA_PATH (colon-\n"
    "                          separated files or directories)\n"
    "  --tmpdir                give each execution a temporary directory of its own, made\n"
    "                          before its first attempt and removed when it ends (a command\n"
    "                          finds it in $CBX_TMPDIR)\n"
    "  --keep-tmpdir           --tmpdir, kept when the execution does not succeed (its path\n"
    "                          is said on stderr and in the result's metadata.tmpdir)\n"
    "  --json                  print the result as JSON (with --repeat: a summary with every\n"
    "                          result) instead of the outputs\n"
    "  -q, --quiet             print no outputs, summary or failure line (usage errors are\n"
    "                          still printed; with -- CMD the command's output still is)\n"
    "  -v, --verbose           say on stderr how each attempt ended, each retry and its delay,\n"
    "                          and the breaker's decisions; the library's log lines too\n"
    "  --state-dir DIR         the journal and breaker store directory (CBX_STATE_DIR)\n"
    "  --no-journal            do not write the journal\n"
    "  --journal-required      exit 74 when a record could not be written to the journal\n"
    "                          (a full disk, say); without it cbx says so on stderr and exits\n"
    "                          as the work did\n"
    "  -h, --help              this help\n"
    "\n"
    "Output: with TYPE, the outputs as JSON on stdout (a string output as text). With -- CMD,\n"
    "the command's stdout and stderr, streamed as they come (each attempt's when retried),\n"
    "and cbx's stdin is the command's (a pipe is read to its end first when the command may\n"
    "run more than once; see --stdin-max). When cbx's stdin and stdout are terminals, the\n"
    "command runs on a terminal of its own (a pty; cbx's is raw meanwhile, ^C included).\n"
    "With --repeat, a summary line (and a progress line on a\n"
    "terminal). A failure, timeout or refusal is one line on stderr (\"cbx: exec: ...\").\n"
    "The first ^C (or SIGTERM) cancels every execution - process trees are killed - and cbx\n"
    "exits 130; a second ^C exits at once.\n"
    "\n"
    "Examples:\n"
    "  cbx exec -- sh -c 'echo hello'\n"
    "  cbx exec --timeout 2s --retries 3 --backoff exponential -- curl -fsS http://localhost/\n"
    "  cbx exec --breaker api --breaker-failures 3 --breaker-open 1m -- ./call-api.sh\n"
    "  cbx exec http -p url=https://example.com -p method=GET --json\n"
    "  cbx exec command -p argv='[\"ls\",\"-l\"]' -p cwd=/tmp\n"
    "  cbx exec http --params-json '{\"url\":\"http://localhost:8080/\"}' --fallback '{}'\n"
    "  cbx exec --repeat 100 --parallel 8 -- ./flaky.sh\n"
    "  find . -name '*.log' | cbx exec -j4 --each --joblog gz.log -- gzip -9 {}\n"
    "\n";

static const char exit_help[] =
    "With --repeat or --each the exit code is 0 when every run succeeded, else that of the\n"
    "first kind of trouble in this order: cancelled (130), failed (1), timed out (124), breaker\n"
    "open (75), refused (76).\n";

enum {
    OPT_PARAM = CLI_OPT_OWN,
    OPT_PARAMS_JSON,
    OPT_TIMEOUT,
    OPT_DEADLINE,
    OPT_RETRIES,
    OPT_BACKOFF,
    OPT_RETRY_DELAY,
    OPT_RETRY_MAX_DELAY,
    OPT_JITTER,
    OPT_RETRY_ON,
    OPT_BREAKER,
    OPT_BREAKER_FAILURES,
    OPT_BREAKER_OPEN,
    OPT_BREAKER_PROBES,
    OPT_FALLBACK,
    OPT_POLICY,
    OPT_POLICY_JSON,
    OPT_RATE,
    OPT_RATE_WAIT,
    OPT_RATE_KEY,
    OPT_REPEAT,
    OPT_PARALLEL,
    OPT_PLUGIN_PATH,
    OPT_LUA,
    OPT_QUIET,
    OPT_VERBOSE,
    OPT_JOURNAL_REQUIRED,
    OPT_TMPDIR,
    OPT_KEEP_TMPDIR,
    OPT_EACH,
    OPT_ARG_FILE,
    OPT_JOBLOG,
    OPT_RESUME,
    OPT_RESUME_FAILED,
    OPT_NULL,
    OPT_STDIN_MAX,
};

static const cli_opt opts[] = {
    CLI_OPTS_COMMON,
    {"json", 0, 0, CLI_OPT_JSON},
    {"param", 'p', 1, OPT_PARAM},
    {"params-json", 0, 1, OPT_PARAMS_JSON},
    {"timeout", 0, 1, OPT_TIMEOUT},
    {"deadline", 0, 1, OPT_DEADLINE},
    {"retries", 0, 1, OPT_RETRIES},
    {"backoff", 0, 1, OPT_BACKOFF},
    {"retry-delay", 0, 1, OPT_RETRY_DELAY},
    {"retry-max-delay", 0, 1, OPT_RETRY_MAX_DELAY},
    {"jitter", 0, 1, OPT_JITTER},
    {"retry-on", 0, 1, OPT_RETRY_ON},
    {"breaker", 0, 1, OPT_BREAKER},
    {"breaker-failures", 0, 1, OPT_BREAKER_FAILURES},
    {"breaker-open", 0, 1, OPT_BREAKER_OPEN},
    {"breaker-probes", 0, 1, OPT_BREAKER_PROBES},
    {"fallback", 0, 1, OPT_FALLBACK},
    {"policy", 0, 1, OPT_POLICY},
    {"policy-json", 0, 1, OPT_POLICY_JSON},
    {"rate", 0, 1, OPT_RATE},
    {"rate-wait", 0, 1, OPT_RATE_WAIT},
    {"rate-key", 0, 1, OPT_RATE_KEY},
    {"repeat", 0, 1, OPT_REPEAT},
    {"parallel", 0, 1, OPT_PARALLEL},
    {"jobs", 'j', 1, OPT_PARALLEL},
    {"each", 0, 0, OPT_EACH},
    {"arg-file", 'a', 1, OPT_ARG_FILE},
    {"joblog", 0, 1, OPT_JOBLOG},
    {"resume", 0, 0, OPT_RESUME},
    {"resume-failed", 0, 0, OPT_RESUME_FAILED},
    {"null", '0', 0, OPT_NULL},
    {"stdin-max", 0, 1, OPT_STDIN_MAX},
    {"plugin-path", 0, 1, OPT_PLUGIN_PATH},
    {"lua", 0, 1, OPT_LUA},
    {"quiet", 'q', 0, OPT_QUIET},
    {"verbose", 'v', 0, OPT_VERBOSE},
    {"journal-required", 0, 0, OPT_JOURNAL_REQUIRED},
    {"tmpdir", 0, 0, OPT_TMPDIR},
    {"keep-tmpdir", 0, 0, OPT_KEEP_TMPDIR},
    {0},
};

/* Which policy-block key each flag writes, so that an error on that key names the flag. */
typedef struct flag_key {
    int id;
    const char *path;
} flag_key;

static const flag_key flag_keys[] = {
    {OPT_TIMEOUT, "timeout"},           {OPT_DEADLINE, "deadline"},
    {OPT_RETRIES, "retry.attempts"},    {OPT_BACKOFF, "retry.backoff"},
    {OPT_RETRY_DELAY, "retry.initial"}, {OPT_RETRY_MAX_DELAY, "retry.max"},
    {OPT_JITTER, "retry.jitter"},       {OPT_RETRY_ON, "retry.on"},
    {OPT_FALLBACK, "fallback.value"},   {OPT_RATE, "rate_limit.rate"},
    {OPT_RATE_WAIT, "rate_limit.wait"},
};
#define N_FLAG_KEYS (sizeof flag_keys / sizeof flag_keys[0])

typedef struct exec_cfg {
    const char *type;
    char **cmd; /* after "--"; NULL-terminated; NULL when no "--" */
    int ncmd;
    const char **kv;
    size_t n_kv;
    const char *params_json;
    const char *flag_val[N_FLAG_KEYS]; /* the text given to each policy flag, or NULL */
    const char *policy_file, *policy_json;
    const char *breaker;
    const char *rate_key; /* --rate-key: the host-wide limiter's name */
    uint64_t breaker_failures, breaker_open_ns, breaker_probes;
    int breaker_given; /* BREAKER_GIVEN_* bits: the --breaker-* flags on the command line */
    int json, quiet, verbose;
    int journal_required; /* --journal-required */
    int tmpdir;           /* CBX_TMPDIR_*: --tmpdir, --keep-tmpdir */
    uint64_t repeat, parallel;
    uint64_t max_attempts; /* of the policy: 1 without retries */
    uint64_t stdin_max;    /* --stdin-max */
    int tty;               /* -- CMD on a terminal: on a pty, ours in raw mode while it runs */
    int stream; /* -- CMD run once: its stdout and stderr are teed to ours as they come */
    int each;   /* --each (or --arg-file): the options below, in each_opts */
    cli_each_opts each_opts;
    cli_types_src src;
} exec_cfg;

/* ---- the policy block ----------------------------------------------------------------------- */

static int flag_slot(int id)
{
    for (size_t i = 0; i < N_FLAG_KEYS; i++)
        if (flag_keys[i].id == id)
            return (int)i;
    return -1;
}

static const char *flag_name(int id)
{
    for (const cli_opt *o = opts; o->name; o++)
        if (o->id == id) {
            static char buf[64];
            snprintf(buf, sizeof buf, "--%s", o->name);
            return buf;
        }
    return "?";
}

/* Check a policy flag's text now, for a message that names the flag. */
static int check_flag(int id, const char *text)
{
    static const char *const backoffs[] = {"fixed", "linear", "exponential", "decorrelated", NULL};
    static const char *const jitters[] = {"none", "full", "equal", NULL};
    uint64_t u;
    double d;
    const char *flag = flag_name(id);
    switch (id) {
    case OPT_TIMEOUT:
    case OPT_DEADLINE:
        if (cli_parse_duration(flag, text, &u))
            return CLI_ARGS_ERROR;
        if (u == 0) {
            /* as in flows: a limit of zero is no limit people mean; leaving it out is */
            cli_err("%s: must be greater than zero (leave it out for no limit)", flag);
            return CLI_ARGS_ERROR;
        }
        return 0;
    case OPT_RETRY_DELAY:
    case OPT_RETRY_MAX_DELAY:
        return cli_parse_duration(flag, text, &u);
    case OPT_RETRIES:
        return cli_parse_uint(flag, text, 0, 1000000, &u);
    case OPT_BACKOFF:
        return cli_parse_choice(flag, text, backoffs);
    case OPT_JITTER:
        return cli_parse_choice(flag, text, jitters);
    case OPT_RATE:
        return cli_parse_rate(flag, text, &d);
    case OPT_RATE_WAIT:
        return cli_parse_duration(flag, text, &u);
    case OPT_RETRY_ON: {
        char *copy = strdup(text), *save = NULL;
        int rc = copy ? 0 : CLI_ARGS_ERROR, n = 0;
        for (char *k = copy ? strtok_r(copy, ",", &save) : NULL; k && !rc;
             k = strtok_r(NULL, ",", &save), n++) {
            cbx_outcome o;
            if (cbx_outcome_parse(k, &o) < 0 || !cbx_outcome_is_failure(o)) {
                static const char *const kinds[] = {"error", "timeout", "rate_limited", "quality",
                                                    "custom"};
                const char *best = cli_suggest(k, kinds, 5);
                cli_err("%s: expected failure kinds (error, timeout, rate_limited, quality, "
                        "custom), got '%s'%s%s%s",
                        flag, k, best ? " (did you mean '" : "", best ? best : "",
                        best ? "'?)" : "");
                rc = CLI_ARGS_ERROR;
            }
        }
        if (!rc && !n) {
            cli_err("%s: expected failure kinds (error, timeout, ...), got ''", flag);
            rc = CLI_ARGS_ERROR;
        }
        free(copy);
        return rc;
    }
    case OPT_FALLBACK: {
        json_error_t je;
        json_t *v = json_loads(text, JSON_DECODE_ANY, &je);
        if (!v) {
            cli_err("%s: expected a JSON value (quote a string: '\"text\"'), got '%s': %s", flag,
                    text, je.text);
            return CLI_ARGS_ERROR;
        }
        json_decref(v);
        return 0;
    }
    default:
        return 0;
    }
}

/* The JSON value a flag puts into the block. */
static json_t *flag_value(int id, const char *text)
{
    switch (id) {
    case OPT_RETRIES: {
        uint64_t n = strtoull(text, NULL, 10);
        return json_integer((json_int_t)n + 1);
    }
    case OPT_RETRY_ON: {
        json_t *arr = json_array();
        char *copy = strdup(text), *save = NULL;
        for (char *k = copy ? strtok_r(copy, ",", &save) : NULL; k; k = strtok_r(NULL, ",", &save))
            json_array_append_new(arr, json_string(k));
        free(copy);
        return arr;
    }
    case OPT_FALLBACK:
        return json_loads(text, JSON_DECODE_ANY, NULL);
    default:
        return json_string(text);
    }
}

/* Set block[a][b] (or block[a]) = v (stolen). A section that is present but not an object is
 * left alone: the policy parser reports it. */
static void block_set(json_t *block, const char *path, json_t *v)
{
    const char *dot = strchr(path, '.');
    if (!dot) {
        json_object_set_new(block, path, v);
        return;
    }
    char sect[64];
    snprintf(sect, sizeof sect, "%.*s", (int)(dot - path), path);
    json_t *s = json_object_get(block, sect);
    if (!s) {
        s = json_object();
        json_object_set_new(block, sect, s);
    }
    if (json_is_object(s))
        json_object_set_new(s, dot + 1, v);
    else
        json_decref(v);
}

static int load_policy_block(const exec_cfg *c, json_t **out)
{
    json_error_t je;
    json_t *block = NULL;
    if (c->policy_file && c->policy_json) {
        cli_err("exec: give --policy or --policy-json, not both");
        return CLI_EXIT_USAGE;
    }
    if (c->policy_file) {
        /* a named policy of the config file, else a file of YAML or JSON */
        if (cli_config_policy(c->policy_file, "--policy", &block))
            return CLI_EXIT_USAGE;
    } else if (c->policy_json) {
        block = json_loads(c->policy_json, 0, &je);
        if (!block) {
            cli_err("--policy-json: not valid JSON: %s (at column %d)", je.text, je.column);
            return CLI_EXIT_USAGE;
        }
    } else {
        block = json_object();
    }
    if (!json_is_object(block)) {
        cli_err("%s: expected a JSON object, got %s", c->policy_file ? "--policy" : "--policy-json",
                cli_json_kind(block));
        json_decref(block);
        return CLI_EXIT_USAGE;
    }
    /* retry-shaping flags alone make a retry section; --retries sets its attempts */
    for (size_t i = 0; i < N_FLAG_KEYS; i++)
        if (c->flag_val[i])
            block_set(block, flag_keys[i].path, flag_value(flag_keys[i].id, c->flag_val[i]));
    *out = block;
    return 0;
}

static int build_policy(exec_cfg *c, cbx_breaker_store *rate_store, cbx_policy **out)
{
    json_t *block;
    int rc = load_policy_block(c, &block);
    if (rc)
        return rc;
    cbx_policy_opts base;
    cbx_policy_opts_default(&base);
    base.name = "exec";
    cbx_err err;
    cbx_err_clear(&err);
    cbx_policy_opts o = base;
    int r = cbx_policy_opts_parse(&o, block, &err); /* o borrows from block (fallback.value) */
    c->max_attempts = 1;
    if (r == 0 && (o.sections & CBX_POLICY_WITH_RETRY) && o.retry.max_attempts > 1)
        c->max_attempts = o.retry.max_attempts;
    if (r == 0 && c->rate_key) {
        /* --rate-key: the limiter's arrival time lives in the host store, shared by every
         * process that names the key */
        if (!(o.sections & CBX_POLICY_WITH_RATE_LIMIT)) {
            cli_err("--rate-key: needs a rate (--rate, or rate_limit in the policy)");
            json_decref(block);
            return CLI_EXIT_USAGE;
        }
        void *word = NULL;
        r = cbx_breaker_store_limiter(rate_store, c->rate_key, &o.rate_limit, &word, &err);
        if (r) {
            cli_err("--rate-key: %s", err.msg[0] ? err.msg : cbx_strerror(r));
            json_decref(block);
            return r == -ENOSPC ? CLI_EXIT_REFUSED : CLI_EXIT_INTERNAL;
        }
        o.rate_limit.shared_tat = word;
    }
    if (r == 0)
        r = cbx_policy_new(out, &o, &err);
    json_decref(block);
    if (r == 0)
        return 0;
    if (r == -ENOMEM) {
        cli_err("exec: out of memory");
        return CLI_EXIT_INTERNAL;
    }
    /* name the flag that wrote the key, else the block it came from */
    const char *src = c->policy_file ? "--policy" : "--policy-json";
    for (size_t i = 0; i < N_FLAG_KEYS; i++) {
        size_t n = strlen(flag_keys[i].path);
        if (c->flag_val[i] && strncmp(err.where, flag_keys[i].path, n) == 0 &&
            (err.where[n] == '\0' || err.where[n] == '[' || err.where[n] == '.')) {
            cli_err("%s: %s", flag_name(flag_keys[i].id), err.msg);
            return CLI_EXIT_USAGE;
        }
    }
    if (err.code == CBX_EUNKNOWN_KEY || !err.where[0])
        cli_err("%s: %s", src, err.msg[0] ? err.msg : cbx_strerror(r));
    else
        cli_err("%s: %s: %s", src, err.where, err.msg[0] ? err.msg : cbx_strerror(r));
    return CLI_EXIT_USAGE;
}

/* ---- results -------------------------------------------------------------------------------- */

typedef struct run_state {
    const exec_cfg *cfg;
    cbx_runtime *rt;
    uv_loop_t *loop;
    const cbx_request *req;
    uint64_t submitted, done;
    uint64_t ok, failed, timeouts, breaker_open, refused, cancelled, invalid, fallbacks;
    uint64_t *lat_ns; /* durations of the runs that ran */
    uint64_t n_lat;
    cbx_execution *current; /* the last one submitted, until it is done */
    cbx_result first;       /* N = 1: the result itself (references held) */
    int have_first;
    json_t *all;          /* --json with --repeat: every result */
    char last_error[512]; /* the last failure's error line */
    int stopping;         /* a signal arrived: submit no more */
    int signals;
    cli_progress progress;
    uv_signal_t sigint, sigterm;
    uv_timer_t tick;
} run_state;

static int is_breaker_refusal(int rc)
{
    return rc == CBX_ECIRCUIT_OPEN || rc == CBX_EHALF_OPEN_FULL || rc == CBX_EFORCED_OPEN;
}

/* -v: one line per retry, as it is decided. */
static void on_retry_verbose(cbx_execution *ex, uint32_t attempt, uint64_t delay_ns,
                             const char *error, void *ud)
{
    (void)ex;
    (void)ud;
    char d[32];
    cli_err("exec: attempt %u failed (%s); retry in %s", attempt,
            error && error[0] ? error : "no detail", cbx_duration_human(delay_ns, d, sizeof d));
}

/* -v: how each attempt of a result ended, and what the breaker and the fallback decided. */
static void verbose_result(const cbx_result *res)
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

static void on_done(cbx_execution *ex, const cbx_result *res, void *ud)
{
    run_state *s = ud;
    if (s->cfg->verbose)
        verbose_result(res);
    if (ex == s->current)
        s->current = NULL;
    s->done++;
    if (res->status == CBX_STATUS_SUCCESS || res->fallback_used) {
        s->ok++;
        s->fallbacks += res->fallback_used;
    } else if (res->status == CBX_STATUS_TIMEOUT) {
        s->timeouts++;
    } else if (res->status == CBX_STATUS_CANCELLED) {
        s->cancelled++;
    } else if (res->status == CBX_STATUS_REJECTED) {
        if (is_breaker_refusal(res->rc))
            s->breaker_open++;
        else if (res->rc == CBX_EUNKNOWN_TYPE || res->rc == CBX_EINVAL_CONFIG)
            s->invalid++;
        else
            s->refused++;
    } else {
        s->failed++;
    }
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
    } else if (s->all) {
        json_array_append_new(s->all, cbx_result_to_json(res));
    }
}

static void draw(run_state *s)
{
    if (s->cfg->repeat > 1) {
        cli_progress_draw(&s->progress, s->done, s->cfg->repeat, s->ok,
                          s->failed + s->timeouts + s->cancelled,
                          s->refused + s->breaker_open + s->invalid);
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
        return is_breaker_refusal(r->rc) ? CLI_EXIT_BREAKER_OPEN : CLI_EXIT_REFUSED;
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
static int finish_one(const exec_cfg *c, const cbx_result *r)
{
    int cmd_mode = c->cmd != NULL;
    int ok = r->status == CBX_STATUS_SUCCESS || r->fallback_used;
    if (c->json) {
        json_t *j = cbx_result_to_json(r);
        cli_print_json(stdout, j);
        json_decref(j);
    } else if (cmd_mode && !r->fallback_used && c->stream) {
        /* every attempt's output went out as the command wrote it */
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

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static int finish_many(run_state *s, uint64_t elapsed_ns)
{
    const exec_cfg *c = s->cfg;
    uint64_t p50 = 0, p95 = 0, max = 0;
    uint64_t refused = s->refused + s->invalid;
    if (s->n_lat) {
        qsort(s->lat_ns, s->n_lat, sizeof *s->lat_ns, cmp_u64);
        p50 = s->lat_ns[(s->n_lat - 1) / 2];
        p95 = s->lat_ns[(s->n_lat * 95 + 99) / 100 - 1];
        max = s->lat_ns[s->n_lat - 1];
    }
    if (c->json) {
        json_t *j = json_pack(
            "{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:f, s:{s:f, s:f, s:f}, s:o}", "runs",
            (json_int_t)c->repeat, "done", (json_int_t)s->done, "succeeded", (json_int_t)s->ok,
            "fallbacks", (json_int_t)s->fallbacks, "failed", (json_int_t)s->failed, "timeouts",
            (json_int_t)s->timeouts, "breaker_open", (json_int_t)s->breaker_open, "refused",
            (json_int_t)refused, "cancelled", (json_int_t)s->cancelled, "elapsed_ms",
            (double)elapsed_ns / 1e6, "latency_ms", "p50", (double)p50 / 1e6, "p95",
            (double)p95 / 1e6, "max", (double)max / 1e6, "results", s->all);
        s->all = NULL;
        cli_print_json(stdout, j);
        json_decref(j);
    } else if (!c->quiet) {
        char el[32], a[32], b[32], m[32];
        cbx_duration_human(elapsed_ns, el, sizeof el);
        printf("%llu runs in %s: %llu succeeded", (unsigned long long)s->done, el,
               (unsigned long long)s->ok);
        if (s->fallbacks)
            printf(" (%llu by fallback)", (unsigned long long)s->fallbacks);
        printf(", %llu failed, %llu timed out, %llu refused by the breaker, %llu refused, "
               "%llu cancelled\n",
               (unsigned long long)s->failed, (unsigned long long)s->timeouts,
               (unsigned long long)s->breaker_open, (unsigned long long)refused,
               (unsigned long long)s->cancelled);
        if (s->n_lat)
            printf("latency: p50 %s  p95 %s  max %s\n", cbx_duration_human(p50, a, sizeof a),
                   cbx_duration_human(p95, b, sizeof b), cbx_duration_human(max, m, sizeof m));
        fflush(stdout);
        if (s->last_error[0] && s->ok < s->done)
            cli_err("exec: last error: %s", s->last_error);
    }
    if (s->cancelled || s->stopping)
        return CLI_EXIT_CANCELLED;
    if (s->invalid)
        return CLI_EXIT_USAGE;
    if (s->failed)
        return CLI_EXIT_FAILED;
    if (s->timeouts)
        return CLI_EXIT_TIMEOUT;
    if (s->breaker_open)
        return CLI_EXIT_BREAKER_OPEN;
    if (s->refused)
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
static void report_invalid(const exec_cfg *c, const cbx_registry *reg, const cbx_diag *d,
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

    int jr = ctx->no_journal ? 0 : cli_journal_open(NULL, 0, &journal);
    if (jr) {
        code = jr; /* 2 for a bad CBX_JOURNAL_* value, 70 when it cannot be opened */
        goto out;
    }
    if (c->breaker && cbx_breaker_store_host_new(&store, NULL, &err) < 0) {
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
                       .on_retry = c->verbose ? on_retry_verbose : NULL,
                       .ud = &s};

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
            s.submitted++;
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
        report_invalid(c, reg, &diag, params, notes);
        code = CLI_EXIT_USAGE;
        if (c->json && s.have_first) {
            json_t *j = cbx_result_to_json(&s.first);
            cli_print_json(stdout, j);
            json_decref(j);
        } else if (c->json && s.all) {
            cli_print_json(stdout, s.all);
        }
    } else if (c->repeat == 1 && s.have_first) {
        code = finish_one(c, &s.first);
    } else if (c->repeat == 1) {
        code = s.stopping ? CLI_EXIT_CANCELLED : CLI_EXIT_INTERNAL;
    } else {
        code = finish_many(&s, elapsed);
    }
    cbx_diag_clear(&diag);
out:
    if (s.have_first)
        cbx_result_clear(&s.first);
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

/* ---- options -------------------------------------------------------------------------------- */

static int parse(cli_ctx *ctx, int argc, char **argv, exec_cfg *c)
{
    cli_args a;
    cli_args_init(&a, "exec", argc, argv, opts);
    c->breaker_failures = cli_config_get()->breaker_failures; /* the config file's, else 5 */
    c->breaker_open_ns = cli_config_get()->breaker_open_ns;   /* else 30s */
    c->breaker_probes = cli_config_get()->breaker_probes;     /* else 1 */
    c->repeat = 1;
    c->parallel = 1;
    c->stdin_max = CLI_STDIN_MAX_DEFAULT;
    c->kv = calloc((size_t)argc, sizeof *c->kv);
    if (!c->kv)
        return CLI_EXIT_INTERNAL;
    int id, saw_parallel = 0;
    const char *val;
    while ((id = cli_args_next(&a, &val)) != CLI_ARGS_END) {
        int slot = flag_slot(id);
        if (slot >= 0) {
            if (check_flag(id, val) < 0)
                return CLI_EXIT_USAGE;
            c->flag_val[slot] = val;
            continue;
        }
        switch (id) {
        case CLI_ARGS_ERROR:
            return CLI_EXIT_USAGE;
        case CLI_OPT_HELP:
            fputs(help_usage, stdout);
            fputs(help_running, stdout);
            fputs(cli_exit_codes_help, stdout);
            fputs(exit_help, stdout);
            return -1;
        case CLI_OPT_STATE_DIR:
        case CLI_OPT_NO_JOURNAL:
        case CLI_OPT_UTC:
        case CLI_OPT_JSON:
            if (cli_common_option(ctx, id, val, &c->json))
                return CLI_EXIT_USAGE;
            break;
        case OPT_QUIET:
            c->quiet = 1;
            break;
        case OPT_VERBOSE:
            c->verbose = 1;
            break;
        case OPT_TMPDIR:
            if (c->tmpdir == CBX_TMPDIR_NONE)
                c->tmpdir = CBX_TMPDIR_MAKE;
            break;
        case OPT_KEEP_TMPDIR:
            c->tmpdir = CBX_TMPDIR_KEEP_ON_FAILURE;
            break;
        case OPT_JOURNAL_REQUIRED:
            c->journal_required = 1;
            break;
        case OPT_PARAM:
            c->kv[c->n_kv++] = val;
            break;
        case OPT_PARAMS_JSON:
            c->params_json = val;
            break;
        case OPT_POLICY:
            c->policy_file = val;
            break;
        case OPT_POLICY_JSON:
            c->policy_json = val;
            break;
        case OPT_RATE_KEY:
            if (!val[0] || strlen(val) > CBX_BREAKER_NAME_MAX) {
                cli_err("--rate-key: expected a name of 1 to 200 bytes, got '%s'", val);
                return CLI_EXIT_USAGE;
            }
            c->rate_key = val;
            break;
        case OPT_BREAKER:
            if (!val[0] || strlen(val) > 200) {
                cli_err("--breaker: expected a name of 1 to 200 bytes, got '%s'", val);
                return CLI_EXIT_USAGE;
            }
            c->breaker = val;
            break;
        case OPT_BREAKER_FAILURES:
            if (cli_parse_uint("--breaker-failures", val, 1, 1000000, &c->breaker_failures))
                return CLI_EXIT_USAGE;
            c->breaker_given |= 1;
            break;
        case OPT_BREAKER_OPEN:
            if (cli_parse_duration("--breaker-open", val, &c->breaker_open_ns))
                return CLI_EXIT_USAGE;
            if (!c->breaker_open_ns) {
                cli_err("--breaker-open: expected a duration > 0, got '%s'", val);
                return CLI_EXIT_USAGE;
            }
            c->breaker_given |= 2;
            break;
        case OPT_BREAKER_PROBES:
            if (cli_parse_uint("--breaker-probes", val, 1, CBX_BREAKER_MAX_PROBES,
                               &c->breaker_probes))
                return CLI_EXIT_USAGE;
            c->breaker_given |= 4;
            break;
        case OPT_REPEAT:
            if (cli_parse_uint("--repeat", val, 1, 100000000, &c->repeat))
                return CLI_EXIT_USAGE;
            break;
        case OPT_PARALLEL:
            if (cli_parse_uint("--parallel", val, 1, 65536, &c->parallel))
                return CLI_EXIT_USAGE;
            saw_parallel = 1;
            break;
        case OPT_EACH:
        case OPT_ARG_FILE:
        case OPT_JOBLOG:
        case OPT_RESUME:
        case OPT_RESUME_FAILED:
        case OPT_NULL:
            c->each |= id == OPT_EACH || id == OPT_ARG_FILE;
            if (id == OPT_ARG_FILE)
                c->each_opts.input = val;
            else if (id == OPT_JOBLOG)
                c->each_opts.joblog = val;
            else if (id == OPT_RESUME || id == OPT_RESUME_FAILED)
                c->each_opts.resume = id == OPT_RESUME ? 1 : 2;
            else if (id == OPT_NULL)
                c->each_opts.null_sep = 1;
            break;
        case OPT_STDIN_MAX:
            if (cli_parse_uint("--stdin-max", val, 0, UINT64_MAX / 2, &c->stdin_max))
                return CLI_EXIT_USAGE;
            break;
        case OPT_PLUGIN_PATH:
            if (c->src.n_plugin_paths == sizeof c->src.plugin_paths / sizeof *c->src.plugin_paths) {
                cli_err("exec: too many --plugin-path options");
                return CLI_EXIT_USAGE;
            }
            c->src.plugin_paths[c->src.n_plugin_paths++] = val;
            break;
        case OPT_LUA:
            if (c->src.n_lua_files == sizeof c->src.lua_files / sizeof *c->src.lua_files) {
                cli_err("exec: too many --lua options");
                return CLI_EXIT_USAGE;
            }
            c->src.lua_files[c->src.n_lua_files++] = val;
            break;
        case CLI_ARGS_POSITIONAL:
            if (c->type) {
                cli_err("exec: unexpected argument '%s' (to run a command: cbx exec [OPTIONS] -- "
                        "CMD ARGS...)",
                        val);
                return CLI_EXIT_USAGE;
            }
            c->type = val;
            break;
        default:
            break;
        }
    }
    if (c->each || c->each_opts.joblog || c->each_opts.resume || c->each_opts.null_sep) {
        if (!c->each || c->repeat > 1) {
            cli_err(c->each ? "exec: give --each or --repeat, not both"
                            : "exec: --joblog, --resume and -0 go with --each");
            return CLI_EXIT_USAGE;
        }
        saw_parallel = 0; /* -j P: P jobs at a time */
        c->repeat = c->parallel;
    }
    if (saw_parallel && c->repeat == 1 && c->parallel > 1) {
        cli_err("--parallel (-j): needs --repeat N (the number of runs) or --each");
        return CLI_EXIT_USAGE;
    }
    if (c->parallel > c->repeat)
        c->parallel = c->repeat;
    if (a.dashdash) {
        if (c->type) {
            cli_err("exec: give a TYPE or -- CMD ARGS, not both");
            return CLI_EXIT_USAGE;
        }
        if (a.rest >= argc) {
            cli_err("exec: expected a command after --");
            return CLI_EXIT_USAGE;
        }
        c->cmd = argv + a.rest;
        c->ncmd = argc - a.rest;
        c->type = "command";
    } else if (!c->type) {
        cli_err("exec: expected an executor TYPE or -- CMD ARGS (see 'cbx exec --help')");
        return CLI_EXIT_USAGE;
    }
    return 0;
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
    int code = parse(ctx, argc, argv, &c);
    if (code)
        goto out;
    if (c.rate_key && cbx_breaker_store_host_new(&rate_store, NULL, &err) < 0) {
        cli_err("breaker store: %s", err.msg[0] ? err.msg : cbx_strerror(err.code));
        code = err.code == -ENOSPC ? CLI_EXIT_REFUSED : CLI_EXIT_INTERNAL;
        goto out;
    }
    code = build_policy(&c, rate_store, &policy);
    if (code)
        goto out;
    cli_log_install(c.verbose);
    code = cli_registry_open(&c.src, &reg);
    if (code)
        goto out;
    const cbx_executor_type *type = cbx_registry_find(reg, c.type);
    if (cli_params_build("exec", type ? type->params : NULL, c.params_json, c.kv, c.n_kv, &params,
                         notes) < 0) {
        code = CLI_EXIT_USAGE;
        goto out;
    }
    if (c.cmd) {
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
        /* Run once: the command's output streams through as it comes, each attempt's. */
        c.stream = !c.each && c.repeat == 1 && !c.json &&
                   !json_object_get(params, "tee_stdout_fd") &&
                   !json_object_get(params, "tee_stderr_fd");
        if (c.stream) {
            json_object_set_new(params, "tee_stdout_fd", json_integer(STDOUT_FILENO));
            json_object_set_new(params, "tee_stderr_fd", json_integer(STDERR_FILENO));
        }
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
