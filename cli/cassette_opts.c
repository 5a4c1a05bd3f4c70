/* --record DIR and --replay DIR (cbx exec, cbx run): the model exchanges of the llm and agent
 * executors written to, or served from, a directory of cassettes, through the variables those
 * executors read (CBX_LLM_RECORD, CBX_LLM_REPLAY; docs/executors.md, "Record and replay"). */
#include "cli.h"
#include "output.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int cli_cassette_option(const char *flag, const char *dir, int replay)
{
    struct stat st;
    if (replay) {
        if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
            cli_err("%s %s: %s", flag, dir,
                    stat(dir, &st) < 0 ? strerror(errno) : "not a directory");
            return CLI_EXIT_USAGE;
        }
    } else if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
        cli_err("%s %s: cannot make the directory: %s", flag, dir, strerror(errno));
        return CLI_EXIT_USAGE;
    } else if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
        cli_err("%s %s: not a directory", flag, dir);
        return CLI_EXIT_USAGE;
    }
    setenv(replay ? "CBX_LLM_REPLAY" : "CBX_LLM_RECORD", dir, 1);
    return 0;
}
