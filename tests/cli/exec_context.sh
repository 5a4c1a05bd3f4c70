# What an executor sees from the CLI: cbx exec --tmpdir / --keep-tmpdir ($CBX_TMPDIR for a
# command), and in a flow the run id, the step, the flow's metadata and the temporary
# directory (a Lua type's ctx table; a command's CBX_RUN_ID, CBX_STEP, CBX_TMPDIR).
. "$(dirname "$0")/lib.bash"
export TMPDIR="$TMP/tmp"
mkdir -p "$TMPDIR"

# exec: a directory of its own, there while the command runs, gone after
run "$CBX" exec --tmpdir -- sh -c 'test -d "$CBX_TMPDIR" && touch "$CBX_TMPDIR/f" && echo "$CBX_TMPDIR"'
expect_rc 0 "exec --tmpdir"
d=$(cat "$TMP/out")
case "$d" in "$TMPDIR"/cbx-*) ;; *) fail "the directory is not under \$TMPDIR: '$d'" ;; esac
[ ! -e "$d" ] || fail "the directory was not removed: $d"

# --each: one directory per job
printf 'a\nb\n' >"$TMP/items"
run "$CBX" exec --each --arg-file "$TMP/items" --tmpdir -- sh -c 'test -d "$CBX_TMPDIR" && echo "$0 $CBX_TMPDIR"' {}
expect_rc 0 "exec --each --tmpdir"
[ "$(cut -d' ' -f2 "$TMP/out" | sort -u | wc -l)" = "2" ] || fail "--each directories: $(cat "$TMP/out")"
[ -z "$(ls -A "$TMPDIR")" ] || fail "--each left directories: $(ls "$TMPDIR")"

# without --tmpdir there is none
run "$CBX" exec -- sh -c 'echo "[${CBX_TMPDIR:-}]"'
[ "$(cat "$TMP/out")" = "[]" ] || fail "a directory without --tmpdir: $(cat "$TMP/out")"

# --keep-tmpdir: kept on failure, said on stderr and in the metadata
run "$CBX" exec --keep-tmpdir --json -- sh -c 'echo x >"$CBX_TMPDIR/left"; exit 3'
expect_rc 3 "a failing command (its own exit code)"
k=$(jqv .metadata.tmpdir)
[ -f "$k/left" ] || fail "the directory was not kept: '$k' $(cat "$TMP/out")"
run "$CBX" exec --keep-tmpdir -- sh -c 'exit 3'
grep -qF "kept the temporary directory $TMPDIR/cbx-" "$TMP/err" || fail "not said: $(cat "$TMP/err")"
rm -rf "$TMPDIR"/cbx-*
run "$CBX" exec --keep-tmpdir -- sh -c 'echo "$CBX_TMPDIR"'
expect_rc 0 "a succeeding command"
[ ! -e "$(cat "$TMP/out")" ] || fail "kept after a success"

# a flow: the Lua ctx table and a command's environment
mkdir -p "$TMP/lua"
cat >"$TMP/lua/peek.lua" <<'LUA'
return executor {
  name = "peek",
  run = function(p, ctx)
    return {run_id = ctx.run_id, step = ctx.step, tmpdir = ctx.tmpdir,
            flow = ctx.metadata.flow, who = ctx.metadata.inputs.who}
  end,
}
LUA
cat >"$TMP/flow.yaml" <<'YAML'
name: ctxflow
inputs:
  - {name: who, type: string, default: you}
steps:
  - name: peek
    executor: peek
  - name: sh
    executor: command
    config: {argv: [sh, -c, 'test -d "$CBX_TMPDIR" && echo "$CBX_RUN_ID $CBX_STEP"']}
outputs:
  peek: "{{ steps.peek.outputs }}"
  sh: "{{ steps.sh.outputs.stdout }}"
YAML
run "$CBX" run --lua "$TMP/lua/peek.lua" --tmpdir "$TMP/flow.yaml" -i who=me
expect_rc 0 "a flow with --tmpdir"
rid=$(sed -n 's/^run \([0-9a-f-]*\) started.*/\1/p' "$TMP/err")
[ -n "$rid" ] || fail "no run id on stderr: $(cat "$TMP/err")"
[ "$(jqv .peek.run_id)" = "$rid" ] || fail "ctx.run_id: $(cat "$TMP/out")"
[ "$(jqv .peek.step)" = "peek" ] || fail "ctx.step: $(cat "$TMP/out")"
[ "$(jqv .peek.flow)" = "ctxflow" ] || fail "ctx.metadata.flow: $(cat "$TMP/out")"
[ "$(jqv .peek.who)" = "me" ] || fail "ctx.metadata.inputs: $(cat "$TMP/out")"
case "$(jqv .peek.tmpdir)" in "$TMPDIR"/cbx-*) ;; *) fail "ctx.tmpdir: $(cat "$TMP/out")" ;; esac
[ "$(jqv .sh)" = "$rid sh" ] || fail "the command's CBX_RUN_ID and CBX_STEP: $(cat "$TMP/out")"
[ -z "$(ls -A "$TMPDIR")" ] || fail "directories left behind: $(ls "$TMPDIR")"
exit 0
