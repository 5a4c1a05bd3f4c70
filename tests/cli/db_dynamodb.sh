# The dynamodb executor from the command line against dynalite (tests/db/with_dynalite.sh): a
# table made with the raw action, an item written and read back as plain JSON, a lost conditional
# write as one line, and the secret key never in the journal.
if [ -z "${AWS_ENDPOINT_URL_DYNAMODB:-}" ]; then
    exec bash "$(dirname "$0")/../db/with_dynalite.sh" bash "$0" "$@"
fi
. "$(dirname "$0")/lib.bash"

secret="cli-secret-$$"
creds=(-p access_key_id=cli -p secret_access_key="$secret")
run "$CBX" exec dynamodb "${creds[@]}" -p operation=action -p action=CreateTable \
    -p 'request={"TableName": "cli_t", "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}], "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}], "BillingMode": "PAY_PER_REQUEST"}'
expect_rc 0 "CreateTable"
for _ in $(seq 1 600); do
    run "$CBX" exec dynamodb "${creds[@]}" -p operation=action -p action=DescribeTable \
        -p 'request={"TableName": "cli_t"}' --json
    [ "$(jqv .outputs.Table.TableStatus)" = ACTIVE ] && break
done
run "$CBX" exec dynamodb "${creds[@]}" -p operation=put_item -p table=cli_t \
    -p 'item={"pk": "a", "n": 1, "tags": ["x", null]}' -p 'condition_expression=attribute_not_exists(pk)'
expect_rc 0 "put_item"
run "$CBX" exec dynamodb "${creds[@]}" -p operation=get_item -p table=cli_t -p 'key={"pk": "a"}' --json
expect_rc 0 "get_item"
[ "$(jqv '.outputs.item | tojson')" = '{"pk":"a","n":1,"tags":["x",null]}' ] ||
    fail "item: $(cat "$TMP/out")"
run "$CBX" exec dynamodb "${creds[@]}" -p operation=put_item -p table=cli_t \
    -p 'item={"pk": "a"}' -p 'condition_expression=attribute_not_exists(pk)'
expect_rc 1 "a lost conditional write"
expect_err_line "dynamodb: PutItem: ConditionalCheckFailedException: The conditional request failed" \
    "a lost conditional write"
grep -rqa -- "cli_t" "$CBX_STATE_DIR" || fail "the journal does not hold the requests"
if grep -rqa -- "$secret" "$CBX_STATE_DIR" "$TMP/out"; then
    fail "the secret key is in the journal or the output"
fi
# keys only in a credentials file under a private HOME (none in the environment or parameters)
mkdir -p "$TMP/home/.aws"
printf '[default]\naws_access_key_id = filekey\naws_secret_access_key = filesecret\n' \
    >"$TMP/home/.aws/credentials"
HOME="$TMP/home" run env -u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY \
    "$CBX" exec dynamodb -p operation=get_item -p table=cli_t -p 'key={"pk": "a"}' --json
expect_rc 0 "get_item with keys from ~/.aws/credentials"
[ "$(jqv '.outputs.item.pk')" = a ] || fail "item with file keys: $(cat "$TMP/out")"
exit 0
