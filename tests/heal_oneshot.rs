//! Faults that happen once: a fault about to end its thread (main's: the JVM) is journaled with
//! the durable repair its rule decided before the exception propagates, so the next start has
//! the repair in place every time. Real JVMs with the real librepair.so and bytecode capture.

mod agent_support;

use std::path::Path;

use agent_support::{agentpath, compile, default_jdk, java, Jdk, Run, TempDir};
use repair_model::journal::{durable_patches, read_history};

/// `main` reads its port from a property whose default is not a number: it dies at start-up
/// with a `NumberFormatException` from `Boot.port`, an application method.
const BOOT: &str = r#"
public class Boot {
    static int port(String value) {
        return Integer.parseInt(value);
    }

    public static void main(String[] args) {
        int port = port(System.getProperty("boot.port", "eighty"));
        System.out.println("started on port " + port);
    }
}
"#;

/// A worker thread (its `run()` the outermost application frame) dies of the same kind of
/// fault; `main` outlives it.
const JOBS: &str = r#"
public class Jobs {
    static int size(String value) {
        return Integer.parseInt(value);
    }

    static class Load implements Runnable {
        public void run() {
            System.out.println("batch size " + size("ten"));
        }
    }

    public static void main(String[] args) throws Exception {
        Thread worker = new Thread(new Load(), "loader");
        worker.start();
        worker.join();
        System.out.println("main done");
    }
}
"#;

/// A durable rule that fires on the first occurrence, with a guard fallback.
fn policy(dir: &Path, rule: &str, class: &str, fallback: i64) -> String {
    let text = format!(
        "mode: enforce\nrules:\n  - name: {rule}\n    when: {{ exception: java.lang.NumberFormatException, in: \"{class}.*\", \
         count: 1 }}\n    then:\n      - guard: {{ catch: [fault], fallback: {{ value: {fallback} }} }}\n    durable: true\n"
    );
    let path = dir.join(format!("{rule}.yaml"));
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

fn run(jdk: &Jdk, dir: &Path, policy: &str, state: &Path, class: &str) -> Run {
    run_with(jdk, dir, &format!("policy={policy},state={},log=info", state.display()), class)
}

fn run_with(jdk: &Jdk, dir: &Path, options: &str, class: &str) -> Run {
    java(jdk, dir, &[agentpath(options)], class)
}

/// The durable patches the journal in `state` holds, as (who, class).
fn durable(state: &Path) -> Vec<(String, Vec<String>)> {
    let history = read_history(state).unwrap_or_default();
    durable_patches(&history).into_iter().map(|r| (r.who, r.classes)).collect()
}

#[test]
fn a_fault_that_kills_main_at_start_up_is_journaled_durable_and_the_next_start_is_repaired() {
    let jdk = default_jdk();
    let dir = TempDir::new("oneshot-boot");
    compile(&jdk, &dir.0, &[("Boot.java", BOOT)]);
    let policy = policy(&dir.0, "boot-port", "Boot", 8080);
    let expected = vec![("rule:boot-port".to_string(), vec!["Boot".to_string()])];

    // Every fresh first start dies of the fault, and its journal holds the durable repair.
    for i in 0..8 {
        let state = dir.0.join(format!("fresh-{i}"));
        let first = run(&jdk, &dir.0, &policy, &state, "Boot");
        assert_eq!(first.code, Some(1), "start {i} dies of the fault:\n{}\n{}", first.stdout, first.stderr);
        first.expect_stderr("java.lang.NumberFormatException");
        assert_eq!(durable(&state), expected, "fresh start {i}: the journal holds the repair\n{}", first.stderr);
    }

    // Eight starts in a row on one state dir: the first dies, every later one starts repaired.
    let state = dir.0.join("shared");
    for i in 0..8 {
        let r = run(&jdk, &dir.0, &policy, &state, "Boot");
        if i == 0 {
            assert_eq!(r.code, Some(1), "the first start dies:\n{}\n{}", r.stdout, r.stderr);
        } else {
            r.expect_success().expect_stdout("started on port 8080");
        }
        assert_eq!(durable(&state), expected, "after start {i}\n{}", r.stderr);
    }
}

#[test]
fn a_fault_that_ends_a_worker_thread_is_journaled_durable_the_same_way() {
    let jdk = default_jdk();
    let dir = TempDir::new("oneshot-worker");
    compile(&jdk, &dir.0, &[("Jobs.java", JOBS)]);
    let policy = policy(&dir.0, "batch-size", "Jobs", 10);
    let state = dir.0.join("state");

    let first = run(&jdk, &dir.0, &policy, &state, "Jobs");
    first.expect_success().expect_stdout("main done").expect_stderr("java.lang.NumberFormatException");
    assert!(!first.stdout.contains("batch size"), "the worker died of the fault:\n{}", first.stdout);
    assert_eq!(
        durable(&state),
        vec![("rule:batch-size".to_string(), vec!["Jobs".to_string()])],
        "the worker's death left the repair in the journal\n{}",
        first.stderr
    );

    let second = run(&jdk, &dir.0, &policy, &state, "Jobs");
    second.expect_success().expect_stdout("batch size 10").expect_stdout("main done");
}

#[test]
fn under_jvmti_capture_an_uncaught_exception_is_journaled_before_it_propagates() {
    let jdk = default_jdk();
    let dir = TempDir::new("oneshot-jvmti");
    compile(&jdk, &dir.0, &[("Boot.java", BOOT)]);
    let policy = policy(&dir.0, "boot-port", "Boot", 8080);
    let state = dir.0.join("state");
    let options = format!("policy={policy},state={},faults=jvmti,log=info", state.display());

    let first = run_with(&jdk, &dir.0, &options, "Boot");
    assert_eq!(first.code, Some(1), "the first start dies:\n{}\n{}", first.stdout, first.stderr);
    first.expect_stderr("faults=jvmti");
    assert_eq!(
        durable(&state),
        vec![("rule:boot-port".to_string(), vec!["Boot".to_string()])],
        "the uncaught exception's repair is in the journal\n{}",
        first.stderr
    );
    run_with(&jdk, &dir.0, &options, "Boot").expect_success().expect_stdout("started on port 8080");
}
