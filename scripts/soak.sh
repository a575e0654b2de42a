#!/usr/bin/env bash
# Soak test of the agent: the demo shop service with librepair.so (state in a temp dir) under
# continuous LoadDriver traffic and, for SECONDS, control-plane storms: 4 parallel loops of
# `repairctl apply` / `repairctl rollback` with distinct patch ids (the demo specs with `id:`
# rewritten, one id per apply), an observe loop (status, patches, faults, events, history,
# classes 'repair.demo.*'), and two watches (`repairctl events --follow`, `faults --follow`).
# Every acknowledged apply and rollback is logged client side. The JVM's RSS and thread count and
# the agent's threads are sampled at start, after WARMUP s, every SAMPLE_SECONDS and at the end.
# At the end (storms stopped, quiet) it checks that `repairctl patches` holds exactly the patches
# the client log says are active, and that `repairctl history -o json` holds exactly one
# `applied` record per acknowledged apply and one `rolled_back` per acknowledged rollback (none
# lost, none duplicated, none unacknowledged) with unique, increasing seqs. Writes the table and
# the verdict to bench/soak.txt; exits nonzero if RSS grew more than RSS_BOUND_MIB over the first
# sample after warm-up, if threads grew, or if any check fails.
#
#   scripts/soak.sh [SECONDS] [SAMPLE_SECONDS]        # defaults 3600 and 600
#   env: WARMUP (1200 s for runs of 40 minutes or more, else 60 s), RSS_BOUND_MIB (64), THREAD_SLACK (4), STORM_PAUSE (0 s between cycles),
#        SOAK_HEAP (JVM heap options, default a fixed pre-touched 256 MiB heap)
#
# The table's META_MiB is the JVM's metaspace in use (jstat -gc MU): class redefinition grows it.
#
# Each storm loop, when told to stop, leaves its last patch applied, so the end state is not empty.
# At full speed an hour writes hundreds of MiB of journal records: the agent compacts its journal
# above 8 MiB (journal_max=), so history is checked inside the window it keeps
# (scripts/soak/check_history.py).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
seconds=${1:-3600}
sample_every=${2:-600}
# At full storm speed the journal (compacted at 8 MiB, the previous file kept) and the agent's
# records of it reach their ceiling, and the allocator settles, in about 15 minutes: a long run
# measures growth from 20 minutes on, where any growth is a leak.
if [ "$seconds" -ge 2400 ]; then warmup=${WARMUP:-1200}; else warmup=${WARMUP:-60}; fi
rss_bound_mib=${RSS_BOUND_MIB:-64}
thread_slack=${THREAD_SLACK:-4}
pause=${STORM_PAUSE:-0}
out=bench/soak.txt
# A fixed, pre-touched Java heap: RSS then measures what grows outside it (metaspace, the agent's
# native memory, threads), not G1 growing its heap under the traffic.
heap=${SOAK_HEAP:--Xms256m -Xmx256m -XX:+AlwaysPreTouch}

echo "== building (cargo --release: agent, repairctl; gradle: the demo)"
cargo build --release -q -p repair-agent -p repair-model
(cd java-harness && gradle --offline -q jar 2>/dev/null)
jar=java-harness/build/libs/repair-harness.jar
repairctl=$root/target/release/repairctl

tmp=$(mktemp -d)
pid=
bg=()
cleanup() {
    touch "$tmp/stop" 2>/dev/null || true
    for p in "${bg[@]}"; do kill "$p" 2>/dev/null || true; done
    [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
    for p in "${bg[@]}"; do wait "$p" 2>/dev/null || true; done
    [ -n "$pid" ] && wait "$pid" 2>/dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT

# shellcheck source=lib/demo-service.sh
source "$root/scripts/lib/demo-service.sh"
start_demo_service $heap
echo "== the shop service: pid $pid, port $port; soak for $seconds s, samples every $sample_every s"

rc() { "$repairctl" "$@" --pid "$pid"; }
stopping() { [ -e "$tmp/stop" ]; }

# Continuous traffic, faults included.
traffic=(/price?item=apple /price?item=durian /ratio?a=7\&b=0 /ratio?a=9\&b=3 /order?item=pear\&qty=2 /orders?page=0\&size=5 /orders?page=9\&size=5)
(
    while ! [ -e "$tmp/stop-traffic" ]; do
        java -cp "$jar" repair.demo.LoadDriver "http://127.0.0.1:$port" 2000 2 "${traffic[@]}" >/dev/null 2>&1 || true
    done
) &
bg+=($!)

count() { cat "$tmp"/acks-*.log 2>/dev/null | grep -c "^$1 .* ok$" || true; }
start=$(date +%s)
rows=()
base_rss= base_threads= max_agent=0
sample() {
    local label=$1 rss threads agent t
    t=$(($(date +%s) - start))
    rss=$(awk '/^VmRSS:/ { print $2 }' "/proc/$pid/status")
    threads=$(awk '/^Threads:/ { print $2 }' "/proc/$pid/status")
    agent=$(cat /proc/"$pid"/task/*/comm 2>/dev/null | grep -c '^repair' || true)
    meta=$(jstat -gc "$pid" 2>/dev/null | awk 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == "MU") c = i } NR == 2 && c { printf "%.1f", $c / 1024 }' || true)
    [ "$agent" -gt "$max_agent" ] && max_agent=$agent
    rows+=("$(printf '%-8s %6d %9.1f %8s %8d %8d %9d %10d' "$label" "$t" "$(echo "$rss / 1024" | bc -l)" "${meta:-?}" "$threads" "$agent" "$(count apply)" "$(count rollback)")")
    echo "   ${rows[-1]}"
    if [ "$label" = warm ]; then base_rss=$rss; base_threads=$threads; fi
    last_rss=$rss last_threads=$threads
}
header=$(printf '%-8s %6s %9s %8s %8s %8s %9s %10s' SAMPLE TIME_S RSS_MiB META_MiB THREADS AGENT_TH APPLIES ROLLBACKS)
echo "   $header"
sample start

# Storm loop $1 on spec $2: apply soak-$1-N, roll it back, N+1, ...; when told to stop, it stops
# after an apply, leaving that patch active. acks-$1.log: "apply ID ok|fail", "rollback ID ok|fail".
storm() {
    local loop=$1 spec=$2 n=0 id file
    file=$tmp/spec-$loop.yaml
    while :; do
        n=$((n + 1))
        id=soak-$loop-$n
        sed "s/^id:.*/id: $id/" "$spec" > "$file"
        if rc apply "$file" >/dev/null 2>> "$tmp/errors-$loop.log"; then
            echo "apply $id ok" >> "$tmp/acks-$loop.log"
        else
            echo "apply $id fail" >> "$tmp/acks-$loop.log"
            stopping && break
            continue
        fi
        stopping && break
        if rc rollback "$id" >/dev/null 2>> "$tmp/errors-$loop.log"; then
            echo "rollback $id ok" >> "$tmp/acks-$loop.log"
        else
            echo "rollback $id fail" >> "$tmp/acks-$loop.log"
        fi
        [ "$pause" = 0 ] || sleep "$pause"
    done
}
specs=(demo/price-npe.yaml demo/ratio-zero.yaml demo/orders-page.yaml demo/price-npe.yaml)
storms=()
for i in 1 2 3 4; do
    : > "$tmp/acks-$i.log"
    storm "$i" "${specs[$((i - 1))]}" &
    storms+=($!)
    bg+=($!)
done

# Observe loop: every read-only command; failures counted.
: > "$tmp/observe-failed.log"
: > "$tmp/observe-rounds.log"
(
    while ! stopping; do
        for cmd in status patches faults events history "classes repair.demo.*"; do
            # shellcheck disable=SC2086
            if ! rc $cmd -o json >/dev/null 2>> "$tmp/observe-errors.log"; then echo "${cmd%% *}" >> "$tmp/observe-failed.log"; fi
        done
        echo x >> "$tmp/observe-rounds.log"
    done
) &
observer=$!
bg+=($observer)

# Watches: streams that must stay open for the whole run.
rc events --follow -o json > "$tmp/watch-events.log" 2> "$tmp/watch-events.err" &
watch_events=$!
bg+=($watch_events)
rc faults --follow -o json > "$tmp/watch-faults.log" 2> "$tmp/watch-faults.err" &
watch_faults=$!
bg+=($watch_faults)

next_warm=$((start + warmup))
next=$((start + sample_every))
end=$((start + seconds))
while :; do
    now=$(date +%s)
    [ "$now" -ge "$end" ] && break
    if ! kill -0 "$pid" 2>/dev/null; then echo "soak: the JVM died"; break; fi
    if [ -n "$next_warm" ] && [ "$now" -ge "$next_warm" ]; then sample warm; next_warm=; fi
    if [ "$now" -ge "$next" ]; then
        [ "$now" -lt "$end" ] && [ "$now" -ne "$((start + warmup))" ] && sample "t+$((now - start))"
        next=$((next + sample_every))
    fi
    sleep 1
done
[ -n "$base_rss" ] || sample warm
sample storm-end

echo "== stopping the storms, waiting for quiet"
touch "$tmp/stop"
for p in "${storms[@]}" "$observer"; do wait "$p" 2>/dev/null || true; done
watches_alive=yes
kill -0 "$watch_events" 2>/dev/null || watches_alive="no (events --follow ended: $(head -c 300 "$tmp/watch-events.err"))"
kill -0 "$watch_faults" 2>/dev/null || watches_alive="no (faults --follow ended: $(head -c 300 "$tmp/watch-faults.err"))"
kill "$watch_events" "$watch_faults" 2>/dev/null || true
touch "$tmp/stop-traffic"
sleep 15 # the control runtime's idle blocking threads end after 10 s
sample quiet

fail=()
alive=yes
kill -0 "$pid" 2>/dev/null || { alive=no; fail+=("the JVM died"); }

# Expected from the client side.
cat "$tmp"/acks-*.log > "$tmp/acks.log"
grep '^apply .* ok$' "$tmp/acks.log" | awk '{ print $2 }' | sort > "$tmp/applied.ok"
grep '^rollback .* ok$' "$tmp/acks.log" | awk '{ print $2 }' | sort > "$tmp/rolled.ok"
comm -23 "$tmp/applied.ok" "$tmp/rolled.ok" > "$tmp/expected-active"
applies=$(wc -l < "$tmp/applied.ok")
rollbacks=$(wc -l < "$tmp/rolled.ok")
apply_fail=$(grep -c '^apply .* fail$' "$tmp/acks.log" || true)
rollback_fail=$(grep -c '^rollback .* fail$' "$tmp/acks.log" || true)

# Patches: what the agent says is active.
patches_check="not read"
if rc patches -o json > "$tmp/patches.json" 2> "$tmp/patches.err"; then
    jq -r '.[].id' "$tmp/patches.json" | sort > "$tmp/active"
    if cmp -s "$tmp/active" "$tmp/expected-active"; then
        patches_check="ok: $(wc -l < "$tmp/active") active, as the client log says"
    else
        patches_check="MISMATCH: missing $(comm -23 "$tmp/expected-active" "$tmp/active" | tr '\n' ' ')extra $(comm -13 "$tmp/expected-active" "$tmp/active" | tr '\n' ' ')"
        fail+=("patches differ from the client log")
    fi
else
    patches_check="FAILED: repairctl patches: $(head -c 300 "$tmp/patches.err")"
    fail+=("repairctl patches failed")
fi

# History: inside the window the journal keeps (it is compacted above its size limit), one
# applied per acknowledged apply and one rolled_back per acknowledged rollback.
history_check="not read"
if rc history -o json > "$tmp/history.json" 2> "$tmp/history.err"; then
    if history_check=$("$root/scripts/soak/check_history.py" "$tmp/history.json" "$tmp/acks.log"); then
        :
    else
        fail+=("history does not match the client log")
    fi
else
    history_check="FAILED: repairctl history: $(head -c 300 "$tmp/history.err")"
    fail+=("repairctl history failed")
fi

# Memory and threads.
growth_kib=$((last_rss - base_rss))
if [ "$growth_kib" -gt $((rss_bound_mib * 1024)) ]; then
    fail+=("RSS grew $((growth_kib / 1024)) MiB over the warm sample (bound $rss_bound_mib MiB)")
fi
if [ "$last_threads" -gt $((base_threads + thread_slack)) ]; then
    fail+=("threads grew: $last_threads at quiet vs $base_threads at warm (slack $thread_slack)")
fi
[ "$watches_alive" = yes ] || fail+=("a watch stream ended: $watches_alive")
observe_rounds=$(wc -l < "$tmp/observe-rounds.log" 2>/dev/null || echo 0)
observe_failed=$(wc -l < "$tmp/observe-failed.log" 2>/dev/null || echo 0)
observe_which=$(sort "$tmp/observe-failed.log" 2>/dev/null | uniq -c | awk '{ printf "%s%s x%s", sep, $2, $1; sep = ", " }' || true)
[ "$observe_failed" -eq 0 ] || fail+=("$observe_failed observe calls failed ($observe_which)")
panics=$(grep -c 'panicked' "$tmp/jvm.log" || true)
[ "$panics" -eq 0 ] || fail+=("$panics panics in the JVM log")
http=no
curl -sf --max-time 5 "http://127.0.0.1:$port/stats" >/dev/null && http=yes
[ "$http" = yes ] || fail+=("the service no longer answers HTTP")

verdict=OK
[ ${#fail[@]} -eq 0 ] || verdict="FAILED: $(IFS=';'; echo "${fail[*]}")"
{
    echo "scripts/soak.sh $seconds $sample_every, $(date -u '+%Y-%m-%d %H:%M UTC' -d "@$start"), $(nproc) cores, $(java -version 2>&1 | sed -n 1p)"
    echo "demo service + LoadDriver; 4 apply/rollback loops (demo specs, one id per apply), observe loop, events/faults watches"
    echo "bounds: RSS growth <= $rss_bound_mib MiB over the warm sample (after ${warmup} s); JVM threads at quiet <= warm + $thread_slack"
    echo "$header"
    printf '%s\n' "${rows[@]}"
    echo "RSS growth warm -> quiet: $((growth_kib / 1024)) MiB ($growth_kib KiB); threads warm $base_threads, quiet $last_threads; agent threads at most $max_agent"
    echo "acknowledged: $applies applies, $rollbacks rollbacks; refused or failed: $apply_fail applies, $rollback_fail rollbacks"
    echo "observe loop: $observe_rounds rounds, $observe_failed failed calls${observe_which:+ ($observe_which)}; watches alive to the end: $watches_alive; events watched: $(wc -l < "$tmp/watch-events.log")"
    echo "patches: $patches_check"
    echo "history: $history_check"
    [ -s "$tmp/history-diff.txt" ] && cat "$tmp/history-diff.txt"
    if [ -s "$tmp/observe-errors.log" ]; then echo "first observe errors:"; sort "$tmp/observe-errors.log" | uniq -c | sort -rn | awk 'NR <= 3' | cut -c1-200; fi
    if cat "$tmp"/errors-*.log 2>/dev/null | grep -q .; then
        echo "first storm errors:"; cat "$tmp"/errors-*.log | sed 's/soak-[0-9]*-[0-9]*/soak-L-N/g' | sort | uniq -c | sort -rn | awk 'NR <= 3' | cut -c1-200
    fi
    echo "JVM alive: $alive; HTTP after: $http; panics in the JVM log: $panics"
    echo "soak: $verdict"
} > "$out"
echo "== summary ($out)"
cat "$out"
[ "$verdict" = OK ]
