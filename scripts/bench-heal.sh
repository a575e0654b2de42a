#!/usr/bin/env bash
# Self-healing latency: from the Nth matching fault (N = 3) to the repair in effect, over 100
# repairs of 100 distinct classes, measured by the faulting program itself (System.nanoTime at the
# third throw, then at the first call that returns the fallback). Writes bench/heal.txt.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
cargo build --release -q --workspace
java_home=${JAVA_HOME:-/usr/lib/jvm/java-17-openjdk-amd64}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
n=100
mkdir -p "$work/src/bench"
cat > "$work/src/bench/Call.java" <<'JAVA'
package bench;
public interface Call { int f(int x); }
JAVA
for i in $(seq 0 $((n - 1))); do
    cat > "$work/src/bench/Svc$i.java" <<JAVA
package bench;
public final class Svc$i implements Call {
    public int f(int x) { if (x > 0) throw new IllegalStateException("svc $i is down"); return x; }
}
JAVA
done
{
    echo "package bench;"
    echo "public final class HealBench { public static void main(String[] a) throws Exception {"
    echo "  Call[] svcs = {"
    for i in $(seq 0 $((n - 1))); do echo "    new Svc$i(),"; done
    echo "  };"
    cat <<'JAVA'
  long[] took = new long[svcs.length];
  for (int i = 0; i < svcs.length; i++) {
    long third = 0;
    for (int k = 0; k < 3; k++) {
      try { svcs[i].f(1); } catch (IllegalStateException e) { third = System.nanoTime(); }
    }
    while (true) {
      try { if (svcs[i].f(1) == -1) break; } catch (IllegalStateException e) { }
    }
    took[i] = System.nanoTime() - third;
  }
  java.util.Arrays.sort(took);
  System.out.printf("n=%d p50=%.2f ms p99=%.2f ms max=%.2f ms%n", took.length, took[took.length / 2] / 1e6,
      took[(int) Math.ceil(took.length * 0.99) - 1] / 1e6, took[took.length - 1] / 1e6);
} }
JAVA
} > "$work/src/bench/HealBench.java"
"$java_home/bin/javac" -d "$work/classes" "$work/src/bench/"*.java
cat > "$work/policy.yaml" <<'YAML'
limits: { repairs_per_minute: 1000, active_patches: 200 }
rules:
  - name: svc-down
    when: { exception: java.lang.IllegalStateException, in: "bench.Svc*", count: 3, within: 10s }
    then:
      - guard: { catch: [java.lang.IllegalStateException], fallback: { value: -1 } }
    validate: { window: 1s, max_fallback_rate: 1.0 }
YAML
mkdir -p bench
result=$("$java_home/bin/java" -agentpath:"$root/target/release/librepair.so=policy=$work/policy.yaml,state=$work/state,log=warn" \
    -cp "$work/classes" bench.HealBench)
{
    echo "# scripts/bench-heal.sh on $(nproc) cores, $("$java_home/bin/java" -version 2>&1 | head -1)"
    echo "# from the 3rd matching fault to the first call that returns the fallback, $n repairs of $n classes"
    echo "heal $result"
} | tee bench/heal.txt
