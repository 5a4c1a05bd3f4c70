/* The monotonic clock and the virtual clock tests advance by hand. */
#include "cbx/clock.h"

#include "cbx/err.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

struct cbx_clock {
    int is_virtual;
    _Atomic uint64_t now_ns; /* virtual clocks only */
};

static cbx_clock monotonic_clock = {.is_virtual = 0};

cbx_clock *cbx_clock_monotonic(void)
{
    return &monotonic_clock;
}

cbx_clock *cbx_clock_virtual(uint64_t start_ms)
{
    cbx_clock *clk = calloc(1, sizeof *clk);
    if (!clk)
        return NULL;
    clk->is_virtual = 1;
    atomic_init(&clk->now_ns, start_ms * CBX_NS_PER_MS);
    return clk;
}

void cbx_clock_free(cbx_clock *clk)
{
    if (clk && clk->is_virtual)
        free(clk);
}

static uint64_t monotonic_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * CBX_NS_PER_S + (uint64_t)ts.tv_nsec;
}

uint64_t cbx_clock_now_ns(cbx_clock *clk)
{
    if (clk && clk->is_virtual)
        return atomic_load_explicit(&clk->now_ns, memory_order_acquire);
    return monotonic_now_ns();
}

uint64_t cbx_clock_now_ms(cbx_clock *clk)
{
    return cbx_clock_now_ns(clk) / CBX_NS_PER_MS;
}

int cbx_clock_is_virtual(const cbx_clock *clk)
{
    return clk && clk->is_virtual;
}

int cbx_clock_advance_ns(cbx_clock *clk, uint64_t ns)
{
    if (!cbx_clock_is_virtual(clk))
        return CBX_EINVAL_CONFIG;
    atomic_fetch_add_explicit(&clk->now_ns, ns, memory_order_acq_rel);
    return 0;
}

int cbx_clock_advance(cbx_clock *clk, uint64_t ms)
{
    return cbx_clock_advance_ns(clk, ms * CBX_NS_PER_MS);
}

static struct timespec ts_from_ns(uint64_t ns)
{
    return (struct timespec){.tv_sec = (time_t)(ns / CBX_NS_PER_S),
                             .tv_nsec = (long)(ns % CBX_NS_PER_S)};
}

void cbx_clock_sleep_until(cbx_clock *clk, uint64_t deadline_ns)
{
    if (cbx_clock_is_virtual(clk)) {
        uint64_t now = atomic_load(&clk->now_ns);
        /* Move forward only: another thread may already have gone past the deadline. */
        while (now < deadline_ns && !atomic_compare_exchange_weak(&clk->now_ns, &now, deadline_ns))
            ;
        return;
    }
    struct timespec ts = ts_from_ns(deadline_ns);
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
        ;
}

int cbx_clock_cond_init(pthread_cond_t *cond)
{
    pthread_condattr_t attr;
    int r = pthread_condattr_init(&attr);
    if (r)
        return -r;
    r = pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    if (!r)
        r = pthread_cond_init(cond, &attr);
    pthread_condattr_destroy(&attr);
    return -r;
}

/* A virtual clock can be advanced by another thread at any moment without knowing who waits,
 * so a waiter on virtual time sleeps in short real slices and lets its caller re-check. */
#define VIRTUAL_WAIT_SLICE_NS (1 * CBX_NS_PER_MS)

int cbx_clock_wait(cbx_clock *clk, pthread_cond_t *cond, pthread_mutex_t *mu, uint64_t deadline_ns)
{
    if (cbx_clock_now_ns(clk) >= deadline_ns)
        return CBX_ETIMEDOUT;
    uint64_t until =
        cbx_clock_is_virtual(clk) ? monotonic_now_ns() + VIRTUAL_WAIT_SLICE_NS : deadline_ns;
    struct timespec ts = ts_from_ns(until);
    int r = pthread_cond_timedwait(cond, mu, &ts);
    if (r == ETIMEDOUT && cbx_clock_now_ns(clk) >= deadline_ns)
        return CBX_ETIMEDOUT;
    return 0;
}
