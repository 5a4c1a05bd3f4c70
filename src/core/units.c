/* Text forms of durations, ratios and rates. */
#include "cbx/units.h"

#include "cbx/clock.h"
#include "cbx/err.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A finite, non-negative leading number; *end points past it. */
static int parse_number(const char *text, double *out, const char **end)
{
    if (!text)
        return CBX_EPARSE;
    while (*text == ' ')
        text++;
    if (!(*text >= '0' && *text <= '9') && *text != '.')
        return CBX_EPARSE; /* no sign, no "inf", no "nan" */
    char *e;
    errno = 0;
    double v = strtod(text, &e);
    if (e == text || errno == ERANGE || !isfinite(v) || v < 0)
        return CBX_EPARSE;
    while (*e == ' ')
        e++;
    *out = v;
    *end = e;
    return 0;
}

int cbx_duration_parse_ns(const char *text, uint64_t *out_ns)
{
    static const struct {
        const char *unit;
        double ns;
    } units[] = {
        {"ns", 1},   {"us", 1e3},   {"ms", 1e6},   {"s", 1e9}, {"sec", 1e9},
        {"m", 60e9}, {"min", 60e9}, {"h", 3600e9}, {"", 1e6}, /* a bare number is milliseconds */
    };
    double v;
    const char *unit;
    if (parse_number(text, &v, &unit) < 0)
        return CBX_EPARSE;
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        if (strcmp(unit, units[i].unit) == 0) {
            double ns = v * units[i].ns;
            if (ns >= 1.8e19)
                return CBX_EPARSE;
            *out_ns = (uint64_t)llround(ns);
            return 0;
        }
    }
    return CBX_EPARSE;
}

int cbx_ratio_parse(const char *text, double *out)
{
    double v;
    const char *rest;
    if (parse_number(text, &v, &rest) < 0)
        return CBX_EPARSE;
    if (strcmp(rest, "%") == 0)
        v /= 100.0;
    else if (*rest)
        return CBX_EPARSE;
    if (v > 1.0)
        return CBX_EPARSE;
    *out = v;
    return 0;
}

int cbx_rate_parse(const char *text, double *per_second)
{
    double v;
    const char *rest;
    if (parse_number(text, &v, &rest) < 0)
        return CBX_EPARSE;
    double div;
    if (*rest == '\0' || strcmp(rest, "/s") == 0 || strcmp(rest, "/sec") == 0)
        div = 1;
    else if (strcmp(rest, "/m") == 0 || strcmp(rest, "/min") == 0)
        div = 60;
    else if (strcmp(rest, "/h") == 0)
        div = 3600;
    else
        return CBX_EPARSE;
    *per_second = v / div;
    return 0;
}

const char *cbx_duration_format(uint64_t ns, char *buf, unsigned len)
{
    static const struct {
        const char *unit;
        uint64_t ns;
    } units[] = {{"h", 3600 * CBX_NS_PER_S}, {"m", 60 * CBX_NS_PER_S}, {"s", CBX_NS_PER_S},
                 {"ms", CBX_NS_PER_MS},      {"us", CBX_NS_PER_US},    {"ns", 1}};
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        if (ns == 0 || ns % units[i].ns == 0) {
            snprintf(buf, len, "%llu%s", (unsigned long long)(ns / units[i].ns),
                     ns == 0 ? "ms" : units[i].unit);
            return buf;
        }
    }
    return buf;
}

const char *cbx_duration_human(uint64_t ns, char *buf, unsigned len)
{
    if (ns < CBX_NS_PER_MS)
        snprintf(buf, len, "%lluus", (unsigned long long)((ns + 500) / CBX_NS_PER_US));
    else if (ns < CBX_NS_PER_S)
        snprintf(buf, len, "%llums", (unsigned long long)((ns + 500000) / CBX_NS_PER_MS));
    else if (ns < 60 * CBX_NS_PER_S)
        snprintf(buf, len, "%.1fs", (double)ns / 1e9);
    else {
        uint64_t s = (ns + CBX_NS_PER_S / 2) / CBX_NS_PER_S;
        snprintf(buf, len, "%llum%02llus", (unsigned long long)(s / 60),
                 (unsigned long long)(s % 60));
    }
    return buf;
}
