/* What other parts of libcbx may know about a breaker beyond its public header. */
#ifndef CBX_RESILIENCE_BREAKER_INTERNAL_H
#define CBX_RESILIENCE_BREAKER_INTERNAL_H

#include "cbx/breaker.h"

/* The clock the breaker reads (borrowed; NULL means monotonic). */
cbx_clock *cbx__breaker_clock(const cbx_breaker *b);

#endif
