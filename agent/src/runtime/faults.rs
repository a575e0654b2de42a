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
//! `dropped`. The application is what a policy's `application:` globs name when a policy is in
//! force and a frame matches them, otherwise every class outside the JDK and the agent.
//!
//! One exception object is one occurrence: the last [`MAX_RECENT`] exceptions recorded are
//! remembered across threads, and one seen again (rethrown, or unwinding through more probed
//! frames) is not recorded again. The JDK's wrappers (`InvocationTargetException`,
//! `ExecutionException`, `UndeclaredThrowableException`, `CompletionException`) are looked
//! through to the exception they carry: a wrapper of an exception already recorded is that fault,
//! one of an exception never recorded is recorded as that exception, at the site its own stack
//! trace names. The agent's own frames (`repair.rt.Hooks`, where bytecode capture records from)
//! are left out of every stack.
//!
//! An exception about to end its thread (it leaves the thread's outermost frame, or its exception
//! event has no catch location) makes that thread wait, bounded, while a policy is in force, for
//! the engine to handle its fault: a durable repair must reach the journal before the JVM may die.

use std::cell::Cell;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::mpsc::SyncSender;
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::time::{Duration, Instant};

use repair_model::journal::now_ms;

use tokio::sync::broadcast;

use crate::jvm::{internal_name, Frame, Jni, Jvmti, Local, MethodId, TraceElement, Weak};
use crate::runtime::IntMap;

pub const MAX_SITES: usize = 1024;
pub const MAX_FRAMES: usize = 32;
/// Classes whose exits by exception are faults: not the JDK's, not the agent's own.
pub fn is_application_class(name: &str) -> bool {
    const SYSTEM: [&str; 9] =
        ["java/", "javax/", "jdk/", "sun/", "com/sun/", "repair/rt/", "org/w3c/", "org/xml/", "org/ietf/"];
    !SYSTEM.iter().any(|p| name.starts_with(p))
}

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
/// How many recorded exceptions are remembered to recognise them when they are seen again: an
/// exception rethrown after this many others were recorded counts once more.
const MAX_RECENT: usize = 256;
/// How deep wrappers are looked through (a wrapper of a wrapper of ...).
const MAX_WRAPPED: usize = 8;
/// How long a thread that a fault is about to end waits for the policy engine to have handled
/// it (decided, applied, journaled): long enough for an apply and an fsync on a loaded host,
/// short enough that a dying thread (or JVM) is not held up noticeably if the engine is stuck.
const ENDING_WAIT: Duration = Duration::from_secs(2);
/// Frames a probed method may have around it and still be its thread's outermost: the probe's
/// `Hooks.thrown`, the method, and `java.lang.Thread`'s own (`run`, `runWith`).
const MAX_ENDING_FRAMES: usize = 5;

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
    /// From an exception's own stack trace (a wrapped exception thrown where it was not
    /// recorded), which names methods without descriptors, it is looked up by name and line:
    /// empty when that fails.
    pub descriptor: String,
    /// Bytecode index; -1 for a native method. From an exception's own stack trace, which has
    /// lines only, the first instruction of the line (0 when unknown).
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
    /// The throw site: the innermost application frame (of the wrapped exception's own stack
    /// trace for a wrapper whose cause was not recorded).
    pub site: StackFrame,
    /// Innermost first, at most [`MAX_FRAMES`].
    pub stack: Vec<StackFrame>,
    /// The method the site was calling when the exception was thrown (its name: a stack trace
    /// names no descriptor), from the exception's own trace; `None` when the site's own code threw.
    pub call: Option<String>,
    /// Whether a handler catches it: known from exception events only (a bytecode probe runs
    /// before any caller's handler is chosen).
    pub caught: Option<bool>,
    pub count: u64,
    /// Milliseconds since the Unix epoch.
    pub first_seen_ms: u64,
    pub last_seen_ms: u64,
}

impl Fault {
    /// The exception class and its superclasses, most specific first; the class alone when the
    /// chain could not be read.
    pub fn chain(&self) -> std::borrow::Cow<'_, [String]> {
        match self.exception_chain.is_empty() {
            true => std::borrow::Cow::Owned(vec![self.exception.clone()]),
            false => std::borrow::Cow::Borrowed(&self.exception_chain),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct SiteKey {
    exception: String,
    /// Dotted.
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
        is_application_class(&self.class)
    }
    fn is_agent(&self) -> bool {
        self.class.starts_with("repair/rt/")
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
    /// Set when the application changed: the probes' fast path may name sites chosen by the
    /// old one, so the next probe clears it (it holds weak references: freeing them needs JNI).
    probe_sites_stale: AtomicBool,
    /// The exceptions recorded lately, across threads, by identity hash (compared first, cheaply)
    /// and weak reference (compared when the hash matches, and not keeping them alive), oldest
    /// first. Weak references rather than JVMTI object tags: no capability to ask for (tags need
    /// `can_tag_objects`, which an attach may not get), and the identity hash the probes already
    /// take narrows the search to one `IsSameObject` at most.
    recent: Mutex<Recent>,
    /// The policy's `application:` globs (dotted class names); empty without a policy.
    application: RwLock<Vec<String>>,
    updates: broadcast::Sender<Fault>,
    /// Told of every occurrence, for the policy engine; `None` without a policy.
    observer: RwLock<Option<SyncSender<Occurrence>>>,
    /// Tickets of the threads waiting for the engine to handle the fault that ends them
    /// ([`Occurrence::ending`]); the engine removes a ticket and wakes them.
    ending: Mutex<HashSet<u64>>,
    ending_handled: Condvar,
    next_ticket: AtomicU64,
}

/// The exceptions recorded lately, oldest first, and how many of them have each identity hash.
#[derive(Default)]
struct Recent {
    order: VecDeque<(i32, Weak)>,
    hashes: IntMap<u16>,
}

/// Whether a handler's catch type (internal or dotted name) catches anything: `Throwable`,
/// `Exception`, `RuntimeException` or `Error`, as a request loop's last resort does. Such a
/// handler says nothing of whether the application expected the exception.
pub fn is_catch_all(catch_type: &str) -> bool {
    matches!(
        catch_type.strip_prefix("java/lang/").or_else(|| catch_type.strip_prefix("java.lang.")),
        Some("Throwable" | "Exception" | "RuntimeException" | "Error")
    )
}

/// What an exception is to the fault log.
enum Subject<'a> {
    /// It, or the exception it wraps, was recorded already: not a new occurrence.
    Recorded,
    /// Recorded as itself.
    Itself,
    /// A wrapper whose innermost wrapped exception was never recorded: recorded as that one.
    Wrapped(Local<'a>),
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
    /// Not a new occurrence: the fault is about to end its thread, which waits (bounded) until
    /// the engine hands this ticket to [`FaultLog::ending_handled`].
    pub ending: Option<u64>,
}

thread_local! {
    /// Set while this thread records a fault: exceptions thrown by what recording calls (e.g. a
    /// `getMessage` that throws) must not be recorded in turn.
    static RECORDING: Cell<bool> = const { Cell::new(false) };
    /// Identity hash of the exception this thread's throw probes last recorded.
    static LAST_THROWN: Cell<Option<i32>> = const { Cell::new(None) };
    /// The exception this thread last recorded (identity hash) and its fault id: an exception
    /// about to end the thread is recognised by it where it leaves the outermost frame.
    static LAST_RECORDED: Cell<Option<(i32, u64)>> = const { Cell::new(None) };
    /// Set on the engine's own thread, which must never wait for itself.
    static NEVER_WAIT: Cell<bool> = const { Cell::new(false) };
}

/// This thread never waits for the engine when a fault ends it: it is the engine's.
pub fn never_wait_on_this_thread() {
    NEVER_WAIT.with(|n| n.set(true));
}

/// Remembers that this thread recorded the exception `identity` as fault `id`.
fn recorded_here(identity: Option<i32>, id: Option<u64>) {
    if let (Some(hash), Some(id)) = (identity, id) {
        LAST_RECORDED.with(|l| l.set(Some((hash, id))));
    }
}

impl Default for FaultLog {
    fn default() -> Self {
        FaultLog {
            store: Mutex::default(),
            methods: Mutex::default(),
            handlers: Mutex::default(),
            probe_sites: Mutex::default(),
            probe_sites_stale: AtomicBool::new(false),
            recent: Mutex::default(),
            application: RwLock::default(),
            updates: broadcast::channel(256).0,
            observer: RwLock::new(None),
            ending: Mutex::default(),
            ending_handled: Condvar::new(),
            next_ticket: AtomicU64::new(0),
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

    /// The application's classes from now on: those `globs` (dotted) match; empty: every class
    /// outside the JDK and the agent. A policy in force hands its `application:` over.
    pub fn set_application(&self, globs: &[String]) {
        let mut application = self.application.write().unwrap_or_else(|e| e.into_inner());
        if *application != globs {
            *application = globs.to_vec();
            self.probe_sites_stale.store(true, Ordering::Relaxed);
        }
    }

    /// The throw site among `infos`: the innermost frame the application's globs match, or when
    /// none does (or there are none), the innermost frame outside the JDK and the agent.
    fn site_of(&self, infos: &[(Arc<MethodInfo>, i64)]) -> Option<usize> {
        self.application_index(infos.iter().map(|(i, _)| i.class.as_str()))
    }

    /// [`FaultLog::site_of`] over internal class names, innermost first.
    fn application_index<'s>(&self, classes: impl Iterator<Item = &'s str> + Clone) -> Option<usize> {
        let application = self.application.read().unwrap_or_else(|e| e.into_inner());
        let in_globs = |internal: &str| {
            let dotted = internal.replace('/', ".");
            application.iter().any(|g| repair_model::glob::matches(g, &dotted))
        };
        let globbed = match application.is_empty() {
            true => None,
            false => classes.clone().position(|c| is_application_class(c) && in_globs(c)),
        };
        globbed.or_else(|| classes.clone().position(is_application_class))
    }

    fn notify(&self, fault_id: u64, count: u64) {
        if let Some(tx) = self.observer.read().unwrap_or_else(|e| e.into_inner()).as_ref() {
            // Full: the engine is behind and sees the jump in `count` next time; disconnected:
            // the policy is being replaced. Neither may slow the faulting thread.
            let after_fallback = super::hooks::last_fallback();
            let _ = tx.try_send(Occurrence { fault_id, count, at: Instant::now(), after_fallback, ending: None });
        }
    }

    /// `thrown`, about to end this thread, leaves its outermost frame: when this thread recorded
    /// it and a policy is in force, waits (at most [`ENDING_WAIT`]) until the engine has handled
    /// it. The ticket goes through the engine's channel after the fault's own occurrences, so
    /// by then the decision for them is carried out. Holds no lock while it waits.
    fn await_ending(&self, jvmti: Jvmti, thrown: &Local<'_>) {
        if NEVER_WAIT.with(Cell::get) {
            return;
        }
        let Some(tx) = self.observer.read().unwrap_or_else(|e| e.into_inner()).clone() else { return };
        let identity = jvmti.object_hash(thrown).ok();
        let recorded = LAST_RECORDED.with(Cell::get).filter(|(hash, _)| Some(*hash) == identity);
        let Some((_, fault_id)) = recorded else { return };
        let ticket = self.next_ticket.fetch_add(1, Ordering::Relaxed) + 1;
        self.ending.lock().unwrap_or_else(|e| e.into_inner()).insert(ticket);
        let sent = tx.try_send(Occurrence {
            fault_id,
            count: 0,
            at: Instant::now(),
            after_fallback: None,
            ending: Some(ticket),
        });
        drop(tx);
        let ending = self.ending.lock().unwrap_or_else(|e| e.into_inner());
        let mut ending = match sent {
            Ok(()) => {
                self.ending_handled
                    .wait_timeout_while(ending, ENDING_WAIT, |e| e.contains(&ticket))
                    .unwrap_or_else(|e| e.into_inner())
                    .0
            }
            // The engine is behind or gone: the thread does not wait for it.
            Err(_) => ending,
        };
        ending.remove(&ticket);
    }

    /// The engine handled the fault that ends the thread holding `ticket`: that thread goes on.
    pub fn ending_handled(&self, ticket: u64) {
        self.ending.lock().unwrap_or_else(|e| e.into_inner()).remove(&ticket);
        self.ending_handled.notify_all();
    }

    /// Whether the method whose exit probe runs now is its thread's outermost: only the probe's
    /// own frame is inside it and only `java.lang.Thread`'s (which catch nothing) outside it, so
    /// nothing can catch the exception leaving it. At most one frame more than an ending stack
    /// has is read: a deep stack (a recursion unwinding, probe after probe) costs no more than a
    /// shallow one (counting all its frames would cost each probe the whole depth).
    fn probed_method_is_outermost(&self, jvmti: Jvmti, jni: &Jni<'_>) -> bool {
        let Ok(frames) = jvmti.current_stack(MAX_ENDING_FRAMES + 1) else { return false };
        if frames.len() > MAX_ENDING_FRAMES {
            return false;
        }
        let infos = self.infos(jvmti, jni, &frames);
        // Every frame but the probe's must be known: one that is not might catch.
        infos.len() + 1 == frames.len()
            && infos.get(1..).is_some_and(|outer| outer.iter().all(|(i, _)| i.class == "java/lang/Thread"))
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
        if !is_application_class(internal_name) {
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
        // No handler anywhere on the stack: the exception ends the thread.
        if catch.is_none() {
            self.await_ending(jvmti, thrown);
        }
    }

    /// A `Hooks.thrown` probe with report id `probe_id`: the probed method exits by an
    /// exception. A (probe, exception class) seen before only counts, without walking the stack:
    /// a method that keeps failing must stay cheap.
    /// An exception leaving the thread's outermost frame ends it: the thread waits for the
    /// engine to handle the fault first ([`FaultLog::await_ending`]).
    pub fn record_from_probe(&self, jvmti: Jvmti, jni: &Jni<'_>, probe_id: i32, thrown: &Local<'_>) {
        if RECORDING.with(Cell::get) {
            return;
        }
        self.record_probe_exit(jvmti, jni, probe_id, thrown);
        let policy = self.observer.read().unwrap_or_else(|e| e.into_inner()).is_some();
        if policy && self.probed_method_is_outermost(jvmti, jni) {
            self.await_ending(jvmti, thrown);
        }
    }

    fn record_probe_exit(&self, jvmti: Jvmti, jni: &Jni<'_>, probe_id: i32, thrown: &Local<'_>) {
        // Throw probes sit on every application method: one exception unwinding through several
        // of them is one occurrence, recorded at the first (innermost) probe it passes. This
        // thread's last one is recognised by its hash alone, before any lock is taken.
        let identity = jvmti.object_hash(thrown).ok();
        if identity.is_some() && LAST_THROWN.with(Cell::get) == identity {
            return;
        }
        LAST_THROWN.with(|l| l.set(identity));
        RECORDING.with(|r| r.set(true));
        if self.probe_sites_stale.swap(false, Ordering::Relaxed) {
            self.forget_probe_sites(jni);
        }
        jni.with_local_frame(MAX_WRAPPED as i32 + 8, |jni| match self.subject(jvmti, jni, thrown, identity) {
            Subject::Recorded => {}
            Subject::Itself => {
                recorded_here(identity, self.record_probed(jvmti, jni, probe_id, thrown));
                self.remember(jni, identity, thrown);
            }
            Subject::Wrapped(cause) => {
                if let Ok(frames) = jvmti.current_stack(MAX_FRAMES) {
                    let infos = self.infos(jvmti, jni, &frames);
                    recorded_here(identity, self.record_wrapped(jvmti, jni, &cause, &frames, &infos, Seen::Probe));
                }
                self.remember(jni, identity, thrown);
                self.remember(jni, jvmti.object_hash(&cause).ok(), &cause);
            }
        });
        RECORDING.with(|r| r.set(false));
    }

    /// Records one exit by `thrown`; its fault id, unless no frame is the application's.
    fn record_probed(&self, jvmti: Jvmti, jni: &Jni<'_>, probe_id: i32, thrown: &Local<'_>) -> Option<u64> {
        // A known (probe, exception class) is only counted: the class is compared by identity,
        // so the hot path makes no call back into Java for its name.
        let class = jni.object_class(thrown);
        let known = self.known_site(jni, probe_id, &class);
        if let Some(id) = known.filter(|id| self.count_again(*id)) {
            return Some(id);
        }
        let frames = jvmti.current_stack(MAX_FRAMES).ok()?;
        let infos = self.infos(jvmti, jni, &frames);
        let site = self.site_of(&infos)?;
        let id = self.record(jvmti, jni, thrown, &infos, site, Seen::Probe);
        self.remember_site(jni, probe_id, &class, id);
        Some(id)
    }

    /// Whether `thrown` is a new occurrence, one already recorded (itself or what it wraps), or
    /// a wrapper to record as what it wraps.
    fn subject<'a>(&self, jvmti: Jvmti, jni: &Jni<'a>, thrown: &Local<'_>, identity: Option<i32>) -> Subject<'a> {
        if self.was_recorded(jni, identity, thrown) {
            return Subject::Recorded;
        }
        let mut wrapped: Option<Local<'a>> = None;
        for _ in 0..MAX_WRAPPED {
            let Some(cause) = jni.wrapped_cause(wrapped.as_ref().unwrap_or(thrown)) else { break };
            if self.was_recorded(jni, jvmti.object_hash(&cause).ok(), &cause) {
                // Seen again as it unwinds further, the wrapper is known at once.
                self.remember(jni, identity, thrown);
                return Subject::Recorded;
            }
            wrapped = Some(cause);
        }
        match wrapped {
            Some(cause) => Subject::Wrapped(cause),
            None => Subject::Itself,
        }
    }

    fn was_recorded(&self, jni: &Jni<'_>, identity: Option<i32>, thrown: &Local<'_>) -> bool {
        let Some(hash) = identity else { return false };
        let recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        // Most exceptions are new: one lookup says so, without a pass over the whole table.
        recent.hashes.contains_key(&hash)
            && recent.order.iter().any(|(h, weak)| *h == hash && jni.is_same(weak, thrown))
    }

    /// Remembers `thrown` as recorded, forgetting the oldest when full.
    fn remember(&self, jni: &Jni<'_>, identity: Option<i32>, thrown: &Local<'_>) {
        let Some(hash) = identity else { return };
        let Some(weak) = jni.new_weak(thrown) else { return };
        let mut recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        if recent.order.len() >= MAX_RECENT {
            if let Some((oldest_hash, oldest)) = recent.order.pop_front() {
                if let Some(n) = recent.hashes.get_mut(&oldest_hash) {
                    *n -= 1;
                    if *n == 0 {
                        recent.hashes.remove(&oldest_hash);
                    }
                }
                jni.delete_weak(oldest);
            }
        }
        recent.order.push_back((hash, weak));
        *recent.hashes.entry(hash).or_insert(0) += 1;
    }

    fn forget_probe_sites(&self, jni: &Jni<'_>) {
        let mut sites = self.probe_sites.lock().unwrap_or_else(|e| e.into_inner());
        for (c, _) in sites.drain().flat_map(|(_, v)| v) {
            jni.delete_weak(c);
        }
    }

    fn known_site(&self, jni: &Jni<'_>, probe_id: i32, class: &Local<'_>) -> Option<u64> {
        let sites = self.probe_sites.lock().unwrap_or_else(|e| e.into_inner());
        sites.get(&probe_id)?.iter().find(|(c, _)| jni.is_same(c, class)).map(|(_, id)| *id)
    }

    fn remember_site(&self, jni: &Jni<'_>, probe_id: i32, class: &Local<'_>, id: u64) {
        let Some(weak) = jni.new_weak(class) else { return };
        let mut sites = self.probe_sites.lock().unwrap_or_else(|e| e.into_inner());
        if sites.len() >= MAX_PROBE_SITES {
            drop(sites);
            self.forget_probe_sites(jni);
            sites = self.probe_sites.lock().unwrap_or_else(|e| e.into_inner());
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
        let Some(site) = self.site_of(&infos) else { return };
        if let Some((catch_method, _)) = catch {
            // Caught above the first application frame: the exception never reached the
            // application (JDK-internal control flow).
            if let Some(at) = frames.iter().position(|f| f.method == catch_method) {
                if at < site {
                    return;
                }
            }
        }
        let seen = Seen::Event { caught: catch.is_some() };
        jni.with_local_frame(MAX_WRAPPED as i32 + 4, |jni| {
            let identity = jvmti.object_hash(thrown).ok();
            match self.subject(jvmti, jni, thrown, identity) {
                Subject::Recorded => {}
                Subject::Itself => {
                    recorded_here(identity, Some(self.record(jvmti, jni, thrown, &infos, site, seen)));
                    self.remember(jni, identity, thrown);
                }
                Subject::Wrapped(cause) => {
                    recorded_here(identity, self.record_wrapped(jvmti, jni, &cause, &frames, &infos, seen));
                    self.remember(jni, identity, thrown);
                    self.remember(jni, jvmti.object_hash(&cause).ok(), &cause);
                }
            }
        });
    }

    fn is_generic_handler(&self, info: &MethodInfo, handler_bci: i64) -> bool {
        let handlers = self.handlers.lock().unwrap_or_else(|e| e.into_inner());
        let key = format!("{}{}", info.name, info.descriptor);
        match handlers.get(&info.class).and_then(|m| m.get(&key)) {
            // A class the agent never saw load: count it rather than miss a fault.
            None => true,
            Some(list) => list
                .iter()
                .filter(|(pc, _)| *pc as i64 == handler_bci)
                .any(|(_, t)| t.as_deref().is_some_and(is_catch_all)),
        }
    }

    /// The current thread's stack, innermost first, as `pkg.Class.method:line`, without the
    /// agent's own frames (the method-name cache of fault capture is shared).
    pub fn current_stack_text(&self, jvmti: Jvmti, jni: &Jni<'_>) -> Vec<String> {
        let Ok(frames) = jvmti.current_stack(MAX_FRAMES) else { return Vec::new() };
        self.infos(jvmti, jni, &frames)
            .iter()
            .map(|(info, bci)| {
                let f = info.frame(*bci);
                match f.line {
                    Some(line) => format!("{}.{}:{line}", f.class, f.method),
                    None => format!("{}.{}", f.class, f.method),
                }
            })
            .collect()
    }

    /// What is known of `frames`, without the agent's own (a probe's call into `Hooks`).
    fn infos(&self, jvmti: Jvmti, jni: &Jni<'_>, frames: &[Frame]) -> Vec<(Arc<MethodInfo>, i64)> {
        frames
            .iter()
            .filter_map(|f| self.info(jvmti, jni, f.method).map(|i| (i, f.bci)))
            .filter(|(i, _)| !i.is_agent())
            .collect()
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
        let (info, bci) = &infos[site];
        let site_frame = info.frame(*bci);
        // A probe's bci is its own handler's, which moves when a patch rewrites the method: the
        // site must stay one fault across patches (validation counts it), so it is the method.
        // Exception events give the throwing instruction itself.
        let key_bci = match seen {
            Seen::Event { .. } => *bci,
            Seen::Probe => -1,
        };
        self.record_at(jvmti, jni, thrown, &site_frame, key_bci, seen, || {
            let mut stack: Vec<StackFrame> = infos.iter().map(|(i, b)| i.frame(*b)).collect();
            let call = match seen {
                // The stack is the throw's own: the frame inside the site is the call it made.
                Seen::Event { .. } => site.checked_sub(1).map(|i| stack[i].method.clone()),
                // The probe's bci says nothing of the line that threw, and the frames inside the
                // site are gone; the exception's trace has both.
                Seen::Probe => {
                    let trace = jni.throwable_trace(thrown);
                    let frame = &mut stack[site];
                    let at = trace.iter().position(|e| e.class == frame.class && e.method == frame.method);
                    frame.line = at.and_then(|i| trace[i].line).filter(|l| *l > 0);
                    at.and_then(|i| i.checked_sub(1)).map(|i| trace[i].method.clone())
                }
            };
            (stack, site, call)
        })
    }

    /// Records `cause`, the exception a wrapper carries that was never recorded itself, at the
    /// site its own stack trace names (it may have been thrown on another thread); when its trace
    /// has no application frame, at the site of the current stack `infos` (of `frames`).
    fn record_wrapped(
        &self,
        jvmti: Jvmti,
        jni: &Jni<'_>,
        cause: &Local<'_>,
        frames: &[Frame],
        infos: &[(Arc<MethodInfo>, i64)],
        seen: Seen,
    ) -> Option<u64> {
        let trace = jni.throwable_trace(cause);
        let internal: Vec<String> = trace.iter().map(|e| e.class.replace('.', "/")).collect();
        let Some(site) = self.application_index(internal.iter().map(String::as_str)) else {
            let site = self.site_of(infos)?;
            return Some(self.record(jvmti, jni, cause, infos, site, seen));
        };
        let frame = |e: &TraceElement| StackFrame {
            class: e.class.clone(),
            method: e.method.clone(),
            descriptor: String::new(),
            bci: if e.native { -1 } else { 0 },
            line: e.line.filter(|l| *l > 0),
        };
        // Keyed without the descriptor (the trace has none): looking it up is for new faults only.
        let site_frame = frame(&trace[site]);
        Some(self.record_at(jvmti, jni, cause, &site_frame, -1, seen, || {
            let mut stack: Vec<StackFrame> = trace.iter().take(MAX_FRAMES.max(site + 1)).map(frame).collect();
            jni.with_local_frame(4, |jni| {
                // The classes of the trace as the application here sees them.
                let app_method = frames
                    .iter()
                    .map(|f| f.method)
                    .find(|m| self.info(jvmti, jni, *m).is_some_and(|i| i.is_application()));
                let Some(class) = app_method.and_then(|m| jvmti.method_class(jni, m).ok()) else { return };
                let Ok(loader) = jvmti.class_loader(jni, &class) else { return };
                for f in stack.iter_mut().filter(|f| f.bci >= 0) {
                    if let Some((descriptor, bci)) = method_in_trace(jvmti, jni, &loader, f) {
                        (f.descriptor, f.bci) = (descriptor, bci);
                    }
                }
            });
            let call = site.checked_sub(1).map(|i| trace[i].method.clone());
            (stack, site, call)
        }))
    }

    /// Records one occurrence of `thrown` at `site` (the bci in the key: `key_bci`); `stack`
    /// gives the whole stack, the site's index in it and the call the site made that threw, asked
    /// for only for a new fault.
    #[allow(clippy::too_many_arguments)]
    fn record_at(
        &self,
        jvmti: Jvmti,
        jni: &Jni<'_>,
        thrown: &Local<'_>,
        site: &StackFrame,
        key_bci: i64,
        seen: Seen,
        stack: impl FnOnce() -> (Vec<StackFrame>, usize, Option<String>),
    ) -> u64 {
        let caught = match seen {
            Seen::Event { caught } => Some(caught),
            Seen::Probe => None,
        };
        let key = SiteKey {
            exception: jni.class_name_of_object(thrown),
            class: site.class.clone(),
            method: site.method.clone(),
            descriptor: site.descriptor.clone(),
            bci: key_bci,
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
        let (stack, site, call) = stack();
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
            call,
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

/// The descriptor of the method a stack trace element names (which has its name only), and the
/// first bci of its line: the one method of that name in the class as `loader` finds it, or the
/// overload whose line table holds the line. Runs `Class.forName` (the class is loaded already).
fn method_in_trace(jvmti: Jvmti, jni: &Jni<'_>, loader: &Local<'_>, frame: &StackFrame) -> Option<(String, i64)> {
    jni.with_local_frame(4, |jni| {
        let class = jni.class_for_name(&frame.class, loader).ok()?;
        let named: Vec<(String, Vec<(i64, i32)>)> = jvmti
            .class_methods(&class)
            .ok()?
            .into_iter()
            .filter_map(|m| {
                let (name, descriptor) = jvmti.method_name(m).ok()?;
                (name == frame.method).then(|| (descriptor, jvmti.line_numbers(m).unwrap_or_default()))
            })
            .collect();
        let line_bci = |lines: &[(i64, i32)]| {
            let line = frame.line?;
            lines.iter().filter(|(_, l)| *l == line).map(|(bci, _)| *bci).min()
        };
        match named.as_slice() {
            [(descriptor, lines)] => Some((descriptor.clone(), line_bci(lines).unwrap_or(0))),
            _ => named.iter().find_map(|(descriptor, lines)| Some((descriptor.clone(), line_bci(lines)?))),
        }
    })
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
    fn the_site_is_the_innermost_frame_the_policy_names_or_else_outside_the_jdk() {
        let log = FaultLog::default();
        let stack = ["java/util/ArrayList", "org/lib/Runtime", "com/shop/Cart", "com/shop/Main"];
        assert_eq!(log.application_index(stack.iter().copied()), Some(1), "no policy: the first non-JDK frame");
        log.set_application(&["com.shop.*".to_string()]);
        assert_eq!(log.application_index(stack.iter().copied()), Some(2), "the policy's application");
        log.set_application(&["org.other.*".to_string()]);
        assert_eq!(log.application_index(stack.iter().copied()), Some(1), "no frame in it: as without a policy");
        assert_eq!(log.application_index(["java/lang/Thread", "repair/rt/Hooks"].iter().copied()), None);
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
