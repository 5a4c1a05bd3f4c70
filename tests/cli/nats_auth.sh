# NATS connection options for workers, cbx exec --remote, the cluster store and the nats executor,
# against real nats-server processes that demand them: a token (--nats-token, NATS_TOKEN), a user
# and password (--nats-user/--nats-password, the configuration file's nats: section), and TLS
# with a client certificate under a CA made here by openssl (--nats-ca, --nats-cert, --nats-key;
# the server verifies the client). Without the credentials, a clear error; flags win over the
# environment, which wins over the file.
. "$(dirname "$0")/lib.bash"
. "$(dirname "$0")/nats_lib.bash"

# stop_workers: SIGTERM to the workers started so far; they drain and exit
stop_workers() {
    kill -TERM "${wpids[@]}" 2>/dev/null
    wait "${wpids[@]}" 2>/dev/null
    wpids=()
}

# --- a token ---------------------------------------------------------------------------------
start_nats tok --auth s3cret
tok_url=$nats_url tok_pid=$nats_pid
run "$CBX" exec --remote "$tok_url" -- true
expect_rc 1 "no token"
grep -qi "authorization" "$TMP/err" || fail "no-token message: $(cat "$TMP/err")"
start_worker wt --nats "$tok_url" --nats-token s3cret
run env NATS_TOKEN=s3cret "$CBX" exec --remote "$tok_url" -- echo with-token
expect_rc 0 "a token from the environment"
[ "$(cat "$TMP/out")" = with-token ] || fail "token run: $(cat "$TMP/out")"
# the flag wins over the environment
run env NATS_TOKEN=wrong "$CBX" exec --remote "$tok_url" --nats-token s3cret -- echo flag
expect_rc 0 "the flag over the environment"
run env NATS_TOKEN=wrong "$CBX" exec --remote "$tok_url" -- true
expect_rc 1 "a wrong token"
# the cluster breaker store and the nats executor take the token from the environment too
run env NATS_TOKEN=s3cret CBX_BREAKER_STORE="$tok_url" "$CBX" exec --breaker tb -- true
expect_rc 0 "a cluster breaker behind a token"
run env NATS_TOKEN=s3cret CBX_BREAKER_STORE="$tok_url" "$CBX" breaker list --json
[ "$(jqv '.[0].name')" = tb ] || fail "cluster breaker list: $(cat "$TMP/out") $(cat "$TMP/err")"
run env NATS_TOKEN=s3cret "$CBX" exec nats -p url="$tok_url" -p operation=publish \
    -p subject=auth.test -p data=hello
expect_rc 0 "the nats executor with NATS_TOKEN"
run "$CBX" exec nats -p url="$tok_url" -p operation=publish -p subject=auth.test -p data=hello
expect_rc 1 "the nats executor without a token"
stop_workers

# --- a user and password, from the configuration file ----------------------------------------
start_nats up --user ann --pass pw1
up_url=$nats_url
mkdir -p "$TMP/config/cbx"
cat >"$TMP/config/cbx/config.yaml" <<'YAML'
nats:
  user: ann
  password: pw1
YAML
start_worker wu --nats "$up_url"
run "$CBX" exec --remote "$up_url" -- echo from-config
expect_rc 0 "user and password from the configuration file"
[ "$(cat "$TMP/out")" = from-config ] || fail "config run: $(cat "$TMP/out")"
run "$CBX" exec --remote "$up_url" --nats-user ann --nats-password bad -- true
expect_rc 1 "a wrong password on the command line wins over the file"
grep -qi "authorization" "$TMP/err" || fail "wrong-password message: $(cat "$TMP/err")"
rm "$TMP/config/cbx/config.yaml"
run "$CBX" exec --remote "$up_url" --nats-user ann --nats-password pw1 -- echo from-flags
expect_rc 0 "user and password from flags"
# a bad nats: section is an error at its line
cat >"$TMP/config/cbx/config.yaml" <<'YAML'
nats:
  user: ann
  passwd: pw1
YAML
run "$CBX" exec --remote "$up_url" -- true
expect_rc 2 "a bad nats: section"
grep -q "config.yaml:3:3: .*nats.passwd: unknown key" "$TMP/err" || fail "config error: $(cat "$TMP/err")"
rm "$TMP/config/cbx/config.yaml"
stop_workers

# --- TLS with a client certificate -----------------------------------------------------------
command -v openssl >/dev/null || {
    echo "skip: the TLS part needs openssl (scripts/deps test installs it)"
    exit 77
}
P="$TMP/pki"
mkdir -p "$P"
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=cbx-test-ca -keyout "$P/ca.key" \
    -out "$P/ca.pem" 2>/dev/null || fail "openssl: the CA"
for who in server client; do
    openssl req -newkey rsa:2048 -nodes -subj "/CN=$who" -keyout "$P/$who.key" \
        -out "$P/$who.csr" 2>/dev/null || fail "openssl: the $who request"
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' >"$P/$who.ext"
    openssl x509 -req -in "$P/$who.csr" -CA "$P/ca.pem" -CAkey "$P/ca.key" -CAcreateserial \
        -days 2 -extfile "$P/$who.ext" -out "$P/$who.pem" 2>/dev/null || fail "openssl: the $who"
done
start_nats tls --tlsverify --tlscert "$P/server.pem" --tlskey "$P/server.key" \
    --tlscacert "$P/ca.pem"
tls_url=$nats_url
run "$CBX" exec --remote "$tls_url" -- true
expect_rc 1 "no TLS"
run "$CBX" exec --remote "$tls_url" --nats-ca "$P/ca.pem" -- true
expect_rc 1 "TLS without the client certificate"
start_worker wtls --nats "$tls_url" --nats-ca "$P/ca.pem" --nats-cert "$P/client.pem" \
    --nats-key "$P/client.key"
run env NATS_CA="$P/ca.pem" NATS_CERT="$P/client.pem" NATS_KEY="$P/client.key" \
    "$CBX" exec --remote "$tls_url" -- echo over-tls
expect_rc 0 "TLS with a client certificate"
[ "$(cat "$TMP/out")" = over-tls ] || fail "TLS run: $(cat "$TMP/out")"
stop_workers
echo ok
