/* The host breaker store's file: its header, how it is made, opened and repaired, how its blocks
 * are allocated before they are touched, and the bounded waits for its locks. The records
 * themselves are src/runtime/breaker_store.c's business. See docs/breaker-store.md. */
#ifndef CBX_RUNTIME_BREAKER_STORE_FILE_H
#define CBX_RUNTIME_BREAKER_STORE_FILE_H

#include "cbx/err.h"

#include <stdatomic.h>
#include <stdint.h>
#include <sys/types.h>

#define HOST_MAGIC       0x3153524b42584243ULL /* "CBXBKRS1" read as little-endian */
#define HOST_VERSION     3u /* 3: records have a kind (breaker, rate limiter); 2 is upgraded */
#define HOST_HEADER_SIZE 4096u
#define HOST_RECORD_SIZE 32768u
#define HOST_CAPACITY    512u
#define HOST_ALLOC_AT    128u /* offset of the allocation bitmap in the header */

typedef struct host_header {
    uint64_t magic;
    uint32_t version;
    uint32_t header_size;
    uint32_t record_size;
    uint32_t capacity;
    char boot_id[48];       /* /proc/sys/kernel/random/boot_id of the boot that made the file */
    _Atomic uint64_t names; /* records in use */
    uint64_t reserved[6];
    /* at HOST_ALLOC_AT: bit k set once record k's blocks are allocated (never cleared) */
    _Atomic uint64_t allocated[];
} host_header;

_Static_assert(sizeof(host_header) == HOST_ALLOC_AT, "allocation bitmap misplaced");

/* The geometry of an opened file. */
typedef struct host_geom {
    uint32_t header_size, record_size, capacity;
    size_t map_len;
} host_geom;

/* Open path (made if missing, repaired if empty or left unfinished, replaced if made by an
 * older version or before this boot), its header checked; the table lock (byte 0) is taken
 * for the checks and released, waiting no later than deadline_ns (CLOCK_MONOTONIC). *fd gets
 * the descriptor (O_CLOEXEC). Errors name the file: -ENOSPC (no room to make it), -ELOOP (a
 * symbolic link), -EPERM (not a regular file of this user), CBX_EPARSE (not a store of this
 * version), -EAGAIN (still locked at the deadline), -errno. */
int cbx__bsf_open(const char *path, int *fd, host_geom *g, uint64_t deadline_ns, cbx_err *err);

/* Lock one byte at `at` for writing with an open file description lock, waiting no later than
 * deadline_ns (0: only try). 0, -EAGAIN when still locked at the deadline, or -errno. */
int cbx__bsf_lock(int fd, off_t at, uint64_t deadline_ns);
void cbx__bsf_unlock(int fd, off_t at);

/* Whether record k's blocks are allocated (only then may it be touched). */
int cbx__bsf_allocated(const uint8_t *map, uint32_t k);
/* Allocate record k's blocks (the caller holds the table lock) and mark it. 0, -ENOSPC or
 * -errno. */
int cbx__bsf_allocate(int fd, uint8_t *map, const host_geom *g, uint32_t k);

/* Sleep a little before trying a lock again: *step_ns grows from 20 us to 2 ms; never past
 * deadline_ns. 0, or -EAGAIN when the deadline has come. */
int cbx__bsf_backoff(uint64_t *step_ns, uint64_t deadline_ns);

#endif
