/* The peer of bench/serve.sh: h2o's hello world on libuv (the same library, loop and socket
 * setup as cbx-serve), answering every request with a 12-byte text body. Prints its port. */
#define H2O_USE_LIBUV 1
#include <h2o.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

static h2o_globalconf_t config;
static h2o_context_t ctx;
static h2o_accept_ctx_t accept_ctx;

static int on_req(h2o_handler_t *self, h2o_req_t *req)
{
    (void)self;
    req->res.status = 200;
    req->res.reason = "OK";
    req->res.content_length = 12;
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL,
                   H2O_STRLIT("text/plain"));
    h2o_send_inline(req, H2O_STRLIT("hello world\n"));
    return 0;
}

static void on_accept(uv_stream_t *listener, int status)
{
    if (status != 0)
        return;
    uv_tcp_t *conn = malloc(sizeof *conn);
    uv_tcp_init(listener->loop, conn);
    if (uv_accept(listener, (uv_stream_t *)conn) != 0) {
        uv_close((uv_handle_t *)conn, (uv_close_cb)free);
        return;
    }
    uv_tcp_nodelay(conn, 1);
    h2o_accept(&accept_ctx, h2o_uv_socket_create((uv_stream_t *)conn, (uv_close_cb)free));
}

int main(void)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    h2o_config_init(&config);
    h2o_hostconf_t *host =
        h2o_config_register_host(&config, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    h2o_pathconf_t *path = h2o_config_register_path(host, "/", 0);
    h2o_create_handler(path, sizeof(h2o_handler_t))->on_req = on_req;
    h2o_context_init(&ctx, &loop, &config);
    accept_ctx.ctx = &ctx;
    accept_ctx.hosts = config.hosts;
    uv_tcp_t listener;
    struct sockaddr_in addr;
    uv_tcp_init(&loop, &listener);
    uv_ip4_addr("127.0.0.1", 0, &addr);
    if (uv_tcp_bind(&listener, (struct sockaddr *)&addr, 0) ||
        uv_listen((uv_stream_t *)&listener, 511, on_accept)) {
        fprintf(stderr, "h2o_hello: cannot listen\n");
        return 1;
    }
    int len = sizeof addr;
    uv_tcp_getsockname(&listener, (struct sockaddr *)&addr, &len);
    printf("%d\n", ntohs(addr.sin_port));
    fflush(stdout);
    return uv_run(&loop, UV_RUN_DEFAULT);
}
