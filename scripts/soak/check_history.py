#!/usr/bin/env python3
"""Checks `repairctl history -o json` against the soak's client-side log of acknowledged
operations. The journal is compacted above its size limit, keeping the patches in effect and the
most recent records, so history holds a window: the run of consecutive seqs that ends at the
newest record. Inside that window every acknowledged apply and rollback must appear exactly once
(none lost, none duplicated) and nothing unacknowledged may appear.

usage: check_history.py HISTORY.json ACKS.log   (ACKS lines: "apply ID ok|fail", "rollback ID ok|fail")
Prints one summary line; exits 1 on any mismatch."""
import json
import re
import sys
from collections import Counter, defaultdict

history = json.load(open(sys.argv[1]))["records"]
acks = [line.split() for line in open(sys.argv[2]) if line.strip()]
soak = [r for r in history if r["patch_id"].startswith("soak-")]
seqs = sorted(r["seq"] for r in history)
problems = []
if len(set(seqs)) != len(seqs):
    problems.append("repeated seqs")
# The window: consecutive seqs ending at the newest.
start = seqs[-1] if seqs else 0
for s in reversed(seqs[:-1]):
    if s != start - 1:
        break
    start = s
window = [r for r in soak if r["seq"] >= start]

def key(pid):
    m = re.fullmatch(r"soak-(\d+)-(\d+)", pid)
    return (int(m.group(1)), int(m.group(2)))

# Per storm loop, the window begins at the first apply it holds: from there on, every
# acknowledged operation of that loop must be in it.
first = {}
for r in window:
    if r["event"] == "applied":
        loop, n = key(r["patch_id"])
        first[loop] = min(first.get(loop, n), n)
expected = Counter()
for verb, pid, result in acks:
    loop, n = key(pid)
    if result == "ok" and loop in first and n >= first[loop]:
        expected[("applied" if verb == "apply" else "rolled_back", pid)] += 1
seen = Counter((r["event"], r["patch_id"]) for r in window if r["event"] in ("applied", "rolled_back"))
# A rollback of the op just before a loop's first windowed apply may be in the window too.
for (event, pid), _ in list(seen.items()):
    loop, n = key(pid)
    if event == "rolled_back" and loop in first and n == first[loop] - 1:
        del seen[(event, pid)]
lost = sum((expected - seen).values())
duplicated = sum(c - 1 for c in seen.values() if c > 1)
unacknowledged = sum(1 for k in seen if k not in expected)
window_ops = sum(expected.values())
print(
    f"{len(history)} records in history; window seq {start}..{seqs[-1] if seqs else 0} holds {window_ops} "
    f"acknowledged operations of {sum(1 for a in acks if a[2] == 'ok')}: lost {lost}, duplicated {duplicated}, "
    f"unacknowledged {unacknowledged}" + (f"; {', '.join(problems)}" if problems else "")
)
sys.exit(1 if lost or duplicated or unacknowledged or problems else 0)
