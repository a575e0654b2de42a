//! Observations: a method watched while an operator's stream lasts (`repairctl watch`, `monitor`).
//!
//! An observation is a probe patch of its own (entry with the arguments, exit with the return
//! value, exit by an exception), applied and rolled back through the patch manager like any patch,
//! so it composes with repairs on the same class; it is not journaled. The probes' hooks find the
//! observation by the patch's report id and pair entries with exits on a per-thread stack.
//!
//! The application's thread does only what cannot wait: it reads the values of the call (objects
//! do not outlive it) and queues them; the stream, on the control plane, checks the condition,
//! renders the text, applies the byte and report quotas and counts `-n`. The queue is bounded and
//! polled, never signalled: a client that reads too slowly loses reports (counted), never slows the
//! application, and no report costs the application a wakeup.
//!
//! A rule's health signal (`validate.health`) is an observation too, of kind [`Kind::Health`],
//! that streams to nobody: it judges, on the application's thread, the first call of its method
//! after a fallback of a repair it judges ([`Health`]), and tells the policy engine of a failure.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use repair_bytecode::descriptor::{FieldType, MethodDescriptor};
use repair_model::journal::now_ms;
use repair_model::observe::{Call, Condition, Expr, Part, Root, Template, Value};
use repair_model::proto;

use crate::jvm::{Jni, Jvmti, Local};
use crate::runtime::clock::{self, Stamp};
use crate::runtime::faults::FaultLog;
use crate::runtime::IntMap;

/// Reports queued for a stream before further ones are dropped.
pub const QUEUE: usize = 4096;
/// Arguments rendered per call.
const MAX_ARGS: usize = 16;
/// Deeper nesting than this (runaway recursion) is not observed.
const MAX_DEPTH: usize = 256;
/// Calls a traced call keeps (a long loop's first ones).
const MAX_CALLS: usize = 4096;
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

/// What waits for an observation's stream.
#[derive(Default)]
struct Queue {
    items: Vec<Pending>,
    ended: Option<String>,
    /// The stream has taken the last message.
    finished: bool,
}

enum Pending {
    /// A watched call as captured on its thread: rendered and judged by the stream.
    Call(Captured),
    /// A traced call as captured on its thread: its tree is built by the stream.
    Trace(Traced),
    /// A report built where it happened.
    Report(proto::observed::What),
}

/// A traced call: the calls it made, in the order they ended.
struct Traced {
    report_id: i32,
    thread: Arc<str>,
    start_ms: u64,
    duration_ns: u64,
    calls: Vec<Made>,
    thrown: Option<String>,
}

/// A watched call's values, read on the application's thread; everything else about its report
/// is done on the control plane.
struct Captured {
    report_id: i32,
    thread: Arc<str>,
    start_ms: u64,
    duration_ns: u64,
    args: Vec<Value>,
    this: Option<Value>,
    /// The observation's paths (by their index in `exprs`) and their values.
    values: Vec<(usize, Value)>,
    returned: Option<Value>,
    /// The class of the exception the call threw, and its message.
    thrown: Option<(String, Option<String>)>,
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
    /// The arguments as captured.
    args: Vec<Value>,
    /// `this` as captured, when asked for.
    this: Option<Value>,
    /// The values of the observation's paths rooted in the arguments and `this`, by the path's
    /// index in `exprs`.
    values: Vec<(usize, Value)>,
    /// Trace: the calls made so far, and the one in progress with the traced calls made inside
    /// it (deeper levels).
    calls: Vec<Made>,
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

thread_local! {
    /// This thread's last [`Observations::by_report`] answer, keyed by the observations, their
    /// generation and the report id.
    #[allow(clippy::type_complexity)]
    static LAST_FOUND: RefCell<Option<((usize, u64, i32), Option<Arc<Observation>>)>> = const { RefCell::new(None) };
    static CALLS: RefCell<Vec<Frame>> = const { RefCell::new(Vec::new()) };
    /// This thread's name and when it was read: asking JVMTI on every report costs more than the
    /// rest of the report (a thread is renamed rarely; the name is read again each second).
    static THREAD_NAME: RefCell<Option<(Arc<str>, Stamp)>> = const { RefCell::new(None) };
    /// When the fallback a health signal's call last judged on this thread ran: each fallback
    /// is judged by the first call after it only.
    static JUDGED_FALLBACK: Cell<Option<Instant>> = const { Cell::new(None) };
}

fn thread_name(jvmti: Jvmti, jni: &Jni<'_>, now: Stamp) -> Arc<str> {
    THREAD_NAME.with(|t| {
        let mut t = t.borrow_mut();
        match &*t {
            Some((name, at)) if at.ns_until(now) < 1_000_000_000 => name.clone(),
            _ => {
                let name: Arc<str> = jvmti.current_thread_name(jni).unwrap_or_else(|_| "?".to_string()).into();
                *t = Some((name.clone(), now));
                name
            }
        }
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
        });
        self.by_id.write().unwrap_or_else(|e| e.into_inner()).insert(id, o.clone());
        (o.clone(), Reader { o, batch: VecDeque::new(), known: None })
    }

    /// A probe patch of `o` is in effect under `report_id`, on `method` (as reports name it): its
    /// hooks now reach the observation.
    pub fn attach(&self, o: &Arc<Observation>, report_id: i32, method: String) {
        o.methods.lock().unwrap_or_else(|e| e.into_inner()).insert(report_id, method);
        self.by_report.write().unwrap_or_else(|e| e.into_inner()).insert(report_id, o.clone());
        self.generation.fetch_add(1, Ordering::Release);
    }

    /// Forgets an observation (its patch is rolled back or never applied).
    pub fn remove(&self, id: u64) {
        self.by_report.write().unwrap_or_else(|e| e.into_inner()).retain(|_, o| o.id != id);
        self.generation.fetch_add(1, Ordering::Release);
        if let Some(o) = self.by_id.write().unwrap_or_else(|e| e.into_inner()).remove(&id) {
            // A thread's last answer may hold the observation a while longer: not its queue.
            o.queue.lock().unwrap_or_else(|e| e.into_inner()).items = Vec::new();
        }
    }

    pub fn list(&self) -> Vec<Arc<Observation>> {
        let mut v: Vec<_> = self.by_id.read().unwrap_or_else(|e| e.into_inner()).values().cloned().collect();
        v.sort_by_key(|o| o.id);
        v
    }

    pub fn get(&self, id: u64) -> Option<Arc<Observation>> {
        self.by_id.read().unwrap_or_else(|e| e.into_inner()).get(&id).cloned()
    }

    /// Runs `f` with the observation of a report id, if any. Every call of every probed method
    /// asks this, twice: each thread keeps its last answer while no observation was attached or
    /// removed, and lends it (no reference count taken and dropped on every hook).
    fn with_report<R>(&self, report_id: i32, f: impl FnOnce(&Arc<Observation>) -> R) -> Option<R> {
        if report_id <= 0 {
            return None;
        }
        let key = (self as *const Self as usize, self.generation.load(Ordering::Acquire), report_id);
        let look_up = || self.by_report.read().unwrap_or_else(|e| e.into_inner()).get(&report_id).cloned();
        LAST_FOUND.with(|last| {
            if let Ok(last) = last.try_borrow() {
                if let Some((k, found)) = &*last {
                    if *k == key {
                        return found.as_ref().map(f);
                    }
                }
            }
            let found = look_up();
            // A hook inside `f` on this thread (re-entered) finds the cache lent: it only looks up.
            if let Ok(mut last) = last.try_borrow_mut() {
                *last = Some((key, found.clone()));
            }
            found.as_ref().map(f)
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
        args: Option<&Local<'_>>,
    ) -> bool {
        self.with_report(report_id, |o| {
            if !o.ended.load(Ordering::Relaxed) {
                o.entered(jvmti, jni, faults, report_id, args);
            }
        })
        .is_some()
    }

    /// `Hooks.exit`/`exitValue` or `Hooks.thrown` of an observation's probe: the call ends.
    /// False when `report_id` is not an observation's.
    pub fn exited(
        &self,
        jvmti: Jvmti,
        jni: &Jni<'_>,
        report_id: i32,
        value: Option<&Local<'_>>,
        threw: Option<&Local<'_>>,
    ) -> bool {
        self.with_report(report_id, |o| o.exited(jvmti, jni, report_id, value, threw)).is_some()
    }
}

impl Observation {
    fn entered(
        self: &Arc<Self>,
        jvmti: Jvmti,
        jni: &Jni<'_>,
        faults: &FaultLog,
        report_id: i32,
        args: Option<&Local<'_>>,
    ) {
        let o = self;
        if o.kind == Kind::Health {
            return o.health_entered(jni, report_id, args);
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
        let (mut shown, mut this, mut values) = (Vec::new(), None, Vec::new());
        if let (Kind::Watch, Some(array), true, false) = (o.kind, args, picked, dropping) {
            let mut elements = jni.array_elements(array, MAX_ARGS + 1);
            let this_local = if o.this { elements.pop() } else { None };
            shown.reserve_exact(elements.len());
            for (i, e) in elements.iter().enumerate() {
                shown.push(o.capture(jni, e, i));
            }
            this = this_local.map(|t| o.capture(jni, &t, MAX_ARGS));
            for (i, x) in o.exprs.iter().enumerate() {
                let root = match x.root {
                    Root::Arg(i) => elements.get(i),
                    Root::This => this_local.as_ref(),
                    Root::Return => continue,
                };
                if let Some(root) = root {
                    values.push((i, extract(jni, root, x)));
                }
            }
            // The element references are freed as the hook returns to Java (at most MAX_ARGS + 1
            // of them, within what a native method may hold).
        }
        let started = Stamp::now();
        CALLS.with(|c| {
            let mut c = c.borrow_mut();
            if c.len() < MAX_DEPTH {
                c.push(Frame {
                    report_id,
                    observation: o.id,
                    started,
                    picked,
                    dropping,
                    args: shown,
                    this,
                    values,
                    calls: Vec::new(),
                    open_call: None,
                    inside: Vec::new(),
                    cost_ns: began.map_or(0, |b| b.ns_until(started)),
                    measured,
                });
            }
        });
    }

    fn exited(
        self: &Arc<Self>,
        jvmti: Jvmti,
        jni: &Jni<'_>,
        report_id: i32,
        value: Option<&Local<'_>>,
        threw: Option<&Local<'_>>,
    ) {
        let o = self;
        let Some(frame) = CALLS.with(|c| {
            let mut c = c.borrow_mut();
            let at = c.iter().rposition(|f| f.report_id == report_id)?;
            let frame = c.remove(at);
            c.truncate(at);
            Some(frame)
        }) else {
            return;
        };
        let began = Stamp::now();
        let Frame {
            started,
            picked,
            dropping,
            args,
            this,
            mut values,
            mut calls,
            open_call,
            mut inside,
            cost_ns,
            measured,
            ..
        } = frame;
        let duration_ns = started.ns_until(began);
        let start_ms = started.epoch_ms();
        if o.ended.load(Ordering::Relaxed) || !picked {
            return;
        }
        if dropping {
            o.hot.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        match o.kind {
            Kind::Monitor => {
                let mut w = o.window.lock().unwrap_or_else(|e| e.into_inner());
                w.durations.push(duration_ns);
                w.failures += u64::from(threw.is_some());
            }
            Kind::Stack | Kind::Snapshot | Kind::Log => {}
            Kind::Health => o.health_exited(jvmti, jni, started, &mut values, value, threw),
            Kind::Trace => {
                // A call still open when the method exits ended by an exception.
                if let Some((site, at)) = open_call {
                    let inside = std::mem::take(&mut inside);
                    let ns = at.ns_until(began);
                    calls.push(Made { site, ns, threw: true, inside });
                }
                // Inside a call of another traced method of this observation (`--depth`, or
                // recursion): nested there, as a tree (rare: built here).
                let nested = CALLS.with(|c| {
                    let mut c = c.borrow_mut();
                    let parent = c.iter_mut().rev().find(|f| f.observation == o.id)?;
                    parent.open_call?;
                    let method = o.method_of(report_id);
                    let tree = merge(std::mem::take(&mut calls), o.sites.get(&method).map_or(&[][..], Vec::as_slice));
                    parent.inside.push(proto::TraceCall {
                        site: method.split('(').next().unwrap_or(&method).to_string(),
                        count: 1,
                        total_ns: duration_ns,
                        max_ns: duration_ns,
                        threw: threw.is_some(),
                        calls: tree,
                    });
                    Some(())
                });
                if nested.is_some() || (o.sites.len() > 1 && o.method_of(report_id) != o.root) {
                    return;
                }
                o.spent(measured, cost_ns, began);
                if duration_ns < o.min_ns {
                    return;
                }
                o.push(Pending::Trace(Traced {
                    report_id,
                    thread: thread_name(jvmti, jni, began),
                    start_ms,
                    duration_ns,
                    calls,
                    thrown: threw.map(|t| jni.class_name_of_object(t)),
                }));
            }
            Kind::Watch => {
                let returned = match (threw, value) {
                    (None, Some(v)) => {
                        for (i, x) in o.exprs.iter().enumerate().filter(|(_, x)| x.root == Root::Return) {
                            values.push((i, extract(jni, v, x)));
                        }
                        Some(o.capture(jni, v, MAX_ARGS + 1))
                    }
                    _ => None,
                };
                let thrown = threw.map(|t| (jni.class_name_of_object(t), jni.throwable_message(t)));
                o.spent(measured, cost_ns, began);
                o.push(Pending::Call(Captured {
                    report_id,
                    thread: thread_name(jvmti, jni, began),
                    start_ms,
                    duration_ns,
                    args,
                    this,
                    values,
                    returned,
                    thrown,
                }));
            }
        }
    }
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
    fn health_entered(&self, jni: &Jni<'_>, report_id: i32, args: Option<&Local<'_>>) {
        let Some(health) = &self.health else { return };
        if health.judging.load(Ordering::Relaxed) == 0 {
            return;
        }
        let judging = health.due().is_some();
        if !judging && !CALLS.with(|c| c.borrow().iter().any(|f| f.report_id == report_id)) {
            return;
        }
        if judging {
            // The calls it shows in `repairctl observations`: those that judged a fallback.
            self.hot.entered.fetch_add(1, Ordering::Relaxed);
        }
        let mut values = Vec::new();
        if let (true, Some(array)) = (judging, args) {
            let mut elements = jni.array_elements(array, MAX_ARGS + 1);
            let this = if self.this { elements.pop() } else { None };
            for (i, x) in self.exprs.iter().enumerate() {
                let root = match x.root {
                    Root::Arg(n) => elements.get(n),
                    Root::This => this.as_ref(),
                    Root::Return => continue,
                };
                if let Some(root) = root {
                    values.push((i, extract(jni, root, x)));
                }
            }
        }
        CALLS.with(|c| {
            let mut c = c.borrow_mut();
            if c.len() < MAX_DEPTH {
                c.push(Frame {
                    report_id,
                    observation: self.id,
                    started: Stamp::now(),
                    picked: judging,
                    dropping: false,
                    args: Vec::new(),
                    this: None,
                    values,
                    calls: Vec::new(),
                    open_call: None,
                    inside: Vec::new(),
                    cost_ns: 0,
                    measured: false,
                });
            }
        });
    }

    /// A judging call of a health signal's method ends: whether it meets the failure condition
    /// is counted for the repair whose fallback it follows (the thread's latest, if still due),
    /// and a failure is told to the policy engine at once.
    fn health_exited(
        &self,
        jvmti: Jvmti,
        jni: &Jni<'_>,
        started: Stamp,
        values: &mut Vec<(usize, Value)>,
        value: Option<&Local<'_>>,
        threw: Option<&Local<'_>>,
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
        let thread = thread_name(jvmti, jni, now);
        let call = Call {
            values: &named,
            exception: exception.as_deref(),
            duration_ns: started.ns_until(now),
            thread: &thread,
        };
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
        CALLS.with(|c| {
            if let Some(f) = c.borrow_mut().iter_mut().rev().find(|f| f.report_id == report_id) {
                if f.picked {
                    // A call still open threw, and the method caught it.
                    if let Some((open, at)) = f.open_call.take() {
                        let inside = std::mem::take(&mut f.inside);
                        if f.calls.len() < MAX_CALLS {
                            f.calls.push(Made { site: open, ns: at.elapsed_ns(), threw: true, inside });
                        }
                    }
                    f.open_call = Some((site as u16, Stamp::now()));
                }
            }
        });
    }

    /// `Hooks.callExit`: call `site` returned.
    pub fn call_exited(&self, report_id: i32, site: i32) {
        CALLS.with(|c| {
            if let Some(f) = c.borrow_mut().iter_mut().rev().find(|f| f.report_id == report_id) {
                if let Some((open, at)) = f.open_call.take() {
                    let inside = std::mem::take(&mut f.inside);
                    if open as i32 == site && f.calls.len() < MAX_CALLS {
                        f.calls.push(Made { site: open, ns: at.elapsed_ns(), threw: false, inside });
                    }
                }
            }
        });
    }

    /// `Hooks.snapshot` of an observation's snapshot point: the line is reached with `locals`.
    pub fn snapshot(&self, jvmti: Jvmti, jni: &Jni<'_>, faults: &FaultLog, report_id: i32, locals: Option<&Local<'_>>) {
        let Some(o) = self.with_report(report_id, Arc::clone) else { return };
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
                        thread: thread_name(jvmti, jni, Stamp::now()).to_string(),
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
fn extract(jni: &Jni<'_>, root: &Local<'_>, x: &Expr) -> Value {
    if x.fields.is_empty() {
        return jni.value(root);
    }
    jni.field_path(root, &x.fields).unwrap_or_else(|e| Value::Object(format!("<{e}>")))
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
    fn capture(&self, jni: &Jni<'_>, v: &Local<'_>, at: usize) -> Value {
        let plain = match self.hints.get(at) {
            Some(hint) => jni.value_hinted(v, hint),
            None => jni.value(v),
        };
        match (self.depth, plain) {
            (0, plain) => plain,
            (d, Value::Object(_)) => Value::Object(jni.render(v, d, 16)),
            (_, plain) => plain,
        }
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

    /// Queues a report; when the queue is full (a slow client) it is dropped and counted.
    fn push(&self, item: Pending) {
        let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        if q.ended.is_some() {
            return;
        }
        if q.items.len() >= QUEUE {
            drop(q);
            self.hot.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        q.items.push(item);
        self.hot.queued.store(q.items.len(), Ordering::Relaxed);
    }

    fn send(&self, what: proto::observed::What) {
        self.push(Pending::Report(what))
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
        let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        if q.ended.is_none() {
            q.items.push(Pending::Report(proto::observed::What::Notice(text)));
        }
    }

    /// Ends the observation: `reason` is the stream's last message, after what is queued.
    pub fn end(&self, reason: String) {
        if self.ended.swap(true, Ordering::Relaxed) {
            return;
        }
        self.queue.lock().unwrap_or_else(|e| e.into_inner()).ended = Some(reason);
    }

    /// The stream's message for a queued item, or `None` when it is not reported: a call that
    /// does not meet the condition or the quota, or comes after `-n` reports.
    /// `known`: the method of the last report, kept by the stream between reports (looking it
    /// up costs a lock, and its call sites a string hash).
    fn deliver(&self, item: Pending, known: &mut Option<MethodInfo>) -> Option<proto::Observed> {
        // A stack observation counts calls, not the paths it reports.
        let counted = self.kind != Kind::Stack;
        if counted && self.count > 0 && self.reported.load(Ordering::Relaxed) >= self.count {
            return None;
        }
        let what = match item {
            Pending::Report(what) => what,
            Pending::Call(call) => {
                let method = &self.method_info(call.report_id, known).method;
                proto::observed::What::Call(self.render(call, method)?)
            }
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
        let reported = self.reported.fetch_add(1, Ordering::Relaxed) + 1;
        if counted && self.count > 0 && reported >= self.count {
            self.end(format!("{reported} reports, as asked (-n)"));
        }
        Some(proto::Observed {
            observation: self.id,
            what: Some(what),
            dropped: self.hot.dropped.load(Ordering::Relaxed),
        })
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

    /// A captured call of `method` as the stream shows it, if it meets the condition and the
    /// quotas.
    fn render(&self, c: Captured, method: &str) -> Option<proto::ObservedCall> {
        let values: Vec<(String, Value)> =
            c.values.into_iter().filter_map(|(i, v)| Some((self.exprs.get(i)?.text.clone(), v))).collect();
        let exception = c.thrown.as_ref().map(|(class, _)| class.as_str());
        let call = Call { values: &values, exception, duration_ns: c.duration_ns, thread: &c.thread };
        if self.condition.as_ref().is_some_and(|cond| !cond.holds(&call)) {
            return None;
        }
        let args: Vec<String> = c.args.iter().map(Value::shown).collect();
        let returned = c.returned.map(|v| v.shown()).unwrap_or_default();
        let this = c.this.map(|v| v.shown()).unwrap_or_default();
        let shown: HashMap<String, String> = self
            .show
            .iter()
            .filter_map(|x| values.iter().find(|(k, _)| *k == x.text))
            .map(|(k, v)| (k.clone(), v.to_string()))
            .collect();
        let bytes = args.iter().map(String::len).sum::<usize>()
            + returned.len()
            + this.len()
            + shown.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>();
        if !self.charge(1, bytes as u64) {
            return None;
        }
        let thrown = c.thrown.map(|(class, message)| match message {
            Some(m) => format!("{class}: {m}"),
            None => class,
        });
        Some(proto::ObservedCall {
            thread: c.thread.to_string(),
            start_ms: c.start_ms,
            duration_ns: c.duration_ns,
            args,
            returned,
            thrown: thrown.unwrap_or_default(),
            method: method.to_string(),
            values: shown,
            this,
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
    /// Items taken from the queue, not yet delivered (the queue's buffer, taken whole: the
    /// queue gets this one's back, as empty).
    batch: VecDeque<Pending>,
    /// The method of the last report delivered.
    known: Option<MethodInfo>,
}

/// The method of a report id's probes, as reports show it, and its call sites (trace).
struct MethodInfo {
    report_id: i32,
    method: String,
    sites: Vec<String>,
}

/// What [`Reader::next`] found (matched at once: a box would cost an allocation a report).
#[allow(clippy::large_enum_variant)]
pub enum Taken {
    Report(proto::Observed),
    /// Nothing to report now; `busy` when items were taken and left out (by the condition or a
    /// quota) since the last report.
    Nothing {
        busy: bool,
    },
    /// The observation ended and everything before its end was delivered.
    End,
}

impl Reader {
    /// `first` and the reports of its kind (`same`) next in the batch, delivered, up to
    /// [`REPORTS_A_MESSAGE`]; `of` takes each out of its message.
    fn gather<T>(
        &mut self,
        first: T,
        same: fn(&Pending) -> bool,
        of: fn(proto::observed::What) -> Option<T>,
    ) -> Vec<T> {
        let mut all = vec![first];
        while all.len() < REPORTS_A_MESSAGE && self.batch.front().is_some_and(same) {
            let Some(item) = self.batch.pop_front() else { break };
            all.extend(self.o.deliver(item, &mut self.known).and_then(|m| m.what).and_then(of));
        }
        all
    }

    /// The next message ready now. Watched calls (or traced calls) that are ready together go
    /// out as one message (up to [`REPORTS_A_MESSAGE`]): a message each costs the stream and its
    /// client more than the calls' own bytes when they come by the hundred thousand a second.
    pub fn next(&mut self) -> Taken {
        use proto::observed::What;
        let mut busy = false;
        loop {
            while let Some(item) = self.batch.pop_front() {
                busy = true;
                let Some(mut m) = self.o.deliver(item, &mut self.known) else { continue };
                m.what = match m.what.take() {
                    Some(What::Call(first)) => Some(
                        match self.gather(
                            first,
                            |p| matches!(p, Pending::Call(_)),
                            |w| match w {
                                What::Call(c) => Some(c),
                                _ => None,
                            },
                        ) {
                            mut calls if calls.len() == 1 => What::Call(calls.remove(0)),
                            calls => What::Calls(proto::ObservedCalls { calls }),
                        },
                    ),
                    Some(What::Trace(first)) => Some(
                        match self.gather(
                            first,
                            |p| matches!(p, Pending::Trace(_)),
                            |w| match w {
                                What::Trace(t) => Some(t),
                                _ => None,
                            },
                        ) {
                            mut trees if trees.len() == 1 => What::Trace(trees.remove(0)),
                            trees => What::Traces(proto::TraceTrees { trees }),
                        },
                    ),
                    what => what,
                };
                m.dropped = self.o.hot.dropped.load(Ordering::Relaxed);
                return Taken::Report(m);
            }
            let mut q = self.o.queue.lock().unwrap_or_else(|e| e.into_inner());
            if q.items.is_empty() {
                if q.finished {
                    return Taken::End;
                }
                let Some(reason) = q.ended.clone() else { return Taken::Nothing { busy } };
                q.finished = true;
                drop(q);
                let what = proto::observed::What::Ended(reason);
                let dropped = self.o.hot.dropped.load(Ordering::Relaxed);
                return Taken::Report(proto::Observed { observation: self.o.id, what: Some(what), dropped });
            }
            // Both conversions reuse the buffers (the batch is empty): nothing moves or grows.
            let mut items: Vec<Pending> = std::mem::take(&mut self.batch).into();
            std::mem::swap(&mut q.items, &mut items);
            self.o.hot.queued.store(0, Ordering::Relaxed);
            drop(q);
            self.batch = items.into();
        }
    }
}
