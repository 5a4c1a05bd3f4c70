/* The built-in executor types: each executor family exposes its type through one function
 * below, and cbx__register_builtins (declared in runtime/builtins.h, defined in builtins.c here)
 * adds them all to a new registry. The runtime names none of them. */
#ifndef CBX_EXECUTORS_BUILTINS_H
#define CBX_EXECUTORS_BUILTINS_H

#include "cbx/executor.h"

/* Each returns a static type (never freed). */
const cbx_executor_type *cbx__command_type(void);
const cbx_executor_type *cbx__http_type(void);
const cbx_executor_type *cbx__function_type(void);
const cbx_executor_type *cbx__cached_function_type(void);
const cbx_executor_type *cbx__chaos_type(void);
const cbx_executor_type *cbx__sqlite_type(void);
const cbx_executor_type *cbx__postgres_type(void);
const cbx_executor_type *cbx__dynamodb_type(void);
const cbx_executor_type *cbx__nats_type(void);
const cbx_executor_type *cbx__remote_type(void);
const cbx_executor_type *cbx__serverless_type(void);
const cbx_executor_type *cbx__llm_type(void);
const cbx_executor_type *cbx__agent_type(void);
const cbx_executor_type *cbx__container_type(void);

#endif
