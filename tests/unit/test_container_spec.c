/* The container executor's pure parts: command words, sizes, volume checks, the create body,
 * owner labels and the multiplexed log stream. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "executors/container/container.h"

static json_t *words(const char *s)
{
    cbx_err e;
    cbx_err_clear(&e);
    return cbx__ctr_split_words(s, &e);
}

static void expect_words(const char *s, const char *want_json)
{
    json_t *w = words(s);
    cr_assert_not_null(w, "split failed: %s", s);
    json_t *want = json_loads(want_json, 0, NULL);
    char *got = json_dumps(w, JSON_COMPACT);
    cr_assert(json_equal(w, want), "%s: got %s, want %s", s, got, want_json);
    free(got);
    json_decref(w);
    json_decref(want);
}

Test(container_words, split_as_a_shell)
{
    expect_words("nginx -g \"daemon off;\"", "[\"nginx\",\"-g\",\"daemon off;\"]");
    expect_words("  a\tb\n c  ", "[\"a\",\"b\",\"c\"]");
    expect_words("'it''s' \"a \\\"q\\\" \\$x \\n\"", "[\"its\",\"a \\\"q\\\" $x \\\\n\"]");
    expect_words("a\\ b c\\\\d", "[\"a b\",\"c\\\\d\"]");
    expect_words("x'' \"\"", "[\"x\",\"\"]");
    expect_words("", "[]");
}

Test(container_words, unterminated_quotes)
{
    cbx_err e;
    cbx_err_clear(&e);
    cr_assert_null(cbx__ctr_split_words("echo 'open", &e));
    cr_assert_str_eq(e.msg, "command: unterminated single quote");
    cr_assert_null(cbx__ctr_split_words("echo \"open", &e));
    cr_assert_str_eq(e.msg, "command: unterminated double quote");
}

Test(container_spec, sizes)
{
    int64_t b = 0;
    json_t *v = json_string("256m");
    cr_assert_eq(cbx__ctr_parse_bytes(v, &b), 0);
    cr_assert_eq(b, 256LL << 20);
    json_decref(v);
    v = json_string("1.5GiB");
    cr_assert_eq(cbx__ctr_parse_bytes(v, &b), 0);
    cr_assert_eq(b, 3LL << 29);
    json_decref(v);
    v = json_integer(4096);
    cr_assert_eq(cbx__ctr_parse_bytes(v, &b), 0);
    cr_assert_eq(b, 4096);
    json_decref(v);
    const char *bad[] = {"lots", "-1m", "12q", "0"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        v = json_string(bad[i]);
        cr_assert_eq(cbx__ctr_parse_bytes(v, &b), -1, "%s accepted", bad[i]);
        json_decref(v);
    }
}

Test(container_spec, volumes_checked_with_their_place)
{
    json_t *p = json_pack("{s:s, s:[s,s,s,s,s]}", "image", "x", "volumes", "/tmp:/a:ro", "data:/b",
                          "/tmp", "rel:/c:rx", "/nonexistent-cbx:/d");
    cbx_err e;
    cbx_err_clear(&e);
    cr_assert_eq(cbx__ctr_spec_validate(p, &e), CBX_EINVAL_CONFIG);
    cr_assert_str_eq(e.where, "volumes[2]");
    cr_assert(strstr(e.msg, "volumes[2]: '/tmp' is not host:container[:ro]"), "%s", e.msg);
    cr_assert(strstr(e.msg, "volumes[3]: 'rel:/c:rx': the option must be ro or rw"), "%s", e.msg);
    cr_assert(strstr(e.msg, "volumes[4]: host path /nonexistent-cbx: No such file"), "%s", e.msg);
    cr_assert_null(strstr(e.msg, "volumes[0]"), "%s", e.msg);
    cr_assert_null(strstr(e.msg, "volumes[1]"), "%s", e.msg);
    json_decref(p);
}

Test(container_spec, create_body)
{
    json_t *p = json_pack("{s:s, s:s, s:{s:s, s:i, s:f}, s:[s], s:s, s:f, s:i, s:b, s:{s:s}}",
                          "image", "img:1", "command", "sh -c 'exit 3'", "environment", "A", "x",
                          "N", 7, "R", 0.1, "volumes", "/tmp:/t:ro", "memory", "16m", "cpus", 1.5,
                          "pids_limit", 64, "remove", 0, "labels", "team", "data");
    cbx_err e;
    cbx_err_clear(&e);
    json_t *b = cbx__ctr_spec_build(p, "exec-1", &e);
    cr_assert_not_null(b, "%s", e.msg);
    json_t *want = json_loads(
        "{\"Image\":\"img:1\",\"Cmd\":[\"sh\",\"-c\",\"exit "
        "3\"],\"Env\":[\"A=x\",\"N=7\",\"R=0.1\"],"
        "\"NetworkDisabled\":true,"
        "\"HostConfig\":{\"NetworkMode\":\"none\",\"Binds\":[\"/tmp:/t:ro\"],"
        "\"Memory\":16777216,\"MemorySwap\":16777216,\"NanoCpus\":1500000000,\"PidsLimit\":64}}",
        0, NULL);
    const char *key;
    json_t *v;
    json_object_foreach(want, key, v)
    {
        char *got = json_dumps(json_object_get(b, key), JSON_COMPACT | JSON_ENCODE_ANY);
        cr_assert(json_equal(json_object_get(b, key), v), "%s: %s", key, got);
        free(got);
    }
    json_t *labels = json_object_get(b, "Labels");
    cr_assert_str_eq(json_string_value(json_object_get(labels, "team")), "data");
    cr_assert_str_eq(json_string_value(json_object_get(labels, "io.cbx.remove")), "0");
    cr_assert_str_eq(json_string_value(json_object_get(labels, "io.cbx.execution")), "exec-1");
    cr_assert_str_eq(json_string_value(json_object_get(labels, "io.cbx.owner")),
                     cbx__ctr_owner_label());
    json_decref(want);
    json_decref(b);
    json_decref(p);
}

Test(container_owner, a_living_owner_is_not_gone)
{
    const char *me = cbx__ctr_owner_label();
    cr_assert_eq(cbx__ctr_owner_gone(me), 0, "%s", me);
    /* the same pid with another start time: a reused pid, so the owner is gone */
    char other[160];
    snprintf(other, sizeof other, "%s9", me);
    cr_assert_eq(cbx__ctr_owner_gone(other), 1, "%s", other);
    /* another boot: not ours to judge */
    cr_assert_eq(cbx__ctr_owner_gone("not-this-boot/1/1"), 0);
    cr_assert_eq(cbx__ctr_owner_gone(NULL), 0);
}

Test(container_logs, frames_split_anywhere)
{
    static const unsigned char stream[] = {1,    0, 0, 0, 0, 0, 0, 3, 'h', 'i', '\n',
                                           2,    0, 0, 0, 0, 0, 0, 4, 'e', 'r', 'r',
                                           '\n', 1, 0, 0, 0, 0, 0, 0, 2,   'o', 'k'};
    for (size_t chunk = 1; chunk <= sizeof stream; chunk++) {
        cbx__ctr_logs l;
        memset(&l, 0, sizeof l);
        l.out.max = l.err.max = 100;
        for (size_t i = 0; i < sizeof stream; i += chunk) {
            size_t n = sizeof stream - i < chunk ? sizeof stream - i : chunk;
            cbx__ctr_logs_feed(&l, (const char *)stream + i, n);
        }
        cr_assert_eq(l.out.len, 5, "chunk %zu", chunk);
        cr_assert(memcmp(l.out.data, "hi\nok", 5) == 0, "chunk %zu", chunk);
        cr_assert_eq(l.err.len, 4, "chunk %zu", chunk);
        cr_assert(memcmp(l.err.data, "err\n", 4) == 0, "chunk %zu", chunk);
        cbx__capture_free(&l.out);
        cbx__capture_free(&l.err);
    }
}

Test(container_logs, a_raw_stream_is_stdout)
{
    cbx__ctr_logs l;
    memset(&l, 0, sizeof l);
    l.out.max = l.err.max = 100;
    cbx__ctr_logs_feed(&l, "plain text\n", 11);
    cr_assert_eq(l.out.len, 11);
    cr_assert_eq(l.err.len, 0);
    cbx__capture_free(&l.out);
}

/* The start time in the label is field 22 of /proc/self/stat, read here another way. */
Test(container_owner, the_label_holds_the_start_time)
{
    FILE *f = fopen("/proc/self/stat", "r");
    cr_assert_not_null(f);
    char buf[1024];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *p = strrchr(buf, ')') + 2; /* field 3 */
    unsigned long long v = 0;
    for (int field = 3; field <= 22; field++) {
        v = strtoull(p, &p, 10);
        if (field == 3)
            p++; /* the state is a letter: strtoull read nothing */
        while (*p == ' ')
            p++;
    }
    char want[64];
    snprintf(want, sizeof want, "/%ld/%llu", (long)getpid(), v);
    const char *me = cbx__ctr_owner_label();
    size_t ml = strlen(me), wl = strlen(want);
    cr_assert(ml > wl && strcmp(me + ml - wl, want) == 0, "label %s, want ...%s", me, want);
    /* the label stays the owner's as its memory and CPU time change */
    char *big = malloc(64 << 20);
    memset(big, 1, 64 << 20);
    cr_assert_eq(cbx__ctr_owner_gone(me), 0);
    free(big);
}
