/* Processes as owners of records (core/proc.c). */
#ifndef CBX_CORE_PROC_H
#define CBX_CORE_PROC_H

#include <stdint.h>

/* The start time of process pid, in clock ticks after boot (/proc/PID/stat, field 22): with
 * the pid, it names one process even after the pid is reused. 0, or -errno (-ENOENT: no such
 * process, or no /proc). */
int cbx__proc_start_ticks(int pid, uint64_t *out);

/* 1 when the process pid that started at start_ticks is still running, 0 when it is not (gone,
 * or its pid now belongs to another process), -1 when it cannot be told. */
int cbx__proc_alive(int pid, uint64_t start_ticks);

#endif
