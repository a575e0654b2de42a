# Sourced by the scripts that run the demo shop service with the agent (fuzz-control.sh, soak.sh).
# Expects $root, $jar, $repairctl and $tmp.

# Starts repair.demo.ShopService with librepair.so (state in $tmp/state, log in $tmp/jvm.log, JVM
# options "$@"), waits until it listens over HTTP and its agent answers; sets pid and port.
start_demo_service() {
    java "$@" -XX:ErrorFile="$tmp/hs_err_%p.log" -agentpath:"$root/target/release/librepair.so=state=$tmp/state" \
        -cp "$jar" repair.demo.ShopService > "$tmp/jvm.log" 2>&1 &
    pid=$!
    port=
    for _ in $(seq 100); do
        port=$(sed -n 's/^LISTENING port=//p' "$tmp/jvm.log")
        [ -n "$port" ] && break
        sleep 0.1
    done
    [ -n "$port" ] || { echo "$(basename "$0" .sh): the service did not start"; cat "$tmp/jvm.log"; exit 1; }
    for _ in $(seq 50); do "$repairctl" status --pid "$pid" >/dev/null 2>&1 && break; sleep 0.1; done
}
