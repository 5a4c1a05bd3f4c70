/* The server's JSON writer against jansson's json_dumps(JSON_COMPACT | JSON_ENCODE_ANY): the
 * same text, byte for byte, for the values responses hold; but for reals, which it writes with
 * the fewest digits that read back (2.571, not 2.5710000000000002): the same value then, read
 * back, in no more bytes. */
#include "server/json_write.c"

#include <criterion/criterion.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

static int has_real(const json_t *v)
{
    json_t *m = (json_t *)(uintptr_t)v;
    if (json_is_real(v))
        return 1;
    size_t i;
    const char *k;
    json_t *x;
    if (json_is_array(v))
        json_array_foreach(m, i, x) if (has_real(x)) return 1;
    if (json_is_object(v))
        json_object_foreach(m, k, x) if (has_real(x)) return 1;
    return 0;
}

static void same(json_t *v)
{
    char *want = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    cr_assert_not_null(want);
    char buf[65536];
    size_t n = srv_json_write(v, buf, sizeof buf);
    cr_assert_gt(n, 0, "%s", want);
    if (!has_real(v)) {
        cr_assert_eq(n, strlen(want), "length %zu, jansson %zu: %s", n, strlen(want), want);
        cr_assert(memcmp(buf, want, n) == 0, "got %.*s\nwant %s", (int)n, buf, want);
    } else {
        cr_assert_leq(n, strlen(want), "got %.*s, longer than %s", (int)n, buf, want);
        json_t *back = json_loadb(buf, n, JSON_DECODE_ANY, NULL);
        cr_assert(back && json_equal(back, v), "got %.*s, jansson %s", (int)n, buf, want);
        json_decref(back);
    }
    free(want);
    json_decref(v);
}

Test(serve_json_write, a_result_as_jansson_writes_it)
{
    same(json_pack("{s:s,s:s,s:i,s:s,s:b,s:{},s:{s:s,s:i,s:f},s:[{s:i,s:f}],s:I,s:f,s:f,s:n}", "id",
                   "01a24e90-329d", "status", "success", "rc", 0, "error", "", "fallback_used", 0,
                   "outputs", "metadata", "decision", "success", "delay_ms", 0, "quality", 1.0,
                   "attempts", "number", 1, "duration_ms", 0.071015999999999996, "submitted_ms",
                   (json_int_t)1796614402717, "queued_ms", 0.0, "duration_ms", 12.5, "x"));
}

Test(serve_json_write, strings_escaped_as_jansson_does)
{
    same(json_string("quote \" backslash \\ slash / tab \t nl \n cr \r bs \b ff \f"));
    same(json_string("\x01\x1f\x7f del, and UTF-8: \xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80"));
    same(json_stringn("nul \0 inside", 12));
    same(json_pack("{s:s}", "key \"quoted\"\n", "v"));
}

Test(serve_json_write, numbers_as_jansson_writes_them_reals_shorter)
{
    const double reals[] = {0.0,
                            -0.0,
                            1.0,
                            -1.0,
                            0.5,
                            1e-4,
                            9.999e-5,
                            1e15,
                            1.5e15,
                            1e300,
                            -1e-300,
                            123456789.125,
                            3.14159,
                            1e22,
                            2.5e-10,
                            4.9e-324,
                            1.7976931348623157e308};
    for (size_t i = 0; i < sizeof reals / sizeof *reals; i++)
        same(json_real(reals[i]));
    srand(13);
    for (int i = 0; i < 20000; i++) {
        double m = (double)rand() / RAND_MAX - 0.5;
        same(json_real(m * pow(10, rand() % 40 - 20)));
    }
    char buf[64];
    cr_assert_eq(srv_json_write(json_real(2.5710000000000002), buf, sizeof buf), 5);
    cr_assert(memcmp(buf, "2.571", 5) == 0);
    const json_int_t ints[] = {0, 1, -1, 9, 10, -10, 1796614402717, INT64_MAX, INT64_MIN};
    for (size_t i = 0; i < sizeof ints / sizeof *ints; i++)
        same(json_integer(ints[i]));
    same(json_true());
    same(json_false());
    same(json_null());
}

Test(serve_json_write, containers_and_order)
{
    same(json_object());
    same(json_array());
    same(json_loads("[[],{},[[1,2],[3.5]],{\"a\":{\"b\":[]}}]", 0, NULL));
    json_t *o = json_object();
    for (int i = 0; i < 100; i++) {
        char k[16];
        snprintf(k, sizeof k, "k%d", 99 - i);
        json_object_set_new(o, k, json_integer(i));
    }
    same(o);
}

Test(serve_json_write, too_small_or_too_deep_says_zero)
{
    json_t *v = json_pack("{s:s}", "a", "0123456789");
    char buf[64];
    cr_assert_eq(srv_json_write(v, buf, 10), 0);
    cr_assert_eq(srv_json_write(v, buf, sizeof buf), strlen("{\"a\":\"0123456789\"}"));
    cr_assert_eq(srv_json_write(NULL, buf, sizeof buf), 0);
    json_decref(v);
    json_t *deep = json_array();
    for (int i = 0; i < 100; i++) {
        json_t *up = json_array();
        json_array_append_new(up, deep);
        deep = up;
    }
    char big[1024];
    cr_assert_eq(srv_json_write(deep, big, sizeof big), 0);
    json_decref(deep);
}
