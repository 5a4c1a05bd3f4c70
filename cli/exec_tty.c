/* The terminal's mode while a command runs on a pty of its own: raw, so that every key reaches
 * the command's terminal (which does the echo, line editing and ^C itself), and restored when
 * the command is done and at every exit through exit(). */
#include "exec_tty.h"

#include <stdlib.h>
#include <termios.h>
#include <unistd.h>

static struct termios saved;
static int saved_fd = -1;
static int at_exit_set;

void cli_tty_restore(void)
{
    if (saved_fd < 0)
        return;
    tcsetattr(saved_fd, TCSADRAIN, &saved);
    saved_fd = -1;
}

int cli_tty_raw(int fd)
{
    if (saved_fd >= 0)
        return 0;
    if (!isatty(fd) || tcgetattr(fd, &saved) < 0)
        return -1;
    struct termios raw = saved;
    cfmakeraw(&raw);
    if (!at_exit_set) {
        atexit(cli_tty_restore);
        at_exit_set = 1;
    }
    if (tcsetattr(fd, TCSADRAIN, &raw) < 0)
        return -1;
    saved_fd = fd;
    return 0;
}
