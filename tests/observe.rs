//! Observations on a real JVM: `repairctl watch` streams each call (arguments, return value,
//! exception, duration, thread), honours conditions, sampling, -n and --for; `monitor` streams
//! per-interval statistics; the probes go away when the stream ends, also when the client is
//! killed, and a patch applied meanwhile stays; bad input is one clear error and changes nothing.

mod agent_support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use agent_support::{agentpath, compile, default_jdk, repairctl_json as json, within, Service, TempDir};

const SERVICE: &str = r#"
import java.io.*;
import java.util.*;
public class Obs {
    public static void main(String[] a) throws Exception {
        Shop shop = new Shop();
        Thread load = new Thread(() -> {
            for (int seq = 1; ; seq++) {
                try { Prices.price(seq % 4 == 0 ? "pear" : "apple", seq); } catch (RuntimeException e) { }
                shop.total(new Order(seq % 5, "a", "b"));
                shop.discount(new Order(seq % 5, "a", "b"), 10);
                shop.checkout(new Order(2, "a"));
                Kinds.mix(seq % 2 == 0, 'x', (short) 7, (byte) -3, 1.5f, 2.25, seq * 1000000000L, seq % 3 == 0 ? "text" : (Object) 5);
                Kinds.mix(seq, "t");
                Kinds.pack('y', 1.5f, seq % 2 == 0, seq, "s");
                try { Thread.sleep(1); } catch (InterruptedException e) { return; }
            }
        }, "load");
        load.setDaemon(true);
        load.start();
        System.out.println("READY " + ProcessHandle.current().pid());
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in));
        for (String l; (l = in.readLine()) != null; ) {
            String p;
            try { p = String.valueOf(Prices.price("pear", -1)); } catch (NullPointerException e) { p = "NPE"; }
            System.out.println("STATE price=" + p);
        }
    }
}
class Order {
    final java.util.List<String> items = new java.util.ArrayList<>();
    final int qty;
    Order(int qty, String... items) { this.qty = qty; this.items.addAll(java.util.Arrays.asList(items)); }
}
class Shop {
    long base = 10;
    long total(Order o) { return base + o.qty * 2L; }
    long unit(String item) {
        if (item.equals("pear")) throw new IllegalStateException("no pears");
        return 2;
    }
    long checkout(Order o) {
        long sum = total(o); //@total
        for (int i = 0; i < 3; i++) { sum += unit("apple"); } //@loop
        try { unit("pear"); } catch (IllegalStateException e) { sum--; } //@pear
        return sum;
    }
    long discount(Order o, int pct) {
        long gross = total(o);
        long cut = gross * pct / 100; //@cut
        return gross - cut;
    }
}
class Kinds {
    static String mix(boolean z, char c, short s, byte b, float f, double d, long j, Object o) { return z ? "yes" : "no"; }
    static int mix(int i, String t) { return i % 7; }
    static double pack(char c, float f, boolean z, long j, String s) { return f * 1.5; }
    static float pack(long j) { return j; }
}
class Prices {
    static final Map<String, Long> prices = new HashMap<>(Map.of("apple", 3L));
    static long price(String item, int seq) { return prices.get(item).longValue(); }
}
"#;

fn start(tag: &str) -> (TempDir, Service) {
    let jdk = default_jdk();
    let dir = TempDir::new(tag);
    compile(&jdk, &dir.0, &[("Obs.java", SERVICE)]);
    let mut c = Command::new(jdk.java());
    c.arg(agentpath(&format!("state={}", dir.0.join("state").display()))).arg("-cp").arg(&dir.0).arg("Obs");
    let svc = Service::start(c);
    (dir, svc)
}

/// Runs `repairctl ARGS -o json` to its end (at most 30 s, its output read as it comes): one
/// JSON object a line.
fn stream(args: &[&str]) -> Vec<serde_json::Value> {
    let child = Command::new(env!("CARGO_BIN_EXE_repairctl"))
        .args(args)
        .args(["-o", "json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let out = match rx.recv_timeout(Duration::from_secs(30)) {
        Ok(out) => out.unwrap(),
        Err(_) => {
            let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
            panic!("repairctl {args:?} did not end within 30 s");
        }
    };
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "repairctl {args:?}: {stderr}");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect()
}

fn repairctl(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_repairctl")).args(args).output().unwrap();
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

/// SHA-256 of the bytecode the JVM runs now for `class.method` (JVMTI GetBytecodes).
fn running(pid: &str, class: &str, method: &str) -> String {
    let v = json(&["code", class, method, "--pid", pid, "-o", "json"]);
    v[0]["sha256"].as_str().unwrap().to_string()
}

fn calls(lines: &[serde_json::Value]) -> Vec<&serde_json::Value> {
    lines.iter().filter(|l| l.get("args").is_some()).collect()
}

/// No observation in progress: checked right away, for a stream that ended by itself ends only
/// once its probes are rolled back.
fn observations_end(pid: &str) {
    let list = json(&["observations", "--pid", pid, "-o", "json"]);
    assert_eq!(list, serde_json::json!([]), "the observation outlived its stream");
}

/// No observation in progress, within 10 s: the agent learns that a client went away only when
/// its connection's end reaches it.
fn observations_end_after_the_client_went_away(pid: &str) {
    within(Duration::from_secs(10), "the observation outlived its client", || {
        json(&["observations", "--pid", pid, "-o", "json"]).as_array().unwrap().is_empty().then_some(())
    });
}

#[test]
fn watch_streams_each_call_with_its_arguments_return_value_exception_and_duration() {
    let (_dir, mut svc) = start("watch");
    let pid = svc.pid.to_string();
    let before = running(&pid, "Prices", "price");
    let lines = stream(&["watch", "Prices", "price", "-n", "8", "--pid", &pid]);
    let seen = calls(&lines);
    assert_eq!(seen.len(), 8, "{lines:?}");
    assert!(lines.last().unwrap()["ended"].as_str().unwrap().contains("8 reports"), "{lines:?}");
    for c in &seen {
        let args = c["args"].as_array().unwrap();
        assert_eq!(args.len(), 2, "{c}");
        assert_eq!(c["thread"], "load");
        assert_eq!(c["method"], "Prices.price");
        assert!(c["duration_ns"].as_u64().unwrap() > 0, "{c}");
        match args[0].as_str().unwrap() {
            "\"apple\"" => assert_eq!((c["returned"].as_str(), c["thrown"].as_str()), (Some("3"), Some("")), "{c}"),
            "\"pear\"" => {
                assert_eq!(c["returned"], "");
                assert!(c["thrown"].as_str().unwrap().starts_with("java.lang.NullPointerException"), "{c}");
            }
            other => panic!("unexpected argument {other}: {c}"),
        }
    }
    // Calls are reported in order: their sequence numbers and start times grow.
    let seqs: Vec<u64> = seen.iter().map(|c| c["args"][1].as_str().unwrap().parse().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    let starts: Vec<u64> = seen.iter().map(|c| c["start_ms"].as_u64().unwrap()).collect();
    assert!(starts.windows(2).all(|w| w[0] <= w[1]), "{starts:?}");
    observations_end(&pid);

    // A condition, and sampling: only pears, one call in 3 of those the condition lets through.
    let lines = stream(&[
        "watch",
        "Prices",
        "price",
        "--if",
        "args[0] == \"pear\" && exception ~ \"NullPointer\"",
        "-n",
        "4",
        "--pid",
        &pid,
    ]);
    let seen = calls(&lines);
    assert_eq!(seen.len(), 4);
    assert!(seen.iter().all(|c| c["args"][0] == "\"pear\""), "{lines:?}");
    let lines = stream(&["watch", "Prices", "price", "--sample", "10", "-n", "4", "--pid", &pid]);
    let seqs: Vec<u64> = calls(&lines).iter().map(|c| c["args"][1].as_str().unwrap().parse().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[1] - w[0] == 10), "one call in 10 of a single caller: {seqs:?}");

    // --for ends it by itself.
    let started = Instant::now();
    let lines = stream(&["watch", "Prices", "price", "--for", "700ms", "--if", "duration > 10s", "--pid", &pid]);
    assert!(started.elapsed() >= Duration::from_millis(700));
    assert_eq!(calls(&lines).len(), 0);
    assert!(lines.last().unwrap()["ended"].as_str().unwrap().contains("--for"), "{lines:?}");
    observations_end(&pid);
    assert!(svc.state().contains("price=NPE"), "the program is as it was");
    assert_eq!(running(&pid, "Prices", "price"), before, "the method runs the bytecode it ran before");
    svc.finish();
}

/// Every plain kind of argument and return value reads as its value: with one overload watched
/// (each read as its declared type says) and with both (the kinds differ at each position, so
/// each value's kind is asked of the JVM).
#[test]
fn watch_reads_every_primitive_string_and_boxed_value_by_its_kind() {
    let (_dir, svc) = start("watch-kinds");
    let pid = svc.pid.to_string();
    let one = "mix(ZCSBFDJLjava/lang/Object;)Ljava/lang/String;";
    for (method, n) in [(one, 6), ("mi*", 12)] {
        let lines = stream(&["watch", "Kinds", method, "-n", &n.to_string(), "--pid", &pid]);
        let seen = calls(&lines);
        assert_eq!(seen.len(), n, "{lines:?}");
        let mut kinds = std::collections::BTreeSet::new();
        for c in &seen {
            let args: Vec<&str> = c["args"].as_array().unwrap().iter().map(|a| a.as_str().unwrap()).collect();
            let returned = c["returned"].as_str().unwrap();
            if args.len() == 2 {
                let i: i64 = args[0].parse().unwrap_or_else(|e| panic!("{c}: {e}"));
                assert_eq!((args[1], returned), ("\"t\"", (i % 7).to_string().as_str()), "{c}");
                kinds.insert("int");
                continue;
            }
            assert_eq!(args.len(), 8, "{c}");
            assert_eq!(&args[1..6], ["\"x\"", "7", "-3", "1.5", "2.25"], "{c}");
            let j: i64 = args[6].parse().unwrap_or_else(|e| panic!("{c}: {e}"));
            assert_eq!(j % 1_000_000_000, 0, "{c}");
            let seq = j / 1_000_000_000;
            assert_eq!(args[0], if seq % 2 == 0 { "true" } else { "false" }, "{c}");
            assert_eq!(returned, if seq % 2 == 0 { "\"yes\"" } else { "\"no\"" }, "{c}");
            assert_eq!(args[7], if seq % 3 == 0 { "\"text\"" } else { "5" }, "{c}");
            kinds.insert("all");
        }
        let expected: &[&str] = if method == one { &["all"] } else { &["all", "int"] };
        assert_eq!(kinds.iter().copied().collect::<Vec<_>>(), expected, "{lines:?}");
        observations_end(&pid);
    }
    // Four primitives and no more: passed to the agent unboxed (`hooks::ENTER_PACKED`), each
    // type read back as its box would be; a primitive return value likewise.
    let lines =
        stream(&["watch", "Kinds", "pack(CFZJLjava/lang/String;)D", "-n", "4", "--if", "args[3] > 1", "--pid", &pid]);
    let seen = calls(&lines);
    assert_eq!(seen.len(), 4, "{lines:?}");
    for c in &seen {
        let args: Vec<&str> = c["args"].as_array().unwrap().iter().map(|a| a.as_str().unwrap()).collect();
        let seq: i64 = args[3].parse().unwrap_or_else(|e| panic!("{c}: {e}"));
        assert!(seq > 1, "the condition over a packed argument: {c}");
        let z = if seq % 2 == 0 { "true" } else { "false" };
        assert_eq!(args, ["\"y\"", "1.5", z, &seq.to_string(), "\"s\""], "{c}");
        assert_eq!(c["returned"], "2.25", "{c}");
    }
    observations_end(&pid);
    svc.finish();
}

#[test]
fn monitor_streams_calls_failures_and_durations_per_interval() {
    let (_dir, svc) = start("monitor");
    let pid = svc.pid.to_string();
    let lines = stream(&["monitor", "Prices", "price", "--every", "500ms", "-n", "2", "--pid", &pid]);
    let windows: Vec<&serde_json::Value> = lines.iter().filter(|l| l.get("calls").is_some()).collect();
    assert_eq!(windows.len(), 2, "{lines:?}");
    for w in windows {
        let calls = w["calls"].as_u64().unwrap();
        let failures = w["failures"].as_u64().unwrap();
        assert!(calls > 20, "a call every ms or so: {w}");
        assert!(failures > 0 && failures < calls, "one pear in four throws: {w}");
        let (p50, p99, max) =
            (w["p50_ms"].as_f64().unwrap(), w["p99_ms"].as_f64().unwrap(), w["max_ms"].as_f64().unwrap());
        assert!(0.0 < p50 && p50 <= p99 && p99 <= max, "{w}");
    }
    observations_end(&pid);
    svc.finish();
}

/// `repairctl watch Prices price -o json` running, once it has printed its first call: the child
/// and the rest of its output.
fn watching_prices(pid: &str) -> (std::process::Child, BufReader<std::process::ChildStdout>) {
    let mut watch = Command::new(env!("CARGO_BIN_EXE_repairctl"))
        .args(["watch", "Prices", "price", "--pid", pid, "-o", "json"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(watch.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert!(line.contains("\"args\""), "{line}");
    (watch, out)
}

#[test]
fn a_killed_client_ends_its_observation_and_a_patch_applied_meanwhile_stays() {
    let (dir, mut svc) = start("observe-kill");
    let pid = svc.pid.to_string();
    let before = running(&pid, "Prices", "price");
    let (mut watch, _out) = watching_prices(&pid);
    assert_ne!(running(&pid, "Prices", "price"), before, "watched, the method runs probes");
    let list = json(&["observations", "--pid", &pid, "-o", "json"]);
    assert_eq!(list[0]["target"], "Prices.price", "{list}");
    assert_eq!(json(&["patches", "--pid", &pid, "-o", "json"]), serde_json::json!([]), "observations are not patches");

    // A repair of the same method while it is watched.
    let spec = dir.0.join("guard.yaml");
    std::fs::write(&spec, "id: pear\ntarget: { class: Prices, method: price }\naction:\n  guard: { catch: [java.lang.NullPointerException], fallback: { value: -1 } }\n").unwrap();
    let (ok, text) = repairctl(&["apply", spec.to_str().unwrap(), "--pid", &pid]);
    assert!(ok, "{text}");
    assert!(svc.state().contains("price=-1"));

    watch.kill().unwrap();
    watch.wait().unwrap();
    observations_end_after_the_client_went_away(&pid);
    assert!(svc.state().contains("price=-1"), "the guard outlives the observation");
    let events = json(&["events", "--pid", &pid, "-o", "json"]);
    assert!(
        events.as_array().unwrap().iter().any(|e| e["reason"].as_str().is_some_and(|r| r.contains("is as it was"))),
        "{events}"
    );
    let (ok, text) = repairctl(&["rollback", "pear", "--pid", &pid]);
    assert!(ok, "{text}");
    assert!(svc.state().contains("price=NPE"));
    assert_eq!(running(&pid, "Prices", "price"), before, "byte for byte what it ran before the watch");
    svc.finish();
}

#[test]
fn stop_ends_an_observation_whose_stream_says_so_and_an_unknown_id_is_refused() {
    let (_dir, svc) = start("observe-stop");
    let pid = svc.pid.to_string();
    let before = running(&pid, "Prices", "price");
    let (mut watch, out) = watching_prices(&pid);
    let list = json(&["observations", "--pid", &pid, "-o", "json"]);
    let id = list[0]["id"].as_u64().unwrap().to_string();

    let (ok, text) = repairctl(&["stop", "999", "--pid", &pid]);
    assert!(!ok && text.contains("no observation 999 in progress") && text.contains(&id), "{text}");
    assert_eq!(json(&["observations", "--pid", &pid, "-o", "json"])[0]["id"].as_u64(), list[0]["id"].as_u64());

    // The watching client does not read meanwhile (stopped): `stop` rolls back all the same, and
    // returns once it is done.
    let signal =
        |sig: &str| assert!(Command::new("kill").args([sig, &watch.id().to_string()]).status().unwrap().success());
    signal("-STOP");
    let (ok, text) = repairctl(&["stop", &id, "--pid", &pid]);
    assert!(ok && text.contains(&id), "{text}");
    observations_end(&pid);
    assert_eq!(running(&pid, "Prices", "price"), before, "byte for byte what it ran before the watch");
    signal("-CONT");
    // The watch ends by itself (no kill), its last line saying who ended it.
    let rest: Vec<serde_json::Value> =
        out.lines().map(|l| serde_json::from_str(&l.unwrap()).unwrap()).collect::<Vec<_>>();
    let ended = rest.last().and_then(|l| l["ended"].as_str()).unwrap_or_default();
    assert!(ended.contains("stopped by"), "{rest:?}");
    assert!(watch.wait().unwrap().success(), "a stopped watch is not an error");
    svc.finish();
}

#[test]
fn bad_input_is_one_clear_error_and_changes_nothing() {
    let (_dir, mut svc) = start("observe-bad");
    let pid = svc.pid.to_string();
    let cases: [(&[&str], &str); 5] = [
        (&["watch", "NoSuch", "price"], "class NoSuch is not loaded"),
        (&["watch", "Prices", "cost"], "class Prices has no method cost (it has:"),
        (&["watch", "Prices", "price", "--if", "args[0] = 1"], "no comparison"),
        (&["watch", "Prices", "price", "--if", "args[2] == 1"], "args[2]: the method takes 2 arguments"),
        (&["watch", "Prices", "price", "--if", "duration > soon"], "is not a duration"),
    ];
    for (args, needle) in cases {
        let (ok, text) = repairctl(&[args, &["--pid", &pid]].concat());
        assert!(!ok, "{args:?}: {text}");
        assert!(text.contains(needle), "{args:?}: expected {needle:?} in {text}");
        assert_eq!(text.lines().filter(|l| l.starts_with("repairctl: error")).count(), 1, "{text}");
    }
    assert_eq!(json(&["observations", "--pid", &pid, "-o", "json"]), serde_json::json!([]));
    assert!(svc.state().contains("price=NPE"));
    svc.finish();
}

#[test]
fn stack_counts_the_distinct_call_paths_that_reach_a_method() {
    let (_dir, mut svc) = start("observe-stack");
    let pid = svc.pid.to_string();
    let child = Command::new(env!("CARGO_BIN_EXE_repairctl"))
        .args(["stack", "Prices", "price", "--every", "300ms", "--for", "1500ms", "--pid", &pid, "-o", "json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    assert!(svc.state().contains("price=NPE"), "the main thread's call, by another path");
    let run = agent_support::finish(child, Duration::from_secs(30));
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let lines: Vec<serde_json::Value> = run.stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    // The last count of each path.
    let mut paths: std::collections::HashMap<Vec<String>, u64> = std::collections::HashMap::new();
    for l in lines.iter().filter(|l| l.get("frames").is_some()) {
        let frames: Vec<String> =
            l["frames"].as_array().unwrap().iter().map(|f| f.as_str().unwrap().to_string()).collect();
        paths.insert(frames, l["count"].as_u64().unwrap());
    }
    assert_eq!(paths.len(), 2, "the load thread's path and main's: {lines:?}");
    for (frames, count) in &paths {
        assert!(frames[0].starts_with("Prices.price:"), "{frames:?}");
        assert!(!frames.iter().any(|f| f.contains("repair.rt")), "no agent frames: {frames:?}");
        assert!(*count >= 1);
    }
    let from = |caller: &str| paths.iter().find(|(f, _)| f[1].starts_with(caller)).map(|(_, n)| *n);
    assert_eq!(from("Obs.main:"), Some(1), "{paths:?}");
    assert!(from("Obs.lambda$main$0:").is_some_and(|n| n > 100), "{paths:?}");
    assert!(lines.last().unwrap()["ended"].as_str().unwrap().contains("--for"));
    observations_end(&pid);
    svc.finish();
}

#[test]
fn watch_reads_field_paths_expands_objects_and_captures_this() {
    let (_dir, svc) = start("observe-fields");
    let pid = svc.pid.to_string();
    let lines = stream(&[
        "watch",
        "Shop",
        "total",
        "--show",
        "args[0].qty,args[0].items.size,this.base",
        "--if",
        "args[0].qty >= 3",
        "-n",
        "5",
        "--pid",
        &pid,
    ]);
    let seen = calls(&lines);
    assert_eq!(seen.len(), 5, "{lines:?}");
    for c in &seen {
        let qty: f64 = c["values"]["args[0].qty"].as_str().unwrap().parse().unwrap();
        assert!(qty >= 3.0, "the condition on a field holds: {c}");
        assert_eq!(c["values"]["args[0].items.size"], "2", "ArrayList's size field: {c}");
        assert_eq!(c["values"]["this.base"], "10", "{c}");
        assert_eq!(c["returned"].as_str().unwrap(), (10.0 + 2.0 * qty).to_string(), "{c}");
        assert!(c["args"][0].as_str().unwrap().starts_with("<Order>") || c["args"][0] == "Order", "{c}");
    }
    let lines = stream(&["watch", "Shop", "total", "-x", "1", "--this", "-n", "1", "--pid", &pid]);
    let c = calls(&lines)[0].clone();
    let order = c["args"][0].as_str().unwrap();
    assert!(order.starts_with("Order{items=<java.util.ArrayList>, qty="), "{c}");
    assert!(c["this"].as_str().unwrap().starts_with("Shop{base=10"), "{c}");

    for (args, needle) in [
        (vec!["--show", "args[0].qtty"], "args[0].qtty: Order has no field qtty (its fields: items, qty)"),
        (vec!["--if", "args[0].qty.x == 1"], "args[0].qty is of type int: it has no field x"),
        (vec!["--show", "this.nothing"], "this.nothing: Shop has no field nothing (its fields: base)"),
    ] {
        let (ok, text) = repairctl(&[&["watch", "Shop", "total", "--pid", &pid][..], &args].concat());
        assert!(!ok && text.contains(needle), "{args:?}: expected {needle:?} in {text}");
    }
    observations_end(&pid);
    svc.finish();
}

/// The line of SERVICE holding `marker`, 1-based.
fn line_of(marker: &str) -> usize {
    SERVICE.lines().position(|l| l.contains(marker)).unwrap() + 1
}

#[test]
fn snapshot_and_log_capture_the_locals_at_a_line() {
    let (_dir, svc) = start("observe-snapshot");
    let pid = svc.pid.to_string();
    let at = format!("Shop:{}", line_of("//@cut"));
    let lines = stream(&["snapshot", &at, "-n", "2", "--pid", &pid]);
    let shots: Vec<&serde_json::Value> = lines.iter().filter(|l| l.get("locals").is_some()).collect();
    assert_eq!(shots.len(), 2, "{lines:?}");
    for s in &shots {
        let locals: Vec<(&str, &str, &str)> = s["locals"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| (l["name"].as_str().unwrap(), l["type"].as_str().unwrap(), l["value"].as_str().unwrap()))
            .collect();
        let names: Vec<&str> = locals.iter().map(|l| l.0).collect();
        assert_eq!(names, ["this", "o", "pct", "gross"], "{s}");
        assert_eq!(locals[2], ("pct", "int", "10"), "{s}");
        let qty: u64 = locals[1].2.split("qty=").nth(1).unwrap().trim_end_matches('}').parse().unwrap();
        assert_eq!(locals[3].2, (10 + 2 * qty).to_string(), "gross: {s}");
        assert!(locals[0].2.starts_with("Shop{base=10"), "this's fields: {s}");
        assert_eq!(s["thread"], "load");
        let stack: Vec<&str> = s["stack"].as_array().unwrap().iter().map(|f| f.as_str().unwrap()).collect();
        assert!(stack[0].starts_with("Shop.discount:"), "{stack:?}");
        assert!(stack[1].starts_with("Obs.lambda$main$0:"), "{stack:?}");
    }
    let lines = stream(&["log", &at, "gross {gross} for {o.qty} items at {pct}%", "-n", "3", "--pid", &pid]);
    let logs: Vec<&str> = lines.iter().filter_map(|l| l["log"].as_str()).collect();
    assert_eq!(logs.len(), 3, "{lines:?}");
    for l in logs {
        let words: Vec<&str> = l.split(' ').collect();
        let (gross, qty): (u64, u64) = (words[1].parse().unwrap(), words[3].parse().unwrap());
        assert_eq!(gross, 10 + 2 * qty, "{l}");
        assert!(l.ends_with("items at 10%"), "{l}");
    }
    for (args, needle) in [
        (vec!["snapshot".to_string(), format!("Shop:{}", line_of("//@cut") + 2)], "has no code"),
        (vec!["log".to_string(), at.clone(), "x {foo}".to_string()], "no local foo"),
        (vec!["snapshot".to_string(), "Shop:x".to_string()], "is not a line number"),
    ] {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (ok, text) = repairctl(&[&args[..], &["--pid", &pid]].concat());
        assert!(!ok && text.contains(needle), "{args:?}: expected {needle:?} in {text}");
    }
    observations_end(&pid);
    svc.finish();
}

#[test]
fn trace_shows_each_call_as_the_calls_it_made_with_their_times() {
    let (_dir, svc) = start("observe-trace");
    let pid = svc.pid.to_string();
    let lines = stream(&["trace", "Shop", "checkout", "-n", "3", "--pid", &pid]);
    let trees: Vec<&serde_json::Value> = lines.iter().filter(|l| l.get("calls").is_some()).collect();
    assert_eq!(trees.len(), 3, "{lines:?}");
    for t in trees {
        let calls: Vec<(&str, u64, bool)> = t["calls"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| (c["site"].as_str().unwrap(), c["count"].as_u64().unwrap(), c["threw"].as_bool().unwrap()))
            .collect();
        let site = |m: &str, marker: &str| format!("Shop.{m}:{}", line_of(marker));
        assert_eq!(
            calls,
            [
                (site("total", "//@total").as_str(), 1, false),
                (site("unit", "//@loop").as_str(), 3, false),
                (site("unit", "//@pear").as_str(), 1, true)
            ],
            "{t}"
        );
        let inner: u64 = t["calls"].as_array().unwrap().iter().map(|c| c["total_ns"].as_u64().unwrap()).sum();
        assert!(t["duration_ns"].as_u64().unwrap() >= inner, "the calls fit in the call: {t}");
        assert_eq!(t["thrown"], "", "checkout itself returns: {t}");
    }
    let lines = stream(&["trace", "Shop", "checkout", "--min", "10s", "--for", "600ms", "--pid", &pid]);
    assert!(lines.iter().all(|l| l.get("calls").is_none()), "none as slow as 10 s: {lines:?}");
    // Two levels: the application methods the calls reach are traced inside them.
    let lines = stream(&["trace", "Shop", "checkout", "--depth", "2", "-n", "2", "--pid", &pid]);
    let trees: Vec<&serde_json::Value> = lines.iter().filter(|l| l.get("calls").is_some()).collect();
    assert_eq!(trees.len(), 2, "{lines:?}");
    for t in trees {
        let calls = t["calls"].as_array().unwrap();
        assert_eq!(calls[0]["calls"], serde_json::json!([]), "Shop.total makes no calls: {t}");
        let inside = |c: &serde_json::Value| c["calls"].as_array().unwrap().clone();
        let looped = inside(&calls[1]);
        assert_eq!((looped[0]["site"].as_str(), looped[0]["count"].as_u64()), (Some("Shop.unit"), Some(3)), "{t}");
        assert!(inside(&looped[0]).iter().any(|c| c["site"].as_str().unwrap().starts_with("String.equals")), "{t}");
        let pear = inside(&calls[2]);
        assert_eq!((pear[0]["site"].as_str(), pear[0]["threw"].as_bool()), (Some("Shop.unit"), Some(true)), "{t}");
        assert!(
            inside(&pear[0]).iter().any(|c| c["site"].as_str().unwrap().starts_with("IllegalStateException.<init>")),
            "{t}"
        );
        assert!(calls[2]["threw"].as_bool().unwrap(), "{t}");
    }
    let (ok, text) = repairctl(&["trace", "Shop", "checkout", "--depth", "9", "--pid", &pid]);
    assert!(!ok && text.contains("9 is not in 1..=4"), "{text}");
    observations_end(&pid);
    svc.finish();
}

#[test]
fn globs_watch_several_methods_of_several_classes_at_once() {
    let (_dir, svc) = start("observe-globs");
    let pid = svc.pid.to_string();
    let lines = stream(&["watch", "Sh*", "*o*", "-n", "40", "--pid", &pid]);
    let methods: std::collections::BTreeSet<String> =
        calls(&lines).iter().map(|c| c["method"].as_str().unwrap().split('(').next().unwrap().to_string()).collect();
    assert!(methods.len() >= 2, "{methods:?}");
    assert!(
        methods.iter().all(|m| ["Shop.total", "Shop.checkout", "Shop.discount"].contains(&m.as_str())),
        "{methods:?}"
    );
    observations_end(&pid);
    let (ok, text) = repairctl(&["watch", "Sh*", "zz*", "--pid", &pid]);
    assert!(!ok && text.contains("no method matching zz*"), "{text}");
    let (ok, text) = repairctl(&["trace", "Sh*", "total", "--pid", &pid]);
    assert!(!ok && text.contains("trace, snapshot and log take one"), "{text}");
    svc.finish();
}

#[test]
fn quotas_on_reports_bytes_and_agent_cpu_sample_down_and_say_so() {
    let (_dir, svc) = start("observe-quota");
    let pid = svc.pid.to_string();
    for (quota, says) in [
        (vec!["--max-kib", "1"], "KiB captured a second"),
        (vec!["--max-per-second", "50"], "more than 50 reports a second"),
        (vec!["--max-cpu-ms", "1", "-x", "3"], "ms of the agent's CPU a second"),
    ] {
        let mut args = vec!["watch", "Shop", "total", "--for", "2500ms", "--pid", &pid];
        args.extend(quota.iter().copied());
        let lines = stream(&args);
        let notices: Vec<&str> = lines.iter().filter_map(|l| l["notice"].as_str()).collect();
        assert!(notices.iter().any(|n| n.contains(says) && n.contains("now one call in")), "{quota:?}: {notices:?}");
        observations_end(&pid);
    }
    svc.finish();
}
