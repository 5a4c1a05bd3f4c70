/* YAML to JSON with positions. */
#include "cbx/yaml.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

static cbx_yaml_doc load(const char *text)
{
    cbx_yaml_doc d;
    cbx_err err;
    int r = cbx_yaml_load_string(text, strlen(text), "t.yaml", &d, &err);
    cr_assert_eq(r, 0, "%s:%d:%d: %s", err.where, err.line, err.col, err.msg);
    return d;
}

Test(yaml, scalars_follow_the_core_schema)
{
    cbx_yaml_doc d = load("a: 1\nb: -2.5\nc: true\nd: ~\ne: hello\nf: \"42\"\ng: 0x1f\nh: '7'\n"
                          "i: ''\nj: False\nk: 1e3\nl: .inf\n");
    json_t *r = d.root;
    cr_assert(json_is_integer(json_object_get(r, "a")));
    cr_assert_float_eq(json_real_value(json_object_get(r, "b")), -2.5, 1e-12);
    cr_assert(json_is_true(json_object_get(r, "c")));
    cr_assert(json_is_null(json_object_get(r, "d")));
    cr_assert_str_eq(json_string_value(json_object_get(r, "e")), "hello");
    cr_assert_str_eq(json_string_value(json_object_get(r, "f")), "42");
    cr_assert_eq(json_integer_value(json_object_get(r, "g")), 31);
    cr_assert_str_eq(json_string_value(json_object_get(r, "h")), "7");
    cr_assert_str_eq(json_string_value(json_object_get(r, "i")), "");
    cr_assert(json_is_false(json_object_get(r, "j")));
    cr_assert_float_eq(json_real_value(json_object_get(r, "k")), 1000.0, 1e-9);
    cr_assert(json_is_string(json_object_get(r, "l")));
    cbx_yaml_doc_clear(&d);
}

Test(yaml, positions_by_path)
{
    cbx_yaml_doc d = load("name: x\nsteps:\n  - name: fetch\n    config:\n      url: http://h\n"
                          "  - name: two\n");
    int line, col;
    cr_assert_eq(cbx_yaml_where(&d, "steps[0].config.url", &line, &col), 0);
    cr_assert_eq(line, 5);
    cr_assert_eq(col, 7);
    cr_assert_eq(cbx_yaml_where(&d, "steps[1].name", &line, &col), 0);
    cr_assert_eq(line, 6);
    /* an unknown child falls back to its nearest known ancestor */
    cr_assert_eq(cbx_yaml_where(&d, "steps[0].config.nope", &line, &col), 0);
    cr_assert_eq(line, 4);
    cbx_yaml_doc_clear(&d);
}

Test(yaml, json_is_yaml_too)
{
    cbx_yaml_doc d = load("{\"a\": [1, {\"b\": null}], \"c\": \"d\"}");
    cr_assert(json_is_null(json_object_get(json_array_get(json_object_get(d.root, "a"), 1), "b")));
    cbx_yaml_doc_clear(&d);
}

Test(yaml, errors_have_file_line_and_column)
{
    cbx_yaml_doc d;
    cbx_err err;
    const char *bad = "a: 1\nb: [1, 2\nc: 3\n";
    cr_assert_eq(cbx_yaml_load_string(bad, strlen(bad), "f.yaml", &d, &err), CBX_EPARSE);
    cr_assert_str_eq(err.where, "f.yaml");
    cr_assert_gt(err.line, 1);
    cr_assert_null(d.root);
    const char *dup = "a: 1\nb: 2\na: 3\n";
    cr_assert_eq(cbx_yaml_load_string(dup, strlen(dup), "f.yaml", &d, &err), CBX_EPARSE);
    cr_assert_eq(err.line, 3);
    cr_assert_eq(err.col, 1);
    cr_assert(strstr(err.msg, "duplicate key 'a'"), "%s", err.msg);
    cr_assert_eq(cbx_yaml_load_file("/nonexistent/x.yaml", &d, &err), -ENOENT);
    cr_assert_str_eq(err.where, "/nonexistent/x.yaml");
}

Test(yaml, alias_bombs_are_refused)
{
    /* each level multiplies by 9: 9^7 > 4 million nodes */
    const char *bomb = "a: &a [x,x,x,x,x,x,x,x,x]\n"
                       "b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\n"
                       "c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\n"
                       "d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\n"
                       "e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\n"
                       "f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\n"
                       "g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]\n";
    cbx_yaml_doc d;
    cbx_err err;
    cr_assert_eq(cbx_yaml_load_string(bomb, strlen(bomb), "bomb.yaml", &d, &err), CBX_EPARSE);
    cr_assert(strstr(err.msg, "aliases expand to more than 1000000 nodes"), "%s", err.msg);
}

/* An empty document has no positions: nothing to sort (qsort was given NULL: UBSan, found by
 * fuzz_flow_load and fuzz_policy on their first input). */
Test(yaml, empty_document)
{
    cbx_yaml_doc d = load("");
    int line, col;
    cr_assert_eq(cbx_yaml_where(&d, "a", &line, &col), -ENOENT);
    cr_assert_null(d.root);
    cbx_yaml_doc_clear(&d);
    cbx_yaml_doc_clear(NULL);
}

Test(yaml, a_second_document_is_refused_where_it_starts)
{
    const char *two = "a: 1\n---\nb: 2\n";
    cbx_yaml_doc d;
    cbx_err err;
    cr_assert_eq(cbx_yaml_load_string(two, strlen(two), "two.yaml", &d, &err), CBX_EPARSE);
    cr_assert_eq(err.line, 2, "%d: %s", err.line, err.msg);
    cr_assert(strstr(err.msg, "second document"), "%s", err.msg);
    cr_assert_null(d.root);
    /* one document, opened and closed explicitly, is fine */
    cbx_yaml_doc one = load("---\na: 1\n...\n");
    cr_assert_eq(json_integer_value(json_object_get(one.root, "a")), 1);
    cbx_yaml_doc_clear(&one);
}

Test(yaml, deep_nesting_stops_the_parse_at_the_limit)
{
    size_t n = 100000; /* 100k levels: refused at the 513th, not after parsing them all */
    char *text = malloc(n + 1);
    cr_assert_not_null(text);
    memset(text, '[', n);
    text[n] = '\0';
    cbx_yaml_doc d;
    cbx_err err;
    cr_assert_eq(cbx_yaml_load_string(text, n, "deep.yaml", &d, &err), CBX_EPARSE);
    cr_assert_eq(err.line, 1);
    cr_assert_eq(err.col, 513, "%d: %s", err.col, err.msg);
    cr_assert(strstr(err.msg, "deeper than 512"), "%s", err.msg);
    free(text);
    /* 512 levels load */
    char ok[1100];
    memset(ok, '[', 512);
    memset(ok + 512, ']', 512);
    ok[1024] = '\0';
    cr_assert_eq(cbx_yaml_load_string(ok, 1024, "deep.yaml", &d, &err), 0, "%s", err.msg);
    cbx_yaml_doc_clear(&d);
}

Test(yaml, input_is_bounded)
{
    cbx_yaml_doc d;
    cbx_err err;
    cbx_yaml_set_max_bytes(1 << 20);
    cr_assert_eq(cbx_yaml_max_bytes(), (size_t)1 << 20);
    /* /dev/zero stops at its first byte */
    cr_assert_eq(cbx_yaml_load_file("/dev/zero", &d, &err), CBX_EPARSE);
    cr_assert_str_eq(err.where, "/dev/zero");
    /* an endless stream of valid YAML is read up to the limit, and refused */
    int fds[2];
    cr_assert_eq(pipe(fds), 0);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        close(fds[0]);
        signal(SIGPIPE, SIG_DFL);
        while (write(fds[1], "- x\n- y\n", 8) == 8)
            ;
        _exit(0);
    }
    close(fds[1]);
    char dev[64];
    snprintf(dev, sizeof dev, "/dev/fd/%d", fds[0]);
    cr_assert_eq(cbx_yaml_load_file(dev, &d, &err), -EFBIG);
    cr_assert_str_eq(err.where, dev);
    cr_assert(strstr(err.msg, "1048576 bytes"), "%s", err.msg);
    close(fds[0]);
    waitpid(pid, NULL, 0);
    /* a regular file over the limit is refused without being read */
    char path[] = "/tmp/cbx-yaml-big.XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    cr_assert_eq(ftruncate(fd, (2 << 20)), 0);
    close(fd);
    cr_assert_eq(cbx_yaml_load_file(path, &d, &err), -EFBIG);
    cr_assert_eq(cbx_yaml_load_string("a: 1", (2 << 20), "s", &d, &err), -EFBIG);
    unlink(path);
    cbx_yaml_set_max_bytes(0);
    cr_assert_eq(cbx_yaml_max_bytes(), CBX_YAML_MAX_BYTES_DEFAULT);
}

/* An alias under a very long key, used many times: positions are kept per node, not per path,
 * and an alias shares its anchor's value, so memory does not follow the expanded size times the
 * key's length (this took 13 GB when each expanded node stored its full path). */
Test(yaml, aliases_under_a_long_key_cost_little)
{
    char key[10001];
    memset(key, 'k', 10000);
    key[10000] = '\0';
    size_t cap = 400000, n = 0;
    char *text = malloc(cap);
    cr_assert_not_null(text);
    n += (size_t)snprintf(text + n, cap - n, "a: &a [x,x,x,x,x,x,x,x,x,x]\nb: &b [");
    for (int i = 0; i < 1000; i++)
        n += (size_t)snprintf(text + n, cap - n, "%s*a", i ? "," : "");
    n += (size_t)snprintf(text + n, cap - n, "]\n? %s\n:\n", key); /* a long key is explicit */
    for (int i = 0; i < 80; i++) /* 11000 + 80 x 11001 nodes: under the limit of a million */
        n += (size_t)snprintf(text + n, cap - n, "  - *b\n");
    struct rusage before, after;
    getrusage(RUSAGE_SELF, &before);
    cbx_yaml_doc d;
    cbx_err err;
    cr_assert_eq(cbx_yaml_load_string(text, n, "long.yaml", &d, &err), 0, "%s", err.msg);
    getrusage(RUSAGE_SELF, &after);
    cr_assert_lt(after.ru_maxrss - before.ru_maxrss, 100 * 1024, "grew by %ld KB",
                 after.ru_maxrss - before.ru_maxrss);
    char path[10100];
    snprintf(path, sizeof path, "%s[79][999][9]", key);
    int line, col;
    cr_assert_eq(cbx_yaml_where(&d, path, &line, &col), 0);
    cr_assert_eq(line, 1); /* the anchor's item, where it was written */
    snprintf(path, sizeof path, "%s[79]", key);
    cr_assert_eq(cbx_yaml_where(&d, path, &line, &col), 0);
    cr_assert_eq(line, 84);
    cr_assert_eq(col, 5);
    cbx_yaml_doc_clear(&d);
    /* the 90th use passes it */
    for (int i = 0; i < 10; i++)
        n += (size_t)snprintf(text + n, cap - n, "  - *b\n");
    cr_assert_eq(cbx_yaml_load_string(text, n, "long.yaml", &d, &err), CBX_EPARSE);
    cr_assert_eq(err.line, 5 + 89, "%d: %s", err.line, err.msg);
    cr_assert(strstr(err.msg, "aliases expand to more than"), "%s", err.msg);
    free(text);
}

/* Out of memory is an error with its message, not uninitialised text. */
Test(yaml, out_of_memory_fills_the_error)
{
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
    cr_skip_test("an address-space limit does not mix with a sanitizer's shadow memory");
#else
    size_t n = 8 << 20;
    char *text = malloc(n + 1);
    cr_assert_not_null(text);
    text[0] = '[';
    for (size_t i = 1; i + 2 < n; i += 2)
        memcpy(text + i, "1,", 2);
    text[n - 1] = ']';
    text[n] = '\0';
    struct rlimit rl;
    getrlimit(RLIMIT_AS, &rl);
    /* what is mapped now, and 64 MB more: the 4 million integers need about 200 */
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long pages = 0;
    cr_assert_eq(fscanf(f, "%lu", &pages), 1);
    fclose(f);
    rl.rlim_cur = pages * (rlim_t)sysconf(_SC_PAGESIZE) + (64 << 20);
    cr_assert_eq(setrlimit(RLIMIT_AS, &rl), 0);
    cbx_yaml_doc d;
    cbx_err err;
    memset(&err, 'x', sizeof err);
    cr_assert_eq(cbx_yaml_load_string(text, n, "big.yaml", &d, &err), -ENOMEM);
    cr_assert_eq(err.code, -ENOMEM);
    cr_assert_str_eq(err.msg, "out of memory");
    cr_assert_str_eq(err.where, "big.yaml");
    cr_assert_null(d.root);
    free(text);
#endif
}

Test(yaml, repeated_short_strings_are_one_value_each_keeping_their_positions)
{
    cbx_yaml_doc d =
        load("steps:\n"
             "  - {name: a, executor: command, argv: [\"true\", a]}\n"
             "  - name: b\n"
             "    executor: 'command'\n"
             "    needs: [a]\n"
             "    long: xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\n"
             "    again: xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\n"
             "    n: 1\n");
    json_t *steps = json_object_get(d.root, "steps");
    json_t *s0 = json_array_get(steps, 0), *s1 = json_array_get(steps, 1);
    /* plain or quoted, the same text is the same value */
    json_t *ex0 = json_object_get(s0, "executor"), *ex1 = json_object_get(s1, "executor");
    cr_assert_str_eq(json_string_value(ex1), "command");
    cr_assert_eq(ex0, ex1);
    cr_assert_eq(json_object_get(s0, "name"), json_array_get(json_object_get(s0, "argv"), 1));
    cr_assert_eq(json_object_get(s0, "name"), json_array_get(json_object_get(s1, "needs"), 0));
    cr_assert_str_eq(json_string_value(json_array_get(json_object_get(s0, "argv"), 0)), "true");
    /* a long text is its own, equal all the same */
    json_t *l1 = json_object_get(s1, "long"), *l2 = json_object_get(s1, "again");
    cr_assert_neq(l1, l2);
    cr_assert(json_equal(l1, l2));
    /* numbers stay numbers */
    cr_assert(json_is_integer(json_object_get(s1, "n")));
    /* each place keeps its own position */
    int line, col;
    cr_assert_eq(cbx_yaml_where(&d, "steps[0].argv[1]", &line, &col), 0);
    cr_assert_eq(line, 2);
    cr_assert_eq(cbx_yaml_where(&d, "steps[1].needs[0]", &line, &col), 0);
    cr_assert_eq(line, 5);
    cr_assert_eq(cbx_yaml_where(&d, "steps[1].executor", &line, &col), 0);
    cr_assert_eq(line, 4);
    /* the tree owns the shared values: freeing it leaves nothing behind (ASan checks) */
    cbx_yaml_doc_clear(&d);
}
