/* A flow file's `requires: {lua: [...], plugins: [...]}`: the Lua executor types and plugins it
 * needs, paths relative to the file, added to the types a command loads so that validate, run
 * and graph need no --lua or --plugin-path. */
#ifndef CBX_CLI_FLOW_REQUIRES_H
#define CBX_CLI_FLOW_REQUIRES_H

#include "cli.h"

/* Read file's requires: (a file that cannot be read or parsed is left to the loader, which
 * reports it) and add its entries, resolved against the file's directory, to src. Returns 0, or
 * CLI_EXIT_USAGE after printing file:line:col: message for a bad requires: block. The paths live
 * until cli_flow_requires_free. */
int cli_flow_requires(const char *cmd, const char *file, cli_types_src *src);
void cli_flow_requires_free(void);

#endif
