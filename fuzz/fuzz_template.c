/* libFuzzer target: the template engine. The first byte chooses what the rest is: a string
 * value with {{ }} (check, references, render), or a bare expression (check, references,
 * evaluate), against a small context, in the sandbox with its limits. */
#include "cbx/template.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char ctx_text[] =
    "{\"inputs\": {\"url\": \"http://h:1/x\", \"n\": 3, \"list\": [1, 2], \"o\": {\"a\": null}},"
    " \"steps\": {\"a\": {\"status\": \"success\", \"outputs\": {\"stdout\": \"4\\n\"}}},"
    " \"item\": {\"k\": \"v\"}}";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static cbx_template_env *env;
    static json_t *ctx;
    if (!env) {
        cbx_template_opts o = {.max_instructions = 100000, .max_memory_bytes = 16 << 20};
        if (cbx_template_env_new(&env, &o, NULL) < 0 || !(ctx = json_loads(ctx_text, 0, NULL)))
            abort();
    }
    if (size < 1)
        return 0;
    int mode = data[0] & 1;
    char *text = malloc(size);
    if (!text)
        return 0;
    memcpy(text, data + 1, size - 1);
    text[size - 1] = '\0';
    json_t *ins = NULL, *sts = NULL, *out = NULL;
    cbx_err err;
    if (mode == 0) {
        json_t *v = json_stringn(text, size - 1);
        if (v && cbx_template_check(v, &err) == 0) {
            cbx_template_refs(v, &ins, &sts);
            cbx_template_render(env, v, ctx, &out, &err);
        }
        json_decref(v);
    } else if (cbx_template_check_expr(text, &err) == 0) {
        cbx_template_refs_expr(text, &ins, &sts);
        cbx_template_eval(env, text, ctx, &out, &err);
    }
    json_decref(out);
    json_decref(ins);
    json_decref(sts);
    free(text);
    return 0;
}
