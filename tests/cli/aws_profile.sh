#!/usr/bin/env bash
# AWS credentials and region from the shared files (~/.aws/credentials, ~/.aws/config) for the
# dynamodb and serverless executors, against the tests' loopback HTTP server (its /echo answers
# with the request's headers): the SigV4 Authorization names the key id and region found in the
# files, the session token goes along, AWS_PROFILE picks `[profile x]`, the environment and the
# parameters come first, and a missing profile or a malformed file is a one-line error naming it.
. "$(dirname "$0")/lib.bash"

start_http_server || fail "the http server did not start"
unset AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN AWS_REGION AWS_DEFAULT_REGION \
    AWS_PROFILE AWS_DEFAULT_PROFILE AWS_SHARED_CREDENTIALS_FILE AWS_CONFIG_FILE \
    AWS_ENDPOINT_URL AWS_ENDPOINT_URL_DYNAMODB AWS_ENDPOINT_URL_LAMBDA
export HOME="$TMP/home"
mkdir -p "$HOME/.aws"
cat >"$HOME/.aws/credentials" <<'EOF'
# written by the test
[default]
aws_access_key_id = FILEKEYID
aws_secret_access_key = file/secret+key
aws_session_token = FILETOKEN

[work]
aws_access_key_id=WORKKEYID
aws_secret_access_key=worksecret
EOF
cat >"$HOME/.aws/config" <<'EOF'
[default]
region = eu-north-1
[profile work]
region = ap-south-1
EOF

ddb=(dynamodb -p operation=action -p action=ListTables -p 'request={}'
    -p "endpoint_url=$url/echo")
auth() { jqv .outputs.headers.authorization | sed -n 's/.*Credential=\([^,]*\),.*/\1/p'; }

# ---- keys, token and region from the files only ---------------------------------------------
run "$CBX" exec "${ddb[@]}" --json
expect_rc 0 "default profile"
auth | grep -q '^FILEKEYID/[0-9]*/eu-north-1/dynamodb/aws4_request$' || fail "default: $(auth)"
[ "$(jqv '.outputs.headers["x-amz-security-token"]')" = FILETOKEN ] || fail "default: token"
grep -q "file/secret+key" "$TMP/out" && fail "the secret is in the output"

# ---- AWS_PROFILE: [work] of the credentials file, [profile work] of the config --------------
AWS_PROFILE=work run "$CBX" exec "${ddb[@]}" --json
expect_rc 0 "AWS_PROFILE=work"
auth | grep -q '^WORKKEYID/[0-9]*/ap-south-1/dynamodb/aws4_request$' || fail "work: $(auth)"
[ "$(jqv '.outputs.headers["x-amz-security-token"]')" = null ] || fail "work: a token was sent"

# ---- the serverless executor reads them too (the server has no such function: it got there) --
sls=(serverless -p function_name=f -p 'payload={}' -p "endpoint_url=$url/echo")
AWS_PROFILE=work run "$CBX" exec "${sls[@]}"
expect_rc 1 "serverless"
expect_err_line "serverless: function f does not exist (HTTP 404" "serverless with file keys"
AWS_PROFILE=nosuch run "$CBX" exec "${sls[@]}"
expect_rc 1 "serverless, missing profile"
expect_err_line "serverless: no credentials: AWS_PROFILE 'nosuch'" "serverless, missing profile"

# ---- the environment and the parameters come first --------------------------------------------
AWS_ACCESS_KEY_ID=ENVKEY AWS_SECRET_ACCESS_KEY=envsecret AWS_REGION=us-west-1 \
    run "$CBX" exec "${ddb[@]}" --json
expect_rc 0 "environment"
auth | grep -q '^ENVKEY/[0-9]*/us-west-1/dynamodb/aws4_request$' || fail "environment: $(auth)"
[ "$(jqv '.outputs.headers["x-amz-security-token"]')" = null ] || fail "environment: file token"
run "$CBX" exec "${ddb[@]}" -p access_key_id=PARAMKEY -p secret_access_key=s -p region=sa-east-1 --json
expect_rc 0 "parameters"
auth | grep -q '^PARAMKEY/[0-9]*/sa-east-1/dynamodb/aws4_request$' || fail "parameters: $(auth)"

# ---- AWS_SHARED_CREDENTIALS_FILE and AWS_CONFIG_FILE ------------------------------------------
printf '[default]\naws_access_key_id=OTHERKEY\naws_secret_access_key=o\n' >"$TMP/creds"
printf '[default]\nregion=ca-central-1\n' >"$TMP/conf"
AWS_SHARED_CREDENTIALS_FILE="$TMP/creds" AWS_CONFIG_FILE="$TMP/conf" run "$CBX" exec "${ddb[@]}" --json
expect_rc 0 "AWS_SHARED_CREDENTIALS_FILE"
auth | grep -q '^OTHERKEY/[0-9]*/ca-central-1/dynamodb/aws4_request$' || fail "files: $(auth)"

# ---- a profile in neither file: one line naming it and the files -------------------------------
AWS_PROFILE=nosuch run "$CBX" exec "${ddb[@]}"
expect_rc 1 "missing profile"
expect_err_line "no credentials: AWS_PROFILE 'nosuch': no [nosuch] in $HOME/.aws/credentials and no [profile nosuch] in $HOME/.aws/config" \
    "missing profile"

# ---- a malformed credentials file: file and line ------------------------------------------------
printf '[default]\naws_access_key_id = X\nnot a setting\n' >"$TMP/bad"
AWS_SHARED_CREDENTIALS_FILE="$TMP/bad" run "$CBX" exec "${ddb[@]}"
expect_rc 1 "malformed file"
expect_err_line "no credentials: $TMP/bad:3: expected 'key = value', a [section] or a comment" \
    "malformed file"

# ---- no files at all: the error says where keys may come from --------------------------------
HOME="$TMP/empty" run "$CBX" exec "${ddb[@]}"
expect_rc 1 "no files"
expect_err_line "or put them in the AWS credentials file" "no files"
echo "ok"
