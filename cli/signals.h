/* A second SIGINT or SIGTERM ends cbx at once, whatever its event loop is doing. */
#ifndef CBX_CLI_SIGNALS_H
#define CBX_CLI_SIGNALS_H

/* Put a counting handler in front of whatever handles SIGINT and SIGTERM now (libuv's, after
 * uv_signal_start): the first signal of either goes on to that handler (the loop then cancels
 * the work and cbx exits 130 when it is done); the second one calls _exit(130) from the handler
 * itself, so it works while the loop is blocked. Call it after uv_signal_start; when the loop's
 * handles stop, libuv puts the default action back. Calling it again changes nothing. */
void cli_signals_guard(void);

#endif
