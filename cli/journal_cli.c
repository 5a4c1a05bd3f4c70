/* The journal as every subcommand opens it: retention from the environment, read-only for
 * queries, and the report of writes that could not be made. */
#include "args.h"
#include "cli.h"
#include "output.h"

#include "cbx/journal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* "512M", "2G", "100000K", "4096" (bytes); "0" or "none" = no bound (UINT64_MAX). */
static int parse_size(const char *name, const char *text, uint64_t *out)
{
    if (strcmp(text, "none") == 0 || strcmp(text, "0") == 0) {
        *out = UINT64_MAX;
        return 0;
    }
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(text, &end, 10);
    uint64_t mul = 1;
    if (end && (*end == 'K' || *end == 'k'))
        mul = 1024, end++;
    else if (end && (*end == 'M' || *end == 'm'))
        mul = 1024ull * 1024, end++;
    else if (end && (*end == 'G' || *end == 'g'))
        mul = 1024ull * 1024 * 1024, end++;
    if (end && (*end == 'B' || *end == 'i'))
        end += *end == 'i' && end[1] == 'B' ? 2 : 1;
    if (end == text || !end || *end || errno || text[0] < '0' || text[0] > '9' || v == 0 ||
        v > UINT64_MAX / mul) {
        cli_err("%s: expected a size like 256M, 2G or 65536, or none, got '%s'", name, text);
        return CLI_EXIT_USAGE;
    }
    *out = v * mul;
    return 0;
}

/* A duration as --timeout takes it, or a number of days ("30d"); "0" or "none" = forever. */
static int parse_age(const char *name, const char *text, uint64_t *out_ms)
{
    if (strcmp(text, "none") == 0 || strcmp(text, "0") == 0) {
        *out_ms = 0;
        return 0;
    }
    size_t n = strlen(text);
    if (n > 1 && text[n - 1] == 'd') {
        char num[32];
        uint64_t days;
        if (n - 1 < sizeof num) {
            memcpy(num, text, n - 1);
            num[n - 1] = '\0';
            if (cli_parse_uint(name, num, 1, 100000, &days) == 0) {
                *out_ms = days * 86400000ull;
                return 0;
            }
        }
        return CLI_EXIT_USAGE;
    }
    uint64_t ns;
    if (cli_parse_duration(name, text, &ns))
        return CLI_EXIT_USAGE;
    *out_ms = ns / 1000000ull ? ns / 1000000ull : 1;
    return 0;
}

int cli_journal_opts(cbx_journal_opts *o)
{
    *o = (cbx_journal_opts){0};
    const char *v;
    uint64_t u;
    if ((v = getenv("CBX_JOURNAL_MAX_SIZE")) && *v &&
        parse_size("CBX_JOURNAL_MAX_SIZE", v, &o->max_bytes))
        return CLI_EXIT_USAGE;
    if ((v = getenv("CBX_JOURNAL_MAX_RECORD")) && *v &&
        parse_size("CBX_JOURNAL_MAX_RECORD", v, &o->max_record_bytes))
        return CLI_EXIT_USAGE;
    if ((v = getenv("CBX_JOURNAL_MAX_AGE")) && *v &&
        parse_age("CBX_JOURNAL_MAX_AGE", v, &o->max_age_ms))
        return CLI_EXIT_USAGE;
    if ((v = getenv("CBX_JOURNAL_MAX_EXECUTIONS")) && *v) {
        if (cli_parse_uint("CBX_JOURNAL_MAX_EXECUTIONS", v, 1, UINT64_MAX, &u))
            return CLI_EXIT_USAGE;
        o->max_executions = u;
    }
    return 0;
}

static int journal_open(const char *cmd, int read_only, int background, cbx_journal **j)
{
    cbx_journal_opts o;
    *j = NULL;
    if (cli_journal_opts(&o))
        return CLI_EXIT_USAGE;
    o.read_only = read_only;
    o.open_in_background = background;
    cbx_err err;
    cbx_err_clear(&err);
    int r = cbx_journal_open(j, &o, &err);
    if (r == -ENOENT && read_only) {
        /* no journal yet: make it, as a writer would (an empty journal answers the query) */
        o.read_only = 0;
        cbx_err_clear(&err);
        r = cbx_journal_open(j, &o, &err);
    }
    if (r < 0) {
        cli_err("%s%sjournal: %s", cmd ? cmd : "", cmd ? ": " : "",
                err.msg[0] ? err.msg : cbx_strerror(err.code));
        return CLI_EXIT_INTERNAL;
    }
    return 0;
}

int cli_journal_open(const char *cmd, int read_only, cbx_journal **j)
{
    return journal_open(cmd, read_only, 0, j);
}

int cli_journal_open_writer(const char *cmd, cbx_journal **j)
{
    return journal_open(cmd, 0, 1, j);
}

static const char *when(uint64_t ms, char *buf, size_t len)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    if (!localtime_r(&t, &tm) || !strftime(buf, len, "%Y-%m-%d %H:%M:%S", &tm))
        snprintf(buf, len, "%" PRIu64 " ms", ms);
    return buf;
}

int cli_journal_finish(const char *cmd, cbx_journal *j)
{
    if (!j)
        return 0;
    cbx_err err;
    cbx_err_clear(&err);
    if (cbx_journal_open_error(j, &err) != 0) { /* opened in the background, and that failed */
        cli_err("journal: %s", err.msg[0] ? err.msg : cbx_strerror(err.code));
        return 1;
    }
    cbx_journal_flush(j, &err); /* a failure is counted as losses, reported below */
    cbx_journal_losses l;
    if (cbx_journal_losses_get(j, 0, &l, NULL) != 0 || l.writes == 0)
        return 0;
    cli_err("%s: journal %s: %" PRIu64 " write%s could not be made, the records are missing: %s",
            cmd, cbx_journal_path(j), l.writes, l.writes == 1 ? "" : "s", l.last_error);
    return 1;
}

void cli_journal_note_losses(const char *cmd, cbx_journal *j)
{
    cbx_journal_losses l;
    if (cbx_journal_losses_get(j, 1, &l, NULL) != 0 || l.writes == 0)
        return;
    char a[32], b[32];
    cli_err("%s: the journal is missing records: %" PRIu64 " write%s could not be made between %s "
            "and %s (last: %s); 'cbx history clear' resets this note",
            cmd, l.writes, l.writes == 1 ? "" : "s", when(l.first_ms, a, sizeof a),
            when(l.last_ms, b, sizeof b), l.last_error);
}
