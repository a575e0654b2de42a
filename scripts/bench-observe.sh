#!/usr/bin/env bash
# `repairctl watch` (and `trace`, if this build has it) beside Arthas's `watch` (and `trace`): the
# throughput of a program whose hot method (bench.Hot.work(int, String), a few ns) is called about
# 10^6 times a second on one thread by bench.Driver, a class of its own (each call follows ~1 us of other work, calibrated once),
# unobserved, while every call is reported, and after the observation ends; and the time from the
# command to its first event. Three JVMs, all started with the same flags except C:
#   A: -agentpath:librepair.so, observed by repairctl;
#   B: -agentpath:librepair.so (idle), observed by Arthas (attached with arthas-boot --attach-only);
#   C: no agent of ours, observed by Arthas.
# Arthas (com.taobao.arthas:arthas-packaging:$ARTHAS_VERSION, from Maven Central through mvn) is
# unpacked once into target/arthas/. Each tool and command runs CYCLES (3) cycles of none / observed /
# after, WINDOW (10) s each. Writes bench/observe.txt. Takes about 17 minutes with trace.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
cargo build --release -q --workspace
java_home=${JAVA_HOME:-/usr/lib/jvm/java-17-openjdk-amd64}
java="$java_home/bin/java"
repairctl="$root/target/release/repairctl"
agent="$root/target/release/librepair.so"
arthas_version=${ARTHAS_VERSION:-4.0.5}
arthas="$root/target/arthas/$arthas_version"
warmup=${WARMUP:-5}   # s before the first window
window=${WINDOW:-10}  # s of each measured window (20 samples of 500 ms)
settle=${SETTLE:-3}   # s between a change (observation started or ended) and its window
cycles=${CYCLES:-3}   # none / observed / after cycles, each tool (the machine's noise drifts by minutes)
trace_settle=${TRACE_SETTLE:-6}  # s, for trace: our agent samples trace down once a second until it fits its quota
max_rate=2000000      # our --max-per-second: high enough that every call is reported
# ... and watch's other quotas (agent CPU a second, report bytes a second) out of the way too
watch_quotas=(--max-per-second "$max_rate" --max-cpu-ms 1000000 --max-kib 100000000)
work=$(mktemp -d)
jvms=()
cleanup() {
    for p in "${jvms[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "bench-observe: $*" >&2; exit 1; }
now_ms() { local t=${EPOCHREALTIME/./}; echo $((t / 1000)); }

# --- Arthas, once
if [ ! -f "$arthas/arthas-boot.jar" ]; then
    echo "== fetching Arthas $arthas_version"
    mvn -q dependency:get -Dartifact="com.taobao.arthas:arthas-packaging:$arthas_version:zip:bin"
    zip=~/.m2/repository/com/taobao/arthas/arthas-packaging/$arthas_version/arthas-packaging-$arthas_version-bin.zip
    [ -f "$zip" ] || fail "no $zip after mvn dependency:get"
    rm -rf "$arthas.tmp" && mkdir -p "$arthas.tmp" && unzip -q "$zip" -d "$arthas.tmp" && mv "$arthas.tmp" "$arthas"
fi

# --- the program: bench.Driver K SECONDS, calling bench.Hot.work. K = 0: prints the K (iterations of other work per call)
# that makes ~10^6 calls per second of the thread's CPU time. Otherwise prints READY <pid>, then
# every 500 ms `T <epoch ms> <calls/s> <calls per CPU-second of the thread> <calls so far>`.
mkdir -p "$work/src/bench"
cat > "$work/src/bench/Hot.java" <<'JAVA'
package bench;
/** The observed class: only the observed method, as a service's class is not its request loop. */
public final class Hot {
    /** The observed method: a few ns. */
    static long work(int a, String b) { return a * 31L + b.length(); }
}
JAVA
cat > "$work/src/bench/Driver.java" <<'JAVA'
package bench;
import java.lang.management.ManagementFactory;
import java.lang.management.ThreadMXBean;
/** The driver: calls Hot.work in a loop (in a class of its own: see the README). */
public final class Driver {
    static final String[] NAMES = {"apple", "pear", "plum", "fig", "kiwi", "lime", "date", "yuzu"};
    static long sink, filler;
    /** Other work between calls: K rounds of xorshift. */
    static long spin(long x, int k) { for (int i = 0; i < k; i++) { x ^= x << 13; x ^= x >>> 7; x ^= x << 17; } return x; }
    public static void main(String[] args) {
        ThreadMXBean mx = ManagementFactory.getThreadMXBean();
        int k = Integer.parseInt(args[0]);
        long seconds = Long.parseLong(args[1]);
        if (k == 0) {
            k = 64;
            for (int round = 0; round < 16; round++) {
                long c0 = mx.getCurrentThreadCpuTime(), n = 0;
                while (mx.getCurrentThreadCpuTime() - c0 < 200_000_000L) {
                    for (int j = 0; j < 1024; j++) { filler = spin(filler | 1, k); sink += Hot.work(j, NAMES[j & 7]); }
                    n += 1024;
                }
                double rate = n / ((mx.getCurrentThreadCpuTime() - c0) / 1e9);
                k = Math.max(1, (int) Math.round(k * rate / 1e6));
            }
            System.out.println("K " + k);
            return;
        }
        System.out.println("READY " + ProcessHandle.current().pid());
        System.out.flush();
        long end = System.nanoTime() + seconds * 1_000_000_000L;
        long last = System.nanoTime(), lastCpu = mx.getCurrentThreadCpuTime(), n = 0, total = 0;
        int i = 0;
        while (true) {
            for (int j = 0; j < 256; j++, i++) { filler = spin(filler | 1, k); sink += Hot.work(i, NAMES[i & 7]); }
            n += 256;
            long now = System.nanoTime();
            if (now - last >= 500_000_000L) {
                long cpu = mx.getCurrentThreadCpuTime();
                total += n;
                System.out.println("T " + System.currentTimeMillis() + " " + (long) (n / ((now - last) / 1e9)) + " "
                    + (long) (n / ((cpu - lastCpu) / 1e9)) + " " + total);
                System.out.flush();
                n = 0; last = now; lastCpu = cpu;
                if (now > end) return;
            }
        }
    }
}
JAVA
"$java_home/bin/javac" -d "$work/classes" "$work/src/bench/Hot.java" "$work/src/bench/Driver.java"

# --- helpers: count (a stream's reader), arthas (steps in one telnet session with Arthas's server)
cat > "$work/bench.py" <<'PY'
import json, re, socket, sys, time

def now_ms():
    return time.time() * 1000

def count(args):
    """count T0 MARK OUT: reads a stream of JSON lines from stdin to its end; writes to OUT the ms
    from T0 (epoch s) to the first MARK, the notices and the last line. It shares the cores it
    measures, so it is lean: once the first MARK is in, each chunk is scanned once (for a notice)
    and reads wait for the pipe (1 MiB) to fill rather than wake on each write. How many reports
    went out is the agent's count (`repairctl observations`)."""
    t0, mark, out = float(args[0]), args[1].encode(), args[2]
    notice = b'"notice"'
    try:  # a larger pipe: fewer, larger reads
        import fcntl
        fcntl.fcntl(sys.stdin.fileno(), 1031, 1 << 20)  # F_SETPIPE_SZ
    except OSError:
        pass
    raw = sys.stdin.buffer.raw
    buf = bytearray(1 << 20)  # read into, not allocated a read (a fresh 1 MiB costs its pages)
    first, tail, last, notices = None, b"", b"", []
    while True:
        n = raw.readinto(buf)
        if not n:
            break
        if first is None and (mark in tail + buf[:len(mark)] or buf.find(mark, 0, n) >= 0):
            first = time.time() - t0
        if notice in tail + buf[:len(notice)] or buf.find(notice, 0, n) >= 0:
            c = last + bytes(buf[:n])
            notices += re.findall(rb'"notice":"([^"]*)"', c)
        last = (last + bytes(buf[max(0, n - 4096):n]))[-4096:]
        tail = last[-(max(len(mark), len(notice)) - 1):]
        if first is not None and n < 1 << 18:
            time.sleep(0.005)
    lines = last.rstrip(b"\n").split(b"\n")
    json.dump({"first_ms": None if first is None else first * 1000,
               "notices": sorted(set(x.decode("utf-8", "replace") for x in notices)),
               "last": lines[-1].decode("utf-8", "replace")}, open(out, "w"))

class Session:
    """A raw telnet session with Arthas's server: read as fast as it comes (arthas-client.jar reads
    slowly enough to hold the watched thread back)."""
    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port))
        self.until_prompt(30)

    def until_prompt(self, limit, on_chunk=None):
        buf, t = b"", time.time()
        self.s.settimeout(0.2)
        while time.time() - t < limit:
            try:
                c = self.s.recv(1 << 16)
            except socket.timeout:
                continue
            if not c:
                raise SystemExit(f"arthas: the session closed; last output: {buf[-500:]!r}")
            if on_chunk:
                on_chunk(c)
            buf = (buf + c)[-65536:]
            if re.search(rb"\[arthas@\d+\]\$ $", buf):
                return buf.decode("utf-8", "replace")
        raise SystemExit(f"arthas: no prompt within {limit} s; last output: {buf[-500:]!r}")

    def cmd(self, line, limit=60):
        self.s.sendall(line.encode() + b"\r\n")
        return self.until_prompt(limit)

def arthas(args):
    """arthas PORT LOG WINDOWS STEP...: window marks go to WINDOWS as `name log t0_ms t1_ms json`.
    Steps: cmd:LINE | window:NAME:S | sleep:S | stream:NAME:SETTLE:WINDOW:MARK:COMMAND (output read
    here, events counted by MARK, ended with Ctrl-C) | job:NAME:SETTLE:WINDOW:COMMAND (a background
    job, then killed)."""
    port, log, windows, steps = int(args[0]), args[1], args[2], args[3:]
    s = Session(port)
    def mark(name, t0, t1, extra):
        with open(windows, "a") as f:
            f.write(f"{name} {log} {t0:.0f} {t1:.0f} {json.dumps(extra)}\n")
    for step in steps:
        kind, _, rest = step.partition(":")
        if kind == "cmd":
            t = time.time()
            lines = s.cmd(rest).strip().splitlines()
            said = lines[-2].strip() if len(lines) > 1 else ""
            print(f"   arthas> {rest}: {said} ({(time.time() - t) * 1000:.0f} ms)")
        elif kind == "window":
            name, secs = rest.split(":")
            t0 = now_ms(); time.sleep(float(secs)); mark(name, t0, now_ms(), {})
        elif kind == "sleep":
            time.sleep(float(rest))
        elif kind == "stream":
            name, settle, window, mark_text, command = rest.split(":", 4)
            mk = mark_text.encode()
            st = {"first": None, "events": 0, "tail": b"", "buf": b"", "enhance": None}
            def chunk(c):
                hits = (st["tail"] + c).count(mk) - st["tail"].count(mk)
                st["tail"] = c[-len(mk):]
                if hits and st["first"] is None:
                    st["first"] = (time.time() - sent) * 1000
                st["events"] += hits
                if st["enhance"] is None:
                    st["buf"] = (st["buf"] + c)[-8192:]
                    m = re.search(rb"Affect\(class count: \d+ , method count: \d+\) cost in (\d+) ms", st["buf"])
                    if m:
                        st["enhance"] = int(m.group(1))
            s.s.sendall(command.encode() + b"\r\n")
            sent = time.time()
            s.s.settimeout(0.2)
            w0 = None
            while True:
                t = time.time()
                if w0 is None and t - sent >= float(settle):
                    w0, e0 = now_ms(), st["events"]
                if w0 is not None and t - sent >= float(settle) + float(window):
                    w1, e1 = now_ms(), st["events"]
                    break
                try:
                    c = s.s.recv(1 << 16)
                except socket.timeout:
                    continue
                if not c:
                    raise SystemExit("arthas: the session closed during the watch")
                chunk(c)
            s.s.sendall(b"\x03")  # Ctrl-C ends the foreground job
            t = time.time()
            s.until_prompt(300, chunk)
            if st["first"] is None:
                raise SystemExit(f"arthas: no event from {command!r}")
            mark(name, w0, w1, {"events": e1 - e0, "first_ms": st["first"], "enhance_ms": st["enhance"],
                                "drain_ms": (time.time() - t) * 1000})
            print(f"   arthas> {command}: first event after {st['first']:.0f} ms (Arthas says enhancing took "
                  f"{st['enhance']} ms), {e1 - e0} events in the window")
        elif kind == "job":
            name, settle, window, command = rest.split(":", 3)
            out = s.cmd(command)
            if "redirect output file will be" not in out:
                raise SystemExit(f"arthas: {command!r} said {out!r}")
            time.sleep(float(settle))
            def executions():
                out = s.cmd("jobs")
                m, j = re.search(r"execution count\s*:\s*(\d+)", out), re.search(r"\[(\d+)\]", out)
                if not m or not j:
                    raise SystemExit(f"arthas: no job in {out!r}")
                return int(m.group(1)), j.group(1)
            c0, _ = executions(); w0 = now_ms()
            time.sleep(float(window))
            w1 = now_ms(); c1, job = executions()
            s.cmd(f"kill {job}")
            mark(name, w0, w1, {"events": c1 - c0})
            print(f"   arthas> {command}: {c1 - c0} executions in the window")
        else:
            raise SystemExit(f"unknown step {step}")

if __name__ == "__main__":
    {"count": count, "arthas": arthas}[sys.argv[1]](sys.argv[2:])
PY
helper="$work/bench.py"
windows="$work/windows"
: > "$windows"

# window NAME LOG SECONDS [JSON]: the JVM's samples from now for SECONDS are NAME's.
window() {
    local t0 extra=${4:-}
    [ -n "$extra" ] || extra='{}'
    t0=$(now_ms)
    sleep "$3"
    echo "$1 $2 $t0 $(now_ms) $extra" >> "$windows"
}

jvm=
# start_jvm NAME [JVM flags...]: starts bench.Driver, logging to $work/NAME.log; sets $jvm.
start_jvm() {
    local name=$1 log="$work/$1.log"
    shift
    "$java" -XX:ErrorFile="$work/hs_err_%p.log" "$@" -cp "$work/classes" bench.Driver "$k" 3600 > "$log" 2>&1 &
    jvm=$!
    jvms+=("$jvm")
    for _ in $(seq 100); do grep -q '^READY' "$log" && break; kill -0 "$jvm" 2>/dev/null || break; sleep 0.1; done
    grep -q "^READY $jvm\$" "$log" || { cat "$log" >&2; fail "JVM $name did not start"; }
}
stop_jvm() { kill "$jvm"; wait "$jvm" 2>/dev/null || true; }
ours_flags=(-agentpath:"$agent=state=$work/state,log=warn")

# The machine may be shared: its CPU (/proc/stat) and load before and after.
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
stat_before="$EPOCHREALTIME $(head -1 /proc/stat | cut -d' ' -f3-)"

echo "== calibrating the other work per call"
k=${K:-$("$java" -cp "$work/classes" bench.Driver 0 0 | sed -n 's/^K //p')}
[ -n "$k" ] || fail "calibration printed no K"
echo "   K=$k rounds of xorshift per call"

kinds=(watch)
if "$repairctl" trace --help > /dev/null 2>&1; then kinds+=(trace); fi
settle_of() { if [ "$1" = trace ]; then echo "$trace_settle"; else echo "$settle"; fi; }

# --- A: ours, for each command $cycles times: none, observed, after
echo "== A: repairctl (JVM with our agent), $cycles cycles of ${kinds[*]}"
start_jvm A "${ours_flags[@]}"
a=$jvm
sleep "$warmup"
# observe KIND SECONDS [FLAGS...]: repairctl KIND of bench.Hot.work on A for SECONDS.
observe() {
    local kind=$1 secs=$2
    shift 2
    case $kind in
        watch) "$repairctl" watch bench.Hot work --for "${secs}s" "${watch_quotas[@]}" "$@" --pid "$a" -o json ;;
        trace) "$repairctl" trace bench.Hot work --for "${secs}s" --max-per-second "$max_rate" --max-cpu-ms 1000000 "$@" --pid "$a" -o json ;;
    esac
}
for kind in "${kinds[@]}"; do
    s=$(settle_of "$kind")
    for r in $(seq "$cycles"); do
        window "$kind-none" A "$window"
        t0=$EPOCHREALTIME
        observe "$kind" "$((s + window + 1))" | python3 "$helper" count "$t0" '"thread":' "$work/ours.json" &
        stream=$!
        sleep "$s"
        w0=$(now_ms)
        sleep "$window"
        w1=$(now_ms)
        obs=$("$repairctl" observations --pid "$a" -o json | python3 -c 'import json, sys
o = json.load(sys.stdin)
assert len(o) == 1, o
print(json.dumps({"agent_" + k: o[0][k] for k in ("calls", "reported", "dropped")}))')
        wait "$stream" || fail "repairctl $kind failed"
        echo "ours-$kind A $w0 $w1 $(python3 -c 'import json, sys
d = json.load(open(sys.argv[1])); d.update(json.loads(sys.argv[2])); print(json.dumps(d))' "$work/ours.json" "$obs")" >> "$windows"
        grep -q '"ended"' <<< "$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["last"])' "$work/ours.json")" \
            || fail "the $kind stream did not end with \"ended\": $(cat "$work/ours.json")"
        [ "$("$repairctl" observations --pid "$a" -o json | tr -d ' \n')" = "[]" ] \
            || fail "an observation is left after the $kind stream ended"
        echo "   $kind $r: $(python3 -c 'import json, sys
d = json.load(open(sys.argv[1])); d.update(json.loads(sys.argv[2]))
print(d["agent_reported"], "calls reported; first after", round(d["first_ms"]), "ms;", "; ".join(d["notices"][-1:]), d["last"])' "$work/ours.json" "$obs")"
        sleep "$s"
        window "ours-$kind-after" A "$window"
    done
done
# Diagnostic: watch's probes and rendering alone (a condition no call meets: nothing is queued).
observe watch "$((settle + window + 1))" --if 'duration > 1000s' > "$work/ours-if.json" &
stream=$!
sleep "$settle"
window ours-watch-if A "$window"
wait "$stream" || fail "repairctl watch --if failed"
grep -q '"ended"' "$work/ours-if.json" || fail "the --if stream did not end: $(cat "$work/ours-if.json")"
sleep "$settle"
window ours-watch-if-after A "$window"
stop_jvm

# --- B and C: Arthas
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
declare -A arthas_cmd=(
    [watch]="watch bench.Hot work '{params,returnObj}' -n 100000000 -x 2"
    [trace]="trace bench.Hot work -n 100000000 --skipJDKMethod false"
)
declare -A arthas_mark=([watch]="method=bench.Hot.work" [trace]="---ts=")
steps=("window:attached:$window")
for kind in "${kinds[@]}"; do
    s=$(settle_of "$kind")
    steps+=("stream:arthas-$kind-stream:$s:$window:${arthas_mark[$kind]}:${arthas_cmd[$kind]}"
        "sleep:$settle" "window:arthas-$kind-after-interrupt:$window"
        "cmd:reset" "sleep:$settle" "window:arthas-$kind-after-reset:$window")
    for r in $(seq "$cycles"); do
        steps+=("window:$kind-none:$window" "job:arthas-$kind:$s:$window:${arthas_cmd[$kind]} > /dev/null &"
            "cmd:reset" "sleep:$s" "window:arthas-$kind-after:$window")
    done
done
for jvm_name in B C; do
    if [ "$jvm_name" = B ]; then
        echo "== B: Arthas (JVM with our agent, idle)"
        start_jvm B "${ours_flags[@]}"
    else
        echo "== C: Arthas (JVM without our agent)"
        start_jvm C
    fi
    sleep "$warmup"
    window before-attach "$jvm_name" "$window"
    port=$(free_port)
    t0=$EPOCHREALTIME
    "$java" -jar "$arthas/arthas-boot.jar" --arthas-home "$arthas" --attach-only --telnet-port "$port" --http-port -1 "$jvm" \
        > "$work/attach-$jvm_name.log" 2>&1 || { cat "$work/attach-$jvm_name.log" >&2; fail "arthas-boot failed"; }
    attach_ms=$(python3 -c "print(round(($EPOCHREALTIME - $t0) * 1000))")
    echo "attach $jvm_name 0 0 {\"attach_ms\": $attach_ms}" >> "$windows"
    echo "   arthas-boot --attach-only: $attach_ms ms"
    sleep "$settle"
    python3 "$helper" arthas "$port" "$jvm_name" "$windows" "${steps[@]}"
    # The time to the first event with Arthas's own client (its JVM's start-up included).
    t0=$EPOCHREALTIME
    "$java" -jar "$arthas/arthas-client.jar" -c "watch bench.Hot work '{params,returnObj}' -n 1 -x 2" 127.0.0.1 "$port" \
        > "$work/client-$jvm_name.log" 2>&1 || fail "arthas-client failed: $(tail -5 "$work/client-$jvm_name.log")"
    client_ms=$(python3 -c "print(round(($EPOCHREALTIME - $t0) * 1000))")
    grep -q 'method=bench.Hot.work' "$work/client-$jvm_name.log" || fail "arthas-client saw no event: $(tail -5 "$work/client-$jvm_name.log")"
    echo "client $jvm_name 0 0 {\"client_ms\": $client_ms}" >> "$windows"
    echo "   arthas-client.jar watch -n 1, spawn to exit: $client_ms ms"
    "$java" -jar "$arthas/arthas-client.jar" -c "reset; stop" 127.0.0.1 "$port" > "$work/stop-$jvm_name.log" 2>&1 || true
    sleep "$settle"
    window arthas-after-stop "$jvm_name" "$window"
    stop_jvm
done
stat_after="$EPOCHREALTIME $(head -1 /proc/stat | cut -d' ' -f3-)"
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

mkdir -p bench
python3 - "$work" "$windows" "$k" "$(nproc)" "$("$java" -version 2>&1 | head -1)" "$arthas_version" "$load_before" "$load_after" \
    "$stat_before" "$stat_after" "$(getconf CLK_TCK)" "$(git rev-parse --short HEAD)" "$window" "$cycles" "$settle" "$warmup" \
    "$trace_settle" "${kinds[*]}" > bench/observe.txt <<'PY'
import json, statistics, sys, time
work, windows, k, cores, jv, av, lb, la, sb, sa, hz, rev, win, cycles, settle, warmup, tsettle, kinds = sys.argv[1:]
cores, hz, kinds = int(cores), int(hz), kinds.split()
logs, W, X = {}, {}, {}
def samples(log):
    if log not in logs:
        logs[log] = [tuple(int(x) for x in l.split()[1:5]) for l in open(f"{work}/{log}.log") if l.startswith("T ")]
    return logs[log]
for line in open(windows):
    name, log, t0, t1, extra = line.split(" ", 4)
    t0, t1, d = int(t0), int(t1), json.loads(extra)
    if t1 <= t0:
        X[(name, log)] = d
        continue
    d["samples"] = [r for r in samples(log) if t0 + 500 <= r[0] <= t1 + 100]
    before = [r[3] for r in samples(log) if r[0] <= t0] or [0]
    d["calls"] = [r[3] for r in samples(log) if r[0] <= t1][-1] - before[-1]
    W.setdefault((name, log), []).append(d)
class Stat:
    """The windows named NAME in LOG's JVM, their 500 ms samples pooled."""
    def __init__(self, log, name):
        ws = W[(name, log)]
        s = [r for w in ws for r in w["samples"]]
        self.windows = ws
        self.wall, self.cpu = statistics.median(r[1] for r in s), statistics.median(r[2] for r in s)
        self.oncpu = statistics.median(r[1] / r[2] for r in s)
        self.calls = sum(w["calls"] for w in ws)
        self.each_cpu = [statistics.median(r[2] for r in w["samples"]) for w in ws]
    def sum(self, key):
        return sum(w[key] for w in self.windows)
def e(x): return f"{x:.2e}".replace("e+0", "e")
def pct(x, base): return f"{100 * (x / base - 1):+.1f}%"
def us(x, base): return f"{(1 / x - 1 / base) * 1e6:.2f} us"  # cost per call, from calls per CPU-second
def ok(b): return "met" if b else "MISSED"
f0, f1 = sb.split(), sa.split()
d = [int(b) - int(a) for a, b in zip(f0[1:11], f1[1:11])]
busy = (d[0] + d[1] + d[2] + d[5] + d[6]) / hz / ((float(f1[0]) - float(f0[0])) * cores)
A, B, C = (lambda n: Stat("A", n)), (lambda n: Stat("B", n)), (lambda n: Stat("C", n))
P = print
P(f"# scripts/bench-observe.sh at {rev} on {cores} cores, {jv}, Arthas {av}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
P(f"# load average (1/5/15 min) {lb} before, {la} after; the machine's CPU busy {100 * busy:.0f}% over the run: shared")
P("# with other engineers' builds and JVMs, so the watched thread is not always on a core (wall), and even its calls")
P("# per CPU-second drift by a few % over minutes (no hardware counters in this VM to count instructions instead).")
P(f"# bench.Driver calls bench.Hot.work(int, String) (a few ns) in a loop on one thread, each call after {k} rounds of")
P("# xorshift. The loop is in a class of its own: a method of a retransformed class that is running (a loop that never")
P("# returns) stays interpreted: -XX:+PrintCompilation shows it never compiled again (before 2026-12-03 the loop was in")
P("# bench.Hot, and every figure after the first observation measured that, for both tools)")
P("# (K calibrated to ~1e6 calls per CPU-second); it prints its calls/s every 500 ms. Numbers are medians of those")
P(f"# samples over {win} s windows ({warmup} s of warm-up first; {settle} s after each change, {tsettle} s after a trace starts),")
P(f"# pooled over {cycles} cycles of none / observed / after, each tool and command. Three JVMs, same flags: A and B")
P("# with -agentpath:librepair.so, C without. A: `repairctl watch bench.Hot work --max-per-second 2000000")
P("# --max-cpu-ms 1000000 --max-kib 100000000 -o json` (every call: arguments and return value, read to the end by")
P("# a process that looks for notices), once with --if 'duration > 1000s' (no call reported); `repairctl trace bench.Hot work")
P("# --max-per-second 2000000 --max-cpu-ms 1000000 -o json` (every call, as a tree of the calls it made).")
P("# B, C: Arthas attached with arthas-boot --attach-only; `watch bench.Hot work '{params,returnObj}' -n 100000000")
P("# -x 2` (-x 2 renders the arguments' values, as ours does) and `trace bench.Hot work -n 100000000 --skipJDKMethod")
P("# false` (ours traces String.length too): once streamed over its telnet port to a raw socket reader")
P("# (arthas-client.jar reads so slowly that it holds the watched thread back further), ended with Ctrl-C, then")
P("# `reset`; then each cycle as a background job writing to /dev/null inside the JVM (`... > /dev/null &`: Arthas")
P("# printing nothing expensive), then `kill` and `reset`; at the end `stop`. Arthas's none = attached and idle,")
P("# right before each job. wall = calls/s; cpu = calls per CPU-second of the watched thread (what the observer")
P("# costs that thread, free of contention); per call = 1/cpu(observed) - 1/cpu(none). % = change from the same")
P("# JVM's none. First event: ours from spawning repairctl to its first line (first cycle; median of all); Arthas")
P("# from sending the command on an open session to the first event (its first such command after attaching).")
def verdicts(kind):
    first = [w["first_ms"] for w in W[(f"ours-{kind}", "A")]]
    for tag in ("wall", "cpu"):
        g = lambda st: getattr(st, tag)
        a0, b0 = g(A(f"{kind}-none")), g(B(f"{kind}-none"))
        ours, after = g(A(f"ours-{kind}")), g(A(f"ours-{kind}-after"))
        art, art_after = g(B(f"arthas-{kind}")), g(B(f"arthas-{kind}-after"))
        P(f"{kind} ({tag}): none {e(a0)} calls/s; ours {e(ours)} ({pct(ours, a0)}); arthas {e(art)} ({pct(art, b0)}) "
          f"[arthas's none {e(b0)}]; ours after end {e(after)} ({pct(after, a0)}); arthas after reset {e(art_after)} "
          f"({pct(art_after, b0)}); first event: ours {first[0]:.0f} ms (median {statistics.median(first):.0f}), "
          f"arthas {B(f'arthas-{kind}-stream').windows[0]['first_ms']:.0f} ms")
        so, sa = 1 - ours / a0, 1 - art / b0
        P(f"  target ({tag}): our slowdown at most a third of Arthas's: {100 * so:.0f}% vs {100 * sa:.0f}% / 3 = "
          f"{100 * sa / 3:.0f}%: {ok(so <= sa / 3)}; after the end within 1% of none: {pct(after, a0)}: "
          f"{ok(abs(after / a0 - 1) <= 0.01)}")
    o = A(f"ours-{kind}")
    P(f"{kind} per call, on the watched thread: ours {us(o.cpu, A(f'{kind}-none').cpu)}, arthas "
      f"{us(B(f'arthas-{kind}').cpu, B(f'{kind}-none').cpu)} (without our agent {us(C(f'arthas-{kind}').cpu, C(f'{kind}-none').cpu)}; "
      f"streamed over telnet {us(B(f'arthas-{kind}-stream').cpu, B(f'{kind}-none').cpu)})"
      + (f"; ours with an --if no call meets {us(A('ours-watch-if').cpu, A('watch-none').cpu)}" if kind == "watch" else "")
      + f"; ours reported {o.sum('agent_reported')} of {o.sum('agent_calls')} calls"
      )
for kind in kinds:
    verdicts(kind)
if "trace" not in kinds:
    P(f"trace: not measured: `repairctl trace` does not exist in this build ({rev})")
P("# details: pooled medians (wall calls/s, cpu calls/CPU-s, share of the time the watched thread was on a core);")
P("# each = the cpu median of each window pooled, one per cycle")
def det(jvm, name, label, base, extra=""):
    w, b = Stat(jvm, name), Stat(jvm, base)
    each = " each " + " ".join(e(x) for x in w.each_cpu) if len(w.each_cpu) > 1 else ""
    P(f"{jvm} {label:<42} wall {e(w.wall)} ({pct(w.wall, b.wall)})  cpu {e(w.cpu)} ({pct(w.cpu, b.cpu)})  "
      f"on-cpu {100 * w.oncpu:.0f}%{each}{extra}")
for kind in kinds:
    o = A(f"ours-{kind}")
    notices = sorted({n for w in o.windows for n in w["notices"]})
    det("A", f"{kind}-none", f"{kind}: none (our agent loaded)", f"{kind}-none")
    det("A", f"ours-{kind}", f"repairctl {kind}, every call",
        f"{kind}-none",
        f"; over the observations the agent reported {o.sum('agent_reported')} of {o.sum('agent_calls')} calls ({o.sum('agent_dropped')} dropped: "
        f"its queue full); first event {', '.join(str(round(w['first_ms'])) for w in o.windows)} ms"
        + (f"; last notice: {notices[-1]}" if notices else ""))
    det("A", f"ours-{kind}-after", f"{kind}: after the stream ended", f"{kind}-none")
    if kind == "watch":
        det("A", "ours-watch-if", "repairctl watch --if that no call meets", "watch-none", " (probes and rendering; nothing queued)")
        det("A", "ours-watch-if-after", "after that stream ended", "watch-none")
for j in ("B", "C"):
    det(j, "before-attach", "before attaching" + (" (our agent loaded)" if j == "B" else " (no agent of ours)"), "before-attach")
    det(j, "attached", "Arthas attached, idle", "before-attach", f"; attach {X[('attach', j)]['attach_ms']} ms")
    for kind in kinds:
        s, jb = Stat(j, f"arthas-{kind}-stream"), Stat(j, f"arthas-{kind}")
        sw = s.windows[0]
        det(j, f"{kind}-none", f"{kind}: none (attached, idle)", f"{kind}-none")
        det(j, f"arthas-{kind}-stream", f"{kind} streamed over telnet", f"{kind}-none",
            f"; {sw['events']} events of {s.calls} calls in the window, first event {sw['first_ms']:.0f} ms "
            f"(enhancing {sw['enhance_ms']} ms)")
        det(j, f"arthas-{kind}-after-interrupt", f"{kind}: after Ctrl-C (class still enhanced)", f"{kind}-none")
        det(j, f"arthas-{kind}-after-reset", f"{kind}: after reset", f"{kind}-none")
        det(j, f"arthas-{kind}", f"{kind} > /dev/null & (in the JVM)", f"{kind}-none",
            f"; {jb.sum('events')} executions of {jb.calls} calls in the windows")
        det(j, f"arthas-{kind}-after", f"{kind}: after kill + reset", f"{kind}-none")
    det(j, "arthas-after-stop", "after stop", "before-attach",
        f"; arthas-client.jar watch -n 1, spawn to exit: {X[('client', j)]['client_ms']} ms")
PY
cat bench/observe.txt
