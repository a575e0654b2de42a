//! The patch spec: one YAML format for the offline rewrite, the control plane and policies.
//!
//! ```yaml
//! id: price-npe
//! target: { class: com.shop.PriceService, method: "price(Ljava/lang/String;)J" }
//! action:
//!   guard: { catch: [java.lang.NullPointerException], fallback: { value: 0 } }
//! durable: true
//! ```

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use repair_bytecode::hierarchy::{Hierarchy, ObjectHierarchy};
use repair_bytecode::transform::rethrow::{RethrowSpec, ThrowAs, ThrowableConstructor};
use repair_bytecode::transform::{self, CallSite, Fallback, GuardSpec, MethodTarget, ProbePoint, ProbeSpec, SwapSpec};
use serde_yaml_ng::Value;

#[derive(Debug, Clone, PartialEq)]
pub struct PatchSpec {
    pub id: String,
    /// Dotted class name (`com.shop.PriceService`).
    pub class: String,
    /// The method the action targets; empty (no name) for an action on the whole class
    /// (`redefine`).
    pub method: MethodTarget,
    pub action: Action,
    pub durable: bool,
    /// The YAML text the spec was read from.
    pub source: String,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    Guard {
        catch: Vec<String>,
        fallback: Fallback,
        call: Option<CallSite>,
    },
    /// The patch class file, by the name it is attached under (a path relative to the spec).
    Swap {
        class_file: String,
    },
    Probe {
        points: Vec<ProbePoint>,
        capture_args: bool,
        /// With `capture_args`, `this` too.
        capture_this: bool,
        capture_return: bool,
        timestamp: bool,
    },
    /// A circuit breaker: `failures` within `window_ms` open it; open, calls return `fallback`
    /// without running the body for `cooldown_ms`, then one trial call is let through.
    Breaker {
        failures: u32,
        window_ms: u64,
        cooldown_ms: u64,
        fallback: Fallback,
    },
    /// A recursion guard: on each thread, a call of the method made while `depth` calls of it are
    /// already open there returns `fallback` without running the body.
    Recursion {
        depth: u32,
        fallback: Fallback,
    },
    /// Failure-oblivious array access: every array load and store of the method (or of one source
    /// line) bounds-checked; out of bounds a load yields the default and a store is dropped.
    Oblivious {
        line: Option<u16>,
    },
    /// A snapshot of the live locals before a source line (an observation's; not read from YAML).
    Snapshot {
        line: u16,
    },
    /// Every call the method makes timed, and its own entry and exits (an observation's).
    Trace,
    /// The whole class replaced by a class file (attached under this name), e.g. from a fixed
    /// build. With `original` (SHA-256s, hex), only a class whose bytes as the JVM hands them
    /// over have one of those hashes is replaced: a deployment is made over one build. (A class
    /// has two: its file, as it loads, and the bytes a retransformation reconstitutes from it.)
    Redefine {
        class_file: String,
        original: Vec<String>,
    },
    /// Error transformation: the `catch` exceptions leave the method as a new `as_class` (dotted)
    /// exception, made with `constructor` from the caught one. The agent chooses the constructor
    /// from the class's own when it applies the patch ([`PatchSpec::with_constructor`]).
    Rethrow {
        catch: Vec<String>,
        as_class: String,
        constructor: Option<ThrowableConstructor>,
    },
}

impl Action {
    /// A short human summary (`guard NPE → value 0`).
    pub fn summary(&self) -> String {
        match self {
            Action::Guard { catch, fallback, call } => {
                let short: Vec<&str> = catch.iter().map(|c| c.rsplit('.').next().unwrap_or(c)).collect();
                let at = call.as_ref().map(|c| format!(" at call {}#{}", c.name, c.occurrence)).unwrap_or_default();
                format!("guard {}{at} -> {}", short.join("|"), fallback_text(fallback))
            }
            Action::Swap { class_file } => format!("swap from {class_file}"),
            Action::Redefine { class_file, .. } => format!("redefine from {class_file}"),
            Action::Snapshot { line } => format!("snapshot at line {line}"),
            Action::Oblivious { line: None } => "oblivious array access".to_string(),
            Action::Oblivious { line: Some(l) } => format!("oblivious array access at line {l}"),
            Action::Trace => "trace".to_string(),
            Action::Probe { points, .. } => {
                let p: Vec<String> = points.iter().map(|p| format!("{p:?}").to_lowercase()).collect();
                format!("probe {}", p.join(","))
            }
            Action::Breaker { failures, window_ms, cooldown_ms, fallback } => {
                format!("breaker {failures} in {window_ms}ms, open {cooldown_ms}ms -> {}", fallback_text(fallback))
            }
            Action::Recursion { depth, fallback } => {
                format!("recursion deeper than {depth} -> {}", fallback_text(fallback))
            }
            Action::Rethrow { catch, as_class, .. } => {
                let short: Vec<&str> = catch.iter().map(|c| c.rsplit('.').next().unwrap_or(c)).collect();
                format!("rethrow {} as {as_class}", short.join("|"))
            }
        }
    }
}

fn fallback_text(f: &Fallback) -> String {
    match f {
        Fallback::Default => "default".into(),
        Fallback::Null => "null".into(),
        Fallback::Constant(transform::Constant::Int(i)) => format!("value {i}"),
        Fallback::Constant(transform::Constant::Float(f)) => format!("value {f}"),
        Fallback::Constant(transform::Constant::Bool(b)) => format!("value {b}"),
        Fallback::Constant(transform::Constant::String(s)) => format!("value {s:?}"),
        Fallback::Argument(i) => format!("arg {i}"),
        Fallback::StaticMethod { class, name } => format!("{class}.{name}"),
    }
}

/// The deepest a recursion guard may let a method nest on one thread.
const MAX_RECURSION_DEPTH: u32 = 100_000;

/// A spec that does not parse: where (source, line, field) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecError {
    pub source: String,
    pub line: Option<usize>,
    pub field: String,
    pub reason: String,
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.source)?;
        if let Some(l) = self.line {
            write!(f, ":{l}")?;
        }
        if !self.field.is_empty() {
            write!(f, ": {}", self.field)?;
        }
        write!(f, ": {}", self.reason)
    }
}

impl std::error::Error for SpecError {}

/// A spec that could not be applied to a class.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RewriteError {
    pub patch: String,
    pub error: repair_bytecode::Error,
}

impl fmt::Display for RewriteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "patch {}: {}", self.patch, self.error)
    }
}

impl std::error::Error for RewriteError {}

/// What a rewrite may need besides the class: attached files and the ids to report under.
#[derive(Default, Clone, Copy)]
pub struct RewriteEnv<'a> {
    /// File name (as the spec names it) → bytes, e.g. a swap's patch class.
    pub attachments: Option<&'a HashMap<String, Vec<u8>>>,
    /// Passed to the runtime hooks by guard handlers and probes; `None`: no reports.
    pub report_id: Option<i32>,
    /// Answers type merges in methods without stack map frames (default: every class extends
    /// `Object`, enough for class files of Java 7 and later, whose frames are declared).
    pub hierarchy: Option<&'a dyn Hierarchy>,
}

impl PatchSpec {
    /// Parses a spec; `source` names it in errors (a file name, or `<grpc>`).
    pub fn from_yaml(text: &str, source: &str) -> Result<PatchSpec, SpecError> {
        let p = Parser { text, source };
        let root: Value = serde_yaml_ng::from_str(text).map_err(|e| SpecError {
            source: source.into(),
            line: e.location().map(|l| l.line()),
            field: String::new(),
            reason: e.to_string().split(" at line ").next().unwrap_or("").to_string(),
        })?;
        let map = p.mapping(&root, &[])?;
        p.only_keys(map, &[], &["id", "target", "action", "durable"])?;
        let id = p.string(p.required(map, &[], "id")?, &["id"])?;
        PatchSpec::check_id(&id).map_err(|e| p.error(&["id"], e))?;
        let target = p.mapping(p.required(map, &[], "target")?, &["target"])?;
        p.only_keys(target, &["target"], &["class", "method"])?;
        let class = p.string(p.required(target, &["target"], "class")?, &["target", "class"])?;
        if !is_binary_name(&class) {
            return Err(p.error(&["target", "class"], format!("{class:?} is not a Java class name")));
        }
        let action_map = p.mapping(p.required(map, &[], "action")?, &["action"])?;
        let whole_class = action_map.contains_key("redefine");
        let method = match target.get("method") {
            None if whole_class => MethodTarget { name: String::new(), descriptor: None },
            Some(_) if whole_class => {
                return Err(p.error(
                    &["target", "method"],
                    "a redefine replaces the whole class: give no method (a swap replaces one method's body)",
                ))
            }
            _ => {
                let text = p.string(p.required(target, &["target"], "method")?, &["target", "method"])?;
                p.method(&text)?
            }
        };
        let durable = match map.get("durable") {
            None => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => return Err(p.error(&["durable"], "expected true or false")),
        };
        p.only_keys(
            action_map,
            &["action"],
            &["guard", "swap", "probe", "breaker", "recursion", "redefine", "rethrow", "oblivious"],
        )?;
        if action_map.len() != 1 {
            return Err(p.error(
                &["action"],
                "give exactly one of guard, swap, probe, breaker, recursion, redefine, rethrow, oblivious",
            ));
        }
        let (kind, body) = action_map.iter().next().expect("one entry");
        let action = match kind.as_str().unwrap_or("") {
            "guard" => p.guard(body)?,
            "swap" => {
                let m = p.mapping(body, &["action", "swap"])?;
                p.only_keys(m, &["action", "swap"], &["class_file"])?;
                let f =
                    p.string(p.required(m, &["action", "swap"], "class_file")?, &["action", "swap", "class_file"])?;
                Action::Swap { class_file: f }
            }
            "breaker" => p.breaker(body)?,
            "recursion" => p.recursion(body)?,
            "redefine" => p.redefine(body)?,
            "rethrow" => p.rethrow(body)?,
            "oblivious" => p.oblivious(body)?,
            _ => p.probe(body)?,
        };
        Ok(PatchSpec { id, class, method, action, durable, source: text.to_string() })
    }

    /// A patch id is letters, digits, '.', '_' and '-'.
    pub fn check_id(id: &str) -> Result<(), String> {
        if id.is_empty() || !id.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c)) {
            return Err(format!("{id:?} is not an id: use letters, digits, '.', '_' and '-'"));
        }
        if id.starts_with(crate::observe::PATCH_PREFIX) {
            return Err(format!("{id:?}: ids starting with {:?} are observations'", crate::observe::PATCH_PREFIX));
        }
        Ok(())
    }

    /// The target class as the JVM names it internally (`com/shop/PriceService`).
    pub fn target_class_internal(&self) -> String {
        self.class.replace('.', "/")
    }

    /// Where it acts, for events and messages: `com.shop.Price.total`, or the class alone.
    pub fn site(&self) -> String {
        if self.method.name.is_empty() {
            self.class.clone()
        } else {
            format!("{}.{}", self.class, self.method.name)
        }
    }

    /// The spec with a rethrow's constructor chosen, and its source saying so (what the journal
    /// keeps, so a durable patch is made again the same way before the class loads).
    pub fn with_constructor(&self, constructor: ThrowableConstructor) -> PatchSpec {
        let mut spec = self.clone();
        if let Action::Rethrow { constructor: c, .. } = &mut spec.action {
            *c = Some(constructor);
        }
        if let Ok(mut root) = serde_yaml_ng::from_str::<Value>(&self.source) {
            if let Some(r) = root.get_mut("action").and_then(|a| a.get_mut("rethrow")).and_then(Value::as_mapping_mut) {
                r.insert("constructor".into(), constructor.descriptor().into());
                spec.source = serde_yaml_ng::to_string(&root).unwrap_or(spec.source);
            }
        }
        spec
    }

    /// Files the spec refers to, which must be attached to apply it.
    pub fn attachments_needed(&self) -> Vec<String> {
        match &self.action {
            Action::Swap { class_file } | Action::Redefine { class_file, .. } => vec![class_file.clone()],
            _ => Vec::new(),
        }
    }

    /// Applies the spec to the target class's bytes.
    pub fn rewrite(&self, class_bytes: &[u8], env: &RewriteEnv<'_>) -> Result<Vec<u8>, RewriteError> {
        let err = |error| RewriteError { patch: self.id.clone(), error };
        let cf = repair_bytecode::ClassFile::parse(class_bytes).map_err(err)?;
        let name = cf.name().map_err(err)?.into_owned();
        if name != self.target_class_internal() {
            return Err(err(repair_bytecode::Error::not_found(
                format!("class {}", name.replace('/', ".")),
                format!("is not the patch target {}", self.class),
            )));
        }
        let out = match &self.action {
            Action::Guard { catch, fallback, call } => {
                let spec = GuardSpec {
                    method: self.method.clone(),
                    catch: catch.iter().map(|c| c.replace('.', "/")).collect(),
                    fallback: fallback.clone(),
                    call_site: call.clone(),
                    report_id: env.report_id,
                };
                let guarded = match env.hierarchy {
                    _ if spec.call_site.is_none() => transform::guard::guard(class_bytes, &spec),
                    Some(h) => transform::call_site::guard_call_site(class_bytes, &spec, h),
                    None => transform::call_site::guard_call_site(class_bytes, &spec, &ObjectHierarchy),
                };
                // A guard that reports also counts the method's calls (`Hooks.enter`): its
                // fallback rate is what tells whether a repair holds.
                match (guarded, env.report_id) {
                    (Ok(bytes), Some(id)) => transform::probe::probe(&bytes, &calls_counted(&self.method, id)),
                    (other, _) => other,
                }
            }
            Action::Rethrow { catch, as_class, constructor } => {
                let spec = constructor.map(|constructor| RethrowSpec {
                    method: self.method.clone(),
                    catch: catch.iter().map(|c| c.replace('.', "/")).collect(),
                    throw: ThrowAs { class: as_class.replace('.', "/"), constructor },
                    report_id: env.report_id,
                });
                let rethrown = match spec {
                    Some(spec) => transform::rethrow::rethrow(class_bytes, &spec),
                    None => Err(repair_bytecode::Error::refused(
                        format!("patch {}", self.id),
                        format!(
                            "the constructor of {as_class} is chosen by the agent as it applies the patch; \
                             offline, give rethrow.constructor: \"{}\", \"{}\" or \"{}\"",
                            ThrowableConstructor::MessageCause.descriptor(),
                            ThrowableConstructor::Message.descriptor(),
                            ThrowableConstructor::NoArgs.descriptor()
                        ),
                    )),
                };
                // Counted as a guard is: each transformation is its fallback, over its calls.
                match (rethrown, env.report_id) {
                    (Ok(bytes), Some(id)) => transform::probe::probe(&bytes, &calls_counted(&self.method, id)),
                    (other, _) => other,
                }
            }
            Action::Probe { points, capture_args, capture_this, capture_return, timestamp } => {
                let spec = ProbeSpec {
                    method: self.method.clone(),
                    points: points.clone(),
                    probe_id: env.report_id.unwrap_or(0),
                    capture_args: *capture_args || *capture_this,
                    capture_this: *capture_this,
                    capture_return: *capture_return,
                    timestamp: *timestamp,
                };
                transform::probe::probe(class_bytes, &spec)
            }
            Action::Swap { class_file } => {
                let patch = env.attachments.and_then(|a| a.get(class_file)).ok_or_else(|| {
                    err(repair_bytecode::Error::not_found(
                        format!("patch {}", self.id),
                        format!("the swap's class file {class_file} was not attached"),
                    ))
                })?;
                let swapped = transform::swap::swap(
                    class_bytes,
                    &SwapSpec { method: self.method.clone(), patch_class: patch.clone() },
                );
                // A swap that reports counts its calls too: a verdict on it rests on them.
                match (swapped, env.report_id) {
                    (Ok(bytes), Some(id)) => transform::probe::probe(&bytes, &calls_counted(&self.method, id)),
                    (other, _) => other,
                }
            }
            Action::Redefine { class_file, original } => {
                let new = env.attachments.and_then(|a| a.get(class_file)).ok_or_else(|| {
                    err(repair_bytecode::Error::not_found(
                        format!("patch {}", self.id),
                        format!("the redefinition's class file {class_file} was not attached"),
                    ))
                })?;
                let loaded = crate::journal::sha256_hex(class_bytes);
                if original.is_empty() || original.contains(&loaded) {
                    Ok(new.clone())
                } else {
                    let made_over: Vec<&str> = original.iter().map(|s| short_hash(s)).collect();
                    Err(repair_bytecode::Error::refused(
                        format!("class {}", self.class),
                        format!(
                            "as loaded (SHA-256 {}) it is not the build this redefinition was made over \
                             (SHA-256 {})",
                            short_hash(&loaded),
                            made_over.join(" or ")
                        ),
                    ))
                }
            }
            Action::Oblivious { line } => transform::oblivious::oblivious(
                class_bytes,
                &transform::oblivious::ObliviousSpec {
                    method: self.method.clone(),
                    line: *line,
                    report_id: env.report_id.unwrap_or(0),
                },
                env.hierarchy.unwrap_or(&ObjectHierarchy),
            )
            // Its calls are counted too: the rate of accesses made oblivious is its fallback rate.
            .and_then(|(bytes, _)| match env.report_id {
                Some(id) => transform::probe::probe(&bytes, &calls_counted(&self.method, id)),
                None => Ok(bytes),
            }),
            Action::Snapshot { line } => transform::snapshot::snapshot(
                class_bytes,
                &transform::snapshot::SnapshotSpec {
                    method: (!self.method.name.is_empty()).then(|| self.method.clone()),
                    line: *line,
                    snapshot_id: env.report_id.unwrap_or(0),
                },
            )
            .map(|(bytes, _)| bytes),
            Action::Trace => transform::trace::trace(
                class_bytes,
                &transform::trace::TraceSpec { method: self.method.clone(), trace_id: env.report_id.unwrap_or(0) },
            )
            .and_then(|(traced, _)| {
                transform::probe::probe(
                    &traced,
                    &ProbeSpec {
                        method: self.method.clone(),
                        points: vec![ProbePoint::Entry, ProbePoint::Exit, ProbePoint::Throw],
                        probe_id: env.report_id.unwrap_or(0),
                        capture_args: false,
                        capture_this: false,
                        capture_return: false,
                        timestamp: false,
                    },
                )
            }),
            Action::Breaker { fallback, .. } => transform::breaker::breaker(
                class_bytes,
                &transform::BreakerSpec {
                    method: self.method.clone(),
                    fallback: fallback.clone(),
                    report_id: env.report_id.unwrap_or(0),
                },
            ),
            Action::Recursion { fallback, .. } => transform::breaker::recursion_guard(
                class_bytes,
                &transform::BreakerSpec {
                    method: self.method.clone(),
                    fallback: fallback.clone(),
                    report_id: env.report_id.unwrap_or(0),
                },
            ),
        }
        .map_err(err)?;
        transform::check_redefinable(class_bytes, &out).map_err(err)?;
        Ok(out)
    }
}

/// The first 12 hex digits of a SHA-256, as messages show it.
pub fn short_hash(sha: &str) -> &str {
    &sha[..sha.len().min(12)]
}

/// The longest window or cooldown a spec or policy may give. Anything longer is a slip (`1e300`),
/// and the agent adds these to `Instant`s, which overflow.
pub const MAX_DURATION: Duration = Duration::from_secs(24 * 60 * 60);

/// `10s`, `500ms`, `2m` or a number of seconds, from 0 to [`MAX_DURATION`]; `None` gives `default`.
/// A probe that only counts the calls of `method` (`Hooks.enter`) under report `id`.
fn calls_counted(method: &MethodTarget, id: i32) -> ProbeSpec {
    ProbeSpec {
        method: method.clone(),
        points: vec![ProbePoint::Entry],
        probe_id: id,
        capture_args: false,
        capture_this: false,
        capture_return: false,
        timestamp: false,
    }
}

pub fn parse_duration(v: Option<&Value>, default: Duration) -> Result<Duration, String> {
    let Some(v) = v else { return Ok(default) };
    let (shown, seconds) = match v {
        Value::Number(n) => (n.to_string(), n.as_f64().unwrap_or(f64::NAN)),
        _ => {
            let s = v.as_str().ok_or("expected a duration such as 10s")?;
            let (n, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(s.len()));
            let n: f64 = n.parse().map_err(|_| format!("{s:?}: expected a duration such as 10s"))?;
            let seconds = match unit {
                "ms" => n / 1000.0,
                "s" | "" => n,
                "m" => n * 60.0,
                _ => return Err(format!("{s:?}: unit must be ms, s or m")),
            };
            (format!("{s:?}"), seconds)
        }
    };
    if !seconds.is_finite() {
        return Err(format!("{shown}: not a finite duration"));
    }
    if seconds < 0.0 {
        return Err(format!("{shown}: a duration cannot be negative"));
    }
    let limit = MAX_DURATION.as_secs();
    match Duration::try_from_secs_f64(seconds) {
        Ok(d) if d <= MAX_DURATION => Ok(d),
        _ => Err(format!("{shown}: longer than the limit of 1 day ({limit}s)")),
    }
}

struct Parser<'a> {
    text: &'a str,
    source: &'a str,
}

impl Parser<'_> {
    fn error(&self, path: &[&str], reason: impl Into<String>) -> SpecError {
        SpecError {
            source: self.source.into(),
            line: line_of(self.text, path),
            field: path.join("."),
            reason: reason.into(),
        }
    }

    fn mapping<'v>(&self, v: &'v Value, path: &[&str]) -> Result<&'v serde_yaml_ng::Mapping, SpecError> {
        v.as_mapping().ok_or_else(|| self.error(path, "expected a mapping (key: value)"))
    }

    fn required<'v>(&self, m: &'v serde_yaml_ng::Mapping, path: &[&str], key: &str) -> Result<&'v Value, SpecError> {
        m.get(key).ok_or_else(|| {
            let mut at = path.to_vec();
            at.push(key);
            SpecError { line: line_of(self.text, path), ..self.error(&at, "missing") }
        })
    }

    fn string(&self, v: &Value, path: &[&str]) -> Result<String, SpecError> {
        match v {
            Value::String(s) => Ok(s.clone()),
            _ => Err(self.error(path, "expected a string")),
        }
    }

    fn only_keys(&self, m: &serde_yaml_ng::Mapping, path: &[&str], known: &[&str]) -> Result<(), SpecError> {
        for k in m.keys() {
            let k = k.as_str().unwrap_or("?");
            if !known.contains(&k) {
                let mut at = path.to_vec();
                at.push(k);
                return Err(self.error(&at, format!("unknown field; expected one of: {}", known.join(", "))));
            }
        }
        Ok(())
    }

    /// The `catch` list of action `kind` (`guard`, `rethrow`); `None` when not given.
    fn catch_list(&self, m: &serde_yaml_ng::Mapping, kind: &str) -> Result<Option<Vec<String>>, SpecError> {
        let catch = match m.get("catch") {
            None => return Ok(None),
            Some(Value::Sequence(items)) if !items.is_empty() => {
                let mut v = Vec::new();
                for (i, item) in items.iter().enumerate() {
                    let field = format!("catch[{i}]");
                    let s = self.string(item, &["action", kind, &field])?;
                    if !is_binary_name(&s) {
                        return Err(self.error(&["action", kind, "catch"], format!("{s:?} is not a Java class name")));
                    }
                    v.push(s);
                }
                v
            }
            Some(_) => {
                return Err(self.error(&["action", kind, "catch"], "expected a non-empty list of exception classes"))
            }
        };
        Ok(Some(catch))
    }

    fn guard(&self, body: &Value) -> Result<Action, SpecError> {
        let path = ["action", "guard"];
        let m = self.mapping(body, &path)?;
        self.only_keys(m, &path, &["catch", "fallback", "call"])?;
        let catch = self.catch_list(m, "guard")?.unwrap_or_else(|| vec!["java.lang.Throwable".to_string()]);
        let fallback = match m.get("fallback") {
            None => Fallback::Default,
            Some(v) => self.fallback(v)?,
        };
        let call = match m.get("call") {
            None => None,
            Some(v) => {
                let cp = ["action", "guard", "call"];
                let c = self.mapping(v, &cp)?;
                self.only_keys(c, &cp, &["method", "owner", "occurrence"])?;
                let target = MethodTarget::parse(
                    &self.string(self.required(c, &cp, "method")?, &["action", "guard", "call", "method"])?,
                );
                let owner =
                    c.get("owner").map(|o| self.string(o, &["action", "guard", "call", "owner"])).transpose()?;
                let occurrence = match c.get("occurrence") {
                    None => 1,
                    Some(Value::Number(n)) if n.as_u64().is_some_and(|n| (1..=u32::MAX as u64).contains(&n)) => {
                        n.as_u64().unwrap_or(1) as u32
                    }
                    Some(_) => {
                        return Err(self.error(&["action", "guard", "call", "occurrence"], "expected a positive number"))
                    }
                };
                Some(CallSite {
                    owner: owner.map(|o| o.replace('.', "/")),
                    name: target.name,
                    descriptor: target.descriptor,
                    occurrence,
                })
            }
        };
        Ok(Action::Guard { catch, fallback, call })
    }

    fn method(&self, text: &str) -> Result<MethodTarget, SpecError> {
        let method = MethodTarget::parse(text);
        if let Some(d) = &method.descriptor {
            repair_bytecode::descriptor::MethodDescriptor::parse(d)
                .map_err(|e| self.error(&["target", "method"], format!("bad descriptor: {}", e.reason)))?;
        }
        if method.name.is_empty()
            || !(method.name == "<init>" || method.name == "<clinit>" || is_identifier(&method.name))
        {
            return Err(self.error(&["target", "method"], format!("{:?} is not a method name", method.name)));
        }
        Ok(method)
    }

    fn rethrow(&self, body: &Value) -> Result<Action, SpecError> {
        let path = ["action", "rethrow"];
        let m = self.mapping(body, &path)?;
        self.only_keys(m, &path, &["catch", "as", "constructor"])?;
        // Catching everything would turn an OutOfMemoryError into the application's own error.
        let catch = self.catch_list(m, "rethrow")?.ok_or_else(|| SpecError {
            line: line_of(self.text, &path),
            ..self.error(&["action", "rethrow", "catch"], "missing: name the exceptions to transform")
        })?;
        let as_class = self.string(self.required(m, &path, "as")?, &["action", "rethrow", "as"])?;
        if as_class == "auto" {
            return Err(self.error(
                &["action", "rethrow", "as"],
                "auto is for a policy rule, whose engine picks the type from the fault's stack; a patch names the class",
            ));
        }
        if !is_binary_name(&as_class) {
            return Err(self.error(&["action", "rethrow", "as"], format!("{as_class:?} is not a Java class name")));
        }
        let constructor = match m.get("constructor") {
            None => None,
            Some(v) => {
                let d = self.string(v, &["action", "rethrow", "constructor"])?;
                Some(ThrowableConstructor::from_descriptor(&d).ok_or_else(|| {
                    let known: Vec<String> =
                        ThrowableConstructor::PREFERENCE.iter().map(|c| format!("{:?}", c.descriptor())).collect();
                    self.error(
                        &["action", "rethrow", "constructor"],
                        format!("{d:?}: expected one of {}", known.join(", ")),
                    )
                })?)
            }
        };
        Ok(Action::Rethrow { catch, as_class, constructor })
    }

    fn redefine(&self, body: &Value) -> Result<Action, SpecError> {
        let path = ["action", "redefine"];
        let m = self.mapping(body, &path)?;
        self.only_keys(m, &path, &["class_file", "original"])?;
        let class_file = self.string(self.required(m, &path, "class_file")?, &["action", "redefine", "class_file"])?;
        let hash = |v: &Value, field: &str| -> Result<String, SpecError> {
            let sha = self.string(v, &["action", "redefine", field])?;
            if sha.len() != 64 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(self.error(&["action", "redefine", "original"], "expected a SHA-256 in hex"));
            }
            Ok(sha.to_ascii_lowercase())
        };
        let original = match m.get("original") {
            None => Vec::new(),
            Some(Value::Sequence(items)) => {
                items.iter().enumerate().map(|(i, v)| hash(v, &format!("original[{i}]"))).collect::<Result<_, _>>()?
            }
            Some(v) => vec![hash(v, "original")?],
        };
        Ok(Action::Redefine { class_file, original })
    }

    fn oblivious(&self, body: &Value) -> Result<Action, SpecError> {
        let path = ["action", "oblivious"];
        // `oblivious:` with nothing after it reads as null: the same as `{}`.
        if body.is_null() {
            return Ok(Action::Oblivious { line: None });
        }
        let m = self.mapping(body, &path)?;
        self.only_keys(m, &path, &["line"])?;
        let line = match m.get("line") {
            None => None,
            Some(Value::Number(n)) if n.as_u64().is_some_and(|n| (1..=u16::MAX as u64).contains(&n)) => {
                n.as_u64().map(|n| n as u16)
            }
            Some(_) => {
                return Err(self.error(&["action", "oblivious", "line"], "expected a source line number (1 to 65535)"))
            }
        };
        Ok(Action::Oblivious { line })
    }

    fn breaker(&self, body: &Value) -> Result<Action, SpecError> {
        let path = ["action", "breaker"];
        let m = self.mapping(body, &path)?;
        self.only_keys(m, &path, &["failures", "window", "cooldown", "fallback"])?;
        let failures = match m.get("failures") {
            None => 5,
            Some(Value::Number(n)) if n.as_u64().is_some_and(|n| (1..=1_000_000).contains(&n)) => {
                n.as_u64().unwrap_or(5) as u32
            }
            Some(_) => return Err(self.error(&["action", "breaker", "failures"], "expected a positive number")),
        };
        let ms = |key: &str, default: Duration| -> Result<u64, SpecError> {
            parse_duration(m.get(key), default)
                .map(|d| d.as_millis() as u64)
                .map_err(|e| self.error(&["action", "breaker", key], e))
        };
        let window_ms = ms("window", Duration::from_secs(10))?;
        let cooldown_ms = ms("cooldown", Duration::from_secs(5))?;
        let fallback = match m.get("fallback") {
            None => Fallback::Default,
            Some(v) => self.fallback_at(v, &["action", "breaker", "fallback"])?,
        };
        Ok(Action::Breaker { failures, window_ms, cooldown_ms, fallback })
    }

    fn recursion(&self, body: &Value) -> Result<Action, SpecError> {
        let path = ["action", "recursion"];
        let m = self.mapping(body, &path)?;
        self.only_keys(m, &path, &["depth", "fallback"])?;
        let depth = match self.required(m, &path, "depth")? {
            Value::Number(n) if n.as_u64().is_some_and(|n| (1..=MAX_RECURSION_DEPTH as u64).contains(&n)) => {
                n.as_u64().unwrap_or(1) as u32
            }
            Value::Number(n) if n.as_u64().is_some_and(|n| n > MAX_RECURSION_DEPTH as u64) => {
                return Err(self.error(
                    &["action", "recursion", "depth"],
                    format!("{n} is deeper than the limit of {MAX_RECURSION_DEPTH}"),
                ))
            }
            _ => return Err(self.error(&["action", "recursion", "depth"], "expected a positive number")),
        };
        // No default: which value stands for "too deep" is the method's business.
        let fallback = self.fallback_at(self.required(m, &path, "fallback")?, &["action", "recursion", "fallback"])?;
        Ok(Action::Recursion { depth, fallback })
    }

    fn fallback(&self, v: &Value) -> Result<Fallback, SpecError> {
        self.fallback_at(v, &["action", "guard", "fallback"])
    }

    fn fallback_at(&self, v: &Value, path: &[&str]) -> Result<Fallback, SpecError> {
        match v {
            Value::String(s) if s == "default" => return Ok(Fallback::Default),
            Value::String(s) if s == "null" => return Ok(Fallback::Null),
            Value::Null => return Ok(Fallback::Null),
            Value::Mapping(m) if m.len() == 1 => {
                let (k, val) = m.iter().next().expect("one entry");
                return match (k.as_str().unwrap_or(""), val) {
                    ("value", Value::Number(n)) => Ok(Fallback::Constant(match n.as_i64() {
                        Some(i) => transform::Constant::Int(i),
                        None => transform::Constant::Float(n.as_f64().unwrap_or(0.0)),
                    })),
                    ("value", Value::Bool(b)) => Ok(Fallback::Constant(transform::Constant::Bool(*b))),
                    ("value", Value::String(s)) => Ok(Fallback::Constant(transform::Constant::String(s.clone()))),
                    ("value", Value::Null) => Ok(Fallback::Null),
                    ("arg", Value::Number(n)) if n.as_u64().is_some_and(|n| n < 256) => {
                        Ok(Fallback::Argument(n.as_u64().unwrap_or(0) as u16))
                    }
                    ("method", Value::String(s)) => match s.rsplit_once('.') {
                        Some((class, name)) if is_binary_name(class) && is_identifier(name) => {
                            Ok(Fallback::StaticMethod { class: class.to_string(), name: name.to_string() })
                        }
                        _ => Err(self.error(path, format!("{s:?} is not Class.method"))),
                    },
                    _ => {
                        Err(self
                            .error(path, "expected default, null, {value: X}, {arg: N} or {method: pkg.Class.name}"))
                    }
                };
            }
            _ => {}
        }
        Err(self.error(path, "expected default, null, {value: X}, {arg: N} or {method: pkg.Class.name}"))
    }

    fn probe(&self, body: &Value) -> Result<Action, SpecError> {
        let path = ["action", "probe"];
        let m = self.mapping(body, &path)?;
        self.only_keys(m, &path, &["at", "capture"])?;
        let list = |key: &str| -> Result<Vec<String>, SpecError> {
            match m.get(key) {
                None => Ok(Vec::new()),
                Some(Value::Sequence(items)) => {
                    items.iter().map(|i| self.string(i, &["action", "probe", key])).collect()
                }
                Some(Value::String(s)) => Ok(vec![s.clone()]),
                Some(_) => Err(self.error(&["action", "probe", key], "expected a list")),
            }
        };
        let mut points = Vec::new();
        for p in list("at")? {
            points.push(match p.as_str() {
                "entry" => ProbePoint::Entry,
                "exit" => ProbePoint::Exit,
                "throw" => ProbePoint::Throw,
                other => match other.strip_prefix("line:").and_then(|n| n.parse::<u16>().ok()) {
                    Some(n) => ProbePoint::Line(n),
                    None => {
                        return Err(self.error(
                            &["action", "probe", "at"],
                            format!("{other:?}: expected entry, exit, throw or line:N"),
                        ))
                    }
                },
            });
        }
        if points.is_empty() {
            points = vec![ProbePoint::Entry, ProbePoint::Exit, ProbePoint::Throw];
        }
        let (mut capture_args, mut capture_this, mut capture_return, mut timestamp) = (false, false, false, false);
        for c in list("capture")? {
            match c.as_str() {
                "args" => capture_args = true,
                "this" => capture_this = true,
                "return" => capture_return = true,
                "time" => timestamp = true,
                other => {
                    return Err(self.error(
                        &["action", "probe", "capture"],
                        format!("{other:?}: expected args, this, return or time"),
                    ))
                }
            }
        }
        Ok(Action::Probe { points, capture_args, capture_this, capture_return, timestamp })
    }
}

/// The 1-based line where the field at `path` is written (block or flow style), if found. A key
/// is looked for within its parent's block only (the parent's line and the lines indented past
/// it); `key[i]` is the `i`th `- ` item of a block list, or the key's line for a flow list.
pub(crate) fn line_of(text: &str, path: &[&str]) -> Option<usize> {
    let lines: Vec<&str> = text.lines().collect();
    let indent = |l: &str| l.len() - l.trim_start().len();
    let blank = |l: &str| l.trim().is_empty() || l.trim_start().starts_with('#');
    // The search for the next key: from this line, over the lines indented past `parent`.
    let (mut from, mut parent) = (0, None::<usize>);
    let mut found = None;
    for segment in path {
        let (key, index) = match segment.split_once('[') {
            Some((k, i)) => (k, i.trim_end_matches(']').parse::<usize>().ok()),
            None => (*segment, None),
        };
        let mut block = lines
            .iter()
            .enumerate()
            .skip(from)
            .take_while(|&(i, l)| i == from || blank(l) || parent.is_none_or(|p| indent(l) > p));
        let (i, col, rest) = block.find_map(|(i, l)| {
            let t = l.trim_start().trim_start_matches("- ");
            let col = l.len() - t.len();
            if let Some(rest) = t.strip_prefix(&format!("{key}:")) {
                return Some((i, col, rest));
            }
            [format!("{{ {key}:"), format!(", {key}:"), format!("{{{key}:")]
                .iter()
                .find_map(|p| l.find(p.as_str()).map(|at| (i, at + p.len() - key.len() - 1, &l[at + p.len()..])))
        })?;
        (from, parent) = (i, Some(col));
        found = Some(i + 1);
        let Some(n) = index else { continue };
        if !(rest.trim().is_empty() || rest.trim_start().starts_with('#')) {
            continue; // a flow list: its items are on the key's line
        }
        // The items of a block list: `- ` lines at one indent, the first at or past the key's.
        let mut items = lines
            .iter()
            .enumerate()
            .skip(i + 1)
            .filter(|(_, l)| !blank(l))
            .map(|(j, l)| (j, indent(l), l.trim_start().starts_with("- ") || l.trim() == "-"));
        let Some((first, dash, true)) = items.next().filter(|&(_, d, is_item)| is_item && d >= col) else {
            continue;
        };
        let nth = std::iter::once((first, dash, true))
            .chain(items.take_while(|&(_, d, is_item)| d > dash || (d == dash && is_item)))
            .filter(|&(_, d, _)| d == dash)
            .nth(n);
        if let Some((j, _, _)) = nth {
            (from, parent) = (j, Some(dash));
            found = Some(j + 1);
        }
    }
    found.or(if path.is_empty() { Some(1) } else { None })
}

fn is_identifier(s: &str) -> bool {
    let mut c = s.chars();
    c.next().is_some_and(|f| f.is_alphabetic() || f == '_' || f == '$')
        && c.all(|c| c.is_alphanumeric() || c == '_' || c == '$')
}

/// A Java binary class name with dots or slashes (`com.shop.Price$Cache`).
pub fn is_binary_name(s: &str) -> bool {
    !s.is_empty() && s.split(['.', '/']).all(is_identifier)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "id: price-npe\ntarget: { class: com.shop.PriceService, method: \"price(Ljava/lang/String;)J\" }\naction:\n  guard: { catch: [java.lang.NullPointerException], fallback: { value: 0 } }\ndurable: true\n";

    #[test]
    fn parses_the_design_example() {
        let s = PatchSpec::from_yaml(GOOD, "price.yaml").unwrap();
        assert_eq!(s.id, "price-npe");
        assert_eq!(s.target_class_internal(), "com/shop/PriceService");
        assert_eq!(s.method, MethodTarget { name: "price".into(), descriptor: Some("(Ljava/lang/String;)J".into()) });
        assert!(s.durable);
        assert_eq!(
            s.action,
            Action::Guard {
                catch: vec!["java.lang.NullPointerException".into()],
                fallback: Fallback::Constant(transform::Constant::Int(0)),
                call: None
            }
        );
    }

    fn err(text: &str) -> String {
        PatchSpec::from_yaml(text, "p.yaml").unwrap_err().to_string()
    }

    #[test]
    fn errors_name_the_line_and_field() {
        assert_eq!(
            err(&GOOD.replace("java.lang.NullPointerException", "java..NPE")),
            "p.yaml:4: action.guard.catch: \"java..NPE\" is not a Java class name"
        );
        assert_eq!(
            err(&GOOD.replace("price(L", "price(Q")),
            "p.yaml:2: target.method: bad descriptor: bad parameter type"
        );
        assert_eq!(
            err(&GOOD.replace("guard:", "gaurd:")),
            "p.yaml:4: action.gaurd: unknown field; expected one of: guard, swap, probe, breaker, recursion, redefine, rethrow, oblivious"
        );
        assert_eq!(err(&GOOD.replace("id: price-npe\n", "")), "p.yaml:1: id: missing");
        assert_eq!(err(&GOOD.replace("durable: true", "durable: maybe")), "p.yaml:5: durable: expected true or false");
        assert_eq!(err("id: [unclosed"), "p.yaml:2: did not find expected ',' or ']'");
        assert_eq!(
            err(&GOOD.replace("{ value: 0 }", "{ valeu: 0 }")),
            "p.yaml:4: action.guard.fallback: expected default, null, {value: X}, {arg: N} or {method: pkg.Class.name}"
        );
        assert_eq!(
            err(&GOOD.replace("id: price-npe", "id: \"bad id\"")),
            "p.yaml:1: id: \"bad id\" is not an id: use letters, digits, '.', '_' and '-'"
        );
    }

    /// Whatever YAML crate reads specs, a bad one's error says the file, the line and the field.
    #[test]
    fn a_bad_documents_error_names_the_file_line_and_field() {
        let doc = "id: p\ntarget: { class: a.B, method: run }\ncolour: red\naction:\n  guard:\n    catch:\n      - java.lang.NullPointerException\n      - 42\n    fallback: default\ndurable: true\n";
        assert_eq!(err(doc), "p.yaml:3: colour: unknown field; expected one of: id, target, action, durable");
        let doc = doc.replace("colour: red\n", "");
        assert_eq!(err(&doc), "p.yaml:7: action.guard.catch[1]: expected a string");
        let doc = doc.replace("- 42", "- java.lang.IllegalStateException");
        assert!(PatchSpec::from_yaml(&doc, "p.yaml").is_ok());
        assert_eq!(err(&doc.replace("durable: true", "durable: \"yes\"")), "p.yaml:9: durable: expected true or false");
        assert_eq!(
            err(&doc.replace("target: { class: a.B, method: run }", "target: a.B")),
            "p.yaml:2: target: expected a mapping (key: value)"
        );
        let syntax = err(&doc.replace("fallback: default", "fallback: [default"));
        assert!(syntax.starts_with("p.yaml:9: "), "{syntax}");
    }

    #[test]
    fn durations_are_finite_non_negative_and_at_most_a_day() {
        let parse = |yaml: &str| parse_duration(Some(&serde_yaml_ng::from_str(yaml).unwrap()), Duration::ZERO);
        assert_eq!(parse("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse("1.5"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse("1440m"), Ok(MAX_DURATION));
        assert_eq!(parse("0"), Ok(Duration::ZERO));
        assert_eq!(parse(".inf"), Err(".inf: not a finite duration".into()));
        assert_eq!(parse("-.inf"), Err("-.inf: not a finite duration".into()));
        assert_eq!(parse(".nan"), Err(".nan: not a finite duration".into()));
        assert_eq!(parse("-3"), Err("-3: a duration cannot be negative".into()));
        assert_eq!(parse("-0.5"), Err("-0.5: a duration cannot be negative".into()));
        assert_eq!(parse("1e300"), Err("1e300: longer than the limit of 1 day (86400s)".into()));
        assert_eq!(parse("86401"), Err("86401: longer than the limit of 1 day (86400s)".into()));
        assert_eq!(parse("1441m"), Err("\"1441m\": longer than the limit of 1 day (86400s)".into()));
        assert_eq!(
            parse("\"99999999999999999999999s\""),
            Err("\"99999999999999999999999s\": longer than the limit of 1 day (86400s)".into())
        );
        assert_eq!(parse("1e300s"), Err("\"1e300s\": unit must be ms, s or m".into()));
        let breaker = |window: &str| {
            PatchSpec::from_yaml(
                &format!("id: b\ntarget: {{ class: a.B, method: run }}\naction:\n  breaker: {{ window: {window} }}\n"),
                "b.yaml",
            )
        };
        assert_eq!(
            breaker(".inf").unwrap_err().to_string(),
            "b.yaml:4: action.breaker.window: .inf: not a finite duration"
        );
        assert!(breaker("24h").unwrap_err().to_string().contains("unit must be ms, s or m"));
        assert!(breaker("2s").is_ok());
    }

    #[test]
    fn parses_probe_and_swap_actions() {
        let probe = "id: p\ntarget: { class: a.B, method: run }\naction:\n  probe: { at: [entry, exit, \"line:42\"], capture: [args, time] }\n";
        let s = PatchSpec::from_yaml(probe, "p.yaml").unwrap();
        assert_eq!(
            s.action,
            Action::Probe {
                points: vec![ProbePoint::Entry, ProbePoint::Exit, ProbePoint::Line(42)],
                capture_args: true,
                capture_this: false,
                capture_return: false,
                timestamp: true
            }
        );
        let swap = "id: s\ntarget: { class: a.B, method: run }\naction:\n  swap: { class_file: Fixed.class }\n";
        let s = PatchSpec::from_yaml(swap, "s.yaml").unwrap();
        assert_eq!(s.attachments_needed(), vec!["Fixed.class".to_string()]);
        assert_eq!(
            err(&probe.replace("line:42", "line:x")),
            "p.yaml:4: action.probe.at: \"line:x\": expected entry, exit, throw or line:N"
        );
    }

    #[test]
    fn a_rethrow_names_what_it_catches_and_the_type_it_throws() {
        let text = "id: r\ntarget: { class: a.B, method: \"parse(Ljava/lang/String;)I\" }\naction:\n  rethrow: { catch: [java.lang.NumberFormatException], as: java.io.IOException }\ndurable: true\n";
        let s = PatchSpec::from_yaml(text, "r.yaml").unwrap();
        let unresolved = Action::Rethrow {
            catch: vec!["java.lang.NumberFormatException".into()],
            as_class: "java.io.IOException".into(),
            constructor: None,
        };
        assert_eq!(s.action, unresolved);
        assert_eq!(s.action.summary(), "rethrow NumberFormatException as java.io.IOException");
        // The agent's choice is kept in the source the journal records, and reads back the same.
        let chosen = s.with_constructor(ThrowableConstructor::Message);
        let again = PatchSpec::from_yaml(&chosen.source, "journal").unwrap();
        assert_eq!(again.action, chosen.action);
        assert!(matches!(again.action, Action::Rethrow { constructor: Some(ThrowableConstructor::Message), .. }));
        assert!(again.durable);
        for (from, to, why) in [
            ("as: java.io.IOException", "as: auto", "p.yaml:4: action.rethrow.as: auto is for a policy rule"),
            (
                "as: java.io.IOException",
                "as: \"java..IO\"",
                "p.yaml:4: action.rethrow.as: \"java..IO\" is not a Java class name",
            ),
            ("catch: [java.lang.NumberFormatException], ", "", "p.yaml:4: action.rethrow.catch: missing"),
            (
                "java.io.IOException }",
                "java.io.IOException, constructor: \"(I)V\" }",
                "p.yaml:4: action.rethrow.constructor: \"(I)V\": expected one of",
            ),
            (
                "as: java.io.IOException",
                "as: java.io.IOException, fallback: default",
                "p.yaml:4: action.rethrow.fallback: unknown field",
            ),
        ] {
            let e = err(&text.replace(from, to));
            assert!(e.starts_with(why), "{e}");
        }
    }

    #[test]
    fn parses_oblivious_with_or_without_a_line_and_names_a_bad_field() {
        let text = "id: o\ntarget: { class: a.B, method: sum }\naction:\n  oblivious: {}\n";
        assert_eq!(PatchSpec::from_yaml(text, "p.yaml").unwrap().action, Action::Oblivious { line: None });
        let bare = text.replace("oblivious: {}", "oblivious:");
        assert_eq!(PatchSpec::from_yaml(&bare, "p.yaml").unwrap().action, Action::Oblivious { line: None });
        let line = text.replace("{}", "{ line: 12 }");
        assert_eq!(PatchSpec::from_yaml(&line, "p.yaml").unwrap().action, Action::Oblivious { line: Some(12) });
        assert_eq!(
            err(&text.replace("{}", "{ line: 0 }")),
            "p.yaml:4: action.oblivious.line: expected a source line number (1 to 65535)"
        );
        assert_eq!(
            err(&text.replace("{}", "{ line: twelve }")),
            "p.yaml:4: action.oblivious.line: expected a source line number (1 to 65535)"
        );
        assert_eq!(
            err(&text.replace("{}", "{ lines: 3 }")),
            "p.yaml:4: action.oblivious.lines: unknown field; expected one of: line"
        );
        assert_eq!(err(&text.replace("{}", "[3]")), "p.yaml:4: action.oblivious: expected a mapping (key: value)");
    }

    #[test]
    fn a_redefine_takes_the_whole_class_and_no_method() {
        let text = "id: r\ntarget: { class: a.B }\naction:\n  redefine: { class_file: B.class }\n";
        let s = PatchSpec::from_yaml(text, "r.yaml").unwrap();
        assert_eq!(s.action, Action::Redefine { class_file: "B.class".into(), original: Vec::new() });
        assert_eq!((s.site(), s.attachments_needed()), ("a.B".to_string(), vec!["B.class".to_string()]));
        assert_eq!(
            err(&text.replace("class: a.B", "class: a.B, method: run")),
            "p.yaml:2: target.method: a redefine replaces the whole class: give no method (a swap replaces one \
             method's body)"
        );
        assert_eq!(
            err(&text.replace("B.class }", "B.class, original: abc }")),
            "p.yaml:4: action.redefine.original: expected a SHA-256 in hex"
        );
        assert_eq!(
            err(&text.replace("redefine", "guard").replace("{ class_file: B.class }", "{}")),
            "p.yaml:2: target.method: missing"
        );
    }

    #[test]
    fn a_recursion_guard_needs_a_depth_and_a_fallback() {
        let text =
            "id: r\ntarget: { class: a.B, method: isOn }\naction:\n  recursion: { depth: 200, fallback: default }\n";
        let s = PatchSpec::from_yaml(text, "r.yaml").unwrap();
        assert_eq!(s.action, Action::Recursion { depth: 200, fallback: Fallback::Default });
        assert_eq!(s.action.summary(), "recursion deeper than 200 -> default");
        let with = |body: &str| err(&text.replace("{ depth: 200, fallback: default }", body));
        assert_eq!(
            with("{ depth: 0, fallback: default }"),
            "p.yaml:4: action.recursion.depth: expected a positive number"
        );
        assert_eq!(
            with("{ depth: -3, fallback: default }"),
            "p.yaml:4: action.recursion.depth: expected a positive number"
        );
        assert_eq!(
            with("{ depth: deep, fallback: default }"),
            "p.yaml:4: action.recursion.depth: expected a positive number"
        );
        assert_eq!(
            with("{ depth: 100001, fallback: default }"),
            "p.yaml:4: action.recursion.depth: 100001 is deeper than the limit of 100000"
        );
        assert_eq!(with("{ fallback: default }"), "p.yaml:4: action.recursion.depth: missing");
        assert_eq!(with("{ depth: 200 }"), "p.yaml:4: action.recursion.fallback: missing");
        assert_eq!(
            with("{ depth: 200, fallback: maybe }"),
            "p.yaml:4: action.recursion.fallback: expected default, null, {value: X}, {arg: N} or {method: pkg.Class.name}"
        );
        assert_eq!(
            with("{ depth: 200, fallback: default, window: 1s }"),
            "p.yaml:4: action.recursion.window: unknown field; expected one of: depth, fallback"
        );
        let deepest = PatchSpec::from_yaml(&text.replace("depth: 200", "depth: 100000"), "r.yaml").unwrap();
        assert_eq!(deepest.action, Action::Recursion { depth: 100_000, fallback: Fallback::Default });
        let value = PatchSpec::from_yaml(&text.replace("fallback: default", "fallback: { value: true }"), "r.yaml");
        assert_eq!(
            value.unwrap().action,
            Action::Recursion { depth: 200, fallback: Fallback::Constant(transform::Constant::Bool(true)) }
        );
    }
}
