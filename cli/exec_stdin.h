/* cbx exec -- CMD: the command's standard input is cbx's (see exec_stdin.c). */
#ifndef CBX_CLI_EXEC_STDIN_H
#define CBX_CLI_EXEC_STDIN_H

#include <jansson.h>
#include <stdint.h>

/* Default of --stdin-max: bytes of piped stdin kept for replay. */
#define CLI_STDIN_MAX_DEFAULT ((uint64_t)64 << 20)

/* Give the command cbx's stdin through the stdin_fd parameter, unless params already say what
 * its stdin is (stdin or stdin_fd) or cbx has no stdin. runs: how many times the command may
 * start (attempts times repeats). A pipe or socket read more than once is first read to its end
 * into an anonymous file (up to max bytes), which every run reads from its start; anything else
 * (a terminal, a file, /dev/null) is passed as is. Returns 0, or an exit code after a line on
 * stderr: 2 when the piped input is over max, 70 when it cannot be kept. */
int cli_exec_stdin(json_t *params, uint64_t runs, uint64_t max);

#endif
