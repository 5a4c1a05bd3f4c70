/* Owner labels, and the removal of containers whose cbx is gone.
 *
 * Every container carries io.cbx.owner = "<boot id>/<pid namespace>/<pid>/<start time>": the
 * machine's boot id (/proc/sys/kernel/random/boot_id), the inode of this process's pid
 * namespace, and its pid and start time in clock ticks since boot (field 22 of /proc/self/stat),
 * so that a pid reused by another process is not taken for the owner, and a pid seen from
 * another namespace is not judged at all.
 * The first attempt of a runtime lists the engine's containers with that label and, for each
 * whose owner (on this boot) no longer runs: removes it (forced, which kills it first) when its
 * io.cbx.remove label is "1", or kills it when it was to be kept. Attempts that start meanwhile
 * wait for this. A cbx killed with SIGKILL thus leaves its containers only until the next cbx
 * runs a container on the same engine.
 */
#define _GNU_SOURCE
#include "executors/container/container.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct cbx__ctr_reap {
    cbx__ctr_loop *cl;
    cbx__ctr_req list;
    cbx__ctr_req *reqs;
    size_t n, pending;
} cbx__ctr_reap;

/* ---- owners ------------------------------------------------------------------------------- */

static int read_small(const char *path, char *buf, size_t len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, len - 1);
    close(fd);
    if (n <= 0)
        return -1;
    buf[n] = '\0';
    return 0;
}

static void boot_id(char *buf, size_t len)
{
    if (read_small("/proc/sys/kernel/random/boot_id", buf, len) < 0)
        snprintf(buf, len, "unknown");
    buf[strcspn(buf, "\n")] = '\0';
}

/* Field 22 of /proc/<pid>/stat: the start time in ticks since boot; 0 when unreadable. */
static unsigned long long start_ticks(long pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    if (read_small(path, buf, sizeof buf) < 0)
        return 0;
    const char *p = strrchr(buf, ')'); /* the command name may hold spaces and parentheses */
    if (!p)
        return 0;
    p++; /* the space before field 3 (the state) */
    for (int field = 3; field < 22 && p; field++)
        p = strchr(p + 1, ' ');
    return p ? strtoull(p + 1, NULL, 10) : 0; /* p: the space before field 22 */
}

static char owner[256];
static pthread_once_t owner_once = PTHREAD_ONCE_INIT;

/* This machine and pid namespace: "<boot id>/<pid namespace inode>". */
static void where_am_i(char *buf, size_t len)
{
    char boot[64], ns[64];
    boot_id(boot, sizeof boot);
    ssize_t n = readlink("/proc/self/ns/pid", ns, sizeof ns - 1); /* "pid:[4026531836]" */
    ns[n > 0 ? n : 0] = '\0';
    const char *num = strchr(ns, '[');
    snprintf(buf, len, "%s/%.*s", boot, num ? (int)strcspn(num + 1, "]") : 1, num ? num + 1 : "0");
}

static void owner_make(void)
{
    char here[128];
    where_am_i(here, sizeof here);
    snprintf(owner, sizeof owner, "%s/%ld/%llu", here, (long)getpid(), start_ticks((long)getpid()));
}

const char *cbx__ctr_owner_label(void)
{
    pthread_once(&owner_once, owner_make);
    return owner;
}

int cbx__ctr_owner_gone(const char *label)
{
    char here[128];
    where_am_i(here, sizeof here);
    size_t blen = strlen(here);
    if (!label || strncmp(label, here, blen) != 0 || label[blen] != '/')
        return 0; /* another boot, machine or pid namespace: not ours to judge */
    char *end;
    long pid = strtol(label + blen + 1, &end, 10);
    if (*end != '/' || pid <= 0)
        return 0;
    unsigned long long ticks = strtoull(end + 1, NULL, 10);
    unsigned long long now = start_ticks(pid);
    return now == 0 || now != ticks;
}

/* ---- reaping ------------------------------------------------------------------------------ */

static void reap_end(cbx__ctr_reap *rp)
{
    cbx__ctr_loop *cl = rp->cl;
    for (size_t i = 0; i < rp->n; i++)
        cbx__ctr_req_clear(&rp->reqs[i]);
    cbx__ctr_req_clear(&rp->list);
    free(rp->reqs);
    free(rp);
    cl->reap = NULL;
    cl->reap_state = 2;
    cbx__http_loop_end(cl->http);
    cbx__ctr_run *w = cl->reap_waiters;
    cl->reap_waiters = NULL;
    while (w) {
        cbx__ctr_run *next = w->next_waiter;
        w->next_waiter = NULL;
        cbx__ctr_run_resume(w);
        w = next;
    }
}

static void on_one(cbx__ctr_req *rq)
{
    cbx__ctr_reap *rp = rq->data;
    if (--rp->pending == 0)
        reap_end(rp);
}

static void on_list(cbx__ctr_req *rq)
{
    cbx__ctr_reap *rp = rq->data;
    json_t *doc = rq->status == 200 ? cbx__ctr_req_json(rq) : NULL;
    size_t n = json_array_size(doc);
    rp->reqs = n ? calloc(n, sizeof *rp->reqs) : NULL;
    size_t i;
    json_t *c;
    json_array_foreach(doc, i, c)
    {
        if (!rp->reqs)
            break;
        json_t *labels = json_object_get(c, "Labels");
        const char *id = json_string_value(json_object_get(c, "Id"));
        const char *own = json_string_value(json_object_get(labels, CBX__CTR_LABEL_OWNER));
        if (!id || strlen(id) > 80 || !cbx__ctr_owner_gone(own))
            continue;
        const char *rm = json_string_value(json_object_get(labels, CBX__CTR_LABEL_REMOVE));
        const char *state = json_string_value(json_object_get(c, "State"));
        int remove = !rm || strcmp(rm, "0") != 0;
        if (!remove && (!state || strcmp(state, "running") != 0))
            continue; /* kept, and no longer running */
        char path[160];
        cbx__ctr_req *r = &rp->reqs[rp->n];
        r->cb = on_one;
        r->data = rp;
        int sent;
        if (remove) {
            snprintf(path, sizeof path, "/containers/%s?force=true&v=true", id);
            sent = cbx__ctr_send(rp->cl, r, "DELETE", path, NULL);
        } else {
            snprintf(path, sizeof path, "/containers/%s/kill?signal=SIGKILL", id);
            sent = cbx__ctr_send(rp->cl, r, "POST", path, NULL);
        }
        if (sent == 0) {
            rp->n++;
            rp->pending++;
        }
    }
    json_decref(doc);
    if (rp->pending == 0)
        reap_end(rp);
}

void cbx__ctr_reap_begin(cbx__ctr_loop *cl)
{
    cbx__ctr_reap *rp = calloc(1, sizeof *rp);
    if (!rp || cbx__http_loop_begin(cl->http) < 0) {
        free(rp);
        cl->reap_state = 2; /* not this time: the attempts go on */
        return;
    }
    rp->cl = cl;
    cl->reap = rp;
    cl->reap_state = 1;
    char filt[128], path[256];
    cbx__ctr_urlencode("{\"label\":[\"" CBX__CTR_LABEL_OWNER "\"]}", filt, sizeof filt);
    snprintf(path, sizeof path, "/containers/json?all=true&filters=%s", filt);
    rp->list.cb = on_list;
    rp->list.data = rp;
    if (cbx__ctr_send(cl, &rp->list, "GET", path, NULL) < 0) {
        cl->reap_state = 2;
        cl->reap = NULL;
        cbx__http_loop_end(cl->http);
        free(rp);
    }
}

void cbx__ctr_reap_abort(cbx__ctr_loop *cl)
{
    cbx__ctr_reap *rp = cl->reap;
    if (!rp)
        return;
    cbx__ctr_abort(&rp->list);
    for (size_t i = 0; i < rp->n; i++)
        cbx__ctr_abort(&rp->reqs[i]);
    cl->reap_waiters = NULL;
    rp->pending = 0;
    /* as at the end, without waiters to resume */
    for (size_t i = 0; i < rp->n; i++)
        cbx__ctr_req_clear(&rp->reqs[i]);
    cbx__ctr_req_clear(&rp->list);
    free(rp->reqs);
    free(rp);
    cl->reap = NULL;
    cl->reap_state = 2;
    cbx__http_loop_end(cl->http);
}
