//! Which of a rule's actions fit a fault, and the order to try them in. Pure: the agent hands in
//! what it knows of the fault and of each action at it, and carries the ranking out.
//!
//! An action is skipped, with its reason, when it cannot fit the fault:
//! - its `at:` names a site the fault's stack does not have (no application caller);
//! - `oblivious` for a fault that is not an `ArrayIndexOutOfBoundsException`: it bounds-checks
//!   array accesses and changes nothing else;
//! - `recursion` for a fault that is not a `StackOverflowError` and whose stack does not show the
//!   method it aims at [`RECURRING`] times or more: a depth limit on a method that does not recur
//!   never acts;
//! - `guard: { call: auto }` aimed at the throw site when the call that threw is not known: the
//!   site's own code threw (a division, an array index), and neither the exception's trace nor a
//!   `NullPointerException`'s message names a callee (aimed above the site, the call is the one
//!   into the frame below, always known);
//! - `rethrow: { as: auto }` when no application frame above handles a type it may throw (the
//!   agent reads the handlers and says why).
//!
//! Among the actions that fit, the rule's order stands, except that an action made for the fault
//! — `recursion` for a `StackOverflowError`, `oblivious` for an `ArrayIndexOutOfBoundsException` —
//! ranks before the generic repairs (guards, breakers, rethrows) listed before it. Probes and swaps
//! keep their places: a probe before repairs is there to look first, and a swap is the author's
//! own fix. Ties keep the rule's order, so the same fault and rule always rank the same.
//!
//! A `null` fallback (`fallback: null`, or `default` where the method returns an object or an
//! array) is said in the reason but does not move a repair back: it is often what the caller
//! copes with (a guarded lookup whose caller checks for `null`), and when the caller fails on it
//! validation rolls the repair back for that fault and the rule tries its next action.

use serde_yaml_ng::Value;

use crate::policy::{At, Candidate, FrameRef, Step};

/// How many times the method an action aims at must be on the fault's stack for the stack to show
/// recursion: once or twice is ordinary code (a retry, a visitor), more is a recursion.
pub const RECURRING: usize = 3;

const STACK_OVERFLOW: &str = "java.lang.StackOverflowError";
const ARRAY_INDEX: &str = "java.lang.ArrayIndexOutOfBoundsException";

/// What the ranking knows of a fault.
#[derive(Debug, Clone, Copy)]
pub struct Fault<'a> {
    /// The exception class and its superclasses, most specific first (dotted).
    pub chain: &'a [String],
    /// The stack as captured, innermost first (at most a few dozen frames).
    pub stack: &'a [FrameRef],
    /// The method the throw site was calling when the exception was thrown (from the exception's
    /// trace, or named by a `NullPointerException`'s message); `None`: its own code threw.
    pub callee: Option<&'a str>,
}

/// One of a rule's actions still to try at a site, with what the agent found of it at this fault.
#[derive(Debug, Clone)]
pub struct Prospect<'a, T> {
    /// Its number in the rule's `then`.
    pub action: usize,
    pub step: &'a Step,
    /// The site it aims at; `None`: the stack has no candidate there.
    pub target: Option<&'a Candidate>,
    /// For `rethrow: { as: auto }`: what the agent found (the type and what to say of it), or why
    /// no frame above handles a type it may throw. `None` for other actions.
    pub rethrow: Option<Result<T, String>>,
}

/// How well an action that fits suits the fault; lower ranks first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Fit {
    /// Made for this kind of fault.
    Made,
    /// A generic repair.
    Generic,
}

/// An action that fits, and why it ranks where it does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ranked {
    pub action: usize,
    /// Its label in events: `recursion`, `guard at caller`, `guard the call`.
    pub label: String,
    /// `None`: a probe or a swap, which keeps its place.
    pub fit: Option<Fit>,
    /// Why it fits as it does, in words.
    pub why: String,
}

/// An action that cannot fit the fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    pub action: usize,
    pub label: String,
    pub why: String,
}

/// The actions to try, best first, and those skipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ranking {
    pub order: Vec<Ranked>,
    pub skipped: Vec<Skipped>,
}

/// Ranks `prospects` (in the rule's order) for `fault`; see the module's doc for the rules.
pub fn rank<T>(fault: &Fault<'_>, prospects: &[Prospect<'_, T>]) -> Ranking {
    let mut order = Vec::new();
    let mut skipped = Vec::new();
    for p in prospects {
        let label = label(p.step);
        match fits(fault, p) {
            Ok((fit, why)) => order.push(Ranked { action: p.action, label, fit, why }),
            Err(why) => skipped.push(Skipped { action: p.action, label, why }),
        }
    }
    // Probes and swaps keep their slots; the repairs in the other slots are sorted by fit, stably.
    let slots: Vec<usize> = (0..order.len()).filter(|i| order[*i].fit.is_some()).collect();
    let mut repairs: Vec<Ranked> = slots.iter().map(|i| order[*i].clone()).collect();
    repairs.sort_by_key(|r| r.fit);
    for (slot, r) in slots.into_iter().zip(repairs) {
        order[slot] = r;
    }
    Ranking { order, skipped }
}

impl Ranking {
    /// What an event says of trying `order[pos]`: why it, which actions listed before it in the
    /// rule rank after it and why, and which were skipped (each said once, in its own event).
    pub fn why_chosen(&self, pos: usize) -> String {
        let chosen = &self.order[pos];
        let mut text = format!("chose action {} ({}): {}", chosen.action, chosen.label, chosen.why);
        for later in self.order[pos + 1..].iter().filter(|r| r.action < chosen.action) {
            // Only an action made for the fault moves ahead of a generic one listed before it.
            let because = match later.fit {
                Some(Fit::Generic) => "a generic repair, after one made for the fault",
                _ => &later.why,
            };
            text += &format!("; action {} ({}) ranks after it: {because}", later.action, later.label);
        }
        let skipped: Vec<String> = self.skipped.iter().map(|s| format!("action {} ({})", s.action, s.label)).collect();
        if !skipped.is_empty() {
            text += &format!("; skipped {} (refused, each with its reason)", skipped.join(", "));
        }
        text
    }
}

/// What an event calls an action: its kind, `the call` for a guard of the call that threw, and
/// where it aims when that is not the throw site.
pub fn label(step: &Step) -> String {
    let mut label = kind(step).to_string();
    if crate::policy::wants_call(&step.action) {
        label += " the call";
    }
    match step.at {
        At::Site => {}
        At::Caller => label += " at caller",
        At::Up(n) => label += &format!(" up {n}"),
    }
    label
}

/// The action's kind: `guard`, `recursion`, ... (its one key).
fn kind(step: &Step) -> &str {
    step.action.as_mapping().and_then(|m| m.keys().next()).and_then(Value::as_str).unwrap_or("?")
}

/// Whether the action fits the fault: how well and why, or why not.
fn fits<T>(fault: &Fault<'_>, p: &Prospect<'_, T>) -> Result<(Option<Fit>, String), String> {
    let Some(target) = p.target else {
        let at = match p.step.at {
            At::Site => "throw site".to_string(),
            At::Caller => "caller".to_string(),
            At::Up(n) => format!("application frame {n} above the throw site"),
        };
        return Err(format!("no {at} candidate in the fault's stack"));
    };
    let exception = fault.chain.first().map_or("the fault", String::as_str);
    let site = |f: &FrameRef| crate::policy::site_key(&f.class, &f.method, &f.descriptor);
    let is = |class: &str| fault.chain.iter().any(|c| c == class);
    match kind(p.step) {
        k @ ("probe" | "swap") => return Ok((None, format!("a {k} keeps its place in the rule"))),
        "oblivious" if !is(ARRAY_INDEX) => {
            return Err(format!("{exception} is not an array index fault: nothing for oblivious access to absorb"))
        }
        "oblivious" => {
            return Ok((Some(Fit::Made), format!("made for this fault: {exception} in {}", site(&target.frame))))
        }
        "recursion" => {
            let captured = fault.stack.iter().filter(|f| !f.class.starts_with("repair.rt.")).count();
            let recurring = fault.stack.iter().filter(|f| same_method(f, &target.frame)).count();
            let times = if recurring == 1 { "once".to_string() } else { format!("{recurring} times") };
            let seen = format!("{} {times} in the {captured} frames captured", site(&target.frame));
            if is(STACK_OVERFLOW) {
                return Ok((Some(Fit::Made), format!("made for this fault: {exception} with {seen}")));
            }
            if recurring < RECURRING {
                return Err(format!(
                    "{exception} is not a StackOverflowError and the stack shows no recursion ({seen})"
                ));
            }
            return Ok((Some(Fit::Generic), format!("the stack shows a recursion: {seen}")));
        }
        "rethrow" => match &p.rethrow {
            Some(Err(why)) => return Err(why.clone()),
            _ => return Ok((Some(Fit::Generic), GENERIC.to_string())),
        },
        _ => {}
    }
    if crate::policy::wants_call(&p.step.action) && target.depth == 0 && fault.callee.is_none() {
        return Err(format!(
            "{}.{} threw by its own code, not in a call it made (no callee in the exception's trace or message)",
            target.frame.class, target.frame.method
        ));
    }
    // A guarded call's fallback takes the call's type, not known here.
    let call = crate::policy::wants_call(&p.step.action);
    match returns_null(p.step, &target.frame.descriptor) {
        Some(returns) if !call => Ok((
            Some(Fit::Generic),
            format!("{GENERIC}; its fallback is null ({} returns {returns})", site(&target.frame)),
        )),
        _ => Ok((Some(Fit::Generic), GENERIC.to_string())),
    }
}

/// Why a generic repair stands where it does.
const GENERIC: &str = "a generic repair, in the rule's order";

/// Whether two frames are the same method (a frame from an exception's trace has no descriptor).
fn same_method(a: &FrameRef, b: &FrameRef) -> bool {
    a.class == b.class
        && a.method == b.method
        && (a.descriptor == b.descriptor || a.descriptor.is_empty() || b.descriptor.is_empty())
}

/// When the action's fallback is `null` for a method of `descriptor`: what the method returns
/// (`an object`, `an array`, or `null` itself for `fallback: null`).
fn returns_null(step: &Step, descriptor: &str) -> Option<&'static str> {
    let fallback = step.action.get(kind(step))?.get("fallback")?;
    let returned = descriptor.rsplit_once(')').map(|(_, r)| r);
    match fallback {
        Value::Null => Some("null"),
        Value::String(s) if s == "null" => Some("null"),
        Value::String(s) if s == "default" => match returned?.chars().next()? {
            'L' => Some("an object"),
            '[' => Some("an array"),
            _ => None,
        },
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(yaml: &str) -> Step {
        let rule =
            format!("rules:\n  - name: r\n    when: {{ exception: java.lang.Throwable }}\n    then:\n      - {yaml}\n");
        crate::policy::parse(&rule, "p.yaml").unwrap().rules.remove(0).then.remove(0)
    }

    fn frame(class: &str, method: &str, descriptor: &str) -> FrameRef {
        FrameRef { class: class.into(), method: method.into(), descriptor: descriptor.into(), bci: 3 }
    }

    fn candidate(frame: FrameRef, depth: usize) -> Candidate {
        Candidate { frame, depth, reason: "throw site".into() }
    }

    fn chain(classes: &[&str]) -> Vec<String> {
        classes.iter().map(|c| c.to_string()).collect()
    }

    const SOE: &[&str] = &["java.lang.StackOverflowError", "java.lang.VirtualMachineError", "java.lang.Error"];
    const AIOOBE: &[&str] = &[
        "java.lang.ArrayIndexOutOfBoundsException",
        "java.lang.IndexOutOfBoundsException",
        "java.lang.RuntimeException",
    ];
    const NPE: &[&str] = &["java.lang.NullPointerException", "java.lang.RuntimeException"];

    /// Ranks `steps` (aimed at `candidates` by their `at:`) for a fault; returns (order, skipped)
    /// as action numbers, and the ranking.
    fn ranked(fault: &Fault<'_>, steps: &[Step], candidates: &[Candidate]) -> (Vec<usize>, Vec<usize>, Ranking) {
        let prospects: Vec<Prospect<'_, ()>> = steps
            .iter()
            .enumerate()
            .map(|(action, step)| Prospect { action, step, target: candidates.get(step.at.index()), rethrow: None })
            .collect();
        let r = rank(fault, &prospects);
        (r.order.iter().map(|o| o.action).collect(), r.skipped.iter().map(|s| s.action).collect(), r)
    }

    #[test]
    fn oblivious_fits_an_array_index_fault_only_and_then_ranks_before_generic_repairs() {
        let steps = [step("guard: { catch: [fault], fallback: { value: -1 } }"), step("oblivious: {}")];
        let sum = frame("a.Sums", "sum", "([I)I");
        let candidates = [candidate(sum.clone(), 0)];
        let stack = [sum];
        let aioobe = chain(AIOOBE);
        let (order, skipped, r) = ranked(&Fault { chain: &aioobe, stack: &stack, callee: None }, &steps, &candidates);
        assert_eq!((order, skipped), (vec![1, 0], vec![]));
        assert_eq!(r.order[0].why, "made for this fault: java.lang.ArrayIndexOutOfBoundsException in a.Sums.sum([I)I");
        let npe = chain(NPE);
        let (order, skipped, r) = ranked(&Fault { chain: &npe, stack: &stack, callee: None }, &steps, &candidates);
        assert_eq!((order, skipped), (vec![0], vec![1]));
        assert_eq!(
            r.skipped[0].why,
            "java.lang.NullPointerException is not an array index fault: nothing for oblivious access to absorb"
        );
        // An index fault of a list (not an array) is no array index fault either.
        let list = chain(&["java.lang.IndexOutOfBoundsException", "java.lang.RuntimeException"]);
        let (_, skipped, _) = ranked(&Fault { chain: &list, stack: &stack, callee: None }, &steps, &candidates);
        assert_eq!(skipped, [1]);
    }

    #[test]
    fn recursion_fits_a_stack_overflow_or_a_stack_that_shows_the_method_recurring() {
        let steps = [
            step("guard: { catch: [fault], fallback: default }"),
            step("recursion: { depth: 200, fallback: default }"),
        ];
        let walk = frame("a.Tree", "walk", "(La/Node;)I");
        let candidates = [candidate(walk.clone(), 1)];
        // As a bytecode capture probe sees it: the agent's hook on top, then the recursion.
        let mut stack = vec![frame("repair.rt.Hooks", "thrown", "(I)V")];
        stack.extend(std::iter::repeat_n(walk.clone(), 31));
        let soe = chain(SOE);
        let (order, skipped, r) = ranked(&Fault { chain: &soe, stack: &stack, callee: None }, &steps, &candidates);
        assert_eq!((order, skipped), (vec![1, 0], vec![]));
        assert_eq!(
            r.order[0].why,
            "made for this fault: java.lang.StackOverflowError with a.Tree.walk(La/Node;)I 31 times in the 31 frames captured"
        );
        // Not a stack overflow: a recursion guard fits only where the method recurs, and is then
        // one generic repair among others, in the rule's order.
        let npe = chain(NPE);
        let shallow = [walk.clone(), walk.clone(), frame("a.Main", "main", "([Ljava/lang/String;)V")];
        let (order, skipped, r) = ranked(&Fault { chain: &npe, stack: &shallow, callee: None }, &steps, &candidates);
        assert_eq!((order, skipped), (vec![0], vec![1]));
        assert_eq!(
            r.skipped[0].why,
            "java.lang.NullPointerException is not a StackOverflowError and the stack shows no recursion \
             (a.Tree.walk(La/Node;)I 2 times in the 3 frames captured)"
        );
        let deep = [walk.clone(), walk.clone(), walk.clone(), frame("a.Main", "main", "([Ljava/lang/String;)V")];
        let (order, skipped, r) = ranked(&Fault { chain: &npe, stack: &deep, callee: None }, &steps, &candidates);
        assert_eq!((order, skipped), (vec![0, 1], vec![]));
        assert_eq!(
            r.order[1].why,
            "the stack shows a recursion: a.Tree.walk(La/Node;)I 3 times in the 4 frames captured"
        );
        // A frame from an exception's trace has no descriptor: it is still the same method.
        let traced = [frame("a.Tree", "walk", ""), frame("a.Tree", "walk", ""), walk];
        let (order, _, _) = ranked(&Fault { chain: &npe, stack: &traced, callee: None }, &steps, &candidates);
        assert_eq!(order, [0, 1]);
    }

    #[test]
    fn a_call_guard_needs_the_call_that_threw_when_aimed_at_the_throw_site() {
        let steps = [
            step("guard: { call: auto, catch: [fault], fallback: { value: 0 } }"),
            step("{ guard: { call: auto, catch: [fault], fallback: { value: 0 } }, at: caller }"),
            step("guard: { catch: [fault], fallback: { value: 0 } }"),
        ];
        let ratio = frame("a.Stats", "ratio", "(JJ)J");
        let candidates = [candidate(ratio.clone(), 0), candidate(frame("a.Stats", "report", "()J"), 1)];
        let stack = [ratio, candidates[1].frame.clone()];
        let arith = chain(&["java.lang.ArithmeticException", "java.lang.RuntimeException"]);
        let own = Fault { chain: &arith, stack: &stack, callee: None };
        let (order, skipped, r) = ranked(&own, &steps, &candidates);
        // The caller's call into ratio is known from the stack.
        assert_eq!((order, skipped), (vec![1, 2], vec![0]));
        assert_eq!(
            r.skipped[0].why,
            "a.Stats.ratio threw by its own code, not in a call it made (no callee in the exception's trace or message)"
        );
        assert_eq!(
            (r.skipped[0].label.as_str(), r.order[0].label.as_str()),
            ("guard the call", "guard the call at caller")
        );
        let (order, skipped, _) = ranked(&Fault { callee: Some("longValue"), ..own }, &steps, &candidates);
        assert_eq!((order, skipped), (vec![0, 1, 2], vec![]));
    }

    #[test]
    fn a_rethrow_with_no_handler_above_is_skipped_with_the_agents_reason() {
        let steps =
            [step("rethrow: { catch: [fault], as: auto }"), step("guard: { catch: [fault], fallback: default }")];
        let parse = frame("a.Import", "parse", "(Ljava/lang/String;)I");
        let candidates = [candidate(parse.clone(), 0)];
        let stack = [parse];
        let nfe = chain(&["java.lang.NumberFormatException", "java.lang.RuntimeException"]);
        let fault = Fault { chain: &nfe, stack: &stack, callee: Some("parseInt") };
        let with = |rethrow: Result<&str, String>| {
            let prospects = [
                Prospect { action: 0, step: &steps[0], target: Some(&candidates[0]), rethrow: Some(rethrow) },
                Prospect { action: 1, step: &steps[1], target: Some(&candidates[0]), rethrow: None },
            ];
            rank(&fault, &prospects)
        };
        let handled = with(Ok("java.io.IOException"));
        assert_eq!(handled.order.iter().map(|o| o.action).collect::<Vec<_>>(), [0, 1]);
        let none = with(Err(crate::policy::NO_HANDLER.to_string()));
        assert_eq!(none.order.iter().map(|o| o.action).collect::<Vec<_>>(), [1]);
        assert_eq!(
            none.skipped,
            [Skipped { action: 0, label: "rethrow".into(), why: crate::policy::NO_HANDLER.to_string() }]
        );
    }

    #[test]
    fn an_action_aimed_where_the_stack_has_no_site_is_skipped() {
        let steps = [
            step("{ guard: { fallback: default }, at: caller }"),
            step("{ guard: { fallback: default }, at: { up: 3 } }"),
        ];
        let only = frame("a.Main", "main", "([Ljava/lang/String;)V");
        let candidates = [candidate(only.clone(), 0)];
        let npe = chain(NPE);
        let (order, _, r) = ranked(&Fault { chain: &npe, stack: &[only], callee: None }, &steps, &candidates);
        assert!(order.is_empty());
        assert_eq!(r.skipped[0].why, "no caller candidate in the fault's stack");
        assert_eq!(r.skipped[1].why, "no application frame 3 above the throw site candidate in the fault's stack");
        assert_eq!(r.skipped[1].label, "guard up 3");
    }

    #[test]
    fn a_null_fallback_is_said_but_keeps_the_rules_order() {
        let steps = [
            step("guard: { catch: [fault], fallback: default }"),
            step("{ guard: { catch: [fault], fallback: default }, at: caller }"),
            step("guard: { catch: [fault], fallback: { value: \"?\" } }"),
        ];
        let label = frame("a.Names", "label", "(I)Ljava/lang/String;");
        let print = frame("a.Names", "print", "(I)V");
        let candidates = [candidate(label.clone(), 0), candidate(print.clone(), 1)];
        let stack = [label, print];
        let npe = chain(NPE);
        let fault = Fault { chain: &npe, stack: &stack, callee: Some("get") };
        let (order, skipped, r) = ranked(&fault, &steps, &candidates);
        assert_eq!((order, skipped), (vec![0, 1, 2], vec![]));
        assert_eq!(
            r.why_chosen(0),
            "chose action 0 (guard): a generic repair, in the rule's order; its fallback is null \
             (a.Names.label(I)Ljava/lang/String; returns an object)"
        );
        assert_eq!(r.order[1].why, "a generic repair, in the rule's order", "void: no fallback value");
        assert_eq!(r.order[2].why, "a generic repair, in the rule's order", "a value");
        let rows = [candidate(frame("a.Names", "rows", "()[Ljava/lang/String;"), 0)];
        assert!(ranked(&fault, &steps[..1], &rows).2.order[0].why.ends_with("returns an array)"));
        let explicit = [
            step("guard: { catch: [fault], fallback: null }"),
            step("guard: { catch: [fault], fallback: { arg: 0 } }"),
        ];
        let r = ranked(&fault, &explicit, &candidates).2;
        assert!(r.order[0].why.ends_with("returns null)"), "{}", r.order[0].why);
        assert_eq!(r.order[1].why, "a generic repair, in the rule's order");
        // A guarded call's result type is not known here, nor a descriptor-less frame's.
        let call = [step("guard: { call: auto, catch: [fault], fallback: default }")];
        assert_eq!(ranked(&fault, &call, &candidates).2.order[0].why, "a generic repair, in the rule's order");
        let traced = [candidate(frame("a.Names", "label", ""), 0)];
        assert_eq!(ranked(&fault, &steps[..1], &traced).2.order[0].why, "a generic repair, in the rule's order");
    }

    #[test]
    fn probes_and_swaps_keep_their_places_and_ties_keep_the_rules_order() {
        let steps = [
            step("guard: { catch: [fault], fallback: default }"),
            step("probe: { at: [exit], capture: [args] }"),
            step("recursion: { depth: 100, fallback: default }"),
            step("breaker: { failures: 3, window: 10s, cooldown: 5s, fallback: default }"),
        ];
        let walk = frame("a.Tree", "walk", "(I)I");
        let candidates = [candidate(walk.clone(), 0)];
        let stack = vec![walk; 32];
        let soe = chain(SOE);
        let fault = Fault { chain: &soe, stack: &stack, callee: None };
        let (order, _, r) = ranked(&fault, &steps, &candidates);
        assert_eq!(order, [2, 1, 0, 3], "the probe stays second");
        assert_eq!(r.order[1].fit, None);
        assert_eq!(ranked(&fault, &steps, &candidates).2, r, "deterministic");
        assert_eq!(
            r.why_chosen(0),
            "chose action 2 (recursion): made for this fault: java.lang.StackOverflowError with a.Tree.walk(I)I 32 \
             times in the 32 frames captured; action 1 (probe) ranks after it: a probe keeps its place in the rule; \
             action 0 (guard) ranks after it: a generic repair, after one made for the fault"
        );
    }

    #[test]
    fn the_choice_names_the_skipped_actions_once_without_their_reasons() {
        let steps = [
            step("oblivious: {}"),
            step("guard: { catch: [fault], fallback: default }"),
            step("recursion: { depth: 100, fallback: default }"),
        ];
        let walk = frame("a.Tree", "walk", "(I)I");
        let candidates = [candidate(walk.clone(), 0)];
        let stack = vec![walk; 32];
        let soe = chain(SOE);
        let (order, skipped, r) = ranked(&Fault { chain: &soe, stack: &stack, callee: None }, &steps, &candidates);
        assert_eq!((order, skipped), (vec![2, 1], vec![0]));
        let why = r.why_chosen(0);
        assert!(why.ends_with("; skipped action 0 (oblivious) (refused, each with its reason)"), "{why}");
        assert!(!why.contains("not an array index fault"), "the reason is its refusal's: {why}");
        // The next one, when the first did not apply: nothing ranks after it that was listed before.
        assert!(
            r.why_chosen(1)
                .starts_with("chose action 1 (guard): a generic repair, in the rule's order; skipped action 0"),
            "{}",
            r.why_chosen(1)
        );
    }
}
