//! Repair strategies beyond "return the default here", each on a real JVM with the real
//! librepair.so: applied live with `repairctl`, rolled back, refused on bad input, and chosen by a
//! policy rule whose validation holds.
//!
//! `recursion_*`: a recursion guard (`action: recursion: { depth, fallback }`) makes a method
//! that recurses without end return its fallback past a depth, per thread, while shallower calls
//! keep their answers.

mod agent_support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use agent_support::{agentpath, compile, default_jdk, repairctl, repairctl_json, Service, TempDir};

/// `Depth.depth(n)` recurses `n` deep and returns `n`; for a negative `n` it recurses without end.
/// Four workers call `depth(150)` all along and count wrong answers: the guard's depth is per
/// thread, so their calls never add up to another thread's. `calc N` answers `VALUE <depth(N)>` or
/// `VALUE SOE`; `state` answers `STATE wrong=W calls=C`.
const DEPTH: &str = r#"
import java.io.*;
import java.util.concurrent.atomic.AtomicLong;
public class Depth {
    static final AtomicLong wrong = new AtomicLong(), calls = new AtomicLong();
    static int depth(int n) { return n == 0 ? 0 : 1 + depth(n > 0 ? n - 1 : n); }
    public static void main(String[] a) throws Exception {
        for (int t = 0; t < 4; t++) {
            Thread w = new Thread(() -> {
                while (true) {
                    if (depth(150) != 150) wrong.incrementAndGet();
                    calls.incrementAndGet();
                    try { Thread.sleep(1); } catch (InterruptedException e) { return; }
                }
            });
            w.setDaemon(true);
            w.start();
        }
        System.out.println("READY " + ProcessHandle.current().pid());
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in));
        for (String line; (line = in.readLine()) != null; ) {
            if (line.startsWith("calc ")) {
                String v;
                try { v = String.valueOf(depth(Integer.parseInt(line.substring(5)))); }
                catch (StackOverflowError e) { v = "SOE"; }
                System.out.println("VALUE " + v);
            } else {
                long c = calls.get();
                Thread.sleep(100);
                System.out.println("STATE wrong=" + wrong.get() + " calls=" + (calls.get() - c));
            }
        }
    }
}
"#;

/// Past 200 calls open on a thread, `depth` returns -1000 at once.
const GUARD_SPEC: &str = "id: depth-guard\ntarget: { class: Depth, method: \"depth(I)I\" }\naction:\n  recursion: { depth: 200, fallback: { value: -1000 } }\n";

fn start_depth(jdk: &agent_support::Jdk, dir: &Path) -> Service {
    let mut command = Command::new(jdk.java());
    command.env("XDG_STATE_HOME", dir.join("state")).arg(agentpath("")).arg("-cp").arg(dir).arg("Depth");
    Service::start(command)
}

fn calc(jvm: &mut Service, n: i32) -> String {
    let answer = jvm.send(&format!("calc {n}"));
    answer.strip_prefix("VALUE ").unwrap_or_else(|| panic!("calc {n}: {answer}")).to_string()
}

/// `repairctl patches` as JSON: the patches in effect.
fn patches(pid: &str) -> Vec<serde_json::Value> {
    repairctl_json(&["patches", "--pid", pid, "-o", "json"]).as_array().cloned().unwrap_or_default()
}

/// The workers' state: calls served meanwhile, and every answer of theirs right so far.
fn assert_workers_right(jvm: &mut Service, when: &str) {
    let s = jvm.state();
    assert!(s.contains("wrong=0 ") && !s.ends_with("calls=0"), "{when}: {s}");
}

#[test]
fn recursion_guard_applied_live_returns_the_fallback_past_its_depth_and_rolls_back() {
    let jdk = default_jdk();
    let dir = TempDir::new("recursion-live");
    compile(&jdk, &dir.0, &[("Depth.java", DEPTH)]);
    let mut jvm = start_depth(&jdk, &dir.0);
    let pid = jvm.pid.to_string();
    assert_eq!(calc(&mut jvm, -1), "SOE", "unbounded before the patch");
    assert_eq!(calc(&mut jvm, 200), "200");

    let spec = dir.0.join("guard.yaml");
    std::fs::write(&spec, GUARD_SPEC).unwrap();
    let (ok, out, err) = repairctl(&["apply", &spec.display().to_string(), "--pid", &pid]);
    assert!(ok && out.starts_with("applied "), "apply: {out}{err}");
    // 200 calls open, the 201st returns -1000 at once: 200 + -1000, no StackOverflowError.
    assert_eq!(calc(&mut jvm, -1), "-800");
    assert_eq!(calc(&mut jvm, -7), "-800");
    // Shallower calls keep their answers; 199 needs 200 calls open, 200 needs 201.
    assert_eq!(calc(&mut jvm, 0), "0");
    assert_eq!(calc(&mut jvm, 5), "5");
    assert_eq!(calc(&mut jvm, 199), "199");
    assert_eq!(calc(&mut jvm, 200), "-800");
    assert_workers_right(&mut jvm, "guarded, four threads at depth 150 each");
    let listed = patches(&pid);
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["id"], "depth-guard");
    assert_eq!(listed[0]["action"], "recursion deeper than 200 -> value -1000", "{listed:?}");
    // The three calls past the depth are the patch's fallbacks, as a guard's are counted.
    assert_eq!(listed[0]["fallbacks"], 3, "{listed:?}");

    let (ok, _, err) = repairctl(&["rollback", "depth-guard", "--pid", &pid]);
    assert!(ok, "rollback: {err}");
    assert!(patches(&pid).is_empty());
    assert_eq!(calc(&mut jvm, -1), "SOE", "the original behaviour is back");
    assert_eq!(calc(&mut jvm, 200), "200");
    assert_eq!(calc(&mut jvm, 250), "250", "no depth is kept past the rollback");
    assert_workers_right(&mut jvm, "rolled back");
    jvm.finish();
}

#[test]
fn recursion_guard_bad_input_gets_one_clear_error_and_applies_nothing() {
    let jdk = default_jdk();
    let dir = TempDir::new("recursion-bad");
    compile(&jdk, &dir.0, &[("Depth.java", DEPTH)]);
    let mut jvm = start_depth(&jdk, &dir.0);
    let pid = jvm.pid.to_string();
    let fail = |name: &str, spec: &str, expect: &str| {
        let path = dir.0.join(name);
        std::fs::write(&path, spec).unwrap();
        let (ok, out, err) = repairctl(&["apply", &path.display().to_string(), "--pid", &pid]);
        assert!(!ok, "{name} was accepted: {out}");
        assert!(err.starts_with("repairctl: error: ") && err.trim_end().lines().count() == 1, "one line: {err}");
        assert!(err.contains(expect), "{name}: {err} lacks {expect:?}");
    };
    fail(
        "zero.yaml",
        &GUARD_SPEC.replace("depth: 200", "depth: 0"),
        "zero.yaml:4: action.recursion.depth: expected a positive number",
    );
    fail(
        "nofallback.yaml",
        &GUARD_SPEC.replace("depth: 200, fallback: { value: -1000 }", "depth: 200"),
        "nofallback.yaml:4: action.recursion.fallback: missing",
    );
    fail(
        "init.yaml",
        &GUARD_SPEC.replace("\"depth(I)I\"", "\"<init>\""),
        "a recursion guard cannot skip an initializer",
    );
    assert!(patches(&pid).is_empty(), "nothing applied");
    assert_eq!(calc(&mut jvm, -1), "SOE", "the method is as it was");
    assert_eq!(calc(&mut jvm, 300), "300");
    jvm.finish();
}

/// `Chain.length` counts the nodes of a list by recursion; a cyclic list makes it recurse without
/// end. Each round measures a list of 10 nodes (must stay 10) and the cyclic one.
const CHAIN: &str = r#"
public class Chain {
    static final class Node { Node next; }
    static int length(Node n) { return n == null ? 0 : 1 + length(n.next); }
    public static void main(String[] args) throws Exception {
        Node cyclic = new Node();
        cyclic.next = cyclic;
        Node list = null;
        for (int i = 0; i < 10; i++) { Node n = new Node(); n.next = list; list = n; }
        int overflows = 0, returned = 0, wrong = 0, last = 0;
        for (int i = 0; i < 80; i++) {
            if (length(list) != 10) wrong++;
            try { last = length(cyclic); returned++; } catch (StackOverflowError e) { overflows++; }
            Thread.sleep(25);
        }
        System.out.println("overflows=" + overflows + " returned=" + returned + " wrong=" + wrong + " last=" + last);
    }
}
"#;

/// Unbounded recursion twice: first a recursion guard, then (if that did not hold) a guard.
const CHAIN_POLICY: &str = r#"
rules:
  - name: runaway
    when: { exception: java.lang.StackOverflowError, in: "Chain.*", count: 2, within: 10s }
    then:
      - recursion: { depth: 500, fallback: { value: -1 } }
      - guard: { catch: [fault], fallback: { value: -1 } }
    validate: { window: 500ms, min_calls: 5, max_window: 5s, max_fallback_rate: 0.5 }
"#;

#[test]
fn recursion_guard_chosen_by_a_rule_for_a_stack_overflow_holds() {
    let jdk = default_jdk();
    let dir = TempDir::new("recursion-policy");
    compile(&jdk, &dir.0, &[("Chain.java", CHAIN)]);
    let child = agent_support::spawn_with_policy(&jdk, &dir.0, CHAIN_POLICY, &["-Xss512k"], &["Chain"]);
    let run = agent_support::finish(child, Duration::from_secs(60));
    run.expect_success();
    let stderr = &run.stderr;
    let logged = agent_support::logged_events(stderr, "runaway");
    let events: Vec<(&str, &str, &str)> =
        logged.iter().map(|e| (e.kind.as_str(), e.patch.as_str(), e.reason.as_str())).collect();
    let id = repair_model::policy::patch_id("runaway", "Chain", "length", "(LChain$Node;)I", 0, |_| false);
    let story: Vec<(&str, &str)> = events
        .iter()
        .filter(|(k, ..)| ["applied", "validated", "unproven", "rolled-back"].contains(k))
        .map(|(k, p, _)| (*k, *p))
        .collect();
    assert_eq!(story, [("applied", id.as_str()), ("validated", id.as_str())], "{stderr}");
    let applied = events.iter().find(|(k, ..)| *k == "applied").map(|e| e.2).unwrap_or_default();
    assert!(applied.starts_with("recursion deeper than 500 -> value -1 at Chain.length(LChain$Node;)I"), "{applied}");
    let validated = events.iter().find(|(k, ..)| *k == "validated").map(|e| e.2).unwrap_or_default();
    assert!(validated.contains("no new faults") && !validated.contains(": 0 fallbacks"), "{validated}");

    let last = run.stdout.lines().find(|l| l.starts_with("overflows=")).unwrap_or_else(|| panic!("{}", run.stdout));
    let count = |k: &str| -> i64 {
        last.split(' ').find_map(|kv| kv.strip_prefix(&format!("{k}="))).and_then(|v| v.parse().ok()).unwrap()
    };
    // Two overflows fire the rule; the guard is in place a few rounds later at most, and from
    // then on the cyclic list measures 500 calls + the fallback -1.
    assert!((2..=6).contains(&count("overflows")), "{last}\n{stderr}");
    assert_eq!(count("overflows") + count("returned"), 80, "{last}");
    assert_eq!(count("last"), 499, "{last}");
    assert_eq!(count("wrong"), 0, "the finite list kept its length: {last}");
}
