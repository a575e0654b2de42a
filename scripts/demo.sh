#!/usr/bin/env bash
# The demo: the shop service runs with librepair.so and faults under traffic; repairctl repairs
# it live over gRPC with the three patch specs in demo/; the same JVM, with its in-memory state,
# then serves the same traffic without errors. One repair is rolled back to show the way back.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
./scripts/setup.sh >/dev/null
echo "== building (cargo --release, gradle)"
cargo build --release -q --workspace
(cd java-harness && gradle --offline -q jar 2>/dev/null)
jar=java-harness/build/libs/repair-harness.jar
repairctl=target/release/repairctl
log=$(mktemp)
state=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$log" "$state"' EXIT
traffic=(/price?item=apple /price?item=durian /ratio?a=7\&b=0 /ratio?a=9\&b=3 /order?item=pear\&qty=2 /orders?page=0\&size=5 /orders?page=9\&size=5)

# Starts the service with the agent and options $1; sets pid and port.
serve() {
    : > "$log"
    java -agentpath:"$root/target/release/librepair.so=state=$state/$2${1:+,$1}" -cp "$jar" repair.demo.ShopService > "$log" 2>&1 &
    pid=$!
    port=
    for _ in $(seq 100); do
        port=$(sed -n 's/^LISTENING port=//p' "$log")
        [ -n "$port" ] && break
        sleep 0.1
    done
    [ -n "$port" ] || { echo "demo: the service did not start"; cat "$log"; exit 1; }
}
serve "" operator
drive() { java -cp "$jar" repair.demo.LoadDriver "http://127.0.0.1:$port" 700 4 "${traffic[@]}"; }
stats() { curl -s "http://127.0.0.1:$port/stats" | tr '\n' ' '; echo; }

echo "== 1. the shop service (pid $pid) with the agent: three endpoints fault"
drive
echo "   state: $(stats)"
"$repairctl" status --pid "$pid" | sed 's/^/   /'

echo "== 2. repaired live: repairctl apply (no restart)"
for spec in demo/price-npe.yaml demo/ratio-zero.yaml demo/orders-page.yaml; do
    "$repairctl" apply "$spec" --pid "$pid" | sed 's/^/   /'
done
"$repairctl" patches --pid "$pid" | sed 's/^/   /'

echo "== 3. the same JVM, same traffic: no errors; the state carried on"
drive
echo "   state: $(stats)"

echo "== 4. rollback price-npe: the original behaviour is back"
"$repairctl" rollback price-npe --pid "$pid" | sed 's/^/   /'
echo "   /price?item=durian -> $(curl -s "http://127.0.0.1:$port/price?item=durian")"
"$repairctl" patches --pid "$pid" | sed 's/^/   /'
echo "   the JVM is still pid $pid: $(ps -o etime= -p "$pid" | tr -d ' ') up"

echo "== 5. self-healing: the service again, with demo/policy.yaml and no operator"
kill "$pid"; wait "$pid" 2>/dev/null || true
serve "policy=$root/demo/policy.yaml" policy
drive
sleep 2.5
echo "   the same traffic again, once the repairs are validated:"
drive
echo "   state: $(stats)"
echo "   what the agent decided and did (repairctl events):"
"$repairctl" events --pid "$pid" | grep -v ' policy ' | sed 's/^/   /'
"$repairctl" patches --pid "$pid" | sed 's/^/   /'
