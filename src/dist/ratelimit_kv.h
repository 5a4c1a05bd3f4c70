/* Rate limiters shared by the cluster: each limiter's GCRA arrival time in the JetStream
 * key-value bucket CBX_RATES, updated by compare-and-set (see ratelimit_kv.c). Part of the
 * cluster store (breaker_store_kv.c), which owns one of these. */
#ifndef CBX_DIST_RATELIMIT_KV_H
#define CBX_DIST_RATELIMIT_KV_H

#include <stdint.h>

#include "cbx/err.h"
#include "cbx/ratelimit.h"
#include "dist/natslib.h"

#define CBX__DIST_RATES "CBX_RATES"

typedef struct cbx__kv_rates cbx__kv_rates;

/* js borrowed (it must outlive the result); url only for messages. 0 or -ENOMEM. */
int cbx__kv_rates_new(cbx__kv_rates **out, jsCtx *js, const char *url, cbx_err *err);
/* The bucket of the limiter named key (any bytes, 1 to 200), made on first use: *out valid until
 * cbx__kv_rates_free. 0 or -ENOMEM. */
int cbx__kv_rates_limiter(cbx__kv_rates *r, const char *key, const cbx_ratelimit_remote **out,
                          cbx_err *err);
/* Takes decided again because another process wrote the arrival time first. */
uint64_t cbx__kv_rates_cas_retries(const cbx__kv_rates *r);
void cbx__kv_rates_free(cbx__kv_rates *r);

#endif
