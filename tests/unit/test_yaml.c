/* YAML to JSON with positions. */
#include "cbx/yaml.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

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
    cr_assert(strstr(err.msg, "too large"), "%s", err.msg);
}

Test(yaml, empty_document)
{
    cbx_yaml_doc d = load("");
    cr_assert_null(d.root);
    cbx_yaml_doc_clear(&d);
    cbx_yaml_doc_clear(NULL);
}
