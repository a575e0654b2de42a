//! Bytecode fault capture on real JVMs, where real programs broke it: a class whose static
//! initializer failed (attach must still probe the other classes), class names whose old 20-bit
//! hashes collided (each fault must stay its own), and a StackOverflowError (named without
//! running Java code on the exhausted thread, so a policy can match and repair it).

mod agent_support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use agent_support::{agentpath, compile, finish, jdks, repairctl, repairctl_json, TempDir};

const INIT_FAILS: &str = r#"
public class InitFails {
    static class Broken {
        // As jetty's Slf4jLog without slf4j: the class is left in the error state.
        static final int VALUE = Integer.parseInt("no slf4j here");
    }
    static class Working {
        static void fail(int i) { throw new IllegalStateException("after attach " + i); }
    }
    static void waitFor(java.io.File f) throws Exception {
        for (int i = 0; i < 600 && !f.exists(); i++) Thread.sleep(50);
    }
    public static void main(String[] args) throws Exception {
        try { System.out.println(Broken.VALUE); } catch (ExceptionInInitializerError e) { System.out.println("broken"); }
        Working.class.getName();
        System.out.println("ready");
        System.out.flush();
        waitFor(new java.io.File(args[0]));
        for (int i = 0; i < 3; i++) {
            try { Working.fail(i); } catch (IllegalStateException e) { }
        }
        System.out.println("failed");
        System.out.flush();
        waitFor(new java.io.File(args[1]));
    }
}
"#;

#[test]
fn attach_probes_every_loaded_class_but_one_whose_initializer_failed_and_says_so() {
    for jdk in jdks() {
        let dir = TempDir::new("init-fails");
        compile(&jdk, &dir.0, &[("InitFails.java", INIT_FAILS)]);
        let (go, done) = (dir.0.join("go"), dir.0.join("done"));
        let mut child = Command::new(jdk.java())
            .env("XDG_STATE_HOME", dir.0.join("state"))
            .arg("-XX:+EnableDynamicAgentLoading")
            .arg("-cp")
            .arg(&dir.0)
            .arg("InitFails")
            .arg(&go)
            .arg(&done)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("java starts");
        let pid = child.id().to_string();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        for expected in ["broken", "ready"] {
            line.clear();
            out.read_line(&mut line).unwrap();
            assert_eq!(line.trim(), expected);
        }
        let attach = Command::new(env!("CARGO_BIN_EXE_repairctl"))
            .args(["attach", &pid, "--agent"])
            .arg(agent_support::agent_so())
            .output()
            .unwrap();
        assert!(attach.status.success(), "{}: attach: {}", jdk.name, String::from_utf8_lossy(&attach.stderr));
        std::fs::write(&go, "").unwrap();
        line.clear();
        out.read_line(&mut line).unwrap();
        assert_eq!(line.trim(), "failed");

        let status = repairctl_json(&["status", "--pid", &pid, "-o", "json"]);
        assert_eq!(status["classes_skipped"], 1, "{}: {status}", jdk.name);
        let detail = status["fault_capture_detail"].as_str().unwrap();
        assert!(
            detail.contains("1 in the error state: its static initializer failed (InitFails$Broken)"),
            "{}: {detail}",
            jdk.name
        );
        // The batch did not fail whole: the class loaded before the attach reports its faults.
        let faults = repairctl_json(&["faults", "--pid", &pid, "-o", "json"]);
        let working = faults["faults"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["site"]["class"] == "InitFails$Working")
            .unwrap_or_else(|| panic!("{}: no fault at InitFails$Working: {faults}", jdk.name));
        assert_eq!(working["exception"], "java.lang.IllegalStateException");
        assert_eq!(working["count"], 3);

        // `classes` does not call it modifiable, and a patch on it is refused with the real cause
        // (RetransformClasses alone would say JVMTI_ERROR_INVALID_CLASS: "not a loaded class").
        let classes = repairctl_json(&["classes", "InitFails$*", "--pid", &pid, "-o", "json"]);
        let modifiable = |name: &str| {
            classes.as_array().unwrap().iter().find(|c| c["name"] == name).map(|c| c["modifiable"].clone())
        };
        assert_eq!(modifiable("InitFails$Broken"), Some(false.into()), "{}: {classes}", jdk.name);
        assert_eq!(modifiable("InitFails$Working"), Some(true.into()), "{}: {classes}", jdk.name);
        let spec = dir.0.join("broken.yaml");
        std::fs::write(&spec, "id: broken-init\ntarget: { class: InitFails$Broken, method: \"<clinit>\" }\naction:\n  guard: { fallback: default }\n").unwrap();
        let (ok, _, err) = repairctl(&["apply", spec.to_str().unwrap(), "--pid", &pid]);
        assert!(!ok, "{}: applied to a class in the error state", jdk.name);
        assert!(
            err.contains("class InitFails$Broken cannot be modified: its static initializer failed"),
            "{}: {err}",
            jdk.name
        );
        let patches = repairctl_json(&["patches", "--pid", &pid, "-o", "json"]);
        assert_eq!(patches.as_array().map(Vec::len), Some(0), "{}: nothing changed: {patches}", jdk.name);

        std::fs::write(&done, "").unwrap();
        let run = finish(child, Duration::from_secs(30));
        assert_eq!(run.code, Some(0), "{}: {}", jdk.name, run.stderr);
        assert!(
            run.stderr.contains("1 skipped: 1 in the error state"),
            "{}: a warning says so:\n{}",
            jdk.name,
            run.stderr
        );
    }
}

/// The id scheme the agent used before: FNV-1a of the internal class name, 20 bits.
fn old_probe_hash(name: &str) -> u32 {
    name.bytes().fold(0x811c_9dc5u32, |h, b| (h ^ b as u32).wrapping_mul(0x0100_0193)) & 0xF_FFFF
}

/// Two class names whose old probe ids were equal (as groovy's `AnnotationConstantExpression`
/// and `dgm$61` were): found by search, the birthday bound makes it quick.
fn colliding_names() -> (String, String) {
    let mut seen = std::collections::HashMap::new();
    for i in 0.. {
        let name = format!("Site{i}");
        if let Some(other) = seen.insert(old_probe_hash(&name), name.clone()) {
            return (other, name);
        }
    }
    unreachable!()
}

#[test]
fn faults_of_classes_whose_names_once_collided_stay_apart() {
    let (a, b) = colliding_names();
    assert_eq!(old_probe_hash(&a), old_probe_hash(&b));
    let class = |name: &str| {
        format!(
            "public class {name} {{ public static void fail() {{ throw new IllegalStateException(\"{name}\"); }} }}"
        )
    };
    let main = format!(
        "public class Collide {{ public static void main(String[] args) {{
            for (int i = 0; i < 3; i++) try {{ {a}.fail(); }} catch (IllegalStateException e) {{ }}
            for (int i = 0; i < 5; i++) try {{ {b}.fail(); }} catch (IllegalStateException e) {{ }}
            System.out.println(\"done\");
        }} }}"
    );
    for jdk in jdks() {
        let dir = TempDir::new("collide");
        let (fa, fb) = (format!("{a}.java"), format!("{b}.java"));
        let (ca, cb) = (class(&a), class(&b));
        compile(&jdk, &dir.0, &[(&fa, &ca), (&fb, &cb), ("Collide.java", &main)]);
        let run = agent_support::java(&jdk, &dir.0, &[agentpath("log=info")], "Collide");
        run.expect_success().expect_stdout("done");
        run.expect_stderr(&format!("java.lang.IllegalStateException x3 at {a}.fail()V"));
        run.expect_stderr(&format!("java.lang.IllegalStateException x5 at {b}.fail()V"));
    }
}

const DEEP: &str = r#"
public class Deep {
    static final class Node { Node next; }
    static int length(Node n) { return n == null ? 0 : 1 + length(n.next); }
    public static void main(String[] args) throws Exception {
        Node cyclic = new Node();
        cyclic.next = cyclic;
        int overflows = 0, returned = 0;
        for (int i = 0; i < 60; i++) {
            try { length(cyclic); returned++; } catch (StackOverflowError e) { overflows++; }
            Thread.sleep(25);
        }
        System.out.println("overflows=" + overflows + " returned=" + returned);
    }
}
"#;

const DEEP_POLICY: &str = "rules:
  - name: runaway-recursion
    when: { exception: java.lang.StackOverflowError, in: \"Deep.*\", count: 2, within: 10s }
    then:
      - guard: { catch: [java.lang.StackOverflowError], fallback: { value: -1 } }
    validate: { window: 500ms, max_fallback_rate: 1.0 }
";

#[test]
fn a_stack_overflow_is_named_matched_by_a_rule_and_repaired() {
    for jdk in jdks() {
        let dir = TempDir::new("deep");
        compile(&jdk, &dir.0, &[("Deep.java", DEEP)]);
        let policy = dir.0.join("policy.yaml");
        std::fs::write(&policy, DEEP_POLICY).unwrap();
        let options = format!("policy={},log=info", policy.display());
        let run = agent_support::java(&jdk, &dir.0, &[agentpath(&options), "-Xss512k".to_string()], "Deep");
        run.expect_success();
        run.expect_stderr("java.lang.StackOverflowError x");
        assert!(!run.stderr.contains("fault #1 ? "), "{}: the exception has no name:\n{}", jdk.name, run.stderr);
        run.expect_stderr("event fired rule=runaway-recursion");
        run.expect_stderr("event applied rule=runaway-recursion");
        // Once applied, calls return the fallback instead of overflowing. (The guard's own
        // fallback path can overflow again in the deepest frames; those leaks count as the fault
        // going on, so validation may roll the guard back: recursion-aware repair is issue 11's.)
        let line = run.stdout.lines().find(|l| l.starts_with("overflows=")).unwrap();
        let returned: u32 = line[line.find("returned=").unwrap() + "returned=".len()..].parse().unwrap();
        assert!(returned > 0, "{}: no call returned after the repair: {line}\n{}", jdk.name, run.stderr);
    }
}

#[test]
fn app_scopes_bytecode_capture_to_the_named_classes() {
    let class = |name: &str| {
        format!(
            "public class {name} {{ public static void fail() {{ throw new IllegalStateException(\"{name}\"); }} }}"
        )
    };
    let main = "public class Scoped { public static void main(String[] args) {
        for (int i = 0; i < 2; i++) try { Ours.fail(); } catch (IllegalStateException e) { }
        for (int i = 0; i < 2; i++) try { Library.fail(); } catch (IllegalStateException e) { }
        System.out.println(\"done\");
    } }";
    let jdk = agent_support::default_jdk();
    let dir = TempDir::new("scoped");
    let (ours, library) = (class("Ours"), class("Library"));
    compile(&jdk, &dir.0, &[("Ours.java", &ours), ("Library.java", &library), ("Scoped.java", main)]);
    let run = agent_support::java(&jdk, &dir.0, &[agentpath("log=info,app=Ours:Scoped")], "Scoped");
    run.expect_success().expect_stdout("done");
    run.expect_stderr("java.lang.IllegalStateException x2 at Ours.fail()V");
    // Library's exception is seen only where it leaves a class in scope: Scoped.main catches it,
    // so nothing is recorded for it.
    assert!(!run.stderr.contains("at Library."), "{}", run.stderr);
    assert!(!run.stderr.contains("fault #2"), "{}", run.stderr);
}
