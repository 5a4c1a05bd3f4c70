# A flow step's chunks (steps.<name>.chunks): the partial output of its executions as it came, in
# order, on its channel, readable by later steps' templates and the flow's outputs; bounded (64
# KiB, 256 chunks a step), the rest counted in steps.<name>.chunks_dropped.
. "$(dirname "$0")/lib.bash"
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT" || fail "no source tree"

run "$CBX" run tests/flows/cli/chunks.yaml -q
expect_rc 0 "a flow reading chunks"
[ "$(jqv '[.all[] | select(.channel == "stdout") | .text] | join("")')" = "$(printf 'one\nthree')" ] ||
    fail "stdout chunks: $(jqv -c .all)"
[ "$(jqv '[.all[] | select(.channel == "stderr") | .text] | join("")')" = "two" ] ||
    fail "stderr chunks: $(jqv -c .all)"
[ "$(jqv '[.all[] | .seq] == ([.all | keys[]])')" = true ] || fail "seq order: $(jqv -c .all)"
[ "$(jqv '[.all[] | .attempt] | unique')" = "$(printf '[\n  1\n]')" ] || fail "attempts: $(jqv -c .all)"
[ "$(jqv '.counted | tonumber')" = "$(jqv '.all | length')" ] || fail "count in a config: $(jqv .counted)"
[ "$(jqv .first_channel)" = "$(jqv '.all[0].channel')" ] || fail "chunks[1]: $(jqv .first_channel)"
# the bound: seq writes ~1.3 MB; a step keeps at most 64 KiB, and says how many it dropped
[ "$(jqv '.big_kept >= 1')" = true ] || fail "big kept: $(jqv .big_kept)"
[ "$(jqv '.big_dropped > 0')" = true ] || fail "big dropped: $(jqv .big_dropped)"
[ "$(jqv '.big_first | length <= 65536')" = true ] || fail "big first chunk: $(jqv '.big_first|length')"
[ "$(jqv '.big_first | startswith("1\n2\n3\n")')" = true ] || fail "big first text"
echo "ok [$TEST]"
