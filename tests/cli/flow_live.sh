# The live view on a terminal (through script(1)): one line per step redrawn in place, a
# progress line, colours unless NO_COLOR, the summary; and a batch's progress bar.
. "$(dirname "$0")/lib.bash"
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT" || fail "no source tree"
F=tests/flows/cli
command -v script >/dev/null || fail "the live view test needs script(1) (util-linux)"

D=$TMP/live
mkdir -p "$D"
touch "$D/hold"
(sleep 0.6 && rm "$D/hold") &
# script gives cbx a terminal; its output (the terminal's) lands in $TMP/tty
unset NO_COLOR
script -qec "$CBX run $F/slow.yaml -i dir=$D" "$TMP/tty" >/dev/null </dev/null
rc=$?
expect_rc 0 "a run on a terminal"
tr -d '\r' <"$TMP/tty" >"$TMP/screen"
# redrawn in place: the cursor goes up over the block, several times
[ "$(grep -o $'\033\\[4A' "$TMP/screen" | wc -l)" -ge 3 ] || fail "no redraws: $(cat -v "$TMP/screen")"
grep -q "wait .*running" "$TMP/screen" || fail "no running line: $(cat -v "$TMP/screen")"
grep -q "last .*pending" "$TMP/screen" || fail "no pending line: $(cat -v "$TMP/screen")"
grep -q $'\\[3/3\\]' "$TMP/screen" || fail "no progress line: $(cat -v "$TMP/screen")"
grep -q $'\033\\[32msuccess' "$TMP/screen" || fail "no colours: $(cat -v "$TMP/screen")"
grep -q "flow slow succeeded in .*: 3 steps succeeded" "$TMP/screen" || fail "no summary"
grep -q '"words": "one two three"' "$TMP/screen" || fail "no outputs: $(cat -v "$TMP/screen")"
grep -q "^step first started" "$TMP/screen" && fail "log lines on a terminal"

# NO_COLOR: the same view without colours; a failed step and a skipped one
NO_COLOR=1 script -qec "$CBX run $F/fail.yaml" "$TMP/tty" >/dev/null </dev/null
tr -d '\r' <"$TMP/tty" >"$TMP/screen"
grep -q $'\033\\[3[0-9]m' "$TMP/screen" && fail "colours with NO_COLOR: $(cat -v "$TMP/screen")"
grep -q "broken .*failed .*exit code 3" "$TMP/screen" || fail "failed line: $(cat -v "$TMP/screen")"
grep -q "optional .*failed .*continued past: exit code 1" "$TMP/screen" ||
    fail "tolerated line: $(cat -v "$TMP/screen")"
grep -q "never .*skipped .*when: inputs.code == 42 is false" "$TMP/screen" ||
    fail "skipped line: $(cat -v "$TMP/screen")"
grep -q "cbx: run: step 'broken' failed: exit code 3" "$TMP/screen" || fail "error line"

# a batch on a terminal: a progress bar, cleared before the summary
seq 1 6 | sed 's/.*/{"n": &}/' >"$TMP/data.jsonl"
NO_COLOR=1 script -qec "$CBX run $F/square.yaml --batch $TMP/data.jsonl --parallel 2 --output $TMP/res.jsonl" \
    "$TMP/tty" >/dev/null </dev/null
tr -d '\r' <"$TMP/tty" >"$TMP/screen"
grep -q "\\[6/6\\] ok 6  failed 0" "$TMP/screen" || fail "no progress bar: $(cat -v "$TMP/screen")"
grep -q "batch: 6 runs in .*: 6 succeeded, 0 failed" "$TMP/screen" || fail "summary: $(cat -v "$TMP/screen")"
[ "$(wc -l <"$TMP/res.jsonl")" -eq 6 ] || fail "results: $(cat "$TMP/res.jsonl")"

# results on the terminal beside the progress bar, written by the workers (no journal): each
# result line whole, the bar cleared before it, never drawn inside it
seq 1 300 | sed 's/.*/{"n": &}/' >"$TMP/many.jsonl"
NO_COLOR=1 script -qec "$CBX run $F/square.yaml --batch $TMP/many.jsonl --parallel 4 --no-journal" \
    "$TMP/tty" >/dev/null </dev/null
tr -d '\r' <"$TMP/tty" | grep '"line":' | sed 's/.*\x1b\[K//' >"$TMP/lines.jsonl"
[ "$(wc -l <"$TMP/lines.jsonl")" -eq 300 ] || fail "result lines on the terminal: $(cat -v "$TMP/tty")"
jq -r .line "$TMP/lines.jsonl" | cmp -s - <(seq 1 300) ||
    fail "result lines broken or out of order: $(cat -v "$TMP/lines.jsonl")"
echo "ok [$TEST]"
