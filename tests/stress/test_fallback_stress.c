/* Threads remembering and reading the same few keys of one fallback cache. Every read is a
 * hit or a miss, and no stored value is ever touched outside the cache's lock (jansson's
 * reference counts are not thread-safe: TSan caught a shared reference here once). */
#include "cbx/fallback.h"

#include "stress/stress.h"

#include <jansson.h>
#include <pthread.h>
#include <stdio.h>

#define THREADS 4
#define ITERS   20000

static cbx_fallback *fb;

static void *worker(void *arg)
{
    uintptr_t id = (uintptr_t)arg;
    uint64_t *gets = calloc(1, sizeof *gets);
    char key[16];
    for (int i = 0; i < ITERS; i++) {
        snprintf(key, sizeof key, "k%d", i % 5);
        if ((i + (int)id) % 3 == 0) {
            json_t *v = json_pack("{s:i, s:[i, i]}", "n", i, "xs", (int)id, i);
            CHECK(cbx_fallback_remember(fb, key, v) == 0);
            json_decref(v);
        } else {
            json_t *out = NULL;
            int source;
            int r = cbx_fallback_get(fb, key, NULL, &out, &source, NULL);
            CHECK(r == 0 || r == CBX_ENO_FALLBACK, "get: %d", r);
            if (r == 0) {
                CHECK(json_is_object(out));
                json_object_set_new(out, "mine", json_integer((json_int_t)id)); /* a private copy */
                json_decref(out);
            }
            ++*gets;
        }
    }
    return gets;
}

int main(void)
{
    cbx_fallback_opts o = {.cache = 1, .cache_ttl_ms = 60000, .cache_max_entries = 3};
    CHECK(cbx_fallback_new(&fb, &o, NULL) == 0);
    pthread_t t[THREADS];
    for (uintptr_t i = 0; i < THREADS; i++)
        CHECK(pthread_create(&t[i], NULL, worker, (void *)i) == 0);
    uint64_t gets = 0;
    for (int i = 0; i < THREADS; i++) {
        void *r;
        pthread_join(t[i], &r);
        gets += *(uint64_t *)r;
        free(r);
    }
    cbx_fallback_stats st;
    cbx_fallback_stats_get(fb, &st);
    CHECK(st.cache_hits + st.misses == gets, "hits %llu + misses %llu != gets %llu",
          (unsigned long long)st.cache_hits, (unsigned long long)st.misses,
          (unsigned long long)gets);
    CHECK(st.entries <= 3);
    cbx_fallback_free(fb);
    printf("fallback stress: ok (%llu reads, %llu hits)\n", (unsigned long long)gets,
           (unsigned long long)st.cache_hits);
    return 0;
}
