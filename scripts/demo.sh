#!/usr/bin/env bash
# The demo: the shop service faults under traffic; repairctl rewrites its classes with three
# patch specs (demo/*.yaml); the repaired service serves the same traffic without errors.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
./scripts/setup.sh >/dev/null
cargo build --release -q -p repair
(cd java-harness && gradle --offline -q jar)
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
jar=java-harness/build/libs/repair-harness.jar
traffic=(/price?item=apple /price?item=durian /ratio?a=7\&b=0 /ratio?a=9\&b=3 /order?item=pear\&qty=2 /orders?page=0\&size=5 /orders?page=9\&size=5)

serve() { # serve JAR: starts the service, sets $port
    java -cp "$1" repair.demo.ShopService > "$work/service.log" 2>&1 &
    for _ in $(seq 100); do
        port=$(sed -n 's/^LISTENING port=//p' "$work/service.log")
        [ -n "$port" ] && return
        sleep 0.1
    done
    echo "demo: the service did not start" >&2
    exit 1
}
drive() {
    java -cp "$jar" repair.demo.LoadDriver "http://127.0.0.1:$port" 700 4 "${traffic[@]}"
}

echo "== 1. the shop service as built: three endpoints fault"
serve "$jar"
drive
kill %1; wait %1 2>/dev/null || true

echo "== 2. repairctl rewrites the faulty methods (demo/*.yaml)"
cp "$jar" "$work/step0.jar"
i=0
for spec in demo/price-npe.yaml demo/ratio-zero.yaml demo/orders-page.yaml; do
    echo "   $spec"
    target/release/repairctl rewrite "$spec" "$work/step$i.jar" -o "$work/step$((i + 1)).jar"
    i=$((i + 1))
done

echo "== 3. the repaired service: the same traffic, no errors"
serve "$work/step$i.jar"
drive
curl -s "http://127.0.0.1:$port/price?item=durian" | sed 's/^/   price of an unknown item: /'
