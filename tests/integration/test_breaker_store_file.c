/* The host breaker store's file under hostile conditions, with real processes: a full file
 * system (a small tmpfs, mounted when this runs as root; skipped otherwise), files left empty
 * or unfinished, many processes making the file at once, symbolic links and foreign files in
 * the state directory, a state directory others can write, and a record another process keeps
 * locked. Every store operation that could fault runs in a forked child, so that a SIGBUS is
 * a test failure rather than the end of the test run. */
#define _GNU_SOURCE
#include "cbx/breaker_store.h"
#include "cbx/clock.h"
#include "cbx/err.h"
#include "cbx/journal.h"
#include "cbx/state_dir.h"

#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define MS CBX_NS_PER_MS
#define S  CBX_NS_PER_S

/* Offsets in the file, as docs/breaker-store.md gives them. */
#define FILE_VERSION_AT 8
#define FILE_HEADER     4096
#define FILE_RECORD     32768
#define FILE_SIZE       (FILE_HEADER + 512 * FILE_RECORD)

static char dir[256], path[400], mnt[300];
static int mounted;

static void make_dir(void)
{
    snprintf(dir, sizeof dir, "/tmp/cbx-bsfile-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/breakers", dir);
    mounted = 0;
}

static void remove_dir(void)
{
    if (mounted)
        umount2(mnt, MNT_DETACH);
    char cmd[320];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        cr_log_warn("could not remove %s", dir);
}

TestSuite(breaker_store_file, .init = make_dir, .fini = remove_dir, .timeout = 120);

/* ---- children ------------------------------------------------------------------------------- */

/* What a child saw, in memory shared with the parent. */
typedef struct report {
    int done;
    int open_rc, rc, rc2, rc3;
    char text[600];
    char json[2048];
} report;

static report *shared_reports(int n)
{
    void *p = mmap(NULL, sizeof(report) * (size_t)n, PROT_READ | PROT_WRITE,
                   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    cr_assert_neq(p, MAP_FAILED);
    memset(p, 0, sizeof(report) * (size_t)n);
    return p;
}

typedef void (*child_fn)(report *r, void *arg);

static pid_t start_child(child_fn fn, report *r, void *arg)
{
    fflush(NULL);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        fn(r, arg);
        r->done = 1;
        _exit(0);
    }
    return pid;
}

/* The child must end by itself: a signal (the SIGBUS of a write into a hole the file system
 * cannot fill) fails the test. */
static void wait_child(pid_t pid, report *r)
{
    int st = 0;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    cr_assert(!WIFSIGNALED(st), "the child was killed by signal %d (%s)", WTERMSIG(st),
              strsignal(WTERMSIG(st)));
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child status %#x", st);
    cr_assert(r->done, "the child did not finish");
}

static void in_child(child_fn fn, report *r, void *arg)
{
    wait_child(start_child(fn, r, arg), r);
}

static cbx_breaker_store *open_at(report *r, const char *p)
{
    cbx_breaker_store *s = NULL;
    cbx_err err = {0};
    r->open_rc = cbx_breaker_store_host_new(&s, p, &err);
    if (r->open_rc)
        snprintf(r->text, sizeof r->text, "%s", err.msg);
    return s;
}

/* Open the file at arg (path when NULL); acquire and record a success on "a"; then acquire
 * "b", which is new; list. rc, rc2 and json report them. */
static void child_use(report *r, void *arg)
{
    cbx_breaker_store *s = open_at(r, arg ? arg : path);
    if (!s)
        return;
    cbx_breaker_rejection why;
    cbx_permit p = cbx_breaker_store_acquire(s, "a", NULL, &why);
    r->rc = p.rc;
    if (p.rc == 0)
        cbx_breaker_store_record(s, "a", p, CBX_OUTCOME_SUCCESS, (int64_t)MS);
    p = cbx_breaker_store_acquire(s, "b", NULL, &why);
    r->rc2 = p.rc;
    if (p.rc == 0)
        cbx_breaker_store_record(s, "b", p, CBX_OUTCOME_SUCCESS, (int64_t)MS);
    else
        cbx_breaker_store_explain(s, "b", &why, r->text, sizeof r->text);
    json_t *o = NULL;
    r->rc3 = cbx_breaker_store_list(s, &o, NULL);
    if (r->rc3 == 0) {
        char *t = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
        snprintf(r->json, sizeof r->json, "%s", t);
        free(t);
        json_decref(o);
    }
    cbx_breaker_store_free(s);
}

/* Only acquire and record "a". */
static void child_a(report *r, void *arg)
{
    cbx_breaker_store *s = open_at(r, arg ? arg : path);
    if (!s)
        return;
    cbx_permit p = cbx_breaker_store_acquire(s, "a", NULL, NULL);
    r->rc = p.rc;
    if (p.rc == 0)
        cbx_breaker_store_record(s, "a", p, CBX_OUTCOME_SUCCESS, (int64_t)MS);
    cbx_breaker_store_free(s);
}

static void child_list(report *r, void *arg)
{
    cbx_breaker_store *s = open_at(r, arg ? arg : path);
    if (!s)
        return;
    json_t *o = NULL;
    r->rc = cbx_breaker_store_list(s, &o, NULL);
    if (r->rc == 0) {
        char *t = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
        snprintf(r->json, sizeof r->json, "%s", t);
        free(t);
        json_decref(o);
    }
    cbx_breaker_store_free(s);
}

/* The calls count of name in a list's JSON, -1 when absent. */
static long long calls_of(const char *list_json, const char *name)
{
    json_error_t e;
    json_t *arr = json_loads(list_json, 0, &e);
    cr_assert_not_null(arr, "bad JSON: %s", list_json);
    long long n = -1;
    size_t i;
    json_t *b;
    json_array_foreach(arr, i, b)
    {
        if (strcmp(json_string_value(json_object_get(b, "name")), name) == 0)
            n = (long long)json_integer_value(json_object_get(b, "calls"));
    }
    json_decref(arr);
    return n;
}

/* Files in d whose name starts with prefix. */
static int count_files(const char *d, const char *prefix)
{
    DIR *dd = opendir(d);
    cr_assert_not_null(dd);
    int n = 0;
    struct dirent *de;
    while ((de = readdir(dd)))
        if (strncmp(de->d_name, prefix, strlen(prefix)) == 0)
            n++;
    closedir(dd);
    return n;
}

static uint32_t file_version(const char *p)
{
    uint32_t v = 0;
    int fd = open(p, O_RDONLY);
    cr_assert_geq(fd, 0);
    cr_assert_eq(pread(fd, &v, sizeof v, FILE_VERSION_AT), (ssize_t)sizeof v);
    close(fd);
    return v;
}

/* ---- making the file ------------------------------------------------------------------------ */

Test(breaker_store_file, many_processes_make_a_missing_file_at_once_and_share_it)
{
    enum { N = 8 };
    report *r = shared_reports(N);
    pid_t pids[N];
    for (int i = 0; i < N; i++)
        pids[i] = start_child(child_a, &r[i], NULL);
    for (int i = 0; i < N; i++) {
        wait_child(pids[i], &r[i]);
        cr_assert_eq(r[i].open_rc, 0, "child %d: %s", i, r[i].text);
        cr_assert_eq(r[i].rc, 0, "child %d: %s", i, cbx_strerror(r[i].rc));
    }
    report *l = shared_reports(1);
    in_child(child_list, l, NULL);
    cr_assert_eq(calls_of(l->json, "a"), N, "every process used the one file: %s", l->json);
    cr_assert_eq(count_files(dir, "breakers"), 1, "temporary files left behind");
    struct stat st;
    cr_assert_eq(stat(path, &st), 0);
    cr_assert_eq(st.st_mode & 0777, 0600);
    cr_assert_eq(st.st_size, FILE_SIZE);
}

/* What a creation killed between ftruncate and the header write left (the old way of making
 * the file), or an empty file: both are made again, and the store works. */
Test(breaker_store_file, an_empty_or_unfinished_file_is_made_again)
{
    report *r = shared_reports(3);
    int fd = open(path, O_RDWR | O_CREAT, 0600);
    cr_assert_geq(fd, 0);
    close(fd);
    in_child(child_use, &r[0], NULL);
    cr_assert_eq(r[0].open_rc, 0, "an empty file: %s", r[0].text);
    cr_assert_eq(r[0].rc, 0);

    cr_assert_eq(unlink(path), 0);
    fd = open(path, O_RDWR | O_CREAT, 0600);
    cr_assert_eq(ftruncate(fd, FILE_SIZE), 0);
    close(fd);
    in_child(child_use, &r[1], NULL);
    cr_assert_eq(r[1].open_rc, 0, "an all-zero file: %s", r[1].text);
    cr_assert_eq(r[1].rc, 0);
    cr_assert_eq(r[1].rc2, 0);
    cr_assert_eq(calls_of(r[1].json, "a"), 1, "%s", r[1].json);
    cr_assert_eq(file_version(path), 3);

    /* made again under the same name, not written into: a later process sees the breakers */
    in_child(child_list, &r[2], NULL);
    cr_assert_eq(calls_of(r[2].json, "b"), 1, "%s", r[2].json);
    cr_assert_eq(count_files(dir, "breakers"), 1);
}

Test(breaker_store_file, a_file_of_the_older_version_is_replaced)
{
    report *r = shared_reports(1);
    int fd = open(path, O_RDWR | O_CREAT, 0600);
    cr_assert_eq(ftruncate(fd, FILE_SIZE), 0);
    uint64_t magic = 0x3153524b42584243ULL;
    uint32_t head[4] = {1, FILE_HEADER, FILE_RECORD, 512}; /* version 1, sizes, capacity */
    cr_assert_eq(pwrite(fd, &magic, 8, 0), 8);
    cr_assert_eq(pwrite(fd, head, sizeof head, 8), (ssize_t)sizeof head);
    close(fd);
    in_child(child_use, r, NULL);
    cr_assert_eq(r->open_rc, 0, "%s", r->text);
    cr_assert_eq(r->rc, 0);
    cr_assert_eq(file_version(path), 3);
}

/* ---- what the state directory may hold --------------------------------------------------- */

Test(breaker_store_file, a_symbolic_link_is_refused_and_its_target_left_alone)
{
    char victim[320], dangling[320];
    snprintf(victim, sizeof victim, "%s/victim", dir);
    snprintf(dangling, sizeof dangling, "%s/not-there", dir);
    FILE *f = fopen(victim, "w");
    fputs("precious", f);
    fclose(f);
    cr_assert_eq(symlink(victim, path), 0);
    cbx_breaker_store *s = NULL;
    cbx_err err = {0};
    cr_assert_eq(cbx_breaker_store_host_new(&s, path, &err), -ELOOP, "%s", err.msg);
    cr_assert_null(s);
    cr_assert(strstr(err.msg, path) && strstr(err.msg, "symbolic link"), "%s", err.msg);
    struct stat st;
    cr_assert_eq(stat(victim, &st), 0);
    cr_assert_eq(st.st_size, 8, "the link's target was written to");

    /* a link to nowhere: nothing is made where it points */
    cr_assert_eq(unlink(path), 0);
    cr_assert_eq(symlink(dangling, path), 0);
    cr_assert_eq(cbx_breaker_store_host_new(&s, path, &err), -ELOOP, "%s", err.msg);
    cr_assert_neq(stat(dangling, &st), 0, "a file was made where the link points");
}

Test(breaker_store_file, a_file_of_another_user_is_refused)
{
    if (geteuid() != 0) {
        cr_skip_test("needs root to give the file to another user");
        return;
    }
    report *r = shared_reports(1);
    in_child(child_a, r, NULL);
    cr_assert_eq(chown(path, 65534, 65534), 0);
    cbx_breaker_store *s = NULL;
    cbx_err err = {0};
    cr_assert_eq(cbx_breaker_store_host_new(&s, path, &err), -EPERM, "%s", err.msg);
    cr_assert(strstr(err.msg, "owned by uid 65534"), "%s", err.msg);
}

/* A state directory others can write is refused by the library (breaker store, journal). */
Test(breaker_store_file, a_state_directory_others_can_write_is_refused)
{
    char sd[320], buf[512];
    snprintf(sd, sizeof sd, "%s/state", dir);
    cr_assert_eq(mkdir(sd, 0700), 0);
    setenv("CBX_STATE_DIR", sd, 1);
    cbx_breaker_store *s = NULL;
    cbx_err err = {0};
    cr_assert_eq(cbx_breaker_store_host_new(&s, NULL, &err), 0, "%s", err.msg);
    cbx_breaker_store_free(s);
    s = NULL;

    struct {
        mode_t mode;
        const char *says;
    } bad[] = {{01777, "can be written by anyone"}, {0770, "can be written by its group"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cr_assert_eq(chmod(sd, bad[i].mode), 0);
        err = (cbx_err){0};
        cr_assert_eq(cbx_breaker_store_host_new(&s, NULL, &err), -EPERM, "mode %o: %s",
                     (unsigned)bad[i].mode, err.msg);
        cr_assert_null(s);
        cr_assert(strstr(err.msg, bad[i].says) && strstr(err.msg, sd), "%s", err.msg);
        cr_assert_eq(cbx_state_dir(buf, sizeof buf), -EPERM);
        cbx_journal *j = NULL;
        cr_assert_neq(cbx_journal_open(&j, NULL, NULL), 0, "the journal took mode %o",
                      (unsigned)bad[i].mode);
    }
    cr_assert_eq(chmod(sd, 0755), 0);
    cr_assert_eq(cbx_state_dir(buf, sizeof buf), 0);
    if (geteuid() == 0) {
        cr_assert_eq(chown(sd, 65534, 65534), 0);
        err = (cbx_err){0};
        cr_assert_eq(cbx_state_dir_check(sd, &err), -EPERM);
        cr_assert(strstr(err.msg, "owned by uid 65534"), "%s", err.msg);
    }
}

/* ---- a full file system -------------------------------------------------------------------- */

/* A 1 MiB tmpfs at mnt, with path inside it; false (the test skips) where mounting fails. */
static int mount_small(void)
{
    snprintf(mnt, sizeof mnt, "%s/fs", dir);
    cr_assert_eq(mkdir(mnt, 0700), 0);
    if (mount("tmpfs", mnt, "tmpfs", 0, "size=1M,mode=0700") != 0) {
        cr_log_warn("cannot mount a tmpfs at %s (%s): needs root", mnt, strerror(errno));
        return 0;
    }
    mounted = 1;
    snprintf(path, sizeof path, "%s/breakers", mnt);
    return 1;
}

/* Fill the file system at mnt to the last byte with mnt/fill. */
static void fill_up(void)
{
    char p[340];
    snprintf(p, sizeof p, "%s/fill", mnt);
    int fd = open(p, O_WRONLY | O_CREAT | O_APPEND, 0600);
    cr_assert_geq(fd, 0);
    static const char block[4096];
    while (write(fd, block, sizeof block) > 0) {
    }
    cr_assert_eq(errno, ENOSPC);
    while (write(fd, block, 1) > 0) {
    }
    close(fd);
}

static void free_up(void)
{
    char p[340];
    snprintf(p, sizeof p, "%s/fill", mnt);
    cr_assert_eq(unlink(p), 0);
}

/* The store on a file system smaller than its 16 MiB file: list (which once touched every
 * record) and use work; on a full one a new name is a clean -ENOSPC while the breakers already
 * there go on working; a file that cannot be made leaves nothing behind, and once there is
 * room again it is made. */
Test(breaker_store_file, a_full_file_system_is_enospc_never_sigbus)
{
    if (!mount_small()) {
        cr_skip_test("cannot mount a tmpfs here (not root?): the full-disk test did not run");
        return;
    }
    report *r = shared_reports(6);
    in_child(child_list, &r[0], NULL);
    cr_assert_eq(r[0].open_rc, 0, "%s", r[0].text);
    cr_assert_eq(r[0].rc, 0);
    cr_assert_str_eq(r[0].json, "[]");
    in_child(child_a, &r[1], NULL);
    cr_assert_eq(r[1].rc, 0);

    fill_up();
    in_child(child_use, &r[2], NULL);
    cr_assert_eq(r[2].open_rc, 0, "%s", r[2].text);
    cr_assert_eq(r[2].rc, 0, "a breaker already in the file: %s", cbx_strerror(r[2].rc));
    cr_assert_eq(r[2].rc2, -ENOSPC, "a new name: %s", cbx_strerror(r[2].rc2));
    cr_assert(strstr(r[2].text, "no space left") && strstr(r[2].text, "'b'"), "%s", r[2].text);
    cr_assert_eq(r[2].rc3, 0);
    cr_assert_eq(calls_of(r[2].json, "a"), 2, "%s", r[2].json);
    cr_assert_eq(calls_of(r[2].json, "b"), -1, "%s", r[2].json);

    /* no file yet, no room to make one */
    cr_assert_eq(unlink(path), 0);
    fill_up();
    in_child(child_a, &r[3], NULL);
    cr_assert_eq(r[3].open_rc, -ENOSPC, "%s", r[3].text);
    cr_assert(strstr(r[3].text, path) && strstr(r[3].text, "no space left"), "%s", r[3].text);
    cr_assert_eq(count_files(mnt, "breakers"), 0, "a file was left behind");

    free_up();
    in_child(child_use, &r[4], NULL);
    cr_assert_eq(r[4].open_rc, 0, "%s", r[4].text);
    cr_assert_eq(r[4].rc, 0);
    cr_assert_eq(r[4].rc2, 0, "%s", r[4].text);
}

/* ---- locks held elsewhere ------------------------------------------------------------------ */

/* Hold a write lock on every record (not the table) from a child until it is killed. */
static pid_t hold_records(void)
{
    int ready[2];
    cr_assert_eq(pipe(ready), 0);
    fflush(NULL);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        int fd = open(path, O_RDWR);
        struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = FILE_HEADER};
        char c = fd >= 0 && fcntl(fd, F_OFD_SETLKW, &fl) == 0 ? 'y' : 'n';
        if (write(ready[1], &c, 1) != 1)
            _exit(1);
        pause();
        _exit(0);
    }
    char c = 0;
    cr_assert_eq(read(ready[0], &c, 1), 1);
    cr_assert_eq(c, 'y', "the child could not lock the records");
    close(ready[0]);
    close(ready[1]);
    return pid;
}

Test(breaker_store_file, a_record_locked_elsewhere_is_waited_for_only_until_the_deadline)
{
    cbx_breaker_store *s = NULL;
    cr_assert_eq(cbx_breaker_store_host_new(&s, path, NULL), 0);
    cbx_permit p = cbx_breaker_store_acquire(s, "w", NULL, NULL);
    cr_assert_eq(p.rc, 0);
    cbx_breaker_store_record(s, "w", p, CBX_OUTCOME_SUCCESS, (int64_t)MS);
    pid_t holder = hold_records();

    /* only try */
    cbx_breaker_rejection why;
    p = cbx_breaker_store_acquire_by(s, "w", NULL, &why, 0);
    cr_assert_eq(p.rc, -EAGAIN);
    /* wait 200 ms: not less, and nowhere near forever */
    uint64_t t0 = cbx_clock_now_ns(NULL);
    p = cbx_breaker_store_acquire_by(s, "w", NULL, &why, t0 + 200 * MS);
    uint64_t waited = cbx_clock_now_ns(NULL) - t0;
    cr_assert_eq(p.rc, -EAGAIN);
    cr_assert_geq(waited, 200 * MS);
    cr_assert_lt(waited, 60 * S);
    char line[512];
    cbx_breaker_store_explain(s, "w", &why, line, sizeof line);
    cr_assert(strstr(line, "locked by another process"), "%s", line);

    /* once the holder is gone the same call goes through */
    kill(holder, SIGKILL);
    cr_assert_eq(waitpid(holder, NULL, 0), holder);
    p = cbx_breaker_store_acquire_by(s, "w", NULL, &why, cbx_clock_now_ns(NULL) + 60 * S);
    cr_assert_eq(p.rc, 0, "%s", cbx_strerror(p.rc));
    cbx_breaker_store_record(s, "w", p, CBX_OUTCOME_SUCCESS, (int64_t)MS);
    cbx_breaker_store_free(s);
}

static void child_show_d(report *r, void *arg)
{
    (void)arg;
    cbx_breaker_store *s = open_at(r, path);
    if (!s)
        return;
    json_t *o = NULL;
    r->rc = cbx_breaker_store_show(s, "d", &o, NULL);
    if (r->rc == 0) {
        r->rc2 = (int)json_integer_value(json_object_get(o, "failures"));
        json_decref(o);
    }
    cbx_breaker_store_free(s);
}

/* An outcome whose record stays locked past the deadline is not lost: the handle records it at
 * its next operation on the name, or when it is freed. */
Test(breaker_store_file, an_outcome_whose_record_is_locked_is_recorded_later)
{
    cbx_breaker_store *s = NULL;
    cr_assert_eq(cbx_breaker_store_host_new(&s, path, NULL), 0);
    cbx_permit p = cbx_breaker_store_acquire(s, "d", NULL, NULL);
    cr_assert_eq(p.rc, 0);
    pid_t holder = hold_records();
    uint64_t t0 = cbx_clock_now_ns(NULL);
    cbx_breaker_store_record_by(s, "d", p, CBX_OUTCOME_ERROR, (int64_t)MS, t0 + 100 * MS);
    uint64_t waited = cbx_clock_now_ns(NULL) - t0;
    cr_assert_geq(waited, 100 * MS);
    cr_assert_lt(waited, 60 * S, "record waited %llu ms", (unsigned long long)(waited / MS));
    kill(holder, SIGKILL);
    cr_assert_eq(waitpid(holder, NULL, 0), holder);

    /* the next operation of this handle on d records it first */
    json_t *o = NULL;
    cr_assert_eq(cbx_breaker_store_show(s, "d", &o, NULL), 0);
    cr_assert_eq(json_integer_value(json_object_get(o, "failures")), 1);
    json_decref(o);
    report *r = shared_reports(2);
    in_child(child_show_d, &r[0], NULL);
    cr_assert_eq(r[0].rc, 0, "%s", r[0].text);
    cr_assert_eq(r[0].rc2, 1, "another process sees the outcome");

    /* freeing the handle records what is still pending */
    p = cbx_breaker_store_acquire(s, "d", NULL, NULL);
    cr_assert_eq(p.rc, 0);
    holder = hold_records();
    cbx_breaker_store_record_by(s, "d", p, CBX_OUTCOME_ERROR, (int64_t)MS, 0);
    kill(holder, SIGKILL);
    cr_assert_eq(waitpid(holder, NULL, 0), holder);
    cbx_breaker_store_free(s);
    in_child(child_show_d, &r[1], NULL);
    cr_assert_eq(r[1].rc, 0, "%s", r[1].text);
    cr_assert_eq(r[1].rc2, 2, "the outcome pending at free was recorded");
}
