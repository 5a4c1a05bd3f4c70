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

/* The unit at *p (longest name first, so "ms" is not read as "m" then "s"); advances *p. */
static int duration_unit(const char **p, double *ns)
{
    static const struct {
        const char *unit;
        double ns;
    } units[] = {
        {"min", 60e9}, {"sec", 1e9}, {"ns", 1},     {"us", 1e3},    {"ms", 1e6},
        {"s", 1e9},    {"m", 60e9},  {"h", 3600e9}, {"d", 86400e9},
    };
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        size_t n = strlen(units[i].unit);
        if (strncmp(*p, units[i].unit, n) == 0) {
            *p += n;
            *ns = units[i].ns;
            return 0;
        }
    }
    return CBX_EPARSE;
}

/* ISO-8601 durations without years or months (their length varies): "PT5S", "PT1H30M",
 * "P2D", "P1DT12H", "PT0.5S". */
static int iso_duration(const char *p, double *total)
{
    static const char date_units[] = "D", time_units[] = "HMS";
    static const double date_ns[] = {86400e9}, time_ns[] = {3600e9, 60e9, 1e9};
    int in_time = 0, any = 0, last = -1;
    *total = 0;
    for (p++; *p;) {
        if (*p == 'T') {
            if (in_time)
                return CBX_EPARSE;
            in_time = 1;
            last = -1;
            p++;
            if (!*p)
                return CBX_EPARSE;
            continue;
        }
        double v;
        const char *e;
        if (parse_number(p, &v, &e) < 0 || e == p)
            return CBX_EPARSE;
        const char *set = in_time ? time_units : date_units;
        const char *u = *e ? strchr(set, *e) : NULL;
        if (!u)
            return CBX_EPARSE;
        int idx = (int)(u - set);
        if (idx <= last) /* each unit once, largest first */
            return CBX_EPARSE;
        last = idx;
        *total += v * (in_time ? time_ns[idx] : date_ns[idx]);
        any = 1;
        p = e + 1;
    }
    return any ? 0 : CBX_EPARSE;
}

int cbx_duration_parse_ns(const char *text, uint64_t *out_ns)
{
    if (!text)
        return CBX_EPARSE;
    while (*text == ' ')
        text++;
    double total = 0;
    if (*text == 'P') {
        if (iso_duration(text, &total) < 0)
            return CBX_EPARSE;
    } else {
        /* A bare number is milliseconds; otherwise one or more number+unit parts, each unit
         * smaller than the one before: "1h30m", "2m15.5s". */
        double v;
        const char *p;
        if (parse_number(text, &v, &p) < 0)
            return CBX_EPARSE;
        if (!*p) {
            total = v * 1e6;
        } else {
            double prev = INFINITY;
            for (;;) {
                double unit;
                if (duration_unit(&p, &unit) < 0 || unit >= prev)
                    return CBX_EPARSE;
                prev = unit;
                total += v * unit;
                while (*p == ' ')
                    p++;
                if (!*p)
                    break;
                if (parse_number(p, &v, &p) < 0 || !*p)
                    return CBX_EPARSE;
            }
        }
    }
    if (!(total < 1.8e19))
        return CBX_EPARSE;
    *out_ns = (uint64_t)llround(total);
    return 0;
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
