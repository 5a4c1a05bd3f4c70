/* The serverless executor's local backend, chosen by `function_dir` (local.h): its parameters
 * checked and turned into a function's configuration (cbx__lambda_conf), the invocation handed
 * to the loop's pool (runtime_pool.c).
 *
 * Runtimes: `provided` (also provided.al2, provided.al2023) runs DIR/bootstrap; `python3` (also
 * python3.N, python) and `nodejs` (also nodejsN.x, with the `node` found on PATH) run cbx's own
 * bootstrap (runtime_python.c, runtime_node.c) for a `handler` module.function. With no
 * `runtime`, an executable DIR/bootstrap means provided. Other runtimes (ruby, java ...) are not
 * built in: give them a bootstrap. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "executors/serverless/local.h"

static const char *str(const json_t *p, const char *k)
{
    return json_string_value(json_object_get(p, k));
}

/* "python3" for python, python3 and python3.N runtimes (python3.N itself for the latter); "node"
 * for nodejs and nodejsN.x; NULL for provided; "" for unknown. */
static const char *interpreter_of(const char *runtime, char *buf, size_t len)
{
    if (runtime && !strncmp(runtime, "nodejs", 6)) {
        const char *v = runtime + 6;
        size_t digits = strspn(v, "0123456789");
        if (!*v || (digits && !strcmp(v + digits, ".x")))
            return "node";
        return "";
    }
    if (!runtime || !strcmp(runtime, "provided") || !strcmp(runtime, "provided.al2") ||
        !strcmp(runtime, "provided.al2023"))
        return NULL;
    if (!strcmp(runtime, "python") || !strcmp(runtime, "python3"))
        return "python3";
    if (!strncmp(runtime, "python3.", 8) && runtime[8] &&
        strspn(runtime + 8, "0123456789") == strlen(runtime + 8)) {
        snprintf(buf, len, "%s", runtime);
        return buf;
    }
    return "";
}

static int on_path(const char *name)
{
    char **c = cbx__cmd_path_candidates(name, getenv("PATH"));
    int found = 0;
    for (char **p = c; p && *p && !found; p++)
        found = access(*p, X_OK) == 0;
    free(c);
    return found;
}

int cbx__lambda_local_validate(const json_t *p, cbx_err *err)
{
    const char *dir = str(p, "function_dir");
    const char *runtime = str(p, "runtime");
    const char *handler = str(p, "handler");
    struct stat st;
    if (stat(dir, &st) < 0)
        return cbx_err_set_at(err, CBX_EINVAL_CONFIG, "function_dir", 0, 0, "%s: %s", dir,
                              strerror(errno));
    if (!S_ISDIR(st.st_mode))
        return cbx_err_set_at(err, CBX_EINVAL_CONFIG, "function_dir", 0, 0, "%s is not a directory",
                              dir);
    char ibuf[32], path[PATH_MAX + 64];
    const char *interp = interpreter_of(runtime, ibuf, sizeof ibuf);
    if (interp && !*interp)
        return cbx_err_set_at(err, CBX_EINVAL_CONFIG, "runtime", 0, 0,
                              "unknown runtime \"%s\" (built in: provided, provided.al2, "
                              "provided.al2023, python3, python3.N, nodejs, nodejsN.x; others "
                              "need a bootstrap)",
                              runtime);
    if (!interp) {
        snprintf(path, sizeof path, "%s/bootstrap", dir);
        if (stat(path, &st) < 0 || !S_ISREG(st.st_mode))
            return cbx_err_set_at(err, CBX_EINVAL_CONFIG, "function_dir", 0, 0,
                                  runtime ? "no %s (the %s runtime runs it)"
                                          : "no %s (give an executable bootstrap, or runtime: "
                                            "python3 and a handler)%s",
                                  path, runtime ? runtime : "");
        if (access(path, X_OK) < 0)
            return cbx_err_set_at(err, CBX_EINVAL_CONFIG, "function_dir", 0, 0,
                                  "%s is not executable (chmod +x it)", path);
    } else {
        if (!on_path(interp))
            return cbx_err_set_at(err, CBX_EINVAL_CONFIG, "runtime", 0, 0, "%s: no %s on PATH",
                                  runtime, interp);
        const char *dot = handler ? strrchr(handler, '.') : NULL;
        if (!handler || !dot || dot == handler || !dot[1])
            return cbx_err_set_at(err, CBX_EINVAL_CONFIG, "handler", 0, 0,
                                  "the %s runtime needs a handler module.function (as "
                                  "app.handler: module app's function handler)%s%s",
                                  runtime, handler ? ", not " : "", handler ? handler : "");
        int node = !strcmp(interp, "node");
        snprintf(path, sizeof path, "%s/%.*s.%s", dir, (int)(dot - handler), handler,
                 node ? "js" : "py");
        char pkg[PATH_MAX + 64];
        snprintf(pkg, sizeof pkg, "%s/%.*s%s", dir, (int)(dot - handler), handler,
                 node ? ".cjs" : "/__init__.py");
        if (access(path, R_OK) < 0 && access(pkg, R_OK) < 0)
            return cbx_err_set_at(err, CBX_EINVAL_CONFIG, "handler", 0, 0,
                                  "%s: no %s for its module", handler, path);
    }
    const char *it = str(p, "invocation_type");
    if (it && strcmp(it, "RequestResponse") != 0)
        return cbx_err_set_at(err, CBX_EINVAL_CONFIG, "invocation_type", 0, 0,
                              "%s: the local backend (function_dir) runs RequestResponse only", it);
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)json_object_get(p, "environment"), k, v)
    {
        if (!json_is_string(v))
            return cbx_err_set_at(err, CBX_EINVAL_CONFIG, "environment", 0, 0,
                                  "%s: the value is not a string", k);
    }
    return 0;
}

static char *payload_text(const json_t *v, size_t *len)
{
    char *s;
    if (!v)
        s = strdup("{}");
    else if (json_is_string(v))
        s = strdup(json_string_value(v)); /* JSON text already (validate checked it) */
    else
        s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    *len = s ? strlen(s) : 0;
    return s;
}

int cbx__lambda_local_start(cbx_task *t, cbx__lambda_pool **pool, cbx__lambda_inv *inv)
{
    const json_t *p = cbx_task_params(t);
    if (!*pool && !(*pool = cbx__lambda_pool_new(cbx_task_loop(t))))
        return -ENOMEM;
    char dir[PATH_MAX], ibuf[32];
    if (!realpath(str(p, "function_dir"), dir))
        snprintf(dir, sizeof dir, "%s", str(p, "function_dir"));
    const char *name = str(p, "function_name");
    if (!name) {
        name = strrchr(dir, '/');
        name = name && name[1] ? name + 1 : dir;
    }
    const char *region = str(p, "region");
    if (!region)
        region = getenv("AWS_REGION");
    if (!region)
        region = getenv("AWS_DEFAULT_REGION");
    cbx__lambda_conf c = {
        .dir = dir,
        .name = name,
        .handler = str(p, "handler") ? str(p, "handler") : "",
        .interpreter = interpreter_of(str(p, "runtime"), ibuf, sizeof ibuf),
        .region = region && *region ? region : "us-east-1",
        .environment = json_object_get(p, "environment"),
        .memory_mb = (int)json_integer_value(json_object_get(p, "memory_size")),
        .concurrency = (int)json_integer_value(json_object_get(p, "concurrency")),
    };
    memset(inv, 0, sizeof *inv);
    inv->t = t;
    inv->want_log = !strcmp(str(p, "log_type") ? str(p, "log_type") : "None", "Tail");
    inv->timeout_ms = (uint64_t)json_integer_value(json_object_get(p, "timeout_ms"));
    if (!(inv->payload = payload_text(json_object_get(p, "payload"), &inv->payload_len)))
        return -ENOMEM;
    cbx__lambda_invoke(*pool, &c, inv);
    return 0;
}
