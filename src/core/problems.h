/* Every problem of a check collected into one cbx_err: the messages joined by "; ", each as
 * "where: message", the first problem's where kept, code CBX_EINVAL_CONFIG. For validate hooks
 * that report everything at once. */
#ifndef CBX_CORE_PROBLEMS_H
#define CBX_CORE_PROBLEMS_H

#include <jansson.h>

#include "cbx/err.h"

typedef struct cbx__problems {
    cbx_err *err; /* NULL: only count */
    int n;        /* problems so far */
} cbx__problems;

/* Add one problem at where (a parameter's path). */
void cbx__problem(cbx__problems *p, const char *where, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* 1 for a string C code can pass on: no NUL inside. */
int cbx__c_string(const json_t *v);

#endif
