/* cbx exec -- CMD on a terminal: the command gets a pty of its own (see exec_tty.c). */
#ifndef CBX_CLI_EXEC_TTY_H
#define CBX_CLI_EXEC_TTY_H

/* Put the terminal on fd into raw mode (what is typed goes to the command's pty as is: ^C is
 * the command's, not cbx's) until cli_tty_restore, which also runs at exit. 0, or -1 when fd is
 * not a terminal or cannot be changed (then nothing was). */
int cli_tty_raw(int fd);

/* Put the terminal back as it was (nothing when cli_tty_raw did not change it). */
void cli_tty_restore(void);

#endif
