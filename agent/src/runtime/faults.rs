//! Fault capture: a bounded, deduplicated log of the exceptions that escape application code.
//!
//! Two sources feed it. With `faults=jvmti`, the JVMTI `Exception` event, filtered here in native
//! code: an exception counts when it reaches application code (a frame outside the JDK) and is
//! uncaught, or caught by a generic handler (`Throwable`, `Exception`, `RuntimeException`,
//! `Error`) or by JDK code below the application frame (an executor's catch-all). Handlers of a
//! specific type are the program's normal control flow and are ignored, as are catch-any handlers
//! (`finally`, `synchronized`), which rethrow: the rethrow is seen as its own event. Handler types
//! come from the exception tables of the classes the ClassFileLoadHook saw. Without exception
//! events (the default, and always after attach), `Hooks.thrown` probes report instead.
//!
//! A fault is keyed by (exception class, throw site): the first application frame's class,
//! method, descriptor and bytecode index, and with exception events whether it is caught. At
//! most [`MAX_SITES`] are kept; when full, the site seen least recently is dropped and counted in
//! `dropped`.

use std::cell::Cell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::mpsc::SyncSender;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use repair_model::journal::now_ms;

use tokio::sync::broadcast;

use crate::jvm::{internal_name, Frame, Jni, Jvmti, Local, MethodId, Weak};

pub const MAX_SITES: usize = 1024;
pub const MAX_FRAMES: usize = 32;
/// A site already known is re-broadcast at most this often (its count still grows every time).
const UPDATE_INTERVAL: Duration = Duration::from_millis(250);
/// The policy engine hears of every one of a site's first occurrences, then of at most one every
/// this often (each carries the count, so none is lost): a fault storm must not wake the
/// engine's thread on every throw.
const NOTIFY_FIRST: u64 = 64;
const NOTIFY_INTERVAL: Duration = Duration::from_millis(5);
/// Bound of the method-info cache (cleared when full: method ids are cheap to look up again).
const MAX_METHODS: usize = 65_536;
/// Bound of the probes' fast-path cache (cleared when full: a cleared probe walks the stack once).
const MAX_PROBE_SITES: usize = 65_536;

/// The next free capture probe id. Capture probe ids are negative (patch report ids are
/// positive); every class gets a range of its own.
static NEXT_PROBE_ID: AtomicI64 = AtomicI64::new(i32::MIN as i64);
/// Bound of [`PROBE_RANGES`]: when full it is cleared, and classes rewritten again get fresh ranges.
const MAX_PROBE_RANGES: usize = 1 << 18;

/// [`repair_bytecode::transform::probe::methods_digest`] of a class → the first id of its range.
///
/// A class rewritten again (each apply and rollback retransforms it, and the hook adds the probes
/// again) gets the range it had: with a fresh range each time, every version's bytes held a new
/// `CONSTANT_Integer`, and HotSpot's RedefineClasses keeps every constant of the old pool in the
/// merged one (`VM_RedefineClasses::merge_constant_pools`), so the pool grew by one entry per
/// retransformation, each version's pool was one entry larger than the freed one, and metaspace
/// grew quadratically with apply/rollback cycles (bench/metaspace.txt). Classes of the same name
/// with the same methods in other loaders share the range: a probe's fault site is the method by
/// name (class, method, descriptor), the same in both.
static PROBE_RANGES: Mutex<Option<HashMap<u64, i32>>> = Mutex::new(None);

/// The first of `methods` capture probe ids for the class whose methods digest is `digest`: the
/// range it got before, or a fresh one; `None` once the ids are used up (2^31 methods rewritten
/// in one JVM), when classes load without probes.
pub fn probe_ids(methods: usize, digest: u64) -> Option<i32> {
    let mut ranges = PROBE_RANGES.lock().unwrap_or_else(|e| e.into_inner());
    let ranges = ranges.get_or_insert_with(HashMap::new);
    if let Some(&first) = ranges.get(&digest) {
        return Some(first);
    }
    let n = methods.max(1) as i64;
    let first = NEXT_PROBE_ID.fetch_add(n, Ordering::Relaxed);
    if first + n > 0 {
        return None;
    }
    if ranges.len() >= MAX_PROBE_RANGES {
        ranges.clear();
    }
    ranges.insert(digest, first as i32);
    Some(first as i32)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StackFrame {
    /// Dotted class name.
    pub class: String,
    pub method: String,
    pub descriptor: String,
    /// Bytecode index; -1 for a native method.
    pub bci: i64,
    /// Source line, when the class has a line-number table.
    pub line: Option<i32>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    /// Stable for the life of the JVM; assigned in order of first sight.
    pub id: u64,
    /// Dotted exception class name.
    pub exception: String,
    /// The exception class and its superclasses below `Object`, most specific first.
    pub exception_chain: Vec<String>,
    pub message: Option<String>,
    pub thread: String,
    /// The throw site: the innermost application frame.
    pub site: StackFrame,
    /// Innermost first, at most [`MAX_FRAMES`].
    pub stack: Vec<StackFrame>,
    /// Whether a handler catches it: known from exception events only (a bytecode probe runs
    /// before any caller's handler is chosen).
    pub caught: Option<bool>,
    pub count: u64,
    /// Milliseconds since the Unix epoch.
    pub first_seen_ms: u64,
    pub last_seen_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct SiteKey {
    exception: String,
    class: String,
    method: String,
    descriptor: String,
    /// The throwing instruction with exception events; -1 with probes (one site per method).
    bci: i64,
    /// Caught and uncaught occurrences of one throw site are two faults (exception events only).
    caught: Option<bool>,
}

struct Site {
    key: SiteKey,
    fault: Fault,
    last_broadcast: Instant,
    last_notified: Instant,
}

#[derive(Default)]
struct Store {
    /// Site → its fault id; the sites themselves by id (the probes' fast path counts by id,
    /// without hashing the key's strings).
    ids: HashMap<SiteKey, u64>,
    sites: HashMap<u64, Site>,
    next_id: u64,
    dropped: u64,
}

/// What the agent knows of a method, cached by method id.
#[derive(Debug)]
struct MethodInfo {
    /// Internal class name (`com/shop/PriceService`).
    class: String,
    name: String,
    descriptor: String,
    lines: Vec<(i64, i32)>,
}

impl MethodInfo {
    fn is_application(&self) -> bool {
        !is_jdk_or_agent_class(&self.class)
    }
    fn line_at(&self, bci: i64) -> Option<i32> {
        self.lines.iter().filter(|(start, _)| *start <= bci).max_by_key(|(start, _)| *start).map(|(_, l)| *l)
    }
    fn frame(&self, bci: i64) -> StackFrame {
        StackFrame {
            class: self.class.replace('/', "."),
            method: self.name.clone(),
            descriptor: self.descriptor.clone(),
            bci,
            line: self.line_at(bci),
        }
    }
}

/// Internal class names the agent treats as the platform, not the application.
pub fn is_jdk_or_agent_class(internal: &str) -> bool {
    ["java/", "javax/", "jdk/", "sun/", "com/sun/", "repair/rt/"].iter().any(|p| internal.starts_with(p))
}

/// Exception handlers of one method: `(handler bci, catch type)`; `None` is catch-any.
type Handlers = Vec<(u16, Option<String>)>;

pub struct FaultLog {
    store: Mutex<Store>,
    methods: Mutex<HashMap<MethodId, Arc<MethodInfo>>>,
    /// Internal class name → (method name + descriptor → handlers), from the class bytes seen.
    handlers: Mutex<HashMap<String, HashMap<String, Handlers>>>,
    /// Probe id → (exception class, the site it was recorded under) for each exception class
    /// seen leaving there: the probes' fast path. The class is held weakly (it may unload) and
    /// compared by identity, so two exception classes never share an entry.
    probe_sites: Mutex<HashMap<i32, Vec<(Weak, u64)>>>,
    updates: broadcast::Sender<Fault>,
    /// Told of every occurrence, for the policy engine; `None` without a policy.
    observer: RwLock<Option<SyncSender<Occurrence>>>,
}

/// How an occurrence was captured, which decides what is known of it.
#[derive(Debug, Clone, Copy)]
enum Seen {
    /// A JVMTI `Exception` event: the frame is at the throwing instruction, and whether a
    /// handler will catch the exception is known.
    Event { caught: bool },
    /// A bytecode exit probe: the frame is at the probe, after the throwing instruction.
    Probe,
}

/// One more occurrence of a fault, as the policy engine is told of it.
#[derive(Debug, Clone, Copy)]
pub struct Occurrence {
    pub fault_id: u64,
    /// The site's count with this occurrence (an observer that missed some sees the jump).
    pub count: u64,
    pub at: Instant,
    /// The recording thread's last guard fallback (report id, when), for outcome attribution.
    pub after_fallback: Option<(i32, Instant)>,
}

thread_local! {
    /// Set while this thread records a fault: exceptions thrown by what recording calls (e.g. a
    /// `getMessage` that throws) must not be recorded in turn.
    static RECORDING: Cell<bool> = const { Cell::new(false) };
    /// Identity hash of the exception this thread's throw probes last recorded.
    static LAST_THROWN: Cell<Option<i32>> = const { Cell::new(None) };
}

impl Default for FaultLog {
    fn default() -> Self {
        FaultLog {
            store: Mutex::default(),
            methods: Mutex::default(),
            handlers: Mutex::default(),
            probe_sites: Mutex::default(),
            updates: broadcast::channel(256).0,
            observer: RwLock::new(None),
        }
    }
}

impl FaultLog {
    /// New and updated faults, as they happen.
    pub fn subscribe(&self) -> broadcast::Receiver<Fault> {
        self.updates.subscribe()
    }

    /// Every occurrence from now on goes to `observer` (`None`: to nobody). A full channel drops
    /// the occurrence: the next one carries the count.
    pub fn observe(&self, observer: Option<SyncSender<Occurrence>>) {
        *self.observer.write().unwrap_or_else(|e| e.into_inner()) = observer;
    }

    fn notify(&self, fault_id: u64, count: u64) {
        if let Some(tx) = self.observer.read().unwrap_or_else(|e| e.into_inner()).as_ref() {
            // Full: the engine is behind and sees the jump in `count` next time; disconnected:
            // the policy is being replaced. Neither may slow the faulting thread.
            let after_fallback = super::hooks::last_fallback();
            let _ = tx.try_send(Occurrence { fault_id, count, at: Instant::now(), after_fallback });
        }
    }

    /// The fault with this id, if it is still kept.
    pub fn get(&self, id: u64) -> Option<Fault> {
        let store = self.store.lock().unwrap_or_else(|e| e.into_inner());
        store.sites.get(&id).map(|s| s.fault.clone())
    }

    /// All faults, most recently seen first, and how many sites were dropped for room.
    pub fn list(&self) -> (Vec<Fault>, u64) {
        let store = self.store.lock().unwrap_or_else(|e| e.into_inner());
        let mut v: Vec<Fault> = store.sites.values().map(|s| s.fault.clone()).collect();
        v.sort_by(|a, b| b.last_seen_ms.cmp(&a.last_seen_ms).then(a.id.cmp(&b.id)));
        (v, store.dropped)
    }

    /// Remembers the exception handlers of an application class from its bytes (called from the
    /// ClassFileLoadHook with the bytes the JVM will use), for classifying catch sites.
    pub fn note_class(&self, internal_name: &str, bytes: &[u8]) {
        if is_jdk_or_agent_class(internal_name) {
            return;
        }
        let Ok(cf) = repair_bytecode::ClassFile::parse(bytes) else { return };
        let mut methods = HashMap::new();
        for m in &cf.methods {
            let (Ok(name), Ok(desc)) = (cf.member_name(m), cf.member_descriptor(m)) else { continue };
            let Some(code) = cf.find_attribute(&m.attributes, "Code") else { continue };
            let handlers = exception_handlers(&code.data, |i| cf.pool.class_name(i).ok().map(|n| n.into_owned()));
            if !handlers.is_empty() {
                methods.insert(format!("{name}{desc}"), handlers);
            }
        }
        let mut all = self.handlers.lock().unwrap_or_else(|e| e.into_inner());
        if methods.is_empty() {
            all.remove(internal_name);
        } else {
            all.insert(internal_name.to_string(), methods);
        }
    }

    /// The JVMTI `Exception` event.
    pub fn on_exception(&self, jvmti: Jvmti, jni: &Jni<'_>, thrown: &Local<'_>, catch: Option<(MethodId, i64)>) {
        if RECORDING.with(Cell::get) {
            return;
        }
        RECORDING.with(|r| r.set(true));
        self.classify_and_record(jvmti, jni, thrown, catch);
        RECORDING.with(|r| r.set(false));
    }

    /// A `Hooks.thrown` probe with report id `probe_id`: the probed method exits by an
    /// exception. A (probe, exception class) seen before only counts, without walking the stack:
    /// a method that keeps failing must stay cheap.
    pub fn record_from_probe(&self, jvmti: Jvmti, jni: &Jni<'_>, probe_id: i32, thrown: &Local<'_>) {
        if RECORDING.with(Cell::get) {
            return;
        }
        // Throw probes sit on every application method: one exception unwinding through several
        // of them is one occurrence, recorded at the first (innermost) probe it passes.
        let identity = jvmti.object_hash(thrown).ok();
        if identity.is_some() && LAST_THROWN.with(Cell::get) == identity {
            return;
        }
        LAST_THROWN.with(|l| l.set(identity));
        RECORDING.with(|r| r.set(true));
        // A known (probe, exception class) is only counted: the class is compared by identity,
        // so the hot path makes no call back into Java for its name.
        let class = jni.object_class(thrown);
        let known = self.known_site(jni, probe_id, &class);
        let counted = known.is_some_and(|id| self.count_again(id));
        if !counted {
            if let Ok(frames) = jvmti.current_stack(MAX_FRAMES) {
                let infos = self.infos(jvmti, jni, &frames);
                if let Some(site) = infos.iter().position(|(i, _)| i.is_application()) {
                    let id = self.record(jvmti, jni, thrown, &infos, site, Seen::Probe);
                    self.remember_site(jni, probe_id, &class, id);
                }
            }
        }
        jni.delete_local_ref(class);
        RECORDING.with(|r| r.set(false));
    }

    fn known_site(&self, jni: &Jni<'_>, probe_id: i32, class: &Local<'_>) -> Option<u64> {
        let sites = self.probe_sites.lock().unwrap_or_else(|e| e.into_inner());
        sites.get(&probe_id)?.iter().find(|(c, _)| jni.is_same(c, class)).map(|(_, id)| *id)
    }

    fn remember_site(&self, jni: &Jni<'_>, probe_id: i32, class: &Local<'_>, id: u64) {
        let Some(weak) = jni.new_weak(class) else { return };
        let mut sites = self.probe_sites.lock().unwrap_or_else(|e| e.into_inner());
        if sites.len() >= MAX_PROBE_SITES {
            for (c, _) in sites.drain().flat_map(|(_, v)| v) {
                jni.delete_weak(c);
            }
        }
        let entry = sites.entry(probe_id).or_default();
        match entry.iter_mut().find(|(c, _)| jni.is_same(c, class)) {
            // Recorded anew after its site was dropped for room.
            Some((_, known)) => {
                *known = id;
                jni.delete_weak(weak);
            }
            None => entry.push((weak, id)),
        }
    }

    /// Counts one more occurrence of the fault `id`; `false` if its site was dropped meanwhile.
    fn count_again(&self, id: u64) -> bool {
        let now_ms = now_ms();
        let mut store = self.store.lock().unwrap_or_else(|e| e.into_inner());
        let Some(s) = store.sites.get_mut(&id) else { return false };
        s.fault.count += 1;
        s.fault.last_seen_ms = now_ms;
        let now = Instant::now();
        if now.duration_since(s.last_broadcast) >= UPDATE_INTERVAL {
            s.last_broadcast = now;
            // No receiver is not an error: nobody follows the faults right now.
            let _ = self.updates.send(s.fault.clone());
        }
        let notify = s.fault.count <= NOTIFY_FIRST || now.duration_since(s.last_notified) >= NOTIFY_INTERVAL;
        if notify {
            s.last_notified = now;
        }
        let (id, count) = (s.fault.id, s.fault.count);
        drop(store);
        if notify {
            self.notify(id, count);
        }
        true
    }

    fn classify_and_record(&self, jvmti: Jvmti, jni: &Jni<'_>, thrown: &Local<'_>, catch: Option<(MethodId, i64)>) {
        // A specific handler in application code is decided before walking the stack, which is
        // the dearer part.
        if let Some((catch_method, catch_bci)) = catch {
            let Some(info) = self.info(jvmti, jni, catch_method) else { return };
            if info.is_application() && !self.is_generic_handler(&info, catch_bci) {
                return;
            }
        }
        let Ok(frames) = jvmti.current_stack(MAX_FRAMES) else { return };
        let infos = self.infos(jvmti, jni, &frames);
        let Some(site) = infos.iter().position(|(i, _)| i.is_application()) else { return };
        if let Some((catch_method, _)) = catch {
            // Caught above the first application frame: the exception never reached the
            // application (JDK-internal control flow).
            if let Some(at) = frames.iter().position(|f| f.method == catch_method) {
                if at < site {
                    return;
                }
            }
        }
        self.record(jvmti, jni, thrown, &infos, site, Seen::Event { caught: catch.is_some() });
    }

    fn is_generic_handler(&self, info: &MethodInfo, handler_bci: i64) -> bool {
        let handlers = self.handlers.lock().unwrap_or_else(|e| e.into_inner());
        let key = format!("{}{}", info.name, info.descriptor);
        match handlers.get(&info.class).and_then(|m| m.get(&key)) {
            // A class the agent never saw load: count it rather than miss a fault.
            None => true,
            Some(list) => list.iter().filter(|(pc, _)| *pc as i64 == handler_bci).any(|(_, t)| {
                matches!(
                    t.as_deref(),
                    Some(
                        "java/lang/Throwable"
                            | "java/lang/Exception"
                            | "java/lang/RuntimeException"
                            | "java/lang/Error"
                    )
                )
            }),
        }
    }

    /// The current thread's stack, innermost first, as `pkg.Class.method:line`, without the
    /// agent's own frames (the method-name cache of fault capture is shared).
    pub fn current_stack_text(&self, jvmti: Jvmti, jni: &Jni<'_>) -> Vec<String> {
        let Ok(frames) = jvmti.current_stack(MAX_FRAMES) else { return Vec::new() };
        self.infos(jvmti, jni, &frames)
            .iter()
            .filter(|(info, _)| !info.class.starts_with("repair/rt/"))
            .map(|(info, bci)| {
                let f = info.frame(*bci);
                match f.line {
                    Some(line) => format!("{}.{}:{line}", f.class, f.method),
                    None => format!("{}.{}", f.class, f.method),
                }
            })
            .collect()
    }

    fn infos(&self, jvmti: Jvmti, jni: &Jni<'_>, frames: &[Frame]) -> Vec<(Arc<MethodInfo>, i64)> {
        frames.iter().filter_map(|f| self.info(jvmti, jni, f.method).map(|i| (i, f.bci))).collect()
    }

    fn info(&self, jvmti: Jvmti, jni: &Jni<'_>, m: MethodId) -> Option<Arc<MethodInfo>> {
        if let Some(i) = self.methods.lock().unwrap_or_else(|e| e.into_inner()).get(&m) {
            return Some(i.clone());
        }
        // Looked up without the lock: these JVMTI calls may run Java code on this thread.
        let (name, descriptor) = jvmti.method_name(m).ok()?;
        let class = jni.with_local_frame(2, |jni| {
            let c = jvmti.method_class(jni, m).ok()?;
            jvmti.class_signature(&c).ok()
        })?;
        let class = internal_name(&class).unwrap_or(&class).to_string();
        let lines = jvmti.line_numbers(m).unwrap_or_default();
        let info = Arc::new(MethodInfo { class, name, descriptor, lines });
        let mut methods = self.methods.lock().unwrap_or_else(|e| e.into_inner());
        if methods.len() >= MAX_METHODS {
            methods.clear();
        }
        methods.insert(m, info.clone());
        Some(info)
    }

    /// Records one occurrence at `infos[site]`; returns its fault id.
    fn record(
        &self,
        jvmti: Jvmti,
        jni: &Jni<'_>,
        thrown: &Local<'_>,
        infos: &[(Arc<MethodInfo>, i64)],
        site: usize,
        seen: Seen,
    ) -> u64 {
        let exception = jni.class_name_of_object(thrown);
        let (info, bci) = &infos[site];
        let caught = match seen {
            Seen::Event { caught } => Some(caught),
            Seen::Probe => None,
        };
        let key = SiteKey {
            exception,
            class: info.class.clone(),
            method: info.name.clone(),
            descriptor: info.descriptor.clone(),
            // A probe's bci is its own handler's, which moves when a patch rewrites the method:
            // the site must stay one fault across patches (validation counts it), so it is the
            // method. Exception events give the throwing instruction itself.
            bci: match seen {
                Seen::Event { .. } => *bci,
                Seen::Probe => -1,
            },
            caught,
        };
        let known = self.store.lock().unwrap_or_else(|e| e.into_inner()).ids.get(&key).copied();
        if let Some(id) = known.filter(|id| self.count_again(*id)) {
            return id;
        }
        let now_ms = now_ms();
        // A new site: gather the rest without holding the lock (these call into the JVM).
        let message = jni.throwable_message(thrown);
        let exception_chain = jni.class_chain_of_object(thrown, 16);
        let thread = jvmti.current_thread_name(jni).unwrap_or_else(|_| "?".to_string());
        let mut stack: Vec<StackFrame> = infos.iter().map(|(i, b)| i.frame(*b)).collect();
        if let Seen::Probe = seen {
            // The probe's bci says nothing of the line that threw; the exception's own trace does.
            let frame = &mut stack[site];
            frame.line = jni.throwable_line(thrown, &frame.class, &frame.method);
        }
        let mut store = self.store.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(id) = store.ids.get(&key).copied() {
            // Another thread recorded it meanwhile.
            drop(store);
            self.count_again(id);
            return id;
        }
        if store.sites.len() >= MAX_SITES {
            let oldest = store.sites.values().min_by_key(|s| s.fault.last_seen_ms).map(|s| s.fault.id);
            if let Some(gone) = oldest.and_then(|id| store.sites.remove(&id)) {
                store.ids.remove(&gone.key);
                store.dropped += 1;
            }
        }
        store.next_id += 1;
        let fault = Fault {
            id: store.next_id,
            exception: key.exception.clone(),
            exception_chain,
            message,
            thread,
            site: stack[site].clone(),
            stack,
            caught,
            count: 1,
            first_seen_ms: now_ms,
            last_seen_ms: now_ms,
        };
        let _ = self.updates.send(fault.clone());
        let id = fault.id;
        store.ids.insert(key.clone(), id);
        store.sites.insert(id, Site { key, fault, last_broadcast: Instant::now(), last_notified: Instant::now() });
        drop(store);
        self.notify(id, 1);
        id
    }
}

/// The exception table of a `Code` attribute body: `(handler_pc, catch type)`.
fn exception_handlers(code: &[u8], class_name: impl Fn(u16) -> Option<String>) -> Handlers {
    let u16_at = |i: usize| code.get(i..i + 2).map(|b| u16::from_be_bytes([b[0], b[1]]));
    let Some(len) = code.get(4..8).map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize) else {
        return Vec::new();
    };
    let table = 8 + len;
    let Some(n) = u16_at(table) else { return Vec::new() };
    (0..n as usize)
        .filter_map(|i| {
            let e = table + 2 + i * 8;
            let handler = u16_at(e + 4)?;
            let catch_type = u16_at(e + 6)?;
            Some((handler, if catch_type == 0 { None } else { class_name(catch_type) }))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platform_classes_are_not_application_classes() {
        for c in ["java/lang/String", "javax/x/Y", "jdk/internal/Z", "sun/misc/U", "com/sun/A", "repair/rt/Hooks"] {
            assert!(is_jdk_or_agent_class(c), "{c}");
        }
        for c in ["com/shop/PriceService", "javafx/Foo", "Main", "sunny/Day"] {
            assert!(!is_jdk_or_agent_class(c), "{c}");
        }
    }

    #[test]
    fn exception_table_is_read_from_a_code_attribute() {
        // max_stack, max_locals, code_length=2, code, 2 entries, no attributes.
        let mut code = vec![0, 1, 0, 1, 0, 0, 0, 2, 0x03, 0xac, 0, 2];
        code.extend_from_slice(&[0, 0, 0, 1, 0, 9, 0, 5]);
        code.extend_from_slice(&[0, 0, 0, 1, 0, 11, 0, 0]);
        code.extend_from_slice(&[0, 0]);
        let h = exception_handlers(&code, |i| (i == 5).then(|| "java/lang/Exception".to_string()));
        assert_eq!(h, vec![(9, Some("java/lang/Exception".to_string())), (11, None)]);
        assert!(exception_handlers(&[0, 1], |_| None).is_empty(), "truncated input yields nothing");
    }

    #[test]
    fn a_class_rewritten_again_gets_the_probe_ids_it_had() {
        // Digests no other test uses (the ranges are process-wide).
        let (a, b) = (0x5eed_0000_0000_0001, 0x5eed_0000_0000_0002);
        let first = probe_ids(3, a).unwrap();
        assert_eq!(probe_ids(3, a), Some(first), "the same class again: the same range");
        let other = probe_ids(4, b).unwrap();
        assert!(other >= first + 3 || other + 4 <= first, "another class: a range of its own");
        assert_eq!(probe_ids(4, b), Some(other));
    }

    #[test]
    fn line_lookup_takes_the_last_entry_at_or_before_the_bci() {
        let m = MethodInfo {
            class: "A".into(),
            name: "m".into(),
            descriptor: "()V".into(),
            lines: vec![(0, 10), (5, 11), (9, 12)],
        };
        assert_eq!(m.line_at(0), Some(10));
        assert_eq!(m.line_at(7), Some(11));
        assert_eq!(m.line_at(40), Some(12));
        assert_eq!(MethodInfo { lines: vec![], ..m }.line_at(3), None);
    }
}
