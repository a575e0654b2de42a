//! Events: what the agent decided and did, with the reason, in order. Kept in a bounded ring for
//! `repairctl events`, streamed to followers, and logged on the JVM's stderr.

use std::collections::VecDeque;
use std::sync::Mutex;

use tokio::sync::broadcast;

/// Events kept for `repairctl events` (older ones are dropped).
const KEPT: usize = 2048;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A policy was loaded or replaced.
    Policy,
    /// A rule's fault pattern was met and the engine chose an action.
    Fired,
    /// Dry-run: what would have been applied.
    DryRun,
    /// A safety rail held a rule back.
    Held,
    Applied,
    /// An apply that the transform or the JVM refused; nothing changed.
    Refused,
    Validated,
    /// A repair's window reached its limit without enough calls for a verdict: kept, unjudged.
    Unproven,
    RolledBack,
    /// A durable patch from the journal was put back at start-up.
    Restored,
    BreakerOpen,
    BreakerHalfOpen,
    BreakerClosed,
    /// Something the operator should know about the journal or the state dir.
    Journal,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Policy => "policy",
            Kind::Fired => "fired",
            Kind::DryRun => "dry-run",
            Kind::Held => "held",
            Kind::Applied => "applied",
            Kind::Refused => "refused",
            Kind::Validated => "validated",
            Kind::Unproven => "unproven",
            Kind::RolledBack => "rolled-back",
            Kind::Restored => "restored",
            Kind::BreakerOpen => "breaker-open",
            Kind::BreakerHalfOpen => "breaker-half-open",
            Kind::BreakerClosed => "breaker-closed",
            Kind::Journal => "journal",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// From 1, in the order they happened.
    pub seq: u64,
    /// Milliseconds since the Unix epoch.
    pub at_ms: u64,
    /// Microseconds since the agent loaded (a finer clock for measuring transitions).
    pub at_us: u64,
    pub kind: Kind,
    /// The rule involved, if any.
    pub rule: String,
    /// The patch involved, if any.
    pub patch: String,
    /// `class.method` the event is about, if any.
    pub site: String,
    pub reason: String,
}

/// What an event is about; the log assigns the sequence number and time.
#[derive(Debug, Clone, Default)]
pub struct About<'a> {
    pub rule: &'a str,
    pub patch: &'a str,
    pub site: &'a str,
}

pub struct EventLog {
    ring: Mutex<(u64, VecDeque<Event>)>,
    updates: broadcast::Sender<Event>,
}

impl Default for EventLog {
    fn default() -> Self {
        now_us(); // The clock starts with the log (the agent's load).
        EventLog { ring: Mutex::new((0, VecDeque::new())), updates: broadcast::channel(1024).0 }
    }
}

/// Microseconds on the events' clock: what `at_us` says, and what code that times transitions
/// itself (breakers) measures with, so an event's `at_us` is the instant it decided on.
pub fn now_us() -> u64 {
    static EPOCH: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    EPOCH.get_or_init(std::time::Instant::now).elapsed().as_micros() as u64
}

impl EventLog {
    pub fn emit(&self, kind: Kind, about: About<'_>, reason: impl Into<String>) {
        self.emit_at(now_us(), kind, about, reason);
    }

    /// [`EventLog::emit`] for something that happened at `at_us` on [`now_us`]'s clock.
    pub fn emit_at(&self, at_us: u64, kind: Kind, about: About<'_>, reason: impl Into<String>) {
        let reason = reason.into();
        let mut ring = self.ring.lock().unwrap_or_else(|e| e.into_inner());
        ring.0 += 1;
        let event = Event {
            seq: ring.0,
            at_ms: repair_model::journal::now_ms(),
            at_us,
            kind,
            rule: about.rule.to_string(),
            patch: about.patch.to_string(),
            site: about.site.to_string(),
            reason,
        };
        if ring.1.len() == KEPT {
            ring.1.pop_front();
        }
        ring.1.push_back(event.clone());
        // Sent under the lock so followers see events in sequence order; nobody following is fine.
        let _ = self.updates.send(event.clone());
        drop(ring);
        crate::log_info!("{}", line(&event));
    }

    /// The events kept, oldest first.
    pub fn list(&self) -> Vec<Event> {
        self.ring.lock().unwrap_or_else(|e| e.into_inner()).1.iter().cloned().collect()
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.updates.subscribe()
    }
}

/// One line for the log: `event applied rule=price-npe patch=... at=...: reason`.
fn line(e: &Event) -> String {
    let mut s = format!("event {}", e.kind.name());
    for (k, v) in [("rule", &e.rule), ("patch", &e.patch), ("at", &e.site)] {
        if !v.is_empty() {
            s.push_str(&format!(" {k}={v}"));
        }
    }
    if !e.reason.is_empty() {
        s.push_str(": ");
        s.push_str(&e.reason);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_numbered_kept_in_order_and_streamed() {
        let log = EventLog::default();
        let mut rx = log.subscribe();
        log.emit(Kind::Fired, About { rule: "r", site: "a.B.m", ..About::default() }, "3 faults");
        log.emit(Kind::Applied, About { rule: "r", patch: "p", site: "a.B.m" }, "");
        let list = log.list();
        assert_eq!(list.iter().map(|e| (e.seq, e.kind)).collect::<Vec<_>>(), [(1, Kind::Fired), (2, Kind::Applied)]);
        assert_eq!(rx.try_recv().unwrap().kind, Kind::Fired);
        assert_eq!(line(&list[0]), "event fired rule=r at=a.B.m: 3 faults");
    }
}
