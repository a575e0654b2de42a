//! Properties the agent must always have, whatever the machine's speed: its threads sleep while
//! the JVM is idle, and it never delays the JVM's exit. Not benchmarks (those are
//! `scripts/bench-agent.sh`): the bounds are far from what a healthy agent shows and far below
//! what a spinning thread or an exit stall costs.

mod agent_support;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use agent_support::{agentpath, compile, default_jdk, jdks, Jdk, TempDir};

/// Sleeps for the seconds given, then returns from `main` (or calls `System.exit` when asked).
const IDLE: &str = r#"
public class Idle {
    public static void main(String[] args) throws Exception {
        System.out.println("ready");
        System.out.flush();
        Thread.sleep(Long.parseLong(args[0]));
        System.out.println("done");
        System.out.flush();
        if (args.length > 1) System.exit(0);
    }
}
"#;

/// CPU time (user + system) of one task of a process, in clock ticks.
fn task_ticks(pid: u32, tid: &str) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state): utime is field 14, stime field 15.
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

/// `(thread name, CPU ticks)` of every thread of `pid` whose name starts with `repair`.
fn agent_threads(pid: u32) -> Vec<(String, u64)> {
    let mut v = Vec::new();
    for entry in std::fs::read_dir(format!("/proc/{pid}/task")).into_iter().flatten().flatten() {
        let tid = entry.file_name().to_string_lossy().into_owned();
        let comm = std::fs::read_to_string(entry.path().join("comm")).unwrap_or_default().trim().to_string();
        if comm.starts_with("repair") {
            if let Some(t) = task_ticks(pid, &tid) {
                v.push((format!("{comm} (tid {tid})"), t));
            }
        }
    }
    v
}

fn ticks_per_second() -> u64 {
    let out = Command::new("getconf").arg("CLK_TCK").output().expect("getconf runs");
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap_or(100)
}

fn spawn_idle(jdk: &Jdk, dir: &std::path::Path, jvm_args: &[String], idle_ms: u64, exit_call: bool) -> Child {
    let mut cmd = Command::new(jdk.java());
    cmd.env("XDG_STATE_HOME", dir.join("state")).args(jvm_args).arg("-cp").arg(dir).arg("Idle");
    cmd.arg(idle_ms.to_string());
    if exit_call {
        cmd.arg("exit");
    }
    cmd.stdout(Stdio::piped()).stderr(Stdio::null()).spawn().expect("java starts")
}

fn read_line(r: &mut impl BufRead) -> String {
    let mut line = String::new();
    r.read_line(&mut line).expect("read stdout");
    line.trim().to_string()
}

/// The agent's threads in an idle JVM over `window`: CPU seconds each used.
fn idle_cpu(jdk: &Jdk, dir: &std::path::Path, jvm_args: &[String], attach: bool) -> Vec<(String, f64)> {
    let mut child = spawn_idle(jdk, dir, jvm_args, 8_000, false);
    let pid = child.id();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    assert_eq!(read_line(&mut out), "ready");
    if attach {
        let status = Command::new(jdk.tool("jcmd"))
            .arg(pid.to_string())
            .arg("JVMTI.agent_load")
            .arg(agent_support::agent_so())
            .stdout(Stdio::null())
            .status()
            .expect("jcmd runs");
        assert!(status.success(), "jcmd JVMTI.agent_load failed");
    }
    // Past start-up (or the attach's work), then a window in which the JVM does nothing.
    std::thread::sleep(Duration::from_millis(1500));
    let before = agent_threads(pid);
    std::thread::sleep(Duration::from_secs(3));
    let after = agent_threads(pid);
    let _ = child.kill();
    let _ = child.wait();
    assert!(!after.is_empty(), "no agent thread found in /proc/{pid}/task: did the agent load?");
    let hz = ticks_per_second() as f64;
    after
        .iter()
        .map(|(name, t)| {
            let t0 = before.iter().find(|(n, _)| n == name).map(|(_, t)| *t).unwrap_or(0);
            (name.clone(), (t - t0) as f64 / hz)
        })
        .collect()
}

fn assert_idle(label: &str, used: &[(String, f64)]) {
    // An idle agent thread uses nothing measurable (a tick is 10 ms); the spinning healer used
    // 45-90% of a core, i.e. more than a second of these 3.
    for (name, seconds) in used {
        assert!(
            *seconds < 0.1,
            "{label}: agent thread {name} used {seconds:.2} s of CPU in 3 s while the JVM was idle"
        );
    }
}

#[test]
fn the_agents_threads_sleep_while_the_jvm_is_idle() {
    let jdk = default_jdk();
    let dir = TempDir::new("idle-cpu");
    compile(&jdk, &dir.0, &[("Idle.java", IDLE)]);
    let policy = dir.0.join("policy.yaml");
    std::fs::write(
        &policy,
        "rules:\n  - name: npe\n    when: { exception: java.lang.NullPointerException, count: 2, within: 10s }\n    then:\n      - guard: { catch: [java.lang.NullPointerException], fallback: default }\n",
    )
    .unwrap();
    let cases: Vec<(&str, Vec<String>, bool)> = vec![
        ("default options", vec![agentpath("")], false),
        ("faults=off", vec![agentpath("faults=off")], false),
        ("with a policy", vec![agentpath(&format!("policy={}", policy.display()))], false),
        ("after attach", vec!["-XX:+EnableDynamicAgentLoading".to_string()], true),
    ];
    for (label, args, attach) in cases {
        let used = idle_cpu(&jdk, &dir.0, &args, attach);
        assert_idle(label, &used);
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

/// Milliseconds from the program's last line to the end of the process.
fn exit_ms(jdk: &Jdk, dir: &std::path::Path, jvm_args: &[String], exit_call: bool) -> f64 {
    let mut child = spawn_idle(jdk, dir, jvm_args, 300, exit_call);
    let mut out = BufReader::new(child.stdout.take().unwrap());
    assert_eq!(read_line(&mut out), "ready");
    assert_eq!(read_line(&mut out), "done");
    let done = Instant::now();
    let status = child.wait().expect("wait");
    let ms = done.elapsed().as_secs_f64() * 1e3;
    assert!(status.success(), "the JVM failed: {status}");
    ms
}

#[test]
fn a_jvm_with_the_agent_exits_as_fast_as_one_without() {
    for jdk in jdks() {
        let dir = TempDir::new("exit-time");
        compile(&jdk, &dir.0, &[("Idle.java", IDLE)]);
        for exit_call in [false, true] {
            let how = if exit_call { "System.exit" } else { "return from main" };
            let (mut without, mut with) = (Vec::new(), Vec::new());
            // Alternated, so that a slow moment of the machine hits both alike.
            for _ in 0..5 {
                without.push(exit_ms(&jdk, &dir.0, &[], exit_call));
                with.push(exit_ms(&jdk, &dir.0, &[agentpath("")], exit_call));
            }
            let (a, b) = (median(without.clone()), median(with.clone()));
            eprintln!("{} {how}: exit without agent {a:.1} ms {without:?}, with {b:.1} ms {with:?}", jdk.name);
            // HotSpot's wait for attached threads in native code is 300 ms; a healthy agent adds
            // a few milliseconds at most.
            assert!(
                b - a < 100.0,
                "{} {how}: the JVM took {b:.0} ms to exit with the agent, {a:.0} ms without",
                jdk.name
            );
        }
    }
}
