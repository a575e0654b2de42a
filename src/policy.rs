//! Policies: rules that repair by themselves. This module is the pure part — the policy file and
//! the decisions it leads to for a stream of faults; the agent feeds it faults and carries the
//! decisions out.
//!
//! ```yaml
//! mode: enforce            # or dry-run: decide and report, apply nothing
//! limits: { repairs_per_minute: 10, active_patches: 20 }
//! rules:
//!   - name: price-npe
//!     when: { exception: java.lang.NullPointerException, in: "repair.demo.*", count: 3, within: 10s }
//!     then:                # the actions, ranked by fit to each fault (crate::rank); one that does not hold is not tried there again
//!       - guard: { call: auto, catch: [java.lang.NullPointerException], fallback: { value: 0 } }
//!       - guard: { catch: [java.lang.NullPointerException], fallback: { value: 0 } }
//!       - { breaker: { failures: 5, window: 10s, cooldown: 5s, fallback: { value: 0 } }, at: caller }
//!     validate: { window: 30s, min_calls: 5, max_window: 5m, max_fallback_rate: 0.5 }
//!     durable: true        # a repair that holds is kept across restarts
//! ```
//!
//! Each action is a patch action of the spec (`guard`, `probe`, `swap`, `breaker`, `recursion`, `rethrow`, `oblivious`) aimed at a
//! site chosen by fault localization: `at: site` (the default) is the throw site, the innermost
//! application frame; `at: caller` the first application frame above it, `at: { up: N }` the N-th
//! (an early return further up the stack). `guard: { call: auto }`
//! guards only the call that threw, inside the throw site. `rethrow: { catch: [fault], as: auto }`
//! throws instead a type that an application frame above already handles around its call
//! ([`rethrow_types`]); with no such frame it is refused and the next action tried.
//!
//! When a rule fires at a site, the engine offers the actions not spent there yet (refused, or
//! applied and rolled back); the agent ranks them for the fault ([`crate::rank`]) and tries them
//! best first.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_yaml_ng::Value;

/// What a rule does when it fires: a patch action, as YAML the spec parser reads.
pub type ActionYaml = Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Enforce,
    DryRun,
}

#[derive(Debug, Clone)]
pub struct Rule {
    pub name: String,
    /// The exception class, or one of its superclasses (dotted).
    pub exception: String,
    /// Glob over `class.method` of the throwing frame; `None`: any application code.
    pub within_code: Option<String>,
    pub message: Option<regex::Regex>,
    /// `Some(false)`: only exceptions no handler catches (the thread dies); `Some(true)`: only
    /// caught ones; `None`: either.
    pub caught: Option<bool>,
    pub count: u32,
    pub window: Duration,
    /// Actions in the order the rule lists them: ranked by fit to each fault ([`crate::rank`]).
    pub then: Vec<Step>,
    pub validate_window: Duration,
    /// Calls of the repaired method a verdict needs: the window extends until there were as many.
    pub min_calls: u64,
    /// How far the window extends for want of calls; reaching it ends `unproven`.
    pub max_window: Duration,
    pub max_fallback_rate: f64,
    /// What the rule's repairs are also judged by: calls of a method that say whether the
    /// application answered well after a fallback (`validate.health`).
    pub health: Option<Health>,
    /// Whether JDK classes may be patched by this rule.
    pub allow_jdk: bool,
    /// Whether a repair of this rule that holds is kept across restarts.
    pub durable: bool,
}

/// A health signal (`validate.health: { method, failure }`): a method whose calls say whether
/// the application answered well (a servlet response's status), and when a call says it did not.
/// A call meeting `failure` after one of a repair's fallbacks on its thread counts against the
/// repair as a fault there does; one that does not is evidence that the repair works.
#[derive(Debug, Clone)]
pub struct Health {
    /// The method's class (dotted).
    pub class: String,
    /// Its name, and its descriptor when the rule gives one.
    pub method: repair_bytecode::transform::MethodTarget,
    /// When a call is a failure, in the observe condition language (`args[0] >= 500`).
    pub failure: crate::observe::Condition,
}

impl Health {
    /// `Class.method(descriptor)`, as the rule gives it.
    pub fn target(&self) -> String {
        format!("{}.{}", self.class, self.method)
    }
}

/// Reads `validate.health`; the error names the field and why (the caller adds the rule).
fn health(v: &Value) -> Result<Health, (&'static str, String)> {
    let m =
        v.as_mapping().ok_or(("validate.health", "expected { method: CLASS.METHOD, failure: CONDITION }".into()))?;
    if let Some(other) = m.keys().find(|k| !matches!(k.as_str(), Some("method" | "failure"))) {
        let name = other.as_str().map_or_else(|| format!("{other:?}"), str::to_string);
        return Err(("validate.health", format!("unknown field {name:?}: expected method and failure")));
    }
    let text = match m.get("method") {
        None => return Err(("validate.health.method", "missing".into())),
        Some(t) => {
            t.as_str().ok_or(("validate.health.method", "expected CLASS.METHOD or CLASS.METHOD(DESCRIPTOR)".into()))?
        }
    };
    let bad_method = |why: &str| ("validate.health.method", format!("{text:?}: {why}"));
    let (path, descriptor) = match text.find('(') {
        Some(i) => (&text[..i], Some(&text[i..])),
        None => (text, None),
    };
    let (class, name) = path.rsplit_once('.').ok_or_else(|| bad_method("expected CLASS.METHOD"))?;
    if !crate::spec::is_binary_name(class) {
        return Err(bad_method(&format!("{class:?} is not a class name")));
    }
    if !crate::spec::is_binary_name(name) || name.contains('/') {
        return Err(bad_method(&format!("{name:?} is not a method name")));
    }
    // A descriptor fixes the arity, so `args[N]` past it is refused now, not never true later.
    let arity = match descriptor {
        None => None,
        Some(d) => Some(
            repair_bytecode::descriptor::MethodDescriptor::parse(d)
                .map_err(|e| bad_method(&format!("descriptor: {}", e.reason)))?
                .params
                .len(),
        ),
    };
    let failure = match m.get("failure") {
        None => return Err(("validate.health.failure", "missing".into())),
        Some(f) => f
            .as_str()
            .ok_or(("validate.health.failure", "expected a condition in quotes, such as \"args[0] >= 500\"".into()))?,
    };
    // The condition language's errors are written for `watch --if`: the field says where it is here.
    let failure = crate::observe::Condition::parse(failure, arity)
        .map_err(|e| ("validate.health.failure", e.strip_prefix("--if ").unwrap_or(&e).to_string()))?;
    let method =
        repair_bytecode::transform::MethodTarget { name: name.to_string(), descriptor: descriptor.map(str::to_string) };
    Ok(Health { class: class.to_string(), method, failure })
}

/// One action of a rule and where it aims.
#[derive(Debug, Clone)]
pub struct Step {
    /// The patch action (`{guard: {...}}`), as the spec's `action:` reads it.
    pub action: ActionYaml,
    pub at: At,
}

/// Which ranked candidate site an action targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum At {
    /// The throw site: the innermost application frame.
    Site,
    /// The first application frame above the throw site.
    Caller,
    /// The n-th application frame above the throw site (`up: 1` is the caller): an early
    /// return further up, where a request or a task as a whole can still give a sane answer.
    Up(usize),
}

impl At {
    /// Its position among the ranked candidate sites (0: the throw site).
    pub fn index(self) -> usize {
        match self {
            At::Site => 0,
            At::Caller => 1,
            At::Up(n) => n,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Policy {
    pub mode: Mode,
    pub repairs_per_minute: u32,
    pub active_patches: u32,
    /// Globs over dotted class names that are the application's own code; empty: every class
    /// outside the JDK. Fault localization skips other frames.
    pub application: Vec<String>,
    pub rules: Vec<Rule>,
    /// The text it was read from, and its name.
    pub text: String,
    pub source: String,
}

/// A fault as the policy sees it.
#[derive(Debug, Clone)]
pub struct Observation<'a> {
    /// The exception class and its superclasses, most specific first (dotted).
    pub exception_chain: &'a [String],
    pub message: &'a str,
    /// Whether a handler catches it; `None`: the capture cannot tell.
    pub caught: Option<bool>,
    /// The throwing frame's class (dotted), method and descriptor: overloads are distinct sites.
    pub class: &'a str,
    pub method: &'a str,
    pub descriptor: &'a str,
}

impl Policy {
    /// Refuses a policy that asks what the fault capture in use cannot see: whether a handler
    /// catches an exception is known from JVMTI exception events only, while a bytecode probe
    /// sees the exception leave a method before any caller's handler is chosen.
    pub fn check_capture(&self, exception_events: bool) -> Result<(), String> {
        match self.rules.iter().position(|r| r.caught.is_some()) {
            Some(i) if !exception_events => Err(format!(
                "{}: rules[{i}].when.caught: telling caught from uncaught exceptions needs faults=jvmti \
                 (bytecode capture sees an exception leave a method, not whether a caller catches it)",
                self.source
            )),
            _ => Ok(()),
        }
    }
}

/// How a fault's handling is said (`caught` or `uncaught`); `None` when the capture cannot tell.
pub fn handled_word(caught: Option<bool>) -> Option<&'static str> {
    caught.map(|c| if c { "caught" } else { "uncaught" })
}

/// What the engine decided, with its reason.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Repair the throw site `class.method descriptor` with one of the rule's `actions` (those not
    /// spent there yet, in the rule's order): the agent ranks them for the fault ([`crate::rank`]).
    Repair {
        rule: String,
        class: String,
        method: String,
        descriptor: String,
        actions: Vec<usize>,
        dry_run: bool,
        reason: String,
    },
    /// The rule fired but a safety rail held it back.
    Held { rule: String, reason: String },
}

pub fn parse(text: &str, source: &str) -> Result<Policy, String> {
    let root: Value = serde_yaml_ng::from_str(text).map_err(|e| {
        format!(
            "{source}:{}: {}",
            e.location().map_or(0, |l| l.line()),
            e.to_string().split(" at line ").next().unwrap_or("")
        )
    })?;
    // `file:line: field: why`, at the line where the field is written (for a missing field, where
    // its parent is), or `file: field: why` when that cannot be found.
    let line = |field: &str| {
        let path: Vec<&str> = field.split('.').filter(|s| !s.is_empty() && *s != "(top)").collect();
        crate::spec::line_of(text, &path)
    };
    let say = |line: Option<usize>, field: &str, why: &str| match line {
        Some(l) => format!("{source}:{l}: {field}: {why}"),
        None => format!("{source}: {field}: {why}"),
    };
    let err = |field: &str, why: &str| say(line(field), field, why);
    let missing = |field: &str| say(line(field.rsplit_once('.').map_or("", |(parent, _)| parent)), field, "missing");
    let map = root.as_mapping().ok_or_else(|| err("(top)", "expected a mapping"))?;
    let mode = match map.get("mode").and_then(Value::as_str) {
        None | Some("enforce") => Mode::Enforce,
        Some("dry-run") => Mode::DryRun,
        Some(other) => return Err(err("mode", &format!("{other:?}: expected enforce or dry-run"))),
    };
    let limits = map.get("limits");
    let limit = |k: &str, default: u32| -> Result<u32, String> {
        match limits.and_then(|l| l.get(k)) {
            None => Ok(default),
            Some(v) => v.as_u64().map(|n| n as u32).ok_or_else(|| err(&format!("limits.{k}"), "expected a number")),
        }
    };
    let repairs_per_minute = limit("repairs_per_minute", 10)?;
    let active_patches = limit("active_patches", 50)?;
    let mut rules = Vec::new();
    for (i, r) in map
        .get("rules")
        .and_then(Value::as_sequence)
        .ok_or_else(|| err("rules", "expected a list of rules"))?
        .iter()
        .enumerate()
    {
        let at = |f: &str| format!("rules[{i}].{f}");
        let name = r.get("name").and_then(Value::as_str).ok_or_else(|| missing(&at("name")))?.to_string();
        let when = r.get("when").ok_or_else(|| missing(&at("when")))?;
        let exception =
            when.get("exception").and_then(Value::as_str).ok_or_else(|| missing(&at("when.exception")))?.to_string();
        if !crate::spec::is_binary_name(&exception) {
            return Err(err(&at("when.exception"), &format!("{exception:?} is not a class name")));
        }
        let message = match when.get("message").and_then(Value::as_str) {
            None => None,
            Some(m) => Some(regex::Regex::new(m).map_err(|e| err(&at("when.message"), &e.to_string()))?),
        };
        let caught = match when.get("caught") {
            None => None,
            Some(v) => Some(v.as_bool().ok_or_else(|| err(&at("when.caught"), "expected true or false"))?),
        };
        let count = when
            .get("count")
            .map_or(Some(1), Value::as_u64)
            .ok_or_else(|| err(&at("when.count"), "expected a number"))? as u32;
        let window = crate::spec::parse_duration(when.get("within"), Duration::from_secs(60))
            .map_err(|e| err(&at("when.within"), &e))?;
        let then = r
            .get("then")
            .and_then(Value::as_sequence)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| err(&at("then"), "expected a list of actions"))?
            .iter()
            .enumerate()
            .map(|(j, a)| step(a).map_err(|e| err(&at(&format!("then[{j}]")), &e)))
            .collect::<Result<Vec<_>, _>>()?;
        let validate = r.get("validate");
        let validate_window =
            crate::spec::parse_duration(validate.and_then(|v| v.get("window")), Duration::from_secs(30))
                .map_err(|e| err(&at("validate.window"), &e))?;
        let max_fallback_rate = validate
            .and_then(|v| v.get("max_fallback_rate"))
            .map_or(Some(1.0), Value::as_f64)
            .ok_or_else(|| err(&at("validate.max_fallback_rate"), "expected a number"))?;
        let min_calls = validate
            .and_then(|v| v.get("min_calls"))
            .map_or(Some(DEFAULT_MIN_CALLS), Value::as_u64)
            .ok_or_else(|| err(&at("validate.min_calls"), "expected a whole number"))?;
        let default_max_window = (validate_window * 10).min(MAX_WINDOW_CAP).max(validate_window);
        let max_window = crate::spec::parse_duration(validate.and_then(|v| v.get("max_window")), default_max_window)
            .map_err(|e| err(&at("validate.max_window"), &e))?;
        if max_window < validate_window {
            return Err(err(
                &at("validate.max_window"),
                &format!("{max_window:?} is shorter than the window {validate_window:?}"),
            ));
        }
        let health = match validate.and_then(|v| v.get("health")) {
            None => None,
            Some(h) => Some(health(h).map_err(|(field, why)| {
                // A missing field is reported where `health` is written.
                let at = line(&format!("rules[{i}].{field}")).or_else(|| line(&at("validate.health")));
                say(at, &format!("rule {name}: {field}"), &why)
            })?),
        };
        rules.push(Rule {
            name,
            exception,
            within_code: when.get("in").and_then(Value::as_str).map(str::to_string),
            message,
            caught,
            count: count.max(1),
            window,
            then,
            validate_window,
            min_calls,
            max_window,
            max_fallback_rate,
            health,
            allow_jdk: r.get("allow_jdk").and_then(Value::as_bool).unwrap_or(false),
            durable: r.get("durable").and_then(Value::as_bool).unwrap_or(false),
        });
    }
    let application = match map.get("application") {
        None => Vec::new(),
        Some(Value::Sequence(s)) => s
            .iter()
            .map(|g| g.as_str().map(str::to_string).ok_or_else(|| err("application", "expected a list of globs")))
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(err("application", "expected a list of globs")),
    };
    Ok(Policy {
        mode,
        repairs_per_minute,
        active_patches,
        application,
        rules,
        text: text.to_string(),
        source: source.to_string(),
    })
}

/// Reads one action of a rule, checking it as the spec parser would (on a placeholder target).
fn step(v: &Value) -> Result<Step, String> {
    let mut m = v.as_mapping().cloned().ok_or("expected an action such as {guard: {...}}")?;
    let at = match m.remove("at") {
        None => At::Site,
        Some(Value::String(s)) if s == "site" => At::Site,
        Some(Value::String(s)) if s == "caller" => At::Caller,
        Some(Value::Mapping(up)) if up.len() == 1 && up.contains_key("up") => {
            match up.get("up").and_then(Value::as_u64) {
                Some(n @ 1..=64) => At::Up(n as usize),
                _ => return Err("at.up: expected how many application frames above the throw site (1 to 64)".into()),
            }
        }
        Some(other) => return Err(format!("at: {other:?}: expected site, caller or {{up: N}}")),
    };
    let action = Value::Mapping(m);
    let placeholder = resolve_rethrow(&resolve_call(&action, Some(("c", "()V", 1))), "java.lang.RuntimeException");
    let probe = spec_yaml("policy-check", "a.B", "m", &placeholder, false);
    crate::spec::PatchSpec::from_yaml(&probe, "action").map_err(|e| format!("{}: {}", e.field, e.reason))?;
    Ok(Step { action, at })
}

/// The method a `NullPointerException`'s message says was invoked on null (JDK 14+ helpful
/// messages: `Cannot invoke "java.util.Map.get(Object)" because ...` gives `get`): the call that
/// threw, which the exception's trace does not show (it is thrown in the caller's frame).
pub fn npe_callee(message: &str) -> Option<String> {
    let invoked = message.strip_prefix("Cannot invoke \"")?;
    let signature = &invoked[..invoked.find('(')?];
    let name = signature.rsplit('.').next()?;
    (!name.is_empty()).then(|| name.to_string())
}

/// The action with `call: auto` replaced by the call that threw (`name`, `descriptor`, its
/// occurrence among calls of that name in the method); unchanged when it has no `call: auto`.
pub fn resolve_call(action: &ActionYaml, call: Option<(&str, &str, u32)>) -> ActionYaml {
    let mut a = action.clone();
    if let Some(guard) = a.get_mut("guard").and_then(Value::as_mapping_mut) {
        if guard.get("call").and_then(Value::as_str) == Some("auto") {
            match call {
                Some((name, desc, occurrence)) => {
                    let mut c = serde_yaml_ng::Mapping::new();
                    c.insert("method".into(), format!("{name}{desc}").into());
                    c.insert("occurrence".into(), occurrence.into());
                    guard.insert("call".into(), Value::Mapping(c));
                }
                None => {
                    guard.remove("call");
                }
            }
        }
    }
    a
}

/// `action` with `fault` in a guard's (or rethrow's) `catch` list replaced by the class of the
/// exception that fired the rule: a broad rule (any `RuntimeException`) then guards against that
/// fault alone, and other exceptions the method throws still reach the application's own handlers.
pub fn resolve_catch(action: &ActionYaml, exception: &str) -> ActionYaml {
    let mut a = action.clone();
    for kind in ["guard", "rethrow"] {
        if let Some(catch) = a.get_mut(kind).and_then(|g| g.get_mut("catch")).and_then(Value::as_sequence_mut) {
            for item in catch.iter_mut().filter(|i| i.as_str() == Some(FAULT)) {
                *item = exception.into();
            }
        }
    }
    a
}

/// Whether an action is a rethrow whose type the engine picks (`rethrow: { as: auto }`).
pub fn wants_rethrow_type(action: &ActionYaml) -> bool {
    action.get("rethrow").and_then(|r| r.get("as")).and_then(Value::as_str) == Some("auto")
}

/// The action with a rethrow's `as: auto` replaced by `class`; unchanged without one.
pub fn resolve_rethrow(action: &ActionYaml, class: &str) -> ActionYaml {
    let mut a = action.clone();
    if wants_rethrow_type(&a) {
        if let Some(r) = a.get_mut("rethrow").and_then(Value::as_mapping_mut) {
            r.insert("as".into(), class.into());
        }
    }
    a
}

/// Why `rethrow: { as: auto }` is refused when no frame qualifies.
pub const NO_HANDLER: &str = "no application frame above handles an exception here";

/// The catch types (dotted, in the order the JVM tries them) of a frame's handlers around its
/// call that a rethrow may aim at: not one the fault already is (`fault_chain`: its class and
/// superclasses), since the fault went past those handlers uncaught.
pub fn rethrow_types<'a>(catch: &'a [String], fault_chain: &'a [String]) -> impl Iterator<Item = &'a String> {
    catch.iter().filter(|c| !fault_chain.contains(c))
}

/// What an event says of the type `rethrow: { as: auto }` chose:
/// `rethrow as java.io.IOException: handled by com.x.Y.load (Y.java:42)`.
pub fn handled_by(as_class: &str, frame: &FrameRef, source_file: Option<&str>, line: Option<i32>) -> String {
    let at = match (source_file, line) {
        (Some(f), Some(l)) => format!(" ({f}:{l})"),
        (Some(f), None) => format!(" ({f})"),
        (None, Some(l)) => format!(" (line {l})"),
        (None, None) => String::new(),
    };
    format!("rethrow as {as_class}: handled by {}.{}{at}", frame.class, frame.method)
}

/// In a rule's guard, `catch: [fault]` stands for the class of the fault that fired it.
pub const FAULT: &str = "fault";

/// Whether an action guards the call that threw (`guard: { call: auto }`).
pub fn wants_call(action: &ActionYaml) -> bool {
    action.get("guard").and_then(|g| g.get("call")).and_then(Value::as_str) == Some("auto")
}

/// The patch spec a rule applies: `action` aimed at `class.method`.
pub fn spec_yaml(id: &str, class: &str, method: &str, action: &ActionYaml, durable: bool) -> String {
    let mut root = serde_yaml_ng::Mapping::new();
    root.insert("id".into(), id.into());
    let mut target = serde_yaml_ng::Mapping::new();
    target.insert("class".into(), class.into());
    target.insert("method".into(), method.into());
    root.insert("target".into(), Value::Mapping(target));
    root.insert("action".into(), action.clone());
    root.insert("durable".into(), durable.into());
    serde_yaml_ng::to_string(&Value::Mapping(root)).unwrap_or_default()
}

/// A frame of a fault's stack, as localization reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameRef {
    /// Dotted class name.
    pub class: String,
    pub method: String,
    pub descriptor: String,
    pub bci: i64,
}

/// A candidate repair site and why it is one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub frame: FrameRef,
    /// Position in the stack, innermost 0.
    pub depth: usize,
    pub reason: String,
}

/// Ranks where a fault could be repaired: the throw site (the innermost application frame),
/// then its callers in application code, innermost first. JDK frames are skipped unless
/// `allow_jdk`, and so are frames outside `application` when it is given; the reasons say so.
/// `probed`: the stack was taken by a bytecode capture probe, as the exception left its top
/// frame (what threw below that frame is gone from it), not by an exception event at the throw.
pub fn candidates(stack: &[FrameRef], application: &[String], allow_jdk: bool, probed: bool) -> Vec<Candidate> {
    let mut out: Vec<Candidate> = Vec::new();
    let mut skipped: Vec<String> = Vec::new();
    for (depth, f) in stack.iter().enumerate() {
        let jdk = is_jdk_class(&f.class);
        let outside = !application.is_empty() && !application.iter().any(|g| crate::glob::matches(g, &f.class));
        if (jdk && !allow_jdk) || outside || f.bci < 0 {
            skipped.push(format!(
                "{}.{} ({})",
                f.class,
                f.method,
                if f.bci < 0 {
                    "native"
                } else if jdk && !allow_jdk {
                    "JDK"
                } else {
                    "library"
                }
            ));
            continue;
        }
        let below = if skipped.is_empty() { String::new() } else { format!("; skipped {}", skipped.join(", ")) };
        let reason = match out.last() {
            None if probed && skipped.is_empty() => "throw site: the frame the exception left".to_string(),
            None if skipped.is_empty() => "throw site: the frame that threw".to_string(),
            None => format!("throw site: the innermost application frame{below}"),
            Some(c) => format!("caller of {}.{} in application code{below}", c.frame.class, c.frame.method),
        };
        skipped.clear();
        out.push(Candidate { frame: f.clone(), depth, reason });
    }
    out
}

const JDK: [&str; 5] = ["java.", "javax.", "jdk.", "sun.", "com.sun."];

/// Whether `class` (dotted) is the JDK's: patching it changes every caller in the JVM, the
/// agent's own formatting of values included.
pub fn is_jdk_class(class: &str) -> bool {
    JDK.iter().any(|p| class.starts_with(p))
}

/// Calls of a repaired method a verdict rests on, unless the rule says otherwise.
pub const DEFAULT_MIN_CALLS: u64 = 5;
/// The default `max_window` is ten windows, at most this (or the window, if longer).
const MAX_WINDOW_CAP: Duration = Duration::from_secs(600);

/// Decides, fault by fault, when a rule fires; keeps the sliding windows and the rails.
pub struct Engine {
    pub policy: Policy,
    /// Per (rule, throw site): when it was seen within the rule's window.
    seen: HashMap<(usize, String), Vec<Instant>>,
    /// Per (rule, site): the actions spent there (refused, or applied and did not hold): not tried
    /// there again.
    spent: HashMap<(usize, String), std::collections::BTreeSet<usize>>,
    /// Per (rule, site): the action applied there last, spent by [`Engine::advance`].
    tried: HashMap<(usize, String), usize>,
    repairs: Vec<Instant>,
    /// Per (rule, site): a repair is under validation; the rule waits for its verdict.
    busy: std::collections::HashSet<(usize, String)>,
    pub active: u32,
}

impl Engine {
    pub fn new(policy: Policy) -> Engine {
        Engine {
            policy,
            seen: HashMap::new(),
            spent: HashMap::new(),
            tried: HashMap::new(),
            repairs: Vec::new(),
            busy: Default::default(),
            active: 0,
        }
    }

    /// The rule that counts `f` (the first that matches it), and its index.
    pub fn rule_for(&self, f: &Observation<'_>) -> Option<(usize, &Rule)> {
        rule_for(&self.policy.rules, f)
    }

    pub fn observe(&mut self, f: &Observation<'_>, now: Instant) -> Option<Decision> {
        let site = site_key(f.class, f.method, f.descriptor);
        let (i, rule) = rule_for(&self.policy.rules, f)?;
        if self.busy.contains(&(i, site.clone())) {
            return None;
        }
        let times = self.seen.entry((i, site.clone())).or_default();
        times.retain(|t| now.duration_since(*t) < rule.window);
        times.push(now);
        if times.len() < rule.count as usize {
            return None;
        }
        times.clear();
        let name = rule.name.clone();
        if !rule.allow_jdk && is_jdk_class(f.class) {
            return Some(Decision::Held {
                rule: name,
                reason: format!("{} is a JDK class; the rule does not allow_jdk", f.class),
            });
        }
        let spent = self.spent.get(&(i, site.clone()));
        let actions: Vec<usize> = (0..rule.then.len()).filter(|a| spent.is_none_or(|s| !s.contains(a))).collect();
        if actions.is_empty() {
            return Some(Decision::Held { rule: name, reason: format!("every action of the rule failed at {site}") });
        }
        self.repairs.retain(|t| now.duration_since(*t) < Duration::from_secs(60));
        if self.repairs.len() >= self.policy.repairs_per_minute as usize {
            return Some(Decision::Held {
                rule: name,
                reason: format!("{} repairs in the last minute: the cap", self.repairs.len()),
            });
        }
        if self.active >= self.policy.active_patches {
            return Some(Decision::Held { rule: name, reason: format!("{} active patches: the cap", self.active) });
        }
        let dry_run = self.policy.mode == Mode::DryRun;
        if !dry_run {
            self.repairs.push(now);
        }
        Some(Decision::Repair {
            rule: name,
            class: f.class.to_string(),
            method: f.method.to_string(),
            descriptor: f.descriptor.to_string(),
            actions,
            dry_run,
            reason: format!("{} x{} within {:?} at {site}", f.exception_chain[0], rule.count, rule.window),
        })
    }

    /// The last repair decided (at `at`) was not carried out (the fault turned out to be one the
    /// application handles itself): it does not count against `repairs_per_minute`.
    pub fn not_carried_out(&mut self, at: Instant) {
        if let Some(i) = self.repairs.iter().rposition(|t| *t == at) {
            self.repairs.remove(i);
        }
    }

    /// While a rule's repair at a site is validated, the rule does not fire there again.
    pub fn set_busy(&mut self, rule: &str, site: &str, busy: bool) {
        if let Some(i) = self.policy.rules.iter().position(|r| r.name == rule) {
            let key = (i, site.to_string());
            self.seen.remove(&key);
            if busy {
                self.busy.insert(key);
            } else {
                self.busy.remove(&key);
            }
        }
    }

    /// The rule's `action` is applied at `site`; [`Engine::advance`] spends it if it does not hold.
    pub fn tried(&mut self, rule: &str, site: &str, action: usize) {
        if let Some(i) = self.policy.rules.iter().position(|r| r.name == rule) {
            self.tried.insert((i, site.to_string()), action);
        }
    }

    /// The rule's `action` is not tried at `site` again: it was refused there.
    pub fn spend(&mut self, rule: &str, site: &str, action: usize) {
        if let Some(i) = self.policy.rules.iter().position(|r| r.name == rule) {
            self.spent.entry((i, site.to_string())).or_default().insert(action);
        }
    }

    /// The action applied last at that site did not hold (rolled back) or only observed (a
    /// probe): it is not tried there again, and the rule tries another when the fault returns.
    pub fn advance(&mut self, rule: &str, site: &str) {
        if let Some(i) = self.policy.rules.iter().position(|r| r.name == rule) {
            if let Some(action) = self.tried.remove(&(i, site.to_string())) {
                self.spent.entry((i, site.to_string())).or_default().insert(action);
            }
        }
    }
}

fn rule_for<'r>(rules: &'r [Rule], f: &Observation<'_>) -> Option<(usize, &'r Rule)> {
    let code = format!("{}.{}", f.class, f.method);
    rules.iter().enumerate().find(|(_, r)| {
        f.exception_chain.contains(&r.exception)
            && r.within_code.as_deref().is_none_or(|g| crate::glob::matches(g, &code))
            && r.message.as_ref().is_none_or(|m| m.is_match(f.message))
            && r.caught.is_none_or(|c| f.caught == Some(c))
    })
}

/// How the engine names a site, and keys its windows and escalation by: the class, the method
/// and its descriptor (`com.shop.Out.write(Ljava/lang/String;)V`), so that overloads are apart.
pub fn site_key(class: &str, method: &str, descriptor: &str) -> String {
    format!("{class}.{method}{descriptor}")
}

/// The id of the patch a rule applies at a site: `{rule}.{SimpleClass}.{method}-{hash}.{action}`,
/// every part in the id alphabet (`<init>` reads `init`, `Outer$1` reads `Outer_1`, `lambda$run$0`
/// reads `lambda_run_0`) and `hash` a few hex digits of the exact site (class, method and
/// descriptor), so that overloads, and names that read alike once cleaned, get distinct ids.
/// `taken` says whether an id is already used by a patch at another site: then all 8 digits.
pub fn patch_id(
    rule: &str,
    class: &str,
    method: &str,
    descriptor: &str,
    action: usize,
    taken: impl Fn(&str) -> bool,
) -> String {
    let simple = class.rsplit('.').next().unwrap_or(class);
    let hash = fnv1a(site_key(class, method, descriptor).as_bytes());
    let with = |digits: String| format!("{}.{}.{}-{digits}.{action}", id_part(rule), id_part(simple), id_part(method));
    let short = with(format!("{:04x}", hash >> 16));
    if taken(&short) {
        with(format!("{hash:08x}"))
    } else {
        short
    }
}

/// A name in the id alphabet (letters, digits, `_`, `-`): the angle brackets of `<init>` and
/// `<clinit>` dropped, every other character outside it (`$`, `.`, non-ASCII) as `_`. Never
/// empty, and never starts with the observations' prefix.
fn id_part(name: &str) -> String {
    let clean: String = name
        .chars()
        .filter(|c| !matches!(c, '<' | '>'))
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' })
        .collect();
    match clean {
        c if c.is_empty() => "_".to_string(),
        c if c.starts_with(crate::observe::PATCH_PREFIX) => format!("_{c}"),
        c => c,
    }
}

/// 32-bit FNV-1a: stable across builds and platforms, unlike the standard library's hasher.
fn fnv1a(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5u32, |h, b| (h ^ u32::from(*b)).wrapping_mul(0x0100_0193))
}

/// Whether a repair holds after its validation window: the fallback rate stays at or under the
/// rule's limit, and no new fault of another kind appeared in the method.
pub fn holds(fallbacks: u64, calls: u64, other_faults: u64, max_fallback_rate: f64) -> Result<(), String> {
    if other_faults > 0 {
        return Err(format!("{other_faults} new faults of other kinds in the repaired method"));
    }
    let rate = if calls == 0 { 0.0 } else { fallbacks as f64 / calls as f64 };
    if rate > max_fallback_rate {
        return Err(format!("fallback rate {rate:.2} above the rule's limit {max_fallback_rate:.2}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catch_fault_becomes_the_class_of_the_fault_that_fired_the_rule() {
        let action: ActionYaml =
            serde_yaml_ng::from_str("guard: { catch: [fault, java.lang.IllegalStateException], fallback: default }")
                .unwrap();
        let resolved = resolve_catch(&action, "java.util.NoSuchElementException");
        let catch: Vec<&str> =
            resolved["guard"]["catch"].as_sequence().unwrap().iter().filter_map(Value::as_str).collect();
        assert_eq!(catch, ["java.util.NoSuchElementException", "java.lang.IllegalStateException"]);
        let breaker: ActionYaml = serde_yaml_ng::from_str("breaker: { failures: 3 }").unwrap();
        assert_eq!(resolve_catch(&breaker, "x.Y"), breaker, "only a guard's catch list is resolved");
    }

    #[test]
    fn rethrow_auto_aims_at_a_handler_the_fault_went_past_and_says_which() {
        let action: ActionYaml = serde_yaml_ng::from_str("rethrow: { catch: [fault], as: auto }").unwrap();
        assert!(wants_rethrow_type(&action));
        let resolved =
            resolve_rethrow(&resolve_catch(&action, "java.lang.NumberFormatException"), "java.io.IOException");
        assert!(!wants_rethrow_type(&resolved));
        let spec = crate::spec::PatchSpec::from_yaml(&spec_yaml("r-1", "a.B", "parse", &resolved, false), "r").unwrap();
        assert_eq!(spec.action.summary(), "rethrow NumberFormatException as java.io.IOException");
        let chain: Vec<String> =
            ["java.lang.NumberFormatException", "java.lang.IllegalArgumentException", "java.lang.RuntimeException"]
                .map(String::from)
                .to_vec();
        let catch: Vec<String> =
            ["java.lang.IllegalArgumentException", "java.io.IOException", "java.lang.IllegalStateException"]
                .map(String::from)
                .to_vec();
        // The fault is an IllegalArgumentException: that handler let it pass, so it is not one.
        assert_eq!(rethrow_types(&catch, &chain).collect::<Vec<_>>(), [&catch[1], &catch[2]]);
        let frame = FrameRef {
            class: "com.x.Y".into(),
            method: "load".into(),
            descriptor: "()Ljava/lang/String;".into(),
            bci: 7,
        };
        assert_eq!(
            handled_by("java.io.IOException", &frame, Some("Y.java"), Some(42)),
            "rethrow as java.io.IOException: handled by com.x.Y.load (Y.java:42)"
        );
        assert_eq!(handled_by("a.E", &frame, None, None), "rethrow as a.E: handled by com.x.Y.load");
        // A rule may list it; a bad one is refused where it is written.
        let rule = |then: &str| {
            format!("rules:\n  - name: r\n    when: {{ exception: java.lang.RuntimeException }}\n    then:\n      - {then}\n")
        };
        assert!(parse(&rule("rethrow: { catch: [fault], as: auto }"), "p.yaml").is_ok());
        assert!(parse(&rule("rethrow: { catch: [fault], as: java.io.IOException }"), "p.yaml").is_ok());
        let bad = parse(&rule("rethrow: { as: auto }"), "p.yaml").unwrap_err();
        assert!(bad.contains("rules[0].then[0]") && bad.contains("action.rethrow.catch: missing"), "{bad}");
    }

    const POLICY: &str = "mode: enforce\nlimits: { repairs_per_minute: 2 }\nrules:\n  - name: price-npe\n    when: { exception: java.lang.RuntimeException, in: \"repair.demo.*\", message: \"Long\", count: 3, within: 10s }\n    then:\n      - guard: { catch: [java.lang.NullPointerException], fallback: { value: 0 } }\n      - { guard: { fallback: default }, at: caller }\n    validate: { window: 5s, max_fallback_rate: 0.5 }\n";

    fn npe(class: &str) -> (Vec<String>, String) {
        (vec!["java.lang.NullPointerException".into(), "java.lang.RuntimeException".into()], class.to_string())
    }

    #[test]
    fn a_rule_fires_after_n_faults_within_its_window_and_escalates() {
        let mut e = Engine::new(parse(POLICY, "p.yaml").unwrap());
        let (chain, class) = npe("repair.demo.PriceService");
        let obs = Observation {
            exception_chain: &chain,
            message: "Cannot invoke Long.longValue()",
            caught: None,
            class: &class,
            method: "price",
            descriptor: "(Ljava/lang/String;)J",
        };
        let t0 = Instant::now();
        assert_eq!(e.observe(&obs, t0), None);
        assert_eq!(e.observe(&obs, t0 + Duration::from_secs(11)), None, "the first fell out of the window");
        assert_eq!(e.observe(&obs, t0 + Duration::from_secs(12)), None);
        match e.observe(&obs, t0 + Duration::from_secs(13)) {
            Some(Decision::Repair { actions, dry_run: false, .. }) => assert_eq!(actions, [0, 1]),
            other => panic!("{other:?}"),
        }
        let site = site_key(&class, "price", "(Ljava/lang/String;)J");
        e.tried("price-npe", &site, 0);
        e.set_busy("price-npe", &site, true);
        for s in 14..20 {
            assert_eq!(e.observe(&obs, t0 + Duration::from_millis(13_500 + s)), None, "under validation");
        }
        e.set_busy("price-npe", &site, false);
        e.advance("price-npe", &site);
        for s in 14..16 {
            assert_eq!(e.observe(&obs, t0 + Duration::from_secs(s)), None);
        }
        match e.observe(&obs, t0 + Duration::from_secs(16)) {
            Some(Decision::Repair { actions, .. }) => assert_eq!(actions, [1], "the rolled-back one is spent"),
            other => panic!("the next action: {other:?}"),
        }
        e.spend("price-npe", &site, 1);
        for s in 17..19 {
            e.observe(&obs, t0 + Duration::from_secs(s));
        }
        assert!(matches!(e.observe(&obs, t0 + Duration::from_secs(19)), Some(Decision::Held { .. })));
    }

    #[test]
    fn overloads_are_two_sites_each_with_its_own_window_and_escalation() {
        let text = POLICY.replace("count: 3", "count: 2");
        let mut e = Engine::new(parse(&text, "p.yaml").unwrap());
        let (chain, class) = npe("repair.demo.Out");
        let write = |descriptor| Observation {
            exception_chain: &chain,
            message: "Long",
            caught: None,
            class: &class,
            method: "write",
            descriptor,
        };
        let (bytes, string) = (write("([B)V"), write("(Ljava/lang/String;)V"));
        let t = Instant::now();
        assert_eq!(e.observe(&bytes, t), None);
        assert_eq!(e.observe(&string, t), None, "one fault of each overload: neither counts twice");
        match e.observe(&string, t) {
            Some(Decision::Repair { method, descriptor, actions, .. }) => {
                assert_eq!(
                    (method.as_str(), descriptor.as_str(), actions),
                    ("write", "(Ljava/lang/String;)V", vec![0, 1])
                )
            }
            other => panic!("{other:?}"),
        }
        let string_site = site_key(&class, "write", "(Ljava/lang/String;)V");
        assert_eq!(string_site, "repair.demo.Out.write(Ljava/lang/String;)V");
        e.tried("price-npe", &string_site, 0);
        e.set_busy("price-npe", &string_site, true);
        e.advance("price-npe", &string_site);
        assert_eq!(e.observe(&string, t), None, "under validation");
        match e.observe(&bytes, t) {
            Some(Decision::Repair { descriptor, actions, .. }) => {
                assert_eq!((descriptor.as_str(), actions), ("([B)V", vec![0, 1]))
            }
            other => panic!("the other overload is neither busy nor escalated: {other:?}"),
        }
    }

    /// Ranking may try a later action first: what is spent is that action, whichever it was, and
    /// an action applied and rolled back is never offered at that site again.
    #[test]
    fn the_actions_spent_at_a_site_are_the_ones_refused_or_rolled_back_in_any_order() {
        let text = POLICY.replace("count: 3", "count: 1").replace("repairs_per_minute: 2", "repairs_per_minute: 9");
        let mut e = Engine::new(parse(&text, "p.yaml").unwrap());
        let (chain, class) = npe("repair.demo.X");
        let obs = Observation {
            exception_chain: &chain,
            message: "Long",
            caught: None,
            class: &class,
            method: "m",
            descriptor: "()V",
        };
        let site = site_key(&class, "m", "()V");
        let t = Instant::now();
        let actions = |d: Option<Decision>| match d {
            Some(Decision::Repair { actions, .. }) => actions,
            other => panic!("{other:?}"),
        };
        assert_eq!(actions(e.observe(&obs, t)), [0, 1]);
        e.tried("price-npe", &site, 1);
        e.advance("price-npe", &site);
        assert_eq!(actions(e.observe(&obs, t)), [0], "action 1 was rolled back: not offered again");
        e.advance("price-npe", &site);
        assert_eq!(actions(e.observe(&obs, t)), [0], "advance spends only what was applied");
        e.spend("price-npe", &site, 0);
        match e.observe(&obs, t) {
            Some(Decision::Held { reason, .. }) => {
                assert!(reason.contains("every action of the rule failed"), "{reason}")
            }
            other => panic!("{other:?}"),
        }
        let other = site_key(&class, "n", "()V");
        assert_eq!(actions(e.observe(&Observation { method: "n", ..obs.clone() }, t)), [0, 1], "{other} is apart");
    }

    #[test]
    fn patch_ids_are_valid_readable_and_distinct_for_every_kind_of_method() {
        let free = |_: &str| false;
        let id = |class, method, descriptor| patch_id("any-npe", class, method, descriptor, 0, free);
        let sites = [
            ("a.Invoice", "<init>", "(Ljava/lang/String;)V"),
            ("a.Invoice", "<init>", "(I)V"),
            ("a.Invoice", "<clinit>", "()V"),
            ("a.Invoice$Line", "total", "()J"),
            ("a.Main$1", "compare", "(Ljava/lang/Object;Ljava/lang/Object;)I"),
            ("a.Main", "lambda$run$0", "(Ljava/lang/String;)V"),
            ("a.Main", "lambda_run_0", "(Ljava/lang/String;)V"),
            ("a.Out", "write", "([B)V"),
            ("a.Out", "write", "(Ljava/lang/String;)V"),
            ("b.Out", "write", "([B)V"),
        ];
        let ids: Vec<String> = sites.iter().map(|&(c, m, d)| id(c, m, d)).collect();
        for i in &ids {
            crate::spec::PatchSpec::check_id(i).unwrap_or_else(|e| panic!("{e}"));
        }
        let distinct: std::collections::HashSet<&String> = ids.iter().collect();
        assert_eq!(distinct.len(), ids.len(), "{ids:?}");
        let hash = |i: &str| i.rsplit('.').nth(1).unwrap().rsplit('-').next().unwrap().to_string();
        assert!(ids[0].starts_with("any-npe.Invoice.init-") && ids[0].ends_with(".0"), "{}", ids[0]);
        assert_eq!(hash(&ids[0]).len(), 4, "{}", ids[0]);
        assert!(ids[2].starts_with("any-npe.Invoice.clinit-"), "{}", ids[2]);
        assert!(ids[3].starts_with("any-npe.Invoice_Line.total-"), "{}", ids[3]);
        assert!(ids[4].starts_with("any-npe.Main_1.compare-"), "{}", ids[4]);
        assert!(ids[5].starts_with("any-npe.Main.lambda_run_0-"), "{}", ids[5]);
        assert_eq!(ids[0], id("a.Invoice", "<init>", "(Ljava/lang/String;)V"), "stable");
        // Rule names outside the alphabet, or shaped like an observation's id, still give valid ids.
        let odd = patch_id("observe-ünïcode rule", "a.B", "m", "()V", 1, free);
        crate::spec::PatchSpec::check_id(&odd).unwrap_or_else(|e| panic!("{e}"));
        // An id in use at another site: the whole hash.
        let long = patch_id("any-npe", "a.Out", "write", "([B)V", 0, |i| i == ids[7]);
        assert_eq!(hash(&long).len(), 8, "{long}");
        assert!(long.starts_with(&ids[7][..ids[7].len() - 2]), "{long} extends {}", ids[7]);
    }

    #[test]
    fn rails_hold_back_jdk_classes_and_the_rate() {
        let text = POLICY.replace("in: \"repair.demo.*\", ", "").replace("count: 3", "count: 1");
        let mut e = Engine::new(parse(&text, "p.yaml").unwrap());
        let (chain, _) = npe("");
        let at = |class: &'static str| Observation {
            exception_chain: &chain,
            message: "Long",
            caught: None,
            class,
            method: "m",
            descriptor: "()V",
        };
        let t = Instant::now();
        assert!(
            matches!(e.observe(&at("java.util.HashMap"), t), Some(Decision::Held { reason, .. }) if reason.contains("JDK"))
        );
        assert!(matches!(e.observe(&at("a.A"), t), Some(Decision::Repair { .. })));
        assert!(matches!(e.observe(&at("a.B"), t), Some(Decision::Repair { .. })));
        assert!(matches!(e.observe(&at("a.C"), t), Some(Decision::Held { reason, .. }) if reason.contains("cap")));
        assert_eq!(e.observe(&Observation { message: "other", ..at("a.D") }, t), None, "message regex");
    }

    #[test]
    fn caught_or_uncaught_selects_faults_and_needs_exception_events() {
        let text = POLICY.replace("count: 3", "count: 1, caught: false");
        let policy = parse(&text, "p.yaml").unwrap();
        assert_eq!(policy.rules[0].caught, Some(false));
        let refused = policy.check_capture(false).unwrap_err();
        assert!(refused.contains("p.yaml: rules[0].when.caught") && refused.contains("faults=jvmti"), "{refused}");
        assert!(policy.check_capture(true).is_ok());
        assert!(parse(POLICY, "p.yaml").unwrap().check_capture(false).is_ok(), "no rule asks");
        let mut e = Engine::new(policy);
        let (chain, class) = npe("repair.demo.X");
        let at = |caught| Observation {
            exception_chain: &chain,
            message: "Long",
            caught,
            class: &class,
            method: "m",
            descriptor: "()V",
        };
        let t = Instant::now();
        assert_eq!(e.observe(&at(Some(true)), t), None, "a caught fault is not the rule's");
        assert_eq!(e.observe(&at(None), t), None, "a capture that cannot tell does not match");
        assert!(matches!(e.observe(&at(Some(false)), t), Some(Decision::Repair { .. })));
        let bad = parse(&POLICY.replace("count: 3", "count: 3, caught: sometimes"), "p.yaml").unwrap_err();
        assert!(bad.contains("rules[0].when.caught") && bad.contains("true or false"), "{bad}");
    }

    #[test]
    fn dry_run_decides_without_counting_repairs() {
        let text = POLICY.replace("mode: enforce", "mode: dry-run").replace("count: 3", "count: 1");
        let mut e = Engine::new(parse(&text, "p.yaml").unwrap());
        let (chain, class) = npe("repair.demo.X");
        let obs = Observation {
            exception_chain: &chain,
            message: "Long",
            caught: None,
            class: &class,
            method: "m",
            descriptor: "()V",
        };
        for _ in 0..5 {
            assert!(matches!(e.observe(&obs, Instant::now()), Some(Decision::Repair { dry_run: true, .. })));
        }
    }

    #[test]
    fn validation_asks_for_evidence_a_handful_of_calls_within_ten_windows_by_default() {
        let rule = &parse(POLICY, "p.yaml").unwrap().rules[0];
        assert_eq!((rule.min_calls, rule.max_window), (DEFAULT_MIN_CALLS, Duration::from_secs(50)));
        let long = parse(&POLICY.replace("window: 5s", "window: 2m"), "p.yaml").unwrap();
        assert_eq!(long.rules[0].max_window, Duration::from_secs(600), "capped at ten minutes");
        let longer = parse(&POLICY.replace("window: 5s", "window: 20m"), "p.yaml").unwrap();
        assert_eq!(longer.rules[0].max_window, Duration::from_secs(1200), "never shorter than the window");
        let given = parse(&POLICY.replace("window: 5s", "window: 5s, min_calls: 0, max_window: 7s"), "p.yaml").unwrap();
        assert_eq!((given.rules[0].min_calls, given.rules[0].max_window), (0, Duration::from_secs(7)));
        for (field, value, why) in [
            ("min_calls", "-1", "expected a whole number"),
            ("min_calls", "lots", "expected a whole number"),
            ("max_window", "4s", "shorter than the window 5s"),
            ("max_window", "10h", "unit"),
        ] {
            let text = POLICY.replace("window: 5s", &format!("window: 5s, {field}: {value}"));
            let bad = parse(&text, "p.yaml").unwrap_err();
            assert!(bad.contains(&format!("rules[0].validate.{field}")) && bad.contains(why), "{bad}");
        }
    }

    #[test]
    fn bad_policies_are_named() {
        assert!(parse("mode: sometimes\nrules: []", "p.yaml").unwrap_err().contains("mode"));
        assert!(parse(&POLICY.replace("java.lang.RuntimeException", "not a class"), "p.yaml")
            .unwrap_err()
            .contains("rules[0].when.exception"));
        assert!(parse(&POLICY.replace("within: 10s", "within: 10h"), "p.yaml").unwrap_err().contains("unit"));
        assert!(parse(&POLICY.replace("\"Long\"", "\"(\""), "p.yaml").unwrap_err().contains("rules[0].when.message"));
        for (value, why) in [(".inf", "not a finite"), ("1e300", "limit of 1 day"), ("-1", "negative")] {
            let within = parse(&POLICY.replace("within: 10s", &format!("within: {value}")), "p.yaml").unwrap_err();
            assert!(
                within.contains("rules[0].when.within") && within.contains(value) && within.contains(why),
                "{within}"
            );
            let window = parse(&POLICY.replace("window: 5s", &format!("window: {value}")), "p.yaml").unwrap_err();
            assert!(window.contains("rules[0].validate.window") && window.contains(why), "{window}");
        }
        let bad_action = parse(&POLICY.replace("fallback: default", "fallback: sometimes"), "p.yaml").unwrap_err();
        assert!(bad_action.contains("rules[0].then[1]") && bad_action.contains("fallback"), "{bad_action}");
        let bad_at = parse(&POLICY.replace("at: caller", "at: nowhere"), "p.yaml").unwrap_err();
        assert!(bad_at.contains("rules[0].then[1]") && bad_at.contains("site, caller or {up: N}"), "{bad_at}");
        let up = parse(&POLICY.replace("at: caller", "at: { up: 3 }"), "p.yaml").unwrap();
        assert_eq!((up.rules[0].then[1].at, up.rules[0].then[1].at.index()), (At::Up(3), 3));
        let bad_up = parse(&POLICY.replace("at: caller", "at: { up: 0 }"), "p.yaml").unwrap_err();
        assert!(bad_up.contains("rules[0].then[1]") && bad_up.contains("at.up: expected"), "{bad_up}");
        assert_eq!(holds(1, 10, 0, 0.5), Ok(()));
        assert!(holds(9, 10, 0, 0.5).unwrap_err().contains("fallback rate"));
        assert!(holds(0, 10, 1, 0.5).is_err());
    }

    /// Whatever YAML crate reads policies, a bad one's error says the file, the line and the field.
    #[test]
    fn a_bad_policys_error_names_the_file_line_and_field() {
        let text = "mode: enforce\nrules:\n  - name: first\n    when: { exception: java.lang.IllegalStateException }\n    then:\n      - guard: { fallback: default }\n  - name: second\n    when:\n      exception: java.lang.NullPointerException\n      count: many\n    then:\n      - guard: { fallback: default }\n      - { guard: { fallback: sometimes }, at: caller }\nlimits: { repairs_per_minute: 2, active_patches: 5 }\n";
        let err = |text: &str| parse(text, "p.yaml").unwrap_err();
        assert_eq!(err(text), "p.yaml:10: rules[1].when.count: expected a number");
        let text = text.replace("count: many", "count: 2");
        assert_eq!(
            err(&text),
            "p.yaml:13: rules[1].then[1]: action.guard.fallback: expected default, null, {value: X}, {arg: N} or {method: pkg.Class.name}"
        );
        let text = text.replace("sometimes", "default");
        assert!(parse(&text, "p.yaml").is_ok());
        assert_eq!(err(&text.replace(": 5", ": lots")), "p.yaml:14: limits.active_patches: expected a number");
        let no_when = text.replace("    when:\n      exception: java.lang.NullPointerException\n      count: 2\n", "");
        assert_eq!(err(&no_when), "p.yaml:7: rules[1].when: missing");
        assert_eq!(
            err(&text.replace("mode: enforce", "mode: sometimes")),
            "p.yaml:1: mode: \"sometimes\": expected enforce or dry-run"
        );
        let syntax = err(&text.replace("count: 2", "count: [2"));
        assert!(syntax.starts_with("p.yaml:11: "), "{syntax}");
    }

    #[test]
    fn a_health_signal_is_read_with_its_condition_and_a_bad_one_names_the_rule_and_field() {
        let text = "rules:\n  - name: webapp\n    when: { exception: java.lang.NullPointerException }\n    then: [ { guard: { fallback: default } } ]\n    validate:\n      window: 1s\n      health: { method: \"shop.Web.respond(I)V\", failure: \"args[0] >= 500\" }\n";
        let p = parse(text, "p.yaml").unwrap();
        let health = p.rules[0].health.as_ref().expect("validate.health");
        assert_eq!((health.class.as_str(), health.target().as_str()), ("shop.Web", "shop.Web.respond(I)V"));
        let call = |status: i64| {
            let values = [("args[0]".to_string(), crate::observe::Value::Integer(status))];
            health.failure.holds(&crate::observe::Call { values: &values, ..Default::default() })
        };
        assert!(call(500) && !call(200), "the condition as parsed");
        let no_descriptor = parse(&text.replace("respond(I)V", "respond"), "p.yaml").unwrap();
        assert_eq!(no_descriptor.rules[0].health.as_ref().unwrap().method.descriptor, None);
        assert!(parse(POLICY, "p.yaml").unwrap().rules[0].health.is_none(), "no signal unless named");
        let err = |from: &str, to: &str| parse(&text.replace(from, to), "p.yaml").unwrap_err();
        assert_eq!(
            err("failure:", "failures:"),
            "p.yaml:7: rule webapp: validate.health: unknown field \"failures\": expected method and failure"
        );
        let bad = err(">= 500", ">= lots");
        assert!(
            bad.starts_with("p.yaml:7: rule webapp: validate.health.failure: ")
                && bad.contains("\"lots\" is not a value")
                && !bad.contains("--if"),
            "{bad}"
        );
        // The descriptor says `respond` takes one argument.
        let past = err("args[0]", "args[1]");
        assert!(past.contains("validate.health.failure") && past.contains("takes 1 argument"), "{past}");
        assert_eq!(
            err("method: \"shop.Web.respond(I)V\", ", ""),
            "p.yaml:7: rule webapp: validate.health.method: missing"
        );
        assert_eq!(err(", failure: \"args[0] >= 500\"", ""), "p.yaml:7: rule webapp: validate.health.failure: missing");
        let unnamed = err("shop.Web.respond(I)V", "respond");
        assert!(unnamed.contains("validate.health.method: \"respond\": expected CLASS.METHOD"), "{unnamed}");
        let descriptor = err("respond(I)V", "respond(Q)V");
        assert!(descriptor.contains("validate.health.method") && descriptor.contains("descriptor"), "{descriptor}");
    }

    #[test]
    fn a_helpful_null_pointer_message_names_the_call_that_threw() {
        let m = "Cannot invoke \"java.util.Map.get(Object)\" because \"this.prices\" is null";
        assert_eq!(npe_callee(m).as_deref(), Some("get"));
        assert_eq!(
            npe_callee("Cannot invoke \"String.length()\" because \"<local1>\" is null").as_deref(),
            Some("length")
        );
        assert_eq!(npe_callee("Cannot read field \"total\" because \"o\" is null"), None);
        assert_eq!(npe_callee(""), None);
    }

    #[test]
    fn a_rule_may_try_oblivious_access_before_its_guards() {
        let text = "rules:\n  - name: index\n    when: { exception: java.lang.ArrayIndexOutOfBoundsException }\n    then:\n      - oblivious: {}\n      - guard: { catch: [fault], fallback: default }\n";
        let p = parse(text, "p.yaml").unwrap();
        let spec = |action: &ActionYaml| {
            let yaml = spec_yaml("r-1", "a.B", "sum([I)I", action, false);
            crate::spec::PatchSpec::from_yaml(&yaml, "r").unwrap().action
        };
        assert_eq!(spec(&p.rules[0].then[0].action), crate::spec::Action::Oblivious { line: None });
        assert!(matches!(spec(&p.rules[0].then[1].action), crate::spec::Action::Guard { .. }));
        assert_eq!(
            parse(&text.replace("oblivious: {}", "oblivious: { line: -1 }"), "p.yaml").unwrap_err(),
            "p.yaml:5: rules[0].then[0]: action.oblivious.line: expected a source line number (1 to 65535)"
        );
    }

    #[test]
    fn actions_aim_at_the_site_or_the_caller_and_call_auto_resolves() {
        let p = parse(POLICY, "p.yaml").unwrap();
        assert_eq!(p.rules[0].then[0].at, At::Site);
        assert_eq!(p.rules[0].then[1].at, At::Caller);
        assert!(p.rules[0].then[1].action.get("at").is_none(), "at is not part of the patch action");
        let auto: Value = serde_yaml_ng::from_str("guard: { call: auto, fallback: default }").unwrap();
        assert!(wants_call(&auto));
        let resolved = resolve_call(&auto, Some(("longValue", "()J", 1)));
        let yaml = spec_yaml("r-1", "repair.demo.PriceService", "price(Ljava/lang/String;)J", &resolved, false);
        let spec = crate::spec::PatchSpec::from_yaml(&yaml, "r").unwrap();
        match spec.action {
            crate::spec::Action::Guard { call: Some(c), .. } => {
                assert_eq!((c.name.as_str(), c.descriptor.as_deref(), c.occurrence), ("longValue", Some("()J"), 1))
            }
            other => panic!("{other:?}"),
        }
        assert!(!wants_call(&resolve_call(&auto, None)), "no call at the fault: the whole method");
    }

    #[test]
    fn a_rule_may_list_a_recursion_guard_and_a_bad_one_is_named() {
        let text = "rules:\n  - name: deep\n    when: { exception: java.lang.StackOverflowError, count: 2 }\n    then:\n      - recursion: { depth: 200, fallback: default }\n      - guard: { catch: [fault], fallback: default }\n";
        let p = parse(text, "p.yaml").unwrap();
        assert_eq!(p.rules[0].then[0].at, At::Site, "aimed at the throw site: the recursive method");
        let yaml = spec_yaml("deep-1", "a.Flags", "isOn(Ljava/lang/String;)Z", &p.rules[0].then[0].action, false);
        assert_eq!(
            crate::spec::PatchSpec::from_yaml(&yaml, "r").unwrap().action,
            crate::spec::Action::Recursion { depth: 200, fallback: repair_bytecode::transform::Fallback::Default }
        );
        assert_eq!(
            parse(&text.replace("depth: 200", "depth: 0"), "p.yaml").unwrap_err(),
            "p.yaml:5: rules[0].then[0]: action.recursion.depth: expected a positive number"
        );
        assert_eq!(
            parse(&text.replace("depth: 200, fallback: default", "depth: 200"), "p.yaml").unwrap_err(),
            "p.yaml:5: rules[0].then[0]: action.recursion.fallback: missing"
        );
    }

    #[test]
    fn localization_ranks_the_throw_site_then_application_callers() {
        let f = |class: &str, method: &str, bci: i64| FrameRef {
            class: class.into(),
            method: method.into(),
            descriptor: "()V".into(),
            bci,
        };
        let stack = vec![
            f("java.util.Objects", "checkIndex", 3),
            f("java.util.ArrayList", "get", 5),
            f("repair.demo.OrderService", "page", 9),
            f("com.lib.Router", "dispatch", 1),
            f("repair.demo.ShopService", "route", 40),
            f("java.lang.Thread", "run", 1),
        ];
        let c = candidates(&stack, &[], false, false);
        let names: Vec<&str> = c.iter().map(|c| c.frame.method.as_str()).collect();
        assert_eq!(names, ["page", "dispatch", "route"]);
        assert!(c[0].reason.starts_with("throw site") && c[0].reason.contains("java.util.ArrayList.get (JDK)"));
        assert!(c[1].reason.contains("caller of repair.demo.OrderService.page"));
        let app = candidates(&stack, &["repair.demo.*".to_string()], false, false);
        assert_eq!(app.iter().map(|c| c.frame.method.as_str()).collect::<Vec<_>>(), ["page", "route"]);
        assert!(app[1].reason.contains("com.lib.Router.dispatch (library)"));
        assert_eq!(candidates(&stack, &[], true, false)[0].frame.method, "checkIndex");
        // From a bytecode capture probe the top frame is the one the exception was leaving.
        let probed = [f("repair.demo.OrderService", "page", 12), f("repair.demo.ShopService", "route", 40)];
        let c = candidates(&probed, &[], true, true);
        assert_eq!(
            (c[0].frame.method.as_str(), c[0].reason.as_str()),
            ("page", "throw site: the frame the exception left")
        );
        assert_eq!(candidates(&probed, &[], true, false)[0].reason, "throw site: the frame that threw");
    }
}
