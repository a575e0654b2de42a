//! Error transformation (`rethrow`) on real JVMs with the real librepair.so: a fault is thrown
//! instead as a type an application frame above already handles, so the application's own error
//! path runs. Applied live by an operator; chosen by a policy from the fault's stack (`as: auto`);
//! refused by the policy when no frame above handles anything, and the rule's next action tried;
//! bad input refused with one clear error and nothing applied.

mod agent_support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use agent_support::{agentpath, compile, default_jdk, repairctl, repairctl_json as json, within, Service, TempDir};
use repair_model::policy::patch_id;

/// Answers each line on stdin with what `load` makes of it.
const LOADER: &str = r#"
import java.io.*;
class Odd extends RuntimeException { Odd(int code) { super("code " + code); } }
public class Loader {
    static int parse(String s) throws IOException { return Integer.parseInt(s.trim()); }
    static int check(String s) { return Integer.parseInt(s); }
    static String load(String s) {
        try {
            return "value " + parse(s);
        } catch (IOException e) {
            return "error " + e.getClass().getName() + " cause "
                + (e.getCause() == null ? "none" : e.getCause().getClass().getName()) + " message " + e.getMessage();
        }
    }
    public static void main(String[] a) throws Exception {
        System.out.println("READY " + ProcessHandle.current().pid());
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in));
        for (String line; (line = in.readLine()) != null; ) {
            String out;
            try { out = load(line) + " check " + check("1"); } catch (RuntimeException e) { out = "escaped " + e.getClass().getName(); }
            System.out.println(out);
        }
    }
}
"#;

fn spec(dir: &Path, name: &str, method: &str, as_class: &str) -> String {
    let text = format!(
        "id: {name}\ntarget: {{ class: Loader, method: \"{method}\" }}\naction:\n  \
         rethrow: {{ catch: [java.lang.NumberFormatException], as: {as_class} }}\n"
    );
    let path = dir.join(format!("{name}.yaml"));
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

/// (d) then (a): each bad spec gets one clear error naming `as` and the cause and changes
/// nothing; then the good one makes `load`'s own error path run, the cause kept.
#[test]
fn a_live_rethrow_runs_the_callers_error_path_and_bad_types_are_refused() {
    let jdk = default_jdk();
    let dir = TempDir::new("rethrow-live");
    compile(&jdk, &dir.0, &[("Loader.java", LOADER)]);
    let mut command = Command::new(jdk.java());
    command.env("XDG_STATE_HOME", dir.0.join("state")).arg(agentpath("")).arg("-cp").arg(&dir.0).arg("Loader");
    let mut jvm = Service::start(command);
    let pid = jvm.pid.to_string();
    assert_eq!(jvm.send("x"), "escaped java.lang.NumberFormatException");

    let parse = "parse(Ljava/lang/String;)I";
    for (name, method, as_class, expect) in [
        ("as-string", parse, "java.lang.String", "patch as-string: rethrow as java.lang.String: not a Throwable"),
        ("as-missing", parse, "no.such.Type", "rethrow as no.such.Type: cannot load it from Loader's class loader"),
        (
            "as-undeclared",
            "check(Ljava/lang/String;)I",
            "java.io.IOException",
            "rethrow as java.io.IOException: a checked exception that Loader.check does not declare",
        ),
        (
            "as-odd",
            parse,
            "Odd",
            "rethrow as Odd: no constructor (String, Throwable), (String) or () that Loader may call",
        ),
    ] {
        let (ok, out, err) = repairctl(&["apply", &spec(&dir.0, name, method, as_class), "--pid", &pid]);
        assert!(!ok, "{name} was accepted: {out}");
        assert!(err.starts_with("repairctl: error: ") && err.trim_end().lines().count() == 1, "one line: {err}");
        assert!(err.contains(expect), "{name}: {err} lacks {expect:?}");
        assert_eq!(json(&["patches", "--pid", &pid, "-o", "json"]), serde_json::json!([]), "{name}: nothing applied");
        assert_eq!(jvm.send("x"), "escaped java.lang.NumberFormatException", "{name}: behaviour unchanged");
    }
    assert!(
        repairctl(&["apply", &spec(&dir.0, "x", parse, "no.such.Type"), "--pid", &pid])
            .2
            .contains("ClassNotFoundException"),
        "the loader's own reason is given"
    );

    let (ok, out, err) = repairctl(&["apply", &spec(&dir.0, "parse-io", parse, "java.io.IOException"), "--pid", &pid]);
    assert!(ok && out.starts_with("applied "), "{out}{err}");
    assert_eq!(
        jvm.send("x"),
        "error java.io.IOException cause java.lang.NumberFormatException message For input string: \"x\" check 1",
        "the caller's own handler ran, with the fault as the cause"
    );
    assert_eq!(jvm.send(" 42 "), "value 42 check 1", "calls that do not fail are untouched");
    let patches = json(&["patches", "--pid", &pid, "-o", "json"]);
    let patch = patches.as_array().unwrap().iter().find(|p| p["id"] == "parse-io").expect("parse-io listed");
    assert_eq!(patch["fallbacks"].as_u64(), Some(1), "each transformation counts as a fallback: {patch}");
    let (ok, _, err) = repairctl(&["rollback", "parse-io", "--pid", &pid]);
    assert!(ok, "{err}");
    assert_eq!(jvm.send("x"), "escaped java.lang.NumberFormatException", "rolled back");
    jvm.finish();
}

/// Loops over good and bad input; says at the end how each call ended, and stays up until its
/// stdin closes, so that the repair's verdict does not race the JVM's exit.
const IMPORT: &str = r#"
import java.io.IOException;
public class Import {
    static int parse(String s) throws IOException { return Integer.parseInt(s); }
    static String load(String s) {
        try {
            return "value " + parse(s);
        } catch (IOException e) {
            return "error " + (e.getCause() == null ? "none" : e.getCause().getClass().getName());
        }
    }
    public static void main(String[] a) throws Exception {
        System.out.println("READY " + ProcessHandle.current().pid());
        int values = 0, errors = 0, escaped = 0;
        for (int i = 0; i < 120; i++) {
            try {
                String r = load(i % 2 == 0 ? "x" + i : "" + i);
                if (r.equals("error java.lang.NumberFormatException")) errors++; else if (r.startsWith("value ")) values++;
            } catch (RuntimeException e) { escaped++; }
            Thread.sleep(10);
        }
        System.out.println("values=" + values + " errors=" + errors + " escaped=" + escaped);
        while (System.in.read() != -1) {}
    }
}
"#;

/// No frame above `count` handles anything the fault is not: `main` catches what it already is.
const TOTALS: &str = r#"
public class Totals {
    static int count(String s) { return Integer.parseInt(s); }
    static int total(String s) { return count(s) * 2; }
    public static void main(String[] a) throws Exception {
        long sum = 0; int escaped = 0;
        for (int i = 0; i < 80; i++) {
            try { sum += total(i % 2 == 0 ? "x" : "3"); } catch (RuntimeException e) { escaped++; }
            Thread.sleep(10);
        }
        System.out.println("sum=" + sum + " escaped=" + escaped);
    }
}
"#;

const POLICY: &str = "rules:
  - name: import-nfe
    when: { exception: java.lang.NumberFormatException, in: \"Import.*\", count: 2, within: 10s }
    then:
      - rethrow: { catch: [fault], as: auto }
    validate: { window: 300ms }
  - name: totals-nfe
    when: { exception: java.lang.NumberFormatException, in: \"Totals.*\", count: 2, within: 10s }
    then:
      - rethrow: { catch: [fault], as: auto }
      - guard: { catch: [fault], fallback: { value: -1 } }
    validate: { window: 300ms }
";

/// The `key=number` pairs of a program's last line.
fn counts(stdout: &str) -> std::collections::HashMap<&str, i64> {
    let last = stdout.trim().lines().last().unwrap_or("");
    last.split(' ').filter_map(|kv| kv.split_once('=')).map(|(k, v)| (k, v.parse().unwrap())).collect()
}

/// (b) `as: auto` picks the type `load` handles around its call, says so, and holds; (c) with no
/// such frame it is refused with the reason and the rule's next action (a guard) is applied.
#[test]
fn a_policy_rethrows_as_the_type_a_frame_above_handles_or_refuses_and_escalates() {
    let jdk = default_jdk();
    let dir = TempDir::new("rethrow-policy");
    compile(&jdk, &dir.0, &[("Import.java", IMPORT), ("Totals.java", TOTALS)]);
    let policy = dir.0.join("policy.yaml");
    std::fs::write(&policy, POLICY).unwrap();
    let options = agentpath(&format!("policy={},log=info", policy.display()));

    let mut command = Command::new(jdk.java());
    command.env("XDG_STATE_HOME", dir.0.join("state")).arg(&options).arg("-cp").arg(&dir.0).arg("Import");
    let mut jvm = Service::start(command);
    let summary = jvm.line();
    // The verdict comes a window after the apply, however slow the machine: waited for.
    let verdict = within(Duration::from_secs(30), "a verdict on import-nfe's repair", || {
        let kinds = ["validated", "rolled-back", "unproven"];
        agent_support::events(jvm.pid)
            .into_iter()
            .find(|e| e["rule"] == "import-nfe" && kinds.contains(&e["kind"].as_str().unwrap_or("")))
    });
    let stderr = jvm.finish();
    let c = counts(&summary);
    assert_eq!(c["values"], 60, "good input is untouched: {summary}");
    assert!((2..30).contains(&c["escaped"]), "the fault stops escaping once repaired:\n{stderr}");
    assert_eq!(c["errors"], 60 - c["escaped"], "after the repair every bad input takes load's error path");
    let id = patch_id("import-nfe", "Import", "parse", "(Ljava/lang/String;)I", 0, |_| false);
    let applied = stderr
        .lines()
        .find(|l| l.contains(&format!("event applied rule=import-nfe patch={id}")))
        .unwrap_or_else(|| panic!("no applied event:\n{stderr}"));
    let line = IMPORT.lines().position(|l| l.contains("return \"value \" + parse(s)")).unwrap() + 1;
    assert!(applied.contains("rethrow NumberFormatException as java.io.IOException"), "{applied}");
    assert!(
        applied.contains(&format!("rethrow as java.io.IOException: handled by Import.load (Import.java:{line})")),
        "{applied}"
    );
    assert_eq!(verdict["kind"], "validated", "the repair did not hold: {verdict}\n{stderr}");
    let reason = verdict["reason"].as_str().unwrap_or("");
    assert!(reason.contains("no new faults"), "its own IOExceptions are its fallbacks, not new faults: {reason}");
    assert!(!stderr.contains("event rolled-back"), "{stderr}");

    let run = agent_support::java(&jdk, &dir.0, &[options], "Totals");
    run.expect_success();
    run.expect_stderr("action 0 (rethrow): no application frame above handles an exception here");
    let guard = patch_id("totals-nfe", "Totals", "count", "(Ljava/lang/String;)I", 1, |_| false);
    run.expect_stderr(&format!("event applied rule=totals-nfe patch={guard}"));
    let rethrow = patch_id("totals-nfe", "Totals", "count", "(Ljava/lang/String;)I", 0, |_| false);
    assert!(!run.stderr.contains(&format!("patch={rethrow}")), "the refused rethrow was never applied");
    let c = counts(&run.stdout);
    assert!((2..30).contains(&c["escaped"]), "{}", run.stderr);
    // Good input gives 3 * 2 throughout; bad input, once guarded, -1 * 2.
    assert_eq!(c["sum"], 40 * 6 - 2 * (40 - c["escaped"]), "{}", run.stdout);
}
