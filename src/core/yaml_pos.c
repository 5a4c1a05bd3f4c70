/* The positions of a YAML document's nodes: open addressing on (place, index), 24 bytes a node;
 * and finding a node's position by its path. */
#include "core/yaml_pos.h"

#include "cbx/yaml.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct slot {
    const void *p;
    size_t i;
    int32_t line, col; /* line 0: an empty slot */
} slot;

struct cbx__yaml_pos {
    slot *slots;
    size_t cap; /* a power of two */
    size_t used;
};

static size_t hash(const void *p, size_t i)
{
    uint64_t h =
        (uint64_t)(uintptr_t)p * 0x9E3779B97F4A7C15ull ^ (uint64_t)i * 0xC2B2AE3D27D4EB4Full;
    h ^= h >> 29;
    h *= 0xBF58476D1CE4E5B9ull;
    h ^= h >> 32;
    return (size_t)h;
}

cbx__yaml_pos *cbx__yaml_pos_new(void)
{
    cbx__yaml_pos *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    t->cap = 64;
    t->slots = calloc(t->cap, sizeof *t->slots);
    if (!t->slots) {
        free(t);
        return NULL;
    }
    return t;
}

void cbx__yaml_pos_free(cbx__yaml_pos *t)
{
    if (!t)
        return;
    free(t->slots);
    free(t);
}

static slot *find(const slot *slots, size_t cap, const void *p, size_t i)
{
    size_t k = hash(p, i) & (cap - 1);
    while (slots[k].line && !(slots[k].p == p && slots[k].i == i))
        k = (k + 1) & (cap - 1);
    return (slot *)&slots[k];
}

static int grow(cbx__yaml_pos *t)
{
    size_t cap = t->cap * 2;
    slot *s = calloc(cap, sizeof *s);
    if (!s)
        return -ENOMEM;
    for (size_t k = 0; k < t->cap; k++)
        if (t->slots[k].line)
            *find(s, cap, t->slots[k].p, t->slots[k].i) = t->slots[k];
    free(t->slots);
    t->slots = s;
    t->cap = cap;
    return 0;
}

int cbx__yaml_pos_put(cbx__yaml_pos *t, const void *p, size_t i, int line, int col)
{
    if ((t->used + 1) * 4 > t->cap * 3 && grow(t) < 0) /* at most 3/4 full */
        return -ENOMEM;
    slot *s = find(t->slots, t->cap, p, i);
    if (s->line)
        return 0;
    *s = (slot){.p = p, .i = i, .line = line > 0 ? line : 1, .col = col};
    t->used++;
    return 0;
}

int cbx__yaml_pos_get(const cbx__yaml_pos *t, const void *p, size_t i, int *line, int *col)
{
    const slot *s = find(t->slots, t->cap, p, i);
    if (!s->line)
        return -ENOENT;
    *line = s->line;
    *col = s->col;
    return 0;
}

/* ---- by path ------------------------------------------------------------------------------- */

/* The member of obj named by the start of path (a copy that may be written to): the longest key
 * followed by '.', '[' or the end (a key may hold dots). Its length, or 0 when none. */
static size_t member(const json_t *obj, char *path, const char **kept)
{
    size_t n = strlen(path);
    for (;;) {
        char c = path[n];
        if (c == '\0' || c == '.' || c == '[') {
            path[n] = '\0';
            void *it = json_object_iter_at((json_t *)obj, path);
            path[n] = c;
            if (it) {
                *kept = json_object_iter_key(it);
                return n ? n : 1; /* "" is a key too: step over nothing, but step */
            }
        }
        if (n == 0)
            return 0;
        n--;
    }
}

int cbx_yaml_where(const cbx_yaml_doc *doc, const char *path, int *line, int *col)
{
    *line = *col = 0;
    if (!doc || !doc->position || !doc->root ||
        cbx__yaml_pos_get(doc->position, NULL, 0, line, col) < 0)
        return -ENOENT;
    char *copy = strdup(path ? path : ""), *p = copy;
    if (!copy)
        return 0; /* the root's position, then */
    const json_t *v = doc->root;
    while (*p && v) {
        int l, c;
        if (*p == '[') {
            char *end;
            unsigned long long i = strtoull(p + 1, &end, 10);
            if (*end != ']' || !json_is_array(v) || i >= json_array_size(v) ||
                cbx__yaml_pos_get(doc->position, v, (size_t)i, &l, &c) < 0)
                break;
            v = json_array_get(v, (size_t)i);
            p = end + 1;
        } else {
            if (*p == '.')
                p++;
            const char *kept = NULL;
            size_t n = json_is_object(v) ? member(v, p, &kept) : 0;
            if (!n || cbx__yaml_pos_get(doc->position, kept, CBX__YAML_KEY, &l, &c) < 0)
                break;
            v = json_object_iter_value(json_object_iter_at((json_t *)v, kept));
            p += kept[0] ? n : 0;
        }
        *line = l;
        *col = c;
    }
    free(copy);
    return 0;
}
