# cbx exec -- CMD passes its stdin to the command: live when it runs once; read once and replayed
# to every attempt when it is retried (up to --stdin-max, refused past it).
. "$(dirname "$0")/lib.bash"

echo x | "$CBX" exec -- cat >"$TMP/out" 2>"$TMP/err"
rc=$?
expect_rc 0 "echo x | cbx exec -- cat"
[ "$(cat "$TMP/out")" = "x" ] || fail "stdin through a pipe: '$(cat "$TMP/out")'"

# live: the command answers the first line before the second is written (a rendezvous)
mkfifo "$TMP/fifo"
"$CBX" exec -- sh -c 'read a; echo "got $a"; read b; echo "got $b"' <"$TMP/fifo" \
    >"$TMP/out" 2>"$TMP/err" &
pid=$!
exec 3>"$TMP/fifo"
echo one >&3
wait_for "$TMP/out" $pid || fail "no answer to the first line: $(cat "$TMP/err")"
[ "$(cat "$TMP/out")" = "got one" ] || fail "first answer: $(cat "$TMP/out")"
echo two >&3
exec 3>&-
wait $pid
rc=$?
expect_rc 0 "the live stdin"
[ "$(cat "$TMP/out")" = "$(printf 'got one\ngot two')" ] || fail "live stdin: $(cat "$TMP/out")"

# retried: every attempt reads all of the piped input
printf 'line1\nline2\n' | "$CBX" exec --retries 2 --retry-delay 1ms -- sh -c 'cat; exit 1' \
    >"$TMP/out" 2>"$TMP/err"
rc=$?
expect_rc 1 "three failing attempts"
[ "$(cat "$TMP/out")" = "$(printf 'line1\nline2\nline1\nline2\nline1\nline2')" ] ||
    fail "stdin replayed on the retries: '$(cat "$TMP/out")'"

# the same from a file (opened anew for each attempt) and for --repeat
printf 'abc' >"$TMP/in"
run "$CBX" exec --retries 1 --retry-delay 1ms -- sh -c 'cat; echo; exit 1' <"$TMP/in"
expect_rc 1 "a file as stdin, retried"
[ "$(cat "$TMP/out")" = "$(printf 'abc\nabc')" ] || fail "file replayed: '$(cat "$TMP/out")'"
printf 'p' | "$CBX" exec --json --repeat 2 -- cat >"$TMP/out" 2>"$TMP/err"
[ "$(jqv '[.results[].outputs.stdout] | join(",")')" = "p,p" ] ||
    fail "--repeat with piped stdin: $(head -c 600 "$TMP/out")"

# past the cap: refused before anything runs, with a clear line
head -c 5000 /dev/zero | "$CBX" exec --stdin-max 1000 --retries 2 -- sh -c 'echo ran' \
    >"$TMP/out" 2>"$TMP/err"
rc=$?
expect_rc 2 "piped stdin over --stdin-max with retries"
expect_err_line "more than 1000 bytes came through a pipe" "over the cap"
[ ! -s "$TMP/out" ] || fail "the command ran: $(cat "$TMP/out")"
# ... while a single run passes any amount through
head -c 5000 /dev/zero | "$CBX" exec --stdin-max 1000 -- wc -c >"$TMP/out" 2>"$TMP/err"
[ "$(tr -d ' ' <"$TMP/out")" = 5000 ] || fail "single run over the cap: $(cat "$TMP/out")"

# -p stdin wins over cbx's stdin
echo ignored | "$CBX" exec -p stdin=given -- cat >"$TMP/out" 2>"$TMP/err"
[ "$(cat "$TMP/out")" = "given" ] || fail "-p stdin: $(cat "$TMP/out")"
echo "ok [$TEST]"
