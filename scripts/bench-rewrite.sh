#!/usr/bin/env bash
# Guard-all throughput, repair vs ASM, on the same corpus in the same run: every distinct jar of
# /usr/share/java (or the jars given). Both sides load the classes into memory first, warm up,
# then time at least 5 passes on one thread. Writes bench/rewrite.txt.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
seconds=${BENCH_WARMUP_SECONDS:-5}
if [ $# -gt 0 ]; then jars=("$@"); else mapfile -t jars < <(for j in /usr/share/java/*.jar; do readlink -f "$j"; done | sort -u); fi

cargo build --release -q -p repair-bytecode --example guard_all_bench
(cd java-harness && gradle --offline -q classes)
cp="java-harness/build/classes/java/main"
for j in asm asm-tree asm-commons asm-analysis; do cp="$cp:/usr/share/java/$j.jar"; done

ours=$(target/release/examples/guard_all_bench --seconds "$seconds" "${jars[@]}" 2>/dev/null | tail -1)
asm=$(java -Xms2g -cp "$cp" repair.bench.AsmGuardAll --seconds "$seconds" "${jars[@]}" | tail -1)
rate() { sed -E 's/.*classes_per_s=([0-9]+).*/\1/' <<<"$1"; }
ratio=$(awk -v a="$(rate "$ours")" -v b="$(rate "$asm")" 'BEGIN { printf "%.2f", a / b }')
asm_version=$(readlink -f /usr/share/java/asm.jar | sed -E 's/.*asm-([0-9.]+)\.jar/\1/')
{
    echo "guard-all over ${#jars[@]} jars, one thread each, $(date -u +%Y-%m-%d) on $(nproc) cores"
    echo "$ours"
    echo "$asm (ASM $asm_version, COMPUTE_FRAMES)"
    echo "ratio repair/asm = $ratio"
} | tee bench/rewrite.txt
