# SIGINT (^C) and SIGTERM cancel every execution, kill the process trees, and exit 130.
. "$(dirname "$0")/lib.bash"

for sig in INT TERM; do
    rm -f "$TMP/pid"
    "$CBX" exec -- sh -c "echo \$\$ >'$TMP/pid'; sleep 30 & sleep 30" >"$TMP/out" 2>"$TMP/err" &
    cbx=$!
    wait_for "$TMP/pid"
    child=$(cat "$TMP/pid")
    kill -"$sig" "$cbx"
    wait "$cbx"
    rc=$?
    expect_rc 130 "cbx exec after SIG$sig"
    expect_err_line "cancelled" "the cancel line after SIG$sig"
    kill -0 "$child" 2>/dev/null && fail "the command survived SIG$sig"
    # its grandchild too: nothing but zombies (dead, awaiting a reaper) is left in its group
    ps -o stat= -g "$child" | grep -qv '^Z' && fail "the command's process group survived SIG$sig"
done

# with --repeat: the runs in flight are cancelled, no more start
"$CBX" exec --repeat 50 --parallel 2 -- sh -c "echo x >>'$TMP/runs'; sleep 30" \
    >"$TMP/out" 2>"$TMP/err" &
cbx=$!
wait_for "$TMP/runs"
sleep 0.2
kill -INT "$cbx"
wait "$cbx"
rc=$?
expect_rc 130 "--repeat after SIGINT"
[ "$(wc -l <"$TMP/runs")" -le 2 ] || fail "runs started after the cancel: $(wc -l <"$TMP/runs")"
run "$CBX" history --json --status cancelled
[ "$(jqv length)" -ge 3 ] || fail "cancelled runs in the journal: $(cat "$TMP/out")"
echo "ok [$TEST]"
