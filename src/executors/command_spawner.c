/* The spawner: one thread per process that starts every command's child.
 *
 * A clone(CLONE_VFORK) holds its caller until the child has called exec. Made on the loop's
 * thread, that wait stalled everything else the loop had to do (reading other commands' output,
 * reaping them, starting the next); on a loaded machine, where the child waits for a CPU before
 * it reaches exec, the stall grew with the load. Here the loop hands the spec over and goes on;
 * the spawner clones and wakes the loop through the attempt's uv_async_t.
 *
 * It is also the thread whose end sends the children their PR_SET_PDEATHSIG: it never ends
 * before the process does, so a child dies with cbx, not with whichever loop thread started it.
 * The threads are started with every signal blocked and are never joined: the first on first use,
 * another (up to SPAWNERS) when a job is queued with no thread waiting for it, so a process that
 * runs one command at a time (a `cbx exec`) starts one thread, not four. */
#define _GNU_SOURCE
#include "executors/command.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>

/* Spawner threads: each one waits inside a clone until its child has called exec; on a loaded
 * machine that is until the child gets a CPU, and with one thread the spawns of commands running
 * side by side would queue behind one another. */
#define SPAWNERS 4

static struct {
    pthread_once_t once;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int ok;       /* the first thread runs */
    int nthreads; /* started (or being started) */
    int idle;     /* free for a job: waiting, or started and not yet waiting */
    int queued;   /* jobs in the list */
    cbx__spawn_job *head, *tail;
} sp = {
    .once = PTHREAD_ONCE_INIT, .lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};

/* A thread is counted idle from its start (by whoever starts it) until it takes a job, and
 * again once it has spawned, so that a job submitted while it starts does not start another. */
static void *spawner_main(void *arg)
{
    (void)arg;
    for (;;) {
        pthread_mutex_lock(&sp.lock);
        while (!sp.head)
            pthread_cond_wait(&sp.cond, &sp.lock);
        cbx__spawn_job *job = sp.head;
        sp.idle--;
        sp.queued--;
        sp.head = job->next;
        if (!sp.head)
            sp.tail = NULL;
        pthread_mutex_unlock(&sp.lock);

        cbx_err_clear(&job->err);
        job->rc = cbx__cmd_spawn(job->spec, &job->child, &job->err);
        /* After the store the job belongs to the loop again (and may be freed at once): its
         * async handle is read before. (libuv's close of an async handle waits for a send in
         * progress, so the handle itself outlives the send.) */
        uv_async_t *done = job->done;
        atomic_store_explicit(&job->over, 1, memory_order_release);
        uv_async_send(done);
        pthread_mutex_lock(&sp.lock);
        sp.idle++;
        pthread_mutex_unlock(&sp.lock);
    }
    return NULL;
}

/* One more spawner thread, detached, with every signal blocked. 1 when it runs. */
static int start_one(void)
{
    pthread_attr_t attr;
    if (pthread_attr_init(&attr) != 0)
        return 0;
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old); /* inherited by the thread */
    pthread_t th;
    int ok = pthread_create(&th, &attr, spawner_main, NULL) == 0;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&attr);
    return ok;
}

static void start(void)
{
    pthread_mutex_lock(&sp.lock);
    sp.idle = sp.nthreads = 1;
    pthread_mutex_unlock(&sp.lock);
    sp.ok = start_one();
    if (!sp.ok) {
        pthread_mutex_lock(&sp.lock);
        sp.idle = sp.nthreads = 0;
        pthread_mutex_unlock(&sp.lock);
    }
}

int cbx__spawner_submit(cbx__spawn_job *job)
{
    if (cbx__cmd_inline_spawn)
        return -ENOTSUP;
    pthread_once(&sp.once, start);
    if (!sp.ok)
        return -EAGAIN;
    job->next = NULL;
    atomic_store_explicit(&job->over, 0, memory_order_relaxed);
    pthread_mutex_lock(&sp.lock);
    if (sp.tail)
        sp.tail->next = job;
    else
        sp.head = job;
    sp.tail = job;
    sp.queued++;
    /* every waiting thread takes one job: more jobs than that wait for a clone to finish */
    int grow = sp.queued > sp.idle && sp.nthreads < SPAWNERS;
    if (grow)
        sp.nthreads++, sp.idle++;
    pthread_cond_signal(&sp.cond);
    pthread_mutex_unlock(&sp.lock);
    if (grow && !start_one()) { /* the threads there are take the job */
        pthread_mutex_lock(&sp.lock);
        sp.nthreads--, sp.idle--;
        pthread_mutex_unlock(&sp.lock);
    }
    return 0;
}

void cbx__spawn_job_acquire(cbx__spawn_job *job)
{
    (void)atomic_load_explicit(&job->over, memory_order_acquire);
}
