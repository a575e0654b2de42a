//! repairctl as a user runs it: the real binary against real JVMs with the agent. `ps`, the
//! default pid (in a pid namespace of its own, so other JVMs on the host do not count), options
//! anywhere, help with examples, completions, every -o format, empty lists, long ids, a JVM that
//! exits under --follow, `| head`, progress on a terminal (a pty from `script`) and not in a pipe,
//! the advice for a process that is not a JVM, WHO without $USER, and `diff`.

mod agent_support;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use agent_support::{agentpath, compile, default_jdk, Jdk, Service, TempDir};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_repairctl");

/// A JVM that prints `READY <pid>`, answers `state` with `STATE ok` and `fault` with a caught
/// NullPointerException in `Svc.price` (then `FAULT`; `fault2`: an ArithmeticException in
/// `Svc.ratio`), and ends when its stdin closes.
const SVC: &str = r#"
import java.io.*;
import java.util.*;
public class Svc {
    static final Map<String, Long> prices = new HashMap<>(Map.of("apple", 3L));
    static long price(String k) { return prices.get(k).longValue(); }
    static int ratio(int a, int b) { return a / b; }
    public static void main(String[] a) throws Exception {
        System.out.println("READY " + ProcessHandle.current().pid());
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in));
        for (String l; (l = in.readLine()) != null; ) {
            if (l.equals("fault")) {
                try { price("durian"); } catch (NullPointerException e) { }
                System.out.println("FAULT");
            } else if (l.equals("fault2")) {
                try { ratio(1, 0); } catch (ArithmeticException e) { }
                System.out.println("FAULT");
            } else {
                System.out.println("STATE ok price=" + (l.equals("price") ? String.valueOf(price("durian")) : "-"));
            }
        }
    }
}
"#;

fn setup(tag: &str) -> (Jdk, TempDir) {
    let jdk = default_jdk();
    let dir = TempDir::new(tag);
    compile(&jdk, &dir.0, &[("Svc.java", SVC)]);
    (jdk, dir)
}

fn java_command(jdk: &Jdk, dir: &Path, agent: bool) -> Command {
    let mut c = Command::new(jdk.java());
    c.env("XDG_STATE_HOME", dir.join("state"));
    if agent {
        c.arg(agentpath(""));
    }
    c.arg("-cp").arg(dir).arg("Svc");
    c
}

fn start(jdk: &Jdk, dir: &Path, agent: bool) -> Service {
    Service::start(java_command(jdk, dir, agent))
}

fn run(args: &[&str]) -> Output {
    Command::new(BIN).args(args).stdin(Stdio::null()).output().expect("repairctl runs")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Runs repairctl, which must succeed; its stdout.
fn ok(args: &[&str]) -> String {
    let out = run(args);
    assert!(out.status.success(), "repairctl {args:?} failed: {}{}", text(&out.stdout), text(&out.stderr));
    text(&out.stdout)
}

/// Runs repairctl, which must fail with one `repairctl: error:` line; that line.
fn fails(args: &[&str]) -> String {
    let out = run(args);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "repairctl {args:?}: {}{err}", text(&out.stdout));
    assert!(err.starts_with("repairctl: error: ") && err.trim_end().lines().count() == 1, "one line: {err}");
    err
}

fn json(args: &[&str]) -> Value {
    let out = ok(args);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("repairctl {args:?}: not JSON ({e}): {out}"))
}

fn write(dir: &Path, name: &str, content: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, content).unwrap();
    p.to_str().unwrap().to_string()
}

fn guard_spec(id: &str) -> String {
    format!(
        "id: {id}\ntarget: {{ class: Svc, method: \"price(Ljava/lang/String;)J\" }}\naction:\n  guard: {{ catch: [java.lang.NullPointerException], fallback: {{ value: 7 }} }}\n"
    )
}

#[test]
fn ps_lists_the_jvms_with_and_without_the_agent() {
    let (jdk, dir) = setup("ux-ps");
    let with = start(&jdk, &dir.0, true);
    let without = start(&jdk, &dir.0, false);
    let all = json(&["ps", "-o", "json"]);
    let find = |v: &Value, pid: u32| v.as_array().unwrap().iter().find(|j| j["pid"] == pid).cloned();
    let a = find(&all, with.pid).unwrap_or_else(|| panic!("ps lacks JVM {}: {all}", with.pid));
    let b = find(&all, without.pid).unwrap_or_else(|| panic!("ps lacks JVM {}: {all}", without.pid));
    assert_eq!((&a["main"], &a["agent"]), (&Value::from("Svc"), &Value::from(true)), "{a}");
    assert_eq!((&b["main"], &b["agent"]), (&Value::from("Svc"), &Value::from(false)), "{b}");
    assert!(a["endpoint"].as_str().unwrap().starts_with("unix:") && a["endpoint"].as_str().unwrap().ends_with(".sock"));
    assert!(b["endpoint"].is_null());
    assert!(a["jdk"].as_str().unwrap().chars().next().unwrap().is_ascii_digit(), "a JDK version: {a}");
    assert!(a["uptime_s"].as_u64().unwrap() < 600);
    let table = ok(&["ps"]);
    assert!(table.starts_with("PID "), "{table}");
    let row = table.lines().find(|l| l.starts_with(&format!("{} ", with.pid))).expect("a row of the JVM");
    assert!(row.contains("Svc") && row.contains(" yes ") && row.contains("unix:"), "{row}");
    let agents = json(&["ps", "--agent", "-o", "json"]);
    assert!(find(&agents, with.pid).is_some() && find(&agents, without.pid).is_none(), "{agents}");
}

/// Runs `script` (sh) in a pid namespace of its own with a fresh /proc: only the JVMs it starts
/// are on its "host". `$R` is repairctl, `$JAVA` java, `$SVC` the class path, `$AGENT` the agent.
fn in_pid_namespace(jdk: &Jdk, dir: &Path, script: &str) -> Option<String> {
    if !Command::new("unshare").args(["--pid", "--fork", "--mount-proc", "true"]).status().is_ok_and(|s| s.success()) {
        eprintln!("skipping: cannot make a pid namespace (unshare --pid needs root or user namespaces)");
        return None;
    }
    let tmp = dir.join("tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    let out = Command::new("unshare")
        .args(["--pid", "--fork", "--mount-proc", "sh", "-c", script])
        .env("R", BIN)
        .env("JAVA", jdk.java())
        .env("SVC", dir)
        .env("AGENT", agentpath(""))
        .env("XDG_STATE_HOME", dir.join("state"))
        // The agents' sockets in a directory of this test: pids in a new namespace are small
        // and a socket left in /tmp by another run with the same pid must not be found.
        .env("TMPDIR", &tmp)
        .output()
        .expect("unshare runs");
    Some(format!("{}{}", text(&out.stdout), text(&out.stderr)))
}

#[test]
fn the_only_jvm_with_the_agent_is_used_when_no_pid_is_given_and_named() {
    let (jdk, dir) = setup("ux-default");
    // Waits for N agents' sockets in this test's TMPDIR.
    let script = r#"
        wait_for() { for i in $(seq 200); do [ "$(ls "$TMPDIR"/repair-*/*.sock 2>/dev/null | wc -l)" -ge "$1" ] && return; sleep 0.1; done; echo "TIMEOUT waiting for $1"; }
        echo "== none"; "$R" status 2>&1; echo "rc=$?"
        sleep 60 | "$JAVA" -cp "$SVC" Svc >/dev/null &
        sleep 60 | "$JAVA" "$AGENT" -cp "$SVC" Svc >/dev/null &
        wait_for 1
        echo "== one"; "$R" status -o json 2>"$TMPDIR/err"; echo "rc=$?"; echo "STDERR $(cat "$TMPDIR/err")"
        echo "== ps"; "$R" ps -o json
        echo
        sleep 60 | "$JAVA" "$AGENT" -cp "$SVC" Svc >/dev/null &
        wait_for 2
        echo "== two"; "$R" patches 2>&1; echo "rc=$?"
        kill $(pgrep java) 2>/dev/null
    "#;
    let Some(out) = in_pid_namespace(&jdk, &dir.0, script) else { return };
    assert!(!out.contains("TIMEOUT"), "{out}");
    let section = |name: &str| {
        let start = out.find(&format!("== {name}\n")).unwrap_or_else(|| panic!("no section {name}: {out}"));
        let rest = &out[start + name.len() + 4..];
        rest[..rest.find("\n== ").unwrap_or(rest.len())].to_string()
    };
    let none = section("none");
    assert!(none.contains("no JVM on this host has the agent") && none.contains("rc=1"), "{none}");
    let one = section("one");
    assert!(one.contains("rc=0"), "{one}");
    let status: Value = serde_json::from_str(one.lines().next().unwrap()).unwrap_or_else(|e| panic!("{e}: {one}"));
    let ps: Value = serde_json::from_str(section("ps").trim()).unwrap();
    let agent_pid =
        ps.as_array().unwrap().iter().find(|j| j["agent"] == true).expect("the JVM with the agent")["pid"].clone();
    assert_eq!(status["pid"], agent_pid, "the JVM with the agent, not the one without: {out}");
    assert!(
        one.contains(&format!("STDERR repairctl: JVM {agent_pid} (Svc), the only one with the agent")),
        "which JVM was picked is said on stderr: {one}"
    );
    let two = section("two");
    assert!(
        two.contains("2 JVMs have the agent") && two.contains("give one with --pid") && two.contains("rc=1"),
        "{two}"
    );
}

#[test]
fn options_go_before_or_after_the_command() {
    let (jdk, dir) = setup("ux-global");
    let mut jvm = start(&jdk, &dir.0, true);
    let pid = jvm.pid.to_string();
    let spec = write(&dir.0, "g.yaml", &guard_spec("g"));
    let applied = json(&["--pid", &pid, "-o", "json", "apply", &spec]);
    assert_eq!(applied["id"], "g");
    assert!(jvm.send("price").contains("price=7"), "the patch is in force");
    for args in [
        vec!["--pid", &pid, "patches", "-o", "json"],
        vec!["patches", "--pid", &pid, "-o", "json"],
        vec!["-o", "json", "patches", "--pid", &pid],
        vec!["-p", &pid, "-o", "json", "patches"],
    ] {
        assert_eq!(json(&args)[0]["id"], "g", "{args:?}");
    }
    let err = fails(&["--pid", &pid, "rollback", "nope"]);
    assert!(err.contains("nope"), "{err}");
    assert_eq!(json(&["-o", "json", "--pid", &pid, "rollback", "g"])[0]["id"], "g");
}

/// The help of `words` (`["policy", "apply"]`) as `--help` prints it.
fn long_help(words: &[&str]) -> String {
    let mut args: Vec<&str> = words.to_vec();
    args.push("--help");
    ok(&args)
}

/// The entries of the `Arguments:` and `*options:` sections of a long help: (name, text).
fn entries(help: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    let mut in_section = false;
    for line in help.lines() {
        if !line.starts_with(' ') && !line.is_empty() {
            in_section = line == "Arguments:" || line.ends_with("options:") || line == "Options:";
            continue;
        }
        if !in_section || line.trim().is_empty() {
            continue;
        }
        let indent = line.len() - line.trim_start().len();
        if indent <= 6
            && (line.trim_start().starts_with('-')
                || line.trim_start().starts_with('<')
                || line.trim_start().starts_with('['))
        {
            out.push((line.trim().to_string(), String::new()));
        } else if let Some(last) = out.last_mut() {
            last.1.push_str(line.trim());
            last.1.push(' ');
        }
    }
    out
}

#[test]
fn every_command_and_argument_has_help_with_an_example() {
    let top = ok(&["--help"]);
    let commands: Vec<String> = top
        .split("Commands:\n")
        .nth(1)
        .expect("a command list")
        .lines()
        .take_while(|l| l.starts_with("  "))
        .map(|l| l.split_whitespace().next().unwrap().to_string())
        .collect();
    for c in ["ps", "status", "faults", "apply", "deploy", "diff", "rollback", "rewrite", "completions", "help"] {
        assert!(commands.iter().any(|x| x == c), "{c} is not listed: {commands:?}");
    }
    assert!(top.contains("Examples:") && top.contains("repairctl help TOPIC"), "{top}");
    let mut paths: Vec<Vec<&str>> = commands.iter().map(|c| vec![c.as_str()]).collect();
    paths.retain(|p| p[0] != "policy");
    paths.push(vec!["policy", "apply"]);
    paths.push(vec!["policy", "show"]);
    let mut checked = 0;
    for p in &paths {
        let help = long_help(p);
        assert!(help.contains("Examples:\n  repairctl"), "repairctl {p:?} --help has no examples:\n{help}");
        for (name, text) in entries(&help) {
            if name.starts_with("-h, --help") || name.starts_with("-V") {
                continue;
            }
            assert!(text.contains("Example"), "repairctl {p:?}: {name} has no example: {text:?}");
            checked += 1;
        }
    }
    assert!(checked > 40, "only {checked} arguments found: the parsing of the help is off");
    // help COMMAND is the command's help; help TOPIC the formats.
    assert!(ok(&["help", "rollback"]).contains("Roll back one patch"));
    assert!(ok(&["help", "policy", "apply"]).contains("Replace the policy"));
    let spec = ok(&["help", "spec"]);
    assert!(
        spec.contains("target:") && spec.contains("guard") && spec.contains("breaker") && spec.contains("fallback"),
        "{spec}"
    );
    let policy = ok(&["help", "policy"]);
    assert!(policy.contains("rules:") && policy.contains("when:") && policy.contains("validate"), "{policy}");
    let err = fails(&["help", "nonsense"]);
    assert!(err.contains("spec, policy"), "{err}");
}

#[test]
fn completions_for_bash_zsh_and_fish() {
    let bash = ok(&["completions", "bash"]);
    let dir = TempDir::new("ux-completions");
    let file = write(&dir.0, "repairctl.bash", &bash);
    // Complete `repairctl roll` and `repairctl rollback --p` in a real bash.
    let probe = format!(
        "source {file}\nCOMP_WORDS=(repairctl roll); COMP_CWORD=1; _repairctl repairctl roll repairctl; echo \"1:${{COMPREPLY[*]}}\"\n\
         COMP_WORDS=(repairctl rollback --p); COMP_CWORD=2; _repairctl repairctl --p rollback; echo \"2:${{COMPREPLY[*]}}\"\n"
    );
    let out = Command::new("bash").args(["-c", &probe]).output().unwrap();
    let said = text(&out.stdout);
    assert!(said.contains("1:rollback"), "{said}{}", text(&out.stderr));
    assert!(said.lines().any(|l| l.starts_with("2:") && l.contains("--pid")), "{said}{}", text(&out.stderr));
    let zsh = ok(&["completions", "zsh"]);
    assert!(zsh.starts_with("#compdef repairctl") && zsh.contains("rollback") && zsh.contains("--output"), "{zsh}");
    let fish = ok(&["completions", "fish"]);
    assert!(
        fish.contains("complete -c repairctl") && fish.contains("rollback") && fish.contains("-l output"),
        "{fish}"
    );
    let err = run(&["completions", "tcsh"]);
    assert_eq!(err.status.code(), Some(2));
}

#[test]
fn every_output_format_long_ids_and_empty_lists() {
    let (jdk, dir) = setup("ux-formats");
    let mut jvm = start(&jdk, &dir.0, true);
    let pid = jvm.pid.to_string();
    let p = ["--pid", pid.as_str()];
    let with = |args: &[&str], o: &str| -> String {
        let mut a: Vec<&str> = args.to_vec();
        a.extend_from_slice(&p);
        a.extend_from_slice(&["-o", o]);
        ok(&a)
    };
    // Empty lists say what is empty (and JSON is an empty list).
    assert_eq!(with(&["patches"], "table"), "no patches\n");
    assert_eq!(with(&["faults"], "table"), "no faults\n");
    assert_eq!(with(&["classes", "no.such.*"], "table"), "no loaded class matches no.such.*\n");
    assert_eq!(with(&["rollback", "--all"], "table"), "no patches to roll back\n");
    assert_eq!(with(&["history"], "table").lines().last().unwrap(), "no records");
    assert_eq!(with(&["patches"], "json"), "[]\n");
    assert_eq!(with(&["patches"], "yaml"), "[]\n");

    // A patch with a 10 KB id: cut in the table, whole in wide, JSON and YAML.
    assert!(jvm.send("fault").contains("FAULT"));
    let long_id = format!("long-{}", "x".repeat(10_000));
    let spec = write(&dir.0, "long.yaml", &guard_spec(&long_id));
    ok(&["apply", &spec, "--pid", &pid]);
    let table = with(&["patches"], "table");
    assert!(table.lines().all(|l| l.chars().count() <= 200), "a table fits a terminal:\n{table}");
    assert!(table.contains("long-xxx") && table.contains('…') && table.contains("active"), "{table}");
    assert!(with(&["patches"], "wide").contains(&long_id));
    assert_eq!(serde_json::from_str::<Value>(&with(&["patches"], "json")).unwrap()[0]["id"], long_id.as_str());
    let yaml: serde_yaml_ng::Value = serde_yaml_ng::from_str(&with(&["patches"], "yaml")).unwrap();
    assert_eq!(yaml[0]["id"].as_str(), Some(long_id.as_str()));

    // Every command that prints records, in every format.
    let commands: &[&[&str]] = &[
        &["status"],
        &["faults"],
        &["classes", "Svc"],
        &["patches"],
        &["history"],
        &["events"],
        &["policy", "show"],
        &["javap", "Svc"],
        &["ps"],
    ];
    for c in commands {
        let j = with(c, "json");
        let v: Value = serde_json::from_str(&j).unwrap_or_else(|e| panic!("{c:?} -o json: {e}: {j}"));
        let y = with(c, "yaml");
        let yv: serde_yaml_ng::Value =
            serde_yaml_ng::from_str(&y).unwrap_or_else(|e| panic!("{c:?} -o yaml: {e}: {y}"));
        let yv = serde_json::to_value(&yv).unwrap();
        // ps lists every JVM on the host, which other tests start and stop meanwhile: this test's
        // JVM is compared (its uptime may tick between the two calls: the same fields).
        let this_jvm = |list: &Value| {
            list.as_array()
                .and_then(|l| {
                    l.iter().find(|j| j["pid"].as_u64().map(|p| p.to_string()).as_deref() == Some(pid.as_str()))
                })
                .cloned()
        };
        let (yv, v) = if c[0] == "ps" { (this_jvm(&yv).unwrap(), this_jvm(&v).unwrap()) } else { (yv, v) };
        match (&yv, &v) {
            // status changes between two calls (its uptime): the same fields.
            (Value::Object(a), Value::Object(b)) => {
                assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>(), "{c:?}: YAML and JSON")
            }
            _ => assert_eq!(yv, v, "{c:?}: YAML and JSON hold the same"),
        }
        let t = with(c, "table");
        assert!(!t.trim().is_empty() && !t.trim_start().starts_with('{'), "{c:?} -o table: {t}");
        assert!(with(c, "wide").len() >= t.len(), "{c:?}: wide is never shorter");
    }
    assert!(with(&["javap", "Svc"], "json").contains("\"javap\":\"Classfile Svc"), "javap -o json holds the listing");
    let faults = with(&["faults"], "table");
    assert!(faults.contains("NullPointerException") && faults.contains("Svc.price"), "{faults}");
    // The status table names what is missing; -o wide says why.
    let status = with(&["status"], "table");
    let missing = status.lines().find(|l| l.starts_with("missing")).unwrap();
    assert!(missing.len() < 160 && !missing.contains("not asked for"), "{missing}");
    jvm.finish();
}

/// Lines from a `--follow` child, read on a thread so that a test waits 30 s at most.
fn line_reader(stdout: std::process::ChildStdout) -> std::sync::mpsc::Receiver<String> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for l in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(l);
        }
    });
    rx
}

fn read_lines(rx: &std::sync::mpsc::Receiver<String>, n: usize) -> Vec<String> {
    (0..n).map_while(|_| rx.recv_timeout(Duration::from_secs(30)).ok()).collect()
}

#[test]
fn a_jvm_that_exits_under_follow_ends_the_stream_in_one_line_with_status_0() {
    let (jdk, dir) = setup("ux-follow");
    for what in ["faults", "events"] {
        let mut jvm = start(&jdk, &dir.0, true);
        let pid = jvm.pid.to_string();
        assert!(jvm.send("fault").contains("FAULT"));
        if what == "events" {
            let spec = write(&dir.0, "f.yaml", &guard_spec("f"));
            ok(&["apply", &spec, "--pid", &pid]);
        }
        let mut child = Command::new(BIN)
            .args([what, "--follow", "-o", "json", "--pid", &pid])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let reader = line_reader(child.stdout.take().unwrap());
        let first = read_lines(&reader, 1);
        assert_eq!(first.len(), 1, "{what}: a record of what happened before the stream began");
        // Something new while following: a rollback event, or a fault at another site.
        if what == "events" {
            ok(&["rollback", "f", "--pid", &pid]);
        } else {
            assert!(jvm.send("fault2").contains("FAULT"));
        }
        let second = read_lines(&reader, 1);
        for l in first.iter().chain(&second) {
            let v: Value =
                serde_json::from_str(l).unwrap_or_else(|e| panic!("{what}: one JSON object a line: {e}: {l}"));
            assert!(v.is_object(), "{what}: {l}");
        }
        assert_eq!(second.len(), 1, "{what}: the new record streams");
        jvm.finish();
        let started = Instant::now();
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            if started.elapsed() > Duration::from_secs(15) {
                let _ = child.kill();
                panic!("{what} --follow did not end when the JVM exited");
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let mut err = String::new();
        std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
        assert_eq!(status.code(), Some(0), "{what}: {err}");
        assert_eq!(err, format!("repairctl: JVM {pid} exited; the stream ended\n"), "{what}");
    }
}

#[test]
fn a_reader_that_stops_reading_ends_repairctl_quietly_also_under_follow() {
    let (jdk, dir) = setup("ux-head");
    let mut jvm = start(&jdk, &dir.0, true);
    let pid = jvm.pid.to_string();
    // Over a pipe's buffer of classes, cut by head: repairctl ends with 0 and says nothing.
    let out = Command::new("bash")
        .args(["-c", &format!("set -o pipefail; '{BIN}' classes '**' -o wide --pid {pid} | head -3; echo \"status=${{PIPESTATUS[0]}}\"")])
        .output()
        .unwrap();
    let said = text(&out.stdout);
    assert!(said.starts_with("CLASS") && said.lines().count() == 4, "{said}");
    assert!(said.ends_with("status=0\n"), "{said}");
    assert_eq!(text(&out.stderr), "", "a closed pipe is not an error to report");

    // A stream cut by head ends at its next record.
    assert!(jvm.send("fault").contains("FAULT"));
    let pipeline = Command::new("bash")
        .args([
            "-c",
            &format!("'{BIN}' faults --follow -o json --pid {pid} | head -1; echo \"status=${{PIPESTATUS[0]}}\""),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    // A new record (a fault at another site): repairctl writes, finds the reader gone and ends.
    assert!(jvm.send("fault2").contains("FAULT"));
    let run = agent_support::finish(pipeline, Duration::from_secs(20));
    assert_eq!(run.code, Some(0), "the pipeline ended: {}{}", run.stdout, run.stderr);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{}", run.stdout);
    assert!(serde_json::from_str::<Value>(lines[0]).is_ok(), "{}", run.stdout);
    assert_eq!(lines[1], "status=0");
    assert_eq!(run.stderr, "");
    jvm.finish();
}

#[test]
fn rewrite_shows_progress_on_a_terminal_only_and_a_summary() {
    let jdk = default_jdk();
    let dir = TempDir::new("ux-progress");
    let sources: Vec<(String, String)> = (0..150)
        .map(|i| {
            (
                format!("C{i}.java"),
                format!(
                    "public class C{i} {{ static int m(int x) {{ return x * {i}; }} int n() {{ return {i}; }} }}\n"
                ),
            )
        })
        .collect();
    let refs: Vec<(&str, &str)> = sources.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    compile(&jdk, &dir.0, &refs);
    let jar = dir.0.join("in.jar");
    let st = Command::new(jdk.tool("jar")).arg("cf").arg(&jar).arg("-C").arg(&dir.0).arg(".").status().unwrap();
    assert!(st.success());
    let out_jar = dir.0.join("out.jar");
    let args = format!("'{BIN}' rewrite --guard-all '{}' --out '{}'", jar.display(), out_jar.display());

    // In a pipe: the summary on stdout, nothing on stderr.
    let piped = Command::new("sh").args(["-c", &args]).output().unwrap();
    assert!(piped.status.success(), "{}", text(&piped.stderr));
    assert_eq!(text(&piped.stderr), "", "no progress when stderr is not a terminal");
    let summary = text(&piped.stdout);
    assert!(
        summary.starts_with("150 of 150 classes rewritten, 450 methods guarded")
            && summary.contains(" s (")
            && summary.contains("out.jar"),
        "{summary}"
    );
    // On a terminal (a pty from script): the progress line, then the same summary.
    let tty = Command::new("script").args(["-qec", &args, "/dev/null"]).output().unwrap();
    assert!(tty.status.success(), "{}", text(&tty.stderr));
    let screen = text(&tty.stdout);
    assert!(screen.contains("rewriting: 0/") && screen.contains(" entries ("), "a progress line: {screen:?}");
    assert!(screen.contains("\r\x1b[K"), "the progress line is cleared: {screen:?}");
    assert!(screen.contains("150 of 150 classes rewritten"), "{screen:?}");
    // -o json: the summary as JSON.
    let v = json(&["rewrite", "--guard-all", jar.to_str().unwrap(), "--out", out_jar.to_str().unwrap(), "-o", "json"]);
    assert_eq!((v["classes"].as_u64(), v["methods"].as_u64()), (Some(150), Some(450)), "{v}");
}

#[test]
fn advice_fits_the_process_a_pid_names() {
    let mut sleep = Command::new("sleep").arg("30").spawn().unwrap();
    let err = fails(&["status", "--pid", &sleep.id().to_string()]);
    let _ = sleep.kill();
    let _ = sleep.wait();
    assert!(err.contains("(sleep) is not a Java VM") && !err.contains("attach"), "{err}");
    let (jdk, dir) = setup("ux-advice");
    let mut jvm = start(&jdk, &dir.0, false);
    let pid = jvm.pid.to_string();
    // A socket left by a killed JVM that had this pid before (older than this JVM) is not its.
    let uid = std::os::unix::fs::MetadataExt::uid(&std::fs::metadata(&dir.0).unwrap());
    let private = std::env::temp_dir().join(format!("repair-{uid}"));
    if !private.exists() {
        std::fs::create_dir(&private).unwrap();
        std::fs::set_permissions(&private, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    }
    let stale = private.join(format!("{pid}.sock"));
    let _ = std::os::unix::net::UnixListener::bind(&stale);
    let touched = Command::new("touch").args(["-h", "-d", "2000-01-01"]).arg(&stale).status().unwrap();
    assert!(touched.success());
    let err = fails(&["patches", "--pid", &pid]);
    let _ = std::fs::remove_file(&stale);
    assert!(
        err.contains(&format!("no repair agent in JVM {pid}")) && err.contains(&format!("repairctl attach {pid}")),
        "{err}"
    );
    // After attach the next command finds the agent at once.
    let said = ok(&["attach", &pid]);
    assert!(said.contains(&format!("agent loaded into JVM {pid}, listening on unix:")), "{said}");
    assert_eq!(ok(&["patches", "--pid", &pid]), "no patches\n");
    assert!(jvm.state().contains("ok"));
}

#[test]
fn who_without_user_is_the_name_of_the_uid() {
    let (jdk, dir) = setup("ux-who");
    let jvm = start(&jdk, &dir.0, true);
    let pid = jvm.pid.to_string();
    let spec = write(&dir.0, "w.yaml", &guard_spec("w"));
    let out = Command::new(BIN)
        .args(["apply", &spec, "--pid", &pid, "-o", "json"])
        .env_remove("USER")
        .env_remove("LOGNAME")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let uid = repair_model::endpoint::current_uid().unwrap();
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap();
    let name = passwd
        .lines()
        .find(|l| l.split(':').nth(2) == Some(&uid.to_string()))
        .map(|l| l.split(':').next().unwrap().to_string())
        .expect("the uid is in /etc/passwd");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["who"], format!("operator:{name}"), "not operator:uid:{uid}");
}

#[test]
fn diff_shows_the_patched_method_before_and_after() {
    let (jdk, dir) = setup("ux-diff");
    let jvm = start(&jdk, &dir.0, true);
    let pid = jvm.pid.to_string();
    let spec = write(&dir.0, "d.yaml", &guard_spec("d"));
    ok(&["apply", &spec, "--pid", &pid]);
    let diff = ok(&["diff", "d", "--pid", &pid]);
    assert!(
        diff.starts_with(
            "--- Svc.price(Ljava/lang/String;)J (as loaded)\n+++ Svc.price(Ljava/lang/String;)J (with patch d)\n@@ -"
        ),
        "{diff}"
    );
    let added: Vec<&str> = diff.lines().filter(|l| l.starts_with('+') && !l.starts_with("+++")).collect();
    let removed: Vec<&str> = diff.lines().filter(|l| l.starts_with('-') && !l.starts_with("---")).collect();
    assert!(
        added.iter().any(|l| l.contains("Hooks.fallback"))
            && added.iter().any(|l| l.contains("ldc2_w") || l.contains("lconst") || l.contains("bipush")),
        "{diff}"
    );
    assert!(added.iter().any(|l| l.contains("java/lang/NullPointerException")), "the handler: {diff}");
    assert!(removed.iter().any(|l| l.contains("0: getstatic")), "the original's first instruction moved: {diff}");
    assert!(!diff.contains("main("), "only the patched method: {diff}");
    let v = json(&["diff", "d", "--pid", &pid, "-o", "json"]);
    assert_eq!(v["classes"][0]["class"], "Svc");
    assert!(v["classes"][0]["diff"].as_str().unwrap().contains("Hooks.fallback"));
    let whole = ok(&["diff", "d", "--class", "--pid", &pid]);
    assert!(whole.contains("Constant pool") || whole.contains("#"), "{whole}");
    let err = fails(&["diff", "nope", "--pid", &pid]);
    assert!(err.contains("no active patch \"nope\" (active: d)"), "{err}");
}
