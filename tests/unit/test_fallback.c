/* Fallbacks: static value, last-good-result cache, degraded function, and their order. */
#include "cbx/clock.h"
#include "cbx/err.h"
#include "cbx/fallback.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

static cbx_fallback *make(const cbx_fallback_opts *o)
{
    cbx_fallback *fb = NULL;
    cbx_err e;
    cbx_err_clear(&e);
    int r = cbx_fallback_new(&fb, o, &e);
    cr_assert_eq(r, 0, "cbx_fallback_new: %s (%s)", e.msg, e.where);
    cr_assert_not_null(fb);
    return fb;
}

/* A fallback with only a cache on clk. */
static cbx_fallback *make_cache(cbx_clock *clk, uint64_t ttl_ms, size_t max_entries)
{
    return make(&(cbx_fallback_opts){
        .cache = 1, .cache_ttl_ms = ttl_ms, .cache_max_entries = max_entries, .clock = clk});
}

static void remember_str(cbx_fallback *fb, const char *key, const char *text)
{
    json_t *v = json_string(text);
    cr_assert_eq(cbx_fallback_remember(fb, key, v), 0);
    json_decref(v);
}

/* Assert that get(key) answers text from the given source. */
static void expect_str(cbx_fallback *fb, const char *key, const char *text, int want_source)
{
    json_t *out = NULL;
    int source = -1;
    cbx_err e;
    cbx_err_clear(&e);
    int r = cbx_fallback_get(fb, key, NULL, &out, &source, &e);
    cr_assert_eq(r, 0, "get(%s): %s", key ? key : "NULL", e.msg);
    cr_assert_not_null(out);
    cr_assert(json_is_string(out));
    cr_assert_str_eq(json_string_value(out), text);
    cr_assert_eq(source, want_source, "source %s", cbx_fallback_source_name(source));
    json_decref(out);
}

/* Assert that get(key) finds nothing and returns want_rc. */
static void expect_none(cbx_fallback *fb, const char *key, int want_rc)
{
    json_t *out = (json_t *)0x1;
    int source = -1;
    int r = cbx_fallback_get(fb, key, NULL, &out, &source, NULL);
    cr_assert_eq(r, want_rc, "get(%s) = %s", key ? key : "NULL", cbx_err_name(r));
    cr_assert_null(out);
    cr_assert_eq(source, CBX_FALLBACK_NONE);
}

static cbx_fallback_stats stats(cbx_fallback *fb)
{
    cbx_fallback_stats st;
    memset(&st, 0xff, sizeof st);
    cbx_fallback_stats_get(fb, &st);
    return st;
}

/* --- static value ---------------------------------------------------------------------- */

Test(fallback_value, returns_independent_copies)
{
    json_t *v = json_pack("{s:s, s:[i,i]}", "body", "unavailable", "codes", 1, 2);
    cbx_fallback *fb = make(&(cbx_fallback_opts){.value = v});
    cr_assert_eq(v->refcount, 1, "the caller's reference stays the caller's");

    /* Changing the caller's value after creation does not reach the fallback. */
    json_object_set_new(v, "body", json_string("changed"));
    json_t *want = json_pack("{s:s, s:[i,i]}", "body", "unavailable", "codes", 1, 2);

    json_t *a = NULL, *b = NULL;
    int source = 0;
    cr_assert_eq(cbx_fallback_get(fb, "k", NULL, &a, &source, NULL), 0);
    cr_assert_eq(source, CBX_FALLBACK_VALUE);
    cr_assert(json_equal(a, want));
    cr_assert_neq(a, v);

    /* Mutating one answer changes neither the next answer nor the stored value. */
    json_object_set_new(a, "body", json_string("mine"));
    json_array_append_new(json_object_get(a, "codes"), json_integer(3));
    cr_assert_eq(cbx_fallback_get(fb, "k", NULL, &b, NULL, NULL), 0);
    cr_assert_neq(a, b);
    cr_assert(json_equal(b, want));

    json_decref(v); /* the fallback keeps working after the caller lets go */
    json_decref(b);
    b = NULL;
    cr_assert_eq(cbx_fallback_get(fb, NULL, NULL, &b, NULL, NULL), 0);
    cr_assert(json_equal(b, want));

    cr_assert_eq(stats(fb).value_hits, 3);
    json_decref(a);
    json_decref(b);
    json_decref(want);
    cbx_fallback_free(fb);
}

Test(fallback_value, json_null_is_an_answer)
{
    cbx_fallback *fb = make(&(cbx_fallback_opts){.value = json_null()});
    json_t *out = NULL;
    cr_assert_eq(cbx_fallback_get(fb, NULL, NULL, &out, NULL, NULL), 0);
    cr_assert(json_is_null(out));
    json_decref(out);
    cbx_fallback_free(fb);
}

/* --- cache ----------------------------------------------------------------------------- */

Test(fallback_cache, hit_within_ttl_miss_after)
{
    cbx_clock *clk = cbx_clock_virtual(5000);
    cbx_fallback *fb = make_cache(clk, 1000, 10);
    remember_str(fb, "q", "last good");

    cbx_clock_advance(clk, 999);
    expect_str(fb, "q", "last good", CBX_FALLBACK_CACHE);
    cbx_clock_advance(clk, 1); /* age == ttl: no longer younger than the TTL */
    expect_none(fb, "q", CBX_ENO_FALLBACK);

    cbx_fallback_stats st = stats(fb);
    cr_assert_eq(st.cache_hits, 1);
    cr_assert_eq(st.expirations, 1);
    cr_assert_eq(st.misses, 1);
    cr_assert_eq(st.entries, 0, "an expired entry met by a lookup is dropped");
    cr_assert_eq(st.stores, 1);

    expect_none(fb, "q", CBX_ENO_FALLBACK); /* now a plain miss */
    st = stats(fb);
    cr_assert_eq(st.cache_misses, 1);
    cr_assert_eq(st.expirations, 1);
    cbx_fallback_free(fb);
    cbx_clock_free(clk);
}

Test(fallback_cache, keys_are_isolated)
{
    cbx_clock *clk = cbx_clock_virtual(0);
    cbx_fallback *fb = make_cache(clk, 1000, 10);
    remember_str(fb, "alpha", "A");
    cbx_clock_advance(clk, 600);
    remember_str(fb, "beta", "B");
    remember_str(fb, "", "empty key is a key");

    expect_str(fb, "alpha", "A", CBX_FALLBACK_CACHE);
    expect_str(fb, "beta", "B", CBX_FALLBACK_CACHE);
    expect_str(fb, "", "empty key is a key", CBX_FALLBACK_CACHE);
    expect_none(fb, "alph", CBX_ENO_FALLBACK);
    expect_none(fb, "gamma", CBX_ENO_FALLBACK);

    cbx_clock_advance(clk, 400); /* alpha is 1000ms old, beta 400ms */
    expect_none(fb, "alpha", CBX_ENO_FALLBACK);
    expect_str(fb, "beta", "B", CBX_FALLBACK_CACHE);
    cr_assert_eq(stats(fb).cache_misses, 2);
    cbx_fallback_free(fb);
    cbx_clock_free(clk);
}

Test(fallback_cache, overwrite_keeps_newest_and_restamps)
{
    cbx_clock *clk = cbx_clock_virtual(0);
    cbx_fallback *fb = make_cache(clk, 1000, 10);
    remember_str(fb, "k", "old");
    cbx_clock_advance(clk, 800);
    remember_str(fb, "k", "new");
    cbx_clock_advance(clk, 800); /* 1600ms after the first store, 800ms after the second */
    expect_str(fb, "k", "new", CBX_FALLBACK_CACHE);
    cbx_fallback_stats st = stats(fb);
    cr_assert_eq(st.entries, 1);
    cr_assert_eq(st.stores, 2);
    cbx_fallback_free(fb);
    cbx_clock_free(clk);
}

Test(fallback_cache, remembered_value_is_a_deep_copy)
{
    cbx_clock *clk = cbx_clock_virtual(0);
    cbx_fallback *fb = make_cache(clk, 1000, 10);
    json_t *v = json_pack("{s:[s]}", "items", "one");
    cr_assert_eq(cbx_fallback_remember(fb, "k", v), 0);
    cr_assert_eq(v->refcount, 1);
    json_array_append_new(json_object_get(v, "items"), json_string("two"));

    json_t *out = NULL;
    cr_assert_eq(cbx_fallback_get(fb, "k", NULL, &out, NULL, NULL), 0);
    cr_assert_eq(json_array_size(json_object_get(out, "items")), 1);
    json_array_clear(json_object_get(out, "items"));
    json_decref(out);

    cr_assert_eq(cbx_fallback_get(fb, "k", NULL, &out, NULL, NULL), 0);
    cr_assert_eq(json_array_size(json_object_get(out, "items")), 1);
    json_decref(out);
    json_decref(v);
    cbx_fallback_free(fb);
    cbx_clock_free(clk);
}

Test(fallback_cache, eviction_keeps_the_bound)
{
    cbx_clock *clk = cbx_clock_virtual(0);
    cbx_fallback *fb = make_cache(clk, 60000, 3);
    char key[16], text[16];
    for (int i = 0; i < 10; i++) {
        snprintf(key, sizeof key, "k%d", i);
        snprintf(text, sizeof text, "v%d", i);
        remember_str(fb, key, text);
        cr_assert_leq(stats(fb).entries, 3);
    }
    cbx_fallback_stats st = stats(fb);
    cr_assert_eq(st.entries, 3);
    cr_assert_eq(st.evictions, 7);
    for (int i = 0; i < 7; i++) {
        snprintf(key, sizeof key, "k%d", i);
        expect_none(fb, key, CBX_ENO_FALLBACK);
    }
    expect_str(fb, "k7", "v7", CBX_FALLBACK_CACHE);
    expect_str(fb, "k9", "v9", CBX_FALLBACK_CACHE);
    cbx_fallback_free(fb);
    cbx_clock_free(clk);
}

Test(fallback_cache, eviction_is_least_recently_used)
{
    cbx_clock *clk = cbx_clock_virtual(0);
    cbx_fallback *fb = make_cache(clk, 60000, 3);
    remember_str(fb, "a", "A");
    remember_str(fb, "b", "B");
    remember_str(fb, "c", "C");
    expect_str(fb, "a", "A", CBX_FALLBACK_CACHE); /* a is now the most recently used */
    remember_str(fb, "d", "D");                   /* evicts b, the least recently used */
    expect_none(fb, "b", CBX_ENO_FALLBACK);
    expect_str(fb, "a", "A", CBX_FALLBACK_CACHE);
    expect_str(fb, "c", "C", CBX_FALLBACK_CACHE);
    expect_str(fb, "d", "D", CBX_FALLBACK_CACHE);
    remember_str(fb, "c", "C2"); /* overwriting refreshes too */
    remember_str(fb, "e", "E");  /* evicts a */
    expect_none(fb, "a", CBX_ENO_FALLBACK);
    expect_str(fb, "c", "C2", CBX_FALLBACK_CACHE);
    cr_assert_eq(stats(fb).evictions, 2);
    cbx_fallback_free(fb);
    cbx_clock_free(clk);
}

Test(fallback_cache, evicting_an_expired_entry_counts_as_expiration)
{
    cbx_clock *clk = cbx_clock_virtual(0);
    cbx_fallback *fb = make_cache(clk, 100, 1);
    remember_str(fb, "a", "A");
    cbx_clock_advance(clk, 100);
    remember_str(fb, "b", "B");
    cbx_fallback_stats st = stats(fb);
    cr_assert_eq(st.expirations, 1);
    cr_assert_eq(st.evictions, 0);
    cr_assert_eq(st.entries, 1);
    cbx_fallback_free(fb);
    cbx_clock_free(clk);
}

Test(fallback_cache, prepopulated_entries)
{
    /* The seed's add_to_cache: canned answers loaded at start-up. */
    cbx_clock *clk = cbx_clock_virtual(0);
    cbx_fallback *fb = make_cache(clk, 1000, 100);
    json_t *greet = json_string("Hello! Service is temporarily down.");
    json_t *oops = json_string("We're experiencing technical difficulties.");
    cr_assert_eq(cbx_fallback_remember_ttl(fb, "greeting", greet, CBX_FALLBACK_TTL_NEVER), 0);
    cr_assert_eq(cbx_fallback_remember(fb, "error", oops), 0);
    json_decref(greet);
    json_decref(oops);

    expect_str(fb, "greeting", "Hello! Service is temporarily down.", CBX_FALLBACK_CACHE);
    expect_str(fb, "error", "We're experiencing technical difficulties.", CBX_FALLBACK_CACHE);
    cbx_clock_advance(clk, 24ULL * 3600 * 1000);
    expect_str(fb, "greeting", "Hello! Service is temporarily down.", CBX_FALLBACK_CACHE);
    expect_none(fb, "error", CBX_ENO_FALLBACK); /* the default TTL applied to this one */

    /* A live result replaces the canned one and takes the normal TTL. */
    remember_str(fb, "greeting", "live");
    expect_str(fb, "greeting", "live", CBX_FALLBACK_CACHE);
    cbx_clock_advance(clk, 1000);
    expect_none(fb, "greeting", CBX_ENO_FALLBACK);
    cbx_fallback_free(fb);
    cbx_clock_free(clk);
}

Test(fallback_cache, per_entry_ttl)
{
    cbx_clock *clk = cbx_clock_virtual(0);
    cbx_fallback *fb = make_cache(clk, 1000, 10);
    json_t *v = json_integer(7);
    cr_assert_eq(cbx_fallback_remember_ttl(fb, "short", v, 10), 0);
    cr_assert_eq(cbx_fallback_remember_ttl(fb, "long", v, 5000), 0);
    json_decref(v);
    cbx_clock_advance(clk, 10);
    expect_none(fb, "short", CBX_ENO_FALLBACK);
    cbx_clock_advance(clk, 4000);
    json_t *out = NULL;
    cr_assert_eq(cbx_fallback_get(fb, "long", NULL, &out, NULL, NULL), 0);
    cr_assert_eq(json_integer_value(out), 7);
    json_decref(out);
    cbx_fallback_free(fb);
    cbx_clock_free(clk);
}

Test(fallback_cache, ttl_never_for_the_whole_cache)
{
    cbx_clock *clk = cbx_clock_virtual(0);
    cbx_fallback *fb = make_cache(clk, CBX_FALLBACK_TTL_NEVER, 2);
    remember_str(fb, "k", "v");
    cbx_clock_advance(clk, 10ULL * 365 * 24 * 3600 * 1000);
    expect_str(fb, "k", "v", CBX_FALLBACK_CACHE);
    cr_assert_eq(cbx_fallback_purge(fb), 0);
    cbx_fallback_free(fb);
    cbx_clock_free(clk);
}

Test(fallback_cache, forget_and_purge)
{
    cbx_clock *clk = cbx_clock_virtual(0);
    cbx_fallback *fb = make_cache(clk, 1000, 10);
    remember_str(fb, "a", "A");
    remember_str(fb, "b", "B");
    cbx_clock_advance(clk, 500);
    remember_str(fb, "c", "C");
    cr_assert_eq(cbx_fallback_forget(fb, "a"), 0);
    cr_assert_eq(cbx_fallback_forget(fb, "a"), -ENOENT);
    expect_none(fb, "a", CBX_ENO_FALLBACK);

    cbx_clock_advance(clk, 500); /* b expired, c is 500ms old */
    cr_assert_eq(cbx_fallback_purge(fb), 1);
    cbx_fallback_stats st = stats(fb);
    cr_assert_eq(st.entries, 1);
    cr_assert_eq(st.expirations, 1);
    expect_str(fb, "c", "C", CBX_FALLBACK_CACHE);
    cbx_fallback_free(fb);
    cbx_clock_free(clk);
}

Test(fallback_cache, many_keys_survive_table_growth)
{
    cbx_clock *clk = cbx_clock_virtual(0);
    cbx_fallback *fb = make_cache(clk, 1000, 2000);
    char key[32];
    for (int i = 0; i < 1500; i++) {
        snprintf(key, sizeof key, "key-%d", i);
        json_t *v = json_integer(i);
        cr_assert_eq(cbx_fallback_remember(fb, key, v), 0);
        json_decref(v);
    }
    cr_assert_eq(stats(fb).entries, 1500);
    for (int i = 0; i < 1500; i++) {
        snprintf(key, sizeof key, "key-%d", i);
        json_t *out = NULL;
        cr_assert_eq(cbx_fallback_get(fb, key, NULL, &out, NULL, NULL), 0, "%s", key);
        cr_assert_eq(json_integer_value(out), i);
        json_decref(out);
    }
    cr_assert_eq(stats(fb).evictions, 0);
    cbx_fallback_free(fb);
    cbx_clock_free(clk);
}

/* --- degraded function ----------------------------------------------------------------- */

struct fn_probe {
    int calls;
    int fail_with;       /* negative: fail with this code */
    int set_out_on_fail; /* leave a value in *out while failing */
    int return_nothing;  /* return 0 without a value */
    json_t *seen;        /* a copy of the last input */
};

static int degraded(const json_t *input, json_t **out, void *ud)
{
    struct fn_probe *p = ud;
    p->calls++;
    json_decref(p->seen);
    p->seen = input ? json_deep_copy(input) : NULL;
    if (p->fail_with) {
        if (p->set_out_on_fail)
            *out = json_string("half-built");
        return p->fail_with;
    }
    if (p->return_nothing)
        return 0;
    const char *q = json_string_value(json_object_get(input, "query"));
    char buf[128];
    snprintf(buf, sizeof buf, "I received your query: %s. Please try again later.",
             q ? q : "(none)");
    *out = json_string(buf);
    return 0;
}

Test(fallback_function, receives_the_input)
{
    struct fn_probe p = {0};
    cbx_fallback *fb = make(&(cbx_fallback_opts){.fn = degraded, .fn_ud = &p});
    json_t *input = json_pack("{s:s}", "query", "What is AI?");
    json_t *out = NULL;
    int source = 0;
    cr_assert_eq(cbx_fallback_get(fb, "ignored-key", input, &out, &source, NULL), 0);
    cr_assert_eq(source, CBX_FALLBACK_FUNCTION);
    cr_assert_eq(p.calls, 1);
    cr_assert(json_equal(p.seen, input));
    cr_assert_str_eq(json_string_value(out),
                     "I received your query: What is AI?. Please try again later.");
    cr_assert_eq(input->refcount, 1);
    cr_assert_eq(stats(fb).function_hits, 1);
    json_decref(out);
    json_decref(input);
    json_decref(p.seen);
    cbx_fallback_free(fb);
}

Test(fallback_function, error_is_propagated_when_nothing_follows)
{
    struct fn_probe p = {.fail_with = -EIO, .set_out_on_fail = 1};
    cbx_fallback *fb = make(&(cbx_fallback_opts){.fn = degraded, .fn_ud = &p});
    json_t *out = NULL;
    int source = -1;
    cbx_err e;
    cbx_err_clear(&e);
    cr_assert_eq(cbx_fallback_get(fb, NULL, NULL, &out, &source, &e), -EIO);
    cr_assert_null(out);
    cr_assert_eq(source, CBX_FALLBACK_NONE);
    cr_assert_eq(e.code, -EIO);
    cr_assert(strstr(e.msg, "function: failed") != NULL, "%s", e.msg);
    cr_assert_null(p.seen, "NULL input is passed as NULL");
    cbx_fallback_stats st = stats(fb);
    cr_assert_eq(st.function_errors, 1);
    cr_assert_eq(st.misses, 1);
    cbx_fallback_free(fb);
}

Test(fallback_function, failure_moves_on_to_the_next_source)
{
    struct fn_probe p = {.fail_with = CBX_ETIMEDOUT};
    json_t *v = json_string("static");
    cbx_fallback *fb = make(&(cbx_fallback_opts){.fn = degraded, .fn_ud = &p, .value = v});
    json_decref(v);
    expect_str(fb, NULL, "static", CBX_FALLBACK_VALUE);
    cr_assert_eq(p.calls, 1);
    cbx_fallback_stats st = stats(fb);
    cr_assert_eq(st.function_errors, 1);
    cr_assert_eq(st.value_hits, 1);
    cr_assert_eq(st.misses, 0);
    cbx_fallback_free(fb);
}

Test(fallback_function, broken_contract_is_a_failure)
{
    struct fn_probe p = {.return_nothing = 1};
    cbx_fallback *fb = make(&(cbx_fallback_opts){.fn = degraded, .fn_ud = &p});
    expect_none(fb, NULL, CBX_EFAILED);
    cr_assert_eq(stats(fb).function_errors, 1);
    cbx_fallback_free(fb);
}

Test(fallback_function, own_no_fallback_code_is_a_miss)
{
    struct fn_probe p = {.fail_with = CBX_ENO_FALLBACK};
    cbx_fallback *fb = make(&(cbx_fallback_opts){.fn = degraded, .fn_ud = &p});
    expect_none(fb, "k", CBX_ENO_FALLBACK);
    cbx_fallback_free(fb);
}

/* --- order ----------------------------------------------------------------------------- */

Test(fallback_order, default_is_cache_function_value)
{
    cbx_clock *clk = cbx_clock_virtual(0);
    struct fn_probe p = {0};
    json_t *v = json_string("static");
    cbx_fallback *fb = make(&(cbx_fallback_opts){.cache = 1,
                                                 .cache_ttl_ms = 1000,
                                                 .cache_max_entries = 4,
                                                 .fn = degraded,
                                                 .fn_ud = &p,
                                                 .value = v,
                                                 .clock = clk});
    json_decref(v);
    remember_str(fb, "k", "cached");
    expect_str(fb, "k", "cached", CBX_FALLBACK_CACHE);
    cr_assert_eq(p.calls, 0, "a cache hit asks nothing further");

    expect_str(fb, "other", "I received your query: (none). Please try again later.",
               CBX_FALLBACK_FUNCTION);
    cr_assert_eq(p.calls, 1);

    p.fail_with = -EIO;
    cbx_err e;
    cbx_err_clear(&e);
    json_t *out = NULL;
    int source = 0;
    cr_assert_eq(cbx_fallback_get(fb, "other", NULL, &out, &source, &e), 0);
    cr_assert_eq(source, CBX_FALLBACK_VALUE);
    cr_assert_str_eq(json_string_value(out), "static");
    cr_assert_eq(e.code, 0, "success leaves err alone");
    json_decref(out);

    cbx_fallback_stats st = stats(fb);
    cr_assert_eq(st.cache_hits, 1);
    cr_assert_eq(st.function_hits, 1);
    cr_assert_eq(st.value_hits, 1);
    cr_assert_eq(st.cache_misses, 2);
    cr_assert_eq(st.function_errors, 1);
    cr_assert_eq(st.misses, 0);
    json_decref(p.seen);
    cbx_fallback_free(fb);
    cbx_clock_free(clk);
}

Test(fallback_order, explicit_order_is_followed)
{
    cbx_clock *clk = cbx_clock_virtual(0);
    struct fn_probe p = {0};
    json_t *v = json_string("static");
    cbx_fallback_opts o = {
        .cache = 1,
        .cache_ttl_ms = 1000,
        .cache_max_entries = 4,
        .fn = degraded,
        .fn_ud = &p,
        .value = v,
        .clock = clk,
        .order = {CBX_FALLBACK_FUNCTION, CBX_FALLBACK_CACHE, CBX_FALLBACK_VALUE}};
    cbx_fallback *fb = make(&o);
    remember_str(fb, "k", "cached");
    expect_str(fb, "k", "I received your query: (none). Please try again later.",
               CBX_FALLBACK_FUNCTION);
    p.fail_with = -EIO;
    expect_str(fb, "k", "cached", CBX_FALLBACK_CACHE);
    expect_str(fb, "nope", "static", CBX_FALLBACK_VALUE);
    cbx_fallback_free(fb);

    /* Value first: the cache and the function are never reached. */
    p = (struct fn_probe){0};
    o.order[0] = CBX_FALLBACK_VALUE;
    o.order[1] = CBX_FALLBACK_CACHE;
    o.order[2] = CBX_FALLBACK_FUNCTION;
    fb = make(&o);
    remember_str(fb, "k", "cached");
    expect_str(fb, "k", "static", CBX_FALLBACK_VALUE);
    cr_assert_eq(p.calls, 0);
    cr_assert_eq(stats(fb).cache_misses, 0);
    cbx_fallback_free(fb);
    json_decref(v);
    cbx_clock_free(clk);
}

Test(fallback_order, nothing_answers)
{
    cbx_clock *clk = cbx_clock_virtual(0);
    cbx_fallback *fb = make_cache(clk, 1000, 4);
    cbx_err e;
    cbx_err_clear(&e);
    json_t *out = NULL;
    cr_assert_eq(cbx_fallback_get(fb, "k", NULL, &out, NULL, &e), CBX_ENO_FALLBACK);
    cr_assert_null(out);
    cr_assert_eq(e.code, CBX_ENO_FALLBACK);
    cr_assert(strstr(e.msg, "cache: miss") != NULL, "%s", e.msg);

    remember_str(fb, "k", "v");
    cbx_clock_advance(clk, 1000);
    cr_assert_eq(cbx_fallback_get(fb, "k", NULL, &out, NULL, &e), CBX_ENO_FALLBACK);
    cr_assert(strstr(e.msg, "cache: expired") != NULL, "%s", e.msg);
    cr_assert_eq(stats(fb).misses, 2);
    cbx_fallback_free(fb);
    cbx_clock_free(clk);
}

/* --- NULL handling --------------------------------------------------------------------- */

Test(fallback_null, null_key_skips_the_cache)
{
    cbx_clock *clk = cbx_clock_virtual(0);
    json_t *v = json_string("static");
    cbx_fallback *fb = make(&(cbx_fallback_opts){
        .cache = 1, .cache_ttl_ms = 1000, .cache_max_entries = 4, .value = v, .clock = clk});
    json_decref(v);
    remember_str(fb, "k", "cached");
    expect_str(fb, NULL, "static", CBX_FALLBACK_VALUE);
    cr_assert_eq(stats(fb).cache_misses, 0, "no key is not a lookup");
    cbx_fallback_free(fb);

    fb = make_cache(clk, 1000, 4);
    cbx_err e;
    cbx_err_clear(&e);
    json_t *out = NULL;
    cr_assert_eq(cbx_fallback_get(fb, NULL, NULL, &out, NULL, &e), CBX_ENO_FALLBACK);
    cr_assert(strstr(e.msg, "cache: no key") != NULL, "%s", e.msg);
    cbx_fallback_free(fb);
    cbx_clock_free(clk);
}

Test(fallback_null, bad_arguments)
{
    cbx_clock *clk = cbx_clock_virtual(0);
    cbx_fallback *fb = make_cache(clk, 1000, 4);
    json_t *v = json_true();
    json_t *out = NULL;
    cr_assert_eq(cbx_fallback_remember(fb, NULL, v), -EINVAL);
    cr_assert_eq(cbx_fallback_remember(fb, "k", NULL), -EINVAL);
    cr_assert_eq(cbx_fallback_remember(NULL, "k", v), -EINVAL);
    cr_assert_eq(cbx_fallback_forget(fb, NULL), -EINVAL);
    cr_assert_eq(cbx_fallback_get(fb, "k", NULL, NULL, NULL, NULL), -EINVAL);
    cr_assert_eq(cbx_fallback_get(NULL, "k", NULL, &out, NULL, NULL), -EINVAL);
    cr_assert_null(out);
    cr_assert_eq(cbx_fallback_purge(NULL), 0);
    cr_assert_eq(stats(fb).entries, 0);
    cbx_fallback_free(fb);
    cbx_fallback_free(NULL);
    cbx_clock_free(clk);
}

Test(fallback_null, no_cache_refuses_remember)
{
    json_t *v = json_string("static");
    cbx_fallback *fb = make(&(cbx_fallback_opts){.value = v});
    cr_assert_eq(cbx_fallback_remember(fb, "k", v), CBX_EINVAL_CONFIG);
    cr_assert_eq(cbx_fallback_forget(fb, "k"), CBX_EINVAL_CONFIG);
    cr_assert_eq(cbx_fallback_purge(fb), 0);
    json_decref(v);
    cbx_fallback_free(fb);
}

/* --- configuration --------------------------------------------------------------------- */

static void expect_config_error(const cbx_fallback_opts *o, const char *where)
{
    cbx_fallback *fb = (cbx_fallback *)0x1;
    cbx_err e;
    cbx_err_clear(&e);
    cr_assert_eq(cbx_fallback_new(&fb, o, &e), CBX_EINVAL_CONFIG, "want an error at %s", where);
    cr_assert_null(fb);
    cr_assert_eq(e.code, CBX_EINVAL_CONFIG);
    cr_assert_str_eq(e.where, where, "%s", e.msg);
    cr_assert_neq(e.msg[0], '\0');
}

static int never_called(const json_t *input, json_t **out, void *ud)
{
    (void)input;
    (void)out;
    (void)ud;
    cr_assert_fail("the function must not be called");
    return -1;
}

Test(fallback_config, errors_name_the_field)
{
    json_t *v = json_string("x");
    expect_config_error(&(cbx_fallback_opts){0}, "fallback");
    expect_config_error(&(cbx_fallback_opts){.cache = 1, .cache_max_entries = 10}, "cache_ttl_ms");
    expect_config_error(&(cbx_fallback_opts){.cache = 1, .cache_ttl_ms = 1000},
                        "cache_max_entries");
    expect_config_error(&(cbx_fallback_opts){.value = v, .cache_ttl_ms = 1000}, "cache");
    expect_config_error(&(cbx_fallback_opts){.value = v, .cache_max_entries = 5}, "cache");
    expect_config_error(&(cbx_fallback_opts){.value = v, .order = {CBX_FALLBACK_CACHE}},
                        "order[0]");
    expect_config_error(&(cbx_fallback_opts){.value = v, .order = {(cbx_fallback_source)9}},
                        "order[0]");
    expect_config_error(&(cbx_fallback_opts){.value = v,
                                             .fn = never_called,
                                             .order = {CBX_FALLBACK_VALUE, CBX_FALLBACK_VALUE}},
                        "order[1]");
    expect_config_error(
        &(cbx_fallback_opts){.value = v, .fn = never_called, .order = {CBX_FALLBACK_VALUE}},
        "order");
    expect_config_error(&(cbx_fallback_opts){.value = v,
                                             .fn = never_called,
                                             .order = {CBX_FALLBACK_VALUE, CBX_FALLBACK_NONE,
                                                       CBX_FALLBACK_FUNCTION}},
                        "order[2]");

    cbx_fallback *fb = (cbx_fallback *)0x1;
    cr_assert_eq(cbx_fallback_new(&fb, NULL, NULL), -EINVAL);
    cr_assert_null(fb);
    cr_assert_eq(cbx_fallback_new(NULL, &(cbx_fallback_opts){.value = v}, NULL), -EINVAL);

    /* A short explicit order is fine when it lists everything configured. */
    fb = make(&(cbx_fallback_opts){.value = v, .order = {CBX_FALLBACK_VALUE}});
    cbx_fallback_free(fb);
    json_decref(v);
}

Test(fallback_config, source_names_round_trip)
{
    for (int s = CBX_FALLBACK_CACHE; s <= CBX_FALLBACK_VALUE; s++) {
        cbx_fallback_source back = CBX_FALLBACK_NONE;
        cr_assert_eq(cbx_fallback_source_parse(cbx_fallback_source_name(s), &back), 0);
        cr_assert_eq((int)back, s);
    }
    cr_assert_str_eq(cbx_fallback_source_name(CBX_FALLBACK_CACHE), "cache");
    cr_assert_str_eq(cbx_fallback_source_name(CBX_FALLBACK_NONE), "none");
    cr_assert_str_eq(cbx_fallback_source_name(42), "unknown");
    cbx_fallback_source s;
    cr_assert_eq(cbx_fallback_source_parse("none", &s), CBX_EPARSE);
    cr_assert_eq(cbx_fallback_source_parse("static", &s), CBX_EPARSE);
    cr_assert_eq(cbx_fallback_source_parse(NULL, &s), CBX_EPARSE);
}

/* --- threads --------------------------------------------------------------------------- */

#define THREADS 4
#define ROUNDS  2000

struct worker {
    cbx_fallback *fb;
    cbx_clock *clk;
    int id;
    uint64_t gets, answered, bad; /* asserted by the main thread */
};

static void *work(void *arg)
{
    struct worker *w = arg;
    char key[16];
    for (int i = 0; i < ROUNDS; i++) {
        snprintf(key, sizeof key, "k%d", (i * 7 + w->id) % 24);
        if (i % 3 == 0) {
            json_t *v = json_pack("{s:i,s:i}", "thread", w->id, "round", i);
            if (cbx_fallback_remember(w->fb, key, v) != 0)
                w->bad++;
            json_decref(v);
        } else {
            json_t *out = NULL;
            int r = cbx_fallback_get(w->fb, key, NULL, &out, NULL, NULL);
            if (r != 0 && r != CBX_ENO_FALLBACK)
                w->bad++;
            if (r == 0) {
                if (!json_is_object(out) || json_object_get(out, "mutated"))
                    w->bad++;
                json_object_set_new(out, "mutated", json_true());
                w->answered++;
            }
            json_decref(out);
            w->gets++;
        }
        if (i % 500 == 0 && w->id == 0)
            cbx_clock_advance(w->clk, 30);
        if (i % 700 == 0)
            cbx_fallback_purge(w->fb);
    }
    return NULL;
}

Test(fallback_threads, concurrent_remember_and_get_keep_the_books)
{
    cbx_clock *clk = cbx_clock_virtual(0);
    cbx_fallback *fb = make_cache(clk, 50, 8);
    pthread_t t[THREADS];
    struct worker w[THREADS];
    for (int i = 0; i < THREADS; i++) {
        w[i] = (struct worker){.fb = fb, .clk = clk, .id = i};
        cr_assert_eq(pthread_create(&t[i], NULL, work, &w[i]), 0);
    }
    uint64_t gets = 0, answered = 0;
    for (int i = 0; i < THREADS; i++) {
        pthread_join(t[i], NULL);
        gets += w[i].gets;
        answered += w[i].answered;
        cr_assert_eq(w[i].bad, 0, "thread %d saw %llu bad results", i,
                     (unsigned long long)w[i].bad);
    }
    cbx_fallback_stats st = stats(fb);
    cr_assert_leq(st.entries, 8);
    cr_assert_eq(st.cache_hits, answered);
    cr_assert_eq(st.cache_hits + st.misses, gets);
    cr_assert_eq(st.stores, (uint64_t)THREADS * ((ROUNDS + 2) / 3));
    cr_assert_gt(st.evictions, 0);
    cbx_fallback_free(fb);
    cbx_clock_free(clk);
}
