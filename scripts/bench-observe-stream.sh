#!/usr/bin/env bash
# Observation streaming under load (writes bench/observe-stream.txt). A Java program calls
# Work.step(String, int) RATE times a second (paced; it prints the calls it made per second every
# 500 ms), with librepair.so, and goes through three phases of RUNS seconds each:
#   none    no observation
#   reader  `repairctl watch Work step --max-per-second 1000000 --max-cpu-ms 1000 --max-kib 1000000 --for RUNS` read to its end
#   stalled the same watch, its client SIGSTOPped 2 s in (it reads nothing more: the queue, the
#           HTTP/2 window and the socket fill) and SIGCONTed 2 s after --for ran out; the last line
#           it then prints carries the count of dropped reports
# Every second: the JVM's RSS (/proc/PID/status VmRSS) and `repairctl observations` (reports
# queued, dropped). The heap is fixed and touched up front, so RSS growth is the agent's and the
# stream's native memory, not the Java heap growing.
#
#   scripts/bench-observe-stream.sh            RUNS=30 RATE=150000
#   env: RUNS, RATE, JAVA (default java), HEAP (default -Xms128m -Xmx128m -XX:+AlwaysPreTouch),
#        OUT (default bench/observe-stream.txt)
# Targets: RSS during the observations at most 64 MiB over its level before the first one, and
# flat in the second half of each (< 8 MiB of growth); the app's throughput with a stalled client
# not below its throughput with a reading client (2% of tolerance: both may be at the pace), and at
# least 90% of the unobserved; the reading client receives >= 100,000 events a second.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
runs=${RUNS:-30}
rate=${RATE:-150000}
java=${JAVA:-java}
heap=${HEAP:--Xms128m -Xmx128m -XX:+AlwaysPreTouch}
out=${OUT:-$root/bench/observe-stream.txt}
jdk_bin=$(dirname "$(readlink -f "$(command -v "$java")")")
cargo build --release -q --workspace
bin=$root/target/release/repairctl
tmp=$(mktemp -d)
pid='' sampler='' client=''
cleanup() {
    [ -n "$client" ] && kill -CONT "$client" 2>/dev/null
    [ -n "$sampler" ] && kill "$sampler" 2>/dev/null
    [ -n "$pid" ] && kill "$pid" 2>/dev/null
    wait 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT

cat > "$tmp/Paced.java" <<'JAVA'
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.locks.LockSupport;

/** Calls Work.step RATE times a second (fewer when it cannot keep up: a debt of more than 100 ms
 *  is forgotten), printing "RATE <epoch ms> <calls a second>" every 500 ms. */
public class Paced {
    static final AtomicLong calls = new AtomicLong();
    static volatile long sink;

    public static void main(String[] a) throws Exception {
        long rate = Long.parseLong(a[0]);
        Thread load = new Thread(() -> {
            String[] items = {"apple", "pear", "plum", "fig"};
            long start = System.nanoTime(), done = 0, acc = 0;
            while (true) {
                long due = (System.nanoTime() - start) * rate / 1_000_000_000L;
                if (due - done > rate / 10) {
                    done = due - rate / 10;
                }
                if (done >= due) {
                    LockSupport.parkNanos(100_000);
                    continue;
                }
                long n = Math.min(due - done, 256);
                for (long i = 0; i < n; i++) {
                    acc += Work.step(items[(int) (done & 3)], (int) done);
                    done++;
                }
                calls.addAndGet(n);
                sink = acc;
            }
        }, "load");
        load.setDaemon(true);
        load.start();
        System.out.println("READY " + ProcessHandle.current().pid());
        long last = 0, t0 = System.nanoTime();
        while (true) {
            Thread.sleep(500);
            long now = calls.get(), t1 = System.nanoTime();
            System.out.println("RATE " + System.currentTimeMillis() + " " + (now - last) * 1_000_000_000L / (t1 - t0));
            last = now;
            t0 = t1;
        }
    }
}

class Work {
    static long step(String item, int seq) {
        return item.length() * 31L + seq;
    }
}
JAVA
"$jdk_bin/javac" -d "$tmp" "$tmp/Paced.java"

now_ms() { date +%s%3N; }

# shellcheck disable=SC2086
"$java" $heap -agentpath:"$root/target/release/librepair.so=state=$tmp/state" -cp "$tmp" Paced "$rate" \
    > "$tmp/jvm.out" 2> "$tmp/jvm.err" &
pid=$!
for _ in $(seq 300); do grep -qs '^READY' "$tmp/jvm.out" && break; sleep 0.1; done
grep -q '^READY' "$tmp/jvm.out" || { cat "$tmp/jvm.err"; exit 1; }

# One line a second: epoch ms, VmRSS kB, reports queued and dropped of the observation in progress,
# the JVM's CPU time (clock ticks, user + system).
(
    while kill -0 "$pid" 2>/dev/null; do
        rss=$(awk '/^VmRSS/ { print $2 }' "/proc/$pid/status" 2>/dev/null || echo 0)
        obs=$("$bin" observations --pid "$pid" -o json 2>/dev/null || true)
        reported=$(grep -o '"reported":[0-9]*' <<<"$obs" | head -1 | cut -d: -f2 || true)
        dropped=$(grep -o '"dropped":[0-9]*' <<<"$obs" | head -1 | cut -d: -f2 || true)
        cpu=$(awk '{ print $14 + $15 }' "/proc/$pid/stat" 2>/dev/null || echo 0)
        echo "$(now_ms) $rss ${reported:--} ${dropped:--} $cpu"
        sleep 1
    done
) > "$tmp/samples" &
sampler=$!

observations_end() {
    for _ in $(seq 300); do
        [ "$("$bin" observations --pid "$pid" -o json)" = "[]" ] && return
        sleep 0.1
    done
    echo "an observation outlived its stream" >&2
    exit 1
}

sleep 3 # warm-up
t_none0=$(now_ms)
sleep "$runs"
t_none1=$(now_ms)
sleep 2

# (a) a client that reads everything.
t_a0=$(now_ms)
"$bin" watch Work step --max-per-second 1000000 --max-cpu-ms 1000 --max-kib 1000000 --for "${runs}s" --pid "$pid" -o json \
    | awk '/"args"/ { n++ } { l = $0 } END { print n + 0; print l }' > "$tmp/a.out"
t_a1=$(now_ms)
observations_end
sleep 2

# (b) a client that stops reading 2 s in, and resumes 2 s after --for ran out.
t_b0=$(now_ms)
"$bin" watch Work step --max-per-second 1000000 --max-cpu-ms 1000 --max-kib 1000000 --for "${runs}s" --pid "$pid" -o json \
    > >(awk '/"args"/ { n++ } { l = $0 } END { print n + 0; print l }' > "$tmp/b.out") &
client=$!
sleep 2
kill -STOP "$client"
t_stop=$(now_ms)
sleep "$((runs - 2))"
t_b1=$(now_ms)
sleep 2
kill -CONT "$client"
t_cont=$(now_ms)
wait "$client"
client=''
observations_end
for _ in $(seq 100); do [ -s "$tmp/b.out" ] && break; sleep 0.1; done
sleep 2
kill "$sampler" 2>/dev/null || true
wait "$sampler" 2>/dev/null || true
sampler=''

# The app's calls a second (median of the 500 ms readings) in [from, to).
app_rate() {
    awk -v a="$1" -v b="$2" '$1 == "RATE" && $2 >= a && $2 < b { print $3 }' "$tmp/jvm.out" | sort -n \
        | awk '{ v[NR] = $1 } END { if (NR == 0) print 0; else print v[int((NR + 1) / 2)] }'
}
app_mean() {
    awk -v a="$1" -v b="$2" '$1 == "RATE" && $2 >= a && $2 < b { s += $3; n++ } END { printf "%d", n ? s / n : 0 }' \
        "$tmp/jvm.out"
}
# RSS (MiB) in [from, to): first, max, last, and the growth in the second half (max of the second
# half minus the reading at its middle).
rss() {
    awk -v a="$1" -v b="$2" '$1 >= a && $1 < b { r[++n] = $2 }
        END { m = 0; for (i = 1; i <= n; i++) if (r[i] > m) m = r[i]
              h = int((n + 1) / 2); g = 0; for (i = h; i <= n; i++) if (r[i] - r[h] > g) g = r[i] - r[h]
              printf "%.1f %.1f %.1f %.1f", r[1] / 1024, m / 1024, r[n] / 1024, g / 1024 }' "$tmp/samples"
}
# The JVM's CPU use in [from, to), in % of one core.
cpu() {
    awk -v a="$1" -v b="$2" -v hz="$(getconf CLK_TCK)" '$1 >= a && $1 < b { if (t == "") { t = $1; c = $5 } t1 = $1; c1 = $5 }
        END { printf "%d", (t1 > t) ? (c1 - c) / hz * 1000 / (t1 - t) * 100 : 0 }' "$tmp/samples"
}
# Reports queued a second (from the agent's counter, sampled every second): min, median, max.
queued_rate() {
    awk -v a="$1" -v b="$2" '$1 >= a && $1 < b && $3 != "-" {
            if (p != "") { d = ($3 - p) * 1000 / ($1 - t); print int(d) } p = $3; t = $1 }' "$tmp/samples" | sort -n \
        | awk '{ v[NR] = $1 } END { if (NR == 0) print "- - -"; else print v[1], v[int((NR + 1) / 2)], v[NR] }'
}

none_rate=$(app_rate "$((t_none0 + 1000))" "$t_none1")
a_rate=$(app_rate "$((t_a0 + 2000))" "$t_a1")
b_rate=$(app_rate "$((t_stop + 1000))" "$t_b1")
none_mean=$(app_mean "$((t_none0 + 1000))" "$t_none1")
a_mean=$(app_mean "$((t_a0 + 2000))" "$t_a1")
b_mean=$(app_mean "$((t_stop + 1000))" "$t_b1")
a_events=$(sed -n 1p "$tmp/a.out")
a_last=$(sed -n 2p "$tmp/a.out")
b_events=$(sed -n 1p "$tmp/b.out")
b_last=$(sed -n 2p "$tmp/b.out")
a_secs=$(awk -v a="$t_a0" -v b="$t_a1" 'BEGIN { printf "%.1f", (b - a) / 1000 }')
a_per_s=$(awk -v n="$a_events" -v r="$runs" 'BEGIN { printf "%d", n / r }')
b_dropped=$(grep -o '"dropped":[0-9]*' <<<"$b_last" | cut -d: -f2 || true)
a_dropped=$(grep -o '"dropped":[0-9]*' <<<"$a_last" | cut -d: -f2 || true)
read -r base _ _ _ <<<"$(rss "$t_a0" "$((t_a0 + 1500))")"
read -r a_r0 a_rmax a_r1 a_half <<<"$(rss "$t_a0" "$t_a1")"
read -r b_r0 b_rmax b_r1 b_half <<<"$(rss "$t_b0" "$t_cont")"
read -r n_r0 n_rmax n_r1 n_half <<<"$(rss "$t_none0" "$t_none1")"
growth=$(awk -v m1="$a_rmax" -v m2="$b_rmax" -v b="$base" 'BEGIN { m = m1 > m2 ? m1 : m2; printf "%.1f", m - b }')

verdict() { if awk "BEGIN { exit !($1) }"; then echo "ok  "; else echo "FAIL"; fi; }
{
    echo "# scripts/bench-observe-stream.sh, $(date -u +%Y-%m-%d), $(nproc) cores (shared), load average at the end:$(cut -d' ' -f1-3 /proc/loadavg | sed 's/^/ /')"
    echo "# $("$java" -version 2>&1 | head -1); heap: $heap; release build"
    echo "# app: 1 thread calls Work.step(String, int) paced at $rate calls/s; phases of $runs s each"
    echo "# watch: repairctl watch Work step --max-per-second 1000000 --max-cpu-ms 1000 --max-kib 1000000 --for ${runs}s -o json"
    echo
    echo "app throughput, calls/s (median of 500 ms readings; mean in brackets); the JVM's CPU, % of a core"
    printf "  %-42s %8s  (%s)  cpu %s%%\n" "no observation" "$none_rate" "$none_mean" "$(cpu "$t_none0" "$t_none1")"
    printf "  %-42s %8s  (%s)  cpu %s%%\n" "(a) watched, client reads everything" "$a_rate" "$a_mean" "$(cpu "$t_a0" "$t_a1")"
    printf "  %-42s %8s  (%s)  cpu %s%%\n" "(b) watched, client SIGSTOPped" "$b_rate" "$b_mean" "$(cpu "$t_stop" "$t_b1")"
    echo
    echo "(a) events received: $a_events in ${a_secs} s of watch (--for ${runs}s): $a_per_s events/s over the $runs s"
    echo "    reports queued per second (agent counter, sampled each second) min/median/max: $(queued_rate "$t_a0" "$t_a1")"
    echo "    last line: $a_last"
    echo "(b) events received: $b_events (before the stop, then what the queue and buffers held)"
    echo "    last line after SIGCONT: $b_last"
    echo
    echo "JVM RSS, MiB: start / max / end / growth in the second half"
    printf "  %-42s %s / %s / %s / %s\n" "no observation" "$n_r0" "$n_rmax" "$n_r1" "$n_half"
    printf "  %-42s %s / %s / %s / %s\n" "(a) client reads everything" "$a_r0" "$a_rmax" "$a_r1" "$a_half"
    printf "  %-42s %s / %s / %s / %s\n" "(b) client stalled" "$b_r0" "$b_rmax" "$b_r1" "$b_half"
    echo "  growth over the observations (max minus RSS before the first): $growth MiB"
    echo
    echo "targets"
    echo "  $(verdict "$a_per_s >= 100000") (a) receives >= 100,000 events/s: $a_per_s"
    echo "  $(verdict "$growth < 64") RSS grows < 64 MiB over the observations: $growth MiB"
    echo "  $(verdict "$a_half < 8 && $b_half < 8") RSS flat in the second half of each (< 8 MiB): $a_half, $b_half MiB"
    echo "  $(verdict "$b_rate >= 0.98 * $a_rate") throughput (b) not below (a) (2% for the readings' jitter): $b_rate vs $a_rate"
    echo "  $(verdict "$b_rate >= 0.9 * $none_rate") throughput (b) >= 90% of no observation: $b_rate vs $none_rate"
    echo "  $(verdict "${b_dropped:-0} > 0") (b) reports drops once it reads again: dropped ${b_dropped:-none}"
    echo "  (a) dropped: ${a_dropped:-none}"
    echo
    echo "samples: phase, epoch ms, RSS kB, reports queued, dropped (- : no observation), JVM CPU ticks"
    awk -v n0="$t_none0" -v a0="$t_a0" -v b0="$t_b0" '{ ph = $1 < a0 ? (($1 < n0) ? "warm" : "none") : ($1 < b0 ? "a" : "b"); print "  " ph, $0 }' \
        "$tmp/samples"
} | tee "$out"
