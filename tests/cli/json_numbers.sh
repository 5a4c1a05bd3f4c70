# --json prints numbers at a sensible precision: 0.1 is written 0.1, not 0.10000000000000001.
. "$(dirname "$0")/lib.bash"

run "$CBX" exec chaos -p quality=0.1 --json
expect_rc 0 "chaos with a quality score"
grep -q '"quality": 0.1,\?$' "$TMP/out" || fail "quality printed as: $(grep quality "$TMP/out" | head -1)"
if grep -Eq '[0-9]\.[0-9]{12,}' "$TMP/out"; then
    fail "a number printed with too many digits: $(grep -E '[0-9]\.[0-9]{12,}' "$TMP/out" | head -1)"
fi
id=$(jqv .id)
run "$CBX" history show "$id" --json
expect_rc 0 "history show"
if grep -Eq '[0-9]\.[0-9]{12,}' "$TMP/out"; then
    fail "history: a number printed with too many digits: $(grep -E '[0-9]\.[0-9]{12,}' "$TMP/out" | head -1)"
fi
exit 0
