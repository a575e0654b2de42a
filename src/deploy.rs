//! A deployment: the changed classes of a fixed build, redefined together as one patch.
//!
//! Its journal record keeps this manifest as the spec text (YAML) and every class file as an
//! attachment, so a restart with the state dir puts the deployment back class by class.
//!
//! ```yaml
//! id: deploy-3
//! deploy:
//!   source: /srv/shop-1.4.1.jar
//!   classes:
//!     - { class: com.shop.Cart, class_file: com/shop/Cart.class, original: 5f1c…, deployed: 9a0e… }
//! durable: true
//! ```

use serde::{Deserialize, Serialize};

use crate::spec::{Action, PatchSpec};
use repair_bytecode::transform::MethodTarget;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Deployment {
    pub id: String,
    pub deploy: Build,
    #[serde(default)]
    pub durable: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Build {
    /// Where the build came from (the jar or directory the operator named), for people.
    pub source: String,
    pub classes: Vec<Member>,
}

/// One class of the deployment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Member {
    /// Dotted name.
    pub class: String,
    /// The attachment holding the new class file (its path in the build).
    pub class_file: String,
    /// SHA-256s (hex) of the class of the running build: of its file, as the JVM loads it, and
    /// of the bytes the JVM hands back for it when they differ (see `Action::Redefine`).
    pub original: Vec<String>,
    /// SHA-256 (hex) of the new class file.
    pub deployed: String,
}

impl Deployment {
    /// Whether a journaled spec text is a deployment manifest rather than a patch spec.
    pub fn is_manifest(text: &str) -> bool {
        serde_yaml_ng::from_str::<serde_yaml_ng::Value>(text)
            .ok()
            .is_some_and(|v| v.as_mapping().is_some_and(|m| m.contains_key("deploy")))
    }

    pub fn from_yaml(text: &str, source: &str) -> Result<Deployment, String> {
        serde_yaml_ng::from_str(text).map_err(|e| format!("{source}: not a deployment manifest: {e}"))
    }

    pub fn to_yaml(&self) -> String {
        serde_yaml_ng::to_string(self).unwrap_or_default()
    }

    /// One `redefine` patch spec per class, all under the deployment's id.
    pub fn member_specs(&self) -> Vec<PatchSpec> {
        let source = self.to_yaml();
        self.deploy
            .classes
            .iter()
            .map(|m| PatchSpec {
                id: self.id.clone(),
                class: m.class.clone(),
                method: MethodTarget { name: String::new(), descriptor: None },
                action: Action::Redefine { class_file: m.class_file.clone(), original: m.original.clone() },
                durable: self.durable,
                source: source.clone(),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manifest_round_trips_and_gives_one_redefine_per_class() {
        let d = Deployment {
            id: "deploy-1".into(),
            deploy: Build {
                source: "/srv/app.jar".into(),
                classes: vec![Member {
                    class: "a.B".into(),
                    class_file: "a/B.class".into(),
                    original: vec!["0".repeat(64)],
                    deployed: "1".repeat(64),
                }],
            },
            durable: true,
        };
        let yaml = d.to_yaml();
        assert!(Deployment::is_manifest(&yaml));
        assert!(!Deployment::is_manifest("id: p\ntarget: { class: a.B, method: run }\n"));
        assert_eq!(Deployment::from_yaml(&yaml, "journal").unwrap(), d);
        let specs = d.member_specs();
        assert_eq!(specs.len(), 1);
        assert_eq!((specs[0].id.as_str(), specs[0].class.as_str(), specs[0].site()), ("deploy-1", "a.B", "a.B".into()));
        assert_eq!(specs[0].attachments_needed(), vec!["a/B.class".to_string()]);
        assert!(Deployment::from_yaml("id: x\ndeploy: {}\n", "j").unwrap_err().starts_with("j: not a deployment"));
    }
}
