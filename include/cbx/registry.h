/* cbx/registry.h - the executor types a runtime knows, built-in and added.
 *
 * A registry starts with the built-in types (command, http, function, lua, chaos, ... as they
 * exist). More come from cbx_registry_register (C code), from plugins (.so files exporting
 * cbx_plugin_init) and from Lua files (see cbx/lua_executor.h). Built-ins cannot be
 * unregistered. Not thread-safe: set a registry up, then share it read-only.
 */
#ifndef CBX_REGISTRY_H
#define CBX_REGISTRY_H

#include <jansson.h>
#include <stddef.h>

#include "cbx/diag.h"
#include "cbx/err.h"
#include "cbx/executor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cbx_registry cbx_registry;

/* A new registry holding the built-in types. Returns 0, or -ENOMEM. Free with
 * cbx_registry_free, which calls each added type's destroy. */
int cbx_registry_new(cbx_registry **out, cbx_err *err);
void cbx_registry_free(cbx_registry *r);

/* Add a type (borrowed: the struct and its strings must stay valid until unregistered or the
 * registry is freed). Checks the ABI number (CBX_EXECUTOR_ABI_MIN to CBX_EXECUTOR_ABI), the name,
 * the schema (defaults parse and fit their parameter) and the outputs declared (named, distinct,
 * known types). Errors: CBX_EABI (an ABI outside that range), CBX_EEXISTS (name taken),
 * CBX_EINVAL_CONFIG (bad name, schema or ops - err says which). */
int cbx_registry_register(cbx_registry *r, const cbx_executor_type *t, cbx_err *err);

/* Remove an added type. Errors: CBX_EUNKNOWN_TYPE, CBX_EBUILTIN (a built-in). */
int cbx_registry_unregister(cbx_registry *r, const char *name, cbx_err *err);

/* The type called name, or NULL. */
const cbx_executor_type *cbx_registry_find(const cbx_registry *r, const char *name);

/* 1 if the named type is built in. */
int cbx_registry_is_builtin(const cbx_registry *r, const char *name);

/* The types, sorted by name: fills out[0..max) and returns how many there are in all. */
size_t cbx_registry_list(const cbx_registry *r, const cbx_executor_type **out, size_t max);

/* Check params against the type's schema and validate hook. Reports every problem at once into
 * *diag (each with the parameter path as where, and the expected type in the message); unknown
 * parameters are problems too. On success returns 0 and, if normalized is not NULL, a new
 * object with the defaults applied (the caller owns it). Returns CBX_EUNKNOWN_TYPE (one problem
 * naming it) or CBX_EINVAL_CONFIG. */
int cbx_registry_validate(const cbx_registry *r, const char *type, const json_t *params,
                          json_t **normalized, cbx_diag *diag);

/* The same, for a schema on its own. */
int cbx_schema_validate(const cbx_param *params, const json_t *value, json_t **normalized,
                        cbx_diag *diag);

/* The schema as a JSON Schema (draft 2020-12) object: type object, properties, required,
 * additionalProperties false; secrets marked "writeOnly": true. New reference. */
json_t *cbx_schema_to_json(const cbx_param *params);

/* A copy of params with every secret parameter's value replaced by "***" (new reference). */
json_t *cbx_schema_redact(const cbx_param *params, const json_t *value);

/* ---- plugins ------------------------------------------------------------------------------- */

/* What a plugin .so exports, with C linkage:
 *   int cbx_plugin_init(cbx_registry *r, uint32_t abi, cbx_err *err);
 * It must return CBX_EABI when abi != the CBX_EXECUTOR_ABI it was built with, and otherwise
 * register its types (static structs) and return 0. The loader offers its own ABI first and,
 * when the plugin refuses it with CBX_EABI, each older one it still accepts (down to
 * CBX_EXECUTOR_ABI_MIN), newest first, undoing what a refusing init registered: a plugin built
 * against an older header keeps loading, its types read as that ABI (cbx/executor.h). */
#define CBX_PLUGIN_INIT_SYMBOL "cbx_plugin_init"
/* The plugin's side of the contract (defined by each plugin, not by libcbx): declared here so
 * that the compiler checks every plugin's signature. */
int cbx_plugin_init(cbx_registry *r, uint32_t abi, cbx_err *err);
typedef int (*cbx_plugin_init_fn)(cbx_registry *r, uint32_t abi, cbx_err *err);

/* Load one plugin file. Errors: -ENOENT / -EACCES (unreadable: err names the file),
 * CBX_EPLUGIN (not a shared object, or no cbx_plugin_init: err has dlerror's text), CBX_EABI,
 * or what the init returned. The library stays loaded until the registry is freed. */
int cbx_registry_load_plugin(cbx_registry *r, const char *path, cbx_err *err);

/* Load every *.so in each directory of a colon-separated path (missing directories are
 * skipped). Stops at the first failure. Returns the number loaded, or a negative code. */
int cbx_registry_load_plugin_path(cbx_registry *r, const char *dirs, cbx_err *err);

#ifdef __cplusplus
}
#endif
#endif
