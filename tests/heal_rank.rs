//! The engine ranks a rule's actions by how they fit each fault, on a real JVM with the real
//! librepair.so: one generic rule lists a guard first, then `oblivious`, then `recursion` — an
//! order wrong for both faults of the program — and each fault gets the action made for it, the
//! applied event saying why, the actions that do not fit refused once each with their reasons,
//! and the program's answers right afterwards.

mod agent_support;

use std::time::Duration;

use agent_support::{compile, default_jdk, TempDir};
use repair_model::policy::patch_id;

/// `length` counts the nodes of a list by recursion (a cyclic one: without end); `sum` reads one
/// past the end of its array. Each round measures a list of 10 nodes (must stay 10), the cyclic
/// list, and sums {1, 2, 3}; a request loop's catch-all counts what fails.
const RANK: &str = r#"
public class Rank {
    static final class Node { Node next; }
    static int length(Node n) { return n == null ? 0 : 1 + length(n.next); }
    static int sum(int[] a) {
        int s = 0;
        for (int i = 0; i <= a.length; i++) s += a[i];
        return s;
    }
    public static void main(String[] args) throws Exception {
        Node cyclic = new Node();
        cyclic.next = cyclic;
        Node list = null;
        for (int i = 0; i < 10; i++) { Node n = new Node(); n.next = list; list = n; }
        int rounds = 80, overflows = 0, wrongLength = 0, lastLength = 0, indexErrors = 0;
        long total = 0;
        for (int i = 0; i < rounds; i++) {
            if (length(list) != 10) wrongLength++;
            try { lastLength = length(cyclic); } catch (Throwable e) { overflows++; }
            try { total += sum(new int[] {1, 2, 3}); } catch (Throwable e) { indexErrors++; }
            Thread.sleep(25);
        }
        System.out.println("rounds=" + rounds + " overflows=" + overflows + " lastLength=" + lastLength
            + " wrongLength=" + wrongLength + " indexErrors=" + indexErrors + " total=" + total);
    }
}
"#;

/// Any fault in `Rank`, twice at a site: the actions in an order that is wrong for both faults
/// (a guard would answer -2 for each, wrongly; `oblivious` cannot absorb a stack overflow, nor
/// a recursion guard an index fault).
const POLICY: &str = r#"
rules:
  - name: any
    when: { exception: java.lang.Throwable, in: "Rank.*", count: 2, within: 10s }
    then:
      - guard: { catch: [fault], fallback: { value: -2 } }
      - oblivious: {}
      - recursion: { depth: 500, fallback: { value: -1 } }
    validate: { window: 500ms, min_calls: 5, max_window: 5s, max_fallback_rate: 1.0 }
"#;

#[test]
fn one_rule_gives_each_fault_the_action_made_for_it_and_says_why() {
    let jdk = default_jdk();
    let dir = TempDir::new("heal-rank");
    compile(&jdk, &dir.0, &[("Rank.java", RANK)]);
    let child = agent_support::spawn_with_policy(&jdk, &dir.0, POLICY, &["-Xss512k"], &["Rank"]);
    let run = agent_support::finish(child, Duration::from_secs(60));
    run.expect_success();
    let stderr = &run.stderr;
    let logged = agent_support::logged_events(stderr, "any");
    let events: Vec<(&str, &str, &str)> =
        logged.iter().map(|e| (e.kind.as_str(), e.patch.as_str(), e.reason.as_str())).collect();
    let id =
        |method: &str, descriptor: &str, action: usize| patch_id("any", "Rank", method, descriptor, action, |_| false);
    let reason =
        |kind: &str, patch: &str| events.iter().find(|(k, p, _)| *k == kind && *p == patch).map_or("", |e| e.2);
    let repairs = |method: &str, descriptor: &str| -> Vec<(&str, String)> {
        let ids: Vec<String> = (0..3).map(|a| id(method, descriptor, a)).collect();
        events
            .iter()
            .filter(|(k, p, _)| *k != "refused" && ids.iter().any(|id| id == p))
            .map(|(k, p, _)| (*k, p.to_string()))
            .collect()
    };

    // The stack overflow: the recursion guard (action 2), before the guard listed first; oblivious
    // refused for it, once, with its reason.
    let recursion = id("length", "(LRank$Node;)I", 2);
    assert_eq!(
        repairs("length", "(LRank$Node;)I"),
        [("applied", recursion.clone()), ("validated", recursion.clone())],
        "{stderr}"
    );
    let applied = reason("applied", &recursion);
    assert!(applied.starts_with("recursion deeper than 500 -> value -1 at Rank.length(LRank$Node;)I"), "{applied}");
    assert!(
        applied.contains(
            "chose action 2 (recursion): made for this fault: java.lang.StackOverflowError with \
             Rank.length(LRank$Node;)I "
        ) && applied.contains(" times in the "),
        "{applied}"
    );
    assert!(
        applied.contains("; action 0 (guard) ranks after it: a generic repair, after one made for the fault"),
        "{applied}"
    );
    assert!(applied.contains("; skipped action 1 (oblivious) (refused, each with its reason)"), "{applied}");

    // The index fault: oblivious (action 1), before the guard; the recursion guard refused for it.
    let oblivious = id("sum", "([I)I", 1);
    assert_eq!(repairs("sum", "([I)I"), [("applied", oblivious.clone()), ("validated", oblivious.clone())], "{stderr}");
    let applied = reason("applied", &oblivious);
    assert!(applied.starts_with("oblivious array access at Rank.sum([I)I"), "{applied}");
    assert!(
        applied.contains(
            "chose action 1 (oblivious): made for this fault: java.lang.ArrayIndexOutOfBoundsException in \
             Rank.sum([I)I; action 0 (guard) ranks after it: a generic repair, after one made for the fault; \
             skipped action 2 (recursion)"
        ),
        "{applied}"
    );

    // Each action that does not fit is refused once, with its reason, and nowhere else.
    let refused: Vec<&str> = events.iter().filter(|(k, ..)| *k == "refused").map(|e| e.2).collect();
    assert_eq!(
        refused,
        [
            "action 1 (oblivious): java.lang.StackOverflowError is not an array index fault: nothing for \
             oblivious access to absorb",
            "action 2 (recursion): java.lang.ArrayIndexOutOfBoundsException is not a StackOverflowError and the \
             stack shows no recursion (Rank.sum([I)I once in the 2 frames captured)",
        ],
        "{stderr}"
    );
    for why in ["is not an array index fault", "shows no recursion"] {
        assert_eq!(stderr.matches(why).count(), 1, "{why}: {stderr}");
    }
    assert!(!stderr.contains(&id("length", "(LRank$Node;)I", 0)), "the guard was never applied to length");
    assert!(!stderr.contains(&id("sum", "([I)I", 0)), "the guard was never applied to sum");

    // The answers: the cyclic list measures 500 calls + the fallback -1, the finite one 10; every
    // sum after the repair is 6 (the read past the end yields 0), not the guard's -2.
    let last = run.stdout.lines().find(|l| l.starts_with("rounds=")).unwrap_or_else(|| panic!("{}", run.stdout));
    let count = |k: &str| -> i64 {
        last.split(' ')
            .find_map(|kv| kv.strip_prefix(&format!("{k}=")))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {k} in {last:?}"))
    };
    let rounds = count("rounds");
    // Each rule fires on the 2nd fault; on a busy machine a few more fail before the patch is in.
    assert!((2..=10).contains(&count("overflows")), "{last}\n{stderr}");
    assert_eq!(count("lastLength"), 499, "{last}");
    assert_eq!(count("wrongLength"), 0, "the finite list kept its length: {last}");
    let index_errors = count("indexErrors");
    assert!((2..=20).contains(&index_errors), "{last}\n{stderr}");
    assert_eq!(count("total"), 6 * (rounds - index_errors), "{last}");
}
