//! Observations: a method watched while an operator's stream lasts (`repairctl watch`, `monitor`).
//!
//! An observation is a probe patch of its own (entry with the arguments, exit with the return
//! value, exit by an exception), applied and rolled back through the patch manager like any patch,
//! so it composes with repairs on the same class; it is not journaled. The probes' hooks find the
//! observation by the patch's report id and pair entries with exits on a per-thread stack.
//!
//! The application's thread does only what cannot wait: it reads the values of the call (objects
//! do not outlive it) into a buffer of its own and queues them as bytes ([`record`]); the stream,
//! on the control plane, decodes them, checks the condition, renders the text, applies the byte
//! and report quotas and counts `-n`. The queue is bounded and polled, never signalled: a client
//! that reads too slowly loses reports (counted), never slows the application, and no report
//! costs the application a wakeup or an allocation.
//!
//! A rule's health signal (`validate.health`) is an observation too, of kind [`Kind::Health`],
//! that streams to nobody: it judges, on the application's thread, the first call of its method
//! after a fallback of a repair it judges ([`Health`]), and tells the policy engine of a failure.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use repair_bytecode::descriptor::{FieldType, MethodDescriptor};
use repair_model::journal::now_ms;
use repair_model::observe::{Call, Condition, Expr, Part, Root, Template, Value};
use repair_model::proto;
use repair_model::proto::field::{map_entry, observed, observed_call as call, observed_calls};

use crate::jvm::{CallArgs, Captured, Jni, Jvmti, Local, MAX_ARGS};
use record::{Cursor, Put};

mod record;
mod wire;
use crate::runtime::clock::{self, Stamp};
use crate::runtime::faults::FaultLog;
use crate::runtime::IntMap;

/// Reports queued for a stream before further ones are dropped.
pub const QUEUE: usize = 4096;
/// Bytes queued for a stream before further reports are dropped (large rendered values).
const QUEUE_BYTES: usize = 8 << 20;
/// Deeper nesting than this (runaway recursion) is not observed.
const MAX_DEPTH: usize = 256;
/// Calls a traced call keeps (a long loop's first ones).
const MAX_CALLS: u32 = 4096;
/// Distinct call paths a stack observation counts; calls by others are not counted.
const MAX_PATHS: usize = 1000;
/// Watched or traced calls sent in one message at most.
const REPORTS_A_MESSAGE: usize = 256;
/// One captured call in this many is timed, for the CPU quota.
const COST_SAMPLE: u64 = 16;
/// Sampling never goes sparser than one call in this many; past it the observation stops.
const MAX_SAMPLE: u64 = 1 << 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Each call.
    Watch,
    /// Statistics per interval.
    Monitor,
    /// The distinct call paths that reach the method, counted.
    Stack,
    /// The locals and stack at a source line.
    Snapshot,
    /// A line of text at a source line.
    Log,
    /// Each call as the calls it made, timed.
    Trace,
    /// A rule's health signal: the first call after a judged repair's fallback on its thread,
    /// judged by the condition; reported to the policy engine, not to a stream.
    Health,
}

/// One observation in progress.
pub struct Observation {
    pub id: u64,
    pub kind: Kind,
    /// `Class.method` as asked.
    pub target: String,
    /// The probe patch's id (`observe-<id>`).
    pub patch_id: String,
    pub condition: Option<Condition>,
    show: Vec<Expr>,
    /// The paths extracted for each reported call: the condition's and `show`.
    exprs: Vec<Expr>,
    depth: u32,
    this: bool,
    locals: Vec<repair_bytecode::transform::snapshot::CapturedLocal>,
    template: Option<Template>,
    to_stderr: bool,
    sites: HashMap<String, Vec<String>>,
    /// Trace: the method asked for (its calls are reported; the others' are nested in them).
    root: String,
    min_ns: u64,
    pub who: String,
    pub started_ms: u64,
    /// End after this many reports (0: no limit).
    count: u64,
    /// Report one call in `sample` (raised under load).
    sample: AtomicU64,
    max_per_second: u64,
    /// What the application's threads count.
    hot: HotCounts,
    /// The kind of value each argument, `this` and the return value had last.
    hints: Vec<crate::jvm::ValueHint>,
    /// Reports delivered to the stream (counted by the stream's thread).
    reported: AtomicU64,
    ended: AtomicBool,
    /// What waits for the stream, and why the observation ended once it has (the stream then
    /// ends after what is queued).
    queue: Mutex<Queue>,
    /// What this second's reports cost so far.
    quota: Mutex<Quota>,
    max_cpu_ns: u64,
    max_bytes: u64,
    /// Monitor: durations (ns) and failures of the current interval.
    window: Mutex<Window>,
    /// The method each of its probe patches is on, by report id.
    methods: Mutex<HashMap<i32, String>>,
    /// Stack: each call path seen, its count, and whether it changed since the last flush.
    paths: Mutex<HashMap<Vec<String>, (u64, bool)>>,
    /// A health signal's repairs and what their calls said (kind `Health` only).
    health: Option<Health>,
    /// Takes its probes away and forgets it; run once, by the first of its stream's end, its
    /// client going away and `stop` (a second caller waits for the first to finish).
    rollback: Mutex<Option<Box<dyn FnOnce() + Send>>>,
}

/// What a health signal judges: the repairs of its rule in force or under watch, by report id.
/// Its method's calls cost a load of `judging` while there are none, and a thread-local read
/// more on a thread without a recent fallback of one of them.
pub struct Health {
    judging: AtomicUsize,
    judged: RwLock<IntMap<Arc<Judged>>>,
    /// Told at once of a failing call: the repair's report id and when its fallback ran.
    tell: Box<dyn Fn(i32, Instant) + Send + Sync>,
}

/// What the calls after one repair's fallbacks said.
pub struct Judged {
    /// When judging began: a fallback before it (the repair was applied a moment earlier) may
    /// have been followed by its call already, unjudged; a later call is not its.
    since: Instant,
    /// Fallbacks followed by a call that did not meet the failure condition.
    pub healthy: AtomicU64,
    /// Fallbacks followed by a call that met it.
    pub failed: AtomicU64,
    /// The last failing call, as the condition saw it (`args[0] = 500`).
    pub last_failure: Mutex<Option<String>>,
}

impl Health {
    pub fn new(tell: Box<dyn Fn(i32, Instant) + Send + Sync>) -> Health {
        Health { judging: AtomicUsize::new(0), judged: RwLock::default(), tell }
    }

    /// Judges exactly the repairs `reports`; those judged already keep their counts, `fresh`
    /// (a repair just applied, under a report id maybe used before) starts from none.
    pub fn judge(&self, reports: &[i32], fresh: Option<i32>) {
        let mut judged = self.judged.write().unwrap_or_else(|e| e.into_inner());
        judged.retain(|id, _| reports.contains(id) && Some(*id) != fresh);
        for id in reports {
            judged.entry(*id).or_insert_with(|| {
                Arc::new(Judged {
                    since: Instant::now(),
                    healthy: AtomicU64::new(0),
                    failed: AtomicU64::new(0),
                    last_failure: Mutex::new(None),
                })
            });
        }
        self.judging.store(judged.len(), Ordering::Relaxed);
    }

    /// What the calls after the fallbacks of the repair under `report_id` said, if it is judged.
    pub fn judged(&self, report_id: i32) -> Option<Arc<Judged>> {
        self.judged.read().unwrap_or_else(|e| e.into_inner()).get(&report_id).cloned()
    }

    /// This thread's last fallback, when it is a judged repair's, within the attribution time,
    /// and not yet followed by a judged call: the fallback a call now says something about.
    fn due(&self) -> Option<(i32, Instant, Arc<Judged>)> {
        let (report_id, at) = crate::runtime::hooks::last_fallback()?;
        if JUDGED_FALLBACK.with(Cell::get) == Some(at) || at.elapsed() > crate::runtime::hooks::ATTRIBUTION {
            return None;
        }
        Some((report_id, at, self.judged(report_id).filter(|j| at >= j.since)?))
    }
}

/// What waits for an observation's stream: records ([`record`]), in order.
#[derive(Default)]
struct Queue {
    bytes: Vec<u8>,
    records: usize,
    ended: Option<String>,
    /// The stream has taken the last message.
    finished: bool,
}

/// A queued record as the stream decodes it (a watched call is written out as it is read:
/// [`Observation::put_call`]).
enum Pending {
    /// A traced call as captured on its thread: its tree is built by the stream.
    Trace(Traced),
    /// A report built where it happened.
    Report(proto::observed::What),
}

/// A traced call: the calls it made, in the order they ended.
struct Traced {
    report_id: i32,
    thread: String,
    start_ms: u64,
    duration_ns: u64,
    calls: Vec<Made>,
    thrown: Option<String>,
}

/// The counts the application's threads write, on a cache line of their own: the stream's thread
/// writes its own elsewhere, and a line both write to would bounce between cores on every call.
#[derive(Default)]
#[repr(align(64))]
struct HotCounts {
    /// Calls entered (the calls an observation saw): sampling picks by this count.
    entered: AtomicU64,
    dropped: AtomicU64,
    /// Time spent in the hooks capturing reports, in all (the stream charges it to its second).
    cpu_ns: AtomicU64,
    /// How many items the queue holds, read without its lock to skip capturing when it is full.
    queued: AtomicUsize,
}

/// One second's reports and what they cost.
#[derive(Default)]
struct Quota {
    second: u64,
    reports: u64,
    /// The hooks' CPU time in all at the start of this second.
    cpu_ns_before: u64,
    bytes: u64,
    /// Already over this second (sampling was lowered once).
    over: bool,
}

#[derive(Default)]
struct Window {
    started_ms: u64,
    durations: Vec<u64>,
    failures: u64,
}

/// What [`Observations::start`] needs to know.
pub struct Request {
    pub kind: Kind,
    pub target: String,
    pub condition: Option<Condition>,
    /// Value paths reported with each call (`--show`).
    pub show: Vec<Expr>,
    /// Levels of fields shown of object arguments and return values (`--expand`).
    pub depth: u32,
    /// Whether `this` is captured (the probe passes it after the arguments).
    pub this: bool,
    /// Snapshot, log: the names and types of the locals the snapshot passes, in order.
    pub locals: Vec<repair_bytecode::transform::snapshot::CapturedLocal>,
    /// Log: the line's text.
    pub template: Option<Template>,
    pub to_stderr: bool,
    /// Trace: each traced method's call sites, as shown (`owner.name:line`), by the method's
    /// text as `attach` names it; the first is the method asked for, the others are traced only
    /// inside its calls (`--depth`).
    pub sites: Vec<(String, Vec<String>)>,
    /// Trace: report only calls at least this long.
    pub min_ns: u64,
    /// A health signal's state (kind `Health`).
    pub health: Option<Health>,
    pub sample: u64,
    pub count: u64,
    pub max_per_second: u64,
    /// The agent's CPU a second spent rendering reports (ms; 0: 50).
    pub max_cpu_ms: u32,
    /// Bytes a second of reports (KiB; 0: 1024).
    pub max_kib: u32,
    pub who: String,
}

impl Request {
    /// A `kind` observation of `target` for `who` that reports every call (no condition, sampling
    /// or count) under the default quotas; the fields a command sets are given beside it.
    pub fn new(kind: Kind, target: String, who: String) -> Request {
        Request {
            kind,
            target,
            condition: None,
            show: Vec::new(),
            depth: 0,
            this: false,
            locals: Vec::new(),
            template: None,
            to_stderr: false,
            sites: Vec::new(),
            min_ns: 0,
            health: None,
            sample: 1,
            count: 0,
            max_per_second: 0,
            max_cpu_ms: 0,
            max_kib: 0,
            who,
        }
    }
}

/// An observed call this thread is inside.
struct Frame {
    report_id: i32,
    /// The observation's id.
    observation: u64,
    started: Stamp,
    /// Whether sampling picked it (only those are rendered and reported).
    picked: bool,
    /// Picked while the queue was full (and no condition to check): dropped, never rendered.
    dropping: bool,
    /// Where its record starts in the thread's scratch (watch, trace): the arguments and `this`
    /// as captured, the values of the paths rooted in them; a trace's calls so far.
    at: usize,
    /// Health: the values of the condition's paths rooted in the arguments and `this`, by the
    /// path's index in `exprs`.
    values: Vec<(usize, Value)>,
    /// Trace: the calls made so far (written in the record), and the one in progress with the
    /// traced calls made inside it (deeper levels).
    calls: u32,
    open_call: Option<(u16, Stamp)>,
    inside: Vec<proto::TraceCall>,
    /// Time the entry hook spent capturing, when `measured` (counted against the CPU quota).
    cost_ns: u64,
    /// Whether this call's hooks are timed (see [`COST_SAMPLE`]).
    measured: bool,
}

/// A call a traced method made: its site, time, whether it threw, and what traced methods it ran.
struct Made {
    site: u16,
    ns: u64,
    threw: bool,
    inside: Vec<proto::TraceCall>,
}

/// What the observations' hooks keep on a thread, in one thread-local (each is a lookup of its
/// own in a shared library, on every hook).
struct OnThread {
    /// This thread's last [`Observations::by_report`] answer, keyed by the observations, their
    /// generation and the report id.
    #[allow(clippy::type_complexity)]
    found: Option<((usize, u64, i32), Option<Arc<Observation>>)>,
    calls: ThreadCalls,
}

/// The observed calls a thread is inside, and the records they are writing.
struct ThreadCalls {
    /// Innermost last.
    frames: Vec<Frame>,
    /// The frames' records, each from its frame's `at` on (reused: a call allocates nothing).
    scratch: Vec<u8>,
    /// This thread's name and when it was read: asking JVMTI on every report costs more than the
    /// rest of the report (a thread is renamed rarely; the name is read again each second).
    name: Option<(String, Stamp)>,
}

thread_local! {
    static ON_THREAD: RefCell<OnThread> = const {
        RefCell::new(OnThread { found: None, calls: ThreadCalls { frames: Vec::new(), scratch: Vec::new(), name: None } })
    };
    /// When the fallback a health signal's call last judged on this thread ran: each fallback
    /// is judged by the first call after it only.
    static JUDGED_FALLBACK: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// A thread's name from `cache`, read again when the one known is older than a second.
fn cached_name<'c>(cache: &'c mut Option<(String, Stamp)>, jvmti: Jvmti, jni: &Jni<'_>, now: Stamp) -> &'c str {
    let fresh = matches!(cache, Some((_, at)) if at.ns_until(now) < 1_000_000_000);
    if !fresh {
        *cache = Some((jvmti.current_thread_name(jni).unwrap_or_else(|_| "?".to_string()), now));
    }
    cache.as_ref().map_or("?", |(n, _)| n.as_str())
}

impl ThreadCalls {
    /// Where a new frame's record starts, if there is room for one more frame.
    fn start(&mut self) -> Option<usize> {
        if self.frames.len() >= MAX_DEPTH {
            return None;
        }
        if self.frames.is_empty() {
            self.scratch.clear();
        }
        Some(self.scratch.len())
    }

    /// The innermost frame of `report_id`, after dropping the frames opened inside it that never
    /// closed (their probes were rolled back while they ran): its record now ends the scratch.
    fn innermost(&mut self, report_id: i32) -> Option<usize> {
        let at = self.frames.iter().rposition(|f| f.report_id == report_id)?;
        if let Some(above) = self.frames.get(at + 1) {
            self.scratch.truncate(above.at);
            self.frames.truncate(at + 1);
        }
        Some(at)
    }

    /// Takes the innermost frame of `report_id` off the stack; its record is the scratch from
    /// its `at` on, until [`ThreadCalls::done`].
    fn close(&mut self, report_id: i32) -> Option<Frame> {
        self.innermost(report_id)?;
        self.frames.pop()
    }

    /// Forgets a closed frame's record.
    fn done(&mut self, frame: &Frame) {
        self.scratch.truncate(frame.at);
    }
}

/// Runs `f` with this thread's calls, unless a hook on this thread has them already.
fn with_calls(f: impl FnOnce(&mut ThreadCalls)) {
    ON_THREAD.with(|t| {
        if let Ok(mut t) = t.try_borrow_mut() {
            f(&mut t.calls)
        }
    })
}

/// This thread's name (for reports made outside a call's hooks).
fn thread_name(jvmti: Jvmti, jni: &Jni<'_>) -> String {
    let now = Stamp::now();
    ON_THREAD.with(|t| match t.try_borrow_mut() {
        Ok(mut t) => cached_name(&mut t.calls.name, jvmti, jni, now).to_string(),
        Err(_) => jvmti.current_thread_name(jni).unwrap_or_else(|_| "?".to_string()),
    })
}

/// Report id → observation (looked up on every call of every probed method).
type ByReport = IntMap<Arc<Observation>>;

/// The observations in progress, by the report id of their probe patch.
#[derive(Default)]
pub struct Observations {
    next: AtomicU64,
    by_report: RwLock<ByReport>,
    /// Made but not yet attached to a patch (between start and attach).
    by_id: RwLock<HashMap<u64, Arc<Observation>>>,
    /// Bumped whenever `by_report` changes (threads' cached answers are then stale).
    generation: AtomicU64,
}

impl Observations {
    /// A new observation and the receiving end of its stream.
    pub fn start(&self, r: Request) -> (Arc<Observation>, Reader) {
        clock::calibrate();
        let id = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        let o = Arc::new(Observation {
            id,
            kind: r.kind,
            target: r.target,
            patch_id: format!("observe-{id}"),
            exprs: {
                let mut e = r.condition.as_ref().map(Condition::exprs).unwrap_or_default();
                e.extend(r.show.iter().filter(|x| !e.contains(x)).cloned().collect::<Vec<_>>());
                e
            },
            condition: r.condition,
            show: r.show,
            depth: r.depth,
            this: r.this,
            locals: r.locals,
            template: r.template,
            to_stderr: r.to_stderr,
            root: r.sites.first().map(|(m, _)| m.clone()).unwrap_or_default(),
            sites: r.sites.into_iter().collect(),
            min_ns: r.min_ns,
            who: r.who,
            started_ms: now_ms(),
            count: r.count,
            sample: AtomicU64::new(r.sample.max(1)),
            max_per_second: if r.max_per_second == 0 { 1000 } else { r.max_per_second },
            hot: HotCounts::default(),
            hints: (0..MAX_ARGS + 2).map(|_| Default::default()).collect(),
            reported: AtomicU64::new(0),
            ended: AtomicBool::new(false),
            queue: Mutex::new(Queue::default()),
            quota: Mutex::new(Quota::default()),
            max_cpu_ns: if r.max_cpu_ms == 0 { 50 } else { u64::from(r.max_cpu_ms) } * 1_000_000,
            max_bytes: if r.max_kib == 0 { 1024 } else { u64::from(r.max_kib) } * 1024,
            window: Mutex::new(Window { started_ms: now_ms(), ..Window::default() }),
            paths: Mutex::new(HashMap::new()),
            methods: Mutex::new(HashMap::new()),
            health: r.health,
            rollback: Mutex::new(None),
        });
        self.by_id.write().unwrap_or_else(|e| e.into_inner()).insert(id, o.clone());
        (o.clone(), Reader { o, batch: Vec::new(), at: 0, known: None, values: Vec::new() })
    }

    /// A probe patch of `o` is in effect under `report_id`, on `method` (as reports name it): its
    /// hooks now reach the observation.
    pub fn attach(&self, o: &Arc<Observation>, report_id: i32, method: String) {
        o.methods.lock().unwrap_or_else(|e| e.into_inner()).insert(report_id, method);
        self.by_report.write().unwrap_or_else(|e| e.into_inner()).insert(report_id, o.clone());
        self.generation.fetch_add(1, Ordering::Release);
    }

    /// Forgets an observation (its patch is rolled back or never applied). What it queued stays
    /// for its stream, which may still be sending it (its `Reader` frees it).
    pub fn remove(&self, id: u64) {
        self.by_report.write().unwrap_or_else(|e| e.into_inner()).retain(|_, o| o.id != id);
        self.generation.fetch_add(1, Ordering::Release);
        self.by_id.write().unwrap_or_else(|e| e.into_inner()).remove(&id);
    }

    pub fn list(&self) -> Vec<Arc<Observation>> {
        let mut v: Vec<_> = self.by_id.read().unwrap_or_else(|e| e.into_inner()).values().cloned().collect();
        v.sort_by_key(|o| o.id);
        v
    }

    pub fn get(&self, id: u64) -> Option<Arc<Observation>> {
        self.by_id.read().unwrap_or_else(|e| e.into_inner()).get(&id).cloned()
    }

    /// The observation of a report id, if any (looked up without the thread's cache).
    fn by_report(&self, report_id: i32) -> Option<Arc<Observation>> {
        self.by_report.read().unwrap_or_else(|e| e.into_inner()).get(&report_id).cloned()
    }

    /// Runs `f` with the observation of a report id, if any, and this thread's calls; whether
    /// there is one. Every call of every probed method asks this, twice: each thread keeps its
    /// last answer while no observation was attached or removed, and lends it (no reference
    /// count taken and dropped on every hook).
    fn with_report(&self, report_id: i32, f: impl FnOnce(&Arc<Observation>, &mut ThreadCalls)) -> bool {
        if report_id <= 0 {
            return false;
        }
        let key = (self as *const Self as usize, self.generation.load(Ordering::Acquire), report_id);
        ON_THREAD.with(|t| {
            let Ok(mut t) = t.try_borrow_mut() else {
                // A hook inside a hook on this thread (they run no Java code, so only through
                // a JVMTI callback): not observed.
                return self.by_report(report_id).is_some();
            };
            let OnThread { found, calls } = &mut *t;
            if !matches!(found, Some((k, _)) if *k == key) {
                *found = Some((key, self.by_report(report_id)));
            }
            match found {
                Some((_, Some(o))) => {
                    f(o, calls);
                    true
                }
                _ => false,
            }
        })
    }

    /// `Hooks.enter`/`enterArgs` of an observation's probe: the call starts. False when
    /// `report_id` is not an observation's (the hook is then a patch's report).
    pub fn entered(
        &self,
        jvmti: Jvmti,
        jni: &Jni<'_>,
        faults: &FaultLog,
        report_id: i32,
        args: Option<&CallArgs<'_, '_>>,
    ) -> bool {
        self.with_report(report_id, |o, calls| {
            if !o.ended.load(Ordering::Relaxed) {
                o.entered(jvmti, jni, faults, report_id, args, calls);
            }
        })
    }

    /// `Hooks.exit`/`exitValue` or `Hooks.thrown` of an observation's probe: the call ends.
    /// False when `report_id` is not an observation's.
    pub fn exited(
        &self,
        jvmti: Jvmti,
        jni: &Jni<'_>,
        report_id: i32,
        value: Option<Captured<'_, '_>>,
        threw: Option<&Local<'_>>,
    ) -> bool {
        self.with_report(report_id, |o, calls| o.exited(jvmti, jni, report_id, value, threw, calls))
    }
}

/// A record's first fields: its kind, the report id, the start and the duration (written at the
/// exit: see the offsets below).
fn put_header(out: &mut Vec<u8>, kind: record::Kind, report_id: i32) {
    out.u8(kind as u8);
    out.u32(report_id as u32);
    out.u64(0);
    out.u64(0);
}
/// Offsets in a record of its start (the raw clock stamp) and its duration.
const START_AT: usize = 5;
const DURATION_AT: usize = 13;
/// A trace record's number of calls, after the header.
const CALLS_AT: usize = 21;

impl Observation {
    #[allow(clippy::too_many_arguments)]
    fn entered(
        self: &Arc<Self>,
        jvmti: Jvmti,
        jni: &Jni<'_>,
        faults: &FaultLog,
        report_id: i32,
        args: Option<&CallArgs<'_, '_>>,
        t: &mut ThreadCalls,
    ) {
        let o = self;
        if o.kind == Kind::Health {
            return o.health_entered(jni, report_id, args, t);
        }
        if o.kind == Kind::Stack {
            let n = o.hot.entered.fetch_add(1, Ordering::Relaxed) + 1;
            if n % o.sample.load(Ordering::Relaxed) == 0 {
                let path = faults.current_stack_text(jvmti, jni);
                let mut paths = o.paths.lock().unwrap_or_else(|e| e.into_inner());
                if paths.len() < MAX_PATHS || paths.contains_key(&path) {
                    let entry = paths.entry(path).or_insert((0, true));
                    entry.0 += 1;
                    entry.1 = true;
                }
            }
            if o.count > 0 && n >= o.count {
                o.flush_paths();
                o.end(format!("{n} calls, as asked (-n)"));
            }
            return;
        }
        let n = o.hot.entered.fetch_add(1, Ordering::Relaxed) + 1;
        let Some(at) = t.start() else { return };
        let sample = o.sample.load(Ordering::Relaxed);
        let picked = o.kind == Kind::Monitor || n % sample == 0;
        // What a captured call costs the hooks is timed on one in COST_SAMPLE of them (two clock
        // reads fewer on the others) and charged for all.
        let measured = picked && (n / sample) % COST_SAMPLE == 0;
        let began = measured.then(Stamp::now);
        // A report that cannot be queued is not rendered only to be dropped: a stalled client
        // costs the application next to nothing. (With a condition, the call must be rendered to
        // know whether it would be reported at all.)
        let dropping = picked && o.kind == Kind::Watch && o.condition.is_none() && o.queue_full();
        match (o.kind, picked && !dropping) {
            (Kind::Watch, true) => {
                put_header(&mut t.scratch, record::Kind::Call, report_id);
                o.put_arguments(jni, args, &mut t.scratch);
            }
            (Kind::Trace, true) => {
                put_header(&mut t.scratch, record::Kind::Trace, report_id);
                t.scratch.u32(0);
            }
            _ => {}
        }
        let started = Stamp::now();
        t.frames.push(Frame {
            report_id,
            observation: o.id,
            started,
            picked,
            dropping,
            at,
            values: Vec::new(),
            calls: 0,
            open_call: None,
            inside: Vec::new(),
            cost_ns: began.map_or(0, |b| b.ns_until(started)),
            measured,
        });
    }

    /// A watched call's arguments, `this` and the values of the paths rooted in them, onto its
    /// record.
    fn put_arguments<'j>(&self, jni: &Jni<'j>, args: Option<&CallArgs<'_, 'j>>, out: &mut Vec<u8>) {
        let Some(args) = args else {
            return out.extend_from_slice(&[0, 0, 0]);
        };
        args.read(jni, self.this, |all, this| {
            let args = &all[..all.len().min(MAX_ARGS)];
            out.u8(args.len() as u8);
            for (i, a) in args.iter().enumerate() {
                if let Some(a) = a {
                    self.put_captured(jni, *a, i, out);
                }
            }
            match this {
                Some(t) => {
                    out.u8(1);
                    self.put_captured(jni, Captured::Object(t), MAX_ARGS, out);
                }
                None => out.u8(0),
            }
            let count_at = out.len();
            out.u8(0);
            let mut n = 0u8;
            self.entry_values(
                jni,
                |i| all.get(i).copied().flatten(),
                this,
                |i, v| {
                    out.u8(i as u8);
                    out.value(&v);
                    n += 1;
                },
            );
            out[count_at] = n;
        })
    }

    /// The values of the paths rooted in the arguments (`arg`) and `this`, each with its path's
    /// index in `exprs` (those rooted in the return value wait for the exit).
    fn entry_values<'r, 'j: 'r>(
        &self,
        jni: &Jni<'_>,
        arg: impl Fn(usize) -> Option<Captured<'r, 'j>>,
        this: Option<&'r Local<'j>>,
        mut f: impl FnMut(usize, Value),
    ) {
        for (i, x) in self.exprs.iter().enumerate() {
            let root = match x.root {
                Root::Arg(n) => arg(n),
                Root::This => this.map(Captured::Object),
                Root::Return => continue,
            };
            if let Some(root) = root {
                f(i, extract(jni, root, x));
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn exited(
        self: &Arc<Self>,
        jvmti: Jvmti,
        jni: &Jni<'_>,
        report_id: i32,
        value: Option<Captured<'_, '_>>,
        threw: Option<&Local<'_>>,
        t: &mut ThreadCalls,
    ) {
        let o = self;
        let Some(mut frame) = t.close(report_id) else { return };
        let began = Stamp::now();
        let duration_ns = frame.started.ns_until(began);
        if o.ended.load(Ordering::Relaxed) || !frame.picked {
            return t.done(&frame);
        }
        if frame.dropping {
            o.hot.dropped.fetch_add(1, Ordering::Relaxed);
            return t.done(&frame);
        }
        match o.kind {
            Kind::Monitor => {
                let mut w = o.window.lock().unwrap_or_else(|e| e.into_inner());
                w.durations.push(duration_ns);
                w.failures += u64::from(threw.is_some());
                t.done(&frame);
            }
            Kind::Stack | Kind::Snapshot | Kind::Log => t.done(&frame),
            Kind::Health => {
                let mut values = std::mem::take(&mut frame.values);
                o.health_exited(jvmti, jni, frame.started, &mut values, value, threw, t);
                t.done(&frame);
            }
            Kind::Trace => {
                // A call still open when the method exits ended by an exception.
                if let Some((site, at)) = frame.open_call.take() {
                    let inside = std::mem::take(&mut frame.inside);
                    put_made(&mut t.scratch, site, at.ns_until(began), true, &inside);
                    frame.calls += 1;
                }
                // Inside a call of another traced method of this observation (`--depth`, or
                // recursion): nested there, as a tree (rare: built here).
                if let Some(parent) = t.frames.iter_mut().rev().find(|f| f.observation == o.id) {
                    if parent.open_call.is_some() {
                        let method = o.method_of(report_id);
                        let made =
                            t.scratch.get(frame.at + CALLS_AT + 4..).map_or(Vec::new(), |b| read_made(b, frame.calls));
                        let tree = merge(made, o.sites.get(&method).map_or(&[][..], Vec::as_slice));
                        parent.inside.push(proto::TraceCall {
                            site: method.split('(').next().unwrap_or(&method).to_string(),
                            count: 1,
                            total_ns: duration_ns,
                            max_ns: duration_ns,
                            threw: threw.is_some(),
                            calls: tree,
                        });
                        return t.done(&frame);
                    }
                }
                if o.sites.len() > 1 && o.method_of(report_id) != o.root {
                    return t.done(&frame);
                }
                o.spent(frame.measured, frame.cost_ns, began);
                if duration_ns < o.min_ns {
                    return t.done(&frame);
                }
                match threw {
                    Some(e) => {
                        t.scratch.u8(1);
                        t.scratch.str(&jni.class_name_of_object(e));
                    }
                    None => t.scratch.u8(0),
                }
                o.finish(jvmti, jni, &frame, began, t);
            }
            Kind::Watch => {
                let count_at = t.scratch.len();
                t.scratch.u8(0);
                let returned = match (threw, value) {
                    (None, Some(v)) => {
                        let mut n = 0u8;
                        for (i, x) in o.exprs.iter().enumerate().filter(|(_, x)| x.root == Root::Return) {
                            t.scratch.u8(i as u8);
                            t.scratch.value(&extract(jni, v, x));
                            n += 1;
                        }
                        t.scratch[count_at] = n;
                        Some(v)
                    }
                    _ => None,
                };
                match returned {
                    Some(v) => {
                        t.scratch.u8(1);
                        o.put_captured(jni, v, MAX_ARGS + 1, &mut t.scratch);
                    }
                    None => t.scratch.u8(0),
                }
                match threw {
                    Some(e) => {
                        t.scratch.u8(1);
                        t.scratch.str(&jni.class_name_of_object(e));
                        match jni.throwable_message(e) {
                            Some(m) => {
                                t.scratch.u8(1);
                                t.scratch.str(&m);
                            }
                            None => t.scratch.u8(0),
                        }
                    }
                    None => t.scratch.u8(0),
                }
                o.spent(frame.measured, frame.cost_ns, began);
                o.finish(jvmti, jni, &frame, began, t);
            }
        }
    }

    /// Completes a closed frame's record (its start, duration, calls and the thread's name) and
    /// queues it.
    fn finish(&self, jvmti: Jvmti, jni: &Jni<'_>, frame: &Frame, ended: Stamp, t: &mut ThreadCalls) {
        let name = cached_name(&mut t.name, jvmti, jni, ended);
        t.scratch.str(name);
        let record = &mut t.scratch;
        record.set_u64(frame.at + START_AT, frame.started.raw());
        record.set_u64(frame.at + DURATION_AT, frame.started.ns_until(ended));
        if self.kind == Kind::Trace {
            record.set_u32(frame.at + CALLS_AT, frame.calls);
        }
        self.push(&t.scratch[frame.at..]);
        t.done(frame);
    }
}

/// A call a traced method made, onto its record.
fn put_made(out: &mut Vec<u8>, site: u16, ns: u64, threw: bool, inside: &[proto::TraceCall]) {
    use prost::Message;
    out.u16(site);
    out.u64(ns);
    out.u8(u8::from(threw));
    if inside.is_empty() {
        return out.u32(0);
    }
    // Traced methods inside the call (`--depth`): rare, encoded as they are.
    let tree = proto::TraceTree { calls: inside.to_vec(), ..Default::default() }.encode_to_vec();
    out.u32(tree.len() as u32);
    out.extend_from_slice(&tree);
}

/// The calls a traced method made: `n` of them as [`put_made`] wrote them.
fn read_made(bytes: &[u8], n: u32) -> Vec<Made> {
    let mut c = Cursor::new(bytes);
    (0..n).map_while(|_| take_made(&mut c)).collect()
}

fn take_made(c: &mut Cursor<'_>) -> Option<Made> {
    use prost::Message;
    let (site, ns, threw) = (c.u16()?, c.u64()?, c.u8()? != 0);
    let inside = match c.u32()? as usize {
        0 => Vec::new(),
        n => proto::TraceTree::decode(c.bytes(n)?).ok()?.calls,
    };
    Some(Made { site, ns, threw, inside })
}

impl Observation {
    /// The health signal's state, for an observation of kind `Health`.
    pub fn health(&self) -> Option<&Health> {
        self.health.as_ref()
    }

    /// A health signal's method is entered: a call that will judge a fallback captures the
    /// condition's values of the arguments (they do not outlive the call); a call nested in
    /// such a call gets a frame of its own so that exits pair with entries; any other call
    /// leaves nothing.
    fn health_entered<'j>(&self, jni: &Jni<'j>, report_id: i32, args: Option<&CallArgs<'_, 'j>>, t: &mut ThreadCalls) {
        let Some(health) = &self.health else { return };
        if health.judging.load(Ordering::Relaxed) == 0 {
            return;
        }
        let judging = health.due().is_some();
        if !judging && !t.frames.iter().any(|f| f.report_id == report_id) {
            return;
        }
        let Some(at) = t.start() else { return };
        if judging {
            // The calls it shows in `repairctl observations`: those that judged a fallback.
            self.hot.entered.fetch_add(1, Ordering::Relaxed);
        }
        let mut values = Vec::new();
        if let (true, Some(args)) = (judging, args) {
            args.read(jni, self.this, |args, this| {
                self.entry_values(jni, |n| args.get(n).copied().flatten(), this, |i, v| values.push((i, v)))
            });
        }
        t.frames.push(Frame {
            report_id,
            observation: self.id,
            started: Stamp::now(),
            picked: judging,
            dropping: false,
            at,
            values,
            calls: 0,
            open_call: None,
            inside: Vec::new(),
            cost_ns: 0,
            measured: false,
        });
    }

    /// A judging call of a health signal's method ends: whether it meets the failure condition
    /// is counted for the repair whose fallback it follows (the thread's latest, if still due),
    /// and a failure is told to the policy engine at once.
    #[allow(clippy::too_many_arguments)]
    fn health_exited(
        &self,
        jvmti: Jvmti,
        jni: &Jni<'_>,
        started: Stamp,
        values: &mut Vec<(usize, Value)>,
        value: Option<Captured<'_, '_>>,
        threw: Option<&Local<'_>>,
        t: &mut ThreadCalls,
    ) {
        let (Some(health), Some(condition)) = (&self.health, &self.condition) else { return };
        let Some((report_id, fell_back, judged)) = health.due() else { return };
        JUDGED_FALLBACK.with(|j| j.set(Some(fell_back)));
        if let (None, Some(v)) = (threw, value) {
            for (i, x) in self.exprs.iter().enumerate().filter(|(_, x)| x.root == Root::Return) {
                values.push((i, extract(jni, v, x)));
            }
        }
        let named: Vec<(String, Value)> =
            values.drain(..).filter_map(|(i, v)| Some((self.exprs.get(i)?.text.clone(), v))).collect();
        let exception = threw.map(|t| jni.class_name_of_object(t));
        let now = Stamp::now();
        let thread = cached_name(&mut t.name, jvmti, jni, now);
        let call = Call { values: &named, exception: exception.as_deref(), duration_ns: started.ns_until(now), thread };
        if !condition.holds(&call) {
            judged.healthy.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let mut said: Vec<String> = named.iter().map(|(k, v)| format!("{k} = {v}")).collect();
        if let Some(e) = exception {
            said.push(format!("threw {e}"));
        }
        *judged.last_failure.lock().unwrap_or_else(|e| e.into_inner()) = Some(said.join(", "));
        judged.failed.fetch_add(1, Ordering::Relaxed);
        (health.tell)(report_id, fell_back);
    }
}

impl Observations {
    /// `Hooks.callEnter`: the traced method's innermost call on this thread makes call `site`.
    pub fn call_entered(&self, report_id: i32, site: i32) {
        with_calls(|t| {
            let Some(at) = t.innermost(report_id) else { return };
            let f = &mut t.frames[at];
            if !f.picked || f.dropping {
                return;
            }
            // A call still open threw, and the method caught it.
            if let Some((open, at)) = f.open_call.take() {
                let inside = std::mem::take(&mut f.inside);
                if f.calls < MAX_CALLS {
                    put_made(&mut t.scratch, open, at.elapsed_ns(), true, &inside);
                    f.calls += 1;
                }
            }
            f.open_call = Some((site as u16, Stamp::now()));
        })
    }

    /// `Hooks.callExit`: call `site` returned.
    pub fn call_exited(&self, report_id: i32, site: i32) {
        with_calls(|t| {
            let Some(at) = t.innermost(report_id) else { return };
            let f = &mut t.frames[at];
            if let Some((open, at)) = f.open_call.take() {
                let inside = std::mem::take(&mut f.inside);
                if open as i32 == site && f.calls < MAX_CALLS {
                    put_made(&mut t.scratch, open, at.elapsed_ns(), false, &inside);
                    f.calls += 1;
                }
            }
        })
    }

    /// `Hooks.snapshot` of an observation's snapshot point: the line is reached with `locals`.
    pub fn snapshot(&self, jvmti: Jvmti, jni: &Jni<'_>, faults: &FaultLog, report_id: i32, locals: Option<&Local<'_>>) {
        let Some(o) = self.by_report(report_id) else { return };
        if o.ended.load(Ordering::Relaxed) {
            return;
        }
        let n = o.hot.entered.fetch_add(1, Ordering::Relaxed) + 1;
        if n % o.sample.load(Ordering::Relaxed) != 0 || !o.charge(1, 0) {
            return;
        }
        let Some(array) = locals else { return };
        jni.with_local_frame(o.locals.len() as i32 + 8, |jni| {
            let values = jni.array_elements(array, o.locals.len());
            match (&o.template, o.kind) {
                (Some(template), Kind::Log) => {
                    let text = o.format(jni, template, &values);
                    if o.to_stderr {
                        eprintln!("repair log: {text}");
                    }
                    o.send(proto::observed::What::Log(text));
                }
                _ => {
                    let locals = o
                        .locals
                        .iter()
                        .zip(&values)
                        .map(|(l, v)| proto::LocalValue {
                            name: l.name.clone(),
                            r#type: l.type_name.clone(),
                            value: jni.render(v, o.depth, 16),
                        })
                        .collect();
                    let taken = proto::SnapshotTaken {
                        thread: thread_name(jvmti, jni),
                        at_ms: now_ms(),
                        location: o.target.clone(),
                        locals,
                        stack: faults.current_stack_text(jvmti, jni),
                    };
                    o.send(proto::observed::What::Snapshot(taken));
                }
            }
        });
    }
}

impl Observation {
    /// A log line: the template with each placeholder's value (strings without quotes).
    fn format(&self, jni: &Jni<'_>, template: &Template, values: &[Local<'_>]) -> String {
        let mut text = String::new();
        for part in &template.parts {
            match part {
                Part::Text(t) => text.push_str(t),
                Part::Value { local, fields } => {
                    let value = match self.locals.iter().position(|l| l.name == *local).and_then(|i| values.get(i)) {
                        Some(v) if fields.is_empty() => jni.value(v),
                        Some(v) => jni.field_path(v, fields).unwrap_or_else(|e| Value::Object(format!("<{e}>"))),
                        None => Value::Object(format!("<no local {local}>")),
                    };
                    match value {
                        Value::Text(s) => text.push_str(&s),
                        v => text.push_str(&v.to_string()),
                    }
                }
            }
        }
        text
    }
}

/// A traced call's calls, merged by site in code order: a loop's repeats add up, and what they
/// ran inside merges the same way.
fn merge(mut calls: Vec<Made>, sites: &[String]) -> Vec<proto::TraceCall> {
    calls.sort_by_key(|c| c.site);
    let mut tree: Vec<proto::TraceCall> = Vec::new();
    for Made { site, ns, threw, inside } in calls {
        let name = sites.get(site as usize).cloned().unwrap_or_else(|| format!("site {site}"));
        match tree.last_mut().filter(|t| t.site == name) {
            Some(t) => {
                t.count += 1;
                t.total_ns += ns;
                t.max_ns = t.max_ns.max(ns);
                t.threw |= threw;
                merge_inside(&mut t.calls, inside);
            }
            None => {
                tree.push(proto::TraceCall { site: name, count: 1, total_ns: ns, max_ns: ns, threw, calls: inside })
            }
        }
    }
    tree
}

/// Adds `more` nested calls into `into`, by site.
fn merge_inside(into: &mut Vec<proto::TraceCall>, more: Vec<proto::TraceCall>) {
    for m in more {
        match into.iter_mut().find(|t| t.site == m.site) {
            Some(t) => {
                t.count += m.count;
                t.total_ns += m.total_ns;
                t.max_ns = t.max_ns.max(m.max_ns);
                t.threw |= m.threw;
                merge_inside(&mut t.calls, m.calls);
            }
            None => into.push(m),
        }
    }
}

/// The value at `x`'s fields from `root`; a path that does not hold for this object (a subclass
/// without the field) gives a text saying so, which no comparison matches.
fn extract(jni: &Jni<'_>, root: Captured<'_, '_>, x: &Expr) -> Value {
    match root {
        Captured::Object(o) if !x.fields.is_empty() => {
            jni.field_path(o, &x.fields).unwrap_or_else(|e| Value::Object(format!("<{e}>")))
        }
        Captured::Primitive(_) if !x.fields.is_empty() => {
            Value::Object(format!("<a primitive value has no field {}>", x.fields[0]))
        }
        root => root.value(jni),
    }
}

impl Observation {
    pub fn has_ended(&self) -> bool {
        self.ended.load(Ordering::Relaxed)
    }

    /// The methods its probes will be on (their descriptors): where they all declare an argument
    /// or the return value a primitive or a `String`, its values are read without asking the JVM
    /// their class on every call.
    pub fn declare(&self, methods: &[&MethodDescriptor]) {
        let Some(first) = methods.first() else { return };
        let agreed = |of: &dyn Fn(&MethodDescriptor) -> Option<&FieldType>| {
            let kind = of(first)?;
            methods.iter().all(|m| of(m) == Some(kind)).then(|| kind.descriptor())
        };
        for (at, hint) in self.hints.iter().enumerate().take(MAX_ARGS) {
            hint.declare(agreed(&|m| m.params.get(at)).as_deref());
        }
        if let Some(hint) = self.hints.get(MAX_ARGS + 1) {
            hint.declare(agreed(&|m| Some(&m.ret)).as_deref());
        }
    }

    /// The method a report id's probes are on.
    fn method_of(&self, report_id: i32) -> String {
        let methods = self.methods.lock().unwrap_or_else(|e| e.into_inner());
        methods.get(&report_id).cloned().unwrap_or_else(|| self.target.clone())
    }

    /// A value as captured for the stream: plain, or an object expanded `depth` levels into its
    /// fields (which can only be read now, on its thread).
    /// `at`: the argument's index, `MAX_ARGS` for `this`, `MAX_ARGS + 1` for the return value.
    fn put_captured(&self, jni: &Jni<'_>, v: Captured<'_, '_>, at: usize, out: &mut Vec<u8>) {
        let v = match v {
            Captured::Primitive(p) => return p.with_plain(|p| out.plain(&p)),
            Captured::Object(v) => v,
        };
        if v.is_null() {
            return out.value(&Value::Null);
        }
        let hint = &self.hints[at.min(self.hints.len() - 1)];
        if jni.with_plain(v, hint, |p| p.map(|p| out.plain(&p)).is_some()) {
            return;
        }
        out.value(&match self.depth {
            0 => jni.object_value(v),
            d => Value::Object(jni.render(v, d, 16)),
        })
    }

    /// Charges the hooks' time on a measured call (`entry_ns` on entry, since `exit_began` on
    /// exit) for it and the calls not measured.
    fn spent(&self, measured: bool, entry_ns: u64, exit_began: Stamp) {
        if measured {
            let ns = entry_ns + exit_began.elapsed_ns();
            self.hot.cpu_ns.fetch_add(ns * COST_SAMPLE, Ordering::Relaxed);
        }
    }

    /// Whether the queue has no room left: a report now would be dropped.
    fn queue_full(&self) -> bool {
        self.hot.queued.load(Ordering::Relaxed) >= QUEUE
    }

    /// Queues a record; when the queue is full (a slow client) it is dropped and counted.
    fn push(&self, record: &[u8]) {
        self.queue_record(record, false)
    }

    /// Queues a record, unless the observation ended; when the queue is full, only if `always`
    /// (a notice: they are few), else it is dropped and counted.
    fn queue_record(&self, record: &[u8], always: bool) {
        let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        if q.ended.is_some() {
            return;
        }
        if !always && (q.records >= QUEUE || q.bytes.len() + record.len() > QUEUE_BYTES) {
            drop(q);
            self.hot.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        q.bytes.extend_from_slice(record);
        q.records += 1;
        self.hot.queued.store(q.records, Ordering::Relaxed);
    }

    /// A report built where it happened, queued as a record of its own.
    fn send(&self, what: proto::observed::What) {
        self.queue_record(&report_record(what), false)
    }

    /// Whether `reports` more reports fit this second's quota, given what they cost the agent
    /// (time in the hooks capturing them, and bytes rendered): reports, CPU and bytes a second
    /// are each bounded. Over one, sampling halves the reports (said on the stream), and past the
    /// sparsest sampling the observation ends.
    fn charge(&self, reports: u64, bytes: u64) -> bool {
        let second = Stamp::now().epoch_ms() / 1000;
        let cpu_ns = self.hot.cpu_ns.load(Ordering::Relaxed);
        let mut q = self.quota.lock().unwrap_or_else(|e| e.into_inner());
        if q.second != second {
            *q = Quota { second, cpu_ns_before: cpu_ns, ..Quota::default() };
        }
        q.reports += reports;
        q.bytes += bytes;
        let over = if q.reports > self.max_per_second {
            Some(format!("more than {} reports a second", self.max_per_second))
        } else if cpu_ns.saturating_sub(q.cpu_ns_before) > self.max_cpu_ns {
            Some(format!("more than {} ms of the agent's CPU a second", self.max_cpu_ns / 1_000_000))
        } else if q.bytes > self.max_bytes {
            Some(format!("more than {} KiB captured a second", self.max_bytes / 1024))
        } else {
            None
        };
        let Some(why) = over else { return true };
        if std::mem::replace(&mut q.over, true) {
            return false;
        }
        drop(q);
        let sample = self.sample.load(Ordering::Relaxed) * 2;
        if sample > MAX_SAMPLE {
            self.end(format!("{why} even at one call in {MAX_SAMPLE}: stopped to spare the application"));
        } else {
            self.sample.store(sample, Ordering::Relaxed);
            self.notice(format!("{why}: now one call in {sample} is reported"));
        }
        false
    }

    /// A notice on the stream, queued even when the queue is full (they are few).
    fn notice(&self, text: String) {
        self.queue_record(&report_record(proto::observed::What::Notice(text)), true)
    }

    /// What [`roll_back`](Self::roll_back) runs, once its probes are applied.
    pub fn set_rollback(&self, f: Box<dyn FnOnce() + Send>) {
        *self.rollback.lock().unwrap_or_else(|e| e.into_inner()) = Some(f);
    }

    /// Ends the observation's probes (see `rollback`). The lock is held while the rollback runs
    /// so that a second caller returns only once it is done; nothing it calls (JVMTI's class
    /// file hook included) takes this lock.
    pub fn roll_back(&self) {
        let mut slot = self.rollback.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(f) = slot.take() {
            f();
        }
    }

    /// Ends the observation: `reason` is the stream's last message, after what is queued.
    pub fn end(&self, reason: String) {
        if self.ended.swap(true, Ordering::Relaxed) {
            return;
        }
        self.queue.lock().unwrap_or_else(|e| e.into_inner()).ended = Some(reason);
    }

    /// Whether a report may still go out (`-n`: a stack observation counts calls, not the paths
    /// it reports).
    fn has_room(&self) -> bool {
        self.kind == Kind::Stack || self.count == 0 || self.reported.load(Ordering::Relaxed) < self.count
    }

    /// Counts a report that goes out; the observation ends with the `-n`-th.
    fn reported_one(&self) {
        let reported = self.reported.fetch_add(1, Ordering::Relaxed) + 1;
        if self.kind != Kind::Stack && self.count > 0 && reported >= self.count {
            self.end(format!("{reported} reports, as asked (-n)"));
        }
    }

    /// The stream's message for a queued item, or `None` when it is not reported: a traced call
    /// over the quota, or anything after `-n` reports.
    /// `known`: the method of the last report, kept by the stream between reports (looking it
    /// up costs a lock, and its call sites a string hash).
    fn deliver(&self, item: Pending, known: &mut Option<MethodInfo>) -> Option<proto::observed::What> {
        if !self.has_room() {
            return None;
        }
        let what = match item {
            Pending::Report(what) => what,
            Pending::Trace(t) => {
                if !self.charge(1, 0) {
                    return None;
                }
                let sites = &self.method_info(t.report_id, known).sites;
                proto::observed::What::Trace(proto::TraceTree {
                    thread: t.thread.to_string(),
                    start_ms: t.start_ms,
                    duration_ns: t.duration_ns,
                    calls: merge(t.calls, sites),
                    thrown: t.thrown.unwrap_or_default(),
                    method: self.target.clone(),
                })
            }
        };
        self.reported_one();
        Some(what)
    }

    /// A watched call's record (its kind byte read), appended to `out` as an `ObservedCalls`
    /// element (an `ObservedCall`, field 1) in protobuf's wire form, if it meets the condition, the
    /// quotas and `-n`. `Some(false)`: not reported (`out` as it was). `None`: the record does not
    /// decode (a bug; `out` as it was).
    /// `values`: the stream's buffer for the values of the observation's paths.
    fn put_call(
        &self,
        c: &mut Cursor<'_>,
        out: &mut Vec<u8>,
        known: &mut Option<MethodInfo>,
        values: &mut Vec<(usize, Value)>,
    ) -> Option<bool> {
        let start = out.len();
        let (mut held, mut text_bytes) = (false, 0);
        values.clear();
        let read = wire::nested(out, observed_calls::CALLS, |o| {
            let (report_id, started, duration_ns) = (c.u32()? as i32, c.u64()?, c.u64()?);
            wire::uint(o, call::START_MS, Stamp::from_raw(started).epoch_ms());
            wire::uint(o, call::DURATION_NS, duration_ns);
            let shown_from = o.len();
            for _ in 0..c.u8()? {
                wire::nested(o, call::ARGS, |o| c.shown_into(o))?;
            }
            if c.u8()? != 0 {
                wire::nested(o, call::THIS, |o| c.shown_into(o))?;
            }
            for _ in 0..c.u8()? {
                values.push((c.u8()? as usize, c.value()?));
            }
            for _ in 0..c.u8()? {
                values.push((c.u8()? as usize, c.value()?));
            }
            if c.u8()? != 0 {
                wire::nested(o, call::RETURNED, |o| c.shown_into(o))?;
            }
            text_bytes = o.len() - shown_from;
            let mut exception = None;
            if c.u8()? != 0 {
                let class = c.text()?;
                let message = if c.u8()? == 0 { None } else { Some(c.text()?) };
                wire::nested(o, call::THROWN, |o| {
                    o.extend_from_slice(class);
                    if let Some(m) = message {
                        o.extend_from_slice(b": ");
                        o.extend_from_slice(m);
                    }
                    Some(())
                })?;
                exception = Some(class);
            }
            let thread = c.text()?;
            wire::bytes(o, call::THREAD, thread);
            wire::bytes(o, call::METHOD, self.method_info(report_id, known).method.as_bytes());
            held = self.holds(values, exception, duration_ns, thread);
            let shown_from = o.len();
            for x in &self.show {
                let of_x = |(i, _): &&(usize, Value)| self.exprs.get(*i).is_some_and(|e| e.text == x.text);
                let Some((_, v)) = values.iter().find(of_x) else { continue };
                wire::nested(o, call::VALUES, |o| {
                    wire::bytes(o, map_entry::KEY, x.text.as_bytes());
                    wire::bytes(o, map_entry::VALUE, v.to_string().as_bytes());
                    Some(())
                })?;
            }
            text_bytes += o.len() - shown_from;
            Some(())
        });
        read?;
        if !(held && self.has_room() && self.charge(1, text_bytes as u64)) {
            out.truncate(start);
            return Some(false);
        }
        self.reported_one();
        Some(true)
    }

    /// Whether the condition (if any) holds for a watched call.
    fn holds(&self, values: &[(usize, Value)], exception: Option<&[u8]>, duration_ns: u64, thread: &[u8]) -> bool {
        let Some(condition) = &self.condition else { return true };
        let values: Vec<(String, Value)> =
            values.iter().filter_map(|(i, v)| Some((self.exprs.get(*i)?.text.clone(), v.clone()))).collect();
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        let (exception, thread) = (exception.map(text), text(thread));
        condition.holds(&Call { values: &values, exception: exception.as_deref(), duration_ns, thread: &thread })
    }

    /// The method a report id's probes are on, and its call sites, from `known` when it is
    /// that report id's.
    fn method_info<'k>(&self, report_id: i32, known: &'k mut Option<MethodInfo>) -> &'k MethodInfo {
        if known.as_ref().is_some_and(|k| k.report_id != report_id) {
            *known = None;
        }
        known.get_or_insert_with(|| {
            let method = self.method_of(report_id);
            let sites = self.sites.get(&method).cloned().unwrap_or_default();
            MethodInfo { report_id, method, sites }
        })
    }

    /// Monitor: the statistics of the interval that ends now, queued; a fresh interval starts.
    pub fn flush_window(&self) {
        let w = {
            let mut w = self.window.lock().unwrap_or_else(|e| e.into_inner());
            std::mem::replace(&mut *w, Window { started_ms: now_ms(), ..Window::default() })
        };
        let mut d = w.durations;
        d.sort_unstable();
        let ms = |ns: u64| ns as f64 / 1e6;
        let at = |q: f64| d.get(((d.len() as f64 * q).ceil() as usize).saturating_sub(1)).copied().unwrap_or(0);
        let window = proto::MonitorWindow {
            start_ms: w.started_ms,
            end_ms: now_ms(),
            calls: d.len() as u64,
            failures: w.failures,
            mean_ms: if d.is_empty() { 0.0 } else { ms(d.iter().sum::<u64>()) / d.len() as f64 },
            p50_ms: ms(at(0.5)),
            p99_ms: ms(at(0.99)),
            max_ms: ms(d.last().copied().unwrap_or(0)),
        };
        self.send(proto::observed::What::Window(window));
    }

    /// Stack: the paths whose count changed since the last flush, queued, most taken first.
    pub fn flush_paths(&self) {
        let changed: Vec<(Vec<String>, u64)> = {
            let mut paths = self.paths.lock().unwrap_or_else(|e| e.into_inner());
            paths
                .iter_mut()
                .filter(|(_, (_, c))| *c)
                .map(|(p, (n, c))| {
                    *c = false;
                    (p.clone(), *n)
                })
                .collect()
        };
        let mut changed = changed;
        changed.sort_by_key(|p| std::cmp::Reverse(p.1));
        for (frames, count) in changed {
            self.send(proto::observed::What::Path(proto::StackPath { frames, count }));
        }
    }

    pub fn info(&self) -> proto::ObservationInfo {
        proto::ObservationInfo {
            id: self.id,
            kind: match self.kind {
                Kind::Watch => "watch",
                Kind::Monitor => "monitor",
                Kind::Stack => "stack",
                Kind::Snapshot => "snapshot",
                Kind::Log => "log",
                Kind::Trace => "trace",
                Kind::Health => "health",
            }
            .to_string(),
            target: self.target.clone(),
            condition: self.condition.as_ref().map(|c| c.to_string()).unwrap_or_default(),
            started_ms: self.started_ms,
            calls: self.hot.entered.load(Ordering::Relaxed),
            reported: self.reported.load(Ordering::Relaxed),
            dropped: self.hot.dropped.load(Ordering::Relaxed),
            who: self.who.clone(),
        }
    }
}

/// The stream's end of an observation's queue.
pub struct Reader {
    o: Arc<Observation>,
    /// Records taken from the queue (its buffer, taken whole: the queue gets this one's back,
    /// as empty), delivered up to `at`.
    batch: Vec<u8>,
    at: usize,
    /// The method of the last report delivered.
    known: Option<MethodInfo>,
    /// The values of a watched call's paths (kept: a call without paths allocates nothing).
    values: Vec<(usize, Value)>,
}

impl Drop for Reader {
    /// The stream is over: what it did not take goes (a thread's last answer may hold the
    /// observation a while longer, not its queue).
    fn drop(&mut self) {
        let mut q = self.o.queue.lock().unwrap_or_else(|e| e.into_inner());
        q.bytes = Vec::new();
        q.records = 0;
    }
}

/// The method of a report id's probes, as reports show it, and its call sites (trace).
struct MethodInfo {
    report_id: i32,
    method: String,
    sites: Vec<String>,
}

/// What [`Reader::next`] found.
pub enum Taken {
    /// A `proto::Observed` message, in protobuf's wire form.
    Report(Vec<u8>),
    /// Nothing to report now; `busy` when items were taken and left out (by the condition or a
    /// quota) since the last report.
    Nothing { busy: bool },
    /// The observation ended and everything before its end was delivered.
    End,
}

impl Reader {
    /// The next record of the batch, decoded; `None` at its end. A record that does not decode
    /// (a bug) ends the batch.
    fn take(&mut self) -> Option<Pending> {
        let mut c = Cursor::new(self.batch.get(self.at..)?);
        let item = decode(&mut c);
        match item {
            Some(_) => self.at += c.at(),
            None => self.at = self.batch.len(),
        }
        item
    }

    /// The kind of the next record of the batch.
    fn next_kind(&self) -> Option<record::Kind> {
        Cursor::new(self.batch.get(self.at..)?).peek_kind()
    }

    /// The watched calls next in the batch that are reported, up to [`REPORTS_A_MESSAGE`], as
    /// one message; `None` when none of them is.
    fn calls(&mut self) -> Option<Vec<u8>> {
        let mut calls = Vec::with_capacity(4096);
        let mut n = 0;
        while n < REPORTS_A_MESSAGE && self.next_kind() == Some(record::Kind::Call) {
            let Some(rest) = self.batch.get(self.at + 1..) else { break };
            let mut c = Cursor::new(rest);
            match self.o.put_call(&mut c, &mut calls, &mut self.known, &mut self.values) {
                Some(reported) => {
                    n += usize::from(reported);
                    self.at += 1 + c.at();
                }
                None => self.at = self.batch.len(),
            }
        }
        let mut m = Vec::with_capacity(calls.len() + 32);
        wire::uint(&mut m, observed::OBSERVATION, self.o.id);
        match n {
            0 => return None,
            // One call goes as one (`call`), as a client reading calls one at a time expects.
            1 => wire::bytes(&mut m, observed::CALL, wire::body(&calls)?),
            _ => wire::bytes(&mut m, observed::CALLS, &calls),
        }
        wire::uint(&mut m, observed::DROPPED, self.o.hot.dropped.load(Ordering::Relaxed));
        Some(m)
    }

    /// `first` and the traced calls next in the batch, delivered, up to [`REPORTS_A_MESSAGE`].
    fn traces(&mut self, first: proto::TraceTree) -> proto::observed::What {
        use proto::observed::What;
        let mut trees = vec![first];
        while trees.len() < REPORTS_A_MESSAGE && self.next_kind() == Some(record::Kind::Trace) {
            let Some(item) = self.take() else { break };
            if let Some(What::Trace(t)) = self.o.deliver(item, &mut self.known) {
                trees.push(t);
            }
        }
        match trees.len() {
            1 => What::Trace(trees.remove(0)),
            _ => What::Traces(proto::TraceTrees { trees }),
        }
    }

    /// `what` as the stream's message.
    fn message(&self, what: proto::observed::What) -> Vec<u8> {
        use prost::Message;
        let dropped = self.o.hot.dropped.load(Ordering::Relaxed);
        proto::Observed { observation: self.o.id, what: Some(what), dropped }.encode_to_vec()
    }

    /// The next message ready now. Watched calls (or traced calls) that are ready together go
    /// out as one message (up to [`REPORTS_A_MESSAGE`]): a message each costs the stream and its
    /// client more than the calls' own bytes when they come by the hundred thousand a second.
    pub fn next(&mut self) -> Taken {
        use proto::observed::What;
        let mut busy = false;
        loop {
            while let Some(kind) = self.next_kind() {
                busy = true;
                if kind == record::Kind::Call {
                    match self.calls() {
                        Some(m) => return Taken::Report(m),
                        None => continue,
                    }
                }
                let Some(item) = self.take() else { break };
                let what = match self.o.deliver(item, &mut self.known) {
                    Some(What::Trace(first)) => self.traces(first),
                    Some(what) => what,
                    None => continue,
                };
                return Taken::Report(self.message(what));
            }
            let mut q = self.o.queue.lock().unwrap_or_else(|e| e.into_inner());
            if q.records == 0 {
                if q.finished {
                    return Taken::End;
                }
                let Some(reason) = q.ended.clone() else { return Taken::Nothing { busy } };
                q.finished = true;
                drop(q);
                return Taken::Report(self.message(What::Ended(reason)));
            }
            // The batch is delivered: the queue takes its buffer back, empty (nothing grows).
            self.batch.clear();
            self.at = 0;
            std::mem::swap(&mut q.bytes, &mut self.batch);
            q.records = 0;
            self.o.hot.queued.store(0, Ordering::Relaxed);
        }
    }
}

/// A report as a record of its own.
fn report_record(what: proto::observed::What) -> Vec<u8> {
    use prost::Message;
    let encoded = proto::Observed { observation: 0, what: Some(what), dropped: 0 }.encode_to_vec();
    let mut record = Vec::with_capacity(encoded.len() + 5);
    record.u8(record::Kind::Report as u8);
    record.u32(encoded.len() as u32);
    record.extend_from_slice(&encoded);
    record
}

/// The next record, as the stream handles it.
fn decode(c: &mut Cursor<'_>) -> Option<Pending> {
    use prost::Message;
    match c.kind()? {
        // Written out as they are read (`Reader::calls`), never decoded.
        record::Kind::Call => None,
        record::Kind::Report => {
            let n = c.u32()? as usize;
            Some(Pending::Report(proto::Observed::decode(c.bytes(n)?).ok()?.what?))
        }
        record::Kind::Trace => {
            let (report_id, start, duration_ns, n) = (c.u32()? as i32, c.u64()?, c.u64()?, c.u32()?);
            let calls = (0..n).map(|_| take_made(c)).collect::<Option<Vec<_>>>()?;
            let thrown = match c.u8()? {
                0 => None,
                _ => Some(c.str()?),
            };
            Some(Pending::Trace(Traced {
                report_id,
                thread: c.str()?,
                start_ms: Stamp::from_raw(start).epoch_ms(),
                duration_ns,
                calls,
                thrown,
            }))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(report_id: i32, at: usize) -> Frame {
        Frame {
            report_id,
            observation: 1,
            started: Stamp::now(),
            picked: true,
            dropping: false,
            at,
            values: Vec::new(),
            calls: 0,
            open_call: None,
            inside: Vec::new(),
            cost_ns: 0,
            measured: false,
        }
    }

    /// Opens a frame for `report_id` writing `bytes` as its record so far.
    fn open(t: &mut ThreadCalls, report_id: i32, bytes: &[u8]) {
        let at = t.start().expect("room for a frame");
        t.scratch.extend_from_slice(bytes);
        t.frames.push(frame(report_id, at));
    }

    /// A watched call's record as the hooks write it: arguments (an int and a string), the
    /// int as the value of the observation's first path, then how the call ended.
    fn call_record(arg: i64, name: &str, ended: Result<i64, (&str, &str)>, thread: &str, started: Stamp) -> Vec<u8> {
        let mut r = Vec::new();
        put_header(&mut r, record::Kind::Call, 7);
        r.set_u64(START_AT, started.raw());
        r.set_u64(DURATION_AT, 1500);
        let units: Vec<u16> = name.encode_utf16().collect();
        r.u8(2);
        r.value(&Value::Integer(arg));
        r.plain(&crate::jvm::PlainValue::Text { units: &units, cut: false });
        r.u8(0);
        r.extend_from_slice(&[1, 0]);
        r.value(&Value::Integer(arg));
        r.u8(0);
        match ended {
            Ok(v) => {
                r.u8(1);
                r.value(&Value::Integer(v));
                r.u8(0);
            }
            Err((class, message)) => {
                r.extend_from_slice(&[0, 1]);
                r.str(class);
                r.u8(1);
                r.str(message);
            }
        }
        r.str(thread);
        r
    }

    fn decoded(taken: Taken) -> proto::Observed {
        match taken {
            Taken::Report(m) => prost::Message::decode(&m[..]).expect("a message prost reads"),
            Taken::Nothing { .. } => panic!("nothing to report"),
            Taken::End => panic!("the end"),
        }
    }

    #[test]
    fn watched_calls_go_out_as_prost_reads_them_filtered_by_the_condition() {
        use proto::observed::What;
        let observations = Observations::default();
        let (o, mut reader) = observations.start(Request {
            condition: Some(Condition::parse("args[0] >= 2", Some(2)).unwrap()),
            show: vec![Expr::parse("args[0]", Some(2)).unwrap()],
            max_per_second: 1000,
            ..Request::new(Kind::Watch, "Shop.total".into(), "test".into())
        });
        let started = Stamp::now();
        let quoted = "say \"hi\"";
        o.push(&call_record(1, "kiwi", Ok(33), "main", started));
        o.push(&call_record(5, quoted, Err(("java.lang.IllegalStateException", "boom")), "worker-1", started));
        o.push(&call_record(7, "fig", Ok(48), "main", started));
        let expected = |arg: i64, name: &str, returned: &str, thrown: &str, thread: &str| proto::ObservedCall {
            thread: thread.into(),
            start_ms: started.epoch_ms(),
            duration_ns: 1500,
            args: vec![arg.to_string(), Value::Text(name.into()).shown()],
            returned: returned.into(),
            thrown: thrown.into(),
            method: "Shop.total".into(),
            values: [("args[0]".to_string(), arg.to_string())].into(),
            this: String::new(),
        };
        let m = decoded(reader.next());
        assert_eq!(m.observation, o.id);
        let calls = vec![
            expected(5, quoted, "", "java.lang.IllegalStateException: boom", "worker-1"),
            expected(7, "fig", "48", "", "main"),
        ];
        assert_eq!(m.what, Some(What::Calls(proto::ObservedCalls { calls })), "the first call does not hold");

        o.push(&call_record(9, "p\u{e4}\u{e4}r", Ok(1), "main", started));
        let m = decoded(reader.next());
        assert_eq!(m.what, Some(What::Call(expected(9, "p\u{e4}\u{e4}r", "1", "", "main"))), "one call goes as one");
        assert!(matches!(reader.next(), Taken::Nothing { busy: false }));

        o.push(&call_record(0, "x", Ok(0), "main", started));
        assert!(matches!(reader.next(), Taken::Nothing { busy: true }), "taken, and left out");
        o.end("asked".into());
        assert_eq!(decoded(reader.next()).what, Some(What::Ended("asked".into())));
        assert!(matches!(reader.next(), Taken::End));
    }

    #[test]
    fn an_observation_rolls_back_once_and_its_stream_still_sends_what_was_queued() {
        use proto::observed::What;
        let observations = Arc::new(Observations::default());
        let (o, mut reader) = observations
            .start(Request { max_per_second: 1000, ..Request::new(Kind::Watch, "Shop.total".into(), "t".into()) });
        let runs = Arc::new(AtomicUsize::new(0));
        o.set_rollback(Box::new({
            let (runs, observations, id) = (runs.clone(), observations.clone(), o.id);
            move || {
                runs.fetch_add(1, Ordering::Relaxed);
                observations.remove(id);
            }
        }));
        let started = Stamp::now();
        o.push(&call_record(1, "kiwi", Ok(33), "main", started));
        o.push(&call_record(2, "fig", Ok(48), "main", started));
        // `stop`, then the stream's own end, then the clock a second later: one rollback.
        o.end("stopped".into());
        o.roll_back();
        assert!(observations.list().is_empty(), "rolled back: no longer listed");
        o.roll_back();
        assert_eq!(runs.load(Ordering::Relaxed), 1);
        let Some(What::Calls(batch)) = decoded(reader.next()).what else { panic!("the queued calls") };
        assert_eq!(batch.calls.iter().map(|c| c.args[0].as_str()).collect::<Vec<_>>(), ["1", "2"]);
        assert_eq!(decoded(reader.next()).what, Some(What::Ended("stopped".into())));
        assert!(matches!(reader.next(), Taken::End));
        o.roll_back();
        assert_eq!(runs.load(Ordering::Relaxed), 1);

        // What a stream did not take goes with it.
        let (o, reader) = observations.start(Request::new(Kind::Watch, "Shop.total".into(), "t".into()));
        o.push(&call_record(3, "plum", Ok(1), "main", started));
        assert!(o.queue.lock().unwrap().records == 1);
        drop(reader);
        let q = o.queue.lock().unwrap();
        assert_eq!((q.records, q.bytes.capacity()), (0, 0));
    }

    #[test]
    fn each_closed_frame_finds_its_own_record_even_past_frames_that_never_closed() {
        let mut t = ThreadCalls { frames: Vec::new(), scratch: vec![9, 9], name: None };
        open(&mut t, 1, b"outer");
        assert_eq!(t.frames[0].at, 0, "the first frame starts an empty scratch");
        open(&mut t, 2, b"inner");
        let inner = t.close(2).unwrap();
        assert_eq!(&t.scratch[inner.at..], b"inner");
        t.done(&inner);
        // A frame whose exit never runs (its probe was rolled back while it ran) ...
        open(&mut t, 3, b"abandoned");
        // ... is dropped when the frame it is inside writes or closes.
        assert_eq!(t.innermost(1), Some(0));
        assert_eq!(t.scratch, b"outer");
        t.scratch.extend_from_slice(b"+call");
        let outer = t.close(1).unwrap();
        assert_eq!(&t.scratch[outer.at..], b"outer+call");
        t.done(&outer);
        assert!(t.frames.is_empty() && t.scratch.is_empty());
        assert!(t.close(1).is_none(), "an exit without its entry is no frame");
    }

    #[test]
    fn no_frame_past_the_depth_limit() {
        let mut t = ThreadCalls { frames: Vec::new(), scratch: Vec::new(), name: None };
        for _ in 0..MAX_DEPTH {
            open(&mut t, 1, b"x");
        }
        assert_eq!(t.start(), None);
    }

    #[test]
    fn a_traced_calls_made_calls_read_back_with_what_ran_inside_them() {
        let inside = vec![proto::TraceCall { site: "Inner.run".into(), count: 2, ..Default::default() }];
        let mut b = Vec::new();
        put_made(&mut b, 3, 1500, false, &[]);
        put_made(&mut b, 7, 20, true, &inside);
        let made = read_made(&b, 2);
        assert_eq!(made.len(), 2);
        assert_eq!((made[0].site, made[0].ns, made[0].threw, made[0].inside.len()), (3, 1500, false, 0));
        assert_eq!((made[1].site, made[1].ns, made[1].threw), (7, 20, true));
        assert_eq!(made[1].inside, inside);
        assert_eq!(read_made(&b, 3).len(), 2, "no third call: nothing made up");
    }
}
