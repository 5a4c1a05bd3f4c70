/* Executor types' per-runtime state: the loop_init / loop_close hooks of cbx/executor.h. The
 * runtime keeps one (type, state) pair per type that has a hook, in the order of the loop_init
 * calls, and closes them in reverse. It never knows what a state is. */
#include "runtime/runtime_internal.h"

#include <errno.h>
#include <stdlib.h>

static int has_hooks(const cbx_executor_type *t)
{
    return t->loop_init || t->loop_close;
}

/* Call t's loop_init and keep its state. */
static int open_one(cbx_runtime *rt, const cbx_executor_type *t, void **state, cbx_err *err)
{
    if (rt->nloop_states == rt->cap_loop_states) {
        size_t cap = rt->cap_loop_states ? rt->cap_loop_states * 2 : 4;
        cbx__loop_state *v = realloc(rt->loop_states, cap * sizeof *v);
        if (!v)
            return cbx_err_set(err, -ENOMEM, "runtime: out of memory");
        rt->loop_states = v;
        rt->cap_loop_states = cap;
    }
    void *s = NULL;
    if (t->loop_init) {
        cbx_err he;
        cbx_err_clear(&he);
        int r = t->loop_init(t, rt->loop, &s, &he);
        if (r < 0) {
            if (he.msg[0])
                return cbx_err_set(err, r, "executor type '%s': loop_init: %s", t->name, he.msg);
            return cbx_err_set(err, r, "executor type '%s': loop_init: %s", t->name,
                               cbx_strerror(r));
        }
    }
    rt->loop_states[rt->nloop_states++] = (cbx__loop_state){.type = t, .state = s};
    *state = s;
    return 0;
}

int cbx__rt_loop_states_open(cbx_runtime *rt, cbx_err *err)
{
    size_t n = cbx_registry_list(rt->registry, NULL, 0);
    if (n == 0)
        return 0;
    const cbx_executor_type **types = malloc(n * sizeof *types);
    if (!types)
        return cbx_err_set(err, -ENOMEM, "runtime: out of memory");
    cbx_registry_list(rt->registry, types, n);
    int r = 0;
    void *s;
    for (size_t i = 0; i < n && r == 0; i++)
        if (has_hooks(types[i]))
            r = open_one(rt, types[i], &s, err);
    free(types);
    return r;
}

int cbx__rt_loop_state(cbx_runtime *rt, const cbx_executor_type *t, void **state, cbx_err *err)
{
    *state = NULL;
    if (!has_hooks(t))
        return 0;
    for (size_t i = 0; i < rt->nloop_states; i++) {
        if (rt->loop_states[i].type == t) {
            *state = rt->loop_states[i].state;
            return 0;
        }
    }
    return open_one(rt, t, state, err); /* registered after the runtime was made */
}

void cbx__rt_loop_states_close(cbx_runtime *rt)
{
    for (size_t i = rt->nloop_states; i-- > 0;) {
        const cbx__loop_state *ls = &rt->loop_states[i];
        if (ls->type->loop_close)
            ls->type->loop_close(ls->type, rt->loop, ls->state);
    }
    free(rt->loop_states);
    rt->loop_states = NULL;
    rt->nloop_states = rt->cap_loop_states = 0;
}
