# foreach items are journaled one by one: --resume of a run whose foreach step failed runs only
# the items that had not succeeded, and takes the others' outputs from the journal; an item whose
# value changed since is run again.
. "$(dirname "$0")/lib.bash"
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT" || fail "no source tree"
F=tests/flows/cli

D=$TMP/items
mkdir -p "$D"
run "$CBX" run $F/foreach_items.yaml -i dir="$D" --json
expect_rc 1 "a foreach step with a failing item"
id=$(jqv .run_id)
[ "$(sort "$D/ran" | tr '\n' ' ')" = "1 2 3 4 5 6 " ] || fail "first run: $(cat "$D/ran")"
[ "$(jqv .steps.each.status)" = "failed" ] || fail "each: $(jqv .steps.each)"

touch "$D/ok"
: >"$D/ran"
run "$CBX" run $F/foreach_items.yaml --resume "$id" --json
expect_rc 0 "--resume of the failed foreach"
[ "$(cat "$D/ran")" = "4" ] || fail "items run again: $(tr '\n' ' ' <"$D/ran")"
[ "$(jqv .steps.each.items_resumed)" = "5" ] || fail "items_resumed: $(jqv .steps.each)"
[ "$(jqv '[.outputs.all[].stdout | rtrimstr("\n")] | join(",")')" = "item 1,item 2,item 3,item 4,item 5,item 6" ] || fail "outputs: $(jq -c .outputs <"$TMP/out")"
[ "$(jqv .steps.total.outputs.stdout)" = "n=6" ] || fail "total: $(jqv .steps.total)"

# the journal has every item, and the step as one row in show
run "$CBX" show "$id" --json
expect_rc 0 "show"
[ "$(jqv .steps.each.status)" = "success" ] || fail "show: $(jqv .steps.each)"
[ "$(jqv '[.steps.each.items[] | .status] | join(",")')" = "success,success,success,success,success,success" ] ||
    fail "items in show: $(jqv .steps.each.items)"

# an item list that changed: the items at the same index with another value run again
sed 's/"5", "6"/"5", "7"/' $F/foreach_items.yaml >"$TMP/changed.yaml"
rm "$D/ok"
run "$CBX" run "$TMP/changed.yaml" -i dir="$D" --json
expect_rc 1 "second run"
id=$(jqv .run_id)
sed 's/"5", "6"/"5", "8"/' $F/foreach_items.yaml >"$TMP/changed.yaml"
touch "$D/ok"
: >"$D/ran"
run "$CBX" run "$TMP/changed.yaml" --resume "$id" --json
expect_rc 0 "--resume with a changed item"
[ "$(sort "$D/ran" | tr '\n' ' ')" = "4 8 " ] || fail "changed item: $(tr '\n' ' ' <"$D/ran")"
exit 0
