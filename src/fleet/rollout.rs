//! The rollout state machine, as pure functions over the store's values: which instances are
//! canaries, what each instance should run, when the phase moves on, and why a canary failed.
//! The daemon (daemon.rs) carries out what these decide; nothing here talks to etcd or a JVM.

use std::collections::{BTreeMap, BTreeSet};

use super::{Canary, Desired, Observed, Verdict};

/// A rollout's phase (`rollouts/<id>/phase`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Phase {
    /// Only the canaries run it, each for the hold time.
    Canary,
    /// Every instance runs it.
    Rolling,
    /// Every instance reported running it.
    Done,
    /// A canary failed: `<instance>: <why>`. Nobody runs it.
    Failed(String),
    /// `repairctl fleet rollback`. Nobody runs it.
    RolledBack,
}

impl Phase {
    pub fn parse(text: &str) -> Result<Phase, String> {
        match text {
            "canary" => Ok(Phase::Canary),
            "rolling" => Ok(Phase::Rolling),
            "done" => Ok(Phase::Done),
            "rolled-back" => Ok(Phase::RolledBack),
            _ => match text.strip_prefix("failed: ") {
                Some(reason) => Ok(Phase::Failed(reason.to_string())),
                None => Err(format!("phase {text:?}: expected canary, rolling, done, failed: REASON or rolled-back")),
            },
        }
    }

    /// Whether every instance may run the rollout.
    pub fn open_to_all(&self) -> bool {
        matches!(self, Phase::Rolling | Phase::Done)
    }

    /// Whether nobody may run the rollout any more.
    pub fn stopped(&self) -> bool {
        matches!(self, Phase::Failed(_) | Phase::RolledBack)
    }
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Phase::Canary => f.write_str("canary"),
            Phase::Rolling => f.write_str("rolling"),
            Phase::Done => f.write_str("done"),
            Phase::Failed(reason) => write!(f, "failed: {reason}"),
            Phase::RolledBack => f.write_str("rolled-back"),
        }
    }
}

/// The phase that records `instance`'s failure as a canary.
pub fn failure(instance: &str, why: &str) -> Phase {
    Phase::Failed(format!("{instance}: {}", why.replace('\n', " ")))
}

/// The instance a failure names (the canary that failed), if the phase is one.
pub fn failed_instance(phase: &Phase) -> Option<&str> {
    match phase {
        Phase::Failed(reason) => {
            // Instance ids are `<host>/<pid>`: the first ": " after them ends the id.
            reason.split_once(": ").map(|(instance, _)| instance)
        }
        _ => None,
    }
}

/// `--canary N` or `--canary P%`.
pub fn parse_canary(text: &str) -> Result<Canary, String> {
    let bad = || format!("--canary {text:?}: expected a count of instances (1) or a share of them (25%)");
    match text.strip_suffix('%') {
        Some(share) => match share.trim().parse::<f64>() {
            Ok(p) if p > 0.0 && p <= 100.0 => Ok(Canary::Share(p)),
            _ => Err(bad()),
        },
        None => match text.trim().parse::<u32>() {
            Ok(n) if n >= 1 => Ok(Canary::Count(n)),
            _ => Err(bad()),
        },
    }
}

/// How many canary slots a rollout has among `instances` instances: at least one, at most all
/// of them (a share is rounded up: 10% of 5 instances is one canary).
pub fn canary_slots(canary: Canary, instances: usize) -> usize {
    let instances = instances.max(1);
    let wanted = match canary {
        Canary::Count(n) => n as usize,
        Canary::Share(p) => ((p / 100.0) * instances as f64).ceil() as usize,
    };
    wanted.clamp(1, instances)
}

/// One service's keys as the daemon's cache holds them (relative to the service's prefix).
#[derive(Debug, Clone, Default)]
pub struct View {
    pub desired: Option<Desired>,
    /// The desired rollout's phase and the phase key's mod_revision (0: no phase key).
    pub phase: Option<(Phase, i64)>,
    /// The desired rollout's claimed canary slots: slot → instance id.
    pub slots: BTreeMap<usize, String>,
    /// The desired rollout's canaries that held.
    pub held: BTreeSet<String>,
    /// Every instance reported (by any daemon).
    pub instances: BTreeMap<String, Observed>,
}

impl View {
    /// The view of the values under a service's prefix: relative key → (value, mod_revision).
    /// Values that do not parse are left out (and said in the returned list of problems).
    pub fn from_keys(keys: &BTreeMap<String, (String, i64)>) -> (View, Vec<String>) {
        let mut view = View::default();
        let mut problems = Vec::new();
        if let Some((text, _)) = keys.get("desired") {
            match serde_json::from_str::<Desired>(text) {
                Ok(d) => view.desired = Some(d),
                Err(e) => problems.push(format!("desired: {e}")),
            }
        }
        for (key, (text, _)) in keys.range("instances/".to_string()..) {
            if !key.starts_with("instances/") {
                break;
            }
            match serde_json::from_str::<Observed>(text) {
                Ok(o) => {
                    view.instances.insert(o.id.clone(), o);
                }
                Err(e) => problems.push(format!("{key}: {e}")),
            }
        }
        if let Some(d) = &view.desired {
            let rollout = format!("rollouts/{}/", d.id);
            if let Some((text, rev)) = keys.get(&format!("{rollout}phase")) {
                match Phase::parse(text) {
                    Ok(p) => view.phase = Some((p, *rev)),
                    Err(e) => problems.push(e),
                }
            }
            for (key, (text, _)) in keys.range(rollout.clone()..) {
                let Some(rest) = key.strip_prefix(&rollout) else { break };
                if let Some(k) = rest.strip_prefix("slot/").and_then(|k| k.parse::<usize>().ok()) {
                    view.slots.insert(k, text.clone());
                } else if let Some(instance) = rest.strip_prefix("held/") {
                    view.held.insert(instance.to_string());
                }
            }
        }
        (view, problems)
    }

    /// The rollout in force (desired, with a phase).
    pub fn rollout(&self) -> Option<(&Desired, &Phase)> {
        Some((self.desired.as_ref()?, &self.phase.as_ref()?.0))
    }

    /// How many canary slots the desired rollout has, given the instances reported.
    pub fn slot_count(&self) -> usize {
        self.desired.as_ref().map_or(0, |d| canary_slots(d.canary, self.instances.len()))
    }

    /// The canary slot `instance` holds, if any.
    pub fn slot_of(&self, instance: &str) -> Option<usize> {
        self.slots.iter().find(|(_, who)| who.as_str() == instance).map(|(k, _)| *k)
    }

    /// The first unclaimed canary slot `instance` may claim: only in phase canary, and only if it
    /// holds none yet.
    pub fn free_slot(&self, instance: &str) -> Option<usize> {
        match self.rollout() {
            Some((_, Phase::Canary)) if self.slot_of(instance).is_none() => {
                (0..self.slot_count()).find(|k| !self.slots.contains_key(k))
            }
            _ => None,
        }
    }

    /// Whether `instance` should run the desired rollout now.
    pub fn should_run(&self, instance: &str) -> bool {
        match self.rollout() {
            Some((_, Phase::Canary)) => self.slot_of(instance).is_some(),
            Some((_, phase)) => phase.open_to_all(),
            None => false,
        }
    }

    /// The phase the rollout moves to next, if it is time: canary → rolling once every slot is
    /// claimed and each of its instances held; rolling → done once every instance reported
    /// runs it.
    pub fn next_phase(&self) -> Option<Phase> {
        let (desired, phase) = self.rollout()?;
        match phase {
            Phase::Canary => {
                let count = self.slot_count();
                let all_held = (0..count).all(|k| self.slots.get(&k).is_some_and(|who| self.held.contains(who)));
                all_held.then_some(Phase::Rolling)
            }
            Phase::Rolling => {
                let marker = desired.running_marker();
                let all_run = !self.instances.is_empty()
                    && self
                        .instances
                        .values()
                        .all(|o| o.desired.as_deref() == Some(desired.id.as_str()) && o.running.contains(&marker));
                all_run.then_some(Phase::Done)
            }
            _ => None,
        }
    }

    /// What an instance's report says about it, given whether it runs the rollout.
    pub fn verdict(&self, instance: &str, runs: bool) -> Verdict {
        match self.rollout() {
            Some((_, phase @ Phase::Failed(_))) => {
                if failed_instance(phase) == Some(instance) {
                    Verdict::Failed
                } else if runs {
                    Verdict::Applied
                } else {
                    Verdict::RolledBack
                }
            }
            Some((_, Phase::RolledBack)) if !runs => Verdict::RolledBack,
            _ if runs && self.held.contains(instance) => Verdict::Held,
            _ if runs => Verdict::Applied,
            _ => Verdict::Pending,
        }
    }
}

/// How a canary's hold stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hold {
    /// Still within the hold time, nothing wrong yet.
    Waiting,
    /// Held for the whole time.
    Held,
    /// Failed, and why.
    Failed(String),
}

/// A canary's hold: `elapsed_ms` since it applied, whether the patch is still in force, and the
/// faults at the patched classes then and now.
pub fn hold(desired: &Desired, elapsed_ms: u64, still_active: bool, faults_before: u64, faults_now: u64) -> Hold {
    let new_faults = faults_now.saturating_sub(faults_before);
    if !still_active {
        return Hold::Failed(format!("the agent rolled {} back", desired.name));
    }
    if new_faults > desired.max_faults {
        return Hold::Failed(format!(
            "{new_faults} new faults at the patched classes during the hold (at most {} allowed)",
            desired.max_faults
        ));
    }
    if elapsed_ms >= desired.hold_ms {
        Hold::Held
    } else {
        Hold::Waiting
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fleet::Kind;

    fn desired(canary: Canary) -> Desired {
        Desired {
            id: "fix-1".into(),
            kind: Kind::Patch,
            name: "fix".into(),
            content: String::new(),
            canary,
            hold_ms: 2000,
            max_faults: 0,
            by: "ann".into(),
            at_ms: 1,
        }
    }

    fn observed(id: &str, desired: Option<&str>, running: &[&str]) -> Observed {
        Observed {
            id: id.into(),
            host: id.split('/').next().unwrap().into(),
            pid: 1,
            agent_version: "0.1.0".into(),
            desired: desired.map(str::to_string),
            running: running.iter().map(|s| s.to_string()).collect(),
            verdict: Verdict::Pending,
            matches: true,
            faults: 0,
        }
    }

    fn view(phase: Phase, instances: &[&str]) -> View {
        View {
            desired: Some(desired(Canary::Count(1))),
            phase: Some((phase, 7)),
            instances: instances.iter().map(|i| (i.to_string(), observed(i, None, &[]))).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn slot_counts_from_a_count_or_a_share() {
        assert_eq!(canary_slots(Canary::Count(1), 3), 1);
        assert_eq!(canary_slots(Canary::Count(5), 3), 3, "never more slots than instances");
        assert_eq!(canary_slots(Canary::Count(2), 0), 1, "no instance reported yet: one slot");
        assert_eq!(canary_slots(Canary::Share(10.0), 5), 1, "a share rounds up");
        assert_eq!(canary_slots(Canary::Share(25.0), 10), 3);
        assert_eq!(canary_slots(Canary::Share(50.0), 10), 5);
        assert_eq!(canary_slots(Canary::Share(100.0), 4), 4);
        assert_eq!(parse_canary("2"), Ok(Canary::Count(2)));
        assert_eq!(parse_canary("25%"), Ok(Canary::Share(25.0)));
        for bad in ["0", "0%", "101%", "x", "-1", ""] {
            assert!(parse_canary(bad).unwrap_err().contains("--canary"), "{bad}");
        }
    }

    #[test]
    fn phases_read_back_as_written() {
        for p in [Phase::Canary, Phase::Rolling, Phase::Done, Phase::RolledBack, failure("a/1", "refused")] {
            assert_eq!(Phase::parse(&p.to_string()), Ok(p.clone()));
        }
        assert!(Phase::parse("paused").unwrap_err().contains("\"paused\""));
    }

    #[test]
    fn only_canaries_run_until_they_all_held() {
        let mut v = view(Phase::Canary, &["a/1", "a/2", "b/3"]);
        assert!(!v.should_run("a/1"));
        assert_eq!(v.free_slot("a/1"), Some(0));
        v.slots.insert(0, "a/1".into());
        assert!(v.should_run("a/1"));
        assert!(!v.should_run("a/2") && !v.should_run("b/3"));
        assert_eq!(v.free_slot("a/2"), None, "one slot, taken");
        assert_eq!(v.free_slot("a/1"), None, "a canary claims one slot");
        assert_eq!(v.next_phase(), None, "the canary has not held yet");
        v.held.insert("a/1".into());
        assert_eq!(v.next_phase(), Some(Phase::Rolling));
        assert_eq!(v.verdict("a/1", true), Verdict::Held);
        assert_eq!(v.verdict("a/2", false), Verdict::Pending);

        let mut v = view(Phase::Rolling, &["a/1", "a/2"]);
        assert!(v.should_run("a/2"));
        assert_eq!(v.free_slot("a/2"), None, "no slots after the canary phase");
        v.instances.insert("a/1".into(), observed("a/1", Some("fix-1"), &["fix"]));
        assert_eq!(v.next_phase(), None, "a/2 does not run it yet");
        v.instances.insert("a/2".into(), observed("a/2", Some("fix-1"), &["fix", "other"]));
        assert_eq!(v.next_phase(), Some(Phase::Done));
        assert!(view(Phase::Done, &["a/1"]).should_run("a/1"));
        assert_eq!(view(Phase::Done, &["a/1"]).next_phase(), None);
    }

    #[test]
    fn a_failed_or_rolled_back_rollout_runs_nowhere() {
        let failed = failure("a/1", "2 new faults\nat the patched classes");
        assert_eq!(failed.to_string(), "failed: a/1: 2 new faults at the patched classes");
        assert_eq!(failed_instance(&failed), Some("a/1"));
        assert_eq!(failed_instance(&Phase::Rolling), None);
        let mut v = view(failed, &["a/1", "a/2"]);
        v.slots.insert(0, "a/1".into());
        assert!(!v.should_run("a/1") && !v.should_run("a/2"));
        assert_eq!(v.next_phase(), None);
        assert_eq!(v.verdict("a/1", false), Verdict::Failed);
        assert_eq!(v.verdict("a/2", false), Verdict::RolledBack);
        assert_eq!(v.verdict("a/2", true), Verdict::Applied, "still running it: not rolled back yet");
        let v = view(Phase::RolledBack, &["a/1"]);
        assert!(!v.should_run("a/1"));
        assert_eq!(v.verdict("a/1", false), Verdict::RolledBack);
        assert!(!View::default().should_run("a/1"), "no desired state: nothing runs");
    }

    #[test]
    fn a_hold_fails_on_rollback_or_new_faults() {
        let d = desired(Canary::Count(1));
        assert_eq!(hold(&d, 100, true, 5, 5), Hold::Waiting);
        assert_eq!(hold(&d, 2000, true, 5, 5), Hold::Held);
        assert!(matches!(hold(&d, 100, false, 5, 5), Hold::Failed(w) if w.contains("rolled fix back")));
        assert!(matches!(hold(&d, 100, true, 5, 7), Hold::Failed(w) if w.contains("2 new faults")));
        let lenient = Desired { max_faults: 2, ..d };
        assert_eq!(hold(&lenient, 2000, true, 5, 7), Hold::Held);
    }

    #[test]
    fn the_view_reads_the_store_keys() {
        let d = desired(Canary::Count(1));
        let mut keys = BTreeMap::new();
        keys.insert("desired".to_string(), (serde_json::to_string(&d).unwrap(), 3));
        keys.insert("rollouts/fix-1/phase".to_string(), ("canary".to_string(), 4));
        keys.insert("rollouts/fix-1/slot/0".to_string(), ("b/9".to_string(), 5));
        keys.insert("rollouts/fix-1/held/b/9".to_string(), ("1".to_string(), 6));
        keys.insert("rollouts/old-0/slot/0".to_string(), ("a/1".to_string(), 2));
        let o = observed("b/9", Some("fix-1"), &["fix"]);
        keys.insert("instances/b/9".to_string(), (serde_json::to_string(&o).unwrap(), 6));
        keys.insert("instances/b/10".to_string(), ("{not json".to_string(), 6));
        let (v, problems) = View::from_keys(&keys);
        assert_eq!(v.phase, Some((Phase::Canary, 4)));
        assert_eq!(v.slots.get(&0).map(String::as_str), Some("b/9"));
        assert_eq!(v.slots.len(), 1, "another rollout's slots are not this one's");
        assert!(v.held.contains("b/9"));
        assert_eq!(v.instances.len(), 1);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(v.next_phase(), Some(Phase::Rolling));
    }
}
