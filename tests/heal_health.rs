//! A rule's health signal (`validate.health`): a repair is judged by what the application's
//! users see, not only by faults. A request loop whose lookup throws catches every exception
//! itself and responds 500, and responds 500 too when the lookup gives nothing: a guard whose
//! `null` fallback leaves every such request failing causes no fault, so only the health signal
//! (`respond`'s status after the fallback) tells that it does not work. Real JVMs with the real
//! librepair.so and a policy; nothing is applied by hand.

mod agent_support;

use std::time::Duration;

use agent_support::{compile, default_jdk, logged_events, LoggedEvent, TempDir};

/// `Web.handle` serves a request: `lookup` throws `NullPointerException` for a name it does not
/// know ("pear", every other request), `handle` catches every exception and responds 500, and
/// responds 500 as well, without any exception, when `lookup` gives `null` (from request
/// `emptyFailsFrom` on; an empty 200 before). `java Web REQUESTS EMPTY_FAILS_FROM`.
const WEB: &str = r#"
import java.util.HashMap;
import java.util.Map;

public class Web {
    static final Map<String, Integer> PRICES = new HashMap<>();
    static final int TAIL = 50;
    static int requests, emptyFailsFrom, served, ok, failed, tailFailed;

    static String lookup(String name) {
        return "price " + PRICES.get(name).intValue();
    }
    static void respond(int status) {
        served++;
        if (status == 200) ok++; else failed++;
        if (status != 200 && served > requests - TAIL) tailFailed++;
    }
    static void handle(String request) {
        try {
            String found = lookup(request);
            if (found == null) { respond(served >= emptyFailsFrom ? 500 : 200); return; }
            respond(200);
        } catch (Exception e) {
            respond(500);
        }
    }
    public static void main(String[] a) throws Exception {
        requests = Integer.parseInt(a[0]);
        emptyFailsFrom = Integer.parseInt(a[1]);
        PRICES.put("apple", 3);
        for (int i = 0; i < requests; i++) {
            handle(i % 2 == 0 ? "pear" : "apple");
            Thread.sleep(10);
        }
        System.out.println("ok=" + ok + " failed=" + failed + " tail_failed=" + tailFailed);
    }
}
"#;

/// First a guard returning the default (`null`: `handle` responds 500), then one returning a
/// usable value (`handle` responds 200); `HEALTH` stands for the rule's health signal, if any.
const POLICY: &str = r#"
rules:
  - name: webapp
    when: { exception: java.lang.NullPointerException, in: "Web.*", count: 2, within: 10s }
    then:
      - guard: { fallback: default }
      - guard: { fallback: { value: "price 0" } }
    validate: { window: 1s HEALTH }
"#;

const HEALTH: &str = r#", health: { method: "Web.respond(I)V", failure: "args[0] >= 500" }"#;

/// What a run under the policy showed: the rule's events, the program's counts, the agent's log.
struct Served {
    events: Vec<LoggedEvent>,
    tail_failed: u64,
    stderr: String,
}

impl Served {
    /// `(kind, patch)` of the verdict-related events of the rule's repairs, in order.
    fn story(&self) -> Vec<(&str, &str)> {
        self.events
            .iter()
            .filter(|e| !e.patch.starts_with("observe-"))
            .filter(|e| ["applied", "validated", "unproven", "rolled-back"].contains(&e.kind.as_str()))
            .map(|e| (e.kind.as_str(), e.patch.as_str()))
            .collect()
    }

    /// The reason of the first event of `kind` for patch `patch`.
    fn reason(&self, kind: &str, patch: &str) -> &str {
        let found = self.events.iter().find(|e| e.kind == kind && e.patch == patch);
        &found.unwrap_or_else(|| panic!("no {kind} event for {patch}:\n{}", self.stderr)).reason
    }
}

/// Starts `java Web REQUESTS EMPTY_FAILS_FROM` (`args`) in `dir` under the policy with `health`.
fn start(dir: &TempDir, health: &str, args: [u32; 2]) -> std::process::Child {
    let jdk = default_jdk();
    compile(&jdk, &dir.0, &[("Web.java", WEB)]);
    let [requests, fails_from] = args.map(|n| n.to_string());
    agent_support::spawn_with_policy(
        &jdk,
        &dir.0,
        &POLICY.replace(" HEALTH", health),
        &[],
        &["Web", &requests, &fails_from],
    )
}

/// Runs `java Web REQUESTS EMPTY_FAILS_FROM` to its end under the policy with `health`.
fn serve(tag: &str, health: &str, args: [u32; 2]) -> Served {
    let dir = TempDir::new(tag);
    let run = agent_support::finish(start(&dir, health, args), Duration::from_secs(60));
    run.expect_success();
    let last = run.stdout.trim().lines().last().unwrap_or("");
    let tail_failed = last
        .split(' ')
        .find_map(|kv| kv.strip_prefix("tail_failed="))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no tail_failed in {last:?}\n{}", run.stderr));
    Served { events: logged_events(&run.stderr, "webapp"), tail_failed, stderr: run.stderr.clone() }
}

/// The id the rule gives its action `action` at `Web.lookup` (see `policy::patch_id`).
fn id(action: usize) -> String {
    repair_model::policy::patch_id("webapp", "Web", "lookup", "(Ljava/lang/String;)Ljava/lang/String;", action, |_| {
        false
    })
}

/// With the health signal, the `null` guard is rolled back as soon as a 500 follows its fallback,
/// the event naming the signal and the call; the guard with a value is validated on healthy
/// responses after its fallbacks, and the last requests all answer 200.
#[test]
fn a_repair_the_health_signal_says_fails_is_rolled_back_and_the_next_action_validated() {
    let run = serve("heal-health", HEALTH, [300, 0]);
    let stderr = &run.stderr;
    let (first, next) = (id(0), id(1));
    assert_eq!(
        run.story(),
        [("applied", first.as_str()), ("rolled-back", &first), ("applied", &next), ("validated", &next)],
        "{stderr}"
    );
    let probed = run.events.iter().find(|e| e.kind == "applied" && e.patch.starts_with("observe-"));
    let probed = probed.unwrap_or_else(|| panic!("no event for the health probe:\n{stderr}"));
    assert!(probed.reason.starts_with("health signal Web.respond(I)V probed"), "{}", probed.reason);
    let rolled = run.reason("rolled-back", &first);
    assert!(
        rolled.starts_with(
            "health signal Web.respond(I)V: a call meeting `args[0] >= 500` (args[0] = 500) followed its fallback on \
             the same thread"
        ) && rolled.contains("0 fallbacks followed by a healthy respond, 1 by a failure")
            && !rolled.contains("after it was kept"),
        "{rolled}"
    );
    let validated = run.reason("validated", &next);
    let healthy: u64 = validated
        .split_once("health signal Web.respond(I)V: ")
        .and_then(|(_, said)| said.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("the verdict does not say what the health signal said: {validated}"));
    assert!(healthy >= 2 && validated.contains("followed by a healthy respond, 0 by a failure"), "{validated}");
    assert_eq!(run.tail_failed, 0, "the last requests still fail:\n{stderr}");
}

/// The same program and rule without the health signal: no fault follows the `null` guard's
/// fallbacks, so it is validated and stays, while every other request still answers 500.
#[test]
fn without_the_health_signal_the_repair_that_leaves_the_failure_is_validated() {
    let run = serve("heal-no-health", "", [300, 0]);
    let stderr = &run.stderr;
    let first = id(0);
    assert_eq!(run.story(), [("applied", first.as_str()), ("validated", &first)], "{stderr}");
    assert!(!run.reason("validated", &first).contains("health signal"), "{stderr}");
    assert!(!run.events.iter().any(|e| e.patch.starts_with("observe-")), "no probe without a signal:\n{stderr}");
    assert_eq!(run.tail_failed, 25, "every other request of the last 50 answers 500:\n{stderr}");
}

/// The `null` guard holds while an empty answer is a 200, and is validated on healthy responses;
/// when empty answers become 500s, the kept guard is rolled back for the first one and the rule's
/// next action applied and validated.
#[test]
fn a_kept_repair_is_rolled_back_when_the_health_signal_fails_after_its_fallback() {
    let run = serve("heal-health-kept", HEALTH, [400, 200]);
    let stderr = &run.stderr;
    let (first, next) = (id(0), id(1));
    assert_eq!(
        run.story(),
        [
            ("applied", first.as_str()),
            ("validated", &first),
            ("rolled-back", &first),
            ("applied", &next),
            ("validated", &next),
        ],
        "{stderr}"
    );
    let validated = run.reason("validated", &first);
    assert!(validated.contains("followed by a healthy respond, 0 by a failure"), "{validated}");
    let rolled = run.reason("rolled-back", &first);
    assert!(
        rolled.starts_with("after it was kept, health signal Web.respond(I)V: a call meeting `args[0] >= 500`")
            && rolled.contains("by a healthy respond, 1 by a failure"),
        "{rolled}"
    );
    assert_eq!(run.tail_failed, 0, "the last requests still fail:\n{stderr}");
}

/// The health signal's probes are an observation of kind `health` while the policy is in force
/// (an operator cannot stop it on its own), and go away when a policy without it replaces it.
#[test]
fn the_health_signal_is_probed_while_its_policy_is_in_force() {
    let dir = TempDir::new("heal-health-live");
    let mut child = start(&dir, HEALTH, [3000, 0]);
    let pid = child.id().to_string();
    let health = || -> Vec<serde_json::Value> {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_repairctl"))
            .args(["observations", "--pid", &pid, "-o", "json"])
            .output()
            .expect("repairctl runs");
        let listed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        listed.as_array().cloned().unwrap_or_default().into_iter().filter(|o| o["kind"] == "health").collect()
    };
    let wait = |done: &dyn Fn(&[serde_json::Value]) -> bool| {
        let start = std::time::Instant::now();
        loop {
            let now = health();
            if done(&now) || start.elapsed() > Duration::from_secs(20) {
                return now;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    let probed = wait(&|o| !o.is_empty());
    assert_eq!(probed.len(), 1, "{probed:?}");
    assert_eq!(
        (&probed[0]["target"], &probed[0]["who"], &probed[0]["condition"]),
        (&"Web.respond(I)V".into(), &"rule:webapp".into(), &"args[0] >= 500".into()),
        "{probed:?}"
    );
    let id = probed[0]["id"].to_string();
    let stop = std::process::Command::new(env!("CARGO_BIN_EXE_repairctl"))
        .args(["stop", &id, "--pid", &pid])
        .output()
        .expect("repairctl runs");
    let refused = String::from_utf8_lossy(&stop.stderr);
    assert!(!stop.status.success() && refused.contains("health signal of rule:webapp"), "{refused}");
    let plain = dir.0.join("plain.yaml");
    std::fs::write(&plain, POLICY.replace(" HEALTH", "")).unwrap();
    agent_support::repairctl_json(&["policy", "apply", &plain.display().to_string(), "--pid", &pid, "-o", "json"]);
    let after = wait(&|o| o.is_empty());
    assert!(after.is_empty(), "the probe stayed after the policy was replaced: {after:?}");
    child.kill().unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let events = logged_events(&stderr, "webapp");
    let ended = events.iter().find(|e| e.kind == "rolled-back" && e.patch.starts_with("observe-"));
    let ended = ended.unwrap_or_else(|| panic!("no event for the probe's end:\n{stderr}"));
    assert_eq!(ended.reason, "health signal Web.respond(I)V no longer probed: the policy was replaced");
}

/// A health signal naming a method its class does not have: its probe waits for the class and
/// is dropped as the class loads, the observation ending with it (nothing journaled), and the
/// program runs on as without the signal.
#[test]
fn a_health_signal_on_a_method_its_class_lacks_ends_as_the_class_loads() {
    let dir = TempDir::new("heal-health-missing");
    let run = agent_support::finish(
        start(&dir, &HEALTH.replace("respond(I)V", "respnd(I)V"), [60, 0]),
        Duration::from_secs(60),
    );
    run.expect_success();
    let stderr = &run.stderr;
    let events = logged_events(stderr, "webapp");
    let ended = events.iter().find(|e| e.kind == "rolled-back" && e.patch.starts_with("observe-"));
    let ended = ended.unwrap_or_else(|| panic!("no event for the dropped probe:\n{stderr}"));
    assert_eq!(
        ended.reason,
        "observation 1 (health Web.respnd(I)V) ended: does not fit Web as it loads: patch observe-1: class Web: no \
         method respnd(I)V"
    );
    let journal = std::fs::read(dir.0.join("state/repair/Web/journal.log")).expect("the journal");
    assert!(
        !String::from_utf8_lossy(&journal).contains("observe-1"),
        "an observation's probes are not journaled:\n{stderr}"
    );
    // The program runs on, repaired as without a signal.
    assert!(events.iter().any(|e| e.kind == "applied" && e.patch == id(0)), "{stderr}");
}
