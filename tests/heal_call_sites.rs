//! Repairs aimed from the exception's own stack trace, under the default bytecode fault capture
//! (which sees an exception leave a method, not the instruction that threw): `guard: { call:
//! auto }` guards only the call that threw — a call into a library found from the frame above
//! the application's in the trace and its line, a call on null from the `NullPointerException`'s
//! message — and `at: { up: N }` returns early N application frames up the stack.

mod agent_support;

use std::process::Command;
use std::time::{Duration, Instant};

use agent_support::{agentpath, compile, events, Service, TempDir};

const CALLS: &str = r#"
package calls;

import java.io.*;
import java.util.*;

public class Main {
    static final Map<String, String> NAMES = new HashMap<>();
    static { NAMES.put("a", "ann"); }

    static int quantity(String s) {
        int q = 10 + Integer.parseInt(s.trim()) + 1;
        return q * 2;
    }

    static int width(String key) {
        String name = NAMES.get(key);
        int w = name.length() + 100;
        return w + 1;
    }

    static String cell(int i) {
        if (i == 3) throw new IllegalStateException("bad cell " + i);
        return "c" + i;
    }
    static String row(int i) { return "[" + cell(i) + "]"; }
    static String table(int n) {
        StringBuilder b = new StringBuilder();
        for (int i = 0; i < n; i++) b.append(row(i));
        return b.toString();
    }
    static String report() { return "T" + table(5) + "."; }

    public static void main(String[] args) throws IOException {
        System.out.println("READY " + ProcessHandle.current().pid());
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in));
        for (String line; (line = in.readLine()) != null; ) {
            StringBuilder out = new StringBuilder("ROUND");
            try { out.append(" q=").append(quantity(" 4 ")).append(',').append(quantity("x")); }
            catch (RuntimeException e) { out.append("ERR"); }
            try { out.append(" w=").append(width("a")).append(',').append(width("b")); }
            catch (RuntimeException e) { out.append("ERR"); }
            try { out.append(" t=").append(report()); }
            catch (RuntimeException e) { out.append("ERR"); }
            System.out.println(out);
        }
    }
}
"#;

const POLICY: &str = "application: [\"calls.*\"]
rules:
  - name: number
    when: { exception: java.lang.NumberFormatException, in: \"calls.*\", count: 2, within: 10s }
    then: [ { guard: { call: auto, catch: [fault], fallback: default } } ]
    validate: { window: 300ms, min_calls: 2 }
  - name: null-name
    when: { exception: java.lang.NullPointerException, in: \"calls.*\", count: 2, within: 10s }
    then: [ { guard: { call: auto, catch: [fault], fallback: default } } ]
    validate: { window: 300ms, min_calls: 2 }
  - name: bad-cell
    when: { exception: java.lang.IllegalStateException, in: \"calls.*\", count: 2, within: 10s }
    then: [ { guard: { catch: [fault], fallback: default }, at: { up: 2 } } ]
    validate: { window: 300ms, min_calls: 2 }
";

#[test]
fn the_call_that_threw_is_guarded_and_an_early_return_is_made_up_the_stack_under_bytecode_capture() {
    let jdk = agent_support::default_jdk();
    let dir = TempDir::new("heal-call-sites");
    std::fs::create_dir_all(dir.0.join("calls")).unwrap();
    compile(&jdk, &dir.0, &[("calls/Main.java", CALLS)]);
    let policy = dir.0.join("policy.yaml");
    std::fs::write(&policy, POLICY).unwrap();
    let mut command = Command::new(jdk.java());
    command
        .arg(agentpath(&format!("policy={},state={},log=info", policy.display(), dir.0.join("state").display())))
        .arg("-cp")
        .arg(&dir.0)
        .arg("calls.Main");
    let mut jvm = Service::start(command);
    let pid = jvm.pid;
    assert_eq!(jvm.send("round"), "ROUND q=30,ERR w=104,ERR t=ERR", "every site faults at first");

    let start = Instant::now();
    let mut last;
    loop {
        last = jvm.send("round");
        let events = events(pid);
        let validated = |rule: &str| events.iter().any(|e| e["kind"] == "validated" && e["rule"] == rule);
        if ["number", "null-name", "bad-cell"].iter().all(|r| validated(r)) {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "not every rule's repair held within 60 s; last {last}; events:\n{}",
            serde_json::to_string_pretty(&events).unwrap()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // Only the calls that threw fall back, and the rest of each line still runs:
    // quantity("x") = (10 + 0 + 1) * 2; width("b") = (0 + 100) + 1; and table(5) returns its
    // default (null) two frames above cell, so report() still adds its own text around it.
    for _ in 0..3 {
        assert_eq!(jvm.send("round"), "ROUND q=30,22 w=104,101 t=Tnull.");
    }

    let events = events(pid);
    let story = serde_json::to_string_pretty(&events).unwrap();
    assert!(!events.iter().any(|e| e["kind"] == "refused" || e["kind"] == "rolled-back"), "{story}");
    let applied = |rule: &str| {
        events
            .iter()
            .find(|e| e["kind"] == "applied" && e["rule"] == rule)
            .unwrap_or_else(|| panic!("no applied event of {rule}:\n{story}"))
            .clone()
    };
    let number = applied("number");
    assert_eq!(number["site"], "calls.Main.quantity(Ljava/lang/String;)I", "{number}");
    assert!(number["reason"].as_str().unwrap().contains("parseInt"), "the guarded call is named: {number}");
    let null_name = applied("null-name");
    assert_eq!(null_name["site"], "calls.Main.width(Ljava/lang/String;)I", "{null_name}");
    assert!(null_name["reason"].as_str().unwrap().contains("length"), "the guarded call is named: {null_name}");
    let cell = applied("bad-cell");
    assert_eq!(cell["site"], "calls.Main.cell(I)Ljava/lang/String;", "{cell}");
    assert!(
        cell["reason"].as_str().unwrap().contains("at calls.Main.table(I)Ljava/lang/String;"),
        "the early return is two application frames above cell: {cell}"
    );
    jvm.finish();
}
