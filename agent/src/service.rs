//! The operations the control plane calls (its `AgentApi` implementation maps onto these). Each
//! runs on the calling thread, attached to the JVM for the call only (see `JavaVm::attached`).

use std::collections::HashMap;

use repair_model::spec::PatchSpec;

use crate::agent::{self, version_text, Agent, LoadMode};
use crate::api::LoadedClass;
use crate::config::FaultMode;
use crate::events::{About, Kind};
use crate::jvmti::{Capability, Jni};
use crate::patches::{AppliedPatch, PatchError};

/// What `status` shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub pid: u32,
    /// `startup` or `attach`.
    pub load_mode: &'static str,
    /// The JVM's JVMTI version, e.g. `17.0.0`.
    pub jvmti_version: String,
    /// `jvmti`, `bytecode` or `off`: how faults are captured in fact.
    pub fault_mode: String,
    /// What the fault mode cannot do here, in words (empty when nothing is missing).
    pub fault_mode_lacks: String,
    /// After attach: fault probes added to the loaded classes, and what was skipped.
    pub fault_capture_detail: String,
    pub classes_skipped: u64,
    pub capabilities_held: Vec<String>,
    /// `(capability, why not)`.
    pub capabilities_missing: Vec<(String, String)>,
    /// `Ok` or why `repair/rt/Hooks` is not available.
    pub hooks: Result<(), String>,
    pub patches: usize,
    pub fault_sites: usize,
    pub faults_dropped: u64,
    pub uptime_ms: u64,
}

fn with_agent<R>(f: impl FnOnce(&'static Agent, &Jni<'_>) -> Result<R, PatchError>) -> Result<R, PatchError> {
    let a = agent::get().ok_or_else(|| PatchError::Unavailable("the agent is not initialized".to_string()))?;
    a.vm.attached("repair-control", |jni| f(a, jni)).unwrap_or_else(|rc| {
        Err(PatchError::Unavailable(format!("cannot attach the control thread to the JVM (JNI error {rc})")))
    })
}

pub fn status() -> Option<Status> {
    let a = agent::get()?;
    let (faults, dropped) = a.faults.list();
    let fault_mode_lacks = match (a.options.faults, a.fault_mode) {
        (FaultMode::Jvmti, FaultMode::Bytecode) => format!(
            "faults=jvmti was asked for, but {} is not available{}: faults are captured by bytecode probes \
             (Hooks.thrown), without the exact throwing instruction",
            Capability::ExceptionEvents.name(),
            if a.mode == LoadMode::Attach { " after attach" } else { "" }
        ),
        (_, FaultMode::Bytecode) => "faults are exceptions leaving application methods, seen by exception-exit \
                                     probes (Hooks.thrown): whether a caller catches them is not known; \
                                     faults=jvmti at start-up sees every throw and its handler, at a cost"
            .to_string(),
        (_, FaultMode::Off) => "fault capture is off".to_string(),
        (_, FaultMode::Jvmti) => String::new(),
    };
    let (fault_capture_detail, classes_skipped) = match &*a.attach_probes.lock().unwrap_or_else(|e| e.into_inner()) {
        None => (String::new(), 0),
        Some(Ok(r)) if r.skipped.is_empty() => {
            (format!("probes added to {} classes loaded before the attach", r.probed), 0)
        }
        Some(Ok(r)) => (
            format!("probes added to {} classes loaded before the attach; {}", r.probed, r.skipped_text()),
            r.skipped.len() as u64,
        ),
        Some(Err(e)) => (format!("no probes in the classes loaded before the attach: {e}"), 0),
    };
    Some(Status {
        pid: std::process::id(),
        load_mode: if a.mode == LoadMode::Startup { "startup" } else { "attach" },
        jvmti_version: version_text(a.jvmti_version),
        fault_mode: a.fault_mode.to_string(),
        fault_mode_lacks,
        fault_capture_detail,
        classes_skipped,
        capabilities_held: a.capabilities.held.iter().map(|c| c.name().to_string()).collect(),
        capabilities_missing: a
            .capabilities
            .missing
            .iter()
            .map(|(c, why)| (c.name().to_string(), why.clone()))
            .collect(),
        hooks: a.hooks.lock().unwrap_or_else(|e| e.into_inner()).clone(),
        patches: a.patches.list().len(),
        fault_sites: faults.len(),
        faults_dropped: dropped,
        uptime_ms: a.loaded_at.elapsed().as_millis() as u64,
    })
}

/// An operator's request: the name the client gives (`operator:<name>`), and the client as the
/// transport vouches for it (`uid 1000, pid 4242`; empty when it cannot).
pub struct Operator {
    pub who: String,
    pub peer: String,
}

impl std::fmt::Display for Operator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.peer.is_empty() {
            write!(f, "{}", self.who)
        } else {
            write!(f, "{} ({})", self.who, self.peer)
        }
    }
}

/// Parses and applies a patch spec; `attachments` are the files it names (a swap's class file).
pub fn apply(
    yaml: &str,
    source: &str,
    attachments: HashMap<String, Vec<u8>>,
    by: Operator,
) -> Result<AppliedPatch, PatchError> {
    let spec = PatchSpec::from_yaml(yaml, source).map_err(|e| PatchError::Invalid(e.to_string()))?;
    with_agent(|a, jni| {
        if !a.capabilities.holds(Capability::RetransformClasses) {
            return Err(PatchError::Unavailable(format!(
                "the agent does not hold {}: patches cannot be applied in this JVM",
                Capability::RetransformClasses.name()
            )));
        }
        let (id, class) = (spec.id.clone(), spec.class.clone());
        let site = format!("{}.{}", spec.class, spec.method.name);
        let about = About { patch: &id, site: &site, ..About::default() };
        match a.patches.apply(a.jvmti, jni, spec, attachments, by.who.clone()) {
            Ok(p) => {
                a.audit.applied(&p, &format!("applied by {by}"));
                a.events.emit(Kind::Applied, about, format!("{} by {by}", p.spec.action.summary()));
                Ok(p)
            }
            Err(e) => {
                a.audit.refused(yaml, &id, &by.who, &class, &format!("{e} (asked by {by})"));
                a.events.emit(Kind::Refused, about, e.to_string());
                Err(e)
            }
        }
    })
}

/// Rolls back one patch, or all with `None`, for an operator; returns what was rolled back.
pub fn rollback(id: Option<&str>, by: &Operator) -> Result<Vec<AppliedPatch>, PatchError> {
    with_agent(|a, jni| {
        let gone = a.patches.rollback(a.jvmti, jni, id)?;
        for p in &gone {
            let reason = format!("rolled back by {by}");
            a.audit.rolled_back(p, &by.who, &reason);
            let site = format!("{}.{}", p.spec.class, p.spec.method.name);
            a.events.emit(Kind::RolledBack, About { patch: &p.spec.id, site: &site, ..About::default() }, reason);
        }
        Ok(gone)
    })
}

/// The bytes of a loaded class as the JVM runs them now (`javap CLASS`); `class` is dotted.
pub fn class_bytes(class: &str) -> Result<Vec<u8>, PatchError> {
    with_agent(|a, jni| a.patches.live_bytes(a.jvmti, jni, &class.replace('.', "/")))
}

/// Dotted names of the loaded classes matching `glob` (`*` any run, `?` one character), sorted.
pub fn classes(glob: &str) -> Result<Vec<LoadedClass>, PatchError> {
    with_agent(|a, jni| {
        jni.with_local_frame(16, |jni| {
            let all = a.jvmti.loaded_classes(jni).map_err(|e| PatchError::Unavailable(e.to_string()))?;
            let mut found = Vec::new();
            for class in all {
                let dotted = a
                    .jvmti
                    .class_signature(&class)
                    .ok()
                    .and_then(|sig| Some(sig.strip_prefix('L')?.strip_suffix(';')?.replace('/', ".")));
                if let Some(name) = dotted.filter(|n| repair_model::glob::matches(glob, n)) {
                    let loader = jni.with_local_frame(4, |jni| match a.jvmti.class_loader(jni, &class) {
                        Ok(l) if l.is_null() => "bootstrap".to_string(),
                        Ok(l) => jni.class_name_of_object(&l),
                        Err(e) => format!("? ({e})"),
                    });
                    let modifiable = a.jvmti.is_modifiable(&class).unwrap_or(false);
                    found.push(LoadedClass { name, loader, modifiable });
                }
                jni.delete_local_ref(class);
            }
            found.sort_by(|x, y| (&x.name, &x.loader).cmp(&(&y.name, &y.loader)));
            found.dedup();
            Ok(found)
        })
    })
}

/// How many classes are loaded (arrays and primitives included).
pub fn class_count() -> Result<usize, PatchError> {
    with_agent(|a, jni| {
        jni.with_local_frame(16, |jni| {
            let all = a.jvmti.loaded_classes(jni).map_err(|e| PatchError::Unavailable(e.to_string()))?;
            let n = all.len();
            for class in all {
                jni.delete_local_ref(class);
            }
            Ok(n)
        })
    })
}
