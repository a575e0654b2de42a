#!/usr/bin/env bash
# The agent's costs, measured side by side in one run (each number from separate JVMs, configs
# alternated fork by fork). Writes bench/agent.txt. Takes about 3 minutes on 2 cores.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
forks=${FORKS:-3}
seconds=${SECONDS_PER_FORK:-5}
cargo build --release -q --workspace --examples
(cd java-harness && gradle --offline -q jar 2>/dev/null)
so="$root/target/release/librepair.so"
cp="java-harness/build/libs/repair-harness.jar"
java=${JAVA_HOME:-/usr/lib/jvm/java-17-openjdk-amd64}/bin/java
out=$(mktemp -d)
# The agent keeps its journal here, not in the user's state dir.
export XDG_STATE_HOME="$out/state"
trap 'pkill -f "repair.bench.AgentWorkloads serve" 2>/dev/null || true; rm -rf "$out"' EXIT

stats() { python3 -c 'import sys, statistics as s; v=[float(x) for x in sys.stdin.read().split()]; print(f"{s.mean(v):.0f} ± {s.stdev(v) if len(v) > 1 else 0:.0f} (n={len(v)})")'; }
stats1() { python3 -c 'import sys, statistics as s; v=[float(x) for x in sys.stdin.read().split()]; print(f"{s.mean(v):.1f} ± {s.stdev(v) if len(v) > 1 else 0:.1f} (n={len(v)}, median {s.median(v):.1f})")'; }
rate() { sed -nE 's/.*ops_per_s=([0-9]+).*/\1/p'; }

echo "== throughput: CPU-bound and exception-heavy, $forks forks x $seconds s each after 3 s warm-up"
for workload in cpu exceptions; do
    for i in $(seq "$forks"); do
        "$java" -cp "$cp" repair.bench.AgentWorkloads "$workload" "$seconds" | rate >> "$out/$workload-none"
        "$java" -agentpath:"$so" -cp "$cp" repair.bench.AgentWorkloads "$workload" "$seconds" 2>/dev/null | rate >> "$out/$workload-agent"
        if [ "$workload" = exceptions ]; then
            "$java" -agentpath:"$so=faults=jvmti" -cp "$cp" repair.bench.AgentWorkloads "$workload" "$seconds" 2>/dev/null | rate >> "$out/$workload-jvmti"
        fi
    done
done
eps=$("$java" -cp "$cp" repair.bench.AgentWorkloads exceptions 2 | sed -nE 's/.*exceptions_per_s=([0-9]+).*/\1/p')

echo "== start-up to main and exit after main: 20 runs each, alternated"
# One line per run: ms from spawn to the first line main prints, ms from that line to the
# process's end (HotSpot's exit: shutdown hooks, VMDeath, the final safepoint).
launch() {
    python3 - "$java" "$cp" "$@" <<'PY'
import subprocess, sys, time
java, cp, extra = sys.argv[1], sys.argv[2], sys.argv[3:]
t0 = time.perf_counter()
p = subprocess.Popen([java, *extra, "-cp", cp, "repair.bench.AgentWorkloads", "hello"],
                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
p.stdout.readline()
t1 = time.perf_counter()
p.wait()
t2 = time.perf_counter()
print(f"{(t1 - t0) * 1e3:.2f} {(t2 - t1) * 1e3:.2f}")
PY
}
for _ in $(seq 20); do
    launch -Xshare:auto >> "$out/launch-none"
    launch -agentpath:"$so" >> "$out/launch-agent"
done
for c in none agent; do
    cut -d' ' -f1 "$out/launch-$c" > "$out/start-$c"
    cut -d' ' -f2 "$out/launch-$c" > "$out/exit-$c"
done

echo "== resident memory of an idle service, 4 s after start"
rss() {
    "$java" "$@" -cp "$cp" repair.demo.ShopService > "$out/rss.log" 2>&1 &
    local pid=$!
    sleep 4
    local kb
    kb=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
    kill "$pid"; wait "$pid" 2>/dev/null || true
    echo "$kb"
}
rss_none=$(for _ in 1 2 3; do rss; done | stats)
rss_agent=$(for _ in 1 2 3; do rss -agentpath:"$so"; done | stats)

echo "== apply round trip on a JVM with ~10,000 loaded classes: 200 apply + rollback on one connection, 50 with repairctl"
jars=$(for j in guava groovy-all commons-lang3 commons-io; do readlink -f "/usr/share/java/$j.jar"; done | tr '\n' ' ')
"$java" -agentpath:"$so" -cp "$cp" repair.bench.AgentWorkloads serve 9000 $jars > "$out/serve.log" 2> "$out/serve.err" &
serve_pid=$!
for _ in $(seq 300); do grep -q LISTENING "$out/serve.log" && break; sleep 0.1; done
sock=$(sed -n 's/.*listening on unix://p' "$out/serve.err")

spec="$root/demo/price-npe.yaml"
connected=$(target/release/examples/apply_latency "unix:$sock" "$spec" 200)
for _ in $(seq 50); do
    t0=$(date +%s%N)
    target/release/repairctl apply "$spec" --endpoint "unix:$sock" >/dev/null
    t1=$(date +%s%N)
    target/release/repairctl rollback price-npe --endpoint "unix:$sock" >/dev/null
    echo $(((t1 - t0) / 1000)) | awk '{print $1 / 1000}' >> "$out/apply"
done
kill "$serve_pid"; wait "$serve_pid" 2>/dev/null || true
loaded=$(grep -o 'loaded [0-9]* extra' "$out/serve.err" | grep -o '[0-9]*')

pct() { python3 -c "import statistics as s; a=[float(x) for x in open('$1').read().split()]; b=[float(x) for x in open('$2').read().split()]; print(f'{(s.mean(b)/s.mean(a)-1)*100:+.1f}%')"; }
quantiles() { python3 -c "import statistics as s; v=sorted(float(x) for x in open('$1').read().split()); q=lambda p: v[min(len(v)-1, int(p*len(v)))]; print(f'p50 {q(0.5):.1f} ms, p99 {q(0.99):.1f} ms, max {v[-1]:.1f} ms (n={len(v)})')"; }
{
    echo "scripts/bench-agent.sh, $(date -u +%Y-%m-%d), $(nproc) cores, $("$java" -version 2>&1 | head -1)"
    echo "CPU-bound ops/s        without agent: $(stats < "$out/cpu-none")"
    echo "                       agent idle:    $(stats < "$out/cpu-agent")   change $(pct "$out/cpu-none" "$out/cpu-agent")"
    echo "exception-heavy ops/s  ($eps exceptions/s thrown out of a callee and caught)"
    echo "                       without agent: $(stats < "$out/exceptions-none")"
    echo "                       agent (bytecode capture, default): $(stats < "$out/exceptions-agent")   change $(pct "$out/exceptions-none" "$out/exceptions-agent")"
    echo "                       agent faults=jvmti: $(stats < "$out/exceptions-jvmti")   change $(pct "$out/exceptions-none" "$out/exceptions-jvmti")"
    echo "start-up to main (ms)  without agent: $(stats1 < "$out/start-none")   with agent: $(stats1 < "$out/start-agent")"
    echo "exit after main (ms)   without agent: $(stats1 < "$out/exit-none")   with agent: $(stats1 < "$out/exit-agent")"
    echo "RSS of an idle service (KiB)  without agent: $rss_none   with agent: $rss_agent"
    echo "apply round trip with $loaded extra classes loaded (gRPC Apply: spec parse, rewrite, RetransformClasses):"
    echo "                       a connected client (examples/apply_latency.rs): $connected"
    echo "                       one repairctl process per apply: $(quantiles "$out/apply")"
} | tee bench/agent.txt
