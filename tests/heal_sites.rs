//! Every repair site is exact: under one generic policy (any `RuntimeException` in the
//! application twice, then a guard returning the default at the throw site), a constructor, an
//! anonymous class's method, a lambda body and one of two overloads are each repaired by a patch
//! on that exact method and descriptor; the overload that does not fault keeps its bytecode.

mod agent_support;

use std::process::Command;
use std::time::{Duration, Instant};

use agent_support::{agentpath, compile, events, repairctl_json, Service, TempDir};
use repair_model::policy::patch_id;

const SITES: &str = r#"
package sites;

import java.io.*;
import java.util.*;
import java.util.function.ToIntFunction;

public class Main {
    static class Invoice {
        final String customer;
        String label = "none";
        Invoice(String customer) { this.customer = customer; this.label = customer.trim(); }
    }

    static class Out {
        int written;
        void write(byte[] b) { written += b.length; }
        void write(String s) { written += s.length(); }
    }

    public static void main(String[] args) throws IOException {
        System.out.println("READY " + ProcessHandle.current().pid());
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in));
        for (String line; (line = in.readLine()) != null; ) {
            System.out.println(line.equals("round") ? round() : "?");
        }
    }

    static String round() {
        StringBuilder out = new StringBuilder("ROUND");
        try {
            out.append(" init=").append(new Invoice(" ann ").label).append(',').append(new Invoice(null).label);
        } catch (RuntimeException e) { out.append("ERR"); }
        try {
            List<String> names = new ArrayList<>(Arrays.asList("b", null, "a"));
            names.sort(new Comparator<String>() {
                public int compare(String x, String y) { return x.compareTo(y); }
            });
            out.append(" compare=").append(names.size());
        } catch (RuntimeException e) { out.append(" compare=ERR"); }
        try {
            ToIntFunction<String> width = s -> s.trim().length();
            out.append(" lambda=").append(width.applyAsInt(" ab ")).append(',').append(width.applyAsInt(null));
        } catch (RuntimeException e) { out.append("ERR"); }
        Out o = new Out();
        try { o.write(new byte[] {1, 2}); out.append(" bytes=").append(o.written); }
        catch (RuntimeException e) { out.append(" bytes=ERR"); }
        try { o.write((String) null); out.append(" string=").append(o.written); }
        catch (RuntimeException e) { out.append(" string=ERR"); }
        return out.toString();
    }
}
"#;

const POLICY: &str = "application: [\"sites.*\"]
rules:
  - name: any-runtime
    when: { exception: java.lang.RuntimeException, in: \"sites.*\", count: 2, within: 10s }
    then: [ { guard: { catch: [java.lang.RuntimeException], fallback: default } } ]
    validate: { window: 300ms }
";

/// The sites that fault: class, method, descriptor.
const FAULTING: [(&str, &str, &str); 4] = [
    ("sites.Main$Invoice", "<init>", "(Ljava/lang/String;)V"),
    ("sites.Main$1", "compare", "(Ljava/lang/String;Ljava/lang/String;)I"),
    ("sites.Main", "lambda$round$0", "(Ljava/lang/String;)I"),
    ("sites.Main$Out", "write", "(Ljava/lang/String;)V"),
];

/// `repairctl code CLASS METHOD -o json`: the SHA-256 of each overload's bytecode, by descriptor.
fn code_hashes(pid: u32, class: &str, method: &str) -> Vec<(String, String)> {
    let code = repairctl_json(&["code", class, method, "--pid", &pid.to_string(), "-o", "json"]);
    code.as_array()
        .unwrap()
        .iter()
        .map(|m| (m["method"].as_str().unwrap().to_string(), m["sha256"].as_str().unwrap().to_string()))
        .collect()
}

fn hash_of<'a>(hashes: &'a [(String, String)], method: &str) -> &'a str {
    &hashes.iter().find(|(m, _)| m == method).unwrap_or_else(|| panic!("no {method} in {hashes:?}")).1
}

#[test]
fn constructors_anonymous_classes_lambdas_and_one_overload_are_each_repaired_exactly() {
    for jdk in agent_support::jdks() {
        repaired_exactly_on(&jdk);
    }
}

fn repaired_exactly_on(jdk: &agent_support::Jdk) {
    let dir = TempDir::new("heal-sites");
    std::fs::create_dir_all(dir.0.join("sites")).unwrap();
    compile(jdk, &dir.0, &[("sites/Main.java", SITES)]);
    let policy = dir.0.join("policy.yaml");
    std::fs::write(&policy, POLICY).unwrap();
    let mut command = Command::new(jdk.java());
    command
        .arg(agentpath(&format!("policy={},state={},log=info", policy.display(), dir.0.join("state").display())))
        .arg("-cp")
        .arg(&dir.0)
        .arg("sites.Main");
    let mut jvm = Service::start(command);
    let pid = jvm.pid;

    let first = jvm.send("round");
    assert_eq!(first, "ROUND init=ann,ERR compare=ERR lambda=2,ERR bytes=2 string=ERR", "every site faults at first");
    let bytes_before = code_hashes(pid, "sites.Main$Out", "write");
    assert_eq!(bytes_before.len(), 2, "two overloads: {bytes_before:?}");

    let ids: Vec<String> = FAULTING.iter().map(|&(c, m, d)| patch_id("any-runtime", c, m, d, 0, |_| false)).collect();
    let start = Instant::now();
    let mut last;
    loop {
        last = jvm.send("round");
        let events = events(pid);
        let validated = |id: &str| events.iter().any(|e| e["kind"] == "validated" && e["patch"] == id);
        if ids.iter().all(|id| validated(id)) {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "not every site was repaired within 60 s (ids {ids:?}); last {last}; events:\n{}",
            serde_json::to_string_pretty(&events).unwrap()
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // Repaired: no site throws, and each fallback is the default at its own site (the invoice
    // keeps what its constructor set before the fault; the comparator says equal; the lambda 0).
    for _ in 0..3 {
        assert_eq!(jvm.send("round"), "ROUND init=ann,none compare=3 lambda=2,0 bytes=2 string=2");
    }

    let events = events(pid);
    let story = serde_json::to_string_pretty(&events).unwrap();
    assert!(!events.iter().any(|e| e["kind"] == "refused" || e["kind"] == "rolled-back"), "{story}");
    for (&(class, method, descriptor), id) in FAULTING.iter().zip(&ids) {
        let applied = events
            .iter()
            .find(|e| e["kind"] == "applied" && e["patch"] == id.as_str())
            .unwrap_or_else(|| panic!("{class}.{method}{descriptor}: no applied {id}:\n{story}"));
        assert_eq!(applied["rule"], "any-runtime");
        assert_eq!(applied["site"], format!("{class}.{method}{descriptor}"), "{applied}");
    }
    // One patch a site, on its exact method and descriptor; nothing on `write([B)V`.
    let patches = repairctl_json(&["patches", "--pid", &pid.to_string(), "-o", "json"]);
    let mut on: Vec<(String, String, String)> = patches
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["id"].as_str().unwrap().into(),
                p["classes"][0].as_str().unwrap().into(),
                p["method"].as_str().unwrap().into(),
            )
        })
        .collect();
    on.sort();
    let mut expected: Vec<(String, String, String)> =
        FAULTING.iter().zip(&ids).map(|(&(c, m, d), id)| (id.clone(), c.to_string(), format!("{m}{d}"))).collect();
    expected.sort();
    assert_eq!(on, expected, "{patches}");

    let bytes_after = code_hashes(pid, "sites.Main$Out", "write");
    assert_eq!(
        hash_of(&bytes_after, "write([B)V"),
        hash_of(&bytes_before, "write([B)V"),
        "the overload that never faulted"
    );
    assert_ne!(
        hash_of(&bytes_after, "write(Ljava/lang/String;)V"),
        hash_of(&bytes_before, "write(Ljava/lang/String;)V"),
        "the overload that faulted is guarded"
    );
    jvm.finish();
}
