/* The built-in executor types of function.c (also declared in executors/builtins.h). */
#ifndef CBX_EXECUTORS_FUNCTION_INTERNAL_H
#define CBX_EXECUTORS_FUNCTION_INTERNAL_H

#include "cbx/executor.h"

/* Static types, never freed: "function" and "cached_function". */
const cbx_executor_type *cbx__function_type(void);
const cbx_executor_type *cbx__cached_function_type(void);

#endif
