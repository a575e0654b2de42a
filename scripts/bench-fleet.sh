#!/usr/bin/env bash
# The fleet: time from `repairctl fleet apply` to every instance running the patch, for N small JVMs
# of one service under one repaird per 25 JVMs and a local etcd, and etcd's traffic per instance at
# rest (nothing changing: lease keepalives only, or the daemons poll). Writes bench/fleet.txt.
# SIZES="1 10 50" (as many as the machine holds), REPEAT=3 runs each, REST_SECONDS=30.
# Takes about 5 minutes on 2 cores.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
sizes=${SIZES:-1 10 50}
repeat=${REPEAT:-3}
rest_seconds=${REST_SECONDS:-30}
per_daemon=25
hold=2s
hold_s=2
cargo build --release -q --workspace
java_home=${JAVA_HOME:-/usr/lib/jvm/java-17-openjdk-amd64}
java=$java_home/bin/java
etcd=${ETCD:-/usr/bin/etcd}
[ -x "$etcd" ] || { echo "bench-fleet: $etcd is missing (./scripts/setup.sh installs etcd-server)" >&2; exit 1; }
so=$root/target/release/librepair.so
repairctl=$root/target/release/repairctl
repaird=$root/target/release/repaird
jvm_flags=(-Xmx32m -Xss512k -XX:TieredStopAtLevel=1 -XX:+UseSerialGC -XX:ReservedCodeCacheSize=16m)
work=$(mktemp -d)
uid=$(id -u)
load_start=$(cut -d' ' -f1-3 /proc/loadavg)

# Every process this script starts, by pid: only those are stopped.
pids=()
stop_all() {
    local p
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    pids=()
}
trap 'stop_all; rm -rf "$work"' EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# The service: one method the patch guards, called 5 times a second (no exception thrown: a
# guard's handler never runs, so the canary's hold sees no new fault).
mkdir -p "$work/src/bench" "$work/classes"
cat > "$work/src/bench/FleetService.java" <<'JAVA'
package bench;
public final class FleetService {
    static int price(int x) {
        if (x < 0) throw new IllegalStateException("negative quantity " + x);
        return x * 2;
    }
    public static void main(String[] args) throws Exception {
        System.out.println("READY");
        long sum = 0;
        while (true) {
            sum += price(1);
            Thread.sleep(200);
        }
    }
}
JAVA
"$java_home/bin/javac" -d "$work/classes" "$work/src/bench/FleetService.java"
guard() { # guard PATCH_ID FILE
    cat > "$2" <<YAML
id: $1
target: { class: bench.FleetService, method: "price(I)I" }
action:
  guard: { catch: [java.lang.IllegalStateException], fallback: { value: -1 } }
YAML
}

# The benchmark's side: the 50 ms poll of `fleet status -o json`, the waits, and etcd's counters.
cat > "$work/fleet.py" <<'PY'
import json, os, re, statistics, subprocess, sys, time, urllib.request

def status(repairctl, etcd):
    out = subprocess.run([repairctl, "fleet", "status", "--service", "bench", "--etcd", etcd, "-o", "json"],
                         capture_output=True, text=True)
    if out.returncode != 0:
        return None, out.stderr.strip()
    return json.loads(out.stdout), ""

def until(repairctl, etcd, done, timeout, every):
    """Polls status every `every` s until done(status); returns (seconds at the answer, status)."""
    t0 = time.monotonic()
    last = None
    while time.monotonic() - t0 < timeout:
        tick = time.monotonic()
        s, err = status(repairctl, etcd)
        last = s if s is not None else err
        if s is not None and done(s):
            return time.monotonic() - t0, s
        time.sleep(max(0.0, every - (time.monotonic() - tick)))
    sys.stderr.write(f"bench-fleet: timed out after {timeout} s; last status: {json.dumps(last)[:4000]}\n")
    return None, last

def running(s, patch):
    return [i for i in s.get("instances", []) if patch in i.get("running", [])]

def cmd_instances(repairctl, etcd, n):
    took, _ = until(repairctl, etcd, lambda s: len(s.get("instances", [])) >= int(n), 120, 0.2)
    sys.exit(0 if took is not None else 1)

def cmd_rollout(repairctl, etcd, n, spec, patch, hold):
    """Applies, then polls every 50 ms; prints the seconds to every instance running `patch`, the
    seconds to phase done, and the phase at the first."""
    n = int(n)
    t0 = time.monotonic()
    out = subprocess.run([repairctl, "fleet", "apply", spec, "--service", "bench", "--etcd", etcd,
                          "--canary", "1", "--hold", hold], capture_output=True, text=True)
    if out.returncode != 0:
        sys.stderr.write(f"bench-fleet: fleet apply failed: {out.stderr}")
        sys.exit(1)
    applied = time.monotonic() - t0
    took, s = until(repairctl, etcd, lambda s: len(running(s, patch)) >= n, 120, 0.05)
    if took is None:
        sys.exit(1)
    phase = (s.get("rollout") or {}).get("phase", "?")
    done, _ = until(repairctl, etcd, lambda s: (s.get("rollout") or {}).get("phase") == "done", 120, 0.05)
    if done is None:
        sys.exit(1)
    print(f"{applied + took:.3f} {applied + took + done:.3f} {phase}")

def cmd_clean(repairctl, etcd, patch):
    took, _ = until(repairctl, etcd, lambda s: not running(s, patch), 120, 0.2)
    sys.exit(0 if took is not None else 1)

def scrape(url):
    """Sums counters by (name, grpc_method) for grpc_*, by name for the rest."""
    text = urllib.request.urlopen(url, timeout=5).read().decode()
    sums = {}
    for line in text.splitlines():
        m = re.match(r'^(grpc_server_handled_total|grpc_server_msg_received_total|grpc_server_msg_sent_total|'
                     r'etcd_network_client_grpc_received_bytes_total|etcd_network_client_grpc_sent_bytes_total)'
                     r'(\{[^}]*\})?\s+(\S+)$', line)
        if not m:
            continue
        method = re.search(r'grpc_method="([^"]*)"', m.group(2) or "")
        key = (m.group(1), method.group(1) if method else "")
        sums[key] = sums.get(key, 0.0) + float(m.group(3))
    return sums

def cpu_seconds(pids):
    """User + system CPU seconds of the processes `pids` (comma-separated)."""
    total = 0
    for pid in pids.split(","):
        fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")

def cmd_rest(url, n, seconds, daemons, jvms):
    """etcd's counters over `seconds` with nothing changing, per instance and second; and the CPU
    the daemons and the JVMs used meanwhile."""
    n, seconds = int(n), float(seconds)
    before = scrape(url)
    cpu_before = cpu_seconds(daemons), cpu_seconds(jvms)
    time.sleep(seconds)
    cpu_after = cpu_seconds(daemons), cpu_seconds(jvms)
    after = scrape(url)
    delta = {k: after.get(k, 0.0) - before.get(k, 0.0) for k in after}
    rate = lambda name, method="": delta.get((name, method), 0.0) / seconds / n
    methods = sorted({m for (name, m) in delta if name.startswith("grpc_server") and m})
    # Streams (LeaseKeepAlive, Watch) count one message per request; unary calls count when handled.
    streams = [(m, rate("grpc_server_msg_received_total", m)) for m in methods
               if m in ("LeaseKeepAlive", "Watch") and rate("grpc_server_msg_received_total", m) > 0]
    unary = [(m, rate("grpc_server_handled_total", m)) for m in methods
             if m not in ("LeaseKeepAlive", "Watch") and rate("grpc_server_handled_total", m) > 0]
    parts = [f"{m} {r:.3f} msg/s" for m, r in streams] + [f"{m} {r:.3f}/s" for m, r in unary]
    print(f"per instance: {', '.join(parts) or 'no requests'}; "
          f"bytes received by etcd {rate('etcd_network_client_grpc_received_bytes_total'):.1f} B/s, "
          f"sent {rate('etcd_network_client_grpc_sent_bytes_total'):.1f} B/s")
    daemon_cpu = (cpu_after[0] - cpu_before[0]) / seconds * 100
    jvm_cpu = (cpu_after[1] - cpu_before[1]) / seconds * 100
    print(f"CPU at rest: the repaird processes {daemon_cpu:.1f}% of a core ({daemon_cpu / n:.2f}% per instance: "
          f"each JVM's agent asked its status, patches and policy every second over its socket), "
          f"{'the JVM' if n == 1 else f'the {n} JVMs'} {jvm_cpu:.1f}% (the service's own loop included)")
    polled = [m for m, _ in unary if m in ("Range", "Txn", "Put", "DeleteRange")]
    if polled:
        print(f"POLLING at rest: {', '.join(polled)} requests while nothing changed (target: none)")
    else:
        print("no polling at rest: no Range, Txn or Put while nothing changed (target met)")

def cmd_summary(n, hold, *runs):
    """runs: 'ALL,DONE' seconds per run."""
    pairs = [tuple(float(x) for x in r.split(",")) for r in runs]
    alls, dones = [a for a, _ in pairs], [d for _, d in pairs]
    med = statistics.median
    line = f"every instance running it: total median {med(alls):.2f} s max {max(alls):.2f} s; "
    if int(n) == 1:
        line += "past the canary wait: n/a (the one instance is the canary: it runs the patch through its hold)"
        past = None
    else:
        past = [x - float(hold) for x in alls]
        line += f"past the canary wait median {med(past):.2f} s max {max(past):.2f} s"
    line += f"; phase done: median {med(dones):.2f} s max {max(dones):.2f} s"
    line += f" (runs, running/done: {' '.join(f'{a:.2f}/{d:.2f}' for a, d in pairs)})"
    print(line)
    print("nan nan" if past is None else f"{med(past):.3f} {max(past):.3f}")

globals()["cmd_" + sys.argv[1]](*sys.argv[2:])
PY
fleet() { python3 "$work/fleet.py" "$@"; }

# As many JVMs as the machine holds: one JVM's RSS is measured at the first size, then a size is
# cut to what 80% of the available memory holds.
rss_kb=0
mem_available_kb() { awk '/MemAvailable/ {print $2}' /proc/meminfo; }
report=$work/report
: > "$report"
note() { echo "$*" | tee -a "$report"; }

for asked in $sizes; do
    n=$asked
    if [ "$rss_kb" -gt 0 ]; then
        fits=$(($(mem_available_kb) * 8 / 10 / rss_kb))
        [ "$n" -gt "$fits" ] && n=$fits
    fi
    hosts=$(((n + per_daemon - 1) / per_daemon))
    echo "== N=$n JVMs (asked $asked), $hosts repaird"
    # A fresh etcd per size, on free loopback ports, its own data dir.
    cport=$(free_port); pport=$(free_port)
    etcd_url=http://127.0.0.1:$cport
    "$etcd" --name bench --data-dir "$work/etcd-$n" --logger zap --log-level error \
        --listen-client-urls "$etcd_url" --advertise-client-urls "$etcd_url" \
        --listen-peer-urls "http://127.0.0.1:$pport" --initial-advertise-peer-urls "http://127.0.0.1:$pport" \
        --initial-cluster "bench=http://127.0.0.1:$pport" > "$work/etcd-$n.log" 2>&1 &
    pids+=($!)
    for _ in $(seq 100); do curl -fs "$etcd_url/health" > /dev/null 2>&1 && break; sleep 0.1; done
    curl -fs "$etcd_url/health" > /dev/null || { cat "$work/etcd-$n.log" >&2; exit 1; }

    # The JVMs, host group by host group: each group's agents keep their sockets under the group's
    # TMPDIR, which its repaird takes (--agents-dir). Started 5 at a time, each ready when its
    # socket is there.
    jvm_pids=()
    socks=()
    for i in $(seq 0 $((n - 1))); do
        g=$((i / per_daemon))
        mkdir -p "$work/tmp-$n/h$g" "$work/state-$n/$i"
        TMPDIR="$work/tmp-$n/h$g" "$java" "${jvm_flags[@]}" \
            -agentpath:"$so=service=bench,state=$work/state-$n/$i,log=warn" \
            -cp "$work/classes" bench.FleetService > "$work/jvm-$n-$i.log" 2>&1 &
        pids+=($!); jvm_pids+=($!)
        socks+=("$work/tmp-$n/h$g/repair-$uid/$!.sock")
        if [ $(((i + 1) % 5)) -eq 0 ] || [ "$i" -eq $((n - 1)) ]; then
            for k in $(seq $((i / 5 * 5)) "$i"); do
                for _ in $(seq 300); do [ -S "${socks[$k]}" ] && break; sleep 0.1; done
                [ -S "${socks[$k]}" ] || { echo "bench-fleet: JVM ${jvm_pids[$k]} has no socket ${socks[$k]}" >&2; cat "$work/jvm-$n-$k.log" >&2; exit 1; }
            done
        fi
    done
    if [ "$rss_kb" -eq 0 ]; then
        rss_kb=$(awk '/VmRSS/ {print $2}' "/proc/${jvm_pids[0]}/status")
    fi
    daemon_pids=()
    for g in $(seq 0 $((hosts - 1))); do
        "$repaird" --etcd "$etcd_url" --host "h$g" --agents-dir "$work/tmp-$n/h$g" \
            2> "$work/repaird-$n-h$g.log" &
        pids+=($!); daemon_pids+=($!)
    done
    fleet instances "$repairctl" "$etcd_url" "$n" || {
        echo "bench-fleet: fewer than $n instances in fleet status after 120 s" >&2
        tail -n 20 "$work"/repaird-"$n"-*.log >&2; exit 1
    }

    # The rollouts: apply, every instance running it, roll back, none running it; REPEAT times.
    totals=()
    for r in $(seq "$repeat"); do
        patch=bench-guard-$n-$r
        guard "$patch" "$work/guard-$n-$r.yaml"
        line=$(fleet rollout "$repairctl" "$etcd_url" "$n" "$work/guard-$n-$r.yaml" "$patch" "$hold") || {
            echo "bench-fleet: rollout $r of N=$n did not reach every instance" >&2
            tail -n 30 "$work"/repaird-"$n"-*.log >&2; exit 1
        }
        echo "   run $r: $line"
        read -r all done _ <<< "$line"
        totals+=("$all,$done")
        "$repairctl" fleet rollback --service bench --etcd "$etcd_url" > /dev/null
        fleet clean "$repairctl" "$etcd_url" "$patch" || { echo "bench-fleet: rollback of $patch did not finish" >&2; exit 1; }
    done
    summary=$(fleet summary "$n" "$hold_s" "${totals[@]}")
    read -r past_median past_max <<< "$(echo "$summary" | tail -1)"
    verdict=""
    if [ "$n" -eq 10 ]; then
        verdict=$(python3 -c "m, x = $past_median, $past_max; w = lambda v: 'met' if v < 2 else 'MISSED'; print(f'   (target < 2 s past the canary wait for 10: median {w(m)}, max {w(x)})')")
    fi
    label="rollout N=$n"
    [ "$n" -ne "$asked" ] && label="$label (asked $asked: the machine holds $n)"
    note "$label, $hosts repaird: $(echo "$summary" | head -1)$verdict"

    # At rest: one patch in force everywhere, nothing changing; the script does not touch etcd.
    patch=bench-guard-$n-rest
    guard "$patch" "$work/guard-$n-rest.yaml"
    fleet rollout "$repairctl" "$etcd_url" "$n" "$work/guard-$n-rest.yaml" "$patch" "$hold" > /dev/null
    sleep 3
    rest=$(fleet rest "$etcd_url/metrics" "$n" "$rest_seconds" "$(IFS=,; echo "${daemon_pids[*]}")" "$(IFS=,; echo "${jvm_pids[*]}")")
    note "at rest N=$n ($rest_seconds s, patch in force, phase done): $(echo "$rest" | head -1)"
    echo "$rest" | tail -n +2 | while read -r line; do note "    $line"; done
    stop_all
done

commit=$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- . ':!bench' || echo "-dirty")
mkdir -p bench
{
    echo "# scripts/bench-fleet.sh at $commit on $(nproc) cores, $("$java" -version 2>&1 | head -1), etcd $("$etcd" --version | sed -n 's/^etcd Version: //p'), $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "# N JVMs of service bench (java ${jvm_flags[*]}, agent service=bench, a state dir each), one repaird"
    echo "# per $per_daemon JVMs (--host h0, h1, ...), one etcd on loopback (fresh per N); all on this machine."
    echo "# rollout: from \`repairctl fleet apply guard.yaml --canary 1 --hold $hold\` (its process start included)"
    echo "# to the first \`repairctl fleet status -o json\` that shows every instance running the patch, polled by"
    echo "# this script every 50 ms (each poll a repairctl process: ~50 ms resolution); past the canary wait"
    echo "# = total - $hold_s s; phase done: to the first status that shows the rollout's phase done (the"
    echo "# canary held, the rest took it, every instance reported). $repeat runs per N, each after a fleet"
    echo "# rollback that no instance runs any more."
    echo "# at rest: etcd's /metrics (grpc_server_msg_received_total for streams, grpc_server_handled_total"
    echo "# for unary calls, etcd_network_client_grpc_*_bytes_total) over $rest_seconds s, divided by N."
    echo "# load average (1, 5, 15 min) at the start: $load_start; at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
    cat "$report"
} | tee bench/fleet.txt
