/* A flow step's chunks, bounded, for templates (steps.<name>.chunks). */
#include "flow/flow_chunks.h"

#include <stdlib.h>
#include <string.h>

static int mentions(const char *s)
{
    return s && strstr(s, "chunks") != NULL;
}

static int json_mentions(const json_t *v)
{
    if (json_is_string(v))
        return mentions(json_string_value(v)) && strstr(json_string_value(v), "{{");
    const char *k;
    json_t *x;
    size_t i;
    if (json_is_object(v)) {
        json_object_foreach((json_t *)v, k, x)
        {
            if (json_mentions(x))
                return 1;
        }
    } else if (json_is_array(v)) {
        json_array_foreach(v, i, x)
        {
            if (json_mentions(x))
                return 1;
        }
    }
    return 0;
}

static int steps_mention(const cbx__flow_step *steps, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const cbx__flow_step *s = &steps[i];
        if (json_mentions(s->config) || mentions(s->when) || mentions(s->foreach) ||
            json_mentions(s->subflow_inputs) || steps_mention(s->children, s->nchildren) ||
            (s->subflow && cbx__flow_wants_chunks(s->subflow)))
            return 1;
    }
    return 0;
}

int cbx__flow_wants_chunks(const cbx_flow *f)
{
    return f && (json_mentions(f->outputs) || steps_mention(f->steps, f->nsteps));
}

void cbx__flow_chunks_add(cbx__flow_chunks *fc, size_t item, const cbx_chunk *c)
{
    size_t bytes = c->event ? 0 : c->len;
    if (c->event) {
        char *d = json_dumps(c->event, JSON_COMPACT | JSON_ENCODE_ANY);
        bytes = d ? strlen(d) : 0;
        free(d);
    }
    if (!fc->list)
        fc->list = json_array();
    if (!fc->list || json_array_size(fc->list) >= CBX__FLOW_CHUNKS_MAX ||
        fc->bytes + bytes > CBX__FLOW_CHUNKS_MAX_BYTES) {
        fc->dropped++;
        return;
    }
    json_t *o = json_object();
    if (!o)
        return;
    json_object_set_new(o, "attempt", json_integer(c->attempt));
    json_object_set_new(o, "seq", json_integer((json_int_t)c->seq));
    json_object_set_new(o, "channel", json_string(c->channel));
    if (c->event) {
        json_object_set(o, "event", (json_t *)c->event);
    } else {
        json_t *t = json_stringn(c->text, c->len);
        if (!t) { /* a character cut between two chunks: its bytes as '?' */
            char *copy = malloc(c->len + 1);
            for (size_t i = 0; copy && i < c->len; i++)
                copy[i] = (unsigned char)c->text[i] < 0x80 ? c->text[i] : '?';
            t = copy ? json_stringn(copy, c->len) : NULL;
            free(copy);
        }
        json_object_set_new(o, "text", t ? t : json_string(""));
    }
    if (item != SIZE_MAX)
        json_object_set_new(o, "item", json_integer((json_int_t)item));
    json_array_append_new(fc->list, o);
    fc->bytes += bytes;
}

void cbx__flow_chunks_ctx(const cbx__flow_chunks *fc, json_t *step_ctx)
{
    if (!step_ctx)
        return;
    json_object_set(step_ctx, "chunks", fc->list ? fc->list : json_array());
    if (fc->dropped)
        json_object_set_new(step_ctx, "chunks_dropped", json_integer((json_int_t)fc->dropped));
}

void cbx__flow_chunks_free(cbx__flow_chunks *fc)
{
    json_decref(fc->list);
    memset(fc, 0, sizeof *fc);
}
