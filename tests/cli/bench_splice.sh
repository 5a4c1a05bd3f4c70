# bench/splice.py: a partial bench/run (CBX_BENCH_ONLY) replaces in the last report only the
# sections its bench binaries measure (a stamp under each), merges the list of every measured line
# (rows and notes by case), and keeps every other section as it was.
. "$(dirname "$0")/lib.bash"
SPLICE="$(dirname "$0")/../../bench/splice.py"

cat >"$TMP/old.md" <<'MD'
# Benchmarks

Generated on an old day.

## Flows

| case | ms |
|---|---:|
| flow.dag2000.cbx | 100 |

## The journal, process by process

Old journal text.

| journal.cli.http.journal | 1.00 |

## Every measured line

| case | ns/call | allocations/call | calls per pass |
|---|---:|---:|---:|
| flow.dag2000.cbx | 100.00 | - | 1 |
| journal.cli.http.journal | 1.00 | - | 20000 |

- flow.dag2000: an old flow note
- journal.cli.http.journal: an old journal note
## Reproduce

make bench

## Measured by hand

Kept as written.
MD
cat >"$TMP/new.md" <<'MD'
# Benchmarks

Generated on a new day.

## Flows

| case | ms |
|---|---:|
| flow.dag2000.cbx | not measured |

## The journal, process by process

New journal text.

| journal.cli.http.journal | 2.00 |

## Every measured line

| case | ns/call | allocations/call | calls per pass |
|---|---:|---:|---:|
| journal.cli.http.journal | 2.00 | - | 20000 |
| journal.cli.batch.journal | 3.00 | - | 1000 |

- journal.cli.http.journal: a new journal note
## Reproduce

make bench
MD
python3 "$SPLICE" "$TMP/old.md" "$TMP/new.md" "bench_journal_cli" "STAMP LINE" >"$TMP/merged.md" ||
    fail "splice.py exited $?"
m=$(cat "$TMP/merged.md")
grep -q "^Generated on an old day" "$TMP/merged.md" || fail "header not kept: $m"
grep -q "^| flow.dag2000.cbx | 100 |" "$TMP/merged.md" || fail "Flows (not run) not kept: $m"
grep -q "not measured" "$TMP/merged.md" && fail "a section not measured came in: $m"
awk '/^## The journal/ { getline; getline; print; exit }' "$TMP/merged.md" | grep -qx "STAMP LINE" ||
    fail "no stamp under the replaced section: $m"
grep -q "^New journal text" "$TMP/merged.md" || fail "journal section not replaced: $m"
grep -q "Old journal text" "$TMP/merged.md" && fail "old journal section left: $m"
grep -q "^| flow.dag2000.cbx | 100.00 | - | 1 |" "$TMP/merged.md" || fail "an old row lost: $m"
grep -q "^| journal.cli.http.journal | 2.00 |" "$TMP/merged.md" || fail "a row not replaced: $m"
grep -q "^| journal.cli.http.journal | 1.00 | - | 20000" "$TMP/merged.md" && fail "an old row left: $m"
grep -q "^| journal.cli.batch.journal | 3.00 |" "$TMP/merged.md" || fail "a new row not added: $m"
grep -q "^- flow.dag2000: an old flow note" "$TMP/merged.md" || fail "an old note lost: $m"
grep -q "an old journal note" "$TMP/merged.md" && fail "a note not replaced: $m"
grep -q "^- journal.cli.http.journal: a new journal note" "$TMP/merged.md" || fail "new note: $m"
grep -q "^Kept as written" "$TMP/merged.md" || fail "a hand-measured section lost: $m"
[ "$(grep -c '^## ' "$TMP/merged.md")" -eq 5 ] || fail "sections: $(grep '^## ' "$TMP/merged.md")"

# a run of nothing that feeds a section changes only the list of lines
python3 "$SPLICE" "$TMP/old.md" "$TMP/new.md" "bench_breaker" "STAMP" >"$TMP/m2.md"
grep -q "STAMP" "$TMP/m2.md" && fail "a section replaced though its binary did not run"
grep -q "^Old journal text" "$TMP/m2.md" || fail "journal section not kept"
echo "ok [$TEST]"
