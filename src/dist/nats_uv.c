/* libnats' own libuv adapter, compiled here against the dlopened library (see nats_uv.h). */
#include "dist/nats_uv.h"

/* The adapter's calls into libnats go through the table of natslib.h, whose macros are in force
 * here: the header is included after them. */
#include <nats/adapters/libuv.h>

void cbx__nats_uv_thread(uv_loop_t *loop)
{
    natsLibuv_Init();
    natsLibuv_SetThreadLocalLoop(loop);
}

natsStatus cbx__nats_uv_options(natsOptions *o, uv_loop_t *loop)
{
    return natsOptions_SetEventLoop(o, loop, natsLibuv_Attach, natsLibuv_Read, natsLibuv_Write,
                                    natsLibuv_Detach);
}
