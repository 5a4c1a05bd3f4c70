# A command on a pty that closes its terminal before it exits keeps its own exit status: the
# master is held until the child has exited, so reading the end of the terminal (EIO) and
# letting go of it never hangs the terminal up under a live session leader (SIGHUP).
. "$(dirname "$0")/lib.bash"

# Deterministic: the session leader closes its terminal, then lives on for a while. Before the
# fix the master was closed as soon as its read gave EIO, and the leader died of SIGHUP.
run "$CBX" exec --json command -p 'argv=["sh","-c","exec 0<&- 1>&- 2>&-; sleep 1; exit 3"]' \
    -p pty=true -p 'stdin=hello
'
got=$(jq -c '[.outputs.exit_code, .outputs.signal]' "$TMP/out")
[ "$got" = "[3,null]" ] || fail "a leader that closed its terminal: $got (stderr: $(cat "$TMP/err"))"

# The race as users met it: stdin text larger than the terminal takes, read by a program that
# exits after its first read (head closes 0, 1 and 2 before exiting). Before the fix about one
# run in ten was reported killed by SIGHUP.
big=$(seq 1 3000 | tr '\n' ' ')
for i in $(seq 1 200); do
    "$CBX" exec --json command -p 'argv=["head","-c1"]' -p pty=true -p "stdin=hello
more $big
" >"$TMP/out" 2>"$TMP/err"
    got=$(jq -c '[.outputs.exit_code, .outputs.signal]' "$TMP/out")
    [ "$got" = "[0,null]" ] || fail "run $i: head -c1 on a pty ended $got (stderr: $(cat "$TMP/err"))"
done
echo "ok [$TEST]"
