# What a command leaves behind: a background child holding stdout does not turn success into a
# timeout, and a kill -9 of cbx takes the command's whole tree with it.
. "$(dirname "$0")/lib.bash"

# The shell exits at once; the sleep it left holds stdout for minutes. Success, output kept.
run "$CBX" exec --timeout 120s -- sh -c 'sleep 300 & echo started'
expect_rc 0 "a background child holding stdout"
[ "$(cat "$TMP/out")" = "started" ] || fail "stdout: '$(cat "$TMP/out")', expected 'started'"

# The tree this machine gives commands: "cgroup" (root, cgroup v2) or "process_group".
run "$CBX" exec --json -- true
expect_rc 0 "cbx exec --json -- true"
tree=$(jqv .metadata.tree)

# Processes found by a marker no other process has in its argv.
MARK="cbx-orphans-$$-$RANDOM$RANDOM"
SCRIPT="$TMP/$MARK.sh"
printf 'while :; do sleep 1; done\n' >"$SCRIPT"
count() {
    pgrep -f -- "$MARK" | wc -l
}
# wait_count OP N LIMIT_S: until the count compares to N (-ge, -eq), for at most LIMIT_S seconds.
wait_count() {
    local i
    for ((i = 0; i < $3 * 10; i++)); do
        [ "$(count)" "$1" "$2" ] && return 0
        sleep 0.1
    done
    return 1
}

if [ "$tree" = "cgroup" ]; then
    # the outer shell, a child in the same group and one in a session of its own
    "$CBX" exec -- sh -c "sh '$SCRIPT' & setsid sh '$SCRIPT' & sh '$SCRIPT'" >/dev/null 2>&1 &
    want=4
else
    echo "note [$TEST]: no cgroups here (tree: $tree): only the direct child is checked" >&2
    "$CBX" exec -- sh "$SCRIPT" >/dev/null 2>&1 &
    want=1
fi
cbx_pid=$!
wait_count -ge "$want" 120 || fail "the command's processes did not all start ($(count) of $want)"
kill -9 "$cbx_pid"
wait "$cbx_pid" 2>/dev/null
if ! wait_count -eq 0 120; then
    pgrep -af -- "$MARK" >&2
    pkill -9 -f -- "$MARK"
    fail "processes of the command outlived a kill -9 of cbx"
fi
if [ "$tree" = "cgroup" ]; then
    # and the guard removed the cgroups cbx made: <cgroup2 mount><our cgroup>/cbx-<pid>
    mnt=$(awk '{ for (i = 7; i < NF; i++) if ($i == "-") { if ($(i + 1) == "cgroup2") print $5; break } }' /proc/self/mountinfo | head -1)
    own=$(sed -n 's/^0:://p' /proc/self/cgroup)
    base="$mnt${own%/}/cbx-$cbx_pid"
    for ((i = 0; i < 1200 && ${#mnt} > 0; i++)); do
        [ -d "$base" ] || break
        sleep 0.1
    done
    [ -n "$mnt" ] && [ ! -d "$base" ] || fail "the cgroup $base outlived a kill -9 of cbx (mount '$mnt')"
fi
echo "ok [$TEST]"
