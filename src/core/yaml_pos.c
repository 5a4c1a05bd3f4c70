/* The positions of a YAML document's nodes (a sorted array of places and offsets, 16 bytes a node,
 * and the start of each line), and finding a node's position by its path. */
#include "core/yaml_pos.h"

#include "cbx/yaml.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct slot {
    const void *p;
    uint32_t i;     /* an item's index, or UINT32_MAX for a key */
    uint32_t index; /* the node's offset in characters */
} slot;

/* The start (offset in characters) of each line that holds a node: a node's line is that of the
 * last start at or before its offset, its column the distance from there. */
typedef struct line_start {
    uint32_t start, line;
} line_start;

/* The places are appended as the parser goes (in the order written), then sorted once, when the
 * document is complete: 16 bytes a node, and no table to grow while a big file is read. */
struct cbx__yaml_pos {
    slot *slots;
    size_t n, cap;
    line_start *lines;
    size_t nlines, lines_cap;
    int sorted;
};

cbx__yaml_pos *cbx__yaml_pos_new(void)
{
    return calloc(1, sizeof(cbx__yaml_pos));
}

void cbx__yaml_pos_free(cbx__yaml_pos *t)
{
    if (!t)
        return;
    free(t->slots);
    free(t->lines);
    free(t);
}

static uint32_t clamp32(size_t v)
{
    return v < UINT32_MAX - 1 ? (uint32_t)v : UINT32_MAX - 1;
}

static int reserve(void **v, size_t *cap, size_t n, size_t size)
{
    if (n < *cap)
        return 0;
    size_t c = *cap ? *cap * 2 : 256;
    void *nv = realloc(*v, c * size);
    if (!nv)
        return -ENOMEM;
    *v = nv;
    *cap = c;
    return 0;
}

int cbx__yaml_pos_put(cbx__yaml_pos *t, const void *p, size_t i, size_t offset, size_t line,
                      size_t col)
{
    uint32_t at = clamp32(offset), ln = clamp32(line);
    if (!t->nlines || t->lines[t->nlines - 1].line != ln) {
        if (reserve((void **)&t->lines, &t->lines_cap, t->nlines, sizeof *t->lines) < 0)
            return -ENOMEM;
        t->lines[t->nlines++] = (line_start){at >= col ? at - (uint32_t)col : 0, ln};
    }
    if (reserve((void **)&t->slots, &t->cap, t->n, sizeof *t->slots) < 0)
        return -ENOMEM;
    t->slots[t->n++] =
        (slot){.p = p, .i = i == CBX__YAML_KEY ? UINT32_MAX : clamp32(i), .index = at};
    t->sorted = 0;
    return 0;
}

static int by_place(const void *a, const void *b)
{
    const slot *x = a, *y = b;
    if (x->p != y->p)
        return (uintptr_t)x->p < (uintptr_t)y->p ? -1 : 1;
    if (x->i != y->i)
        return x->i < y->i ? -1 : 1;
    return x->index < y->index ? -1 : x->index > y->index; /* the first written first */
}

static int by_start(const void *a, const void *b)
{
    const line_start *x = a, *y = b;
    return x->start < y->start ? -1 : x->start > y->start;
}

void cbx__yaml_pos_seal(cbx__yaml_pos *t)
{
    if (t->sorted)
        return;
    if (t->n) /* an empty document has no array at all: qsort must not see NULL */
        qsort(t->slots, t->n, sizeof *t->slots, by_place);
    if (t->nlines) /* sorted already, when in order */
        qsort(t->lines, t->nlines, sizeof *t->lines, by_start);
    /* complete: the room the doubling left (a quarter on average) goes back */
    slot *s = t->n ? realloc(t->slots, t->n * sizeof *t->slots) : NULL;
    if (s) {
        t->slots = s;
        t->cap = t->n;
    }
    line_start *ls = t->nlines ? realloc(t->lines, t->nlines * sizeof *t->lines) : NULL;
    if (ls) {
        t->lines = ls;
        t->lines_cap = t->nlines;
    }
    t->sorted = 1;
}

int cbx__yaml_pos_get(const cbx__yaml_pos *t, const void *p, size_t i, int *line, int *col)
{
    if (!t->sorted)
        return -ENOENT;
    uint32_t i32 = i == CBX__YAML_KEY ? UINT32_MAX : clamp32(i);
    size_t lo = 0, hi = t->n; /* the first slot not before (p, i32) */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const slot *m = &t->slots[mid];
        if ((uintptr_t)m->p < (uintptr_t)p || (m->p == p && m->i < i32))
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == t->n || t->slots[lo].p != p || t->slots[lo].i != i32 || !t->nlines)
        return -ENOENT;
    uint32_t at = t->slots[lo].index;
    lo = 0;
    hi = t->nlines; /* the last line start <= at */
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
