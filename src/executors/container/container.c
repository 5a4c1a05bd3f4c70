/* The "container" executor type: its parameters, start and cancel, and its per-loop context. */
#include "executors/container/container.h"

#include "executors/exit_params.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static const char *const pull_modes[] = {"never", "missing", "always", NULL};

static const cbx_param params[] = {
    {.name = "image",
     .type = CBX_PARAM_STRING,
     .required = 1,
     .has_min = 1,
     .min = 1,
     .description = "the image to run (\"alpine:3\", \"localhost/tool:latest\")"},
    {.name = "command",
     .type = CBX_PARAM_ANY,
     .description = "the command: an array of strings, or a string split into words as a shell "
                    "would (quotes, backslashes; no expansions); default: the image's"},
    {.name = "environment",
     .type = CBX_PARAM_OBJECT,
     .description = "environment variables: name to value (string, number or boolean)"},
    {.name = "volumes",
     .type = CBX_PARAM_ARRAY,
     .items = CBX_PARAM_STRING,
     .description = "bind mounts \"host:container[:ro|rw]\"; host: an absolute path that exists, "
                    "or a volume name"},
    {.name = "workdir",
     .type = CBX_PARAM_STRING,
     .has_min = 1,
     .min = 1,
     .description = "the working directory inside the container"},
    {.name = "user",
     .type = CBX_PARAM_STRING,
     .has_min = 1,
     .min = 1,
     .description = "user (and group) the command runs as: \"1000\", \"1000:1000\", \"nobody\""},
    {.name = "network",
     .type = CBX_PARAM_STRING,
     .default_json = "\"none\"",
     .has_min = 1,
     .min = 1,
     .description = "the network mode: none (no network), host, bridge, or a network's name"},
    {.name = "memory",
     .type = CBX_PARAM_ANY,
     .description = "memory limit: bytes, or a string \"256m\", \"1g\" (swap is not added); "
                    "a container killed at it fails as oom"},
    {.name = "cpus",
     .type = CBX_PARAM_NUMBER,
     .has_min = 1,
     .min = 0.01,
     .has_max = 1,
     .max = 1024,
     .description = "CPU limit in CPUs (1.5 = one and a half)"},
    {.name = "pids_limit",
     .type = CBX_PARAM_INTEGER,
     .has_min = 1,
     .min = 1,
     .has_max = 1,
     .max = 1 << 22,
     .description = "processes the container may have at once"},
    {.name = "pull",
     .type = CBX_PARAM_STRING,
     .default_json = "\"missing\"",
     .enum_values = pull_modes,
     .description = "pull the image: never, when missing, or always before creating"},
    {.name = "remove",
     .type = CBX_PARAM_BOOLEAN,
     .default_json = "true",
     .description = "remove the container when it has ended (a container that never started "
                    "is always removed)"},
    {.name = "labels",
     .type = CBX_PARAM_OBJECT,
     .description = "labels of the container: name to string (io.cbx.* are cbx's own)"},
    {.name = "docker_host",
     .type = CBX_PARAM_STRING,
     .has_min = 1,
     .min = 1,
     .description = "the engine's socket: unix:///path or a path (default: DOCKER_HOST, then "
                    "/var/run/docker.sock, /run/podman/podman.sock, "
                    "$XDG_RUNTIME_DIR/podman/podman.sock)"},
    CBX__PARAM_CAPTURE_MAX("stdout"),
    CBX__PARAM_CAPTURE_MAX("stderr"),
    CBX__PARAM_SUCCESS_EXIT_CODES,
    {.name = "kill_grace_ms",
     .type = CBX_PARAM_INTEGER,
     .has_min = 1,
     .min = 0,
     .has_max = 1,
     .max = 3600000,
     .description = "on timeout or cancel, SIGTERM, then SIGKILL after this many ms (default: "
                    "the runtime's kill grace)"},
    {.name = "stats",
     .type = CBX_PARAM_BOOLEAN,
     .default_json = "true",
     .description = "follow the container's stats once it has run 2 s, for peak_memory_bytes "
                    "and cpu_ms (sampled about once a second: absent for short runs)"},
    {.name = NULL},
};

static int container_validate(const cbx_executor_type *type, const json_t *p, cbx_err *err)
{
    (void)type;
    return cbx__ctr_spec_validate(p, err);
}

static int container_start(cbx_task *t)
{
    int r = cbx__curl_load(NULL); /* a no-op after the first time */
    if (r < 0)
        return r;
    cbx__ctr_loop *cl = cbx_task_loop_state(t);
    if (!cl)
        return -ENOMEM;
    if ((r = cbx__http_loop_ready(cl->http)) < 0)
        return r;
    const json_t *p = cbx_task_params(t);
    char socket[256];
    if (cbx__ctr_socket_path(json_string_value(json_object_get(p, "docker_host")), socket,
                             sizeof socket, NULL) < 0)
        return CBX_EINVAL_CONFIG; /* validation lets no such request through */
    json_t *body = cbx__ctr_spec_build(p, cbx_task_execution_id(t), NULL);
    if (!body)
        return -ENOMEM;
    return cbx__ctr_run_start(t, cl, body, socket);
}

static void container_cancel(cbx_task *t)
{
    cbx__ctr_run_cancel(t);
}

static int container_loop_init(const cbx_executor_type *type, void *loop, void **state,
                               cbx_err *err)
{
    (void)type;
    cbx__ctr_loop *cl = calloc(1, sizeof *cl);
    if (!cl || cbx__http_loop_open(loop, &cl->http) < 0) {
        free(cl);
        return cbx_err_set(err, -ENOMEM, "container: out of memory");
    }
    *state = cl;
    return 0;
}

static void container_loop_close(const cbx_executor_type *type, void *loop, void *state)
{
    (void)type;
    (void)loop;
    cbx__ctr_loop *cl = state;
    if (!cl)
        return;
    cbx__ctr_reap_abort(cl);
    /* Attempts the runtime stopped waiting for finish on both contexts, which outlive this
     * call until the last has reported. */
    cbx__http_loop_close(cl->http);
    cl->closed = 1;
    if (cl->refs == 0)
        free(cl);
}

void cbx__ctr_loop_release(cbx__ctr_loop *cl)
{
    if (--cl->refs == 0 && cl->closed)
        free(cl);
}

static const cbx_executor_type container_type = {
    .abi = CBX_EXECUTOR_ABI,
    .name = "container",
    .summary = "run a container through the Docker Engine API (Docker or Podman) on its unix "
               "socket: output, exit code, limits, stopped and removed on timeout",
    .params = params,
    .task_size = sizeof(cbx__ctr_run),
    .validate = container_validate,
    .start = container_start,
    .cancel = container_cancel,
    .loop_init = container_loop_init,
    .loop_close = container_loop_close,
};

const cbx_executor_type *cbx__container_type(void)
{
    return &container_type;
}
