//! Observation streaming under load on a real JVM (the long run is scripts/bench-observe-stream.sh):
//! a program calls a method tens of thousands of times a second and prints its own throughput;
//! `repairctl watch --max-per-second 1000000` (the CPU and byte quotas lifted too) streams every
//! call to a client that reads everything (it gets tens of thousands of events a second), then to a client that is
//! SIGSTOPped: the application keeps its pace (reports are dropped and counted instead), the
//! count reaches the client once it reads again, and the JVM's RSS stays within a fixed bound.
//! Made for a busy 2-core machine: throughputs are medians compared as ratios, bounds are generous.

mod agent_support;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use agent_support::{agentpath, compile, default_jdk, repairctl_json as json, within, TempDir};

/// Calls `Work.step` RATE times a second (fewer when it cannot keep up; a debt of more than
/// 100 ms is forgotten) and prints `RATE <epoch ms> <calls a second>` every 500 ms.
const PROGRAM: &str = r#"
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.locks.LockSupport;
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
                if (due - done > rate / 10) done = due - rate / 10;
                if (done >= due) { LockSupport.parkNanos(100_000); continue; }
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
    static long step(String item, int seq) { return item.length() * 31L + seq; }
}
"#;

/// The program's pace: a debug build of the agent renders a report several times slower.
const RATE: u64 = if cfg!(debug_assertions) { 50_000 } else { 150_000 };
/// Events a second the reading client must get at least (a debug repairctl and agent take several
/// times the CPU per event; the release run, in CI, asks for more).
const MIN_READ: f64 = if cfg!(debug_assertions) { 15_000.0 } else { 60_000.0 };
/// How long each phase runs.
const PHASE: Duration = Duration::from_secs(5);
/// RSS growth allowed over both observations.
const MAX_GROWTH_KIB: u64 = 64 * 1024;

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64
}

/// `(epoch ms, value)` readings.
type Readings = Arc<Mutex<Vec<(u64, u64)>>>;

/// The JVM, killed when dropped.
struct Jvm {
    child: Child,
    pid: u32,
    rates: Readings,
}

impl Drop for Jvm {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A `repairctl watch` client, killed (resumed first) when dropped.
struct Client(Child);

impl Drop for Client {
    fn drop(&mut self) {
        signal(self.0.id(), libc::SIGCONT);
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn signal(pid: u32, sig: i32) {
    // SAFETY: kill(2) on a child of this process.
    unsafe { libc::kill(pid as i32, sig) };
}

fn start(dir: &TempDir) -> Jvm {
    let jdk = default_jdk();
    compile(&jdk, &dir.0, &[("Paced.java", PROGRAM)]);
    let mut child = Command::new(jdk.java())
        .args(["-Xms64m", "-Xmx64m", "-XX:+AlwaysPreTouch"])
        .arg(agentpath(&format!("state={}", dir.0.join("state").display())))
        .arg("-cp")
        .arg(&dir.0)
        .arg("Paced")
        .arg(RATE.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("java starts");
    let out = BufReader::new(child.stdout.take().unwrap());
    let rates: Readings = Arc::default();
    let (ready_tx, ready) = std::sync::mpsc::channel();
    let r = rates.clone();
    std::thread::spawn(move || {
        for line in out.lines().map_while(Result::ok) {
            let words: Vec<&str> = line.split_whitespace().collect();
            match words[..] {
                ["READY", pid] => {
                    let _ = ready_tx.send(pid.parse::<u32>().unwrap());
                }
                ["RATE", at, rate] => r.lock().unwrap().push((at.parse().unwrap(), rate.parse().unwrap())),
                _ => {}
            }
        }
    });
    let pid = ready.recv_timeout(Duration::from_secs(60)).expect("the JVM prints READY");
    Jvm { child, pid, rates }
}

/// The median of the readings taken in `[from, to)` (ms), and how many there were.
fn median(readings: &Readings, from: u64, to: u64) -> (u64, usize) {
    let mut v: Vec<u64> =
        readings.lock().unwrap().iter().filter(|(at, _)| (from..to).contains(at)).map(|r| r.1).collect();
    v.sort_unstable();
    (v.get(v.len().saturating_sub(1) / 2).copied().unwrap_or(0), v.len())
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// The `dropped` count a line of `repairctl watch -o json` carries.
fn dropped(line: &str) -> u64 {
    line.split("\"dropped\":")
        .nth(1)
        .map_or(0, |rest| rest.chars().take_while(char::is_ascii_digit).collect::<String>().parse().unwrap_or(0))
}

fn watch(pid: u32, for_: Duration) -> (Client, BufReader<std::process::ChildStdout>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_repairctl"))
        .args([
            "watch",
            "Work",
            "step",
            "--max-per-second",
            "1000000",
            "--max-cpu-ms",
            "1000",
            "--max-kib",
            "1000000",
            "--for",
        ])
        .arg(format!("{}ms", for_.as_millis()))
        .args(["--pid", &pid.to_string(), "-o", "json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let out = BufReader::new(child.stdout.take().unwrap());
    (Client(child), out)
}

/// What a client read: call lines, the largest `dropped` they carried, the last line.
#[derive(Default, Debug)]
struct Read {
    calls: u64,
    max_dropped: u64,
    last: String,
    first_at: Option<Instant>,
    last_at: Option<Instant>,
}

impl Read {
    fn line(&mut self, line: &str) {
        let now = Instant::now();
        if line.contains("\"args\"") {
            self.calls += 1;
            self.first_at.get_or_insert(now);
            self.last_at = Some(now);
            self.max_dropped = self.max_dropped.max(dropped(line));
        }
        line.clone_into(&mut self.last);
    }
}

fn observations_end(pid: u32) {
    within(Duration::from_secs(30), "the observation outlived its stream", || {
        (json(&["observations", "--pid", &pid.to_string(), "-o", "json"]) == serde_json::json!([])).then_some(())
    });
}

#[test]
fn a_stream_keeps_up_with_a_reader_and_a_stalled_client_costs_the_application_nothing() {
    let dir = TempDir::new("observe-stream");
    let jvm = start(&dir);
    let pid = jvm.pid;

    // RSS every 200 ms, until the end.
    let rss: Readings = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (rss, stop) = (rss.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                rss.lock().unwrap().push((now_ms(), rss_kib(pid)));
                std::thread::sleep(Duration::from_millis(200));
            }
        })
    };

    // Warm-up, then the program unobserved.
    std::thread::sleep(Duration::from_secs(2));
    let t0 = now_ms();
    std::thread::sleep(PHASE);
    let (none, n) = median(&jvm.rates, t0 + 500, now_ms());
    assert!(n >= 5 && none > 0, "the program prints its throughput: {none} ({n} readings)");
    let base = rss_kib(pid);

    // (a) A client that reads everything.
    let t_a = now_ms();
    let (mut client, out) = watch(pid, PHASE);
    let mut a = Read::default();
    for line in out.lines() {
        a.line(&line.unwrap());
    }
    assert!(client.0.wait().unwrap().success(), "repairctl watch failed: {a:?}");
    assert!(a.last.contains("\"ended\""), "{}", a.last);
    let (reading, _) = median(&jvm.rates, t_a + 1000, now_ms());
    let span = a.last_at.zip(a.first_at).map_or(0.0, |(l, f)| (l - f).as_secs_f64()).max(0.1);
    let per_second = a.calls as f64 / span;
    observations_end(pid);

    // (b) A client that stops reading: SIGSTOPped once it has read 1,000 calls, resumed 5 s later,
    // while the observation still runs.
    let (client, mut out) = watch(pid, PHASE + Duration::from_secs(4));
    let mut b = Read::default();
    let mut line = String::new();
    while b.calls < 1000 {
        line.clear();
        assert!(out.read_line(&mut line).unwrap() > 0, "the stream ended early: {b:?}");
        b.line(line.trim_end());
    }
    signal(client.0.id(), libc::SIGSTOP);
    let t_stop = now_ms();
    let reader = std::thread::spawn(move || {
        let mut line = String::new();
        while out.read_line(&mut line).unwrap_or(0) > 0 {
            b.line(line.trim_end());
            line.clear();
        }
        b
    });
    std::thread::sleep(Duration::from_secs(3));
    let info = json(&["observations", "--pid", &pid.to_string(), "-o", "json"]);
    let dropped_stalled = info[0]["dropped"].as_u64().unwrap_or(0);
    std::thread::sleep(Duration::from_secs(2));
    let (stalled, n) = median(&jvm.rates, t_stop + 1000, now_ms());
    signal(client.0.id(), libc::SIGCONT);
    let mut client = client;
    let status = client.0.wait().unwrap();
    let b = reader.join().unwrap();
    observations_end(pid);
    stop.store(true, Ordering::Relaxed);
    sampler.join().unwrap();
    let max_rss = rss.lock().unwrap().iter().filter(|(at, _)| *at >= t_a).map(|r| r.1).max().unwrap_or(0);

    eprintln!(
        "throughput (calls/s, median): unobserved {none}, reading client {reading}, stalled client {stalled} ({n} readings)"
    );
    eprintln!("reading client: {} calls in {span:.1} s = {per_second:.0}/s; last: {}", a.calls, a.last);
    eprintln!("stalled client: {} calls, dropped while stalled {dropped_stalled}, last: {}", b.calls, b.last);
    eprintln!("RSS: {} MiB before the observations, {} MiB at most", base / 1024, max_rss / 1024);

    assert!(per_second >= MIN_READ, "the reading client got {per_second:.0} events/s (< {MIN_READ})");
    assert!(
        stalled as f64 >= 0.8 * none as f64,
        "with a stalled client the program made {stalled} calls/s, unobserved {none}"
    );
    assert!(dropped_stalled > 0, "the agent counts what it drops while the client is stalled: {info}");
    assert!(status.success(), "the stalled client failed once resumed: {b:?}");
    assert!(b.last.contains("\"ended\""), "{}", b.last);
    assert!(dropped(&b.last) >= dropped_stalled, "the stream's end says what was dropped: {}", b.last);
    assert!(b.max_dropped > 0, "calls reported after the client resumed carry the count of dropped ones: {b:?}");
    assert!(
        max_rss.saturating_sub(base) < MAX_GROWTH_KIB,
        "RSS grew from {base} KiB to {max_rss} KiB during the observations"
    );
    drop(jvm);
}

/// `repairctl stop`, and then `--for`, under a client that has stopped reading (its stream backed
/// up, so the stream is not polled): the probes go at once (within a second of --for), and the
/// client, once it reads again, gets the end.
#[test]
fn stop_and_for_roll_back_under_a_client_that_does_not_read() {
    let dir = TempDir::new("observe-stop-stalled");
    let jvm = start(&dir);
    let pid = jvm.pid.to_string();
    let code = || json(&["code", "Work", "step", "--pid", &pid, "-o", "json"])[0]["sha256"].clone();
    let before = code();
    let (client, mut out) = watch(jvm.pid, Duration::from_secs(60));
    let mut line = String::new();
    for _ in 0..1000 {
        line.clear();
        assert!(out.read_line(&mut line).unwrap() > 0, "the stream ended early");
    }
    signal(client.0.id(), libc::SIGSTOP);
    // Once the transport's buffers are full, the agent drops what it cannot queue.
    let list = within(Duration::from_secs(20), "the stream backs up", || {
        let list = json(&["observations", "--pid", &pid, "-o", "json"]);
        (list[0]["dropped"].as_u64().unwrap_or(0) > 0).then_some(list)
    });
    let id = list[0]["id"].as_u64().expect("the observation is listed").to_string();
    let stopped = Command::new(env!("CARGO_BIN_EXE_repairctl")).args(["stop", &id, "--pid", &pid]).output().unwrap();
    assert!(stopped.status.success(), "{}", String::from_utf8_lossy(&stopped.stderr));
    assert_eq!(json(&["observations", "--pid", &pid, "-o", "json"]), serde_json::json!([]), "stopped: not listed");
    assert_eq!(code(), before, "the probes are gone while the client still does not read");
    signal(client.0.id(), libc::SIGCONT);
    let mut last = String::new();
    for l in out.lines() {
        last = l.unwrap();
    }
    assert!(last.contains("\"ended\"") && last.contains("stopped by"), "{last}");

    // The same for an end by --for: the probes go within a second of it.
    let (client, mut out) = watch(jvm.pid, Duration::from_secs(2));
    for _ in 0..1000 {
        line.clear();
        assert!(out.read_line(&mut line).unwrap() > 0, "the stream ended early");
    }
    signal(client.0.id(), libc::SIGSTOP);
    within(Duration::from_secs(15), "--for: the observation ends while its client does not read", || {
        (json(&["observations", "--pid", &pid, "-o", "json"]) == serde_json::json!([])).then_some(())
    });
    assert_eq!(code(), before, "--for: the probes are gone while the client still does not read");
    signal(client.0.id(), libc::SIGCONT);
    for l in out.lines() {
        last = l.unwrap();
    }
    assert!(last.contains("\"ended\"") && last.contains("--for"), "{last}");
    drop(jvm);
}
