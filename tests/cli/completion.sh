# cbx completion bash|zsh: the bash script, sourced, completes subcommands, options (every one
# the --help texts name), executor types (Lua ones too), actions and policy names; the zsh script
# parses; the build's scripts are the current ones.
. "$(dirname "$0")/lib.bash"

run "$CBX" completion bash
expect_rc 0 "completion bash"
cp "$TMP/out" "$TMP/cbx.bash"
run "$CBX" completion fish
expect_rc 2 "completion fish"
expect_err_line "expected one of bash, zsh" "completion of an unknown shell"

# complete WORDS...: the candidates for the last word (may be empty), one a line, sorted
complete() {
    CBX="$CBX" bash -c '
        source "$1"; shift
        COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); COMP_WORDS[0]=$CBX
        COMP_LINE="$*"; COMP_POINT=${#COMP_LINE}
        _cbx
        printf "%s\n" "${COMPREPLY[@]}"' _ "$TMP/cbx.bash" "$@" | sort
}
offers() { # WANT WORDS...: WANT is among the candidates
    local want=$1
    shift
    complete "$@" | grep -qxF -- "$want" || fail "'$*' does not offer '$want': $(complete "$@" | tr '\n' ' ')"
}
only() { # WANT WORDS...: WANT is the only candidate
    local want=$1
    shift
    [ "$(complete "$@")" = "$want" ] || fail "'$*' offers '$(complete "$@" | tr '\n' ' ')', not only '$want'"
}

only exec cbx ex
offers config cbx ''
offers completion cbx ''
offers help cbx ''
only --config cbx --conf
only exec cbx --state-dir "$TMP" ex
only exec cbx --config=x.yaml ex
only --timeout cbx exec --timeo
only --breaker-failures cbx exec --breaker-f
offers -p cbx exec -
only command cbx exec comm
only http cbx exec ht
only command cbx exec --timeout 5s comm
only command cbx --no-journal exec -j 4 comm
offers bash cbx exec -- ba
only reset cbx breaker res
only zsh cbx completion z
only show cbx config sh
only clear cbx history cl
only exec cbx help ex
only --format cbx graph --for
# a value is not completed as an option or a subcommand
[ -z "$(complete cbx exec --retries '')" ] || fail "exec --retries offers words for its value"

# executor types are asked of cbx as one types: a Lua type in CBX_LUA_PATH completes
cat >"$TMP/words.lua" <<'LUA'
return executor {
  name = "word_count",
  summary = "Counts the words of a text",
  params = {text = {type = "string", required = true}},
  run = function(p, ctx) return {words = 1} end,
}
LUA
CBX_LUA_PATH="$TMP/words.lua" only word_count cbx exec word_
# policy names from the configuration file
mkdir -p "$XDG_CONFIG_HOME/cbx"
printf 'policies:\n  quick: {timeout: 1s}\n  quiet: {timeout: 2s}\n' >"$XDG_CONFIG_HOME/cbx/config.yaml"
[ "$(complete cbx exec --policy qu | tr '\n' ' ')" = "quick quiet " ] ||
    fail "policy names: $(complete cbx exec --policy qu | tr '\n' ' ')"

# every option a --help text names completes (the script is made from the option tables)
"$CBX" --help | awk '/^Commands:/ { on = 1; next } on && /^$/ { exit } on && /^  [a-z]/ { print $1 }' |
    grep -vx help >"$TMP/commands"
while read -r cmd; do
    complete cbx "$cmd" -- >"$TMP/offered"
    "$CBX" "$cmd" --help | grep -oE '^ +(-[a-zA-Z0-9], )?--[a-z][a-z0-9-]*' | grep -oE -- '--[a-z0-9-]+$' |
        sort -u >"$TMP/named"
    [ -s "$TMP/named" ] || fail "$cmd --help names no option"
    missing=$(comm -23 "$TMP/named" "$TMP/offered")
    [ -z "$missing" ] || fail "'cbx $cmd --' does not offer: $missing"
done <"$TMP/commands"

# zsh: the script parses and names itself for compinit
run "$CBX" completion zsh
expect_rc 0 "completion zsh"
[ "$(head -1 "$TMP/out")" = "#compdef cbx" ] || fail "the zsh script lacks #compdef"
grep -q "'--breaker-failures=:value:_default'" "$TMP/out" || fail "zsh: no --breaker-failures"
command -v zsh >/dev/null || fail "the completion test needs zsh (scripts/deps installs it)"
zsh -n "$TMP/out" || fail "the zsh script does not parse"

# the scripts the build made (and make install installs) are the ones of this binary
gen="$(dirname "$CBX")/generated/completion"
if [ -d "$gen" ]; then
    cmp -s "$TMP/cbx.bash" "$gen/cbx" || fail "the build's bash script is stale"
    cmp -s "$TMP/out" "$gen/_cbx" || fail "the build's zsh script is stale"
fi
echo "ok [$TEST]"
