/* The interface both breaker stores implement (the memory store, breaker_store_memory.c; the
 * host store, breaker_store_host.c), and the helpers they share. Everything public is written
 * once on top of it, in breaker_store.c. */
#ifndef CBX_RUNTIME_BREAKER_STORE_INTERNAL_H
#define CBX_RUNTIME_BREAKER_STORE_INTERNAL_H

#include "cbx/breaker_store.h"
#include "cbx/ratelimit.h"

#include <stddef.h>
#include <stdint.h>

typedef int (*use_fn)(cbx_breaker *b, void *ud);

typedef struct store_ops {
    /* Run fn on the named breaker and return what it returns; when the name is unknown,
     * create it from o if create is set, else return -ENOENT. Waits for a lock held elsewhere
     * no later than deadline_ns (CLOCK_MONOTONIC; 0: only try), then -EAGAIN. */
    int (*use)(cbx_breaker_store *s, const char *name, const cbx_breaker_opts *o, int create,
               uint64_t deadline_ns, use_fn fn, void *ud, cbx_err *err);
    /* Run fn on this process's copy of the breaker, if there is one (-ENOENT otherwise). */
    int (*peek)(cbx_breaker_store *s, const char *name, use_fn fn, void *ud);
    int (*forget)(cbx_breaker_store *s, const char *name);
    /* Keep an outcome that use could not record by its deadline, to record at this handle's
     * next operation on the name or when it is freed. NULL: the store never times out. */
    int (*defer)(cbx_breaker_store *s, const char *name, cbx_permit p, cbx_outcome k,
                 int64_t latency_ns);
    /* Every name, sorted; free with cbx__bstore_free_names. */
    int (*names)(cbx_breaker_store *s, char ***out, size_t *n, cbx_err *err);
    void (*destroy)(cbx_breaker_store *s);
    /* The options the named breaker uses (numbers only; -ENOENT when unknown). */
    int (*get_opts)(cbx_breaker_store *s, const char *name, cbx_breaker_opts *out);
    /* Make them o (checked), creating the name when unknown; the state is kept when its shape
     * allows. */
    int (*set_opts)(cbx_breaker_store *s, const char *name, const cbx_breaker_opts *o,
                    cbx_err *err);
    /* The shared arrival-time word of a host-wide rate limiter (NULL: the store has none). */
    int (*limiter_word)(cbx_breaker_store *s, const char *key, const cbx_ratelimit_opts *o,
                        void **word, cbx_err *err);
    /* A rate limiter's bucket kept by the store elsewhere (NULL: the store has none); *out is
     * the store's, valid until it is freed. */
    int (*limiter_remote)(cbx_breaker_store *s, const char *key, const cbx_ratelimit_remote **out,
                          cbx_err *err);
} store_ops;

struct cbx_breaker_store {
    const store_ops *ops;
};

/* FNV-1a of the name. */
uint64_t cbx__bstore_name_hash(const char *name, size_t len);
/* A new breaker named `name` (borrowed: it must outlive the breaker) from o (defaults when
 * NULL), its generation starting at gen. */
int cbx__bstore_breaker_make(cbx_breaker **out, const char *name, const cbx_breaker_opts *o,
                             uint32_t gen, cbx_err *err);
/* Free the n names of v and v (what a store's names operation made). */
void cbx__bstore_free_names(char **v, size_t n);
/* Now plus CBX_BREAKER_STORE_WAIT_NS: the deadline of an operation without one of its own. */
uint64_t cbx__bstore_default_deadline(void);

#endif
