/* cbx/clock.h - where every libcbx component gets the time.
 *
 * Components take a cbx_clock * in their options (NULL means the shared monotonic clock),
 * so that tests run on a virtual clock they advance by hand, with no sleeps.
 *
 * Times are nanoseconds since an arbitrary origin (uint64_t); they are only compared and
 * subtracted, never shown as wall-clock dates.
 */
#ifndef CBX_CLOCK_H
#define CBX_CLOCK_H

#include <pthread.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define CBX_NS_PER_US 1000ULL
#define CBX_NS_PER_MS 1000000ULL
#define CBX_NS_PER_S  1000000000ULL

typedef struct cbx_clock cbx_clock;

/* The process-wide monotonic clock (CLOCK_MONOTONIC). Static: cbx_clock_free ignores it. */
cbx_clock *cbx_clock_monotonic(void);

/* A new virtual clock that starts at start_ms and moves only by cbx_clock_advance.
 * Returns NULL when out of memory. Free with cbx_clock_free. Thread-safe. */
cbx_clock *cbx_clock_virtual(uint64_t start_ms);

/* Release a virtual clock. NULL and the monotonic clock are accepted and ignored.
 * Nothing that borrowed the clock may use it afterwards. */
void cbx_clock_free(cbx_clock *clk);

/* Now, in nanoseconds. NULL means the monotonic clock. */
uint64_t cbx_clock_now_ns(cbx_clock *clk);

/* Now, in milliseconds (now_ns / 1e6). */
uint64_t cbx_clock_now_ms(cbx_clock *clk);

/* 1 if clk is a virtual clock, 0 otherwise. */
int cbx_clock_is_virtual(const cbx_clock *clk);

/* Move a virtual clock forward and wake every waiter (see cbx_clock_wait). Returns 0, or
 * CBX_EINVAL_CONFIG if clk is not virtual. */
int cbx_clock_advance_ns(cbx_clock *clk, uint64_t ns);
int cbx_clock_advance(cbx_clock *clk, uint64_t ms);

/* Sleep until the clock reads deadline_ns. On the monotonic clock this sleeps for real; on a
 * virtual clock it advances the clock to the deadline at once (a single-threaded test then
 * runs retries and backoffs without waiting). */
void cbx_clock_sleep_until(cbx_clock *clk, uint64_t deadline_ns);

/* Make a condition variable that cbx_clock_wait can use (CLOCK_MONOTONIC based).
 * Returns 0 or -errno. */
int cbx_clock_cond_init(pthread_cond_t *cond);

/* Wait on cond (with mu held, as pthread_cond_timedwait) until signalled or until the
 * clock passes deadline_ns. cond must come from cbx_clock_cond_init. On a virtual clock the
 * wait also ends whenever the clock is advanced, so the caller re-checks its deadline in a
 * loop. Returns 0 when woken, CBX_ETIMEDOUT when the deadline has passed. */
int cbx_clock_wait(cbx_clock *clk, pthread_cond_t *cond, pthread_mutex_t *mu, uint64_t deadline_ns);

#ifdef __cplusplus
}
#endif
#endif
