/* YAML documents to jansson values, with the position of every node. */
#include "cbx/yaml.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

/* Aliases may multiply a document; past this many nodes it is refused. */
#define MAX_NODES 1000000

typedef struct loader {
    yaml_document_t *doc;
    cbx_yaml_doc *out;
    cbx_err *err;
    size_t nodes;
    int depth;
} loader;

static int fail_at(loader *l, yaml_mark_t m, const char *fmt, const char *detail)
    __attribute__((format(printf, 3, 0)));

/* fmt is one of this file's literals, with at most one %s for detail. */
static int fail_at(loader *l, yaml_mark_t m, const char *fmt, const char *detail)
{
    char msg[400];
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
    snprintf(msg, sizeof msg, fmt, detail);
#pragma GCC diagnostic pop
    return cbx_err_set_at(l->err, CBX_EPARSE, l->out->file, (int)m.line + 1, (int)m.column + 1,
                          "%s", msg);
}

static int match(const char *s, const char *const *words)
{
    for (; *words; words++)
        if (strcmp(s, *words) == 0)
            return 1;
    return 0;
}

/* A plain scalar under the core schema. */
static json_t *plain_scalar(const char *s, size_t len)
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
    return json_stringn(s, len);
}

static void remember(loader *l, const char *path, yaml_mark_t m)
{
    json_object_set_new(l->out->positions, path,
                        json_pack("[i, i]", (int)m.line + 1, (int)m.column + 1));
}

static int convert(loader *l, yaml_node_t *node, const char *path, json_t **out);

static int convert_mapping(loader *l, yaml_node_t *node, const char *path, json_t **out)
{
    json_t *obj = json_object();
    for (yaml_node_pair_t *p = node->data.mapping.pairs.start; p < node->data.mapping.pairs.top;
         p++) {
        yaml_node_t *k = yaml_document_get_node(l->doc, p->key);
        yaml_node_t *v = yaml_document_get_node(l->doc, p->value);
        if (!k || k->type != YAML_SCALAR_NODE) {
            json_decref(obj);
            return fail_at(l, k ? k->start_mark : node->start_mark, "%s",
                           "mapping keys must be scalars");
        }
        const char *key = (const char *)k->data.scalar.value;
        if (json_object_get(obj, key)) {
            json_decref(obj);
            return fail_at(l, k->start_mark, "duplicate key '%s'", key);
        }
        size_t len = strlen(path) + strlen(key) + 2;
        char *sub = malloc(len);
        if (!sub) {
            json_decref(obj);
            return -ENOMEM;
        }
        snprintf(sub, len, "%s%s%s", path, path[0] ? "." : "", key);
        remember(l, sub, k->start_mark);
        json_t *val = NULL;
        int r = convert(l, v, sub, &val);
        free(sub);
        if (r < 0) {
            json_decref(obj);
            return r;
        }
        json_object_set_new(obj, key, val);
    }
    *out = obj;
    return 0;
}

static int convert_sequence(loader *l, yaml_node_t *node, const char *path, json_t **out)
{
    json_t *arr = json_array();
    size_t i = 0;
    for (yaml_node_item_t *it = node->data.sequence.items.start; it < node->data.sequence.items.top;
         it++, i++) {
        size_t len = strlen(path) + 24;
        char *sub = malloc(len);
        if (!sub) {
            json_decref(arr);
            return -ENOMEM;
        }
        snprintf(sub, len, "%s[%zu]", path, i);
        json_t *val = NULL;
        int r = convert(l, yaml_document_get_node(l->doc, *it), sub, &val);
        free(sub);
        if (r < 0) {
            json_decref(arr);
            return r;
        }
        json_array_append_new(arr, val);
    }
    *out = arr;
    return 0;
}

static int convert(loader *l, yaml_node_t *node, const char *path, json_t **out)
{
    if (++l->nodes > MAX_NODES)
        return fail_at(l, node->start_mark, "%s",
                       "document too large once its aliases are expanded (over 1000000 nodes)");
    if (++l->depth > 512) {
        l->depth--;
        return fail_at(l, node->start_mark, "%s", "nesting deeper than 512 levels");
    }
    if (!json_object_get(l->out->positions, path))
        remember(l, path, node->start_mark);
    int r = 0;
    switch (node->type) {
    case YAML_SCALAR_NODE: {
        const char *s = (const char *)node->data.scalar.value;
        size_t len = node->data.scalar.length;
        /* libyaml's document loader gives every untagged scalar the str tag, so an explicit
         * !!str cannot be told apart: quoting is how a document asks for a string. */
        if (node->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
            *out = json_stringn(s, len);
        else
            *out = plain_scalar(s, len);
        if (!*out)
            r = fail_at(l, node->start_mark, "%s", "text is not valid UTF-8");
        break;
    }
    case YAML_MAPPING_NODE:
        r = convert_mapping(l, node, path, out);
        break;
    case YAML_SEQUENCE_NODE:
        r = convert_sequence(l, node, path, out);
        break;
    default:
        *out = json_null();
        break;
    }
    l->depth--;
    return r;
}

int cbx_yaml_load_string(const char *text, size_t len, const char *name, cbx_yaml_doc *doc,
                         cbx_err *err)
{
    memset(doc, 0, sizeof *doc);
    doc->file = strdup(name ? name : "<string>");
    doc->positions = json_object();
    if (!doc->file || !doc->positions) {
        cbx_yaml_doc_clear(doc);
        return cbx_err_set(err, -ENOMEM, "out of memory");
    }
    yaml_parser_t parser;
    yaml_document_t ydoc;
    if (!yaml_parser_initialize(&parser)) {
        cbx_yaml_doc_clear(doc);
        return cbx_err_set(err, -ENOMEM, "out of memory");
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    int r = 0;
    if (!yaml_parser_load(&parser, &ydoc)) {
        r = cbx_err_set_at(err, CBX_EPARSE, doc->file, (int)parser.problem_mark.line + 1,
                           (int)parser.problem_mark.column + 1, "%s%s%s",
                           parser.problem ? parser.problem : "syntax error",
                           parser.context ? " " : "", parser.context ? parser.context : "");
        yaml_parser_delete(&parser);
        cbx_yaml_doc_clear(doc);
        return r;
    }
    yaml_node_t *root = yaml_document_get_root_node(&ydoc);
    if (root) {
        loader l = {.doc = &ydoc, .out = doc, .err = err};
        r = convert(&l, root, "", &doc->root);
    }
    yaml_document_delete(&ydoc);
    yaml_parser_delete(&parser);
    if (r < 0)
        cbx_yaml_doc_clear(doc);
    return r;
}

int cbx_yaml_load_file(const char *path, cbx_yaml_doc *doc, cbx_err *err)
{
    memset(doc, 0, sizeof *doc);
    FILE *f = fopen(path, "rb");
    if (!f)
        return cbx_err_set_at(err, -errno, path, 0, 0, "cannot open: %s", strerror(errno));
    char *buf = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len == cap) {
            cap = cap ? cap * 2 : 65536;
            char *nb = realloc(buf, cap);
            if (!nb) {
                free(buf);
                fclose(f);
                return cbx_err_set_at(err, -ENOMEM, path, 0, 0, "out of memory");
            }
            buf = nb;
        }
        size_t n = fread(buf + len, 1, cap - len, f);
        len += n;
        if (n == 0)
            break;
    }
    int rerr = ferror(f);
    fclose(f);
    if (rerr) {
        free(buf);
        return cbx_err_set_at(err, -EIO, path, 0, 0, "cannot read");
    }
    int r = cbx_yaml_load_string(buf, len, path, doc, err);
    free(buf);
    return r;
}

void cbx_yaml_doc_clear(cbx_yaml_doc *doc)
{
    if (!doc)
        return;
    json_decref(doc->root);
    json_decref(doc->positions);
    free(doc->file);
    memset(doc, 0, sizeof *doc);
}

int cbx_yaml_where(const cbx_yaml_doc *doc, const char *path, int *line, int *col)
{
    *line = *col = 0;
    if (!doc->positions)
        return -ENOENT;
    char buf[512];
    snprintf(buf, sizeof buf, "%s", path ? path : "");
    for (;;) {
        json_t *p = json_object_get(doc->positions, buf);
        if (p) {
            *line = (int)json_integer_value(json_array_get(p, 0));
            *col = (int)json_integer_value(json_array_get(p, 1));
            return 0;
        }
        if (!buf[0])
            return -ENOENT;
        char *dot = strrchr(buf, '.'), *br = strrchr(buf, '[');
        char *cut = dot > br ? dot : br;
        if (cut)
            *cut = '\0';
        else
            buf[0] = '\0';
    }
}
