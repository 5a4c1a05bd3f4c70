/* Manual pages in roff, made from the --help texts so that the two never drift.
 *
 * The help layout is read as: "Usage: " and the indented "cbx ..." lines under it (SYNOPSIS);
 * prose up to the first heading (DESCRIPTION); a heading is an unindented line ending in ':'
 * (a subsection); in a section, an indented line with a term, two or more spaces and text is
 * an item (.TP), deeper-indented lines after it continue its text; sections whose heading
 * starts with "Example" and other indented lines are kept as they are (.nf). */
#include "cli.h"
#include "output.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#ifndef CBX_VERSION
#define CBX_VERSION "0.0.0"
#endif

/* Text for roff: backslashes and hyphens escaped, a leading '.' or '\'' made harmless. */
static void put_text(FILE *f, const char *s, size_t n, int line_start)
{
    if (line_start && n && (s[0] == '.' || s[0] == '\''))
        fputs("\\&", f);
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '\\')
            fputs("\\e", f);
        else if (s[i] == '-')
            fputs("\\-", f);
        else
            fputc(s[i], f);
    }
}

static size_t indent_of(const char *s, size_t n)
{
    size_t i = 0;
    while (i < n && s[i] == ' ')
        i++;
    return i;
}

/* In an indented line: where the gap of two or more spaces after the term starts, or 0. */
static size_t gap_of(const char *s, size_t n, size_t from)
{
    for (size_t i = from; i + 1 < n; i++)
        if (s[i] == ' ' && s[i + 1] == ' ')
            return i;
    return 0;
}

typedef struct line {
    const char *s;
    size_t n;
} line;

static size_t split(char *text, line **out)
{
    size_t cap = 64, n = 0;
    line *v = malloc(cap * sizeof *v);
    for (char *p = text; v && *p;) {
        char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        if (n == cap) {
            line *nv = realloc(v, (cap *= 2) * sizeof *v);
            if (!nv) {
                free(v);
                return (size_t)-1;
            }
            v = nv;
        }
        v[n++] = (line){p, len};
        p += len + (nl ? 1 : 0);
    }
    *out = v;
    return v ? n : (size_t)-1;
}

static int is_heading(const line *l)
{
    return l->n > 1 && l->n < 100 && l->s[0] != ' ' && l->s[l->n - 1] == ':';
}

static void put_page(FILE *f, const cli_cmd *c, const line *L, size_t n)
{
    char title[64];
    snprintf(title, sizeof title, "CBX%s%s", c ? "-" : "", c ? c->name : "");
    for (char *t = title; *t; t++)
        *t = (char)toupper((unsigned char)*t);
    fprintf(f, ".TH %s 1 \"\" \"cbx %s\" \"cbx manual\"\n.SH NAME\n", title, CBX_VERSION);
    if (c) {
        fprintf(f, "cbx\\-%s \\- ", c->name);
        put_text(f, c->summary, strlen(c->summary), 0);
        fputc('\n', f);
    } else {
        fputs("cbx \\- run work under resilience policies and journal every attempt\n", f);
    }
    size_t i = 0;
    fputs(".SH SYNOPSIS\n.nf\n", f);
    if (n && strncmp(L[0].s, "Usage: ", 7) == 0) {
        put_text(f, L[0].s + 7, L[0].n - 7, 1);
        fputc('\n', f);
        for (i = 1; i < n && L[i].n > 0 && L[i].s[0] == ' '; i++) {
            size_t k = indent_of(L[i].s, L[i].n);
            put_text(f, L[i].s + k, L[i].n - k, 1);
            fputc('\n', f);
        }
    }
    fputs(".fi\n.SH DESCRIPTION\n", f);
    int verbatim = 0, in_item = 0, in_nf = 0, need_pp = 0;
    size_t item_indent = 0;
    for (; i < n; i++) {
        const line *l = &L[i];
        size_t k = indent_of(l->s, l->n);
        if (k == l->n) { /* a blank line */
            if (in_nf)
                fputs(".fi\n", f);
            in_nf = 0;
            in_item = 0;
            need_pp = 1;
            continue;
        }
        if (is_heading(l)) {
            if (in_nf)
                fputs(".fi\n", f);
            in_nf = in_item = need_pp = 0;
            fputs(".SS ", f);
            put_text(f, l->s, l->n - 1, 0);
            fputc('\n', f);
            verbatim = strncmp(l->s, "Example", 7) == 0;
            continue;
        }
        if (need_pp) {
            fputs(".PP\n", f);
            need_pp = 0;
        }
        if (k == 0) { /* prose */
            if (in_nf)
                fputs(".fi\n", f);
            if (in_nf || in_item)
                fputs(".PP\n", f);
            in_nf = in_item = 0;
            put_text(f, l->s, l->n, 1);
            fputc('\n', f);
            continue;
        }
        if (in_item && k > item_indent + 1 && !verbatim) { /* an item's text goes on */
            put_text(f, l->s + k, l->n - k, 1);
            fputc('\n', f);
            continue;
        }
        size_t gap = verbatim ? 0 : gap_of(l->s, l->n, k);
        int term_alone = !verbatim && !gap && i + 1 < n &&
                         indent_of(L[i + 1].s, L[i + 1].n) > k + 1 &&
                         indent_of(L[i + 1].s, L[i + 1].n) < L[i + 1].n;
        if (gap || term_alone) {
            if (in_nf)
                fputs(".fi\n", f);
            in_nf = 0;
            size_t end = gap ? gap : l->n;
            fputs(".TP\n\\fB", f);
            put_text(f, l->s + k, end - k, 0);
            fputs("\\fR\n", f);
            if (gap) {
                size_t t = indent_of(l->s + gap, l->n - gap) + gap;
                put_text(f, l->s + t, l->n - t, 1);
                fputc('\n', f);
            }
            in_item = 1;
            item_indent = k;
            continue;
        }
        if (!in_nf)
            fputs(".nf\n", f);
        in_nf = 1;
        in_item = 0;
        put_text(f, l->s + (k < 2 ? k : 2), l->n - (k < 2 ? k : 2), 1);
        fputc('\n', f);
    }
    if (in_nf)
        fputs(".fi\n", f);
    fputs(".SH SEE ALSO\n", f);
    if (c) {
        fputs("\\fBcbx\\fR(1)\n", f);
        return;
    }
    for (size_t j = 0; j < cli_n_commands; j++)
        fprintf(f, "\\fBcbx\\-%s\\fR(1)%s\n", cli_commands[j].name,
                j + 1 < cli_n_commands ? "," : "");
}

int cli_man_page(FILE *out, const cli_cmd *c)
{
    char *text = cli_help_text(c);
    line *L = NULL;
    size_t n = text ? split(text, &L) : (size_t)-1;
    if (n == (size_t)-1) {
        free(text);
        cli_err("help --man: out of memory");
        return CLI_EXIT_INTERNAL;
    }
    put_page(out, c, L, n);
    free(L);
    free(text);
    if (fflush(out) != 0 || ferror(out)) {
        cli_err("help --man: cannot write: %s", strerror(errno));
        return CLI_EXIT_INTERNAL;
    }
    return CLI_EXIT_OK;
}

static int write_page(const char *dir, const cli_cmd *c)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/cbx%s%s.1", dir, c ? "-" : "", c ? c->name : "");
    FILE *f = fopen(path, "w");
    if (!f) {
        cli_err("help --man-dir: cannot write '%s': %s", path, strerror(errno));
        return CLI_EXIT_USAGE;
    }
    int rc = cli_man_page(f, c);
    if (fclose(f) != 0 && !rc) {
        cli_err("help --man-dir: cannot write '%s': %s", path, strerror(errno));
        rc = CLI_EXIT_INTERNAL;
    }
    return rc;
}

int cli_man_dir(const char *dir)
{
    if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
        cli_err("help --man-dir: cannot make '%s': %s", dir, strerror(errno));
        return CLI_EXIT_USAGE;
    }
    int rc = write_page(dir, NULL);
    for (size_t i = 0; i < cli_n_commands && !rc; i++)
        rc = write_page(dir, &cli_commands[i]);
    return rc;
}
