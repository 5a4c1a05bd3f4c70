# Any executor's chunks through cbx exec, shown with a plugin type that streams from its pool
# thread (tests/plugins/plugin_stream.c, "ticker"): printed as they arrive, kept in --json's
# result, line by line with --repeat and --each, and in the journal's attempt record.
. "$(dirname "$0")/lib.bash"
PLUGIN="$(dirname "$CBX")/../tests/plugin_stream.so"
[ -e "$PLUGIN" ] || { echo "skip [$TEST]: $PLUGIN not built"; exit 77; }
X=("$CBX" exec --plugin-path "$PLUGIN")

# the first tick shows while the executor still runs (it waits for the gate after it)
"${X[@]}" ticker -p n=3 -p gate="$TMP/gate" >"$TMP/out" 2>"$TMP/err" &
pid=$!
wait_for "$TMP/out" $pid || fail "cbx ended before the first tick came: $(cat "$TMP/err")"
[ "$(cat "$TMP/out")" = "tick 0" ] || fail "first tick: $(cat "$TMP/out")"
touch "$TMP/gate"
wait $pid
rc=$?
expect_rc 0 "a streaming TYPE"
[ "$(cat "$TMP/out")" = "$(printf 'tick 0\ntick 1\ntick 2\n{"ticks":3}')" ] ||
    fail "streamed output: $(cat "$TMP/out")"

# --json: the outputs and the chunks, in order, the event among them
run "${X[@]}" ticker -p n=2 --json
expect_rc 0 "--json"
[ "$(jqv .outputs.ticks)" = 2 ] || fail "--json outputs: $(cat "$TMP/out")"
[ "$(jqv '[.chunks[].seq] | map(tostring) | join(",")')" = "0,1,2" ] || fail "--json seq: $(jqv -c .chunks)"
[ "$(jqv '.chunks[1].text')" = "tick 1" ] || fail "--json text: $(jqv -c .chunks)"
[ "$(jqv '.chunks[2].event.ticks')" = 2 ] || fail "--json event: $(jqv -c .chunks)"
[ "$(jqv '.chunks[2].channel')" = progress ] || fail "--json channel: $(jqv -c .chunks)"

# the journal keeps them with the attempt
run "$CBX" history --json --limit 1
id=$(jqv '.[0].id')
run "$CBX" history show "$id" --json
[ "$(jqv '.attempts[0].metadata.chunks | length')" = 3 ] || fail "journal chunks: $(head -c 800 "$TMP/out")"

# --repeat: every run's lines, tagged with its number
run "${X[@]}" ticker -p n=2 --repeat 3 -j3 --tag -q
expect_rc 0 "--repeat"
for r in 1 2 3; do
    [ "$(grep -c "^$r	tick" "$TMP/out")" = 2 ] || fail "--repeat run $r: $(cat "$TMP/out")"
done

# --each with a TYPE: each job's ticks, tagged with its item
: >"$TMP/a"
: >"$TMP/b"
printf 'a\nb\n' | "${X[@]}" --each -j2 --tag -q ticker -p n=1 -p gate="$TMP/{}" >"$TMP/out" 2>"$TMP/err"
[ "$(grep -c $'^a\ttick 0$' "$TMP/out")$(grep -c $'^b\ttick 0$' "$TMP/out")" = 11 ] ||
    fail "--each TYPE: $(cat "$TMP/out" "$TMP/err")"
echo "ok [$TEST]"
