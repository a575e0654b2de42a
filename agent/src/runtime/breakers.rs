//! Circuit breakers: the state behind `Hooks.breakerEnter/Exit/Thrown`, one per breaker patch
//! (keyed by its report id).
//!
//! Closed: calls run; a failure (the body exits by an exception, which still reaches the caller)
//! is counted, and `failures` of them within `window` open the breaker. Open: calls return the
//! fallback without running the body, until `cooldown` has passed; then the next call is let
//! through alone (half-open) while the others keep getting the fallback. The trial call's
//! success closes the breaker, its failure opens it again for another cool-down. Every
//! transition is an event. The closed path is one map read and one atomic load.

use std::cell::Cell;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use repair_model::spec::{Action, PatchSpec};

use crate::events::{now_us, About, EventLog, Kind};

const CLOSED: u8 = 0;
const OPEN: u8 = 1;
const HALF_OPEN: u8 = 2;

struct Breaker {
    failures: u32,
    window: Duration,
    cooldown: Duration,
    patch: String,
    site: String,
    state: AtomicU8,
    /// When it last opened, in microseconds on the events' clock (`now_us`).
    opened_at_us: AtomicU64,
    recent_failures: Mutex<VecDeque<Instant>>,
    short_circuits: AtomicU64,
}

/// The breakers of the breaker patches in effect, by report id.
#[derive(Default)]
pub struct Breakers {
    by_id: RwLock<HashMap<i32, Arc<Breaker>>>,
}

thread_local! {
    /// The breaker whose half-open trial call this thread is making.
    static TRIAL: Cell<Option<i32>> = const { Cell::new(None) };
}

fn event(events: &EventLog, b: &Breaker, at_us: u64, kind: Kind, reason: String) {
    events.emit_at(at_us, kind, About { patch: &b.patch, site: &b.site, ..About::default() }, reason);
}

/// Opens `b` from state `from` (closed, or half-open after a failed trial) for a cool-down that
/// starts now; the event says `why`.
fn open(events: &EventLog, b: &Breaker, from: u8, why: impl FnOnce() -> String) {
    let now = now_us();
    b.opened_at_us.store(now, Ordering::Release);
    if b.state.compare_exchange(from, OPEN, Ordering::AcqRel, Ordering::Acquire).is_ok() {
        event(events, b, now, Kind::BreakerOpen, why());
    }
}

impl Breakers {
    /// Creates the state of a breaker patch before its code can run (no-op for other patches).
    pub fn register(&self, report_id: i32, spec: &PatchSpec) {
        if let Action::Breaker { failures, window_ms, cooldown_ms, .. } = &spec.action {
            let b = Breaker {
                failures: (*failures).max(1),
                window: Duration::from_millis(*window_ms),
                cooldown: Duration::from_millis(*cooldown_ms),
                patch: spec.id.clone(),
                site: spec.site(),
                state: AtomicU8::new(CLOSED),
                opened_at_us: AtomicU64::new(0),
                recent_failures: Mutex::new(VecDeque::new()),
                short_circuits: AtomicU64::new(0),
            };
            self.by_id.write().unwrap_or_else(|e| e.into_inner()).insert(report_id, Arc::new(b));
        }
    }

    /// Forgets the state of a breaker patch that is gone (a call still running the old code then
    /// finds none and runs the body).
    pub fn unregister(&self, report_id: i32) {
        self.by_id.write().unwrap_or_else(|e| e.into_inner()).remove(&report_id);
    }

    fn get(&self, id: i32) -> Option<Arc<Breaker>> {
        self.by_id.read().unwrap_or_else(|e| e.into_inner()).get(&id).cloned()
    }

    /// `(state name, calls short-circuited)` of a breaker patch.
    pub fn state(&self, id: i32) -> Option<(&'static str, u64)> {
        let b = self.get(id)?;
        let name = match b.state.load(Ordering::Acquire) {
            OPEN => "open",
            HALF_OPEN => "half-open",
            _ => "closed",
        };
        Some((name, b.short_circuits.load(Ordering::Relaxed)))
    }

    /// `Hooks.breakerEnter`: whether the body runs (`false`: return the fallback).
    pub fn enter(&self, events: &EventLog, id: i32) -> bool {
        let Some(b) = self.get(id) else { return true };
        match b.state.load(Ordering::Acquire) {
            CLOSED => true,
            OPEN => {
                let now = now_us();
                let open_for = now.saturating_sub(b.opened_at_us.load(Ordering::Acquire));
                if open_for >= b.cooldown.as_micros() as u64
                    && b.state.compare_exchange(OPEN, HALF_OPEN, Ordering::AcqRel, Ordering::Acquire).is_ok()
                {
                    TRIAL.with(|t| t.set(Some(id)));
                    event(
                        events,
                        &b,
                        now,
                        Kind::BreakerHalfOpen,
                        format!("cool-down of {:?} over: one trial call let through", b.cooldown),
                    );
                    return true;
                }
                b.short_circuits.fetch_add(1, Ordering::Relaxed);
                false
            }
            _ => {
                b.short_circuits.fetch_add(1, Ordering::Relaxed);
                false
            }
        }
    }

    /// `Hooks.breakerExit`: the body returned normally.
    pub fn exit(&self, events: &EventLog, id: i32) {
        if TRIAL.with(|t| t.get()) != Some(id) {
            return;
        }
        TRIAL.with(|t| t.set(None));
        let Some(b) = self.get(id) else { return };
        b.recent_failures.lock().unwrap_or_else(|e| e.into_inner()).clear();
        if b.state.compare_exchange(HALF_OPEN, CLOSED, Ordering::AcqRel, Ordering::Acquire).is_ok() {
            event(events, &b, now_us(), Kind::BreakerClosed, "the trial call succeeded".to_string());
        }
    }

    /// `Hooks.breakerThrown`: the body exits by `exception` (named lazily: only transitions need it).
    pub fn thrown(&self, events: &EventLog, id: i32, exception: impl FnOnce() -> String) {
        let Some(b) = self.get(id) else { return };
        if TRIAL.with(|t| t.get()) == Some(id) {
            TRIAL.with(|t| t.set(None));
            open(events, &b, HALF_OPEN, || {
                format!("the trial call failed with {}: open for {:?}", exception(), b.cooldown)
            });
            return;
        }
        if b.state.load(Ordering::Acquire) != CLOSED {
            return;
        }
        let now = Instant::now();
        let mut recent = b.recent_failures.lock().unwrap_or_else(|e| e.into_inner());
        while recent.front().is_some_and(|t| now.duration_since(*t) > b.window) {
            recent.pop_front();
        }
        recent.push_back(now);
        if recent.len() < b.failures as usize {
            return;
        }
        recent.clear();
        drop(recent);
        open(events, &b, CLOSED, || {
            format!("{} failures within {:?} (last: {}): open for {:?}", b.failures, b.window, exception(), b.cooldown)
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_breaker_lives_from_register_to_unregister() {
        let spec = repair_model::spec::PatchSpec::from_yaml(
            "id: b\ntarget: { class: a.B, method: call }\naction:\n  breaker: { failures: 2, window: 1s, cooldown: 1s, fallback: { value: -1 } }\n",
            "b.yaml",
        )
        .unwrap();
        let (breakers, events) = (Breakers::default(), EventLog::default());
        breakers.register(9001, &spec);
        assert_eq!(breakers.state(9001), Some(("closed", 0)));
        assert!(breakers.enter(&events, 9001), "a closed breaker runs the body");
        breakers.unregister(9001);
        assert_eq!(breakers.state(9001), None);
        assert!(breakers.enter(&events, 9001), "no breaker: the body runs");
    }
}
