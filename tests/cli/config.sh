# The configuration file: its keys, refused keys, precedence (flag > environment > file >
# default), --config and CBX_CONFIG, named policies and YAML/JSON policy files.
. "$(dirname "$0")/lib.bash"

CONF="$XDG_CONFIG_HOME/cbx/config.yaml"
mkdir -p "$(dirname "$CONF")"
source_of() { # KEY: where `config show --json` says KEY came from
    "$CBX" config show --json | jq -r --arg k "$1" '.values[$k].source'
}
value_of() {
    "$CBX" config show --json | jq -r --arg k "$1" '.values[$k].value'
}

# no file: every value is a default, 'config path' finds nothing
run "$CBX" config path
expect_rc 1 "config path without a file"
[ "$(source_of breaker.failures)" = default ] || fail "no file: breaker.failures not a default"
[ "$(value_of breaker.failures)" = 5 ] || fail "default breaker.failures is not 5"

# the default file, found through XDG_CONFIG_HOME
mkdir -m 0700 "$TMP/fromfile"
cat >"$CONF" <<'EOF'
state_dir: ../../fromfile   # relative to this file's directory
breaker:
  failures: 2
  open: 10m
policies:
  quick:
    timeout: 100ms
EOF
run "$CBX" config path
expect_rc 0 "config path"
[ "$(cat "$TMP/out")" = "$CONF" ] || fail "config path: $(cat "$TMP/out")"
[ "$(source_of breaker.failures)" = "$CONF:3:3" ] || fail "breaker.failures source: $(source_of breaker.failures)"
[ "$(value_of breaker.open)" = 10m ] || fail "breaker.open: $(value_of breaker.open)"
[ "$(value_of policies.quick | jq -r .timeout)" = 100ms ] || fail "config show: policies.quick"
run "$CBX" config show
grep -q '^policies.quick .*{"timeout":"100ms"} .*config.yaml:6:3$' "$TMP/out" ||
    fail "config show text: $(cat "$TMP/out")"

# state_dir: environment over the file, the file over the default, the flag over both
[ "$(source_of state_dir)" = CBX_STATE_DIR ] || fail "the environment does not win over the file"
(
    unset CBX_STATE_DIR
    [ "$(value_of state_dir)" = "$TMP/config/cbx/../../fromfile" ] ||
        fail "state_dir from the file: $(value_of state_dir)"
    "$CBX" exec -- true || fail "exec with the file's state_dir"
    [ -n "$(ls "$TMP/fromfile")" ] || fail "the file's state_dir was not used"
    [ "$(XDG_CONFIG_HOME=$TMP/none HOME=$TMP/none "$CBX" config show --json |
        jq -r .values.state_dir.source)" = default ] || fail "state_dir default"
    [ "$("$CBX" --state-dir "$TMP/state" config show --json | jq -r .values.state_dir.source)" = \
        --state-dir ] || fail "the flag does not win"
) || exit 1

# breaker defaults: the file's 2 failures open the breaker; a flag overrides them
"$CBX" exec --breaker cfg -- false
"$CBX" exec --breaker cfg -- false
run "$CBX" exec --breaker cfg -- true
expect_rc 75 "the file's breaker.failures: 2"
"$CBX" exec --breaker flag --breaker-failures 3 -- false
"$CBX" exec --breaker flag --breaker-failures 3 -- false
run "$CBX" exec --breaker flag --breaker-failures 3 -- true
expect_rc 0 "--breaker-failures over the file's"

# named policies: --policy NAME; a mistyped name gets a suggestion
run "$CBX" exec --policy quick -- sleep 30
expect_rc 124 "the named policy 'quick' (timeout 100ms)"
run "$CBX" exec --policy qiuck -- true
expect_rc 2 "an unknown policy name"
expect_err_line "no policy named 'qiuck' (did you mean 'quick'?)" "policy suggestion"

# --policy FILE: YAML or JSON, by content
printf 'timeout: 100ms\nretry:\n  attempts: 1\n' >"$TMP/p.yaml"
run "$CBX" exec --policy "$TMP/p.yaml" -- sleep 30
expect_rc 124 "a YAML policy file"
echo '{"timeout": "100ms"}' >"$TMP/p.json"
run "$CBX" exec --policy "$TMP/p.json" -- sleep 30
expect_rc 124 "a JSON policy file"
printf 'timeout: [1\n' >"$TMP/broken.yaml"
run "$CBX" exec --policy "$TMP/broken.yaml" -- true
expect_rc 2 "a broken policy file"
expect_err_line "--policy: $TMP/broken.yaml:" "broken policy file: file:line:col"

# --config and CBX_CONFIG name another file, which must exist; --config wins
printf 'breaker:\n  probes: 3\n' >"$TMP/a.yaml"
printf 'breaker:\n  probes: 4\n' >"$TMP/b.yaml"
[ "$(CBX_CONFIG=$TMP/a.yaml value_of breaker.probes)" = 3 ] || fail "CBX_CONFIG"
[ "$(CBX_CONFIG=$TMP/a.yaml "$CBX" --config "$TMP/b.yaml" config show --json |
    jq -r '.values["breaker.probes"].value')" = 4 ] || fail "--config over CBX_CONFIG"
run "$CBX" --config "$TMP/missing.yaml" types
expect_rc 2 "a missing --config file"
expect_err_line "cannot read configuration" "missing --config"

# unknown keys are refused with file:line:col and a suggestion; bad values too
printf 'lua_path: x\nbreaker:\n  failure: 3\n' >"$TMP/bad.yaml"
run "$CBX" --config "$TMP/bad.yaml" types
expect_rc 2 "an unknown breaker key"
expect_err_line "$TMP/bad.yaml:3:3: unknown key 'failure' (did you mean 'failures'?)" "breaker key"
printf 'plugins_path: /x\n' >"$TMP/bad.yaml"
run "$CBX" --config "$TMP/bad.yaml" types
expect_err_line "$TMP/bad.yaml:1:1: unknown key 'plugins_path' (did you mean 'plugin_path'?)" "top key"
printf 'breaker:\n  open: soon\n' >"$TMP/bad.yaml"
run "$CBX" --config "$TMP/bad.yaml" types
expect_rc 2 "a bad duration"
expect_err_line "$TMP/bad.yaml:2:3: breaker.open: expected a duration" "bad duration"
printf 'a: [\n' >"$TMP/bad.yaml"
run "$CBX" --config "$TMP/bad.yaml" types
expect_rc 2 "a YAML syntax error"
expect_err_line "$TMP/bad.yaml:" "YAML error position"

printf 'policies:\n  slow:\n    timeout: 1s\n    retry:\n      atempts: 2\n' >"$TMP/bad.yaml"
run "$CBX" --config "$TMP/bad.yaml" types
expect_rc 2 "a named policy with an unknown key"
expect_err_line "$TMP/bad.yaml:5:7: policy 'slow':" "named policy: file:line:col"
expect_err_line "'attempts'" "named policy: suggestion"

# lua_path: the environment wins over the file
printf 'lua_path: %s/nowhere\n' "$TMP" >"$TMP/lua.yaml"
[ "$("$CBX" --config "$TMP/lua.yaml" config show --json | jq -r .values.lua_path.source)" = \
    "$TMP/lua.yaml:1:1" ] || fail "lua_path source"
[ "$(CBX_LUA_PATH=$TMP "$CBX" --config "$TMP/lua.yaml" config show --json |
    jq -r .values.lua_path.source)" = CBX_LUA_PATH ] || fail "CBX_LUA_PATH over the file"
echo "ok [$TEST]"
