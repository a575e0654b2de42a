//! The journal on real JVMs: a corrupt byte costs one record, not the ones after it; a write that
//! fails is never a silent success; a long history is read in pages; replicas of one service
//! share a journal without clashing and restore each other's durable patches, visibly; a rule's
//! durable repair restored at a start is validated again, and one that fails there is rolled back
//! and not restored at the start after.

mod agent_support;

use std::path::Path;
use std::process::Command;

use agent_support::{agentpath, compile, default_jdk, events, repairctl_json as json, Jdk, Service, TempDir};
use repair_model::journal::{durable_patches, read_history};

const SERVICE: &str = r#"
import java.io.*;
public class Svc {
    public static void main(String[] a) throws Exception {
        System.out.println("READY " + ProcessHandle.current().pid());
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in));
        for (String l; (l = in.readLine()) != null; ) {
            String p;
            try { p = String.valueOf(Prices.price("durian")); } catch (NullPointerException e) { p = "NPE"; }
            System.out.println("STATE price=" + p);
        }
    }
}
class Prices {
    static final java.util.Map<String, Long> prices = new java.util.HashMap<>(java.util.Map.of("apple", 3L));
    static long price(String k) { return prices.get(k).longValue(); }
}
"#;

fn guard(id: &str, value: i64) -> String {
    format!(
        "id: {id}\ntarget: {{ class: Prices, method: \"price(Ljava/lang/String;)J\" }}\naction:\n  guard: {{ catch: [java.lang.NullPointerException], fallback: {{ value: {value} }} }}\ndurable: true\n"
    )
}

fn compiled(tag: &str) -> (Jdk, TempDir) {
    let jdk = default_jdk();
    let dir = TempDir::new(tag);
    compile(&jdk, &dir.0, &[("Svc.java", SERVICE)]);
    (jdk, dir)
}

/// `java` with the agent on the state dir `state`, optionally under `prlimit` (file size limit).
fn start(jdk: &Jdk, dir: &Path, state: &Path, fsize: Option<u64>) -> Service {
    let mut c = match fsize {
        Some(bytes) => {
            let mut c = Command::new("prlimit");
            c.arg(format!("--fsize={bytes}:unlimited")).arg(jdk.java());
            c
        }
        None => Command::new(jdk.java()),
    };
    // No hsperfdata file: under a file size limit only the journal should be hitting it.
    c.arg("-XX:-UsePerfData").arg(agentpath(&format!("state={}", state.display()))).arg("-cp").arg(dir).arg("Svc");
    let mut s = Service::start(c);
    s.state(); // loads Prices
    s
}

fn repairctl(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_repairctl")).args(args).output().expect("repairctl runs");
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

fn apply(dir: &Path, pid: u32, id: &str, value: i64) -> (bool, String) {
    let spec = dir.join(format!("{id}.yaml"));
    std::fs::write(&spec, guard(id, value)).unwrap();
    repairctl(&["apply", spec.to_str().unwrap(), "--pid", &pid.to_string()])
}

fn patch_ids(pid: u32) -> Vec<String> {
    let v = json(&["patches", "--pid", &pid.to_string(), "-o", "json"]);
    v.as_array().unwrap().iter().map(|p| p["id"].as_str().unwrap().to_string()).collect()
}

fn history(pid: u32) -> serde_json::Value {
    json(&["history", "--pid", &pid.to_string(), "-o", "json"])
}

fn applied_ids(h: &serde_json::Value) -> Vec<String> {
    h["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["event"] == "applied")
        .map(|r| r["patch_id"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn a_corrupt_byte_costs_one_record_and_is_quarantined() {
    let (jdk, dir) = compiled("journal-corrupt");
    let state = dir.0.join("state");
    let jvm = start(&jdk, &dir.0, &state, None);
    for i in 0..12 {
        let (ok, out) = apply(&dir.0, jvm.pid, &format!("g{i:02}"), -(i as i64));
        assert!(ok, "{out}");
    }
    jvm.finish();
    // Flip a byte inside the sixth record's JSON.
    let journal = state.join("journal.log");
    let mut data = std::fs::read(&journal).unwrap();
    let at = data.windows(7).position(|w| w == b"\"id: g05").or_else(|| {
        let needle = b"g05";
        data.windows(needle.len()).position(|w| w == needle)
    });
    let at = at.expect("g05's record");
    data[at + 2] ^= 0x5a;
    std::fs::write(&journal, &data).unwrap();

    let mut jvm = start(&jdk, &dir.0, &state, None);
    let status = json(&["status", "--pid", &jvm.pid.to_string(), "-o", "json"]);
    let health = status["journal"].as_str().unwrap();
    assert!(health.contains("quarantined"), "status says what was recovered: {health}");
    let expected: Vec<String> = (0..12).filter(|i| *i != 5).map(|i| format!("g{i:02}")).collect();
    assert_eq!(applied_ids(&history(jvm.pid)), expected, "every record after the bad one is kept");
    assert_eq!(patch_ids(jvm.pid), expected, "and every durable patch after it restored");
    let quarantine: Vec<_> = std::fs::read_dir(&state)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("journal.corrupt-"))
        .collect();
    assert_eq!(quarantine.len(), 1, "the bad bytes are kept aside");
    let events = json(&["events", "--pid", &jvm.pid.to_string(), "-o", "json"]);
    assert!(events.to_string().contains("unreadable bytes"), "{events}");
    // Stacked guards: the first applied wraps the body, so its fallback answers.
    assert!(jvm.state().contains("price=0"), "the restored guards are in effect");
    jvm.finish();
}

#[test]
fn a_journal_write_that_fails_fails_the_apply_and_changes_nothing() {
    let (jdk, dir) = compiled("journal-full");
    let state = dir.0.join("state");
    // Room for a few records only: the JVM's writes beyond it fail with EFBIG (a full disk).
    let mut jvm = start(&jdk, &dir.0, &state, Some(4096));
    let pid = jvm.pid;
    let mut acknowledged = Vec::new();
    let mut refusal = None;
    for i in 0..40 {
        let id = format!("f{i:02}");
        match apply(&dir.0, pid, &id, 100 + i) {
            (true, _) => acknowledged.push(id),
            (false, out) => {
                refusal = Some((id, out));
                break;
            }
        }
    }
    let (refused, out) = refusal.expect("an apply fails once the journal cannot grow");
    assert!(out.contains("journal") && out.contains("undone"), "{out}");
    assert!(!acknowledged.is_empty());
    assert_eq!(patch_ids(pid), acknowledged, "{refused} is not in effect");
    // Stacked guards: the first applied wraps the body, so its fallback answers.
    assert!(jvm.state().contains("price=100"), "the JVM runs the acknowledged guards");
    let status = json(&["status", "--pid", &pid.to_string(), "-o", "json"]);
    assert!(status["journal"].as_str().unwrap().contains("write failed"), "{status}");

    // Space returns: the journal writes again, and says so.
    let out = Command::new("prlimit").args(["--pid", &pid.to_string(), "--fsize=unlimited"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let (ok, out) = apply(&dir.0, pid, "after", 7);
    assert!(ok, "{out}");
    acknowledged.push("after".into());
    let status = json(&["status", "--pid", &pid.to_string(), "-o", "json"]);
    assert!(status["journal"].as_str().unwrap().starts_with("ok"), "{status}");
    jvm.finish();

    // No partial record was left: a restart restores exactly what was acknowledged.
    let mut jvm = start(&jdk, &dir.0, &state, None);
    assert_eq!(applied_ids(&history(jvm.pid)), acknowledged);
    assert_eq!(patch_ids(jvm.pid), acknowledged);
    let status = json(&["status", "--pid", &jvm.pid.to_string(), "-o", "json"]);
    assert_eq!(status["journal"], "ok", "nothing to recover");
    assert!(jvm.state().contains("price=100"));
    jvm.finish();
}

#[test]
fn a_history_larger_than_a_grpc_message_is_read_in_pages() {
    use repair_model::journal::{Event, Journal, Record};
    let (jdk, dir) = compiled("journal-long");
    let state = dir.0.join("state");
    // 6 MiB of records, as a long-lived service would accumulate (below the compaction limit).
    let (mut journal, _, _) = Journal::open(&state, repair_model::journal::DEFAULT_MAX_BYTES).unwrap();
    let reason = "x".repeat(1500);
    let n = 4000;
    for i in 0..n {
        let event = if i % 2 == 0 { Event::Applied } else { Event::RolledBack };
        journal
            .append(Record {
                seq: 0,
                at_ms: 0,
                event,
                patch_id: format!("old{}", i / 2),
                who: "operator:test".into(),
                classes: vec!["Prices".into()],
                spec: String::new(),
                durable: false,
                hashes: Vec::new(),
                reason: reason.clone(),
                attachments: Vec::new(),
                instance: "earlier".into(),
                fault: None,
            })
            .unwrap();
    }
    drop(journal);
    assert!(std::fs::metadata(state.join("journal.log")).unwrap().len() > 5 << 20);
    let mut jvm = start(&jdk, &dir.0, &state, None);
    let h = history(jvm.pid);
    let seqs: Vec<u64> = h["records"].as_array().unwrap().iter().map(|r| r["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, (1..=n).collect::<Vec<u64>>());
    assert!(jvm.state().contains("price=NPE"));
    jvm.finish();
}

#[test]
fn replicas_share_the_services_journal_and_restore_its_durable_patches_visibly() {
    let (jdk, dir) = compiled("journal-replicas");
    let state = dir.0.join("state");
    let a = start(&jdk, &dir.0, &state, None);
    let mut b = start(&jdk, &dir.0, &state, None);
    assert!(apply(&dir.0, a.pid, "on-a", 1).0);
    assert!(apply(&dir.0, b.pid, "on-b", 2).0);
    assert!(apply(&dir.0, a.pid, "on-a2", 3).0);
    let instance =
        |pid: u32| json(&["status", "--pid", &pid.to_string(), "-o", "json"])["instance"].as_str().unwrap().to_string();
    let (ia, ib) = (instance(a.pid), instance(b.pid));
    assert_ne!(ia, ib);
    for pid in [a.pid, b.pid] {
        let h = history(pid);
        let rows: Vec<(u64, String, String)> = h["records"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["seq"].as_u64().unwrap(),
                    r["patch_id"].as_str().unwrap().into(),
                    r["instance"].as_str().unwrap().into(),
                )
            })
            .collect();
        let want = vec![
            (1, "on-a".to_string(), ia.clone()),
            (2, "on-b".to_string(), ib.clone()),
            (3, "on-a2".to_string(), ia.clone()),
        ];
        assert_eq!(rows, want, "one numbering, every replica's records, each with its JVM");
    }
    assert_eq!(patch_ids(a.pid), ["on-a", "on-a2"], "a patch applied to A is not in B");
    assert!(b.state().contains("price=2"));
    b.finish();
    a.finish();

    // A replica starting later restores the service's durable patches, and says whose they were.
    let c = start(&jdk, &dir.0, &state, None);
    assert_eq!(patch_ids(c.pid), ["on-a", "on-b", "on-a2"]);
    let events = json(&["events", "--pid", &c.pid.to_string(), "-o", "json"]).to_string();
    assert!(events.contains("durable for this service") && events.contains(&format!("JVM {ia}")), "{events}");
    let h = history(c.pid);
    assert_eq!(h["records"].as_array().unwrap().len(), 3, "restoring writes no duplicate records");
    c.finish();
}

/// Reads its limit at start-up from a property (`-Dcfg.limit=ten`: not a number): `limit` throws
/// once a start, and `configure` fails in turn on a `null` limit.
const CONFIGURED: &str = r#"
import java.io.*;
public class Cfg {
    static Integer limit(String value) { return Integer.valueOf(value.strip()); }
    static String configure() { return "limit " + (limit(System.getProperty("cfg.limit")) + 1); }
    public static void main(String[] a) throws Exception {
        String limit;
        try { limit = configure(); } catch (RuntimeException e) { limit = e.getClass().getName(); }
        System.out.println("READY " + ProcessHandle.current().pid());
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in));
        for (String l; (l = in.readLine()) != null; ) {
            System.out.println("STATE " + limit);
        }
    }
}
"#;

/// A durable rule that fires on the first occurrence; its guard's fallback is `null`.
const ONCE: &str = "mode: enforce\nrules:\n  - name: once\n    when: { exception: java.lang.RuntimeException, in: \"Cfg.*\", \
                    count: 1 }\n    then:\n      - guard: { catch: [fault], fallback: default }\n    validate: { window: 1s, \
                    max_window: 2s }\n    durable: true\n";

/// Events of `kind` in the JVM `pid`, by their reasons, waiting (30 s) for one that says `says`.
fn await_reason(pid: u32, kind: &str, says: &str) -> String {
    let started = std::time::Instant::now();
    loop {
        let all = events(pid);
        let found =
            all.iter().filter(|e| e["kind"] == kind).find_map(|e| e["reason"].as_str().filter(|r| r.contains(says)));
        if let Some(reason) = found {
            return reason.to_string();
        }
        assert!(started.elapsed() < std::time::Duration::from_secs(30), "no {kind} event saying {says:?}: {all:#?}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// `Cfg` compiled in a temporary dir, with the `once` policy and a state dir there.
struct Configured {
    jdk: Jdk,
    dir: TempDir,
}

impl Configured {
    fn new(tag: &str) -> Configured {
        let (jdk, dir) = (default_jdk(), TempDir::new(tag));
        compile(&jdk, &dir.0, &[("Cfg.java", CONFIGURED)]);
        std::fs::write(dir.0.join("once.yaml"), ONCE).unwrap();
        Configured { jdk, dir }
    }

    /// Starts `Cfg` with the agent, `-Dcfg.limit=` set to `limit` unless `None`.
    fn start(&self, limit: Option<&str>) -> Service {
        let (state, policy) = (self.dir.0.join("state"), self.dir.0.join("once.yaml"));
        let mut c = Command::new(self.jdk.java());
        c.arg(agentpath(&format!("state={},policy={}", state.display(), policy.display())));
        c.args(limit.map(|l| format!("-Dcfg.limit={l}")));
        c.arg("-cp").arg(&self.dir.0).arg("Cfg");
        Service::start(c)
    }

    fn durable(&self) -> Vec<repair_model::journal::Record> {
        durable_patches(&read_history(&self.dir.0.join("state")).unwrap_or_default())
    }

    /// The first start: the fault happens once, the repair is never called again, and the durable
    /// rule journals it durable-but-unproven, with the fault it repairs.
    fn first_start(&self) {
        let mut jvm = self.start(Some("ten"));
        assert_eq!(jvm.state(), "STATE java.lang.NumberFormatException", "the fault at start-up");
        let unproven = await_reason(jvm.pid, "unproven", "durable-but-unproven");
        assert!(unproven.contains("0 calls"), "{unproven}");
        jvm.finish();
        let kept = self.durable();
        assert_eq!(kept.len(), 1, "{kept:?}");
        let fault = kept[0].fault.as_ref().expect("the fault it repairs is journaled with it");
        assert_eq!(fault.exception, "java.lang.NumberFormatException");
        assert_eq!(fault.callers, ["Cfg.configure", "Cfg.main"]);
    }
}

#[test]
fn a_restored_repair_whose_fallback_makes_its_caller_fail_is_rolled_back_and_not_restored_again() {
    let cfg = Configured::new("journal-revalidate");
    cfg.first_start();

    // Second start: restored and validated again; its null makes configure() fail: rolled back.
    let mut jvm = cfg.start(Some("ten"));
    await_reason(jvm.pid, "restored", "restored; validating under rule once");
    let rolled_back = await_reason(jvm.pid, "rolled-back", "restored from the journal");
    assert!(
        rolled_back.contains("java.lang.NullPointerException at Cfg.configure followed its fallback")
            && rolled_back.contains("no longer durable"),
        "{rolled_back}"
    );
    assert_eq!(jvm.state(), "STATE java.lang.NullPointerException", "the restored repair was in place at start-up");
    jvm.finish();
    assert_eq!(cfg.durable(), Vec::new(), "rolled back: no longer durable");

    // Third start: nothing is restored; the fault happens as on the first.
    let mut jvm = cfg.start(Some("ten"));
    assert_eq!(jvm.state(), "STATE java.lang.NumberFormatException");
    assert!(!events(jvm.pid).iter().any(|e| e["kind"] == "restored"), "{:#?}", events(jvm.pid));
    jvm.finish();
}

#[test]
fn a_restored_repair_a_fault_passes_through_again_is_rolled_back_and_not_restored_again() {
    let cfg = Configured::new("journal-revalidate-through");
    cfg.first_start();

    // Second start without the property: limit() fails on null, a fault the guard (for the
    // NumberFormatException) lets through.
    let mut jvm = cfg.start(None);
    await_reason(jvm.pid, "restored", "restored; validating under rule once");
    let rolled_back = await_reason(jvm.pid, "rolled-back", "restored from the journal");
    assert!(
        rolled_back.contains("new faults of other kinds through the repaired method: java.lang.NullPointerException")
            && rolled_back.contains("no longer durable"),
        "{rolled_back}"
    );
    assert_eq!(jvm.state(), "STATE java.lang.NullPointerException");
    jvm.finish();
    assert_eq!(cfg.durable(), Vec::new(), "rolled back: no longer durable");
    let mut jvm = cfg.start(Some("ten"));
    assert_eq!(jvm.state(), "STATE java.lang.NumberFormatException", "not restored: the fault happens again");
    assert!(!events(jvm.pid).iter().any(|e| e["kind"] == "restored"), "{:#?}", events(jvm.pid));
    jvm.finish();
}
