#!/usr/bin/env bash
# Metaspace cost of apply/rollback cycles (see bench/metaspace.txt). One run prints
# "CYCLES METASPACE_USED_KiB" after a full GC every STEP cycles of one guard patch
# (demo/price-npe.yaml on repair.demo.PriceService), heap fixed as in scripts/soak.sh.
#
#   scripts/bench-metaspace.sh agent CYCLES STEP [AGENT_OPTIONS] [traffic]
#       the demo shop service with librepair.so; cycles over gRPC by examples/apply_latency.rs
#       (one connected client); after each step `jcmd GC.run` and `jstat -gc` MU.
#   scripts/bench-metaspace.sh java CYCLES STEP [traffic]
#       the control: a pure java.lang.instrument agent (scripts/metaspace/RetransformAgent.java)
#       retransforming the same class in-process to the bytes `repairctl rewrite` makes of the same
#       spec and back; after each step System.gc() and the Metaspace pool's used.
#   env: JAVA (default java), HEAP (default -Xms256m -Xmx256m -XX:+AlwaysPreTouch)
# "traffic": 2 threads call PriceService.price("apple") throughout (the agent run: LoadDriver).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
java=${JAVA:-java}
jdk_bin=$(dirname "$(readlink -f "$(command -v "$java")")")
heap=${HEAP:--Xms256m -Xmx256m -XX:+AlwaysPreTouch}
mode=$1 cycles=$2 step=$3
jar=$root/java-harness/build/libs/repair-harness.jar
spec=$root/demo/price-npe.yaml
[ -f "$jar" ] || (cd "$root/java-harness" && gradle --offline -q jar 2>/dev/null)
tmp=$(mktemp -d)
pid= load=
cleanup() {
    [ -n "$load" ] && kill "$load" 2>/dev/null
    [ -n "$pid" ] && kill "$pid" 2>/dev/null
    wait 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT

case $mode in
java)
    traffic=${4:-}
    "$jdk_bin/javac" -cp "$jar" -d "$tmp/cls" "$root/scripts/metaspace/RetransformAgent.java"
    printf 'Premain-Class: RetransformAgent\nCan-Retransform-Classes: true\n' > "$tmp/manifest"
    "$jdk_bin/jar" cfm "$tmp/agent.jar" "$tmp/manifest" -C "$tmp/cls" .
    (cd "$tmp" && unzip -q -o "$jar" repair/demo/PriceService.class)
    "$root/target/release/repairctl" rewrite "$spec" "$tmp/repair/demo/PriceService.class" --out "$tmp/patched.class" >/dev/null
    # shellcheck disable=SC2086
    "$java" $heap -javaagent:"$tmp/agent.jar=$tmp/patched.class,$cycles,$step${traffic:+,traffic}" -cp "$jar" RetransformAgent
    ;;
agent)
    options=${4:-} traffic=${5:-}
    client=$root/target/release/examples/apply_latency
    [ -x "$client" ] || cargo build --release -q --example apply_latency
    # shellcheck disable=SC2086
    "$java" $heap -agentpath:"$root/target/release/librepair.so=state=$tmp/state${options:+,$options}" \
        -cp "$jar" repair.demo.ShopService > "$tmp/jvm.log" 2>&1 &
    pid=$!
    for _ in $(seq 100); do grep -q '^LISTENING' "$tmp/jvm.log" && break; sleep 0.1; done
    port=$(sed -n 's/^LISTENING port=//p' "$tmp/jvm.log")
    sock=$(sed -n 's/.*listening on unix:\([^ ]*\).*/\1/p' "$tmp/jvm.log")
    [ -n "$port" ] && [ -n "$sock" ] || { cat "$tmp/jvm.log"; exit 1; }
    if [ "$traffic" = traffic ]; then
        (while :; do "$java" -cp "$jar" repair.demo.LoadDriver "http://127.0.0.1:$port" 100000 2 /price?item=apple >/dev/null 2>&1 || true; done) &
        load=$!
        sleep 2
    fi
    mu() {
        "$jdk_bin/jcmd" "$pid" GC.run >/dev/null
        "$jdk_bin/jstat" -gc "$pid" | awk 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == "MU") c = i } NR == 2 { printf "%d", $c }'
    }
    echo "0 $(mu)"
    for ((done_ = step; done_ <= cycles; done_ += step)); do
        "$client" "unix:$sock" "$spec" "$step" >/dev/null
        echo "$done_ $(mu)"
    done
    ;;
*) echo "usage: $0 agent|java CYCLES STEP ..." >&2; exit 2 ;;
esac
