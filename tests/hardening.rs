//! repairctl against hostile or unlucky input: a pid that is not a JVM, durations no clock
//! holds, and a reader that stops reading.

mod agent_support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use agent_support::TempDir;

fn repairctl() -> Command {
    Command::new(env!("CARGO_BIN_EXE_repairctl"))
}

#[test]
fn attach_refuses_a_process_that_is_not_a_jvm_and_sends_it_nothing() {
    let dir = TempDir::new("attach-sleep");
    let mut sleep = Command::new("sleep").arg("30").current_dir(&dir.0).spawn().expect("sleep starts");
    let pid = sleep.id();
    // An agent library that exists, so the refusal must come from the pid, not from the library.
    let out = repairctl()
        .args(["attach", &pid.to_string(), "--agent", env!("CARGO_BIN_EXE_repairctl")])
        .output()
        .expect("repairctl runs");
    // SIGQUIT would have ended sleep by now; give it the time to show.
    std::thread::sleep(Duration::from_millis(200));
    let alive = sleep.try_wait().expect("wait").is_none();
    let _ = sleep.kill();
    let _ = sleep.wait();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(alive, "repairctl attach killed the non-JVM process {pid}: {stderr}");
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "process {pid} (sleep) is not a Java VM: no libjvm.so in its memory map; nothing was sent to it"
        )),
        "{stderr}"
    );
    assert!(!dir.0.join(format!(".attach_pid{pid}")).exists(), "a trigger file was left in the process's directory");
}

/// Runs repairctl on input it must refuse: exit 1 with one error line, no panic.
fn expect_refusal(args: &[&str], needles: &[&str]) {
    let out = repairctl().args(args).output().expect("repairctl runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "repairctl {args:?} panicked: {stderr}");
    assert_eq!(out.status.code(), Some(1), "repairctl {args:?}: {stderr}");
    for n in needles {
        assert!(stderr.contains(n), "repairctl {args:?}: stderr lacks {n:?}: {stderr}");
    }
}

#[test]
fn durations_no_clock_holds_are_refused_offline() {
    let dir = TempDir::new("durations");
    for (value, why) in
        [(".inf", "not a finite"), ("1e300", "longer than"), ("-3", "negative"), (".nan", "not a finite")]
    {
        let spec = dir.0.join("breaker.yaml");
        std::fs::write(
            &spec,
            format!(
                "id: b\ntarget: {{ class: a.B, method: call }}\naction:\n  breaker: {{ failures: 2, window: {value}, cooldown: 1s }}\n"
            ),
        )
        .unwrap();
        let spec = spec.to_str().unwrap();
        // The spec is parsed before the input is read: the class need not exist.
        let out = dir.0.join("out.class");
        expect_refusal(
            &["rewrite", spec, "In.class", "-o", out.to_str().unwrap()],
            &["action.breaker.window", value, why],
        );

        let policy = dir.0.join("policy.yaml");
        std::fs::write(
            &policy,
            format!(
                "mode: enforce\nrules:\n  - name: r\n    when: {{ exception: java.lang.RuntimeException, within: {value} }}\n    then:\n      - guard: {{ fallback: default }}\n"
            ),
        )
        .unwrap();
        // The policy is checked before connecting: no agent listens at this endpoint.
        expect_refusal(
            &["policy", "apply", policy.to_str().unwrap(), "--endpoint", "unix:/nonexistent/repair.sock"],
            &["rules[0].when.within", value, why],
        );
    }
}

#[test]
fn a_reader_that_stops_reading_ends_repairctl_quietly() {
    let jdk = agent_support::default_jdk();
    let dir = TempDir::new("broken-pipe");
    // Enough methods that the disassembly is several times a pipe's buffer (64 KiB), so repairctl
    // is still writing when the reader goes away.
    let methods: String = (0..1500).map(|i| format!("  static int m{i}(int x) {{ return x * {i} + 1; }}\n")).collect();
    agent_support::compile(&jdk, &dir.0, &[("Big.java", &format!("public class Big {{\n{methods}}}\n"))]);
    let class = dir.0.join("Big.class");
    let mut child = repairctl()
        .args(["javap", class.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("repairctl runs");
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut first).unwrap();
    assert!(!first.is_empty(), "repairctl javap printed nothing");
    // The reader is dropped here, as `head -1` exits.
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_ne!(out.status.code(), Some(101), "{stderr}");
    assert!(stderr.is_empty(), "a closed pipe is not an error to report: {stderr}");
}
