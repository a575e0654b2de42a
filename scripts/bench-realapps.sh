#!/usr/bin/env bash
# What the agent costs on five real programs from Debian's jars in /usr/share/java: Groovy running a
# script, Ant building a small project, JGit making and reading a repository, Rhino (-opt 9) running
# JavaScript, and an embedded Jetty 9 answering HTTP requests. The programs and their inputs are in
# bench/realapps/. Writes bench/realapps.txt.
#
# Each program runs in three configurations: without the agent (none), with it and its default
# options (agent), and with -agentpath:$so=faults=off (off). The configurations alternate run by run
# (none, agent, off, none, agent, off, ...), after one warm-up round that is not counted. For each
# run: the wall time of the whole java process; the CPU time (user + system) of the JVM's main
# thread, the one that runs the program's main; the CPU time of the whole process; and how many lines
# beginning with "repair:" the agent wrote to stderr.
#
# The main thread's CPU time is printed by bench/realapps/Launch.java, which calls the program's own
# entry point on that thread and, when it returns, reads the thread's own run time from
# /proc/thread-self/schedstat, the clock of ThreadMXBean.getCurrentThreadCpuTime(), which it reads
# next as a check (see the comment there). Not /proc/PID/task/*/stat from outside: the launcher's
# first thread (task id == pid) only creates the main thread and waits, which thread is main is not
# the same from one JDK to the next (pid + 1 on JDK 17, pid + 2 on JDK 25), and the thread's last
# moments before exit cannot be sampled from outside.
#
# The application's stdout, with this run's temp paths replaced, must be the same bytes in every run
# and configuration of a JDK; otherwise the script prints the diff and fails.
#
# Environment: RUNS (default 5) counted runs per configuration; JDKS: "17" (default: $JAVA_HOME or
# the Debian JDK 17), "25" (Temurin 25), "all" (both) or a list of those and JDK home paths; APPS
# (default "groovy ant jgit rhino jetty"); REPAIR_AGENT_SO (default target/release/librepair.so,
# built with cargo if missing). Takes about 5 minutes per JDK on 2 cores with the defaults, more on
# a busy machine (the header records the load average).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
runs=${RUNS:-5}
if ! [[ $runs =~ ^[1-9][0-9]*$ ]]; then
    echo "RUNS must be a positive number" >&2
    exit 2
fi
apps=${APPS:-groovy ant jgit rhino jetty}
jdks=${JDKS:-17}
[ "$jdks" = all ] && jdks="17 25"
so=${REPAIR_AGENT_SO:-$root/target/release/librepair.so}
if [ ! -f "$so" ]; then
    if [ -n "${REPAIR_AGENT_SO:-}" ]; then
        echo "REPAIR_AGENT_SO=$REPAIR_AGENT_SO does not exist" >&2
        exit 2
    fi
    cargo build --release -p repair-agent
fi
src="$root/bench/realapps"
lib=/usr/share/java
results="$root/bench/realapps.txt"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# Every run loads the same copy, even if a build replaces the original meanwhile.
cp "$(readlink -f "$so")" "$work/librepair.so"
agent_desc="$(readlink -f "$so") (sha256 $(sha256sum "$work/librepair.so" | cut -c1-16), $(date -u -r "$so" '+%Y-%m-%d %H:%M UTC'))"
so="$work/librepair.so"
# The agent keeps its journal here, not in the user's state dir.
export XDG_STATE_HOME="$work/state"
# JGit would otherwise read the machine's /etc/gitconfig (and run git to find it).
export GIT_CONFIG_NOSYSTEM=1
# What bash's time prints: user and system CPU seconds of the java process (all its threads).
TIMEFORMAT='%3U %3S'

jars() { local IFS=:; echo "$*"; }
groovy_cp=$(jars $lib/groovy-all.jar)
ant_cp=$(jars $lib/ant.jar $lib/ant-launcher.jar)
jgit_cp=$(jars $lib/org.eclipse.jgit.jar $lib/javaewah.jar $lib/slf4j-api.jar $lib/jsch.jar)
rhino_cp=$(jars $lib/js.jar)
# No slf4j here: Jetty then logs with its StdErrLog, as it does wherever slf4j is absent.
jetty_cp=$(jars $lib/jetty9-server.jar $lib/jetty9-servlet.jar $lib/jetty9-security.jar $lib/jetty9-http.jar \
    $lib/jetty9-io.jar $lib/jetty9-util.jar $lib/servlet-api.jar)

jdk_home() {
    case $1 in
        17) echo "${JAVA_HOME:-/usr/lib/jvm/java-17-openjdk-amd64}" ;;
        25) echo /usr/lib/jvm/temurin-25-jdk-amd64 ;;
        *) echo "$1" ;;
    esac
}

# Sets cmd to the java arguments (after the agent's) that run $1 in the run directory $2.
app_cmd() {
    local app=$1 dir=$2
    case $app in
        groovy) cmd=(-cp "$classes:$groovy_cp" Launch main groovy.ui.GroovyMain "$src/work.groovy") ;;
        ant)
            cp -r "$src/ant-project" "$dir/project"
            # Three full builds, with a clean between them.
            cmd=(-Dant.home=/usr/share/ant -cp "$classes:$ant_cp" Launch ant -f "$dir/project/build.xml" dist clean dist clean dist)
            ;;
        jgit)
            mkdir "$dir/home"
            cmd=(-Duser.home="$dir/home" -cp "$classes:$jgit_cp" Launch main JGitBench "$dir/repo")
            ;;
        rhino) cmd=(-cp "$classes:$rhino_cp" Launch rhino -opt 9 "$src/work.js") ;;
        jetty) cmd=(-cp "$classes:$jetty_cp" Launch main JettyBench) ;;
        *) echo "unknown app $app" >&2; exit 2 ;;
    esac
}

# The stdout that must not change: temp paths replaced; for Ant, its "Total time" line dropped and
# the list of files the build left (path and size) added.
normalize() {
    local app=$1 dir=$2
    sed -e "s|$dir|<RUN>|g" -e "s|$work|<WORK>|g" "$dir/stdout" | if [ "$app" = ant ]; then grep -v '^Total time: '; else cat; fi
    if [ "$app" = ant ]; then
        echo "-- files after the build:"
        (cd "$dir/project" && find . -type f -printf '%P %s\n' | LC_ALL=C sort)
    fi
}

# One run of app $2 on JDK tag $1 in configuration $3, run number $4 (0 = warm-up): appends a line
# to $work/runs.tsv and checks the stdout against the first run's.
run_one() {
    local tag=$1 app=$2 config=$3 i=$4
    local dir="$work/$tag/$app/$config-$i"
    mkdir -p "$dir"
    local -a agent=()
    case $config in
        agent) agent=(-agentpath:"$so") ;;
        off) agent=(-agentpath:"$so=faults=off") ;;
    esac
    app_cmd "$app" "$dir"
    local rc=0 t0 t1
    t0=$(date +%s%N)
    # (Not "exec java" in the subshell: bash's time then reports nothing.)
    { time (cd "$dir" && "$java" "${agent[@]}" "${cmd[@]}" > "$dir/stdout" 2> "$dir/stderr"); } 2> "$dir/time" || rc=$?
    t1=$(date +%s%N)
    if [ "$rc" -ne 0 ]; then
        echo "$app ($config, run $i) exited with $rc; its stderr ends:" >&2
        tail -20 "$dir/stderr" >&2
        exit 1
    fi
    local line main_ns mx_ns ticks
    line=$(grep '^realapps: main_cpu_ns=' "$dir/stderr" || true)
    if [ -z "$line" ]; then
        echo "$app ($config, run $i) printed no main-thread CPU line; its stderr ends:" >&2
        tail -20 "$dir/stderr" >&2
        exit 1
    fi
    main_ns=$(sed -E 's/.*main_cpu_ns=([0-9]+).*/\1/' <<< "$line")
    mx_ns=$(sed -E 's/.*mxbean_ns=([0-9]+).*/\1/' <<< "$line")
    ticks=$(sed -E 's/.*main_ticks=([0-9?]+).*/\1/' <<< "$line")
    local user sys repair_lines
    read -r user sys < "$dir/time"
    repair_lines=$(grep -c '^repair:' "$dir/stderr" || true)
    printf '%s\t%s\t%s\t%s\t%d\t%d\t%s\t%s\t%s\t%s\t%d\n' "$tag" "$app" "$config" "$i" \
        $(((t1 - t0) / 1000000)) $((main_ns / 1000000)) "$user" "$sys" "$repair_lines" "$ticks" $((mx_ns / 1000000)) >> "$work/runs.tsv"
    normalize "$app" "$dir" > "$dir/normalized"
    local first="$work/$tag/$app/none-0/normalized"
    if ! cmp -s "$first" "$dir/normalized"; then
        echo "$app: the stdout of run $i ($config) differs from the first run's (none, warm-up):" >&2
        diff -u "$first" "$dir/normalized" >&2 || true
        exit 1
    fi
}

printf 'jdk\tapp\tconfig\trun\twall_ms\tmain_cpu_ms\tuser_s\tsys_s\trepair_lines\tmain_ticks\tmxbean_ms\n' > "$work/runs.tsv"
: > "$work/headers"
for tag in $jdks; do
    home=$(jdk_home "$tag")
    java="$home/bin/java"
    version=$("$java" -version 2>&1 | head -1)
    classes="$work/$tag/classes"
    mkdir -p "$classes"
    "$home/bin/javac" -nowarn -d "$classes" -cp "$(jars "$ant_cp" "$jgit_cp" "$jetty_cp")" \
        "$src/Launch.java" "$src/JGitBench.java" "$src/JettyBench.java"
    started=$(date -u '+%Y-%m-%d %H:%M UTC')
    load_start=$(cut -d' ' -f1-3 /proc/loadavg)
    for app in $apps; do
        echo "== $tag $app: 1 warm-up + $runs runs of none, agent, off ($(date -u +%H:%M:%S))" >&2
        for i in $(seq 0 "$runs"); do
            for config in none agent off; do
                run_one "$tag" "$app" "$config" "$i"
            done
        done
    done
    printf '%s\t%s\n' "$tag" "scripts/bench-realapps.sh, $started, $version, $(nproc) cores, $runs runs per configuration after 1 warm-up, load average $load_start at start, $(cut -d' ' -f1-3 /proc/loadavg) at end" >> "$work/headers"
done

python3 - "$work/runs.tsv" "$work/headers" "$agent_desc" "$(getconf CLK_TCK)" > "$work/report" <<'EOF'
import csv, statistics, sys
rows = [r for r in csv.DictReader(open(sys.argv[1]), delimiter='\t') if r['run'] != '0']
headers = dict(line.rstrip('\n').split('\t', 1) for line in open(sys.argv[2]))
so, clk_tck = sys.argv[3], int(sys.argv[4])
configs = ('none', 'agent', 'off')

def med(values):
    return statistics.median(values)

def pct(a, b):
    return f'{100 * a / b:.0f}%' if b else '-'

for tag, header in headers.items():
    print(header)
    print(f'agent: {so}')
    print('medians. wall: the java process, start to exit. main-thread CPU: user+sys of the thread that')
    print('runs main, from its start (JVM creation) to the program\'s return (/proc/thread-self/schedstat).')
    print('process CPU: user+sys of all the process\'s threads.')
    print(f'{"":8}| {"wall ms":^35} | {"main-thread CPU ms":^35} | {"process CPU ms":^20} | repair: lines')
    print(f'{"app":8}| {"none":>7} {"agent":>7} {"off":>7} {"agent/none":>10} | {"none":>7} {"agent":>7} {"off":>7} {"agent/off":>10}'
          f' | {"none":>6} {"agent":>6} {"off":>6} | {"agent":>6} {"off":>5}')
    apps = list(dict.fromkeys(r['app'] for r in rows if r['jdk'] == tag))
    worst, mx_lo, mx_hi = 0.0, None, None
    for app in apps:
        by = {c: [r for r in rows if r['jdk'] == tag and r['app'] == app and r['config'] == c] for c in configs}
        wall = {c: med([int(r['wall_ms']) for r in by[c]]) for c in configs}
        cpu = {c: med([int(r['main_cpu_ms']) for r in by[c]]) for c in configs}
        proc = {c: med([1000 * (float(r['user_s']) + float(r['sys_s'])) for r in by[c]]) for c in configs}
        lines = {c: med([int(r['repair_lines']) for r in by[c]]) for c in configs}
        for r in rows:
            if r['jdk'] == tag and r['app'] == app and r['main_ticks'].isdigit():
                worst = max(worst, abs(int(r['main_ticks']) * 1000 / clk_tck - int(r['main_cpu_ms'])))
            if r['jdk'] == tag and r['app'] == app:
                d = int(r['mxbean_ms']) - int(r['main_cpu_ms'])
                mx_lo = d if mx_lo is None else min(mx_lo, d)
                mx_hi = d if mx_hi is None else max(mx_hi, d)
        print(f'{app:8}| {wall["none"]:7.0f} {wall["agent"]:7.0f} {wall["off"]:7.0f} {pct(wall["agent"], wall["none"]):>10}'
              f' | {cpu["none"]:7.0f} {cpu["agent"]:7.0f} {cpu["off"]:7.0f} {pct(cpu["agent"], cpu["off"]):>10}'
              f' | {proc["none"]:6.0f} {proc["agent"]:6.0f} {proc["off"]:6.0f} | {lines["agent"]:6.0f} {lines["off"]:5.0f}')
    print(f'check, every run: ThreadMXBean.getCurrentThreadCpuTime(), read right after, is {mx_lo} to {mx_hi} ms more '
          f'(loading java.lang.management);')
    print(f'utime+stime of /proc/thread-self/stat is within {worst:.0f} ms (1 tick = {1000 / clk_tck:.0f} ms).')
    print('per run, wall ms / main-thread CPU ms, in the order run:')
    for app in apps:
        for c in configs:
            vals = ' '.join(f'{r["wall_ms"]}/{r["main_cpu_ms"]}' for r in rows if r['jdk'] == tag and r['app'] == app and r['config'] == c)
            print(f'  {app:7} {c:6} {vals}')
    print()
EOF
tee "$results" < "$work/report"
