//! Failure-oblivious array access (`oblivious`, Rinard et al., OSDI 2004) on real JVMs with the
//! real librepair.so: applied live with `repairctl apply` to methods with an off-by-one loop (the
//! read past the end yields 0, the write past it is dropped, a `null` array still throws, each
//! access made oblivious counted as the patch's fallback) and rolled back; chosen by a policy
//! rule for an `ArrayIndexOutOfBoundsException` and validated; bad input refused with one error
//! that names it, nothing applied.

mod agent_support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use agent_support::{agentpath, compile, default_jdk, jdks, repairctl, repairctl_json as json, Jdk, Service, TempDir};

/// Each `state` line runs the off-by-one methods once on fresh arrays and says what they did.
/// Line numbers matter: `sum`'s array read is on line 5, `fill`'s write on line 9.
const SUMS: &str = r#"import java.io.*;
import java.util.Arrays;
public class Sums {
    static int sum(int[] a) { int s = 0;
        for (int i = 0; i <= a.length; i++) s += a[i];
        return s;
    }
    static void fill(int[] a, int v) {
        for (int i = 0; i <= a.length; i++) a[i] = v;
    }
    static int twice(int x) { return 2 * x; }
    static String sumOf(int[] a) {
        try { return String.valueOf(sum(a)); } catch (RuntimeException e) { return e.getClass().getSimpleName(); }
    }
    static String filled(int[] a) {
        try { fill(a, 7); return Arrays.toString(a); }
        catch (RuntimeException e) { return e.getClass().getSimpleName() + (a == null ? "" : Arrays.toString(a)); }
    }
    public static void main(String[] args) throws Exception {
        System.out.println("READY " + ProcessHandle.current().pid());
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in));
        for (String line; (line = in.readLine()) != null; ) {
            System.out.println("STATE sum=" + sumOf(new int[] {1, 2, 3}) + " fill=" + filled(new int[3])
                + " nullsum=" + sumOf(null) + " nullfill=" + filled(null) + " twice=" + twice(21));
        }
    }
}
"#;

const BEFORE: &str = "STATE sum=ArrayIndexOutOfBoundsException fill=ArrayIndexOutOfBoundsException[7, 7, 7] \
                      nullsum=NullPointerException nullfill=NullPointerException twice=42";
const REPAIRED: &str = "STATE sum=6 fill=[7, 7, 7] nullsum=NullPointerException nullfill=NullPointerException twice=42";

fn spec(dir: &Path, id: &str, method: &str, action: &str) -> String {
    let p = dir.join(format!("{id}.yaml"));
    std::fs::write(&p, format!("id: {id}\ntarget: {{ class: Sums, method: \"{method}\" }}\naction:\n  {action}\n"))
        .unwrap();
    p.display().to_string()
}

fn start_sums(jdk: &Jdk, tag: &str) -> (TempDir, Service) {
    let dir = TempDir::new(tag);
    compile(jdk, &dir.0, &[("Sums.java", SUMS)]);
    let mut command = Command::new(jdk.java());
    command.env("XDG_STATE_HOME", dir.0.join("state")).arg(agentpath("")).arg("-cp").arg(&dir.0).arg("Sums");
    let jvm = Service::start(command);
    (dir, jvm)
}

/// The fallbacks `repairctl patches` counts for each patch, by id.
fn fallbacks(pid: &str) -> Vec<(String, u64)> {
    let patches = json(&["patches", "--pid", pid, "-o", "json"]);
    let mut v: Vec<(String, u64)> = patches
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["id"].as_str().unwrap().to_string(), p["fallbacks"].as_u64().unwrap()))
        .collect();
    v.sort();
    v
}

/// (a) On JDK 17 and 25: the read past the end yields 0 (the right sum), the write past it is
/// dropped (the rest of the array written, no exception), a `null` array still throws
/// `NullPointerException`, each access made oblivious is one fallback of its patch, and rolling
/// back brings each exception back.
#[test]
fn off_by_one_read_and_write_are_made_oblivious_live_and_rolled_back() {
    for jdk in jdks() {
        let (dir, mut jvm) = start_sums(&jdk, "oblivious-live");
        let pid = jvm.pid.to_string();
        assert_eq!(jvm.state(), BEFORE, "{}", jdk.name);

        for (id, method) in [("sum-oblivious", "sum([I)I"), ("fill-oblivious", "fill")] {
            let (ok, out, err) = repairctl(&["apply", &spec(&dir.0, id, method, "oblivious: {}"), "--pid", &pid]);
            assert!(ok && out.starts_with("applied "), "{}: apply {id}: {out}{err}", jdk.name);
        }
        assert_eq!(jvm.state(), REPAIRED, "{}", jdk.name);
        assert_eq!(jvm.state(), REPAIRED, "{}", jdk.name);
        // Two state lines: one read past the end in `sum` and one write in `fill` each; the
        // null arrays threw before any access.
        assert_eq!(
            fallbacks(&pid),
            [("fill-oblivious".to_string(), 2), ("sum-oblivious".to_string(), 2)],
            "{}",
            jdk.name
        );

        let (ok, _, err) = repairctl(&["rollback", "sum-oblivious", "--pid", &pid]);
        assert!(ok, "{err}");
        assert_eq!(
            jvm.state(),
            "STATE sum=ArrayIndexOutOfBoundsException fill=[7, 7, 7] nullsum=NullPointerException \
             nullfill=NullPointerException twice=42",
            "{}",
            jdk.name
        );
        let (ok, _, err) = repairctl(&["rollback", "fill-oblivious", "--pid", &pid]);
        assert!(ok, "{err}");
        assert_eq!(jvm.state(), BEFORE, "{}", jdk.name);
        jvm.finish();
    }
}

/// (c) A line without an array access, and a method without any: one error each that names
/// the line (and where the accesses are) or the method; nothing is applied, the JVM unchanged.
#[test]
fn a_line_or_method_without_array_access_is_refused_with_one_error_and_nothing_applied() {
    let jdk = default_jdk();
    let (dir, mut jvm) = start_sums(&jdk, "oblivious-bad");
    let pid = jvm.pid.to_string();
    let fail = |spec: &str, needle: &str| {
        let (ok, out, err) = repairctl(&["apply", spec, "--pid", &pid]);
        assert!(!ok, "{spec} applied: {out}");
        assert_eq!(err.lines().count(), 1, "one error: {err}");
        assert!(err.starts_with("repairctl: error: ") && err.contains(needle), "{err}");
    };
    fail(
        &spec(&dir.0, "no-line", "sum", "oblivious: { line: 6 }"),
        "method Sums.sum([I)I, oblivious: line 6 has no array access; the method's array accesses are on line 5",
    );
    fail(
        &spec(&dir.0, "no-access", "twice", "oblivious: {}"),
        "method Sums.twice(I)I, oblivious: the method has no array access",
    );
    fail(
        &spec(&dir.0, "bad-line", "sum", "oblivious: { line: zero }"),
        "action.oblivious.line: expected a source line number",
    );
    assert_eq!(json(&["patches", "--pid", &pid, "-o", "json"]), serde_json::json!([]), "nothing applied");
    assert_eq!(jvm.state(), BEFORE);

    // The line that has the access is taken: only `sum` is repaired.
    let (ok, out, err) = repairctl(&["apply", &spec(&dir.0, "line-5", "sum", "oblivious: { line: 5 }"), "--pid", &pid]);
    assert!(ok, "{out}{err}");
    assert!(jvm.state().starts_with("STATE sum=6 fill=ArrayIndexOutOfBoundsException[7, 7, 7] "));
    jvm.finish();
}

/// `Totals.sum` reads one past the end on every call; `Totals.head` copies past the end with
/// `System.arraycopy` (the exception comes from the JDK; `head` itself has no array access). The
/// program calls each 120 times.
const TOTALS: &str = r#"
public class Totals {
    static int sum(int[] a) {
        int s = 0;
        for (int i = 0; i <= a.length; i++) s += a[i];
        return s;
    }
    static int[] head(int[] a, int n) {
        int[] r = new int[n];
        System.arraycopy(a, 0, r, 0, n);
        return r;
    }
    public static void main(String[] args) throws Exception {
        int errors = 0, headErrors = 0, nulls = 0, calls = 120;
        long total = 0;
        for (int i = 0; i < calls; i++) {
            try { total += sum(new int[] {1, 2, 3}); } catch (RuntimeException e) { errors++; }
            try { if (head(new int[] {1, 2}, 3) == null) nulls++; } catch (RuntimeException e) { headErrors++; }
            Thread.sleep(10);
        }
        System.out.println("calls=" + calls + " errors=" + errors + " total=" + total + " headErrors=" + headErrors + " nulls=" + nulls);
    }
}
"#;

/// Tries `oblivious` first for an index fault, then the guards.
const POLICY: &str = r#"
rules:
  - name: index
    when: { exception: java.lang.ArrayIndexOutOfBoundsException, in: "Totals.*", count: 2, within: 10s }
    then:
      - oblivious: {}
      - guard: { catch: [fault], fallback: default }
    validate: { window: 300ms, min_calls: 5, max_fallback_rate: 1.0 }
"#;

/// (b) Two `ArrayIndexOutOfBoundsException`s fire the rule, which applies its first action,
/// `oblivious`, at the throw site; it is validated on its calls (one access made oblivious per
/// call: a fallback rate of 1.0, within the rule's limit), and every later call returns the right
/// sum. At a site without an array access (the JDK threw) `oblivious` is refused, saying why, and
/// the rule's guard takes over there.
#[test]
fn a_policy_repairs_an_index_fault_with_oblivious_access_and_validates_it() {
    let jdk = default_jdk();
    let dir = TempDir::new("oblivious-policy");
    compile(&jdk, &dir.0, &[("Totals.java", TOTALS)]);
    let child = agent_support::spawn_with_policy(&jdk, &dir.0, POLICY, &[], &["Totals"]);
    let run = agent_support::finish(child, Duration::from_secs(60));
    run.expect_success();
    let stderr = &run.stderr;
    // The verdict-related events of the rule.
    let logged = agent_support::logged_events(stderr, "index");
    let events: Vec<(&str, &str, &str)> = logged
        .iter()
        .filter(|e| ["applied", "refused", "validated", "unproven", "rolled-back"].contains(&e.kind.as_str()))
        .map(|e| (e.kind.as_str(), e.patch.as_str(), e.reason.as_str()))
        .collect();
    let story = |method: &str, descriptor: &str| -> Vec<(&str, String)> {
        let ids: Vec<String> = (0..2)
            .map(|a| repair_model::policy::patch_id("index", "Totals", method, descriptor, a, |_| false))
            .collect();
        events.iter().filter(|(_, p, _)| ids.iter().any(|id| id == p)).map(|(k, p, _)| (*k, p.to_string())).collect()
    };
    let reason = |kind: &str, patch: &str| {
        events.iter().find(|(k, p, _)| *k == kind && *p == patch).map(|(_, _, r)| *r).unwrap_or("")
    };
    let sum = repair_model::policy::patch_id("index", "Totals", "sum", "([I)I", 0, |_| false);
    assert_eq!(story("sum", "([I)I"), [("applied", sum.clone()), ("validated", sum.clone())], "{stderr}");
    assert!(reason("applied", &sum).starts_with("oblivious array access at Totals.sum([I)I"), "{stderr}");
    assert!(reason("validated", &sum).contains("fallbacks (limit rate 1.00), no new faults"), "{stderr}");

    let head: Vec<String> =
        (0..2).map(|a| repair_model::policy::patch_id("index", "Totals", "head", "([II)[I", a, |_| false)).collect();
    assert_eq!(
        story("head", "([II)[I"),
        [("refused", head[0].clone()), ("applied", head[1].clone()), ("validated", head[1].clone())],
        "{stderr}"
    );
    assert!(
        reason("refused", &head[0]).contains("method Totals.head([II)[I, oblivious: the method has no array access"),
        "{stderr}"
    );

    let last = run.stdout.trim().lines().last().unwrap_or("");
    let count = |k: &str| -> i64 {
        last.split(' ')
            .find_map(|kv| kv.strip_prefix(&format!("{k}=")))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {k} in {last:?}"))
    };
    let (calls, errors) = (count("calls"), count("errors"));
    // The rule fires on the 2nd fault; on a busy machine a few more calls fail before the patch is in.
    assert!((2..=20).contains(&errors), "{errors} faults before the repair took:\n{stderr}");
    assert_eq!(count("total"), 6 * (calls - errors), "every repaired call returns the sum of what is in bounds");
    let head_errors = count("headErrors");
    assert!((2..=20).contains(&head_errors), "{head_errors} faults in head before its guard took:\n{stderr}");
    assert_eq!(count("nulls"), calls - head_errors, "the guard's null from every later call of head");
}
