//! Fault identity on real JVMs: one exception object is one fault however it travels. Each
//! application method below throws a new exception each time it is called, and the exception
//! then reaches the application again through reflection (`InvocationTargetException`), an
//! executor's future on another thread (`ExecutionException`), a `CompletableFuture`
//! (`CompletionException`) and a dynamic proxy (`UndeclaredThrowableException`). Under both
//! capture modes the fault log must hold exactly one fault per throwing method, at that method,
//! counted once per throw, and no frame of the agent's own.

mod agent_support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use agent_support::{agentpath, compile, finish, jdks, repairctl_json, TempDir};

const IDENTITY: &str = r#"
import java.lang.reflect.*;
import java.util.concurrent.*;

public class Identity {
    public static class Target {
        public static void reflected(int i) { throw new IllegalStateException("reflected " + i); }
        static void pooled(int i) { throw new UnsupportedOperationException("pooled " + i); }
        static int supplied(int i) { throw new IllegalArgumentException("supplied " + i); }
        static void proxied(int i) throws java.io.IOException { throw new java.io.IOException("proxied " + i); }
    }
    public interface Service { void call(int i); }

    // The caller catches the InvocationTargetException and rethrows it: the wrapper leaves an
    // application method.
    static void viaReflection(int i) throws Exception {
        Method m = Target.class.getMethod("reflected", int.class);
        try { m.invoke(null, i); } catch (InvocationTargetException e) { throw e; }
    }
    static void viaExecutor(ExecutorService pool, int i) throws Exception {
        pool.submit(() -> Target.pooled(i)).get();
    }
    static int viaCompletable(int i) {
        return CompletableFuture.supplyAsync(() -> Target.supplied(i)).join();
    }
    static void viaProxy(int i) {
        InvocationHandler handler = (proxy, method, args) -> { Target.proxied((Integer) args[0]); return null; };
        Service s = (Service) Proxy.newProxyInstance(Identity.class.getClassLoader(), new Class<?>[] { Service.class }, handler);
        s.call(i);
    }
    static void expect(Exception e, Class<?> wrapper, Class<?> cause) {
        if (!wrapper.isInstance(e) || !cause.isInstance(e.getCause())) throw new AssertionError("unexpected " + e);
    }
    static void waitFor(java.io.File f) throws Exception {
        for (int i = 0; i < 600 && !f.exists(); i++) Thread.sleep(50);
    }
    public static void main(String[] args) throws Exception {
        ExecutorService pool = Executors.newSingleThreadExecutor();
        for (int i = 0; i < 2; i++) {
            try { viaReflection(i); } catch (Exception e) { expect(e, InvocationTargetException.class, IllegalStateException.class); }
        }
        for (int i = 0; i < 3; i++) {
            try { viaExecutor(pool, i); } catch (Exception e) { expect(e, ExecutionException.class, UnsupportedOperationException.class); }
        }
        for (int i = 0; i < 4; i++) {
            try { viaCompletable(i); } catch (Exception e) { expect(e, CompletionException.class, IllegalArgumentException.class); }
        }
        for (int i = 0; i < 5; i++) {
            try { viaProxy(i); } catch (Exception e) { expect(e, UndeclaredThrowableException.class, java.io.IOException.class); }
        }
        pool.shutdown();
        System.out.println("done");
        System.out.flush();
        waitFor(new java.io.File(args[0]));
    }
}
"#;

/// (exception, throwing method of `Identity$Target`, times thrown), as the program does it.
const EXPECTED: [(&str, &str, u64); 4] = [
    ("java.lang.IllegalStateException", "reflected", 2),
    ("java.lang.UnsupportedOperationException", "pooled", 3),
    ("java.lang.IllegalArgumentException", "supplied", 4),
    ("java.io.IOException", "proxied", 5),
];

#[test]
fn an_exception_rethrown_through_reflection_an_executor_a_future_or_a_proxy_is_one_fault_at_its_site() {
    for jdk in jdks() {
        for mode in ["bytecode", "jvmti"] {
            let dir = TempDir::new("identity");
            compile(&jdk, &dir.0, &[("Identity.java", IDENTITY)]);
            let done = dir.0.join("done");
            let mut child = Command::new(jdk.java())
                .env("XDG_STATE_HOME", dir.0.join("state"))
                .arg(agentpath(&format!("faults={mode}")))
                .arg("-cp")
                .arg(&dir.0)
                .arg("Identity")
                .arg(&done)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("java starts");
            let pid = child.id().to_string();
            let mut line = String::new();
            BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
            let faults = if line.trim() == "done" {
                Some(repairctl_json(&["faults", "--pid", &pid, "-o", "json"]))
            } else {
                None
            };
            std::fs::write(&done, "").unwrap();
            let run = finish(child, Duration::from_secs(30));
            let at = format!("{} faults={mode}", jdk.name);
            assert_eq!(run.code, Some(0), "{at}: {line}{}\n{}", run.stdout, run.stderr);
            let faults = faults.unwrap_or_else(|| panic!("{at}: the program did not finish: {line}\n{}", run.stderr));
            let list = faults["faults"].as_array().unwrap();

            for (exception, method, count) in EXPECTED {
                let of: Vec<_> = list.iter().filter(|f| f["exception"] == exception).collect();
                assert_eq!(of.len(), 1, "{at}: one fault for {exception}: {faults:#}");
                let f = of[0];
                assert_eq!(
                    (f["site"]["class"].as_str(), f["site"]["method"].as_str()),
                    (Some("Identity$Target"), Some(method)),
                    "{at}: {exception} at the method that threw it: {f:#}"
                );
                assert_eq!(f["count"], count, "{at}: {exception} counted once per throw: {f:#}");
            }
            // No wrapper, and no rethrow at another frame, became a fault of its own.
            assert_eq!(list.len(), EXPECTED.len(), "{at}: only the four faults: {faults:#}");
            for f in list {
                for frame in f["stack"].as_array().unwrap() {
                    assert!(!frame.as_str().unwrap().starts_with("repair.rt."), "{at}: an agent frame: {f:#}");
                }
            }
        }
    }
}

const UNRECORDED: &str = r#"
import java.util.concurrent.*;

public class Unrecorded {
    static void viaReflection() throws Exception {
        try { Lib.class.getMethod("reflected").invoke(null); }
        catch (java.lang.reflect.InvocationTargetException e) { throw e; }
    }
    static void viaExecutor(ExecutorService pool) throws Exception {
        pool.submit(Lib::pooled).get();
    }
    public static void main(String[] args) throws Exception {
        ExecutorService pool = Executors.newSingleThreadExecutor();
        for (int i = 0; i < 2; i++) try { viaReflection(); } catch (Exception e) { }
        for (int i = 0; i < 3; i++) try { viaExecutor(pool); } catch (Exception e) { }
        pool.shutdown();
        System.out.println("done");
    }
}
"#;

const LIB: &str = r#"
public class Lib {
    public static void reflected() {
        throw new IllegalStateException("reflected");
    }
    public static void pooled() {
        throw new UnsupportedOperationException("pooled");
    }
}
"#;

/// The agent's fault lines at exit (`log=info`).
fn fault_lines(stderr: &str) -> Vec<&str> {
    stderr.lines().filter(|l| l.starts_with("repair: fault #")).collect()
}

#[test]
fn a_wrapper_whose_cause_was_never_recorded_is_recorded_as_the_cause_at_the_site_its_trace_names() {
    // Capture only in `Unrecorded`: what `Lib` throws is first seen wrapped, as the wrapper
    // leaves `Unrecorded` (exception events would see every throw, so this is bytecode capture's
    // case).
    for jdk in jdks() {
        let dir = TempDir::new("unrecorded");
        compile(&jdk, &dir.0, &[("Unrecorded.java", UNRECORDED), ("Lib.java", LIB)]);
        let run = agent_support::java(&jdk, &dir.0, &[agentpath("log=info,app=Unrecorded")], "Unrecorded");
        run.expect_success().expect_stdout("done");
        // A stack trace names the method without its descriptor, which is looked up by name.
        run.expect_stderr("java.lang.IllegalStateException x2 at Lib.reflected()V bci 0 line 4 thread \"main\"");
        run.expect_stderr("java.lang.UnsupportedOperationException x3 at Lib.pooled()V bci 0 line 7 thread \"main\"");
        assert_eq!(fault_lines(&run.stderr).len(), 2, "{}: no fault for a wrapper:\n{}", jdk.name, run.stderr);
    }
}

const GLOBBED: &str = r#"
public class Globbed {
    public static void main(String[] args) {
        for (int i = 0; i < 2; i++) try { AppService.handle(); } catch (RuntimeException e) { }
        System.out.println("done");
    }
}
"#;

const GLOBBED_LIBS: [(&str, &str); 2] = [
    ("AppService.java", "public class AppService { static void handle() { Framework.run(); } }"),
    ("Framework.java", "public class Framework { static void run() { throw new IllegalStateException(\"deep\"); } }"),
];

const GLOBBED_POLICY: &str = "application: [\"App*\"]
rules:
  - name: never
    when: { exception: java.lang.InternalError, count: 1000, within: 1s }
    then:
      - guard: { catch: [java.lang.InternalError], fallback: { value: 0 } }
";

#[test]
fn under_a_policy_the_site_is_the_innermost_frame_in_its_application() {
    let jdk = agent_support::default_jdk();
    let dir = TempDir::new("globbed");
    let [app, framework] = GLOBBED_LIBS;
    compile(&jdk, &dir.0, &[("Globbed.java", GLOBBED), app, framework]);
    let policy = dir.0.join("policy.yaml");
    std::fs::write(&policy, GLOBBED_POLICY).unwrap();
    for mode in ["bytecode", "jvmti"] {
        let without = agent_support::java(&jdk, &dir.0, &[agentpath(&format!("log=info,faults={mode}"))], "Globbed");
        without.expect_success().expect_stderr("java.lang.IllegalStateException x2 at Framework.run()V");
        let options = format!("log=info,faults={mode},policy={}", policy.display());
        let with = agent_support::java(&jdk, &dir.0, &[agentpath(&options)], "Globbed");
        with.expect_success().expect_stderr("java.lang.IllegalStateException x2 at AppService.handle()V");
        assert_eq!(fault_lines(&with.stderr).len(), 1, "faults={mode}:\n{}", with.stderr);
    }
}
