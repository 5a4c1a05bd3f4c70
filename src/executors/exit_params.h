/* What the command and container executors share: the parameters about a process's output and
 * exit code (entries of their cbx_param tables) and the check and use of success_exit_codes. */
#ifndef CBX_EXECUTORS_EXIT_PARAMS_H
#define CBX_EXECUTORS_EXIT_PARAMS_H

#include <jansson.h>

#include "cbx/executor.h"
#include "core/problems.h"

#define CBX__MIB (1024.0 * 1024.0)

/* "stdout_max" or "stderr_max": bytes of that stream kept (default 1 MiB). */
#define CBX__PARAM_CAPTURE_MAX(stream)                                                             \
    {                                                                                              \
        .name = stream "_max", .type = CBX_PARAM_INTEGER, .default_json = "1048576", .has_min = 1, \
        .min = 0, .has_max = 1, .max = 1024 * CBX__MIB,                                            \
        .description = "bytes of " stream " kept; the rest is read, counted and dropped "          \
                       "(" stream "_truncated)"                                                    \
    }

#define CBX__PARAM_SUCCESS_EXIT_CODES                                                              \
    {                                                                                              \
        .name = "success_exit_codes", .type = CBX_PARAM_ARRAY, .items = CBX_PARAM_INTEGER,         \
        .default_json = "[0]", .has_min = 1, .min = 1,                                             \
        .description = "exit codes that count as success (0..255)"                                 \
    }

/* Each entry of p's success_exit_codes that is not an exit code (0..255) is a problem. */
void cbx__exit_codes_check(const json_t *p, cbx__problems *pr);

/* 1 when code counts as success: it is in codes (an array of integers), or codes is not an
 * array and code is 0. */
int cbx__exit_code_succeeds(const json_t *codes, long code);

#endif
