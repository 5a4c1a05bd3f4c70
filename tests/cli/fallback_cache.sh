# The fallback cache answers from the CLI: `cbx exec --repeat` keys it by the executor and its
# canonical parameters (or by fallback.cache.key); a fallback.function that names nothing is
# refused, never silently dropped.
. "$(dirname "$0")/lib.bash"

# A command that succeeds once, then fails: the second run's answer comes from the cache.
cat >"$TMP/once.sh" <<'SH'
n=$(cat "$1" 2>/dev/null || echo 0)
echo $((n + 1)) >"$1"
[ "$n" -eq 0 ] || exit 3
echo "fresh $n"
SH
pol='{"fallback": {"cache": {"ttl": "10m"}}}'
run "$CBX" exec --json --repeat 2 --policy-json "$pol" -- sh "$TMP/once.sh" "$TMP/count"
expect_rc 0 "repeat with a cache"
[ "$(jqv "[.results[] | select(.fallback_used)] | length")" = "1" ] || fail "no cache answer: $(cat "$TMP/out")"
[ "$(jqv "[.results[] | .outputs.stdout] | unique | length")" = "1" ] ||
    fail "the cache gave another answer: $(cat "$TMP/out")"

# A key template: two calls with different parameters share one key.
rm -f "$TMP/count"
pol='{"fallback": {"cache": {"key": "{{ executor }}-fixed"}}}'
run "$CBX" exec --json --policy-json "$pol" -- sh "$TMP/once.sh" "$TMP/count"
expect_rc 0 "first call"
run "$CBX" exec --json --policy-json "$pol" -- sh "$TMP/once.sh" "$TMP/count" extra
# another process: the in-memory cache is gone, the call fails
[ "$rc" -ne 0 ] || fail "a second process answered from a cache it cannot have: $(cat "$TMP/out")"

# a bad key template is refused
run "$CBX" exec --policy-json '{"fallback": {"cache": {"key": 3}}}' -- true
expect_rc 2 "a key that is not text"
grep -qF "fallback.cache.key" "$TMP/err" || fail "the error does not name the key: $(cat "$TMP/err")"

# a function that is not registered: refused with exit 2, naming it
run "$CBX" exec --policy-json '{"fallback": {"function": "nope", "value": 1}}' -- false
expect_rc 2 "an unknown fallback.function"
grep -qF "fallback.function" "$TMP/err" || fail "the error does not name the key: $(cat "$TMP/err")"
grep -qF "'nope'" "$TMP/err" || fail "the error does not name the function: $(cat "$TMP/err")"

# an asynchronous executor type cannot answer
run "$CBX" exec --policy-json '{"fallback": {"function": "http"}}' -- false
expect_rc 2 "an asynchronous type as fallback.function"
grep -qF "asynchronously" "$TMP/err" || fail "why it is refused: $(cat "$TMP/err")"

# a Lua type answers as the fallback, with the failed call's parameters it declares
mkdir -p "$TMP/lua"
cat >"$TMP/lua/sorry.lua" <<'LUA'
return executor {
  name = "sorry",
  params = {argv = {type = "array"}},
  run = function(p, ctx) return {sorry = p.argv[1]} end,
}
LUA
export CBX_LUA_PATH="$TMP/lua"
run "$CBX" exec --json --policy-json '{"fallback": {"function": "sorry"}}' -- false
unset CBX_LUA_PATH
expect_rc 0 "a Lua type as fallback.function"
[ "$(jqv .outputs.sorry)" = "false" ] || fail "the Lua fallback's answer: $(cat "$TMP/out") $(cat "$TMP/err")"
[ "$(jqv .fallback_used)" = "true" ] || fail "fallback_used: $(cat "$TMP/out")"

# in a flow: fallback.cache.key expanded per item; the second item fails and gets the first's
cat >"$TMP/flow.yaml" <<'YAML'
name: fb_key
policies:
  cached:
    fallback: {cache: {key: "{{ item.city }}"}}
steps:
  - name: weather
    executor: command
    foreach: [{city: paris, ok: "1"}, {city: paris, ok: "0"}]
    parallelism: 1
    policy: cached
    config: {argv: [sh, -c, 'test "$0" = 1 && echo sunny-$1', "{{ item.ok }}", "{{ item.city }}"]}
outputs:
  all: "{{ steps.weather.outputs }}"
YAML
run "$CBX" run "$TMP/flow.yaml"
expect_rc 0 "a flow whose second item is answered by the cache"
[ "$(jqv '[.all[].stdout | rtrimstr("\n")] | join(",")')" = "sunny-paris,sunny-paris" ] || fail "flow outputs: $(cat "$TMP/out")"
exit 0
