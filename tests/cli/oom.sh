# A command killed for want of memory ends with the outcome `oom` (a kind of its own, metadata.oom
# kept): in --json, the journal, history and stats; retried only when the policy says so; counted
# by a breaker as a failure; answered by a fallback. Needs a memory cgroup (root, cgroup v2).
. "$(dirname "$0")/lib.bash"
ALLOC="$(dirname "$CBX")/../tests/cmd_alloc"
[ -x "$ALLOC" ] || fail "no cmd_alloc helper at $ALLOC"
LIMIT=$((64 << 20))
greedy() { # greedy [cbx exec options...]: 1 GiB asked for under a 64 MiB limit
    run "$CBX" exec --json "$@" command -p "argv=[\"$ALLOC\",\"1024\"]" -p "memory_max_bytes=$LIMIT"
}

greedy
if grep -q "memory_max_bytes" "$TMP/err" && ! [ -s "$TMP/out" ]; then
    echo "skip: cgroups cannot limit memory here: $(head -1 "$TMP/err")"
    exit 77
fi
[ "$(jqv .metadata.tree)" = "cgroup" ] || { echo "skip: no cgroup for commands here"; exit 77; }
[ "$(jqv .status)" = "failed" ] || fail "status: $(cat "$TMP/out")"
[ "$(jqv '.attempts[0].outcome')" = "oom" ] || fail "outcome: $(jqv '.attempts')"
[ "$(jqv .metadata.oom)" = "true" ] || fail "metadata.oom: $(jqv .metadata)"
id=$(jqv .id)

# the journal and history keep the kind
run "$CBX" history show "$id" --json
expect_rc 0 "history show"
[ "$(jqv '.attempts[0].outcome')" = "oom" ] || fail "journaled outcome: $(cat "$TMP/out")"
run "$CBX" history show "$id"
grep -Eq '^ +1 +[0-9-]+ [0-9:]+ +oom ' "$TMP/out" || fail "history show's attempt line: $(cat "$TMP/out")"
run "$CBX" stats --json
[ "$(jqv .ooms)" = "1" ] || fail "stats: $(cat "$TMP/out")"
run "$CBX" stats
head -1 "$TMP/out" | grep -q "OOM" || fail "stats table: $(cat "$TMP/out")"

# not retried by default (the same limit would be hit again), retried when asked
greedy --retries 2 --retry-delay 1ms
[ "$(jqv '.attempts | length')" = "1" ] || fail "oom retried by default: $(jqv .attempts)"
greedy --retries 2 --retry-delay 1ms --retry-on error,oom
[ "$(jqv '[.attempts[].outcome] | join(",")')" = "oom,oom,oom" ] ||
    fail "retry-on oom: $(jqv .attempts)"
greedy --retries 2 --retry-delay 1ms --policy-json '{"retry":{"on":["oom"]}}'
[ "$(jqv '.attempts | length')" = "3" ] || fail "retry.on [oom]: $(jqv .attempts)"

# a breaker counts it as a failure; a fallback answers it
for i in 1 2; do greedy --breaker mem --breaker-failures 2; done
run "$CBX" breaker show mem --json
[ "$(jqv .state)" = "open" ] || fail "breaker after two ooms: $(cat "$TMP/out")"
greedy --fallback '{"cached":true}'
[ "$(jqv .fallback_used)" = "true" ] || fail "fallback: $(cat "$TMP/out")"
[ "$(jqv .outputs.cached)" = "true" ] || fail "fallback outputs: $(cat "$TMP/out")"

# a breaker's failure_kinds can leave it out, or count it
for kinds in '["error"]=2,0' '["error","oom"]=1,1'; do
    greedy --repeat 2 --policy-json "{\"breaker\":{\"failure_kinds\":${kinds%=*},\"consecutive_failures\":1}}"
    [ "$(jqv '[.failed, .breaker_open] | join(",")')" = "${kinds#*=}" ] ||
        fail "failure_kinds ${kinds%=*}: $(jqv '[.failed, .breaker_open]')"
done
echo "ok [$TEST]"
