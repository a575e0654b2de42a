//! librepair.so in real JVMs: loading, options, the runtime hooks, fault capture and attach.

mod agent_support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use agent_support::{agentpath, compile, finish, java, jdks, TempDir};

const HOOKS_CALLER: &str = r#"
import java.lang.reflect.Method;
public class HooksCaller {
    public static void main(String[] args) throws Exception {
        Class<?> h = Class.forName("repair.rt.Hooks");
        if (h.getClassLoader() != null) throw new AssertionError("Hooks is not in the bootstrap loader");
        Method fallback = h.getMethod("fallback", int.class, Throwable.class);
        for (int i = 0; i < 3; i++) fallback.invoke(null, 42, new IllegalStateException("broken " + i));
        h.getMethod("enter", int.class).invoke(null, 7);
        h.getMethod("enterAt", int.class, long.class).invoke(null, 7, System.nanoTime());
        h.getMethod("exitAt", int.class, long.class).invoke(null, 7, System.nanoTime());
        h.getMethod("thrown", int.class, Throwable.class).invoke(null, 8, new RuntimeException("probe"));
        h.getMethod("line", int.class, int.class).invoke(null, 9, 120);
        System.out.println("hooks called");
    }
}
"#;

const FAULTY: &str = r#"
public class Faulty {
    static int parse(String s) { return Integer.parseInt(s); }
    static void fail(int i) {
        if (i % 2 == 0) throw new IllegalStateException("bad " + i);
    }
    static void die() { throw new UnsupportedOperationException("no handler"); }
    public static void main(String[] args) {
        // Caught by a specific handler: the program's normal flow, not a fault.
        for (int i = 0; i < 5; i++) { try { parse("x" + i); } catch (NumberFormatException e) { } }
        // Caught by a generic handler: a fault, one site, counted twice (i = 0, 2).
        for (int i = 0; i < 4; i++) { try { fail(i); } catch (Exception e) { } }
        try { fail(0); } catch (IllegalStateException e) { }
        // Caught by nothing: the thread dies.
        Thread t = new Thread(Faulty::die, "doomed");
        t.start();
        try { t.join(); } catch (InterruptedException e) { }
        // The same throw site, caught this time: with exception events, a fault of its own.
        try { die(); } catch (RuntimeException e) { }
        System.out.println("faulty done");
    }
}
"#;

#[test]
fn agent_loads_at_startup_and_the_program_runs_normally() {
    for jdk in jdks() {
        let dir = TempDir::new("load");
        compile(&jdk, &dir.0, &[("HooksCaller.java", HOOKS_CALLER)]);
        let run = java(&jdk, &dir.0, &[agentpath("")], "HooksCaller");
        run.expect_success().expect_stdout("hooks called").expect_stderr("repair: loaded (at start-up)");
        // The default keeps exception events off: holding them makes every throw dearer.
        run.expect_stderr("faults=bytecode").expect_stderr("can_retransform_classes");
        run.expect_stderr("without: can_generate_exception_events (not asked for");
        let expected_version = if jdk.name == "JDK 25" { "JVMTI 25." } else { "JVMTI 17." };
        run.expect_stderr(expected_version);
    }
}

#[test]
fn hooks_natives_reach_the_agent_and_are_counted_per_id() {
    for jdk in jdks() {
        let dir = TempDir::new("hooks");
        compile(&jdk, &dir.0, &[("HooksCaller.java", HOOKS_CALLER)]);
        let run = java(&jdk, &dir.0, &[agentpath("log=info")], "HooksCaller");
        run.expect_success();
        run.expect_stderr("report 7 (patch -): fallbacks=0 enters=2 exits=1 throws=0 lines=0");
        run.expect_stderr("report 9 (patch -): fallbacks=0 enters=0 exits=0 throws=0 lines=1");
        run.expect_stderr("report 42 (patch -): fallbacks=3 enters=0 exits=0 throws=0 lines=0");
        // A `thrown` probe records a fault at the innermost application frame.
        run.expect_stderr("report 8 (patch -): fallbacks=0 enters=0 exits=0 throws=1");
        run.expect_stderr("java.lang.RuntimeException x1 at HooksCaller.main([Ljava/lang/String;)V");
    }
}

#[test]
fn a_bad_option_is_refused_with_its_name() {
    for jdk in jdks() {
        let dir = TempDir::new("badopt");
        compile(&jdk, &dir.0, &[("HooksCaller.java", HOOKS_CALLER)]);
        let run = java(&jdk, &dir.0, &[agentpath("colour=red")], "HooksCaller");
        assert_ne!(run.code, Some(0), "the JVM must not start with a refused agent");
        run.expect_stderr("repair: refusing to load: unknown option \"colour\"");
        assert!(!run.stdout.contains("hooks called"));
        let run = java(&jdk, &dir.0, &[agentpath("faults=sometimes")], "HooksCaller");
        assert_ne!(run.code, Some(0));
        run.expect_stderr("faults=\"sometimes\": expected jvmti, bytecode or off");
    }
}

#[test]
fn a_second_load_at_startup_is_ignored_with_a_message() {
    for jdk in jdks() {
        let dir = TempDir::new("twice");
        compile(&jdk, &dir.0, &[("HooksCaller.java", HOOKS_CALLER)]);
        let run = java(&jdk, &dir.0, &[agentpath("log=info"), agentpath("log=debug")], "HooksCaller");
        run.expect_success().expect_stdout("hooks called");
        run.expect_stderr("the agent is already loaded in this JVM");
        assert_eq!(run.stderr.matches("repair: loaded").count(), 1, "initialized once:\n{}", run.stderr);
        // Counted once: one set of natives, one registry.
        run.expect_stderr("report 42 (patch -): fallbacks=3 ");
    }
}

#[test]
fn faults_jvmti_captures_exceptions_reaching_generic_handlers_only() {
    for jdk in jdks() {
        let dir = TempDir::new("faults");
        compile(&jdk, &dir.0, &[("Faulty.java", FAULTY)]);
        let run = java(&jdk, &dir.0, &[agentpath("faults=jvmti,log=info")], "Faulty");
        run.expect_success().expect_stdout("faulty done").expect_stderr("faults=jvmti");
        run.expect_stderr(
            "fault #1 java.lang.IllegalStateException x2 at Faulty.fail(I)V bci 19 line 5 thread \"main\", caught: bad 0",
        );
        run.expect_stderr(
            "java.lang.UnsupportedOperationException x1 at Faulty.die()V bci 9 line 7 thread \"doomed\", uncaught: no handler",
        );
        assert!(!run.stderr.contains("NumberFormatException"), "specific handlers are not faults:\n{}", run.stderr);
        run.expect_stderr(
            "java.lang.UnsupportedOperationException x1 at Faulty.die()V bci 9 line 7 thread \"main\", caught: no handler",
        );
        assert_eq!(run.stderr.matches("fault #").count(), 3, "{}", run.stderr);
    }
}

#[test]
fn by_default_the_agent_prints_one_line_at_load_and_warnings_only() {
    for jdk in jdks() {
        let dir = TempDir::new("quiet");
        compile(&jdk, &dir.0, &[("Faulty.java", FAULTY)]);
        let run = java(&jdk, &dir.0, &[agentpath("")], "Faulty");
        run.expect_success().expect_stdout("faulty done");
        let ours: Vec<&str> = run.stderr.lines().filter(|l| l.starts_with("repair: ")).collect();
        assert_eq!(ours.len(), 1, "{}: one line at load, no fault or exit report:\n{}", jdk.name, run.stderr);
        assert!(ours[0].contains("loaded (at start-up)") && ours[0].contains("control plane listening on unix:"));
        // Every line of the JVM's stderr that is not the program's is the agent's, prefixed.
        let others: Vec<&str> = run.stderr.lines().filter(|l| !l.starts_with("repair: ")).collect();
        assert!(others.iter().all(|l| !l.contains("fault #")), "{}", run.stderr);
    }
}

#[test]
fn faults_bytecode_records_what_leaves_application_methods_at_its_source_line() {
    for jdk in jdks() {
        let dir = TempDir::new("faults-bytecode");
        compile(&jdk, &dir.0, &[("Faulty.java", FAULTY)]);
        let run = java(&jdk, &dir.0, &[agentpath("log=info")], "Faulty");
        run.expect_success().expect_stdout("faulty done").expect_stderr("faults=bytecode");
        let summary = |exception: &str| {
            run.stderr
                .lines()
                .find(|l| l.contains("repair: fault #") && l.contains(exception))
                .unwrap_or_else(|| panic!("{}: no fault {exception}:\n{}", jdk.name, run.stderr))
        };
        // A probe cannot see handlers: every exception leaving a method counts, caught or not,
        // and its line is the one that threw (from the exception's trace, not the probe's bci).
        for (exception, site, tail) in [
            (
                "java.lang.NumberFormatException x5",
                "at Faulty.parse(Ljava/lang/String;)I bci ",
                " line 3 thread \"main\": For input string: \"x0\"",
            ),
            ("java.lang.IllegalStateException x3", "at Faulty.fail(I)V bci ", " line 5 thread \"main\": bad 0"),
            (
                "java.lang.UnsupportedOperationException x2",
                "at Faulty.die()V bci ",
                " line 7 thread \"doomed\": no handler",
            ),
        ] {
            let line = summary(exception);
            assert!(line.contains(site) && line.ends_with(tail), "{}: {line}", jdk.name);
        }
    }
}

const SLEEPER: &str = r#"
public class Sleeper {
    public static void main(String[] args) throws Exception {
        System.out.println("ready");
        System.out.flush();
        // Runs until the test has attached (it writes the file "go"), at most 30 s.
        java.io.File go = new java.io.File(args[0]);
        for (int i = 0; i < 300 && !go.exists(); i++) Thread.sleep(100);
        Class<?> h = Class.forName("repair.rt.Hooks");
        h.getMethod("fallback", int.class, Throwable.class).invoke(null, 5, new RuntimeException("after attach"));
        System.out.println("attached hooks called");
    }
}
"#;

/// A JVM running `Sleeper` without the agent, once it says "ready"; `Sleeper` ends when the file
/// `go` in `dir` appears. `tmpdir`: its TMPDIR, where the agent puts its socket.
struct Sleeping {
    child: std::process::Child,
    stdout: BufReader<std::process::ChildStdout>,
    go: std::path::PathBuf,
}

impl Sleeping {
    fn start(jdk: &agent_support::Jdk, dir: &TempDir, tmpdir: Option<&std::path::Path>) -> Sleeping {
        compile(jdk, &dir.0, &[("Sleeper.java", SLEEPER)]);
        let go = dir.0.join("go");
        let mut java = Command::new(jdk.java());
        java.arg("-XX:+EnableDynamicAgentLoading").arg("-cp").arg(&dir.0).arg("Sleeper").arg(&go);
        if let Some(tmp) = tmpdir {
            java.env("TMPDIR", tmp);
        }
        let mut child = java.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("java starts");
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        assert_eq!(line.trim(), "ready");
        Sleeping { child, stdout, go }
    }

    /// `jcmd PID JVMTI.agent_load librepair.so "OPTS"`: what jcmd printed.
    fn attach(&self, jdk: &agent_support::Jdk, opts: &str) -> String {
        let mut jcmd = Command::new(jdk.tool("jcmd"));
        jcmd.arg(self.child.id().to_string()).arg("JVMTI.agent_load").arg(agent_support::agent_so());
        if !opts.is_empty() {
            // jcmd takes key=value words as its own arguments: the agent's options are quoted.
            jcmd.arg(format!("\"{opts}\""));
        }
        let out = jcmd.output().expect("jcmd runs");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Lets it end: what it printed after "ready", and how it ran.
    fn finish(mut self) -> (String, agent_support::Run) {
        std::fs::write(&self.go, "").unwrap();
        let mut rest = String::new();
        std::io::Read::read_to_string(&mut self.stdout, &mut rest).unwrap();
        (rest, finish(self.child, Duration::from_secs(30)))
    }
}

#[test]
fn attach_by_jcmd_loads_once_and_reports_what_it_lacks() {
    for jdk in jdks() {
        let dir = TempDir::new("attach");
        let jvm = Sleeping::start(&jdk, &dir, None);
        let jcmd = |opts: &str| jvm.attach(&jdk, opts);
        let first = jcmd("faults=jvmti,log=info");
        assert!(first.contains("return code: 0"), "{}: first attach: {first}", jdk.name);
        let second = jcmd("log=debug");
        assert!(second.contains("return code: -5"), "{}: second attach: {second}", jdk.name);
        let (rest, run) = jvm.finish();
        assert_eq!(run.code, Some(0), "{}: {}", jdk.name, run.stderr);
        assert!(rest.contains("attached hooks called"), "{rest}");
        run.expect_stderr("repair: loaded (by attach)");
        // Exception events cannot be had after attach: the agent says so and uses bytecode.
        run.expect_stderr("can_generate_exception_events is not available after attach");
        run.expect_stderr("faults=bytecode");
        run.expect_stderr("can_generate_exception_events (JVMTI_ERROR_NOT_AVAILABLE)");
        run.expect_stderr("the agent is already loaded in this JVM");
        run.expect_stderr("report 5 (patch -): fallbacks=1");
    }
}

/// A JVM killed with SIGKILL leaves its socket, and the kernel hands its pid (the socket's name)
/// to a later JVM: the agent clears it without a word at the default level and listens there.
#[test]
fn a_socket_left_at_this_jvms_pid_by_a_dead_one_is_cleared_quietly() {
    use repair_model::endpoint::{current_uid, default_socket_dir_in};
    use std::os::unix::fs::DirBuilderExt;
    for jdk in jdks() {
        let dir = TempDir::new("stale-socket");
        let tmp = dir.0.join("tmp");
        let sockets = default_socket_dir_in(&tmp, current_uid().unwrap());
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(&sockets).unwrap();
        let jvm = Sleeping::start(&jdk, &dir, Some(&tmp));
        let stale = sockets.join(format!("{}.sock", jvm.child.id()));
        drop(std::os::unix::net::UnixListener::bind(&stale).unwrap());
        assert!(std::os::unix::net::UnixStream::connect(&stale).is_err(), "the socket left behind is dead");
        let said = jvm.attach(&jdk, "");
        assert!(said.contains("return code: 0"), "{}: attach: {said}", jdk.name);
        assert!(std::os::unix::net::UnixStream::connect(&stale).is_ok(), "{}: the agent listens at its pid", jdk.name);
        let (_, run) = jvm.finish();
        assert_eq!(run.code, Some(0), "{}: {}", jdk.name, run.stderr);
        let ours: Vec<&str> = run.stderr.lines().filter(|l| l.starts_with("repair: ")).collect();
        assert_eq!(ours.len(), 1, "{}: one line at load:\n{}", jdk.name, run.stderr);
        assert!(
            ours[0].contains("loaded (by attach)") && ours[0].contains(&stale.display().to_string()),
            "{}",
            ours[0]
        );
    }
}
