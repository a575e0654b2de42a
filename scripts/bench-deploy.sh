#!/usr/bin/env bash
# Hot deploy of a fixed build into a service with ~10,000 application classes loaded: build A (all
# classes) runs; build B is the same sources with 100 classes changed in a method body (a constant),
# compiled separately, deployed as the whole jar (every class compared, 100 redefined in one batch)
# and as a directory holding only the 100 changed class files, each after a rollback of the last
# deploy. Reports the agent's time (the JSON's elapsed_us) and the wall time of the `repairctl deploy`
# process. Writes bench/deploy.txt. RUNS (default 30) cycles each; takes about a minute on 2 cores
# (javac about half of it).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
cargo build --release -q --workspace
java_home=${JAVA_HOME:-/usr/lib/jvm/java-17-openjdk-amd64}
repairctl="$root/target/release/repairctl"
runs=${RUNS:-30}
n=10000         # generated application classes
changed=100     # of them, changed in build B: every (n / changed)th
work=$(mktemp -d)
jvm=
cleanup() {
    exec 3>&-
    if [ -n "$jvm" ]; then kill "$jvm" 2>/dev/null || true; wait "$jvm" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "bench-deploy: $*" >&2; exit 1; }

# --- sources: bench.gen.C0..C{n-1}, a constant in f's body is what build B changes; bench.Main
# loads them all, prints READY <pid>, then calls a few of them (two changed, two not) every
# millisecond until stdin closes.
gen_class() { # dir i constant
    printf '%s\n' "package bench.gen;" \
        "public final class C$2 {" \
        "    private int v;" \
        "    public C$2(int v) { this.v = v; }" \
        "    public static int f(int x) { return x * 31 + $3; }" \
        "    public int g(int x) { v += x; return v ^ $2; }" \
        "}" > "$1/bench/gen/C$2.java"
}
echo "== generating $n classes"
mkdir -p "$work/a/src/bench/gen" "$work/b/src/bench/gen"
for ((i = 0; i < n; i++)); do gen_class "$work/a/src" "$i" 1; done
cat > "$work/a/src/bench/Main.java" <<JAVA
package bench;
import bench.gen.*;
public final class Main {
    static volatile int sink;
    public static void main(String[] args) throws Exception {
        for (int i = 0; i < $n; i++) Class.forName("bench.gen.C" + i);
        Thread load = new Thread(() -> {
            C1 c1 = new C1(1);
            C$((n / 2)) half = new C$((n / 2))(2);
            for (int k = 0; ; k++) {
                sink += C0.f(k) + c1.g(k) + half.g(k) + C$((n / 2 + 1)).f(k);
                try { Thread.sleep(1); } catch (InterruptedException e) { return; }
            }
        }, "load");
        load.setDaemon(true);
        load.start();
        System.out.println("READY " + ProcessHandle.current().pid());
        System.out.flush();
        while (System.in.read() != -1) { }
    }
}
JAVA
cp -r "$work/a/src/." "$work/b/src/"
changed_names=()
for ((i = 0; i < n; i += n / changed)); do
    gen_class "$work/b/src" "$i" 2
    changed_names+=("bench/gen/C$i.class")
done
[ "${#changed_names[@]}" -eq "$changed" ] || fail "changed ${#changed_names[@]} classes, meant $changed"

echo "== compiling build A and build B (one javac each)"
for b in a b; do
    (cd "$work/$b/src" && find . -name '*.java' > "$work/$b/sources")
    t0=$EPOCHREALTIME
    (cd "$work/$b/src" && "$java_home/bin/javac" -nowarn -d "$work/$b/classes" "@$work/$b/sources")
    echo "   javac $b: $(python3 -c "print(f'{$EPOCHREALTIME - $t0:.0f}')") s"
    "$java_home/bin/jar" cf "$work/$b.jar" -C "$work/$b/classes" .
done
mkdir -p "$work/b-dir/bench/gen"
for c in "${changed_names[@]}"; do cp "$work/b/classes/$c" "$work/b-dir/$c"; done
jar_classes=$("$java_home/bin/jar" tf "$work/b.jar" | grep -c '\.class$')
differing=$(diff -rq "$work/a/classes" "$work/b/classes" | wc -l || true)
[ "$differing" -eq "$changed" ] || fail "builds A and B differ in $differing class files, expected $changed"

echo "== starting the service on build A"
mkfifo "$work/stdin"
"$java_home/bin/java" -XX:ErrorFile="$work/hs_err_%p.log" \
    -agentpath:"$root/target/release/librepair.so=state=$work/state" \
    -cp "$work/a.jar" bench.Main < "$work/stdin" > "$work/jvm.log" 2>&1 &
jvm=$!
exec 3> "$work/stdin"   # the service runs until this closes
for _ in $(seq 600); do grep -q '^READY' "$work/jvm.log" && break; kill -0 "$jvm" 2>/dev/null || break; sleep 0.1; done
grep -q "^READY $jvm\$" "$work/jvm.log" || { cat "$work/jvm.log" >&2; fail "the service did not start"; }
for _ in $(seq 50); do "$repairctl" status --pid "$jvm" >/dev/null 2>&1 && break; sleep 0.1; done
loaded=$("$repairctl" status --pid "$jvm" -o json | python3 -c 'import json, sys; print(json.load(sys.stdin)["classes_loaded"])')
[ "$loaded" -ge "$n" ] || fail "only $loaded classes loaded, expected at least $n"
echo "   pid $jvm, $loaded classes loaded"

# deploy BUILD OUT: one `repairctl deploy`; appends "agent_ms wall_ms" to OUT, sets $id.
id=
deploy() {
    local t0 t1 json
    t0=$EPOCHREALTIME
    json=$("$repairctl" deploy "$1" --pid "$jvm" -o json) || fail "repairctl deploy $1 failed"
    t1=$EPOCHREALTIME
    printf '%s' "$json" > "$work/last-deploy.json"
    id=$(python3 - "$work/last-deploy.json" "$changed" "$t0" "$t1" "$2" <<'PY'
import json, sys
path, want, t0, t1, out = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
d = json.load(open(path))
states = {}
for c in d.get("classes", []):
    states[c["state"]] = states.get(c["state"], 0) + 1
if d.get("applied") is not True or states.get("changed", 0) != want:
    sys.exit(f"bench-deploy: deploy {d.get('id')} applied={d.get('applied')} states={states} (want {want} changed): {d.get('summary')}")
with open(out, "a") as f:
    f.write(f"{d['elapsed_us'] / 1000:.3f} {(t1 - t0) * 1000:.3f}\n")
print(d["id"])
PY
    ) || { cat "$work/last-deploy.json" >&2; echo >&2; exit 1; }
}
rollback() {
    local t0=$EPOCHREALTIME
    "$repairctl" rollback "$id" --pid "$jvm" -o json > "$work/last-rollback.json" \
        || { cat "$work/last-rollback.json" >&2; fail "repairctl rollback $id failed"; }
    python3 -c "print(f'{($EPOCHREALTIME - $t0) * 1000:.3f}')" >> "$1"
}

# The machine may be shared: CPU of the whole machine (/proc/stat), of the JVM and of this script's
# children (repairctl, python3) before and after the measurements, to tell contention in the results.
# (Not called in $(...): `times` must run in this shell to count its children.)
cpu_snapshot() {
    times > "$work/times"
    echo "$EPOCHREALTIME $(head -1 /proc/stat | cut -d' ' -f3-) $(cut -d' ' -f14-15 "/proc/$jvm/stat") $(tail -1 "$work/times")" > "$1"
}
cpu_snapshot "$work/cpu-before"
echo "== first deploy of the whole jar B"
deploy "$work/b.jar" "$work/first"
echo "== $runs x rollback + deploy of the whole jar B"
for _ in $(seq "$runs"); do rollback "$work/jar-rollback"; deploy "$work/b.jar" "$work/jar"; done
echo "== $runs x rollback + deploy of the $changed-class directory"
for _ in $(seq "$runs"); do rollback "$work/dir-rollback"; deploy "$work/b-dir" "$work/dir"; done
rollback "$work/last-rollback"
cpu_snapshot "$work/cpu-after"
kill -0 "$jvm" 2>/dev/null || fail "the service died"

# summary FILE: p50/p99/max of column 1 (agent) and 2 (wall); ms.
summary() {
    python3 - "$1" <<'PY'
import sys
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
def q(v, p): v = sorted(v); return v[min(len(v) - 1, int(p * len(v)))]
agent, wall = [float(r[0]) for r in rows], [float(r[1]) for r in rows]
verdict = lambda v: "met" if q(v, .99) < 100 else "MISSED"
if len(rows) == 1:
    print(f"agent {agent[0]:.1f} ms; wall {wall[0]:.1f} ms")
else:
    print(f"n={len(rows)} agent p50={q(agent, .5):.1f} ms p99={q(agent, .99):.1f} ms max={max(agent):.1f} ms; "
          f"wall p50={q(wall, .5):.1f} ms p99={q(wall, .99):.1f} ms max={max(wall):.1f} ms   (target p99 < 100 ms: agent {verdict(agent)}, wall {verdict(wall)})")
PY
}
rollbacks() {
    python3 - "$1" <<'PY'
import sys
v = sorted(float(l) for l in open(sys.argv[1]) if l.strip())
q = lambda p: v[min(len(v) - 1, int(p * len(v)))]
print(f"n={len(v)} wall p50={q(.5):.1f} ms p99={q(.99):.1f} ms")
PY
}
cpu_share() {
    python3 - "$(cat "$work/cpu-before")" "$(cat "$work/cpu-after")" "$(nproc)" "$(getconf CLK_TCK)" <<'PY'
import re, sys
def parse(snap):
    f = snap.split()
    t, cpu, jvm, kids = float(f[0]), [int(x) for x in f[1:11]], int(f[11]) + int(f[12]), f[13:15]
    sec = lambda v: int(re.match(r"(\d+)m", v).group(1)) * 60 + float(re.search(r"m([\d.]+)s", v).group(1))
    return t, cpu, jvm, sec(kids[0]) + sec(kids[1])
(t0, c0, j0, k0), (t1, c1, j1, k1) = parse(sys.argv[1]), parse(sys.argv[2])
cores, hz = int(sys.argv[3]), int(sys.argv[4])
d = [b - a for a, b in zip(c0, c1)]  # user nice system idle iowait irq softirq steal guest guest_nice
secs = t1 - t0
busy = (d[0] + d[1] + d[2] + d[5] + d[6]) / hz
jvm, kids = (j1 - j0) / hz, k1 - k0
pct = lambda x: f"{100 * x / (secs * cores):.0f}%"
print(f"{secs:.0f} s on {cores} cores: busy {pct(busy)} of the cores (the JVM {pct(jvm)}, repairctl and python3 {pct(kids)}, "
      f"everything else {pct(max(0, busy - jvm - kids))}), steal {pct(d[7] / hz)}")
PY
}
fmt() { python3 -c "print(f'{$1:,}')"; }
mkdir -p bench
{
    echo "# scripts/bench-deploy.sh on $(nproc) cores, $("$java_home/bin/java" -version 2>&1 | head -1), $(date -u +%Y-%m-%d)"
    echo "# repairctl deploy into a JVM running build A of $(fmt "$n") generated classes (bench.gen.C*, all loaded"
    echo "# with Class.forName, a few called every ms); build B = same sources, $changed classes with one constant"
    echo "# changed in a method body, compiled separately. Each deploy after the first follows a rollback of the"
    echo "# last one. agent = the JSON's elapsed_us (time in the agent), wall = the repairctl process, spawn to exit."
    echo "# The first deploy reads the JVM's original bytes of every class in the build once. Quantiles are"
    echo "# nearest-rank: with n < 100, p99 is the max (one slow call of $runs)."
    echo "# CPU during the measurements, $(cpu_share)"
    echo "deploy jar first ($(fmt "$jar_classes") classes, $changed changed) into $(fmt "$loaded") loaded: $(summary "$work/first")"
    echo "deploy jar ($(fmt "$jar_classes") classes, $changed changed) into $(fmt "$loaded") loaded: $(summary "$work/jar")"
    echo "deploy dir ($changed classes, $changed changed) into $(fmt "$loaded") loaded: $(summary "$work/dir")"
    echo "rollback of a jar deploy: $(rollbacks "$work/jar-rollback")"
    echo "rollback of a dir deploy: $(rollbacks "$work/dir-rollback")"
} | tee bench/deploy.txt
