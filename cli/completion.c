/* cbx completion bash|zsh: completion scripts made from the subcommands' option tables (read
 * in probe mode, cli_opt_table), so that a new option completes without an edit here. What
 * the arguments of each command are (executor types, actions, files) is the table below. */
#include "args.h"
#include "cli.h"
#include "output.h"

#include <stdio.h>
#include <string.h>

static const char help[] =
    "Usage: cbx completion bash|zsh\n"
    "\n"
    "Print a completion script for the shell: subcommands, their options (from the same\n"
    "tables the parser uses), executor types (asked of 'cbx types' as you type, so plugins and\n"
    "Lua types from the configuration complete too), actions and files. 'make install' puts\n"
    "them in share/bash-completion/completions/cbx and share/zsh/site-functions/_cbx.\n"
    "\n"
    "Options:\n"
    "  -h, --help   this help\n"
    "\n"
    "Examples:\n"
    "  source <(cbx completion bash)                     # in ~/.bashrc\n"
    "  cbx completion zsh > ~/.zfunc/_cbx                # with fpath+=(~/.zfunc) in ~/.zshrc\n"
    "\n";

/* What a command's positional arguments are: "@types" (executor types), "@files", "@commands"
 * (cbx's subcommands) or a list of words; the first one only, then files. */
static const struct {
    const char *cmd, *words;
} positional[] = {
    {"exec", "@types"},    {"types", "@types"},     {"breaker", "list show reset open close"},
    {"history", "clear"},  {"config", "show path"}, {"completion", "bash zsh"},
    {"help", "@commands"}, {"validate", "@files"},  {"run", "@files"},
    {"graph", "@files"},
};

static const char *positional_of(const char *cmd)
{
    for (size_t i = 0; i < sizeof positional / sizeof positional[0]; i++)
        if (strcmp(positional[i].cmd, cmd) == 0)
            return positional[i].words;
    return "";
}

/* The global options (main.c parses them by hand: no table). */
static const cli_opt globals[] = {
    {"help", 'h', 0, 1},
    {"version", 0, 0, 2},
    {"state-dir", 0, 1, 3},
    {"config", 0, 1, 4},
    {"no-journal", 0, 0, 5},
    {"utc", 0, 0, 6},
    {0},
};

/* "--a --b -c" (which 0: every option; 1: those that take a value). */
static void put_opts(FILE *f, const cli_opt *t, int which)
{
    int first = 1;
    for (; t && t->name; t++) {
        if (which && !t->has_arg)
            continue;
        fprintf(f, "%s--%s", first ? "" : " ", t->name);
        if (t->short_name)
            fprintf(f, " -%c", t->short_name);
        first = 0;
    }
}

static void bash_spec(FILE *f, const char *name, const cli_opt *t, const char *words)
{
    fprintf(f, "    %s)\n        opts='", name[0] ? name : "''");
    put_opts(f, t, 0);
    fputs("'\n        vals='", f);
    put_opts(f, t, 1);
    fprintf(f, "'\n        words='%s'\n        ;;\n", words);
}

static void put_bash(FILE *f)
{
    fputs("# bash completion for cbx: made by 'cbx completion bash' from cbx's option tables.\n"
          "_cbx_spec() {\n"
          "    case $1 in\n",
          f);
    bash_spec(f, "", globals, "@commands");
    for (size_t i = 0; i < cli_n_commands; i++)
        bash_spec(f, cli_commands[i].name, cli_opt_table(&cli_commands[i]),
                  positional_of(cli_commands[i].name));
    bash_spec(f, "help", NULL, "@commands");
    fputs(
        "    *) opts='' vals='' words='' ;;\n"
        "    esac\n"
        "}\n"
        "\n"
        "_cbx() {\n"
        "    local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD - 1]}\n"
        "    local cmd='' npos=0 dashdash=0 after=0 i w opts vals words\n"
        "    COMPREPLY=()\n"
        "    _cbx_spec ''\n"
        "    for ((i = 1; i < COMP_CWORD; i++)); do\n"
        "        w=${COMP_WORDS[i]}\n"
        "        if ((dashdash)); then\n"
        "            after=$((after + 1))\n"
        "        elif [[ $w == -- ]]; then\n"
        "            dashdash=1\n"
        "        elif [[ $w == -* ]]; then\n"
        "            [[ $w != *=* && \" $vals \" == *\" $w \"* ]] && i=$((i + 1))\n"
        "        elif [[ -z $cmd ]]; then\n"
        "            cmd=$w\n"
        "            _cbx_spec \"$cmd\"\n"
        "        else\n"
        "            npos=$((npos + 1))\n"
        "        fi\n"
        "    done\n"
        "    if ((dashdash)); then\n"
        "        ((after == 0)) && mapfile -t COMPREPLY < <(compgen -c -- \"$cur\")\n"
        "        return 0\n"
        "    fi\n"
        "    if [[ \" $vals \" == *\" $prev \"* ]]; then\n"
        "        [[ $prev == --state-dir ]] && mapfile -t COMPREPLY < <(compgen -d -- \"$cur\")\n"
        "        [[ $prev == --policy ]] && mapfile -t COMPREPLY < <(compgen -W \"$(command "
        "\"${COMP_WORDS[0]}\" "
        "config show 2>/dev/null | awk '/^policies\\./ { print substr($1, 10) }')\" -- \"$cur\")\n"
        "        return 0\n"
        "    fi\n"
        "    if [[ $cur == -* ]]; then\n"
        "        mapfile -t COMPREPLY < <(compgen -W \"$opts\" -- \"$cur\")\n"
        "        return 0\n"
        "    fi\n"
        "    ((npos > 0)) && return 0\n"
        "    case $words in\n"
        "    @files) ;;\n"
        "    @types)\n"
        "        mapfile -t COMPREPLY < <(compgen -W \"$(command \"${COMP_WORDS[0]}\" types "
        "2>/dev/null | awk 'NR > 1 { print $1 }')\" -- \"$cur\")\n"
        "        ;;\n"
        "    @commands)\n"
        "        mapfile -t COMPREPLY < <(compgen -W '",
        f);
    for (size_t i = 0; i < cli_n_commands; i++)
        fprintf(f, "%s ", cli_commands[i].name);
    fputs("help' -- \"$cur\")\n"
          "        ;;\n"
          "    *) mapfile -t COMPREPLY < <(compgen -W \"$words\" -- \"$cur\") ;;\n"
          "    esac\n"
          "    return 0\n"
          "}\n"
          "complete -o bashdefault -o default -F _cbx cbx\n",
          f);
}

/* One _arguments spec per option: '--name' or '--name=:value:_default', '-c' or '-c+:...'. */
static void zsh_opts(FILE *f, const cli_opt *t)
{
    for (; t && t->name; t++) {
        const char *action = strcmp(t->name, "state-dir") == 0 ? "_files -/"
                             : t->has_arg                      ? "_default"
                                                               : NULL;
        if (action)
            fprintf(f, " \\\n            '--%s=:value:%s'", t->name, action);
        else
            fprintf(f, " \\\n            '--%s'", t->name);
        if (t->short_name && action)
            fprintf(f, " \\\n            '-%c+:value:%s'", t->short_name, action);
        else if (t->short_name)
            fprintf(f, " \\\n            '-%c'", t->short_name);
    }
}

static void put_zsh(FILE *f)
{
    fputs("#compdef cbx\n"
          "# zsh completion for cbx: made by 'cbx completion zsh' from cbx's option tables.\n"
          "\n"
          "_cbx_types() {\n"
          "    local -a types\n"
          "    types=(${(f)\"$(_call_program types cbx types 2>/dev/null | awk 'NR > 1 { print "
          "$1 }')\"})\n"
          "    _describe -t types 'executor type' types\n"
          "}\n"
          "\n"
          "_cbx() {\n"
          "    local curcontext=$curcontext state line\n"
          "    local -a cmds\n"
          "    cmds=(\n",
          f);
    for (size_t i = 0; i < cli_n_commands; i++) {
        fprintf(f, "        '%s:", cli_commands[i].name);
        for (const char *s = cli_commands[i].summary; *s; s++)
            fputs(*s == '\'' ? "'\\''" : *s == ':' ? "\\:" : (char[2]){*s, 0}, f);
        fputs("'\n", f);
    }
    fputs("        'help:help on a command'\n"
          "    )\n"
          "    _arguments -C",
          f);
    zsh_opts(f, globals);
    fputs(" \\\n            '1:command:->cmd' '*::arg:->args'\n"
          "    case $state in\n"
          "    cmd) _describe -t commands 'cbx command' cmds ;;\n"
          "    args)\n"
          "        case $words[1] in\n",
          f);
    for (size_t i = 0; i < cli_n_commands; i++) {
        const char *w = positional_of(cli_commands[i].name);
        fprintf(f, "        %s)\n            _arguments -s", cli_commands[i].name);
        zsh_opts(f, cli_opt_table(&cli_commands[i]));
        if (strcmp(w, "@types") == 0)
            fputs(" \\\n            '1:executor type:_cbx_types' '*:file:_files'", f);
        else if (strcmp(w, "@files") == 0 || !w[0])
            fputs(" \\\n            '*:file:_files'", f);
        else
            fprintf(f, " \\\n            '1:argument:(%s)' '*:file:_files'", w);
        fputs("\n            ;;\n", f);
    }
    fputs("        help) _describe -t commands 'cbx command' cmds ;;\n"
          "        esac\n"
          "        ;;\n"
          "    esac\n"
          "}\n"
          "\n"
          "_cbx \"$@\"\n",
          f);
}

int cli_cmd_completion(cli_ctx *ctx, int argc, char **argv)
{
    (void)ctx;
    static const char *const shells[] = {"bash", "zsh", NULL};
    static const cli_opt opts[] = {{"help", 'h', 0, CLI_OPT_HELP}, {0}};
    cli_args a;
    cli_args_init(&a, "completion", argc, argv, opts);
    const char *shell = NULL, *val;
    int id;
    while ((id = cli_args_next(&a, &val)) != CLI_ARGS_END) {
        switch (id) {
        case CLI_ARGS_ERROR:
            return CLI_EXIT_USAGE;
        case CLI_OPT_HELP:
            fputs(help, stdout);
            fputs(cli_exit_codes_help, stdout);
            return CLI_EXIT_OK;
        default:
            if (shell) {
                cli_err("completion: unexpected argument '%s'", val);
                return CLI_EXIT_USAGE;
            }
            if (cli_parse_choice("completion", val, shells))
                return CLI_EXIT_USAGE;
            shell = val;
        }
    }
    if (!shell) {
        cli_err("completion: expected a shell: bash or zsh");
        return CLI_EXIT_USAGE;
    }
    if (strcmp(shell, "bash") == 0)
        put_bash(stdout);
    else
        put_zsh(stdout);
    return fflush(stdout) == 0 ? CLI_EXIT_OK : CLI_EXIT_INTERNAL;
}
