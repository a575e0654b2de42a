//! The fleet: one repair rolled out to every JVM of a service through etcd, canary first.
//!
//! Desired state per service lives in etcd under `/repair/v1/services/<svc>/` (written by
//! `repairctl fleet`); a `repaird` per host reconciles the JVMs it finds toward it and reports
//! what each runs under its lease. This module holds the key layout and the JSON of the values.
//!
//! ```text
//! desired                     Desired (JSON)
//! rollouts/<id>/phase         canary | rolling | done | failed: <instance>: <why> | rolled-back
//! rollouts/<id>/slot/<k>      the instance id holding canary slot k (created by txn, once)
//! rollouts/<id>/held/<inst>   the canary held the patch for hold_ms
//! instances/<host>/<pid>      Observed (JSON), under the daemon's lease
//! history/<id>                HistoryRecord (JSON)
//! ```

pub mod daemon;
pub mod rollout;
pub mod store;

use serde::{Deserialize, Serialize};

/// Where every service's keys live.
pub const ROOT: &str = "/repair/v1/services/";

/// Checks a service name: 1-64 of `A-Z a-z 0-9 . _ -` (it is one segment of a key).
pub fn check_service(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 64 {
        return Err(format!("a service name has 1-64 characters (this has {})", name.len()));
    }
    if let Some(c) = name.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))) {
        return Err(format!("{c:?} is not allowed in a service name (only A-Z a-z 0-9 . _ -)"));
    }
    if name == "." || name == ".." {
        return Err("a service name cannot be . or ..".to_string());
    }
    Ok(())
}

/// The keys of one service.
#[derive(Debug, Clone)]
pub struct Keys {
    pub prefix: String,
}

impl Keys {
    pub fn new(service: &str) -> Keys {
        Keys { prefix: format!("{ROOT}{service}/") }
    }
    pub fn desired(&self) -> String {
        format!("{}desired", self.prefix)
    }
    pub fn phase(&self, rollout: &str) -> String {
        format!("{}rollouts/{rollout}/phase", self.prefix)
    }
    pub fn slot(&self, rollout: &str, k: usize) -> String {
        format!("{}rollouts/{rollout}/slot/{k}", self.prefix)
    }
    pub fn held(&self, rollout: &str, instance: &str) -> String {
        format!("{}rollouts/{rollout}/held/{instance}", self.prefix)
    }
    pub fn instance(&self, instance: &str) -> String {
        format!("{}instances/{instance}", self.prefix)
    }
    pub fn history(&self, rollout: &str) -> String {
        format!("{}history/{rollout}", self.prefix)
    }
    /// A key of this service without the prefix (`desired`, `rollouts/r1/phase`).
    pub fn relative<'k>(&self, key: &'k str) -> Option<&'k str> {
        key.strip_prefix(&self.prefix)
    }
}

/// What a rollout carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A patch spec (YAML), applied with `durable: true`.
    Patch,
    /// A self-healing policy (YAML).
    Policy,
    /// A build (a jar, base64): hot-deployed.
    Deploy,
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Kind::Patch => "patch",
            Kind::Policy => "policy",
            Kind::Deploy => "deploy",
        })
    }
}

/// How many instances are canaries: a count, or a share (percent) of the instances.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Canary {
    Count(u32),
    Share(f64),
}

/// The service's desired state: one rollout.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Desired {
    /// The rollout's id (`<name>-<at_ms>`).
    pub id: String,
    pub kind: Kind,
    /// The patch's id, the policy's or the build's file name.
    pub name: String,
    /// The YAML text (patch, policy) or the base64 of the jar (deploy).
    pub content: String,
    pub canary: Canary,
    pub hold_ms: u64,
    pub max_faults: u64,
    pub by: String,
    pub at_ms: u64,
}

impl Desired {
    /// What an instance's `running` list shows while it runs this rollout: the patch's id, or
    /// `policy:<name>` for a policy.
    pub fn running_marker(&self) -> String {
        match self.kind {
            Kind::Patch | Kind::Deploy => self.name.clone(),
            Kind::Policy => format!("policy:{}", self.name),
        }
    }
}

/// Where an instance stands with the rollout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// Not running the rollout (yet): not a canary while the canaries hold, or not reconciled yet.
    Pending,
    /// Running it.
    Applied,
    /// A canary that ran it for the hold time without failing.
    Held,
    /// The canary whose failure stopped the rollout.
    Failed,
    /// The rollout failed or was rolled back: the instance does not run it.
    RolledBack,
}

/// One JVM as its daemon sees it: `instances/<host>/<pid>`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Observed {
    /// `<host>/<pid>`.
    pub id: String,
    pub host: String,
    pub pid: u32,
    pub agent_version: String,
    /// The rollout the instance is reconciled toward, if any.
    pub desired: Option<String>,
    /// The fleet's patches (and `policy:<name>`) in force in the JVM.
    pub running: Vec<String>,
    pub verdict: Verdict,
    /// It runs what the rollout says it should run now.
    pub matches: bool,
    /// Faults the agent has seen (the sum of every site's count).
    pub faults: u64,
}

/// One rollout (or rollback) in `history/<id>`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryRecord {
    pub id: String,
    /// `patch`, `policy`, `deploy` or `rollback`.
    pub kind: String,
    /// The patch or policy (for a rollback: the rollout it rolled back).
    pub name: String,
    pub by: String,
    pub at_ms: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_names_are_one_key_segment() {
        assert!(check_service("shop-eu_1.a").is_ok());
        assert!(check_service("").unwrap_err().contains("1-64"));
        assert!(check_service(&"s".repeat(65)).unwrap_err().contains("1-64"));
        assert!(check_service("shop/eu").unwrap_err().contains("'/'"));
        assert!(check_service("..").is_err());
    }

    #[test]
    fn values_are_the_documented_json() {
        let d = Desired {
            id: "fix-1".into(),
            kind: Kind::Patch,
            name: "fix".into(),
            content: "id: fix".into(),
            canary: Canary::Count(1),
            hold_ms: 2000,
            max_faults: 0,
            by: "ann".into(),
            at_ms: 1,
        };
        let v = serde_json::to_value(&d).unwrap();
        assert_eq!(v["kind"], "patch");
        assert_eq!(v["canary"], serde_json::json!({"count": 1}));
        let share = serde_json::to_value(Canary::Share(25.0)).unwrap();
        assert_eq!(share, serde_json::json!({"share": 25.0}));
        assert_eq!(serde_json::to_value(Verdict::RolledBack).unwrap(), "rolled-back");
        let k = Keys::new("shop");
        assert_eq!(k.slot("fix-1", 0), "/repair/v1/services/shop/rollouts/fix-1/slot/0");
        assert_eq!(k.relative(&k.instance("a/42")), Some("instances/a/42"));
    }
}
