# libcurl is loaded only when an http request is made: not by --version, not by a command run,
# not by `cbx types http` (the schema is known without it); and `cbx exec http` still works.
. "$(dirname "$0")/lib.bash"

# LD_DEBUG=files names every object the dynamic loader maps, at start and through dlopen.
LD_DEBUG=files "$CBX" --version >"$TMP/out" 2>"$TMP/ld"
grep -q "file=libc.so" "$TMP/ld" || fail "LD_DEBUG=files shows nothing here: $(head -3 "$TMP/ld")"
grep -q libcurl "$TMP/ld" && fail "cbx --version maps libcurl"

LD_DEBUG=files "$CBX" types http >"$TMP/out" 2>"$TMP/ld"
grep -q libcurl "$TMP/ld" && fail "cbx types http maps libcurl"
grep -q "url" "$TMP/out" || fail "cbx types http lacks its schema: $(cat "$TMP/out")"

# While the command runs, its parent is cbx: its maps hold no libcurl.
run "$CBX" exec -- sh -c 'cat /proc/$PPID/maps'
expect_rc 0 "exec -- cat the parent's maps"
grep -q "libc.so" "$TMP/out" || fail "not cbx's maps: $(head -3 "$TMP/out")"
grep -q libcurl "$TMP/out" && fail "cbx exec -- CMD maps libcurl"

server="$(dirname "$CBX")/../tests/http_server"
[ -x "$server" ] || fail "no http_server helper at $server"
"$server" >"$TMP/port" &
spid=$!
trap 'kill $spid 2>/dev/null; rm -rf "$TMP"' EXIT
for _ in $(seq 600); do
    [ -s "$TMP/port" ] && break
    sleep 0.1
done
url="http://127.0.0.1:$(head -1 "$TMP/port")"
LD_DEBUG=files "$CBX" exec http -p url="$url/ok" >"$TMP/out" 2>"$TMP/ld"
[ "$(jqv .status)" = "200" ] || fail "exec http: $(cat "$TMP/out") $(grep -v "^ *[0-9]*:" "$TMP/ld")"
grep -q "file=libcurl" "$TMP/ld" || fail "exec http did not load libcurl through dlopen"
exit 0
