/* The positions of a YAML document's nodes: open addressing on (place, index), 16 bytes a node,
 * and the start of each line;
 * and finding a node's position by its path. */
#include "core/yaml_pos.h"

#include "cbx/yaml.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct slot {
    const void *p;
    uint32_t i;     /* an item's index, or UINT32_MAX for a key */
    uint32_t index; /* the node's offset in characters, + 1 (0: an empty slot) */
} slot;

/* The start (offset in characters) of each line that holds a node: a node's line is that of the
 * last start at or before its offset, its column the distance from there. */
typedef struct line_start {
    uint32_t start, line;
} line_start;

struct cbx__yaml_pos {
    slot *slots;
    size_t cap; /* a power of two */
    size_t used;
    line_start *lines;
    size_t nlines, lines_cap;
    int unsorted;
};

static size_t hash(const void *p, uint32_t i)
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
    free(t->lines);
    free(t);
}

static slot *find(const slot *slots, size_t cap, const void *p, uint32_t i)
{
    size_t k = hash(p, i) & (cap - 1);
    while (slots[k].index && !(slots[k].p == p && slots[k].i == i))
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
        if (t->slots[k].index)
            *find(s, cap, t->slots[k].p, t->slots[k].i) = t->slots[k];
    free(t->slots);
    t->slots = s;
    t->cap = cap;
    return 0;
}

static uint32_t clamp32(size_t v)
{
    return v < UINT32_MAX - 1 ? (uint32_t)v : UINT32_MAX - 1;
}

static int note_line(cbx__yaml_pos *t, uint32_t start, uint32_t line)
{
    if (t->nlines && t->lines[t->nlines - 1].line == line)
        return 0;
    if (t->nlines == t->lines_cap) {
        size_t cap = t->lines_cap ? t->lines_cap * 2 : 64;
        line_start *nl = realloc(t->lines, cap * sizeof *nl);
        if (!nl)
            return -ENOMEM;
        t->lines = nl;
        t->lines_cap = cap;
    }
    if (t->nlines && t->lines[t->nlines - 1].start > start)
        t->unsorted = 1;
    t->lines[t->nlines++] = (line_start){start, line};
    return 0;
}

int cbx__yaml_pos_put(cbx__yaml_pos *t, const void *p, size_t i, size_t offset, size_t line,
                      size_t col)
{
    uint32_t i32 = i == CBX__YAML_KEY ? UINT32_MAX : clamp32(i);
    if ((t->used + 1) * 4 > t->cap * 3 && grow(t) < 0) /* at most 3/4 full */
        return -ENOMEM;
    slot *s = find(t->slots, t->cap, p, i32);
    if (s->index)
        return 0;
    uint32_t at = clamp32(offset);
    if (note_line(t, at >= col ? at - (uint32_t)col : 0, clamp32(line)) < 0)
        return -ENOMEM;
    *s = (slot){.p = p, .i = i32, .index = at + 1};
    t->used++;
    return 0;
}

static int by_start(const void *a, const void *b)
{
    const line_start *x = a, *y = b;
    return x->start < y->start ? -1 : x->start > y->start;
}

int cbx__yaml_pos_get(const cbx__yaml_pos *t, const void *p, size_t i, int *line, int *col)
{
    uint32_t i32 = i == CBX__YAML_KEY ? UINT32_MAX : clamp32(i);
    const slot *s = find(t->slots, t->cap, p, i32);
    if (!s->index || !t->nlines)
        return -ENOENT;
    if (t->unsorted) { /* not in the order written: sorted once, on the first look-up */
        cbx__yaml_pos *w = (cbx__yaml_pos *)t;
        qsort(w->lines, w->nlines, sizeof *w->lines, by_start);
        w->unsorted = 0;
    }
    uint32_t at = s->index - 1;
    size_t lo = 0, hi = t->nlines; /* the last start <= at */
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (t->lines[mid].start <= at)
            lo = mid;
        else
            hi = mid;
    }
    *line = (int)t->lines[lo].line + 1;
    *col = (int)(at - t->lines[lo].start) + 1;
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
