#!/usr/bin/env bash
# The crash-bug corpus under one generic policy: how many of its programs stop crashing, give
# correct or documented degraded answers, how many repairs were rolled back, false repairs (a check
# that passed before any repair and fails after: target 0), and each strategy's share. Runs the
# test tests/heal_corpus.rs (the same run CI makes) with more rounds and writes its report to
# bench/heal-corpus.txt. About a minute.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
rounds=${ROUNDS:-10}
report="$root/bench/heal-corpus.txt"
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
cargo build --release -q --workspace
HEAL_CORPUS_ROUNDS=$rounds HEAL_CORPUS_REPORT="$tmp" \
    cargo test --release -q --test heal_corpus -- --nocapture > /dev/null
{
    echo "# scripts/bench-heal-corpus.sh at $(git rev-parse --short HEAD), $(date -u '+%Y-%m-%d %H:%M UTC'), $("${JAVA_HOME:-/usr/lib/jvm/java-17-openjdk-amd64}/bin/java" -version 2>&1 | head -1)"
    cat "$tmp"
} > "$report"
cat "$report"
