/* cmd_exit CODE [STDOUT [STDERR]]: writes the texts, then exits with CODE. */
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: cmd_exit CODE [STDOUT [STDERR]]\n");
        return 64;
    }
    if (argc > 2)
        fputs(argv[2], stdout);
    if (argc > 3)
        fputs(argv[3], stderr);
    return atoi(argv[1]);
}
