//! Self-healing: the policy engine's thread. It is told of every fault occurrence, lets the
//! engine decide, localizes the repair site, applies the rule's action through the patch manager,
//! then watches the repair for the rule's validation window: a repair that lets faults of other
//! kinds through the method, that leaves the fault it repairs happening, or whose fallback rate
//! exceeds the rule's limit is rolled back, and the rule's next action is tried when the fault
//! comes back. A fault that follows one of a repair's fallbacks on the same thread (the caller
//! failed on the fallback value) counts against the repair, under validation and for as long as
//! a kept repair stays in force. A rule may name a health signal (`validate.health`): the first
//! call of its method after one of the rule's repair's fallbacks on a thread says whether the
//! application answered well; a failing one counts against the repair as such a fault does.
//! Every step is an event with its reason and, for patches, a journal record.
//!
//! One thread does all of it, attached to the JVM (as a daemon) only while it applies or rolls
//! back; it blocks while nothing is under validation. JVM threads hand it occurrences through a
//! bounded channel and do not wait for it, except a thread a fault is about to end (rare): it
//! waits, bounded, until the thread has handled that fault, so that a durable rule's repair is
//! journaled before the thread, or the JVM, is gone.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use repair_bytecode::transform::ProbePoint;
use repair_model::journal::RepairedFault;
use repair_model::policy::{self, Decision, Engine, FrameRef, Observation, Policy};
use repair_model::rank;
use repair_model::spec::{Action, PatchSpec};

use crate::config::FaultMode;
use crate::events::{About, EventLog, Kind};
use crate::journal::{Journal, Refusal};
use crate::jvm::{JavaVm, Jni, Jvmti};
use crate::observe::{Judged, Observations};
use crate::patches::{AppliedPatch, PatchManager};
use crate::runtime::faults::{Fault, FaultLog, Occurrence};
use crate::runtime::hooks::ATTRIBUTION;

/// What the healer works with, handed down by the lifecycle that owns each part.
#[derive(Clone, Copy)]
pub struct Parts {
    pub vm: JavaVm,
    pub jvmti: Jvmti,
    /// How faults are captured in fact.
    pub fault_mode: FaultMode,
    pub faults: &'static FaultLog,
    pub patches: &'static PatchManager,
    pub events: &'static EventLog,
    pub journal: &'static Journal,
    /// Where the policy's health signals run, as observations streamed to nobody.
    pub observations: &'static Observations,
}

/// Occurrences waiting for the engine; more are dropped (the next one carries the count).
const QUEUE: usize = 4096;
/// How often repairs under validation are checked for faults that say they do not hold.
const CHECK_EVERY: Duration = Duration::from_millis(50);
/// Faults counted in the first moments after an apply may come from calls already running the
/// old code: the baseline for "new faults" is taken this long after the apply.
const SETTLE: Duration = Duration::from_millis(100);
/// How long occurrences queued before a rollback are still recognized as the undone repair's.
const UNDONE_MEMORY: Duration = Duration::from_secs(5);

/// Per-rule counts, for `repairctl policy show`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuleStats {
    pub fired: u64,
    pub applied: u64,
    pub validated: u64,
    /// Kept without enough calls for a verdict.
    pub unproven: u64,
    pub rolled_back: u64,
    pub held: u64,
}

/// The policy in force and what its rules did.
#[derive(Debug, Clone)]
pub struct PolicyState {
    pub policy: Policy,
    pub loaded_at_ms: u64,
    pub who: String,
    pub stats: HashMap<String, RuleStats>,
}

#[derive(Default)]
pub struct Healer {
    sender: Mutex<Option<SyncSender<Occurrence>>>,
    /// A policy handed over by `replace`, picked up by the thread.
    incoming: Mutex<Option<(Policy, String)>>,
    state: Mutex<Option<PolicyState>>,
    /// The fault log, once started: told of the thread only while a policy is in force, so that
    /// without one a throw never wakes the thread.
    faults: std::sync::OnceLock<&'static FaultLog>,
    /// Durable repairs restored from the journal, with the fault their records name, waiting
    /// for the thread to validate them again ([`Healer::validate_restored`]).
    restored: Mutex<Vec<(AppliedPatch, Option<RepairedFault>)>>,
}

/// The name the thread has in the JVM while it is attached for a call.
const THREAD: &str = "repair-healer";

/// A wake-up for the thread, not a fault (fault ids start at 1).
const WAKE: u64 = 0;
/// Not a fault either: a health signal's call failed after the fallback `after_fallback` names.
const HEALTH_FAILED: u64 = u64::MAX;

impl Healer {
    /// Starts the thread (once the VM is live) and subscribes it to the faults.
    pub fn start(&'static self, agent: Parts) {
        let (tx, rx) = mpsc::sync_channel(QUEUE);
        *self.sender.lock().unwrap_or_else(|e| e.into_inner()) = Some(tx.clone());
        let _ = self.faults.set(agent.faults);
        if let Some(state) = self.state.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
            agent.faults.set_application(&state.policy.application);
            agent.faults.observe(Some(tx));
        }
        let spawned = std::thread::Builder::new().name("repair-healer".into()).spawn(move || {
            let done = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(agent, self, rx)));
            if done.is_err() {
                agent.faults.observe(None);
                crate::log_error!("self-healing stopped after an internal error; patches in effect stay");
            }
        });
        if let Err(e) = spawned {
            crate::log_error!("self-healing off: cannot start its thread: {e}");
        }
    }

    /// Replaces the policy: shown at once, in force as soon as the thread picks it up; `who` is
    /// journaled with its events.
    pub fn replace(&self, policy: Policy, who: String) {
        *self.state.lock().unwrap_or_else(|e| e.into_inner()) = Some(PolicyState {
            policy: policy.clone(),
            loaded_at_ms: repair_model::journal::now_ms(),
            who: who.clone(),
            stats: HashMap::new(),
        });
        let application = policy.application.clone();
        *self.incoming.lock().unwrap_or_else(|e| e.into_inner()) = Some((policy, who));
        if let Some(tx) = self.sender.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
            if let Some(faults) = self.faults.get() {
                faults.set_application(&application);
                faults.observe(Some(tx.clone()));
            }
            let wake = Occurrence { fault_id: WAKE, count: 0, at: Instant::now(), after_fallback: None, ending: None };
            let _ = tx.try_send(wake);
        }
    }

    /// A rule's durable repair, restored from the journal at this start (`fault` as its record
    /// names it): validated again like a new repair, under the rule of that name in the policy
    /// in force, except that one call through it is evidence enough (it was kept on evidence
    /// before, or for a fault that happens once a start, as at deploy time). Returns how, for the
    /// `restored` event, or why it is not.
    pub fn validate_restored(&self, patch: AppliedPatch, fault: Option<RepairedFault>) -> Result<String, String> {
        let rule_name = patch.who.strip_prefix("rule:").ok_or("not a rule's repair")?;
        let how = {
            let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
            let policy = state.as_ref().map(|s| &s.policy).ok_or("no policy in force")?;
            let rule = policy
                .rules
                .iter()
                .find(|r| r.name == rule_name)
                .ok_or_else(|| format!("the policy in force has no rule {rule_name}"))?;
            format!(
                "restored; validating under rule {rule_name}: window {:?}, at least {} call by {:?}",
                rule.validate_window,
                rule.min_calls.min(1),
                rule.max_window
            )
        };
        self.restored.lock().unwrap_or_else(|e| e.into_inner()).push((patch, fault));
        if let Some(tx) = self.sender.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
            let wake = Occurrence { fault_id: WAKE, count: 0, at: Instant::now(), after_fallback: None, ending: None };
            let _ = tx.try_send(wake);
        }
        Ok(how)
    }

    pub fn state(&self) -> Option<PolicyState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn stats(&self, rule: &str, f: impl FnOnce(&mut RuleStats)) {
        if let Some(s) = self.state.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
            f(s.stats.entry(rule.to_string()).or_default());
        }
    }
}

/// A repair under validation.
struct Watch {
    patch: AppliedPatch,
    rule: String,
    /// The throw site the engine keys the rule's escalation by ([`policy::site_key`]).
    site: String,
    /// The repaired method: dotted class, name and descriptor.
    target: (String, String, String),
    fault_id: u64,
    exception: String,
    applied: Instant,
    deadline: Instant,
    /// Calls of the repaired method a verdict needs; the window extends up to `last_deadline`.
    min_calls: u64,
    last_deadline: Instant,
    max_fallback_rate: f64,
    durable: bool,
    /// Journaled durable before its verdict: its fault was about to end its thread, or it was
    /// restored from the journal.
    kept_at_once: bool,
    /// Restored from the journal at this start: its fault was seen by an earlier JVM, so
    /// `fault_id` is 0 until a fault of its exception passes through the repaired method here.
    restored: bool,
    /// Fault counts at the end of the settling time; `None` before.
    baseline: Option<HashMap<u64, u64>>,
    blame: Blame,
    /// Faults of other kinds through the repaired method, by id: whether the application's own
    /// error path takes them ([`handled_by_application`]; read from class bytes once).
    handled: HashMap<u64, bool>,
    /// Its rule's health signal and what it said of this repair.
    health: Option<HealthWatch>,
}

/// What a repair's health signal said of it so far.
struct HealthWatch {
    /// The signal's method, `Class.method(descriptor)` as the rule names it.
    target: String,
    /// Its failure condition, as written.
    failure: String,
    judged: Arc<Judged>,
}

impl HealthWatch {
    /// `health signal a.Web.respond(I)V: 3 fallbacks followed by a healthy respond, 0 by a failure`.
    fn said(&self) -> String {
        format!("health signal {}: {}", self.target, self.counts())
    }

    /// `3 fallbacks followed by a healthy respond, 0 by a failure`.
    fn counts(&self) -> String {
        let method = self.target.split('(').next().unwrap_or(&self.target);
        let name = method.rsplit('.').next().unwrap_or(method);
        format!(
            "{} fallbacks followed by a healthy {name}, {} by a failure",
            self.judged.healthy.load(Ordering::Relaxed),
            self.judged.failed.load(Ordering::Relaxed)
        )
    }

    /// Why the repair fails: a call met the failure condition after its fallback (`later`: how
    /// long after, when known), with the counts so far.
    fn failed(&self, kept: bool, later: Option<Duration>, calls: u64) -> String {
        let last = self.judged.last_failure.lock().unwrap_or_else(|e| e.into_inner()).clone().unwrap_or_default();
        format!(
            "{}health signal {}: a call meeting `{}` ({last}) followed its fallback on the same thread{}: the \
             failure users see stays ({}; {calls} calls since the apply)",
            if kept { "after it was kept, " } else { "" },
            self.target,
            self.failure,
            later.map(|d| format!(" {:.1} ms later", d.as_secs_f64() * 1e3)).unwrap_or_default(),
            self.counts()
        )
    }
}

struct Run {
    agent: Parts,
    healer: &'static Healer,
    engine: Option<Engine>,
    /// Fault id → the fault as first seen and the count already given to the engine.
    seen: HashMap<u64, (Arc<Fault>, u64)>,
    watches: Vec<Watch>,
    /// Repairs past their validation that are still in force: watched for faults their
    /// fallbacks cause for as long as they are.
    kept: Vec<Watch>,
    /// Repairs rolled back for a fault they caused, and when: faults that followed their earlier
    /// fallbacks are the undone repair's, not faults to repair.
    undone: Vec<(Blame, Instant)>,
    /// Faults a rule naming a superclass of theirs fired for, by id: whether the application's own
    /// error path takes them ([`handled_by_application`]): its answers to bad input, not faults
    /// to repair.
    handled: HashMap<u64, bool>,
    /// The health signals of the policy in force, by rule.
    health: HashMap<String, Arc<crate::observe::Observation>>,
    /// Classes read ahead of a repair ([`Run::read_ahead`]), or tried: each once.
    read_ahead: std::collections::HashSet<String>,
}

/// Which faults that follow a repair's fallback on a thread are that fallback's doing.
#[derive(Clone)]
struct Blame {
    report_id: i32,
    /// The fault the repair is for: its own, not its fallback's.
    fault_id: u64,
    /// The repaired method (dotted class, name): what is thrown inside it, the guard catches.
    target: (String, String),
    /// The methods above it in the repaired fault's stack: the fallback value goes to one of
    /// them, and a fault it causes is thrown there. (A thread of a pool runs the next request
    /// soon after; its faults elsewhere are not this repair's.)
    callers: Vec<(String, String)>,
}

impl Blame {
    fn new(report_id: i32, fault: &Fault, target: &(String, String)) -> Blame {
        let frames = fault.stack.iter().map(|s| (s.class.clone(), s.method.clone()));
        let callers = frames.skip_while(|f| f != target).skip(1).collect();
        Blame { report_id, fault_id: fault.id, target: target.clone(), callers }
    }

    /// A restored repair's: its fault was in an earlier JVM, whose journal record kept the
    /// callers (`class.method`).
    fn restored(report_id: i32, target: &(String, String), callers: &[String]) -> Blame {
        let callers = callers.iter().filter_map(|c| c.rsplit_once('.')).map(|(c, m)| (c.into(), m.into())).collect();
        Blame { report_id, fault_id: 0, target: target.clone(), callers }
    }

    /// Whether `fault`, which followed a fallback reported under `report_id`, may be its doing.
    fn covers(&self, fault: &Fault, report_id: i32) -> bool {
        self.report_id == report_id
            && self.fault_id != fault.id
            && self.callers.iter().any(|(class, method)| *class == fault.site.class && *method == fault.site.method)
            && !fault.stack.iter().any(|s| s.class == self.target.0 && s.method == self.target.1)
    }
}

fn run(agent: Parts, healer: &'static Healer, rx: Receiver<Occurrence>) {
    crate::runtime::faults::never_wait_on_this_thread();
    let mut r = Run {
        agent,
        healer,
        engine: None,
        seen: HashMap::new(),
        watches: Vec::new(),
        kept: Vec::new(),
        undone: Vec::new(),
        handled: HashMap::new(),
        health: HashMap::new(),
        read_ahead: Default::default(),
    };
    r.take_policy();
    r.watch_restored();
    let mut checked = Instant::now();
    loop {
        // Nothing under validation: sleep until an occurrence or a policy arrives. Otherwise wake
        // for the next check; never a zero timeout in a loop.
        let received = if r.watches.is_empty() {
            rx.recv().map_err(|_| RecvTimeoutError::Disconnected)
        } else {
            rx.recv_timeout(CHECK_EVERY.saturating_sub(checked.elapsed()).max(Duration::from_millis(1)))
        };
        match received {
            Ok(o) if o.fault_id == WAKE => {
                r.take_policy();
                r.watch_restored();
            }
            Ok(o) if o.fault_id == HEALTH_FAILED => r.health_failed(o),
            Ok(Occurrence { fault_id, ending: Some(ticket), .. }) => r.ending(fault_id, ticket),
            Ok(o) => r.occurrence(o),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
        // On a timer, not per occurrence: a fault storm must not slow the engine down.
        if !r.watches.is_empty() && checked.elapsed() >= CHECK_EVERY {
            r.check_watches();
            checked = Instant::now();
        }
    }
}

impl Run {
    fn take_policy(&mut self) {
        let Some((policy, who)) = self.healer.incoming.lock().unwrap_or_else(|e| e.into_inner()).take() else {
            return;
        };
        let mut engine = Engine::new(policy.clone());
        engine.active = self.agent.patches.list().iter().filter(|p| p.who.starts_with("rule:")).count() as u32;
        let summary = format!(
            "{} ({} rules, mode {}) loaded by {who}",
            policy.source,
            policy.rules.len(),
            if policy.mode == policy::Mode::DryRun { "dry-run" } else { "enforce" }
        );
        self.engine = Some(engine);
        self.agent.events.emit(Kind::Policy, About::default(), summary);
        self.probe_health_signals(&policy);
    }

    /// Fault `fault_id` is about to end its thread (the JVM, when it is main's): its occurrences
    /// came first on the channel, so what the engine decided for them is carried out. A durable
    /// rule's repair of it cannot be validated in a JVM that may be dying: it is journaled durable
    /// now, to be put back at the next start, and still judged here if the JVM lives on (rolled
    /// back, and so no longer durable, if it does not hold). Then the waiting thread goes on.
    fn ending(&mut self, fault_id: u64, ticket: u64) {
        for w in self.watches.iter_mut().filter(|w| w.fault_id == fault_id && w.durable && !w.kept_at_once) {
            let why = format!(
                "fault #{fault_id} {} is about to end its thread: kept across restarts before its verdict (durable \
                 rule), put back at the next start",
                w.exception
            );
            let site = policy::site_key(&w.target.0, &w.target.1, &w.target.2);
            let about = About { rule: &w.rule, patch: &w.patch.spec.id, site: &site };
            match self.agent.journal.validated(self.agent.events, &w.patch, true, Some(w.repaired_fault()), &why) {
                Ok(()) => {
                    w.kept_at_once = true;
                    self.agent.events.emit(Kind::Journal, about, why);
                }
                Err(e) => self.agent.events.emit(Kind::Journal, about, format!("not kept across restarts: {e}")),
            }
        }
        self.agent.faults.ending_handled(ticket);
    }

    /// Puts the restored durable repairs handed over under validation, as new repairs are: the
    /// faults of this JVM count from its start (the repair is in place since its class loaded).
    fn watch_restored(&mut self) {
        let restored = std::mem::take(&mut *self.healer.restored.lock().unwrap_or_else(|e| e.into_inner()));
        for (patch, fault) in restored {
            let spec = &patch.spec;
            let target =
                (spec.class.clone(), spec.method.name.clone(), spec.method.descriptor.clone().unwrap_or_default());
            let site = policy::site_key(&target.0, &target.1, &target.2);
            let rule_name = patch.who.strip_prefix("rule:").unwrap_or_default().to_string();
            let rule = self.engine.as_ref().and_then(|e| e.policy.rules.iter().find(|r| r.name == rule_name).cloned());
            let Some(rule) = rule else {
                let about = About { rule: &rule_name, patch: &spec.id, site: &site };
                let why = "restored, not validated: the policy was replaced meanwhile and has no rule of that name";
                self.agent.events.emit(Kind::Restored, about, why);
                continue;
            };
            if let Some(e) = self.engine.as_mut() {
                e.set_busy(&rule.name, &site, true);
            }
            // Records older than the fault they name: any fault through the method counts against it.
            let RepairedFault { exception, callers } =
                fault.unwrap_or(RepairedFault { exception: String::new(), callers: Vec::new() });
            let now = Instant::now();
            self.watches.push(Watch {
                blame: Blame::restored(patch.report_id, &(target.0.clone(), target.1.clone()), &callers),
                patch,
                rule: rule.name.clone(),
                site,
                target,
                fault_id: 0,
                exception,
                applied: now,
                deadline: now + rule.validate_window,
                min_calls: rule.min_calls.min(1),
                last_deadline: now + rule.max_window,
                max_fallback_rate: rule.max_fallback_rate,
                durable: true,
                kept_at_once: true,
                restored: true,
                baseline: Some(HashMap::new()),
                handled: HashMap::new(),
                health: None,
            });
        }
        // Judged by their rule's health signal too, as new repairs are.
        self.judge_by_health(None);
    }

    fn occurrence(&mut self, o: Occurrence) {
        if self.engine.is_none() {
            return;
        }
        let (fault, before) = match self.seen.get(&o.fault_id) {
            Some((f, c)) => (f.clone(), *c),
            None => match self.agent.faults.get(o.fault_id) {
                Some(f) => (Arc::new(f), 0),
                None => return,
            },
        };
        // Occurrences dropped on a full queue show as a jump in the count; replay a bounded few.
        let new = o.count.saturating_sub(before).clamp(1, 64);
        self.seen.insert(o.fault_id, (fault.clone(), o.count.max(before)));
        // A repair above the throw site lets the fault be thrown and absorbs it: while it is in
        // force the occurrences are its to judge (validation, the kept watch), not new faults.
        let site = (&fault.site.class, &fault.site.method, &fault.site.descriptor);
        let absorbing: Vec<&str> = (self.watches.iter().chain(&self.kept))
            .filter(|w| w.fault_id == fault.id && (&w.target.0, &w.target.1, &w.target.2) != site)
            .map(|w| w.patch.spec.id.as_str())
            .collect();
        if !absorbing.is_empty() && self.agent.patches.list().iter().any(|p| absorbing.contains(&p.spec.id.as_str())) {
            return;
        }
        if let Some((report, fell_back)) = o.after_fallback {
            if o.at.saturating_duration_since(fell_back) <= ATTRIBUTION
                && self.caused_by_repair(&fault, report, fell_back, o.at)
            {
                return;
            }
        }
        // A rethrow's own exceptions are its fallbacks, not faults for the rules.
        if self.agent.patches.any(|p| transforms(p, &fault)) {
            return;
        }
        let chain = fault.chain();
        let obs = Observation {
            exception_chain: &chain,
            message: fault.message.as_deref().unwrap_or(""),
            caught: fault.caught,
            class: &fault.site.class,
            method: &fault.site.method,
            descriptor: &fault.site.descriptor,
        };
        if self.handled.get(&fault.id) == Some(&true) {
            return;
        }
        let Some(engine) = self.engine.as_mut() else { return };
        let mut decision = None;
        for _ in 0..new {
            decision = engine.observe(&obs, o.at);
            if decision.is_some() {
                break;
            }
        }
        if decision.is_none() && before == 0 {
            self.read_ahead(&fault, &obs);
        }
        match decision {
            Some(Decision::Repair { rule, class, method, descriptor, actions, dry_run, reason }) => {
                let site = policy::site_key(&class, &method, &descriptor);
                // A rule that names the fault's own class means it, handled or not; one that names
                // a superclass (any RuntimeException) leaves the application's answers alone.
                let broad = self
                    .engine
                    .as_ref()
                    .is_some_and(|e| e.policy.rules.iter().any(|r| r.name == rule && r.exception != fault.exception));
                let handled = broad
                    && *self.handled.entry(fault.id).or_insert_with(|| handled_by_application(self.agent, &fault));
                if !handled {
                    return self.repair(&fault, &rule, site, &actions, dry_run, &reason, o.at);
                }
                if let Some(engine) = self.engine.as_mut() {
                    engine.not_carried_out(o.at);
                }
                self.healer.stats(&rule, |s| s.held += 1);
                let about = About { rule: &rule, site: &site, ..About::default() };
                let why = format!(
                    "{reason}: not repaired, the application handles {} itself (a handler of that type, not a \
                     catch-all, above the site): its answer to bad input, not a failure",
                    fault.exception
                );
                self.agent.events.emit(Kind::Held, about, why);
            }
            Some(Decision::Held { rule, reason }) => {
                self.healer.stats(&rule, |s| s.held += 1);
                let site = policy::site_key(&fault.site.class, &fault.site.method, &fault.site.descriptor);
                self.agent.events.emit(Kind::Held, About { rule: &rule, site: &site, ..About::default() }, reason);
            }
            None => {}
        }
    }

    /// A rule counts a fault seen for the first time: the classes its actions would patch are
    /// read now, so that the repair, when the rule fires, does not wait for a retransformation to
    /// read them (one each, 6-12 ms, which queued behind one another when several rules fired
    /// together). A class is read, or tried, once in the JVM's life (one the JVM cannot modify
    /// is not tried again: each try lists the loaded classes); a dry run reads nothing.
    fn read_ahead(&mut self, fault: &Fault, obs: &Observation<'_>) {
        let Some(engine) = self.engine.as_ref() else { return };
        let Some((_, rule)) = engine.rule_for(obs) else { return };
        if engine.policy.mode == policy::Mode::DryRun {
            return;
        }
        let probed = self.agent.fault_mode == FaultMode::Bytecode;
        let ranked = policy::candidates(&frames_of(fault), &engine.policy.application, rule.allow_jdk, probed);
        let mut classes: Vec<String> = (rule.then.iter())
            .filter_map(|step| ranked.get(step.at.index()))
            .map(|c| c.frame.class.replace('.', "/"))
            .filter(|c| !self.read_ahead.contains(c))
            .collect();
        classes.sort();
        classes.dedup();
        if classes.is_empty() {
            return;
        }
        self.read_ahead.extend(classes.iter().cloned());
        let a = self.agent;
        if let Ok(Err(e)) = a.vm.attached(THREAD, |jni| a.patches.read_ahead(a.jvmti, jni, &classes)) {
            crate::log_debug!("reading {} ahead of rule {}: {e}", classes.join(", "), rule.name);
        }
    }

    /// Carries out a decision: ranks the rule's `actions` for this fault ([`rank`]); those that
    /// cannot fit it are refused, each with its reason, and the others tried best first until one
    /// applies, whose event says why it was chosen.
    #[allow(clippy::too_many_arguments)]
    fn repair(
        &mut self,
        fault: &Fault,
        rule_name: &str,
        site: String,
        actions: &[usize],
        dry_run: bool,
        reason: &str,
        at: Instant,
    ) {
        let Some(engine) = self.engine.as_ref() else { return };
        let Some(rule) = engine.policy.rules.iter().find(|r| r.name == rule_name).cloned() else { return };
        let application = engine.policy.application.clone();
        let source = engine.policy.source.clone();
        self.healer.stats(rule_name, |s| s.fired += 1);
        self.agent.events.emit(
            Kind::Fired,
            About { rule: rule_name, site: &site, ..About::default() },
            format!("{reason} (fault #{} {})", fault.id, fault.exception),
        );
        let frames = frames_of(fault);
        let probed = self.agent.fault_mode == FaultMode::Bytecode;
        let ranked = policy::candidates(&frames, &application, rule.allow_jdk, probed);
        let prospects: Vec<rank::Prospect<'_, (String, String)>> = actions
            .iter()
            .filter_map(|&action| {
                let step = rule.then.get(action)?;
                let target = ranked.get(step.at.index());
                // What `rethrow: { as: auto }` throws from where it aims: read from the bytes.
                let rethrow = target
                    .filter(|_| policy::wants_rethrow_type(&step.action))
                    .map(|t| self.rethrow_type(fault, &ranked, t));
                Some(rank::Prospect { action, step, target, rethrow })
            })
            .collect();
        let callee = fault.call.clone().or_else(|| fault.message.as_deref().and_then(policy::npe_callee));
        let chain = fault.chain();
        let ranking = rank::rank(&rank::Fault { chain: &chain, stack: &frames, callee: callee.as_deref() }, &prospects);
        for skipped in &ranking.skipped {
            let why = format!("action {} ({}): {}", skipped.action, skipped.label, skipped.why);
            self.agent.events.emit(Kind::Refused, About { rule: rule_name, site: &site, ..About::default() }, why);
            self.spend(rule_name, &site, skipped.action);
        }
        for (pos, choice) in ranking.order.iter().enumerate() {
            let action = choice.action;
            let about = About { rule: rule_name, site: &site, ..About::default() };
            let Some(prospect) = prospects.iter().find(|p| p.action == action) else { continue };
            let (step, Some(target)) = (prospect.step, prospect.target) else { continue };
            let method = format!("{}{}", target.frame.method, target.frame.descriptor);
            let resolved = if policy::wants_call(&step.action) {
                match self.call_at(fault, target) {
                    Ok(call) => policy::resolve_call(&step.action, Some((&call.0, &call.1, call.2))),
                    Err(why) => {
                        self.agent.events.emit(
                            Kind::Refused,
                            about,
                            format!("action {action} ({}): {why}", choice.label),
                        );
                        self.spend(rule_name, &site, action);
                        continue;
                    }
                }
            } else {
                step.action.clone()
            };
            let (resolved, aimed) = match &prospect.rethrow {
                Some(Ok((class, why))) => (policy::resolve_rethrow(&resolved, class), Some(why)),
                _ => (resolved, None),
            };
            let resolved = policy::resolve_catch(&resolved, &fault.exception);
            let frame = &target.frame;
            let id = policy::patch_id(rule_name, &frame.class, &frame.method, &frame.descriptor, action, |id| {
                self.agent.patches.list().iter().any(|p| {
                    p.spec.id == id
                        && (p.spec.class != frame.class
                            || p.spec.method.name != frame.method
                            || p.spec.method.descriptor.as_deref() != Some(&frame.descriptor))
                })
            });
            let yaml = policy::spec_yaml(&id, &target.frame.class, &method, &resolved, false);
            let spec = match PatchSpec::from_yaml(&yaml, &format!("rule {rule_name}")) {
                Ok(s) => s,
                Err(e) => {
                    self.agent.events.emit(Kind::Refused, about, e.to_string());
                    self.spend(rule_name, &site, action);
                    continue;
                }
            };
            let what = format!(
                "{} at {} ({}){}",
                spec.action.summary(),
                policy::site_key(&frame.class, &frame.method, &frame.descriptor),
                target.reason,
                aimed.map(|why| format!("; {why}")).unwrap_or_default()
            );
            let chosen = ranking.why_chosen(pos);
            if dry_run {
                self.agent.events.emit(
                    Kind::DryRun,
                    About { patch: &id, ..about },
                    format!("would apply {what}; {chosen}"),
                );
                return;
            }
            let attachments = match attachments(&spec, &source) {
                Ok(a) => a,
                Err(e) => {
                    self.agent.events.emit(Kind::Refused, About { patch: &id, ..about }, e);
                    self.spend(rule_name, &site, action);
                    continue;
                }
            };
            let who = format!("rule:{rule_name}");
            let applied = self.agent.vm.attached(THREAD, |jni| {
                self.agent.patches.apply(self.agent.jvmti, jni, spec.clone(), attachments, who.clone())
            });
            match applied {
                Ok(Ok(p)) => {
                    let latency = at.elapsed();
                    let text =
                        format!("{what}; {chosen}; in effect {:.1} ms after the fault", latency.as_secs_f64() * 1e3);
                    if let Err(e) = self.agent.journal.applied(self.agent.events, std::slice::from_ref(&p), &text) {
                        // Never a repair the journal does not know of: undone, and the rule waits.
                        let _ = self.agent.vm.attached(THREAD, |jni: &Jni<'_>| {
                            self.agent.patches.rollback(self.agent.jvmti, jni, Some(&id))
                        });
                        self.agent.events.emit(Kind::Refused, About { patch: &id, ..about }, format!("{e}; undone"));
                        return;
                    }
                    self.healer.stats(rule_name, |s| s.applied += 1);
                    if let Some(e) = self.engine.as_mut() {
                        e.active += 1;
                        e.set_busy(rule_name, &site, true);
                        e.tried(rule_name, &site, action);
                    }
                    self.agent.events.emit(Kind::Applied, About { patch: &id, ..about }, text);
                    let now = Instant::now();
                    let target = (frame.class.clone(), frame.method.clone(), frame.descriptor.clone());
                    let report_id = p.report_id;
                    self.watches.push(Watch {
                        blame: Blame::new(p.report_id, fault, &(target.0.clone(), target.1.clone())),
                        patch: p,
                        rule: rule_name.to_string(),
                        site,
                        target,
                        fault_id: fault.id,
                        exception: fault.exception.clone(),
                        applied: now,
                        deadline: now + rule.validate_window,
                        min_calls: rule.min_calls,
                        last_deadline: now + rule.max_window,
                        max_fallback_rate: rule.max_fallback_rate,
                        durable: rule.durable,
                        kept_at_once: false,
                        restored: false,
                        baseline: None,
                        handled: HashMap::new(),
                        health: None,
                    });
                    self.judge_by_health(Some(report_id));
                    return;
                }
                Ok(Err(e)) => {
                    let why = format!("action {action} ({what}) refused: {e}");
                    let refusal =
                        Refusal { spec_yaml: &yaml, id: &id, who: &who, class: &target.frame.class, reason: &why };
                    let _ = self.agent.journal.refused(self.agent.events, refusal);
                    self.agent.events.emit(Kind::Refused, About { patch: &id, ..about }, why);
                    self.spend(rule_name, &site, action);
                }
                Err(_) => return,
            }
        }
    }

    /// Whether `fault`, which followed a fallback of report `report` on its thread, is the outcome
    /// of a repair: one under validation fails at once, a kept one is rolled back; either way
    /// the rule tries its next action when the repaired fault returns. Faults inside the
    /// repaired method, and the fault it repairs, are the method's own, not its fallback's.
    fn caused_by_repair(&mut self, fault: &Fault, report: i32, fell_back: Instant, at: Instant) -> bool {
        self.undone.retain(|(_, at)| at.elapsed() < UNDONE_MEMORY);
        if self.undone.iter().any(|(blame, at)| fell_back <= *at && blame.covers(fault, report)) {
            return true;
        }
        let caused = |w: &Watch| w.blame.covers(fault, report);
        let calls = self.agent.patches.reports.counters(report).enters.load(Ordering::Relaxed);
        let why = |kept: bool| {
            format!(
                "{}fault #{} {} at {}.{} followed its fallback on the same thread {:.1} ms later: the \
                 caller failed on the fallback value ({calls} calls since the apply)",
                if kept { "after it was kept, " } else { "" },
                fault.id,
                fault.exception,
                fault.site.class,
                fault.site.method,
                at.saturating_duration_since(fell_back).as_secs_f64() * 1e3
            )
        };
        let (w, mut why) = if let Some(i) = self.watches.iter().position(caused) {
            (self.watches.remove(i), why(false))
        } else {
            let Some(i) = self.kept.iter().position(caused) else { return false };
            let w = self.kept.remove(i);
            // Rolled back by an operator meanwhile (its report id maybe reused): nothing to blame.
            if self.agent.patches.patch_of_report(report).as_deref() != Some(w.patch.spec.id.as_str()) {
                return false;
            }
            (w, why(true))
        };
        if let Some(health) = &w.health {
            why = format!("{why}; {}", health.said());
        }
        let blame = w.blame.clone();
        self.conclude(w, Verdict::Fails(why));
        self.undone.push((blame, Instant::now()));
        true
    }

    fn advance(&mut self, rule: &str, site: &str) {
        if let Some(e) = self.engine.as_mut() {
            e.advance(rule, site);
        }
    }

    /// The rule's `action` was refused at `site`: it is not tried there again.
    fn spend(&mut self, rule: &str, site: &str, action: usize) {
        if let Some(e) = self.engine.as_mut() {
            e.spend(rule, site, action);
        }
    }

    /// The call at the fault's frame, from the bytes the JVM runs now.
    /// The call that threw inside `target`, a frame of `fault`'s stack: the call at its bci
    /// when that is the throw's own (exception events, and the callers of the method a probe saw
    /// the exception leave); else the call on its line of the method the exception's trace shows
    /// it calling (or a `NullPointerException` message names).
    fn call_at(&self, fault: &Fault, target: &policy::Candidate) -> Result<(String, String, u32), String> {
        let frame = &target.frame;
        let a = self.agent;
        let internal = frame.class.replace('.', "/");
        let bytes =
            a.vm.attached(THREAD, |jni| a.patches.live_bytes(a.jvmti, jni, &internal, false))
                .map_err(|rc| format!("cannot attach to the JVM (JNI error {rc})"))?
                .map_err(|e| e.to_string())?;
        let method = repair_bytecode::transform::MethodTarget {
            name: frame.method.clone(),
            descriptor: Some(frame.descriptor.clone()),
        };
        let bci = u32::try_from(frame.bci).map_err(|_| format!("{}.{} is native", frame.class, frame.method))?;
        let exact = a.fault_mode == FaultMode::Jvmti || target.depth > 0;
        let by_bci = exact.then(|| repair_bytecode::transform::call_site::call_at(&bytes, &method, bci));
        let c = match by_bci {
            Some(Ok(c)) => c,
            Some(Err(e)) if a.fault_mode == FaultMode::Jvmti => return Err(e.to_string()),
            _ => {
                let line = fault.stack.get(target.depth).and_then(|f| f.line).and_then(|l| u16::try_from(l).ok());
                let callee = match target.depth {
                    0 => fault.call.clone().or_else(|| fault.message.as_deref().and_then(policy::npe_callee)),
                    d => fault.stack.get(d - 1).map(|f| f.method.clone()),
                };
                let (Some(line), Some(callee)) = (line, callee) else {
                    return Err(format!(
                        "{}.{} threw by its own code, not in a call it made (the exception's trace shows none)",
                        frame.class, frame.method
                    ));
                };
                repair_bytecode::transform::call_site::call_on_line(&bytes, &method, line, &callee)
                    .map_err(|e| e.to_string())?
            }
        };
        Ok((c.name, c.descriptor.unwrap_or_default(), c.occurrence))
    }

    /// The type `rethrow: { as: auto }` throws from `target`: walking up the fault's stack from
    /// it, the first catch type of an application frame's handlers around its call (read from
    /// the bytes the JVM runs) that the fault is not and that `target` can throw; with what the
    /// event says of it. `Err`: why none fits.
    fn rethrow_type(
        &self,
        fault: &Fault,
        ranked: &[policy::Candidate],
        target: &policy::Candidate,
    ) -> Result<(String, String), String> {
        use repair_bytecode::transform::{rethrow::handlers_at, MethodTarget};
        let a = self.agent;
        let method_of = |f: &FrameRef| MethodTarget {
            name: f.method.clone(),
            descriptor: Some(f.descriptor.clone()).filter(|d| !d.is_empty()),
        };
        let chain = fault.chain();
        let internal = target.frame.class.replace('.', "/");
        let method = method_of(&target.frame);
        a.vm.attached(THREAD, |jni| {
            let original = a.patches.live_bytes(a.jvmti, jni, &internal, true).map_err(|e| e.to_string())?;
            jni.with_local_frame(16, |jni| {
                let loaded = crate::patches::loaded_by_name(a.jvmti, jni, std::slice::from_ref(&internal))
                    .map_err(|e| e.to_string())?;
                let copies = loaded.get(&internal).map(Vec::as_slice).unwrap_or_default();
                // Handlers passed over, and why: said when none fits.
                let mut passed = Vec::new();
                for above in ranked.iter().filter(|c| c.depth > target.depth) {
                    let frame = &above.frame;
                    let line = fault.stack.get(above.depth).and_then(|f| f.line);
                    let handlers = a
                        .patches
                        .live_bytes(a.jvmti, jni, &frame.class.replace('.', "/"), false)
                        .map_err(|e| e.to_string())
                        .and_then(|bytes| {
                            let (line, bci) = (line.and_then(|l| u32::try_from(l).ok()), u32::try_from(frame.bci).ok());
                            handlers_at(&bytes, &method_of(frame), line, bci).map_err(|e| e.to_string())
                        });
                    let handlers = match handlers {
                        Ok(h) => h,
                        Err(e) => {
                            passed.push(format!("{}.{}: {e}", frame.class, frame.method));
                            continue;
                        }
                    };
                    let who = format!("handler in {}.{}", frame.class, frame.method);
                    for t in policy::rethrow_types(&handlers.catch, &chain) {
                        let class = (target.frame.class.as_str(), &method);
                        match crate::patches::rethrow_constructor(a.jvmti, jni, &who, class, t, &original, copies) {
                            Ok(_) => {
                                return Ok((
                                    t.clone(),
                                    policy::handled_by(t, frame, handlers.source_file.as_deref(), line),
                                ))
                            }
                            Err(e) => passed.push(e.to_string()),
                        }
                    }
                }
                Err(match passed.is_empty() {
                    true => policy::NO_HANDLER.to_string(),
                    false => format!("{} that the rethrow can throw ({})", policy::NO_HANDLER, passed.join("; ")),
                })
            })
        })
        .map_err(|rc| format!("cannot attach to the JVM (JNI error {rc})"))?
    }

    fn check_watches(&mut self) {
        let (faults, _) = self.agent.faults.list();
        let active: Vec<String> = self.agent.patches.list().into_iter().map(|p| p.spec.id).collect();
        let now = Instant::now();
        let mut i = 0;
        while i < self.watches.len() {
            let w = &mut self.watches[i];
            if w.restored && w.fault_id == 0 {
                // The first fault of its kind through the repaired method is its fault returning.
                let through = |f: &&Fault| {
                    f.exception == w.exception
                        && f.stack
                            .iter()
                            .any(|s| (&s.class, &s.method, &s.descriptor) == (&w.target.0, &w.target.1, &w.target.2))
                };
                w.fault_id = faults.iter().find(through).map_or(0, |f| f.id);
            }
            if w.baseline.is_none() {
                if now.duration_since(w.applied) < SETTLE {
                    i += 1;
                    continue;
                }
                w.baseline = Some(faults.iter().map(|f| (f.id, f.count)).collect());
            }
            match verdict(w, &faults, &active, now, self.agent) {
                None => i += 1,
                Some(result) => {
                    let w = self.watches.remove(i);
                    self.conclude(w, result);
                }
            }
        }
    }

    fn conclude(&mut self, w: Watch, result: Verdict) {
        // Kept repairs an operator rolled back since are watched no more.
        let active = self.agent.patches.list();
        self.kept.retain(|k| active.iter().any(|p| p.spec.id == k.patch.spec.id && p.report_id == k.patch.report_id));
        if let Some(e) = self.engine.as_mut() {
            e.set_busy(&w.rule, &w.site, false);
        }
        let id = w.patch.spec.id.clone();
        let site = policy::site_key(&w.target.0, &w.target.1, &w.target.2);
        let about = About { rule: &w.rule, patch: &id, site: &site };
        match result {
            Verdict::Unproven(why) => {
                self.healer.stats(&w.rule, |s| s.unproven += 1);
                // A durable rule's repair of a fault that happens once (at start-up, at deploy)
                // never gets the calls a verdict needs in the JVM that saw the fault: it is
                // journaled durable-but-unproven, and the next start validates it again.
                let why = if w.restored {
                    format!("restored from the journal: {why}; it stays durable, validated again at the next start")
                } else if w.kept_at_once {
                    format!("{why}; journaled durable when its fault was about to end its thread")
                } else if w.durable {
                    let kept = format!(
                        "{why}; journaled durable-but-unproven (durable rule): restored at the next start and validated \
                         again there"
                    );
                    match self.agent.journal.validated(
                        self.agent.events,
                        &w.patch,
                        true,
                        Some(w.repaired_fault()),
                        &kept,
                    ) {
                        Ok(()) => kept,
                        Err(e) => format!("{why}; not kept across restarts: {e}"),
                    }
                } else {
                    format!("{why}; not kept across restarts")
                };
                self.agent.events.emit(Kind::Unproven, about, why);
                self.kept.push(w);
            }
            Verdict::Holds(why) => {
                let why = match (w.restored, w.durable) {
                    (true, _) => format!("restored from the journal and validated again: {why}; it stays durable"),
                    (false, true) => format!("{why}; kept across restarts (durable rule)"),
                    (false, false) => why,
                };
                let fault = w.durable.then(|| w.repaired_fault());
                let _ = self.agent.journal.validated(self.agent.events, &w.patch, w.durable, fault, &why);
                self.healer.stats(&w.rule, |s| s.validated += 1);
                self.agent.events.emit(Kind::Validated, about, why);
                if matches!(w.patch.spec.action, Action::Probe { .. }) {
                    self.advance(&w.rule, &w.site);
                }
                self.kept.push(w);
            }
            Verdict::Fails(why) => {
                let gone = self
                    .agent
                    .vm
                    .attached(THREAD, |jni: &Jni<'_>| self.agent.patches.rollback(self.agent.jvmti, jni, Some(&id)));
                match gone {
                    Ok(Ok(list)) => {
                        let who = format!("rule:{}", w.rule);
                        for p in &list {
                            let _ =
                                self.agent.journal.rolled_back(self.agent.events, std::slice::from_ref(p), &who, &why);
                        }
                        let restored = if w.restored { "restored from the journal, " } else { "" };
                        let durable = if w.durable { "; no longer durable" } else { "" };
                        self.agent.events.emit(
                            Kind::RolledBack,
                            about,
                            format!("{restored}{why}{durable}; the rule tries its next action when the fault returns"),
                        );
                    }
                    // An operator rolled it back meanwhile: nothing left to undo.
                    Ok(Err(e)) => self.agent.events.emit(Kind::RolledBack, about, format!("{why} ({e})")),
                    Err(_) => return,
                }
                self.healer.stats(&w.rule, |s| s.rolled_back += 1);
                if let Some(e) = self.engine.as_mut() {
                    e.active = e.active.saturating_sub(1);
                }
                self.advance(&w.rule, &w.site);
            }
        }
        self.judge_by_health(None);
    }

    /// Puts the probes of `policy`'s health signals in place, after ending those of the policy
    /// before: an observation each, streamed to nobody, whose probe patch is in effect for the
    /// class now if it is loaded and as it loads otherwise.
    fn probe_health_signals(&mut self, policy: &Policy) {
        for (rule, o) in std::mem::take(&mut self.health) {
            self.end_health_signal(&rule, &o, "the policy was replaced");
        }
        let a = self.agent;
        for rule in &policy.rules {
            let Some(signal) = &rule.health else { continue };
            let target = signal.target();
            let tx = self.healer.sender.lock().unwrap_or_else(|e| e.into_inner()).clone();
            // A full queue drops the news: the verdict still sees the failure in the counts.
            let tell = move |report_id: i32, fell_back: Instant| {
                if let Some(tx) = &tx {
                    let _ = tx.try_send(Occurrence {
                        fault_id: HEALTH_FAILED,
                        count: 0,
                        at: Instant::now(),
                        after_fallback: Some((report_id, fell_back)),
                        ending: None,
                    });
                }
            };
            let this = signal.failure.exprs().iter().any(|e| e.root == repair_model::observe::Root::This);
            let (o, _nobody) = a.observations.start(crate::observe::Request {
                condition: Some(signal.failure.clone()),
                this,
                health: Some(crate::observe::Health::new(Box::new(tell))),
                ..crate::observe::Request::new(
                    crate::observe::Kind::Health,
                    target.clone(),
                    format!("rule:{}", rule.name),
                )
            });
            let spec = PatchSpec {
                id: o.patch_id.clone(),
                class: signal.class.clone(),
                method: signal.method.clone(),
                action: Action::Probe {
                    points: vec![ProbePoint::Entry, ProbePoint::Exit, ProbePoint::Throw],
                    capture_args: true,
                    capture_this: this,
                    capture_return: true,
                    timestamp: false,
                },
                durable: false,
                source: String::new(),
            };
            // In effect before the class is looked for: a class loading meanwhile is probed as it loads.
            let p = a.patches.preload(spec, HashMap::new(), o.who.clone());
            a.observations.attach(&o, p.report_id, target.clone());
            let about = About { rule: &rule.name, patch: &o.patch_id, site: &target };
            let caught_up = a.vm.attached(THREAD, |jni| a.patches.catch_up(a.jvmti, jni, &o.patch_id));
            let refused = match caught_up {
                Ok(Ok(unfit)) if unfit.is_empty() => None,
                Ok(Ok(_)) => Some("its probe does not fit the class".to_string()),
                Ok(Err(e)) => Some(e.to_string()),
                Err(rc) => Some(format!("cannot attach to the JVM (JNI error {rc})")),
            };
            if let Some(why) = refused {
                a.events.emit(Kind::Refused, about, format!("health signal {target} not probed: {why}"));
                self.end_health_signal(&rule.name, &o, "it could not be probed");
                continue;
            }
            let loaded = a.patches.any(|p| p.spec.id == o.patch_id && !p.hashes.0.is_empty());
            a.events.emit(
                Kind::Applied,
                about,
                format!(
                    "health signal {target} probed {}: a call meeting `{}` after a fallback of the rule's \
                     repair on its thread (within {ATTRIBUTION:?}) counts against the repair",
                    if loaded { "now" } else { "as its class loads" },
                    signal.failure
                ),
            );
            self.health.insert(rule.name.clone(), o);
        }
        self.judge_by_health(None);
    }

    /// Ends a health signal's observation and takes its probes out.
    fn end_health_signal(&self, rule: &str, o: &crate::observe::Observation, why: &str) {
        let a = self.agent;
        o.end(why.to_string());
        let undone = a.vm.attached(THREAD, |jni| a.patches.rollback(a.jvmti, jni, Some(&o.patch_id)));
        let text = match undone {
            Ok(Ok(_)) => format!("health signal {} no longer probed: {why}", o.target),
            Ok(Err(e)) => format!("health signal {} no longer judged ({why}): {e}", o.target),
            Err(rc) => {
                format!("health signal {} no longer judged ({why}), but its probes stay: JNI error {rc}", o.target)
            }
        };
        a.events.emit(Kind::RolledBack, About { rule, patch: &o.patch_id, site: &o.target }, text);
        a.observations.remove(o.id);
    }

    /// Has each health signal judge exactly its rule's repairs under watch or kept, `fresh`
    /// (just applied) from no calls, and gives every repair what its rule's signal says of it
    /// (nothing when the policy in force gives its rule none).
    fn judge_by_health(&mut self, fresh: Option<i32>) {
        for (rule, o) in &self.health {
            let Some(signal) = o.health() else { continue };
            let reports: Vec<i32> =
                self.watches.iter().chain(&self.kept).filter(|w| w.rule == *rule).map(|w| w.patch.report_id).collect();
            signal.judge(&reports, fresh);
        }
        for w in self.watches.iter_mut().chain(self.kept.iter_mut()) {
            w.health = self.health.get(&w.rule).and_then(|o| {
                Some(HealthWatch {
                    target: o.target.clone(),
                    failure: o.condition.as_ref().map(|c| c.to_string()).unwrap_or_default(),
                    judged: o.health()?.judged(w.patch.report_id)?,
                })
            });
        }
    }

    /// A health signal's call met its failure condition after a fallback of the repair under
    /// `after_fallback`'s report id on its thread: the failure users see stays. A repair under
    /// validation fails at once, a kept one is rolled back; the rule's next action is tried when
    /// the fault returns.
    fn health_failed(&mut self, o: Occurrence) {
        let Some((report, fell_back)) = o.after_fallback else { return };
        let judged = |w: &Watch| w.patch.report_id == report && w.health.is_some();
        let (w, kept) = if let Some(i) = self.watches.iter().position(judged) {
            (self.watches.remove(i), false)
        } else {
            let Some(i) = self.kept.iter().position(judged) else { return };
            // Rolled back by an operator meanwhile (its report id maybe reused): nothing to judge.
            if self.agent.patches.patch_of_report(report).as_deref() != Some(self.kept[i].patch.spec.id.as_str()) {
                return;
            }
            (self.kept.remove(i), true)
        };
        let Some(health) = &w.health else { return };
        let calls = self.agent.patches.reports.counters(report).enters.load(Ordering::Relaxed);
        let why = health.failed(kept, Some(o.at.saturating_duration_since(fell_back)), calls);
        let blame = w.blame.clone();
        self.conclude(w, Verdict::Fails(why));
        self.undone.push((blame, Instant::now()));
    }
}

impl Watch {
    /// The fault the repair is for, as a durable verdict journals it.
    fn repaired_fault(&self) -> RepairedFault {
        let callers = self.blame.callers.iter().map(|(class, method)| format!("{class}.{method}")).collect();
        RepairedFault { exception: self.exception.clone(), callers }
    }
}

/// How a repair's validation ended; each with its reason.
enum Verdict {
    /// Its window passed cleanly over enough calls.
    Holds(String),
    /// It does not hold: rolled back.
    Fails(String),
    /// Too few calls to judge by the end of the longest window: kept, not validated (a durable
    /// rule's repair is journaled durable-but-unproven, to be validated again at the next start).
    Unproven(String),
}

/// Whether a repair under watch holds: `None` while undecided (its window runs, or extends for
/// want of calls), else its verdict; `Fails` as soon as it does not hold.
fn verdict(w: &mut Watch, faults: &[Fault], active: &[String], now: Instant, agent: Parts) -> Option<Verdict> {
    let baseline = w.baseline.as_ref()?;
    if !active.contains(&w.patch.spec.id) {
        return Some(Verdict::Fails("rolled back by an operator".to_string()));
    }
    let counters = agent.patches.reports.counters(w.patch.report_id);
    let fallbacks = counters.fallbacks.load(Ordering::Relaxed);
    let calls = counters.enters.load(Ordering::Relaxed);
    // A probe changes nothing the method does: the faults going on are not its doing, and there
    // is no fallback rate; it is kept, and the rule's next action follows if the fault goes on.
    if matches!(w.patch.spec.action, Action::Probe { .. }) {
        return (now >= w.deadline).then(|| {
            Verdict::Holds(format!(
                "a probe only observes: kept after {:?} ({calls} calls seen{}); the rule's next action \
                 follows if the fault goes on",
                w.deadline.duration_since(w.applied),
                probe_saw(&counters)
            ))
        });
    }
    // The health signal's failures are told to the engine at once; one whose news was dropped
    // (a full queue) is still seen here.
    if let Some(h) = w.health.as_ref().filter(|h| h.judged.failed.load(Ordering::Relaxed) > 0) {
        return Some(Verdict::Fails(h.failed(false, None, calls)));
    }
    // What the health signal said, for the verdict's text.
    let health = w.health.as_ref().map(|h| format!("; {}", h.said())).unwrap_or_default();
    let grew = |f: &Fault| f.count.saturating_sub(baseline.get(&f.id).copied().unwrap_or(0));
    let through_target = |f: &Fault| {
        f.stack.iter().any(|s| s.class == w.target.0 && s.method == w.target.1 && s.descriptor == w.target.2)
    };
    let mut other: Vec<&Fault> = faults
        .iter()
        .filter(|f| f.exception != w.exception && through_target(f) && grew(f) > 0 && !transforms(&w.patch, f))
        .collect();
    other.retain(|f| !*w.handled.entry(f.id).or_insert_with(|| handled_by_application(agent, f)));
    let other: Vec<String> =
        other.iter().map(|f| format!("{} x{} at {}.{}", f.exception, grew(f), f.site.class, f.site.method)).collect();
    if !other.is_empty() {
        return Some(Verdict::Fails(format!(
            "new faults of other kinds through the repaired method: {} ({calls} calls since the apply)",
            other.join(", ")
        )));
    }
    let breaker = matches!(w.patch.spec.action, Action::Breaker { .. });
    if !breaker {
        // A repair above the throw site (`at: caller`, `up: N`) does not stop the throw: each
        // occurrence its fallback absorbed is the repair working, not the fault returning. It is
        // judged when the window ends: an occurrence is recorded before the fallback above it runs.
        let absorbed = |f: &Fault| {
            let site = (&f.site.class, &f.site.method, &f.site.descriptor);
            site != (&w.target.0, &w.target.1, &w.target.2) && (now < w.deadline || grew(f) <= fallbacks)
        };
        if let Some(f) = faults.iter().find(|f| f.id == w.fault_id && grew(f) > 0 && !absorbed(f)) {
            return Some(Verdict::Fails(format!(
                "the fault it repairs still happens: {} x{} more at {}.{} ({calls} calls since the apply)",
                f.exception,
                grew(f),
                f.site.class,
                f.site.method
            )));
        }
    }
    if now < w.deadline {
        return None;
    }
    // Whole tenths of a second: the window as it ended, extended or not.
    let window = Duration::from_millis(now.duration_since(w.applied).as_millis() as u64 / 100 * 100);
    if calls < w.min_calls {
        // No evidence is not success: wait for calls, up to the rule's limit.
        return (now >= w.last_deadline).then(|| {
            Verdict::Unproven(format!(
                "{calls} calls in {window:?}, fewer than the {} a verdict needs: the repair stays in force, \
                 not validated ({fallbacks} fallbacks, no new faults{health})",
                w.min_calls
            ))
        });
    }
    if matches!(w.patch.spec.action, Action::Swap { .. }) {
        // A new body has no fallback to count: holding is running without the fault.
        return Some(Verdict::Holds(format!(
            "held for {window:?} over {calls} calls: the fault did not return, no new faults"
        )));
    }
    Some(match policy::holds(fallbacks, calls, 0, w.max_fallback_rate) {
        Ok(()) => Verdict::Holds(format!(
            "held for {window:?} over {calls} calls: {fallbacks} fallbacks (limit rate {:.2}), no new faults{health}",
            w.max_fallback_rate
        )),
        Err(why) => Verdict::Fails(format!("{why} over {window:?} ({fallbacks} of {calls} calls){health}")),
    })
}

/// The fault's stack as the policy ranks it.
fn frames_of(fault: &Fault) -> Vec<FrameRef> {
    (fault.stack.iter())
        .map(|f| FrameRef {
            class: f.class.clone(),
            method: f.method.clone(),
            descriptor: f.descriptor.clone(),
            bci: f.bci,
        })
        .collect()
}

/// Whether `fault` is what a rethrow patch makes of the exceptions it catches: its type, leaving
/// the method it patched. Those are its fallbacks (counted as such), not new faults.
fn transforms(patch: &AppliedPatch, fault: &Fault) -> bool {
    let Action::Rethrow { as_class, .. } = &patch.spec.action else { return false };
    *as_class == fault.exception
        && patch.spec.class == fault.site.class
        && patch.spec.method.name == fault.site.method
        && patch.spec.method.descriptor.as_deref().is_none_or(|d| d == fault.site.descriptor)
}

/// Whether the application's own error path takes `fault`: the first application frame above its
/// site with a handler around its call that catches it does so by a specific type, not one that
/// catches anything (`Throwable`, `Exception`, `RuntimeException`, `Error`). That is how the
/// application answers bad input (a calculator's "not a number"), not a failure the repair let
/// through; a broad handler, as a request loop's last resort has, decides nothing. The
/// application's own bytes are read, without the patches in force.
fn handled_by_application(agent: Parts, fault: &Fault) -> bool {
    use repair_bytecode::transform::{rethrow::handlers_at, MethodTarget};
    let chain = fault.chain();
    let site = fault.stack.iter().position(|f| *f == fault.site).unwrap_or(0);
    for frame in fault.stack.iter().skip(site + 1).filter(|f| !policy::is_jdk_class(&f.class) && f.bci >= 0) {
        let method = MethodTarget {
            name: frame.method.clone(),
            descriptor: Some(frame.descriptor.clone()).filter(|d| !d.is_empty()),
        };
        let internal = frame.class.replace('.', "/");
        let bytes = agent.vm.attached(THREAD, |jni| agent.patches.live_bytes(agent.jvmti, jni, &internal, true));
        let Ok(Ok(bytes)) = bytes else { continue };
        let (line, bci) = (frame.line.and_then(|l| u32::try_from(l).ok()), u32::try_from(frame.bci).ok());
        let Ok(handlers) = handlers_at(&bytes, &method, line, bci) else { continue };
        if let Some(t) = handlers.catch.iter().find(|t| chain.contains(t)) {
            return !crate::runtime::faults::is_catch_all(t);
        }
    }
    false
}

/// The files a rule's swap names, read relative to the policy file.
fn attachments(spec: &PatchSpec, policy_source: &str) -> Result<HashMap<String, Vec<u8>>, String> {
    let base = std::path::Path::new(policy_source).parent().unwrap_or(std::path::Path::new("."));
    spec.attachments_needed()
        .into_iter()
        .map(|name| {
            let path = base.join(&name);
            std::fs::read(&path).map(|b| (name, b)).map_err(|e| format!("swap class file {}: {e}", path.display()))
        })
        .collect()
}

/// Reads the policy file given at load (`policy=`).
pub fn load_file(path: &std::path::Path) -> Result<Policy, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("policy {}: {e}", path.display()))?;
    policy::parse(&text, &path.display().to_string())
}

/// What a probe saw, for its event: exits by exception, the mean time of a call, the last
/// arguments and return value it captured.
fn probe_saw(c: &crate::runtime::hooks::ReportCounters) -> String {
    let mut saw = Vec::new();
    let throws = c.throws.load(Ordering::Relaxed);
    if throws > 0 {
        saw.push(format!("{throws} exits by exception"));
    }
    let timed = c.timed_calls.load(Ordering::Relaxed);
    if timed > 0 {
        let mean = c.timed_nanos.load(Ordering::Relaxed) as f64 / timed as f64 / 1e6;
        saw.push(format!("mean {mean:.3} ms"));
    }
    let last = c.last.read().unwrap_or_else(|e| e.into_inner()).clone();
    if let Some(args) = last.args {
        saw.push(format!("last arguments {args}"));
    }
    if let Some(value) = last.value {
        saw.push(format!("last return value {value}"));
    }
    saw.iter().map(|s| format!(", {s}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::faults::StackFrame;

    fn fault(id: u64, stack: &[(&str, &str)]) -> Fault {
        let frames: Vec<StackFrame> = stack
            .iter()
            .map(|(class, method)| StackFrame {
                class: class.to_string(),
                method: method.to_string(),
                descriptor: "()V".to_string(),
                bci: -1,
                line: None,
            })
            .collect();
        Fault {
            id,
            exception: "java.lang.NullPointerException".to_string(),
            exception_chain: Vec::new(),
            message: None,
            thread: "main".to_string(),
            site: frames[0].clone(),
            stack: frames,
            call: None,
            caught: None,
            count: 1,
            first_seen_ms: 0,
            last_seen_ms: 0,
        }
    }

    #[test]
    fn a_fallback_is_blamed_only_for_faults_in_the_callers_of_the_repaired_method() {
        let repaired = fault(1, &[("a.Names", "name"), ("a.Names", "width"), ("a.Server", "serve")]);
        let blame = Blame::new(7, &repaired, &("a.Names".to_string(), "name".to_string()));
        assert_eq!(blame.callers.len(), 2);
        // The caller that got the fallback value, or one above it.
        assert!(blame.covers(&fault(2, &[("a.Names", "width"), ("a.Server", "serve")]), 7));
        assert!(blame.covers(&fault(3, &[("a.Server", "serve")]), 7));
        // Another repair's fallback; the repaired fault itself; a fault inside the repaired
        // method; a pooled thread's next request failing elsewhere.
        assert!(!blame.covers(&fault(2, &[("a.Names", "width")]), 8));
        assert!(!blame.covers(&repaired, 7));
        assert!(!blame.covers(&fault(4, &[("a.Names", "width"), ("a.Names", "name")]), 7));
        assert!(!blame.covers(&fault(5, &[("a.Stats", "ratio"), ("a.Server", "route")]), 7));
    }
}
