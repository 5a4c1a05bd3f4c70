/* YAML documents to jansson values, built from libyaml's events so that the limits (nesting,
 * aliases, a second document) stop the parse where they are passed. */
#include "cbx/yaml.h"
#include "core/yaml_pos.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <yaml.h>

#define MAX_DEPTH       512
#define MAX_ALIAS_NODES 1000000

static size_t max_bytes = CBX_YAML_MAX_BYTES_DEFAULT;

size_t cbx_yaml_max_bytes(void)
{
    return max_bytes;
}

void cbx_yaml_set_max_bytes(size_t n)
{
    max_bytes = n ? n : CBX_YAML_MAX_BYTES_DEFAULT;
}

/* An open mapping or sequence. */
typedef struct frame {
    json_t *node; /* borrowed: held by its parent (or the root) */
    int mapping;  /* 1: a mapping, 0: a sequence */
    char *key;    /* a mapping's key read, waiting for its value; owned */
    yaml_mark_t key_at;
    char *anchor; /* owned: registered when the collection ends */
    size_t nodes; /* in this collection so far, itself included, aliases expanded */
} frame;

typedef struct anchor_def {
    json_t *value; /* a reference */
    size_t nodes;
} anchor_def;

typedef struct loader {
    cbx_yaml_doc *out;
    cbx_err *err;
    frame *stack;
    size_t depth, cap;
    json_t *anchors; /* name -> index in anchor_v */
    anchor_def *anchor_v;
    size_t nanchors, anchor_cap;
    size_t alias_nodes; /* added by aliases so far */
    json_t *texts;      /* short strings read so far: text -> the one value (see text()) */
} loader;

static int fail_at(loader *l, yaml_mark_t m, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int fail_at(loader *l, yaml_mark_t m, int code, const char *fmt, ...)
{
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return cbx_err_set_at(l->err, code, l->out->file, (int)m.line + 1, (int)m.column + 1, "%s",
                          msg);
}

static int oom(loader *l, yaml_mark_t m)
{
    return fail_at(l, m, -ENOMEM, "out of memory");
}

static int match(const char *s, const char *const *words)
{
    for (; *words; words++)
        if (strcmp(s, *words) == 0)
            return 1;
    return 0;
}

/* A string written more than once in a document (an executor's name, a step's name where other
 * steps need it, a common argument) is one value, which the tree holds at every place: a big
 * flow's document is a third smaller. Nothing changes a document's strings in place, and
 * positions are kept by container and key, not by value. Long texts are rarely repeated: each
 * is its own. */
#define TEXT_SHARED_MAX 64

static json_t *text(loader *l, const char *s, size_t len)
{
    if (len > TEXT_SHARED_MAX || !l->texts)
        return json_stringn(s, len);
    json_t *v = json_object_getn(l->texts, s, len);
    if (v)
        return json_incref(v);
    v = json_stringn(s, len);
    if (v) /* the table's reference (taken back by jansson when it fails: v is then not shared) */
        json_object_setn_new_nocheck(l->texts, s, len, json_incref(v));
    return v;
}

/* A plain scalar under the core schema. */
static json_t *plain_scalar(loader *l, const char *s, size_t len)
{
    static const char *const nulls[] = {"", "~", "null", "Null", "NULL", NULL};
    static const char *const trues[] = {"true", "True", "TRUE", NULL};
    static const char *const falses[] = {"false", "False", "FALSE", NULL};
    static const char *const infs[] = {".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF", NULL};
    static const char *const ninfs[] = {"-.inf", "-.Inf", "-.INF", NULL};
    static const char *const nans[] = {".nan", ".NaN", ".NAN", NULL};
    if (match(s, nulls))
        return json_null();
    if (match(s, trues))
        return json_true();
    if (match(s, falses))
        return json_false();
    if (match(s, infs) || match(s, ninfs) || match(s, nans))
        return json_string(s); /* JSON has no infinities: keep the text */
    char *end;
    errno = 0;
    if ((s[0] == '0' && (s[1] == 'x' || s[1] == 'o')) && len > 2) {
        long long v = strtoll(s + 2, &end, s[1] == 'x' ? 16 : 8);
        if (*end == '\0' && errno == 0)
            return json_integer(v);
    }
    const char *digits = (s[0] == '-' || s[0] == '+') ? s + 1 : s;
    if (*digits >= '0' && *digits <= '9') {
        size_t n = strspn(digits, "0123456789");
        if (digits[n] == '\0') {
            long long v = strtoll(s, &end, 10);
            if (errno == 0)
                return json_integer(v);
        }
        double d = strtod(s, &end);
        if (*end == '\0' && errno == 0 && isfinite(d))
            return json_real(d);
    } else if (*digits == '.' && digits[1] >= '0' && digits[1] <= '9') {
        double d = strtod(s, &end);
        if (*end == '\0' && errno == 0)
            return json_real(d);
    }
    return text(l, s, len);
}

/* ---- anchors ------------------------------------------------------------------------------- */

static int anchor_set(loader *l, const char *name, json_t *v, size_t nodes)
{
    json_t *ix = json_object_get(l->anchors, name);
    if (ix && l->anchor_v) { /* defined again: the later one counts from here on */
        anchor_def *a = &l->anchor_v[json_integer_value(ix)];
        json_decref(a->value);
        *a = (anchor_def){json_incref(v), nodes};
        return 0;
    }
    if (l->nanchors == l->anchor_cap || !l->anchor_v) {
        size_t cap = l->anchor_cap ? l->anchor_cap * 2 : 16;
        anchor_def *na = realloc(l->anchor_v, cap * sizeof *na);
        if (!na)
            return -ENOMEM;
        l->anchor_v = na;
        l->anchor_cap = cap;
    }
    if (json_object_set_new(l->anchors, name, json_integer((json_int_t)l->nanchors)) < 0)
        return -ENOMEM;
    l->anchor_v[l->nanchors++] = (anchor_def){json_incref(v), nodes};
    return 0;
}

/* ---- the tree ------------------------------------------------------------------------------ */

/* jansson refused text (s, len): not UTF-8, or out of memory? Without the check it keeps, jansson
 * fails only when memory runs out. */
static int refused_text(loader *l, const char *s, size_t len, yaml_mark_t m, const char *what)
{
    json_t *probe = json_stringn_nocheck(s, len);
    if (!probe)
        return oom(l, m);
    json_decref(probe);
    return fail_at(l, m, CBX_EPARSE, "%s is not valid UTF-8", what);
}

/* Put v (a reference, taken) where the document is: the root, a sequence's next item, or the
 * value of the key read. m is where v (or for a member, its key) was written. */
static int place(loader *l, json_t *v, yaml_mark_t m, size_t nodes)
{
    cbx__yaml_pos *pos = l->out->position;
    if (!v)
        return oom(l, m);
    if (l->depth == 0) {
        l->out->root = v;
        if (cbx__yaml_pos_put(pos, NULL, 0, m.index, m.line, m.column) < 0)
            return oom(l, m);
        return 0;
    }
    frame *f = &l->stack[l->depth - 1];
    f->nodes += nodes;
    if (!f->mapping) {
        if (json_array_append_new(f->node, v) < 0)
            return oom(l, m);
        if (cbx__yaml_pos_put(pos, f->node, json_array_size(f->node) - 1, m.index, m.line,
                              m.column) < 0)
            return oom(l, m);
        return 0;
    }
    char *key = f->key;
    f->key = NULL;
    if (json_object_set_new(f->node, key, v) < 0) {
        int r = refused_text(l, key, strlen(key), f->key_at, "a key");
        free(key);
        return r;
    }
    /* the key string the object keeps stands for the member: it lives as long as the member */
    const char *kept = json_object_iter_key(json_object_iter_at(f->node, key));
    free(key);
    if (cbx__yaml_pos_put(pos, kept, CBX__YAML_KEY, f->key_at.index, f->key_at.line,
                          f->key_at.column) < 0)
        return oom(l, f->key_at);
    return 0;
}

/* A scalar where a mapping wants a key: remember it, refusing a duplicate. */
static int take_key(loader *l, frame *f, const yaml_event_t *e)
{
    const char *key = (const char *)e->data.scalar.value;
    if (json_object_get(f->node, key))
        return fail_at(l, e->start_mark, CBX_EPARSE, "duplicate key '%.200s'", key);
    f->key = strdup(key);
    f->key_at = e->start_mark;
    return f->key ? 0 : oom(l, e->start_mark);
}

static int wants_key(const loader *l)
{
    return l->depth && l->stack[l->depth - 1].mapping && !l->stack[l->depth - 1].key;
}

static int on_scalar(loader *l, const yaml_event_t *e)
{
    if (wants_key(l))
        return take_key(l, &l->stack[l->depth - 1], e);
    const char *s = (const char *)e->data.scalar.value;
    size_t len = e->data.scalar.length;
    /* quoting is how a document asks for a string (tags are not looked at) */
    json_t *v =
        e->data.scalar.style != YAML_PLAIN_SCALAR_STYLE ? text(l, s, len) : plain_scalar(l, s, len);
    if (!v)
        return refused_text(l, s, len, e->start_mark, "text");
    const char *anchor = (const char *)e->data.scalar.anchor;
    if (anchor && anchor_set(l, anchor, v, 1) < 0) {
        json_decref(v);
        return oom(l, e->start_mark);
    }
    return place(l, v, e->start_mark, 1);
}

static int on_alias(loader *l, const yaml_event_t *e)
{
    const char *name = (const char *)e->data.alias.anchor;
    if (wants_key(l))
        return fail_at(l, e->start_mark, CBX_EPARSE, "%s", "an alias cannot be a mapping key");
    json_t *ix = json_object_get(l->anchors, name);
    if (!ix || !l->anchor_v || (size_t)json_integer_value(ix) >= l->nanchors)
        return fail_at(l, e->start_mark, CBX_EPARSE,
                       "unknown alias '*%.100s' (no complete anchor '&%.100s' before it)", name,
                       name);
    const anchor_def *a = &l->anchor_v[json_integer_value(ix)];
    /* set by anchor_set for every index below nanchors (the analyzer loses that on realloc) */
    // NOLINTNEXTLINE(clang-analyzer-core.UndefinedBinaryOperatorResult)
    if (a->nodes > MAX_ALIAS_NODES - l->alias_nodes)
        return fail_at(l, e->start_mark, CBX_EPARSE,
                       "aliases expand to more than %d nodes (a document that multiplies itself)",
                       MAX_ALIAS_NODES);
    l->alias_nodes += a->nodes;
    return place(l, json_incref(a->value), e->start_mark, a->nodes);
}

static int on_start(loader *l, const yaml_event_t *e, int mapping)
{
    if (wants_key(l))
        return fail_at(l, e->start_mark, CBX_EPARSE, "%s", "mapping keys must be scalars");
    if (l->depth >= MAX_DEPTH)
        return fail_at(l, e->start_mark, CBX_EPARSE, "nesting deeper than %d levels", MAX_DEPTH);
    if (l->depth == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        frame *ns = realloc(l->stack, cap * sizeof *ns);
        if (!ns)
            return oom(l, e->start_mark);
        l->stack = ns;
        l->cap = cap;
    }
    json_t *c = mapping ? json_object() : json_array();
    const char *anchor =
        (const char *)(mapping ? e->data.mapping_start.anchor : e->data.sequence_start.anchor);
    char *a = anchor ? strdup(anchor) : NULL;
    if (!c || (anchor && !a)) {
        json_decref(c);
        free(a);
        return oom(l, e->start_mark);
    }
    /* placed now, filled as the events come: a half-built tree is freed with the root */
    int r = place(l, c, e->start_mark, 0);
    if (r < 0) {
        free(a);
        return r;
    }
    l->stack[l->depth++] = (frame){.node = c, .mapping = mapping, .anchor = a, .nodes = 1};
    return 0;
}

static int on_end(loader *l, const yaml_event_t *e)
{
    if (!l->stack || l->depth == 0) /* libyaml ends only what it began */
        return fail_at(l, e->start_mark, CBX_EPARSE, "%s", "an end without a start");
    frame f = l->stack[--l->depth];
    int r = 0;
    if (f.anchor && anchor_set(l, f.anchor, f.node, f.nodes) < 0)
        r = oom(l, e->start_mark);
    free(f.anchor);
    free(f.key);
    if (l->depth)
        l->stack[l->depth - 1].nodes += f.nodes;
    return r;
}

static void loader_free(loader *l)
{
    while (l->depth) {
        frame *f = &l->stack[--l->depth];
        free(f->anchor);
        free(f->key);
    }
    free(l->stack);
    for (size_t i = 0; i < l->nanchors; i++)
        json_decref(l->anchor_v[i].value);
    free(l->anchor_v);
    json_decref(l->anchors);
    json_decref(l->texts);
    l->texts = NULL;
}

static int syntax_error(loader *l, const yaml_parser_t *p)
{
    if (p->error == YAML_MEMORY_ERROR)
        return oom(l, p->problem_mark);
    yaml_mark_t m = p->problem ? p->problem_mark : p->mark;
    if (p->error == YAML_READER_ERROR) /* the mark is not set: the offset is what is known */
        return cbx_err_set_at(l->err, CBX_EPARSE, l->out->file, (int)p->mark.line + 1,
                              (int)p->mark.column + 1, "%s (byte %zu)",
                              p->problem ? p->problem : "cannot read the text", p->problem_offset);
    return fail_at(l, m, CBX_EPARSE, "%s%s%s", p->problem ? p->problem : "syntax error",
                   p->context ? " " : "", p->context ? p->context : "");
}

static int parse(loader *l, yaml_parser_t *p)
{
    int docs = 0;
    for (;;) {
        yaml_event_t e;
        if (!yaml_parser_parse(p, &e))
            return syntax_error(l, p);
        int r = 0, done = 0;
        switch (e.type) {
        case YAML_DOCUMENT_START_EVENT:
            if (++docs > 1)
                r = fail_at(l, e.start_mark, CBX_EPARSE, "%s",
                            "a second document (after ---): a file holds one document");
            break;
        case YAML_SCALAR_EVENT:
            r = on_scalar(l, &e);
            break;
        case YAML_ALIAS_EVENT:
            r = on_alias(l, &e);
            break;
        case YAML_SEQUENCE_START_EVENT:
            r = on_start(l, &e, 0);
            break;
        case YAML_MAPPING_START_EVENT:
            r = on_start(l, &e, 1);
            break;
        case YAML_SEQUENCE_END_EVENT:
        case YAML_MAPPING_END_EVENT:
            r = on_end(l, &e);
            break;
        case YAML_STREAM_END_EVENT:
            done = 1;
            break;
        default:
            break;
        }
        yaml_event_delete(&e);
        if (r < 0 || done)
            return r;
    }
}

/* A file read by the parser as it goes, up to the limit. */
typedef struct reader {
    FILE *f;
    size_t total, limit;
    int over;   /* the limit was passed */
    int failed; /* errno of a read error */
} reader;

static int read_some(void *data, unsigned char *buf, size_t size, size_t *got)
{
    reader *r = data;
    size_t n = fread(buf, 1, size, r->f);
    if (n == 0 && ferror(r->f)) {
        r->failed = errno ? errno : EIO;
        return 0;
    }
    r->total += n;
    if (r->total > r->limit) {
        r->over = 1;
        return 0;
    }
    *got = n;
    return 1;
}

static int too_big(cbx_err *err, const char *name, size_t limit)
{
    return cbx_err_set_at(err, -EFBIG, name, 0, 0,
                          "larger than %zu bytes, the limit on input (CBX_MAX_INPUT raises it)",
                          limit);
}

/* Parse from text (len bytes) or, when f is not NULL, from f. */
static int load(const char *text, size_t len, FILE *f, const char *name, cbx_yaml_doc *doc,
                cbx_err *err)
{
    memset(doc, 0, sizeof *doc);
    doc->file = strdup(name);
    doc->position = cbx__yaml_pos_new();
    loader l = {.out = doc, .err = err, .anchors = json_object(), .texts = json_object()};
    reader rd = {.f = f, .limit = max_bytes};
    yaml_parser_t parser;
    int r;
    if (!doc->file || !doc->position || !l.anchors) {
        r = cbx_err_set_at(err, -ENOMEM, name, 0, 0, "out of memory");
        goto out;
    }
    if (!f && len > max_bytes) {
        r = too_big(err, name, max_bytes);
        goto out;
    }
    if (!yaml_parser_initialize(&parser)) {
        r = cbx_err_set_at(err, -ENOMEM, name, 0, 0, "out of memory");
        goto out;
    }
    if (f)
        yaml_parser_set_input(&parser, read_some, &rd);
    else
        yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    r = parse(&l, &parser);
    yaml_parser_delete(&parser);
    json_decref(l.texts); /* the tree holds what it uses */
    l.texts = NULL;
    cbx__yaml_pos_seal(doc->position);
    if (rd.over)
        r = too_big(err, name, max_bytes);
    else if (rd.failed)
        r = cbx_err_set_at(err, -rd.failed, name, 0, 0, "cannot read: %s", strerror(rd.failed));
out:
    loader_free(&l);
    if (r < 0)
        cbx_yaml_doc_clear(doc);
    return r;
}

int cbx_yaml_load_string(const char *text, size_t len, const char *name, cbx_yaml_doc *doc,
                         cbx_err *err)
{
    return load(text, len, NULL, name ? name : "<string>", doc, err);
}

int cbx_yaml_load_file(const char *path, cbx_yaml_doc *doc, cbx_err *err)
{
    memset(doc, 0, sizeof *doc);
    FILE *f = fopen(path, "rb");
    if (!f)
        return cbx_err_set_at(err, -errno, path, 0, 0, "cannot open: %s", strerror(errno));
    struct stat st;
    int r;
    if (fstat(fileno(f), &st) == 0 && S_ISREG(st.st_mode) && (uint64_t)st.st_size > max_bytes)
        r = too_big(err, path, max_bytes); /* not read at all */
    else
        r = load(NULL, 0, f, path, doc, err);
    fclose(f);
    return r;
}

void cbx_yaml_doc_clear(cbx_yaml_doc *doc)
{
    if (!doc)
        return;
    json_decref(doc->root);
    cbx__yaml_pos_free(doc->position);
    free(doc->file);
    memset(doc, 0, sizeof *doc);
}
