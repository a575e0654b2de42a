//! How the self-healing engine judges a repair: on evidence (a verdict rests on calls of the
//! repaired method; without them the window extends, then ends `unproven`) and by its outcomes (a
//! fault that follows a guard's fallback on the same thread, the caller failing on the fallback
//! value, is the repair's doing, while under validation or after it was kept). Real JVMs with the
//! real librepair.so and a policy; nothing is applied by hand.

mod agent_support;

use std::process::Command;
use std::time::{Duration, Instant};

use agent_support::{compile, default_jdk, TempDir};

/// `Names.name` throws for even ids; `Names.width` uses its result, and from call `strictFrom` on
/// it no longer checks for `null`: a guard returning `null` at `name` makes it throw then.
const NAMES: &str = r#"
public class Names {
    static String name(int id) {
        if (id % 2 == 0) throw new IllegalStateException("no name for " + id);
        return "n" + id;
    }
    static int width(int id, boolean strict) {
        String n = name(id);
        if (strict) return n.length();
        return n == null ? 0 : n.length();
    }
    static void run(int calls, int strictFrom) throws Exception {
        int errors = 0, npes = 0;
        long total = 0;
        for (int i = 0; i < calls; i++) {
            try { total += width(i, i >= strictFrom); }
            catch (NullPointerException e) { npes++; }
            catch (RuntimeException e) { errors++; }
            Thread.sleep(20);
        }
        System.out.println("errors=" + errors + " npes=" + npes + " total=" + total);
    }
}
class FailsAtOnce { public static void main(String[] a) throws Exception { Names.run(150, 0); } }
class FailsLater { public static void main(String[] a) throws Exception { Names.run(250, 120); } }
"#;

/// `Quiet.size` fails twice, is called twice more, then not at all for 3 s, then 50 times.
const QUIET: &str = r#"
public class Quiet {
    static int size(String s) { return s.length(); }
    public static void main(String[] a) throws Exception {
        int errors = 0;
        long total = 0;
        for (int i = 0; i < 4; i++) {
            try { total += size(null); } catch (RuntimeException e) { errors++; }
            Thread.sleep(20);
        }
        Thread.sleep(3000);
        for (int i = 0; i < 50; i++) {
            try { total += size(i % 2 == 0 ? null : "ab"); } catch (RuntimeException e) { errors++; }
            Thread.sleep(10);
        }
        System.out.println("errors=" + errors + " npes=0 total=" + total);
    }
}
"#;

/// One generic rule: any `RuntimeException` twice at a site; first a guard returning the
/// default (`null` for a `String`, 0 for an `int`), then one returning a usable value.
const POLICY: &str = r#"
rules:
  - name: quiet
    when: { exception: java.lang.RuntimeException, in: "Quiet.*", count: 2, within: 10s }
    then: [ { guard: { fallback: default } } ]
    validate: { window: 500ms, min_calls: 5, max_window: 2s }
  - name: names
    when: { exception: java.lang.RuntimeException, in: "Names.*", count: 2, within: 10s }
    then:
      - guard: { fallback: default }
      - guard: { fallback: { value: "none" } }
    validate: { window: 1s }
"#;

/// One event of a rule, from the agent's log.
struct Event {
    kind: String,
    patch: String,
    reason: String,
}

/// The events of the rule named `rule`, in order, from the agent's log on stderr
/// (`repair: event KIND rule=R patch=P at=S: REASON`).
fn events(stderr: &str, rule: &str) -> Vec<Event> {
    let rule = format!(" rule={rule} ");
    stderr
        .lines()
        .filter_map(|l| l.strip_prefix("repair: event "))
        .filter(|l| l.contains(&rule))
        .map(|l| {
            let (head, reason) = l.split_once(": ").unwrap_or((l, ""));
            let kind = head.split(' ').next().unwrap_or("");
            let patch = head.split(' ').find_map(|w| w.strip_prefix("patch=")).unwrap_or("");
            Event { kind: kind.to_string(), patch: patch.to_string(), reason: reason.to_string() }
        })
        .collect()
}

/// What a run under the policy showed: one rule's events, the program's counts, the agent's log.
struct Healed {
    events: Vec<Event>,
    errors: i64,
    npes: i64,
    total: i64,
    stderr: String,
}

impl Healed {
    /// `(kind, patch)` of the verdict-related events, in order.
    fn story(&self) -> Vec<(&str, &str)> {
        self.events
            .iter()
            .filter(|e| ["applied", "validated", "unproven", "rolled-back"].contains(&e.kind.as_str()))
            .map(|e| (e.kind.as_str(), e.patch.as_str()))
            .collect()
    }

    fn reason(&self, kind: &str) -> &str {
        let found = self.events.iter().find(|e| e.kind == kind);
        &found.unwrap_or_else(|| panic!("no {kind} event:\n{}", self.stderr)).reason
    }
}

/// Runs `main` under the policy, calling `during` with its pid while it runs, and returns what
/// the rule named `rule` did.
fn heal(tag: &str, main: &str, rule: &str, during: impl FnOnce(u32)) -> Healed {
    let jdk = default_jdk();
    let dir = TempDir::new(tag);
    compile(&jdk, &dir.0, &[("Names.java", NAMES), ("Quiet.java", QUIET)]);
    let child = agent_support::spawn_with_policy(&jdk, &dir.0, POLICY, &[], &[main]);
    during(child.id());
    let run = agent_support::finish(child, Duration::from_secs(60));
    run.expect_success();
    let last = run.stdout.trim().lines().last().unwrap_or("");
    let count = |k: &str| -> i64 {
        last.split(' ')
            .find_map(|kv| kv.strip_prefix(&format!("{k}=")))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {k} in {last:?}"))
    };
    Healed {
        events: events(&run.stderr, rule),
        errors: count("errors"),
        npes: count("npes"),
        total: count("total"),
        stderr: run.stderr.clone(),
    }
}

/// The id the rule `rule` gives its action `action` at `class.method` (see `policy::patch_id`).
fn id(rule: &str, class: &str, method: &str, descriptor: &str, action: usize) -> String {
    repair_model::policy::patch_id(rule, class, method, descriptor, action, |_| false)
}

/// The caller throws `NullPointerException` on the guard's `null` at once: the guard is rolled
/// back inside its window for the fault it caused, and the rule's next action holds.
#[test]
fn a_guard_whose_fallback_makes_the_caller_fail_is_rolled_back_inside_its_window() {
    let run = heal("heal-outcome-now", "FailsAtOnce", "names", |_| {});
    let stderr = &run.stderr;
    let (first, next) = (
        id("names", "Names", "name", "(I)Ljava/lang/String;", 0),
        id("names", "Names", "name", "(I)Ljava/lang/String;", 1),
    );
    assert_eq!(
        run.story(),
        [("applied", first.as_str()), ("rolled-back", &first), ("applied", &next), ("validated", &next)],
        "{stderr}"
    );
    let rolled = run.reason("rolled-back");
    assert!(
        rolled.contains("java.lang.NullPointerException at Names.width followed its fallback on the same thread")
            && !rolled.contains("after it was kept"),
        "{rolled}"
    );
    // The NPE the repair caused is not a fault the rule repairs in turn.
    assert!(!run.events.iter().any(|e| e.kind == "applied" && e.patch.contains("width")), "{stderr}");
    assert!((1..=5).contains(&run.npes), "{} NPEs: the bad guard stayed:\n{stderr}", run.npes);
    assert!(run.errors < 10, "{} faults: the next action did not take:\n{stderr}", run.errors);
}

/// The caller checks for `null` until well after the guard was validated, then stops: the kept
/// repair is rolled back for the fault it causes then, and the rule's next action holds.
#[test]
fn a_kept_guard_whose_fallback_later_makes_the_caller_fail_is_rolled_back() {
    let run = heal("heal-outcome-later", "FailsLater", "names", |_| {});
    let stderr = &run.stderr;
    let (first, next) = (
        id("names", "Names", "name", "(I)Ljava/lang/String;", 0),
        id("names", "Names", "name", "(I)Ljava/lang/String;", 1),
    );
    assert_eq!(
        run.story(),
        [
            ("applied", first.as_str()),
            ("validated", &first),
            ("rolled-back", &first),
            ("applied", &next),
            ("validated", &next),
        ],
        "{stderr}"
    );
    let rolled = run.reason("rolled-back");
    assert!(
        rolled.contains("after it was kept")
            && rolled.contains("java.lang.NullPointerException at Names.width followed its fallback"),
        "{rolled}"
    );
    assert!((1..=5).contains(&run.npes), "{} NPEs: the kept guard was not rolled back:\n{stderr}", run.npes);
}

/// A repaired method that is not called during its window: no verdict at the window's end; the
/// window extends to `max_window`, which ends `unproven` (the guard stays, unjudged); when the
/// calls resume the guard still answers them and nothing is rolled back.
#[test]
fn a_repair_without_calls_waits_for_evidence_and_ends_unproven() {
    // While the program pauses after the verdict, `repairctl policy show` counts it for the rule.
    let mut shown = None;
    let run = heal("heal-evidence", "Quiet", "quiet", |pid| {
        let start = Instant::now();
        while shown.is_none() && start.elapsed() < Duration::from_secs(20) {
            shown = unproven_shown(pid, "quiet");
            std::thread::sleep(Duration::from_millis(100));
        }
    });
    let stderr = &run.stderr;
    let quiet = id("quiet", "Quiet", "size", "(Ljava/lang/String;)I", 0);
    assert_eq!(run.story(), [("applied", quiet.as_str()), ("unproven", &quiet)], "{stderr}");
    let unproven = run.reason("unproven");
    // "N calls in Ws, fewer than the 5 a verdict needs": at most the two calls before the pause,
    // and the verdict came at max_window (2 s), not at the window's end (500 ms).
    let (calls, rest) = unproven.split_once(" calls in ").unwrap_or_else(|| panic!("{unproven}"));
    let calls: u64 = calls.parse().unwrap_or_else(|_| panic!("{unproven}"));
    assert!(calls < 5, "{unproven}");
    let waited: f64 = rest.split_once('s').and_then(|(w, _)| w.parse().ok()).unwrap_or_else(|| panic!("{unproven}"));
    assert!((2.0..2.5).contains(&waited), "the verdict waited {waited} s: {unproven}");
    assert!(rest.contains("fewer than the 5 a verdict needs"), "{unproven}");
    assert_eq!(shown, Some((1, 0, 0)), "policy show: (unproven, validated, rolled back) of the rule\n{stderr}");
    // The guard stayed in force: every call after it returned (25 of "ab", 25 fallbacks of 0).
    assert_eq!(run.total, 50, "{stderr}");
    assert!(run.errors <= 3, "{} faults: the guard did not stay:\n{stderr}", run.errors);
}

/// `(unproven, validated, rolled_back)` of `rule` as `repairctl policy show` gives them, once
/// it counts an unproven repair; `None` before (or while the agent does not answer yet).
fn unproven_shown(pid: u32, rule: &str) -> Option<(u64, u64, u64)> {
    let out = Command::new(env!("CARGO_BIN_EXE_repairctl"))
        .args(["policy", "show", "--pid", &pid.to_string(), "-o", "json"])
        .output()
        .ok()?;
    let shown: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    let r = shown["rules"].as_array()?.iter().find(|r| r["name"] == rule)?;
    let count = |k: &str| r[k].as_u64().unwrap_or(0);
    (count("unproven") > 0).then(|| (count("unproven"), count("validated"), count("rolled_back")))
}
