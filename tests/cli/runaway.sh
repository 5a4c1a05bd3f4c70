# Runaway Lua: a backtracking pattern in a template, a rule or a Lua executor ends with a clear
# error or the timeout, and a second ^C (or SIGTERM) ends cbx at once even while its loop is
# busy in Lua. Every wait has a limit of minutes; nothing asserts speed.
. "$(dirname "$0")/lib.bash"

# limited SECS CMD...: like run, but a cbx still running after SECS seconds is killed and fails
limited() {
    local secs=$1
    shift
    "$@" >"$TMP/out" 2>"$TMP/err" &
    local pid=$! i
    for ((i = 0; i < secs * 10; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        kill -9 "$pid"
        wait "$pid" 2>/dev/null
        fail "still running after ${secs}s: $*"
    fi
    wait "$pid"
    rc=$?
}

# cpu_ticks PID: user + system time of a process, in clock ticks
cpu_ticks() {
    awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo -1
}

# wait_spinning PID: until the process has burnt half a second of CPU (it is in the Lua loop)
wait_spinning() {
    local i
    for ((i = 0; i < 900; i++)); do
        local t
        t=$(cpu_ticks "$1")
        [ "$t" -lt 0 ] && fail "cbx ended before it spun: $(cat "$TMP/err")"
        [ "$t" -ge 50 ] && return 0
        sleep 0.1
    done
    fail "cbx did not start spinning"
}

# delivered PID SIG: until no SIG is pending for the process (its handler has run)
delivered() {
    local bit i
    bit=$((1 << ($(kill -l "$2") - 1)))
    for ((i = 0; i < 600; i++)); do
        local pending
        pending=$(awk '/^ShdPnd:/ {print $2}' "/proc/$1/status" 2>/dev/null) || return 0
        [ -z "$pending" ] && return 0
        (((0x$pending & bit) == 0)) && return 0
        sleep 0.1
    done
    fail "SIG$2 was never delivered"
}

runaway="string.find(string.rep('a', 5000), '.-.-.-.-b')"

# a template: the step fails with the sandbox's error, naming the field; the flow's timeout is
# far away and is not what ends it
cat >"$TMP/template.yaml" <<EOF
name: runaway_template
timeout: 10m
steps:
  - name: s
    executor: command
    config:
      argv: [echo, "{{ $runaway }}"]
EOF
limited 100 "$CBX" run --quiet "$TMP/template.yaml"
expect_rc 1 "a runaway template"
grep -qF "config.argv[1]" "$TMP/err" || fail "the field is not named: $(cat "$TMP/err")"
grep -qF "instruction limit exceeded" "$TMP/err" || fail "not the limit: $(cat "$TMP/err")"

# a when: rule
cat >"$TMP/rule.yaml" <<EOF
name: runaway_rule
steps:
  - name: s
    executor: command
    when: "$runaway == nil"
    config: {argv: [echo, hi]}
EOF
limited 100 "$CBX" run --quiet "$TMP/rule.yaml"
expect_rc 1 "a runaway rule"
grep -qF "instruction limit exceeded" "$TMP/err" || fail "rule: not the limit: $(cat "$TMP/err")"

# a Lua executor (no instruction budget in run) stops at its timeout and cbx exits 124
cat >"$TMP/spin.lua" <<EOF
return executor {
  name = "spin_pattern",
  run = function(p) return {r = $runaway} end,
}
EOF
limited 100 "$CBX" exec --timeout 1s --lua "$TMP/spin.lua" spin_pattern
expect_rc 124 "a Lua executor spinning in a pattern, --timeout 1s"
expect_err_line "timed out" "the timeout line"

# a second signal while the loop itself is busy in Lua (a before hook with a huge budget, run
# on the loop's thread): the first is queued for the loop, the second ends cbx with 130
cat >"$TMP/hook.lua" <<'LUA'
return executor {
  name = "spin_hook",
  limits = {instructions = 1e15},
  before = function(p) while true do end end,
  run = function(p) return {} end,
}
LUA
cat >"$TMP/hook.yaml" <<'EOF'
name: spin_hook_flow
steps:
  - name: s
    executor: spin_hook
EOF
for how in "exec INT INT" "exec TERM TERM" "run INT TERM"; do
    set -- $how
    if [ "$1" = exec ]; then
        "$CBX" exec --lua "$TMP/hook.lua" spin_hook >"$TMP/out" 2>"$TMP/err" &
    else
        "$CBX" run --quiet --lua "$TMP/hook.lua" "$TMP/hook.yaml" >"$TMP/out" 2>"$TMP/err" &
    fi
    cbx=$!
    wait_spinning "$cbx"
    kill -"$2" "$cbx"
    delivered "$cbx" "$2" # two signals sent at once would be one
    kill -"$3" "$cbx"
    for ((i = 0; i < 600; i++)); do
        kill -0 "$cbx" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$cbx" 2>/dev/null; then
        kill -9 "$cbx"
        wait "$cbx" 2>/dev/null
        fail "cbx $1 ignored SIG$2 then SIG$3 while busy in Lua"
    fi
    wait "$cbx"
    rc=$?
    expect_rc 130 "cbx $1 after SIG$2 then SIG$3"
done
echo "ok [$TEST]"
