//! Observations: a method watched while an operator's stream lasts (`repairctl watch`, `monitor`).
//!
//! An observation is a probe patch of its own (entry with the arguments, exit with the return
//! value, exit by an exception), applied and rolled back through the patch manager like any patch,
//! so it composes with repairs on the same class; it is not journaled. The probes' hooks find the
//! observation by the patch's report id and pair entries with exits on a per-thread stack. What
//! they report goes into a bounded channel the stream reads: a client that reads too slowly loses
//! reports (counted), never slows the application.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use repair_model::journal::now_ms;
use repair_model::observe::{Call, Condition, Value};
use repair_model::proto;
use tokio::sync::mpsc;

use crate::jvm::{Jni, Jvmti, Local};
use crate::runtime::faults::FaultLog;

/// Reports queued for a stream before further ones are dropped.
pub const QUEUE: usize = 4096;
/// Arguments rendered per call.
const MAX_ARGS: usize = 16;
/// Deeper nesting than this (runaway recursion) is not observed.
const MAX_DEPTH: usize = 256;
/// Distinct call paths a stack observation counts; calls by others are not counted.
const MAX_PATHS: usize = 1000;
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
    pub who: String,
    pub started_ms: u64,
    /// End after this many reports (0: no limit).
    count: u64,
    /// Report one call in `sample` (raised under load).
    sample: AtomicU64,
    max_per_second: u64,
    pub calls: AtomicU64,
    /// Calls entered: sampling picks by this count.
    entered: AtomicU64,
    pub reported: AtomicU64,
    pub dropped: AtomicU64,
    ended: AtomicBool,
    /// `None` once ended: the stream then ends after what is queued.
    sender: Mutex<Option<mpsc::Sender<proto::Observed>>>,
    /// Reports in the current second: `(second, count)`.
    rate: Mutex<(u64, u64)>,
    /// Monitor: durations (ns) and failures of the current interval.
    window: Mutex<Window>,
    /// Stack: each call path seen, its count, and whether it changed since the last flush.
    paths: Mutex<HashMap<Vec<String>, (u64, bool)>>,
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
    pub sample: u64,
    pub count: u64,
    pub max_per_second: u64,
    pub who: String,
}

/// An observed call this thread is inside.
struct Frame {
    report_id: i32,
    started: Instant,
    start_ms: u64,
    /// Whether sampling picked it (only those are rendered and reported).
    picked: bool,
    /// Picked while the queue was full (and no condition to check): dropped, never rendered.
    dropping: bool,
    args: Vec<Value>,
}

thread_local! {
    static CALLS: RefCell<Vec<Frame>> = const { RefCell::new(Vec::new()) };
}

/// The observations in progress, by the report id of their probe patch.
#[derive(Default)]
pub struct Observations {
    next: AtomicU64,
    by_report: RwLock<HashMap<i32, Arc<Observation>>>,
    /// Made but not yet attached to a patch (between start and attach).
    by_id: RwLock<HashMap<u64, Arc<Observation>>>,
}

impl Observations {
    /// A new observation and the receiving end of its stream.
    pub fn start(&self, r: Request) -> (Arc<Observation>, mpsc::Receiver<proto::Observed>) {
        let id = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        let (tx, rx) = mpsc::channel(QUEUE);
        let o = Arc::new(Observation {
            id,
            kind: r.kind,
            target: r.target,
            patch_id: format!("observe-{id}"),
            condition: r.condition,
            who: r.who,
            started_ms: now_ms(),
            count: r.count,
            sample: AtomicU64::new(r.sample.max(1)),
            max_per_second: if r.max_per_second == 0 { 1000 } else { r.max_per_second },
            calls: AtomicU64::new(0),
            entered: AtomicU64::new(0),
            reported: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            ended: AtomicBool::new(false),
            sender: Mutex::new(Some(tx)),
            rate: Mutex::new((0, 0)),
            window: Mutex::new(Window { started_ms: now_ms(), ..Window::default() }),
            paths: Mutex::new(HashMap::new()),
        });
        self.by_id.write().unwrap_or_else(|e| e.into_inner()).insert(id, o.clone());
        (o, rx)
    }

    /// The probe patch is in effect under `report_id`: its hooks now reach the observation.
    pub fn attach(&self, o: &Arc<Observation>, report_id: i32) {
        self.by_report.write().unwrap_or_else(|e| e.into_inner()).insert(report_id, o.clone());
    }

    /// Forgets an observation (its patch is rolled back or never applied).
    pub fn remove(&self, id: u64) {
        self.by_report.write().unwrap_or_else(|e| e.into_inner()).retain(|_, o| o.id != id);
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

    fn by_report(&self, report_id: i32) -> Option<Arc<Observation>> {
        if report_id <= 0 {
            return None;
        }
        self.by_report.read().unwrap_or_else(|e| e.into_inner()).get(&report_id).cloned()
    }

    /// Whether `report_id` is an observation's (its hooks go here, not to the patch reports).
    pub fn observes(&self, report_id: i32) -> bool {
        self.by_report(report_id).is_some()
    }

    /// `Hooks.enter`/`enterArgs` of an observation's probe: the call starts.
    pub fn entered(&self, jvmti: Jvmti, jni: &Jni<'_>, faults: &FaultLog, report_id: i32, args: Option<&Local<'_>>) {
        let Some(o) = self.by_report(report_id) else { return };
        if o.ended.load(Ordering::Relaxed) {
            return;
        }
        if o.kind == Kind::Stack {
            let n = o.entered.fetch_add(1, Ordering::Relaxed) + 1;
            o.calls.fetch_add(1, Ordering::Relaxed);
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
        let n = o.entered.fetch_add(1, Ordering::Relaxed) + 1;
        let picked = o.kind == Kind::Monitor || n % o.sample.load(Ordering::Relaxed) == 0;
        // A report that cannot be queued is not rendered only to be dropped: a stalled client
        // costs the application next to nothing. (With a condition, the call must be rendered to
        // know whether it would be reported at all.)
        let dropping = picked && o.kind == Kind::Watch && o.condition.is_none() && o.queue_full();
        let args = match (o.kind, args) {
            (Kind::Watch, Some(a)) if picked && !dropping => jni.array_values(a, MAX_ARGS),
            _ => Vec::new(),
        };
        CALLS.with(|c| {
            let mut c = c.borrow_mut();
            if c.len() < MAX_DEPTH {
                c.push(Frame { report_id, started: Instant::now(), start_ms: now_ms(), picked, dropping, args });
            }
        });
    }

    /// `Hooks.exit`/`exitValue` or `Hooks.thrown` of an observation's probe: the call ends.
    pub fn exited(
        &self,
        jvmti: Jvmti,
        jni: &Jni<'_>,
        report_id: i32,
        value: Option<&Local<'_>>,
        threw: Option<&Local<'_>>,
    ) {
        let Some(o) = self.by_report(report_id) else { return };
        let Some(frame) = CALLS.with(|c| {
            let mut c = c.borrow_mut();
            let at = c.iter().rposition(|f| f.report_id == report_id)?;
            let frame = c.remove(at);
            c.truncate(at);
            Some(frame)
        }) else {
            return;
        };
        let Frame { started, start_ms, picked, dropping, args, .. } = frame;
        let duration_ns = started.elapsed().as_nanos() as u64;
        o.calls.fetch_add(1, Ordering::Relaxed);
        if o.ended.load(Ordering::Relaxed) || !picked {
            return;
        }
        if dropping {
            if o.within_rate() {
                o.dropped.fetch_add(1, Ordering::Relaxed);
            }
            return;
        }
        match o.kind {
            Kind::Monitor => {
                let mut w = o.window.lock().unwrap_or_else(|e| e.into_inner());
                w.durations.push(duration_ns);
                w.failures += u64::from(threw.is_some());
            }
            Kind::Stack => {}
            Kind::Watch => {
                let returned = match (threw, value) {
                    (None, Some(v)) => Some(jni.value(v)),
                    _ => None,
                };
                let exception = threw.map(|t| jni.class_name_of_object(t));
                let thread = jvmti.current_thread_name(jni).unwrap_or_else(|_| "?".to_string());
                let call = Call {
                    args: &args,
                    returned: returned.as_ref(),
                    exception: exception.as_deref(),
                    duration_ns,
                    thread: &thread,
                };
                if o.condition.as_ref().is_some_and(|c| !c.holds(&call)) {
                    return;
                }
                if !o.within_rate() {
                    return;
                }
                let thrown = threw.map(|t| match jni.throwable_message(t) {
                    Some(m) => format!("{}: {m}", exception.clone().unwrap_or_default()),
                    None => exception.clone().unwrap_or_default(),
                });
                let report = proto::ObservedCall {
                    thread,
                    start_ms,
                    duration_ns,
                    args: args.iter().map(Value::to_string).collect(),
                    returned: returned.map(|v| v.to_string()).unwrap_or_default(),
                    thrown: thrown.unwrap_or_default(),
                    method: o.target.clone(),
                };
                o.send(proto::observed::What::Call(report));
            }
        }
    }
}

impl Observation {
    pub fn has_ended(&self) -> bool {
        self.ended.load(Ordering::Relaxed)
    }

    /// Whether the queue has no room left: a report now would be dropped.
    fn queue_full(&self) -> bool {
        self.sender.lock().unwrap_or_else(|e| e.into_inner()).as_ref().is_some_and(|tx| tx.capacity() == 0)
    }

    /// Queues a report; when the queue is full (a slow client) it is dropped and counted.
    fn send(&self, what: proto::observed::What) {
        let sender = self.sender.lock().unwrap_or_else(|e| e.into_inner());
        let Some(tx) = sender.as_ref() else { return };
        let message =
            proto::Observed { observation: self.id, what: Some(what), dropped: self.dropped.load(Ordering::Relaxed) };
        if tx.try_send(message).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let reported = self.reported.fetch_add(1, Ordering::Relaxed) + 1;
        drop(sender);
        // A stack observation counts calls, not the paths it reports.
        if self.count > 0 && reported >= self.count && self.kind != Kind::Stack {
            self.end(format!("{reported} reports, as asked (-n)"));
        }
    }

    /// Whether one more report fits this second's quota; over it, sampling halves the reports
    /// (said on the stream), and past the sparsest sampling the observation ends.
    fn within_rate(&self) -> bool {
        let second = now_ms() / 1000;
        let mut rate = self.rate.lock().unwrap_or_else(|e| e.into_inner());
        if rate.0 != second {
            *rate = (second, 0);
        }
        rate.1 += 1;
        if rate.1 <= self.max_per_second {
            return true;
        }
        if rate.1 == self.max_per_second + 1 {
            drop(rate);
            let sample = self.sample.load(Ordering::Relaxed) * 2;
            if sample > MAX_SAMPLE {
                self.end(format!(
                    "more than {} reports a second even at one call in {MAX_SAMPLE}: stopped to spare the application",
                    self.max_per_second
                ));
            } else {
                self.sample.store(sample, Ordering::Relaxed);
                self.notice(format!(
                    "more than {} reports a second: now one call in {sample} is reported",
                    self.max_per_second
                ));
            }
        }
        false
    }

    fn notice(&self, text: String) {
        let sender = self.sender.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(tx) = sender.as_ref() {
            let message = proto::Observed {
                observation: self.id,
                what: Some(proto::observed::What::Notice(text)),
                dropped: self.dropped.load(Ordering::Relaxed),
            };
            let _ = tx.try_send(message);
        }
    }

    /// Ends the observation: `reason` is the stream's last message (a full queue makes room for it
    /// by waiting on no one: it is sent from a thread of the control plane if need be).
    pub fn end(&self, reason: String) {
        if self.ended.swap(true, Ordering::Relaxed) {
            return;
        }
        let Some(tx) = self.sender.lock().unwrap_or_else(|e| e.into_inner()).take() else { return };
        let message = proto::Observed {
            observation: self.id,
            what: Some(proto::observed::What::Ended(reason)),
            dropped: self.dropped.load(Ordering::Relaxed),
        };
        if let Err(mpsc::error::TrySendError::Full(message)) = tx.try_send(message) {
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(async move {
                    let _ = tx.send(message).await;
                });
            }
        }
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
            }
            .to_string(),
            target: self.target.clone(),
            condition: self.condition.as_ref().map(|c| c.to_string()).unwrap_or_default(),
            started_ms: self.started_ms,
            calls: self.calls.load(Ordering::Relaxed),
            reported: self.reported.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            who: self.who.clone(),
        }
    }
}
