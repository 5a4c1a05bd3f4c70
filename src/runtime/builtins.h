/* The registry's side of the built-in executor types, and helpers shared by registry.c,
 * schema.c and plugin.c. Which types are built in is the executors' business
 * (executors/builtins.h): the runtime names none of them. */
#ifndef CBX_RUNTIME_BUILTINS_H
#define CBX_RUNTIME_BUILTINS_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "cbx/diag.h"
#include "cbx/executor.h"
#include "cbx/registry.h"
#include "core/text.h"

/* Register t as a built-in (cbx_registry_unregister refuses it, cbx_registry_free does not call
 * its destroy). Same checks and errors as cbx_registry_register. */
int cbx__registry_register_builtin(cbx_registry *r, const cbx_executor_type *t, cbx_err *err);

/* Register every built-in type into r (defined with the list, in executors/builtins.c; called by
 * cbx_registry_new). Returns 0, or the first registration error (err names the
 * type). */
int cbx__register_builtins(cbx_registry *r, cbx_err *err);

/* ---- shared by registry.c, schema.c and plugin.c ------------------------------------------ */

/* cbx__edit_distance and cbx__close_enough ("did you mean") live in core/text.h. */

/* Check a schema at registration (type_name is for messages). On success returns 0 and
 * *defaults: one parsed default per parameter (NULL where none), or NULL for an empty schema;
 * release with cbx__schema_defaults_free. Errors: CBX_EINVAL_CONFIG, -ENOMEM. */
int cbx__schema_check(const char *type_name, const cbx_param *params, json_t ***defaults,
                      cbx_err *err);
void cbx__schema_defaults_free(json_t **defaults, const cbx_param *params);

/* A deep copy of v (a new reference; NULL without memory, or when v contains itself) without
 * json_deep_copy's table of the containers on the way (most of the cost of a small copy). */
json_t *cbx__json_copy(const json_t *v);

/* cbx_schema_validate with the defaults already parsed (defaults may be NULL: parsed here). */
int cbx__schema_validate(const cbx_param *params, json_t *const *defaults, const json_t *value,
                         json_t **normalized, cbx_diag *diag);

/* Registrations are numbered; a plugin whose init fails has the types it added removed. */
uint64_t cbx__registry_mark(const cbx_registry *r);
/* Unregister (calling destroy) every type registered since mark. */
void cbx__registry_rollback(cbx_registry *r, uint64_t mark);
/* Keep a dlopen handle until cbx_registry_free (closed after the destroy hooks). 0 or -ENOMEM. */
int cbx__registry_keep_handle(cbx_registry *r, void *handle);
/* 1 when r already holds handle. */
int cbx__registry_has_handle(const cbx_registry *r, void *handle);

/* The JSON type of a value in a schema's words ("integer", "object", ...), and whether a value
 * is of a parameter type (ANY accepts all). Shared with the flow checker's inputs. */
const char *cbx__json_kind(const json_t *v);
int cbx__param_type_accepts(cbx_param_type want, const json_t *v);

#endif
