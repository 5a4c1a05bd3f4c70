# --utc shows times in UTC as ISO-8601, before or after the subcommand; local time otherwise.
. "$(dirname "$0")/lib.bash"

run "$CBX" exec -- true
expect_rc 0 "one execution"
for args in "--utc history" "history --utc"; do
    # shellcheck disable=SC2086
    run "$CBX" $args
    expect_rc 0 "$args"
    sed -n 2p "$TMP/out" | grep -Eq '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z ' ||
        fail "$args: not ISO-8601 UTC: $(sed -n 2p "$TMP/out")"
done
TZ=UTC run "$CBX" history
sed -n 2p "$TMP/out" | grep -Eq '^[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2} ' ||
    fail "local time without --utc: $(sed -n 2p "$TMP/out")"
exit 0
