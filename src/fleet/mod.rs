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

use std::collections::BTreeMap;

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

/// The largest deploy content (encoded) the fleet puts in etcd: etcd refuses requests above
/// `--max-request-bytes` (1.5 MiB by default), and the desired state travels in one txn.
pub const MAX_DEPLOY_BYTES: usize = 1 << 20;

/// The content of a deploy rollout: the build's class files (path in the build → base64 of the
/// bytes) as `repairctl deploy` reads them, and the names of its other files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildContent {
    /// The jar or directory it was read from, for messages.
    pub source: String,
    pub class_files: BTreeMap<String, String>,
    #[serde(default)]
    pub resources: Vec<String>,
}

impl BuildContent {
    pub fn new(source: &str, class_files: &std::collections::HashMap<String, Vec<u8>>, resources: &[String]) -> Self {
        BuildContent {
            source: source.to_string(),
            class_files: class_files.iter().map(|(k, v)| (k.clone(), base64_encode(v))).collect(),
            resources: resources.to_vec(),
        }
    }

    /// The JSON text put in `desired.content`; refused above [`MAX_DEPLOY_BYTES`].
    pub fn to_content(&self) -> Result<String, String> {
        let text = serde_json::to_string(self).map_err(|e| e.to_string())?;
        if text.len() > MAX_DEPLOY_BYTES {
            return Err(format!(
                "{}: the build is {} bytes encoded ({} class files), above the fleet's limit of {} bytes (1 MiB):                  the desired state goes to etcd in one request and etcd refuses requests above its                  --max-request-bytes (1.5 MiB by default); deploy only the changed classes (a directory of them)",
                self.source,
                text.len(),
                self.class_files.len(),
                MAX_DEPLOY_BYTES
            ));
        }
        Ok(text)
    }

    /// Reads `desired.content` back: the class files' bytes.
    pub fn from_content(text: &str) -> Result<(BuildContent, std::collections::HashMap<String, Vec<u8>>), String> {
        let build: BuildContent =
            serde_json::from_str(text).map_err(|e| format!("the deploy content is not a build: {e}"))?;
        let mut files = std::collections::HashMap::new();
        for (path, b64) in &build.class_files {
            let bytes = base64_decode(b64).map_err(|e| format!("the deploy content, {path}: {e}"))?;
            files.insert(path.clone(), bytes);
        }
        Ok((build, files))
    }
}

/// A deploy rollout's patch id from the build's file name: `deploy-<stem>` with anything but
/// `A-Z a-z 0-9 . _ -` made `-`.
pub fn deploy_name(build: &std::path::Path) -> String {
    let stem = build.file_stem().map_or_else(|| "build".to_string(), |s| s.to_string_lossy().into_owned());
    let stem: String =
        stem.chars().map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') { c } else { '-' }).collect();
    format!("deploy-{stem}")
}

const BASE64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding.
pub fn base64_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(BASE64[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Decodes standard base64 with padding.
pub fn base64_decode(text: &str) -> Result<Vec<u8>, String> {
    let text = text.as_bytes();
    if text.len() % 4 != 0 {
        return Err(format!("not base64: {} characters (not a multiple of 4)", text.len()));
    }
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    for (q, quad) in text.chunks(4).enumerate() {
        let last = q == text.len() / 4 - 1;
        let pad = quad.iter().rev().take_while(|c| **c == b'=').count();
        if pad > 2 || (pad > 0 && !last) {
            return Err("not base64: '=' inside".to_string());
        }
        let mut n = 0u32;
        for (i, c) in quad[..4 - pad].iter().enumerate() {
            let v = BASE64.iter().position(|b| b == c).ok_or_else(|| format!("not base64: {:?}", *c as char))?;
            n |= (v as u32) << (18 - 6 * i);
        }
        out.extend_from_slice(&n.to_be_bytes()[1..4 - pad]);
    }
    Ok(out)
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

    #[test]
    fn base64_round_trips_and_refuses_what_is_not() {
        assert_eq!(base64_encode(b""), "");
        assert_eq!(base64_encode(b"f"), "Zg==");
        assert_eq!(base64_encode(b"fo"), "Zm8=");
        assert_eq!(base64_encode(b"foobar"), "Zm9vYmFy");
        let all: Vec<u8> = (0..=255).collect();
        assert_eq!(base64_decode(&base64_encode(&all)).unwrap(), all);
        assert_eq!(base64_decode("Zm8=").unwrap(), b"fo");
        assert!(base64_decode("Zm8").unwrap_err().contains("multiple of 4"));
        assert!(base64_decode("Z=8=").unwrap_err().contains("'='"));
        assert!(base64_decode("Zm8*").unwrap_err().contains("'*'"));
    }

    #[test]
    fn a_build_travels_as_json_and_a_big_one_is_refused() {
        let files = std::collections::HashMap::from([("a/B.class".to_string(), vec![0xca, 0xfe, 0xba, 0xbe])]);
        let b = BuildContent::new("app.jar", &files, &["META-INF/MANIFEST.MF".to_string()]);
        let text = b.to_content().unwrap();
        assert!(text.contains("\"a/B.class\":\"yv66vg==\""), "{text}");
        let (back, bytes) = BuildContent::from_content(&text).unwrap();
        assert_eq!((back, bytes), (b, files));
        assert!(BuildContent::from_content("[]").unwrap_err().contains("not a build"));
        let big = std::collections::HashMap::from([("a/B.class".to_string(), vec![7u8; 800 * 1024])]);
        let err = BuildContent::new("big.jar", &big, &[]).to_content().unwrap_err();
        assert!(err.starts_with("big.jar: the build is 1092") && err.contains("1.5 MiB"), "{err}");
        assert_eq!(deploy_name(std::path::Path::new("/srv/shop 1.4.jar")), "deploy-shop-1.4");
    }
}
