/* Stress tests are plain programs, not Criterion tests: Criterion's process arena cannot start
 * under ThreadSanitizer (Snaipe/Criterion#274). A failed check prints where and exits 1. */
#ifndef CBX_TESTS_STRESS_H
#define CBX_TESTS_STRESS_H

#include <stdio.h>
#include <stdlib.h>

#include <stdarg.h>

/* Prints the optional detail of a failed CHECK (its format starts with a space). */
__attribute__((format(printf, 1, 2))) static inline void cbx__stress_detail(const char *fmt, ...)
{
    if (fmt[1] == '\0')
        return;
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);               \
            cbx__stress_detail(" " __VA_ARGS__);                                                   \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

#endif
