#!/usr/bin/env bash
# Control-plane fuzzing: starts the demo shop service with librepair.so (state in a temp dir),
# drives light traffic with LoadDriver in the background, and runs examples/fuzz_control.rs
# against the agent's socket for SECONDS (random and mutated requests to every RPC, raw garbage
# connections), with the corpus in fuzz/control-corpus/ (new entries are written there). Then it
# checks that the JVM is alive and still serves HTTP, stops it, and writes the summary to
# bench/fuzz-control.txt. Exits nonzero on a crash, a hang or a failed check.
#
#   scripts/fuzz-control.sh [SECONDS]        # default 600
#
# A crash or hang leaves the last inputs as fuzz/control-corpus/crash-* (and wrong answers as
# anomaly-*); the fuzzer names them. Replay one by putting it back as <Method>-x.bin.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
seconds=${1:-600}
corpus=fuzz/control-corpus
out=bench/fuzz-control.txt

echo "== building (cargo --release: agent, repairctl, fuzz_control; gradle: the demo)"
cargo build --release -q -p repair-agent -p repair-model
cargo build --release -q -p repair-model --example fuzz_control
(cd java-harness && gradle --offline -q jar 2>/dev/null)
jar=java-harness/build/libs/repair-harness.jar
repairctl=target/release/repairctl
fuzzer=target/release/examples/fuzz_control

tmp=$(mktemp -d)
pid=
load=
cleanup() {
    [ -n "$load" ] && kill "$load" 2>/dev/null || true
    [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
    [ -n "$load" ] && wait "$load" 2>/dev/null || true
    [ -n "$pid" ] && wait "$pid" 2>/dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT

# shellcheck source=lib/demo-service.sh
source "$root/scripts/lib/demo-service.sh"
start_demo_service
echo "== the shop service: pid $pid, port $port"

# Light traffic, faults included, for as long as the run lasts.
traffic=(/price?item=apple /price?item=durian /ratio?a=7\&b=0 /ratio?a=9\&b=3 /order?item=pear\&qty=2 /orders?page=0\&size=5 /orders?page=9\&size=5)
(
    while :; do
        java -cp "$jar" repair.demo.LoadDriver "http://127.0.0.1:$port" 300 2 "${traffic[@]}" >/dev/null 2>&1 || true
        sleep 2
    done
) &
load=$!

echo "== fuzzing the control plane for $seconds s (corpus $corpus)"
started=$(date -u '+%Y-%m-%d %H:%M UTC')
mkdir -p "$corpus"
corpus_before=$(find "$corpus" -maxdepth 1 -name '*-*.bin' ! -name 'crash-*' ! -name 'anomaly-*' | wc -l)
set +e
"$fuzzer" --pid "$pid" --seconds "$seconds" --corpus "$corpus" --demo demo 2>&1 | tee "$tmp/fuzz.txt"
fuzz_status=${PIPESTATUS[0]}
set -e

kill "$load" 2>/dev/null || true
wait "$load" 2>/dev/null || true
load=

alive=no
if [ -r "/proc/$pid/stat" ] && ! awk '{ exit !($3 == "Z" || $3 == "X") }' "/proc/$pid/stat"; then alive=yes; fi
http=no
stats=$(curl -sf --max-time 5 "http://127.0.0.1:$port/stats" | tr '\n' ' ') && http=yes
panics=$(grep -c 'panicked' "$tmp/jvm.log" || true)
hs_err=$(find "$tmp" -maxdepth 1 -name 'hs_err_*.log' | wc -l)
corpus_after=$(find "$corpus" -maxdepth 1 -name '*-*.bin' ! -name 'crash-*' ! -name 'anomaly-*' | wc -l)

result=OK
if [ "$fuzz_status" -ne 0 ] || [ "$alive" != yes ] || [ "$http" != yes ] || [ "$panics" -ne 0 ] || [ "$hs_err" -ne 0 ]; then
    result=FAILED
fi
{
    echo "scripts/fuzz-control.sh $seconds, $started, $(nproc) cores, $(java -version 2>&1 | sed -n 1p)"
    echo "demo service with librepair.so under light LoadDriver traffic; examples/fuzz_control.rs on its socket"
    grep -v '^fuzz_control: wrong answer' "$tmp/fuzz.txt"
    echo "corpus $corpus: $corpus_before files before, $corpus_after after"
    echo "after the run: JVM alive: $alive; HTTP /stats answered: $http${stats:+ ($stats)}"
    echo "JVM log: $panics panics, $hs_err hs_err files; its last lines:"
    tail -5 "$tmp/jvm.log" | cut -c1-200 | sed 's/^/  /'
    echo "fuzz-control: $result (fuzzer exit $fuzz_status)"
} > "$out"
if [ "$result" != OK ]; then
    echo "== JVM log (tail)"
    tail -40 "$tmp/jvm.log"
fi
echo "== summary ($out)"
cat "$out"
[ "$result" = OK ]
