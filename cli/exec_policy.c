/* cbx exec: its options, and the policy built from them. The policy is one policy block
 * (docs/policy.md): --policy FILE or --policy-json, with the policy flags written over its keys. */
#include "args.h"
#include "config.h"
#include "exec_cli.h"
#include "exec_stdin.h"
#include "nats_opts.h"

#include "cbx/units.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char help_usage[] =
    "Usage: cbx exec [OPTIONS] TYPE [-p KEY=VALUE]... [--params-json JSON]\n"
    "       cbx exec [OPTIONS] -- CMD [ARGS]...\n"
    "       cbx exec --remote URL --remote-result ID\n"
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
    "                          rate_limited, quality, custom, oom; default\n"
    "                          error,timeout,rate_limited\n"
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
    "                          gives the same NAME (kept in the state directory's store), or\n"
    "                          on any host with CBX_BREAKER_STORE=nats (NATS JetStream KV)\n"
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
    "";

static const char help_output[] =
    "  --tag, --group          --each, --repeat: each line after the item or run number and\n"
    "                          a TAB; each run's output whole when it ends (docs/cli.md)\n"
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

static const char help_remote[] =
    "\n"
    "Models (the llm and agent executors):\n"
    "  --record DIR            write every model exchange to cassettes in DIR (made if missing;\n"
    "                          no header or key is written)\n"
    "  --replay DIR            answer model calls from the cassettes in DIR, without a network\n"
    "\n"
    "Elsewhere (docs/distributed.md):\n"
    "  --remote URL            run it on a worker pulling from NATS JetStream at URL ('cbx\n"
    "                          worker'); the result is printed as a local one's\n"
    "  --queue NAME            the workers' queue for --remote (default \"default\")\n"
    "  --remote-wait DURATION  give up waiting for the worker's result after this long (exit\n"
    "                          124; the job stays queued)\n"
    "  --remote-result ID      no TYPE: print the result of the job ID queued before (the one\n"
    "                          --remote-wait gave up on), as --remote would have; with\n"
    "                          --remote-wait, wait that long for it (exit 124: not stored yet)\n"
    "\n"
    "Connecting to NATS (--remote, the cluster stores; also the nats: section of the\n"
    "configuration file):\n";

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
    OPT_TAG,
    OPT_GROUP,
    OPT_REMOTE,
    OPT_QUEUE,
    OPT_REMOTE_WAIT,
    OPT_REMOTE_RESULT,
    OPT_RECORD,
    OPT_REPLAY,
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
    {"tag", 0, 0, OPT_TAG},
    {"group", 0, 0, OPT_GROUP},
    {"plugin-path", 0, 1, OPT_PLUGIN_PATH},
    {"lua", 0, 1, OPT_LUA},
    {"quiet", 'q', 0, OPT_QUIET},
    {"verbose", 'v', 0, OPT_VERBOSE},
    {"journal-required", 0, 0, OPT_JOURNAL_REQUIRED},
    {"tmpdir", 0, 0, OPT_TMPDIR},
    {"keep-tmpdir", 0, 0, OPT_KEEP_TMPDIR},
    {"remote", 0, 1, OPT_REMOTE},
    {"queue", 0, 1, OPT_QUEUE},
    {"remote-wait", 0, 1, OPT_REMOTE_WAIT},
    {"remote-result", 0, 1, OPT_REMOTE_RESULT},
    {"record", 0, 1, OPT_RECORD},
    {"replay", 0, 1, OPT_REPLAY},
    CLI_OPTS_NATS,
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
_Static_assert(sizeof flag_keys / sizeof flag_keys[0] == N_FLAG_KEYS, "N_FLAG_KEYS in exec_cli.h");

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
                static const char *const kinds[] = {"error",   "timeout", "rate_limited",
                                                    "quality", "custom",  "oom"};
                const char *best = cli_suggest(k, kinds, 6);
                cli_err("%s: expected failure kinds (error, timeout, rate_limited, quality, "
                        "custom, oom), got '%s'%s%s%s",
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

int exec_policy_block(const exec_cfg *c, json_t **out)
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

int exec_build_policy(exec_cfg *c, cbx_breaker_store *rate_store, cbx_policy **out)
{
    json_t *block;
    int rc = exec_policy_block(c, &block);
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
        /* --rate-key: the limiter's arrival time lives in the breaker store (the host's, or the
         * cluster's), shared by every process that names the key */
        if (!(o.sections & CBX_POLICY_WITH_RATE_LIMIT)) {
            cli_err("--rate-key: needs a rate (--rate, or rate_limit in the policy)");
            json_decref(block);
            return CLI_EXIT_USAGE;
        }
        /* the host store's word, or the cluster store's bucket in JetStream KV */
        r = cbx_breaker_store_limiter_opts(rate_store, c->rate_key, &o.rate_limit, &err);
        if (r) {
            cli_err("--rate-key: %s", err.msg[0] ? err.msg : cbx_strerror(r));
            json_decref(block);
            return r == -ENOSPC ? CLI_EXIT_REFUSED : CLI_EXIT_INTERNAL;
        }
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

/* ---- options -------------------------------------------------------------------------------- */

int exec_parse(cli_ctx *ctx, int argc, char **argv, exec_cfg *c)
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
            fputs(help_output, stdout);
            fputs(help_remote, stdout);
            fputs(cli_nats_opts_help, stdout);
            fputs("\n", stdout);
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
        case OPT_REMOTE:
            c->remote = val;
            break;
        case OPT_RECORD:
        case OPT_REPLAY:
            if (cli_cassette_option(id == OPT_RECORD ? "--record" : "--replay", val,
                                    id == OPT_REPLAY))
                return CLI_EXIT_USAGE;
            break;
        case OPT_QUEUE:
            c->remote_queue = val;
            break;
        case OPT_REMOTE_WAIT:
            if (cli_parse_duration("--remote-wait", val, &c->remote_wait_ns))
                return CLI_EXIT_USAGE;
            break;
        case OPT_REMOTE_RESULT:
            c->remote_result = val;
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
        case OPT_TAG:
            c->tag = 1;
            break;
        case OPT_GROUP:
            c->group = 1;
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
            cli_nats_option(id, val);
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
    if ((c->tag || c->group) && !c->each && c->repeat == 1) {
        cli_err("exec: --%s goes with --each or --repeat N", c->tag ? "tag" : "group");
        return CLI_EXIT_USAGE;
    }
    c->each_opts.tag = c->tag;
    c->each_opts.group = c->group;
    if (saw_parallel && c->repeat == 1 && c->parallel > 1) {
        cli_err("--parallel (-j): needs --repeat N (the number of runs) or --each");
        return CLI_EXIT_USAGE;
    }
    if (c->parallel > c->repeat)
        c->parallel = c->repeat;
    if (c->remote_result) {
        if (!c->remote) {
            cli_err("exec: --remote-result: give the server with --remote URL");
            return CLI_EXIT_USAGE;
        }
        if (c->type || a.dashdash) {
            cli_err("exec: --remote-result: no TYPE or -- CMD (the job is queued already)");
            return CLI_EXIT_USAGE;
        }
        return 0;
    }
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
