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
            &["rewrite", spec, "In.class", "--out", out.to_str().unwrap()],
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

/// A JVM that idles: prints `READY <pid>`, answers `state` with `STATE ok`, ends when stdin closes.
const IDLE: &str = r#"
import java.io.*;
public class Idle {
    public static void main(String[] a) throws Exception {
        System.out.println("READY " + ProcessHandle.current().pid());
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in));
        for (String l; (l = in.readLine()) != null; ) System.out.println("STATE ok");
    }
}
"#;

fn idle(tag: &str) -> (agent_support::Jdk, TempDir) {
    let jdk = agent_support::default_jdk();
    let dir = TempDir::new(tag);
    agent_support::compile(&jdk, &dir.0, &[("Idle.java", IDLE)]);
    (jdk, dir)
}

fn idle_command(jdk: &agent_support::Jdk, dir: &std::path::Path, options: &str) -> Command {
    let mut c = Command::new(jdk.java());
    c.env("XDG_STATE_HOME", dir.join("state")).arg(agent_support::agentpath(options)).arg("-cp").arg(dir).arg("Idle");
    c
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn run_repairctl(args: &[&str], env: &[(&str, &str)]) -> (bool, String) {
    let out = repairctl().args(args).envs(env.iter().copied()).output().expect("repairctl runs");
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

#[test]
fn the_tcp_token_is_never_on_the_command_line() {
    let (jdk, dir) = idle("tcp-token");
    // token= in the options would show the secret to every local user: refused at load.
    let run = agent_support::finish(
        idle_command(&jdk, &dir.0, "control=tcp:127.0.0.1:1,token=s3cret")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
        Duration::from_secs(30),
    );
    assert_ne!(run.code, Some(0), "{}", run.stderr);
    assert!(run.stderr.contains("token_file=PATH"), "{}", run.stderr);

    // No token given: one is generated into a 0600 file; the command line holds none.
    let port = free_port();
    let mut jvm = agent_support::Service::start(idle_command(&jdk, &dir.0, &format!("control=tcp:127.0.0.1:{port}")));
    let token_file = repair_model::endpoint::token_path(jvm.pid).expect("a generated token file");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&token_file).unwrap().permissions().mode() & 0o777, 0o600);
    let token = std::fs::read_to_string(&token_file).unwrap();
    assert!(token.len() >= 32, "{token:?}");
    let cmdline = std::fs::read(format!("/proc/{}/cmdline", jvm.pid)).unwrap();
    assert!(!String::from_utf8_lossy(&cmdline).contains(token.trim()));
    let endpoint = format!("tcp:127.0.0.1:{port}");
    let (ok, out) = run_repairctl(&["status", "--endpoint", &endpoint], &[]);
    assert!(!ok && out.contains("token"), "no token, no status: {out}");
    let (ok, out) =
        run_repairctl(&["status", "--endpoint", &endpoint, "--token-file", token_file.to_str().unwrap()], &[]);
    assert!(ok, "{out}");
    let (ok, out) = run_repairctl(&["status", "--endpoint", &endpoint], &[("REPAIR_TOKEN", token.trim())]);
    assert!(ok, "{out}");
    let (ok, out) = run_repairctl(&["status", "--endpoint", &endpoint, "--token", "x"], &[]);
    assert!(!ok && out.contains("--token"), "repairctl takes no token argument either: {out}");
    assert!(jvm.state().contains("ok"));
    jvm.finish();
    assert!(!token_file.exists(), "the generated token file is removed at exit");
}

#[test]
fn plaintext_tcp_beyond_loopback_does_not_start() {
    let (jdk, dir) = idle("tcp-wide");
    let mut jvm =
        agent_support::Service::start(idle_command(&jdk, &dir.0, &format!("control=tcp:0.0.0.0:{}", free_port())));
    assert!(jvm.state().contains("ok"), "the JVM runs on without a control plane");
    let stderr = jvm.finish();
    assert!(stderr.contains("reachable from other hosts") && stderr.contains("tls_cert"), "{stderr}");
    assert!(stderr.contains("control plane not started"), "{stderr}");
}

#[test]
fn a_socket_directory_someone_else_made_first_is_not_used_and_the_agent_is_still_found() {
    let (jdk, dir) = idle("hijack");
    let base = dir.0.join("tmp");
    std::fs::create_dir(&base).unwrap();
    let me = repair_model::endpoint::current_uid().unwrap();
    // Another user made repair-<uid> first, open to all.
    let taken = base.join(format!("repair-{me}"));
    std::fs::create_dir(&taken).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&taken, std::fs::Permissions::from_mode(0o777)).unwrap();
    if me == 0 {
        std::os::unix::fs::chown(&taken, Some(65534), Some(65534)).unwrap();
    }
    let mut command = idle_command(&jdk, &dir.0, "log=info");
    command.env("TMPDIR", &base);
    let mut jvm = agent_support::Service::start(command);
    // repairctl runs with another TMPDIR; it finds the agent through the JVM's.
    let (ok, out) = run_repairctl(&["status", "--pid", &jvm.pid.to_string()], &[]);
    assert!(ok, "{out}");
    assert!(std::fs::read_dir(&taken).unwrap().next().is_none(), "nothing was put in the directory others made");
    assert!(jvm.state().contains("ok"));
    let stderr = jvm.finish();
    assert!(stderr.contains("someone else made it"), "{stderr}");
}

#[test]
fn root_finds_the_agent_of_another_users_jvm() {
    if repair_model::endpoint::current_uid() != Some(0) {
        eprintln!("skipping: needs root to run a JVM as another user (uid is not 0)");
        return;
    }
    let (jdk, dir) = idle("other-user");
    let base = dir.0.join("tmp");
    std::fs::create_dir(&base).unwrap();
    use std::os::unix::fs::PermissionsExt;
    for d in [&dir.0, &base] {
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o1777)).unwrap();
    }
    let inner = idle_command(&jdk, &dir.0, "");
    let mut command = Command::new("setpriv");
    command.args(["--reuid=65534", "--regid=65534", "--clear-groups"]).arg(inner.get_program()).args(inner.get_args());
    command.env("XDG_STATE_HOME", base.join("state")).env("TMPDIR", &base);
    let mut jvm = agent_support::Service::start(command);
    let (ok, out) = run_repairctl(&["status", "--pid", &jvm.pid.to_string()], &[]);
    assert!(ok, "root reaches the agent under uid 65534's directory: {out}");
    assert!(base.join("repair-65534").join(format!("{}.sock", jvm.pid)).exists());
    assert!(jvm.state().contains("ok"));
    jvm.finish();
}
