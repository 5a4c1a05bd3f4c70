#!/usr/bin/env python3
"""Splice the report of a partial bench/run (CBX_BENCH_ONLY) into the last full report.

usage: bench/splice.py OLD NEW RAN STAMP > MERGED

OLD is the report as it was, NEW the report this run generated (every section of a producer that
did not run reads "not measured"), RAN the producers that ran (space-separated bench binaries,
load_big, dag_memory), STAMP a line saying when and how they ran. The merged report is OLD with:

- each section whose producers all ran replaced by NEW's, STAMP under its heading;
- "Every measured line": the rows of the cases measured now replaced or added, the others kept,
  and likewise the notes (a note is "- CASE: text");
- every other section (the header, the machine, the targets, what was measured by hand) kept.

A section of NEW that OLD lacks goes before "## Every measured line".
"""
import sys

# The generated sections and what measures them (bench/run writes them; keep the two in step).
PRODUCERS = {
    "Closed breaker: acquire + record success, one thread": {"bench_breaker"},
    "Closed breaker with a rate window and latency, one thread": {"bench_breaker"},
    "Two threads on one breaker (cbx only)": {"bench_breaker"},
    "Rejection by an open breaker": {"bench_breaker"},
    "Flows": {"bench_flow"},
    "Scaling": {"bench_flow_scale"},
    "Runtime, executors and policies": {"bench_policy", "bench_command", "bench_http", "bench_function"},
    "The journal, process by process": {"bench_journal_cli"},
    "Loading big flows": {"load_big"},
    "Memory of a 2,000-node DAG run": {"dag_memory"},
}
EVERY = "Every measured line"


def sections(text):
    """[(heading or None for the preamble, [lines])] in order."""
    out = [(None, [])]
    for line in text.splitlines():
        if line.startswith("## "):
            out.append((line[3:].strip(), [line]))
        else:
            out[-1][1].append(line)
    return out


def every_parts(lines):
    """The table rows by case, in order, and the notes, of an "Every measured line" section."""
    rows, notes = {}, []
    for line in lines:
        if line.startswith("| ") and not line.startswith("| case ") and not line.startswith("|---"):
            rows[line.split("|")[1].strip()] = line
        elif line.startswith("- "):
            notes.append(line)
    return rows, notes


def note_case(note):
    return note[2:].split(":", 1)[0]


def merge_every(old, new):
    old_rows, old_notes = every_parts(old)
    new_rows, new_notes = every_parts(new)
    rows = dict(old_rows)
    rows.update(new_rows)
    measured = {note_case(n) for n in new_notes}
    notes = [n for n in old_notes if note_case(n) not in measured] + new_notes
    out, in_table = [], False
    for line in old:
        if line.startswith("| ") or line.startswith("|---"):
            if not in_table:
                in_table = True
                out.extend(l for l in old if l.startswith("| case ") or l.startswith("|---"))
                out.extend(rows.values())
            continue
        if line.startswith("- "):
            if notes:
                out.extend(notes)
                notes = []
            continue
        out.append(line)
    out.extend(notes)
    return out


def main():
    if len(sys.argv) != 5:
        sys.exit("usage: bench/splice.py OLD NEW RAN STAMP")
    old = sections(open(sys.argv[1], encoding="utf-8").read())
    new = dict(sections(open(sys.argv[2], encoding="utf-8").read()))
    ran, stamp = set(sys.argv[3].split()), sys.argv[4]
    wanted = {h for h, p in PRODUCERS.items() if p <= ran and h in new}
    merged, placed = [], set()
    for heading, lines in old:
        if heading in wanted:
            body = new[heading]
            merged.append(body[:1] + ["", stamp] + body[1:])
            placed.add(heading)
        elif heading == EVERY and EVERY in new:
            for h in sorted(wanted - {s for s, _ in old}):
                body = new[h]
                merged.append(body[:1] + ["", stamp] + body[1:])
                placed.add(h)
            merged.append(merge_every(lines, new[EVERY]))
        else:
            merged.append(lines)
    for h in sorted(wanted - placed):  # OLD had neither the section nor the list of lines
        merged.append(new[h][:1] + ["", stamp] + new[h][1:])
    sys.stdout.write("\n".join(line for part in merged for line in part) + "\n")


if __name__ == "__main__":
    main()
