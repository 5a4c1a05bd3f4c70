# Manual pages from the --help texts: one per subcommand, its synopsis the help's usage lines,
# rendered by groff without a warning, and the pages the build installs are the current ones.
. "$(dirname "$0")/lib.bash"
command -v groff >/dev/null || fail "the man page test needs groff (scripts/deps installs groff-base)"

# the subcommands, as 'cbx --help' lists them ('help' is part of cbx(1))
"$CBX" --help | awk '/^Commands:/ { on = 1; next } on && /^$/ { exit } on && /^  [a-z]/ { print $1 }' |
    grep -vx help >"$TMP/commands"
[ "$(wc -l <"$TMP/commands")" -ge 12 ] || fail "too few commands in cbx --help: $(cat "$TMP/commands")"

run "$CBX" help --man-dir "$TMP/man"
expect_rc 0 "help --man-dir"

# the synopsis of a page, as text
synopsis() {
    sed -n '/^\.SH SYNOPSIS$/,/^\.SH /p' "$1" | grep -v '^\.' | sed -e 's/\\-/-/g' -e 's/\\&//g' -e 's/\\e/\\/g'
}
# the usage lines of a --help text: "Usage: " and the indented lines under it
usage_lines() {
    awk 'NR == 1 { sub(/^Usage: /, ""); print; next } /^ / { sub(/^ +/, ""); print; next } { exit }'
}

check_page() { # PAGE HELP-COMMAND...
    local page=$1
    shift
    [ -s "$page" ] || fail "no page $page"
    "$@" --help | usage_lines >"$TMP/want"
    [ -s "$TMP/want" ] || fail "$*: no usage line"
    synopsis "$page" >"$TMP/got"
    diff -u "$TMP/want" "$TMP/got" >&2 || fail "$page: the synopsis is not the --help usage"
    groff -man -ww -z "$page" 2>"$TMP/groff" || fail "$page: groff failed"
    [ ! -s "$TMP/groff" ] || fail "$page: groff warns: $(cat "$TMP/groff")"
    grep -q '^\.SH NAME$' "$page" || fail "$page: no NAME section"
}

check_page "$TMP/man/cbx.1" "$CBX"
while read -r cmd; do
    check_page "$TMP/man/cbx-$cmd.1" "$CBX" "$cmd"
    grep -q "^cbx\\\\-$cmd \\\\- " "$TMP/man/cbx-$cmd.1" || fail "cbx-$cmd.1: NAME line"
    grep -q "cbx\\\\-$cmd\\\\fR(1)" "$TMP/man/cbx.1" || fail "cbx.1 does not refer to cbx-$cmd(1)"
done <"$TMP/commands"
# no page for a command that is not there
[ "$(find "$TMP/man" -name '*.1' | wc -l)" -eq $(($(wc -l <"$TMP/commands") + 1)) ] ||
    fail "pages beyond the commands: $(ls "$TMP/man")"

# an option of the help is an item (.TP) of the page
grep -A1 '^\.TP$' "$TMP/man/cbx-exec.1" | grep -qF '\fB\-\-timeout DUR\fR' ||
    fail "cbx-exec.1 lacks the --timeout item"

# help --man: one page on stdout, the same as the file
run "$CBX" help --man exec
expect_rc 0 "help --man exec"
cmp -s "$TMP/out" "$TMP/man/cbx-exec.1" || fail "help --man exec differs from --man-dir's page"
run "$CBX" help --man exce
expect_rc 2 "help --man with an unknown command"
expect_err_line "did you mean 'exec'?" "help --man suggestion"

# the pages the build made (and make install installs) are the ones of this binary
gen="$(dirname "$CBX")/generated/man1"
if [ -d "$gen" ]; then
    diff -r "$TMP/man" "$gen" >&2 || fail "the build's pages in $gen are stale"
fi
echo "ok [$TEST]"
