//! The patch manager: each patched class has a stack of applied patches over its original bytes.
//!
//! Classes change only through `RetransformClasses`: the JVM then runs the ClassFileLoadHook,
//! whose input is always the class's original bytes (our own earlier transformations are not
//! included for a retransformation-capable environment), and [`PatchManager::transform`] returns
//! the original bytes with every active patch of that class applied in order. A class that loads
//! later (another loader) gets the same chain as it loads.
//!
//! Apply: parse and rewrite outside the JVM first (a spec that does not fit fails here and
//! changes nothing); then one `RetransformClasses` call for all loaded classes of the target name,
//! during which the hook hands out the precomputed bytes. HotSpot applies such a call to all its
//! classes or to none, so a patch the JVM rejects leaves the previous version active. The state
//! lock is never held across a JVMTI call: the retransformation calls back into
//! [`PatchManager::transform`] on the same thread.

use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;

use repair_model::journal::{now_ms, sha256_hex};
use repair_model::spec::{Action, PatchSpec, RewriteEnv};

use crate::runtime::breakers::Breakers;
use crate::runtime::hooks::Reports;
use crate::runtime::recursion::RecursionGuards;

use crate::jvm::{Jni, Jvmti, JvmtiError, Local};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PatchError {
    /// The spec names a class or method that is not there, or a patch id that is unknown.
    NotFound(String),
    /// A patch with this id is already applied.
    AlreadyExists(String),
    /// The spec does not fit the class (the rewrite refused it).
    Invalid(String),
    /// The JVM refused the new class bytes; the previous version stays active.
    Rejected { patch: String, error: JvmtiError },
    /// The agent cannot patch (a capability is missing, the thread is not attached...).
    Unavailable(String),
}

impl fmt::Display for PatchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PatchError::NotFound(m) | PatchError::AlreadyExists(m) | PatchError::Invalid(m) => f.write_str(m),
            PatchError::Unavailable(m) => f.write_str(m),
            PatchError::Rejected { patch, error } => write!(
                f,
                "patch {patch}: the JVM refused the new class bytes with {} ({}): {}; the previous version stays active",
                error.name(),
                error.code,
                error.meaning()
            ),
        }
    }
}

impl std::error::Error for PatchError {}

/// A patch in effect.
#[derive(Debug, Clone)]
pub struct AppliedPatch {
    pub spec: PatchSpec,
    /// The id guard handlers and probes of this patch report under (`Hooks.*(int id, ...)`).
    pub report_id: i32,
    /// Internal name of the class it rewrites.
    pub class: String,
    pub applied_at_ms: u64,
    /// Who applied it: `operator:<name>` or `rule:<name>`.
    pub who: String,
    /// SHA-256 (hex) of the class bytes before and after the patch was applied.
    pub hashes: (String, String),
    /// Before and after of the rollback, once rolled back.
    pub hashes_rollback: Option<(String, String)>,
    pub attachments: HashMap<String, Vec<u8>>,
}

impl AppliedPatch {
    /// Whether it replaces the whole class (a `redefine`, e.g. one class of a deployment).
    pub fn is_redefinition(&self) -> bool {
        matches!(self.spec.action, Action::Redefine { .. })
    }

    /// For a redefinition, the class file it puts in place.
    fn redefined_bytes(&self) -> Option<&[u8]> {
        match &self.spec.action {
            Action::Redefine { class_file, .. } => self.attachments.get(class_file).map(Vec::as_slice),
            _ => None,
        }
    }
}

/// Patches the ClassFileLoadHook took out of effect, and why.
#[derive(Debug)]
pub struct Dropped {
    /// Of one patch id: one patch, or classes of a deployment.
    pub patches: Vec<AppliedPatch>,
    pub reason: String,
    /// Whether no patch of that id is left in effect (the journal then ends it; a deployment
    /// that loses one class keeps the others, and stays durable).
    pub whole: bool,
}

#[derive(Default)]
struct State {
    patches: Vec<AppliedPatch>,
    /// Internal class name → the bytes the JVM gave before any patch of ours.
    originals: HashMap<String, Vec<u8>>,
    /// Classes the hook must only remember the original bytes of (first patch of a class).
    capturing: Vec<String>,
    /// Bytes the hook returns during our own retransformation; `None`: the original bytes.
    pending: HashMap<String, Option<Vec<u8>>>,
    /// Classes loaded under one name by several loaders from different bytes (two versions of a
    /// webapp): `originals` holds one of them only.
    mixed: std::collections::HashSet<String>,
}

impl State {
    /// The smallest report id no patch in effect uses. Ids are pushed by `sipush`, so they must
    /// stay below 32768: a larger one would be a new constant in the class's pool at every apply,
    /// and HotSpot keeps every pool entry a class ever had across redefinitions (metaspace grows,
    /// and at 65,535 entries the class can no longer be patched).
    fn free_report_id(&self) -> i32 {
        (1..).find(|id| !self.patches.iter().any(|p| p.report_id == *id)).unwrap_or(1)
    }
}

#[derive(Default)]
pub struct PatchManager {
    /// The state of the breaker patches in effect (what `Hooks.breaker*` consult).
    pub breakers: Breakers,
    /// The depths of the recursion patches in effect (what `Hooks.recursion*` consult).
    pub recursion: RecursionGuards,
    /// What each patch's hooks reported, by report id.
    pub reports: Reports,
    state: Mutex<State>,
    /// Serializes apply and rollback: each is a read-compute-retransform-commit sequence.
    operations: Mutex<()>,
}

/// The original bytes with `patches` applied: a redefinition first (it replaces the class the
/// others then edit, whatever order they came in), then the others in order.
fn chain<'p>(original: &[u8], patches: impl Iterator<Item = &'p AppliedPatch> + Clone) -> Result<Vec<u8>, PatchError> {
    let mut bytes = original.to_vec();
    let (redefines, edits): (Vec<&AppliedPatch>, Vec<&AppliedPatch>) = patches.partition(|p| p.is_redefinition());
    for p in redefines.into_iter().chain(edits) {
        let env = RewriteEnv { attachments: Some(&p.attachments), report_id: Some(p.report_id), hierarchy: None };
        bytes = p.spec.rewrite(&bytes, &env).map_err(|e| PatchError::Invalid(e.to_string()))?;
    }
    Ok(bytes)
}

impl PatchManager {
    /// Creates what a patch's hooks consult at run time (a breaker's state, a recursion guard's
    /// depth) before its code can run; nothing for other patches.
    fn register_runtime_state(&self, report_id: i32, spec: &PatchSpec) {
        self.breakers.register(report_id, spec);
        self.recursion.register(report_id, spec);
    }

    /// Forgets what the hooks of a patch that is gone consulted.
    fn forget_runtime_state(&self, report_id: i32) {
        self.breakers.unregister(report_id);
        self.recursion.unregister(report_id);
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The patches in effect, in the order they were applied.
    pub fn list(&self) -> Vec<AppliedPatch> {
        self.state().patches.clone()
    }

    /// Whether a patch in effect satisfies `test` (without copying them all, as `list` does).
    pub fn any(&self, test: impl Fn(&AppliedPatch) -> bool) -> bool {
        self.state().patches.iter().any(test)
    }

    /// The patch a report id belongs to.
    pub fn patch_of_report(&self, report_id: i32) -> Option<String> {
        self.state().patches.iter().find(|p| p.report_id == report_id).map(|p| p.spec.id.clone())
    }

    /// The ClassFileLoadHook: new bytes for `name` (`None`: leave the class as it is), and the
    /// patches taken out of effect as it loads: one that waited for `name` but does not fit its
    /// bytes (a durable patch of an older build of the class), or a deployment whose class loads
    /// already as deployed (the JVM runs the new build: the deployment is no longer needed).
    pub fn transform(&self, name: &str, bytes: &[u8]) -> (Option<Vec<u8>>, Vec<Dropped>) {
        let mut st = self.state();
        if st.pending.is_empty() && st.capturing.is_empty() && st.patches.is_empty() {
            return (None, Vec::new());
        }
        if st.capturing.iter().any(|c| c == name) || st.pending.contains_key(name) {
            match st.originals.get(name) {
                None => {
                    st.originals.insert(name.to_string(), bytes.to_vec());
                }
                Some(other) if other.as_slice() != bytes => {
                    st.mixed.insert(name.to_string());
                }
                Some(_) => {}
            }
        }
        if let Some(p) = st.pending.get(name) {
            return (p.clone(), Vec::new());
        }
        if !st.patches.iter().any(|p| p.class == name) {
            return (None, Vec::new());
        }
        let mut dropped = Vec::new();
        let deployed = st.patches.iter().find(|p| p.class == name && p.redefined_bytes() == Some(bytes));
        if let Some(id) = deployed.map(|p| p.spec.id.clone()) {
            // None of the deployment in effect here: the JVM runs the new build, and the whole
            // deployment is no longer needed. Some in effect (a new class loader loading the new
            // build beside the old one): only this class is.
            let none_applied = !st.patches.iter().any(|p| p.spec.id == id && !p.hashes.0.is_empty());
            let (gone, kept) = std::mem::take(&mut st.patches)
                .into_iter()
                .partition(|p| p.spec.id == id && (none_applied || (p.class == name && p.hashes.0.is_empty())));
            st.patches = kept;
            let reason = format!(
                "no longer needed: {} loads as patch {id} would redefine it{}",
                name.replace('/', "."),
                if none_applied { " (the JVM runs the new build)" } else { "" }
            );
            let whole = !st.patches.iter().any(|p| p.spec.id == id);
            dropped.push(Dropped { patches: gone, reason, whole });
        }
        // The class loads with patches waiting for it (durable ones at start-up), or a class of a
        // patched name loads in another loader, or someone else retransforms it.
        st.originals.entry(name.to_string()).or_insert_with(|| bytes.to_vec());
        let mut result = bytes.to_vec();
        let mut patches = std::mem::take(&mut st.patches);
        let mine = |redefinition: bool| {
            let patches = &patches;
            (0..patches.len())
                .filter(move |&i| patches[i].class == name && patches[i].is_redefinition() == redefinition)
        };
        let order: Vec<usize> = mine(true).chain(mine(false)).collect();
        let mut unfit = Vec::new();
        for i in order {
            let p = &mut patches[i];
            match chain(&result, std::iter::once(&*p)) {
                Ok(patched) => {
                    if p.hashes.0.is_empty() {
                        p.hashes = (sha256_hex(&result), sha256_hex(&patched));
                    }
                    result = patched;
                }
                // Waiting for this class and never in effect: dropped.
                Err(e) if p.hashes.0.is_empty() => unfit.push((i, e)),
                // In effect in a class of this name in another loader: kept there.
                Err(e) => crate::log_warn!("class {} loads without patch {}: {e}", name.replace('/', "."), p.spec.id),
            }
        }
        unfit.sort_by_key(|(i, _)| std::cmp::Reverse(*i));
        for (i, e) in unfit {
            let p = patches.remove(i);
            self.forget_runtime_state(p.report_id);
            let reason = format!("does not fit {} as it loads: {e}", name.replace('/', "."));
            let whole = !patches.iter().any(|q| q.spec.id == p.spec.id);
            dropped.push(Dropped { patches: vec![p], reason, whole });
        }
        st.patches = patches;
        ((result != bytes).then_some(result), dropped)
    }

    /// Applies a patch. `attachments` holds the files the spec names (a swap's patch class).
    pub fn apply(
        &self,
        jvmti: Jvmti,
        jni: &Jni<'_>,
        spec: PatchSpec,
        attachments: HashMap<String, Vec<u8>>,
        who: String,
    ) -> Result<AppliedPatch, PatchError> {
        let mut applied = self.apply_set(jvmti, jni, vec![(spec, attachments)], Vec::new(), who)?;
        applied.pop().ok_or_else(|| PatchError::Unavailable("nothing was applied".to_string()))
    }

    /// Applies patches together (a deployment's classes): one `RetransformClasses` call for all
    /// the loaded classes they target, so the JVM takes all of them or none. `waiting` are put in
    /// effect for classes that have not loaded yet, as [`Self::preload`] does, once the rest holds.
    pub fn apply_set(
        &self,
        jvmti: Jvmti,
        jni: &Jni<'_>,
        specs: Vec<(PatchSpec, HashMap<String, Vec<u8>>)>,
        waiting: Vec<(PatchSpec, HashMap<String, Vec<u8>>)>,
        who: String,
    ) -> Result<Vec<AppliedPatch>, PatchError> {
        let _op = self.operations.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(p) = specs
            .iter()
            .chain(&waiting)
            .find_map(|(s, _)| self.state().patches.iter().find(|p| p.spec.id == s.id).map(|p| p.spec.id.clone()))
        {
            return Err(PatchError::AlreadyExists(format!(
                "patch {p} is already applied: roll it back first or use another id"
            )));
        }
        for (spec, _) in &waiting {
            let class = spec.target_class_internal();
            let st = self.state();
            if let Some(old) = st.patches.iter().find(|p| p.class == class && p.is_redefinition()) {
                return Err(PatchError::AlreadyExists(format!(
                    "patch {}: class {} is already redefined by patch {} (as it loads): roll that back first",
                    spec.id, spec.class, old.spec.id
                )));
            }
        }
        let mut classes: Vec<String> = specs.iter().map(|(s, _)| s.target_class_internal()).collect();
        classes.sort();
        classes.dedup();
        jni.with_local_frame(64, |jni| {
            let loaded = loaded_classes_named(jvmti, jni, &classes)?;
            self.capture_originals(jvmti, &loaded)?;
            let specs = specs
                .into_iter()
                .map(|(spec, files)| Ok((self.with_rethrow_constructor(jvmti, jni, spec, &loaded)?, files)))
                .collect::<Result<Vec<_>, PatchError>>()?;
            let st = self.state();
            let mut new: Vec<AppliedPatch> = Vec::with_capacity(specs.len());
            for (spec, attachments) in specs {
                let report_id = match spec.action {
                    // Redefinitions report nothing; 0 is no report id.
                    Action::Redefine { .. } => 0,
                    _ => (1..).find(|id| !st.patches.iter().chain(&new).any(|p| p.report_id == *id)).unwrap_or(1),
                };
                new.push(AppliedPatch {
                    class: spec.target_class_internal(),
                    spec,
                    report_id,
                    applied_at_ms: now_ms(),
                    who: who.clone(),
                    hashes: Default::default(),
                    hashes_rollback: None,
                    attachments,
                });
            }
            let mut bytes: Vec<(String, Vec<u8>)> = Vec::with_capacity(classes.len());
            for class in &classes {
                let original = st.originals.get(class).cloned().ok_or_else(|| {
                    PatchError::Unavailable(format!(
                        "the JVM did not hand over the bytes of {}",
                        class.replace('/', ".")
                    ))
                })?;
                let existing = st.patches.iter().filter(|p| &p.class == class);
                let added = new.iter().filter(|p| &p.class == class);
                if let Some(old) = existing.clone().find(|p| p.is_redefinition()) {
                    if let Some(p) = added.clone().find(|p| p.is_redefinition()) {
                        return Err(PatchError::AlreadyExists(format!(
                            "patch {}: class {} is already redefined by patch {}: roll that back first",
                            p.spec.id,
                            class.replace('/', "."),
                            old.spec.id
                        )));
                    }
                }
                let before = chain(&original, existing.clone())?;
                let after = chain(&original, existing.chain(added))?;
                for p in new.iter_mut().filter(|p| &p.class == class) {
                    p.hashes = (sha256_hex(&before), sha256_hex(&after));
                }
                bytes.push((class.clone(), after));
            }
            drop(st);
            for p in &new {
                check_references(jvmti, jni, &p.spec, &bytes, &loaded)?;
            }
            let mut st = self.state();
            for p in new.iter().filter(|p| p.report_id != 0) {
                self.reports.reset(p.report_id);
                self.register_runtime_state(p.report_id, &p.spec);
            }
            for (class, b) in bytes {
                st.pending.insert(class, Some(b));
            }
            drop(st);
            let all: Vec<Local<'_>> = loaded.values().flatten().copied().collect();
            let result = jvmti.retransform(&all);
            let mut st = self.state();
            for class in &classes {
                st.pending.remove(class);
            }
            if let Err(error) = result {
                for p in &new {
                    self.forget_runtime_state(p.report_id);
                }
                let ids: Vec<&str> = new
                    .iter()
                    .map(|p| p.spec.id.as_str())
                    .collect::<std::collections::BTreeSet<_>>()
                    .into_iter()
                    .collect();
                return Err(PatchError::Rejected { patch: ids.join(","), error });
            }
            st.patches.extend(new.iter().cloned());
            drop(st);
            for (spec, attachments) in waiting {
                new.push(self.preload(spec, attachments, who.clone()));
            }
            Ok(new)
        })
    }

    /// A rethrow's spec with the constructor its handler calls, chosen from the loaded classes
    /// (see [`rethrow_constructor`]); any other spec as it is. No lock is held meanwhile: the
    /// checks load classes, which runs the ClassFileLoadHook.
    fn with_rethrow_constructor(
        &self,
        jvmti: Jvmti,
        jni: &Jni<'_>,
        spec: PatchSpec,
        loaded: &HashMap<String, Vec<Local<'_>>>,
    ) -> Result<PatchSpec, PatchError> {
        let Action::Rethrow { as_class, .. } = &spec.action else { return Ok(spec) };
        let class = spec.target_class_internal();
        let original =
            self.state().originals.get(&class).cloned().ok_or_else(|| {
                PatchError::Unavailable(format!("the JVM did not hand over the bytes of {}", spec.class))
            })?;
        let targets = loaded.get(&class).map(Vec::as_slice).unwrap_or_default();
        let who = format!("patch {}", spec.id);
        let constructor =
            rethrow_constructor(jvmti, jni, &who, (&spec.class, &spec.method), as_class, &original, targets)?;
        Ok(spec.with_constructor(constructor))
    }

    /// The classes of patch `id` that wait for their load but loaded meanwhile (between a
    /// deploy's plan and its apply) are retransformed, so the hook redefines them; returns those
    /// still not redefined (they loaded as another build).
    pub fn catch_up(&self, jvmti: Jvmti, jni: &Jni<'_>, id: &str) -> Result<Vec<String>, PatchError> {
        let _op = self.operations.lock().unwrap_or_else(|e| e.into_inner());
        let waiting: Vec<String> = self
            .state()
            .patches
            .iter()
            .filter(|p| p.spec.id == id && p.hashes.0.is_empty())
            .map(|p| p.class.clone())
            .collect();
        if waiting.is_empty() {
            return Ok(Vec::new());
        }
        jni.with_local_frame(16, |jni| {
            let loaded = loaded_by_name(jvmti, jni, &waiting)?;
            if loaded.is_empty() {
                return Ok(Vec::new());
            }
            let all: Vec<Local<'_>> = loaded.values().flatten().copied().collect();
            jvmti.retransform(&all).map_err(|error| PatchError::Rejected { patch: id.to_string(), error })?;
            let st = self.state();
            let applied =
                |c: &str| st.patches.iter().any(|p| p.spec.id == id && p.class == c && !p.hashes.0.is_empty());
            Ok(loaded.into_keys().filter(|c| !applied(c)).collect())
        })
    }

    /// Puts a patch in effect for classes that have not loaded yet (durable patches at start-up):
    /// the ClassFileLoadHook applies it as they load, before any of their code runs.
    pub fn preload(&self, spec: PatchSpec, attachments: HashMap<String, Vec<u8>>, who: String) -> AppliedPatch {
        let mut st = self.state();
        let report_id = if matches!(spec.action, Action::Redefine { .. }) { 0 } else { st.free_report_id() };
        if report_id != 0 {
            self.reports.reset(report_id);
        }
        let patch = AppliedPatch {
            class: spec.target_class_internal(),
            spec,
            report_id,
            applied_at_ms: now_ms(),
            who,
            hashes: Default::default(),
            hashes_rollback: None,
            attachments,
        };
        self.register_runtime_state(patch.report_id, &patch.spec);
        st.patches.push(patch.clone());
        patch
    }

    /// Rolls back one patch (`Some(id)`) or all; returns the ids rolled back. For each class it
    /// touches, the remaining patches of that class stay in effect.
    pub fn rollback(&self, jvmti: Jvmti, jni: &Jni<'_>, id: Option<&str>) -> Result<Vec<AppliedPatch>, PatchError> {
        let _op = self.operations.lock().unwrap_or_else(|e| e.into_inner());
        let (removed, classes): (Vec<String>, Vec<String>) = {
            let st = self.state();
            let removed: Vec<&AppliedPatch> = match id {
                Some(id) => {
                    let removed: Vec<&AppliedPatch> = st.patches.iter().filter(|p| p.spec.id == id).collect();
                    if removed.is_empty() {
                        let mut known: Vec<&str> = st.patches.iter().map(|p| p.spec.id.as_str()).collect();
                        known.dedup();
                        return Err(PatchError::NotFound(format!(
                            "no patch {id} is applied (applied: {})",
                            list_or_none(&known)
                        )));
                    }
                    removed
                }
                // All patches: not the probes of observations in progress, which end with their streams.
                None => {
                    st.patches.iter().filter(|p| !p.spec.id.starts_with(repair_model::observe::PATCH_PREFIX)).collect()
                }
            };
            let mut classes: Vec<String> = removed.iter().map(|p| p.class.clone()).collect();
            classes.sort();
            classes.dedup();
            (removed.iter().map(|p| p.spec.id.clone()).collect(), classes)
        };
        if removed.is_empty() {
            return Ok(Vec::new());
        }
        jni.with_local_frame(64, |jni| {
            let mut loaded = Vec::new();
            let mut hashes: HashMap<String, (String, String)> = HashMap::new();
            {
                let mut st = self.state();
                // Every class's bytes first: a chain that fails leaves nothing pending.
                let mut pending = Vec::with_capacity(classes.len());
                for class in &classes {
                    let all = st.patches.iter().filter(|p| &p.class == class);
                    let remaining = all.clone().filter(|p| !removed.contains(&p.spec.id));
                    let bytes = match st.originals.get(class) {
                        Some(original) if remaining.clone().next().is_some() => Some(chain(original, remaining)?),
                        _ => None,
                    };
                    if let Some(original) = st.originals.get(class) {
                        let before = chain(original, all)?;
                        hashes.insert(
                            class.clone(),
                            (sha256_hex(&before), sha256_hex(bytes.as_deref().unwrap_or(original))),
                        );
                    }
                    pending.push((class.clone(), bytes));
                }
                st.pending.extend(pending);
            }
            // Classes unloaded since (or never loaded) have nothing to restore in the JVM.
            let lookup = loaded_by_name(jvmti, jni, &classes).map(|found| loaded.extend(found.into_values().flatten()));
            let result = lookup.and_then(|()| {
                if loaded.is_empty() {
                    Ok(())
                } else {
                    jvmti.retransform(&loaded).map_err(|error| PatchError::Rejected { patch: removed.join(","), error })
                }
            });
            let mut st = self.state();
            for class in &classes {
                st.pending.remove(class);
            }
            result?;
            let (mut gone, kept): (Vec<AppliedPatch>, Vec<AppliedPatch>) =
                std::mem::take(&mut st.patches).into_iter().partition(|p| removed.contains(&p.spec.id));
            st.patches = kept;
            for p in &mut gone {
                p.hashes_rollback = hashes.get(&p.class).cloned();
                self.forget_runtime_state(p.report_id);
            }
            Ok(gone)
        })
    }

    /// The bytes the JVM runs for `internal` now: its original bytes (read from the JVM on first
    /// use) with the active patches applied.
    pub fn live_bytes(
        &self,
        jvmti: Jvmti,
        jni: &Jni<'_>,
        internal: &str,
        original_only: bool,
    ) -> Result<Vec<u8>, PatchError> {
        let _op = self.operations.lock().unwrap_or_else(|e| e.into_inner());
        jni.with_local_frame(64, |jni| {
            let loaded = loaded_classes_named(jvmti, jni, &[internal.to_string()])?;
            self.capture_originals(jvmti, &loaded)
        })?;
        let st = self.state();
        let original = st.originals.get(internal).ok_or_else(|| {
            PatchError::Unavailable(format!("the JVM did not hand over the bytes of {}", internal.replace('/', ".")))
        })?;
        if original_only {
            return Ok(original.clone());
        }
        chain(original, st.patches.iter().filter(|p| p.class == internal))
    }

    /// Reads the bytes of these classes now, as a repair of them would, in one retransformation
    /// for those not read yet; names not loaded, or that the JVM cannot modify, are passed over.
    pub fn read_ahead(&self, jvmti: Jvmti, jni: &Jni<'_>, classes: &[String]) -> Result<(), PatchError> {
        let _op = self.operations.lock().unwrap_or_else(|e| e.into_inner());
        let unread: Vec<String> = {
            let st = self.state();
            classes.iter().filter(|c| !st.originals.contains_key(*c)).cloned().collect()
        };
        if unread.is_empty() {
            // Listing the loaded classes costs milliseconds in a big application: not for nothing.
            return Ok(());
        }
        jni.with_local_frame(64, |jni| {
            let mut loaded = loaded_by_name(jvmti, jni, &unread)?;
            loaded.retain(|_, copies| {
                copies
                    .iter()
                    .all(|c| jvmti.is_modifiable(c).unwrap_or(false) && !jvmti.is_in_error_state(c).unwrap_or(true))
            });
            self.capture_originals(jvmti, &loaded)
        })
    }

    /// The bytes each class of `loaded` had as the JVM loaded it, before any patch.
    pub fn originals(
        &self,
        jvmti: Jvmti,
        loaded: &HashMap<String, Vec<Local<'_>>>,
    ) -> Result<HashMap<String, Vec<u8>>, PatchError> {
        let _op = self.operations.lock().unwrap_or_else(|e| e.into_inner());
        self.capture_originals(jvmti, loaded)?;
        let st = self.state();
        Ok(loaded.keys().filter_map(|c| Some((c.clone(), st.originals.get(c)?.clone()))).collect())
    }

    /// Whether classes of this name were loaded from different bytes by different loaders.
    pub fn is_mixed(&self, class: &str) -> bool {
        self.state().mixed.contains(class)
    }

    /// Forgets the original bytes of these classes where no patch needs them (they are read from
    /// the JVM again when one does).
    pub fn release_originals(&self, classes: &[&str]) {
        let _op = self.operations.lock().unwrap_or_else(|e| e.into_inner());
        let mut st = self.state();
        for class in classes {
            if !st.patches.iter().any(|p| p.class == *class) {
                st.originals.remove(*class);
            }
        }
    }

    /// Makes sure the original bytes of the `loaded` classes are known, by one retransformation
    /// that changes nothing (the hook only records what the JVM hands it).
    fn capture_originals(&self, jvmti: Jvmti, loaded: &HashMap<String, Vec<Local<'_>>>) -> Result<(), PatchError> {
        let missing: Vec<&String> = {
            let mut st = self.state();
            let missing: Vec<&String> = loaded.keys().filter(|c| !st.originals.contains_key(*c)).collect();
            st.capturing.extend(missing.iter().map(|c| c.to_string()));
            missing
        };
        if missing.is_empty() {
            return Ok(());
        }
        let classes: Vec<Local<'_>> = missing.iter().flat_map(|c| &loaded[*c]).copied().collect();
        // In batches: a retransformation stops every application thread while it runs, and a
        // whole build's classes at once would stop them for seconds.
        let result = classes.chunks(CAPTURE_BATCH).try_for_each(|batch| jvmti.retransform(batch));
        self.state().capturing.retain(|c| !missing.contains(&c));
        result.map_err(|error| {
            let names: Vec<String> = missing.iter().take(3).map(|c| c.replace('/', ".")).collect();
            let more = if missing.len() > 3 { format!(" and {} more", missing.len() - 3) } else { String::new() };
            PatchError::Rejected { patch: format!("(reading the bytes of {}{more})", names.join(", ")), error }
        })
    }
}

/// Classes read per retransformation when capturing original bytes.
const CAPTURE_BATCH: usize = 256;

/// `patches` gathered by id (a deployment's classes together), in order of first appearance.
pub fn by_id(patches: Vec<AppliedPatch>) -> Vec<Vec<AppliedPatch>> {
    let mut groups: Vec<Vec<AppliedPatch>> = Vec::new();
    for p in patches {
        match groups.iter_mut().find(|g| g[0].spec.id == p.spec.id) {
            Some(g) => g.push(p),
            None => groups.push(vec![p]),
        }
    }
    groups
}

fn list_or_none(items: &[&str]) -> String {
    if items.is_empty() {
        "none".to_string()
    } else {
        items.join(", ")
    }
}

/// What the rewritten code names must resolve where it runs, in each loaded copy of the target's
/// class loader, or the JVM would throw `NoClassDefFoundError`, `NoSuchMethodError` or
/// `IllegalAccessError` on the application's thread the first time the handler runs: a guard's
/// `catch:` classes, and a `{method: pkg.Class.name}` fallback.
fn check_references(
    jvmti: Jvmti,
    jni: &Jni<'_>,
    spec: &PatchSpec,
    patched: &[(String, Vec<u8>)],
    loaded: &HashMap<String, Vec<Local<'_>>>,
) -> Result<(), PatchError> {
    let class = spec.target_class_internal();
    let Some((_, patched)) = patched.iter().find(|(c, _)| *c == class) else { return Ok(()) };
    let fallback = fallback_calls(spec, patched)?;
    for target in loaded.get(&class).into_iter().flatten() {
        let loader = jvmti.class_loader(jni, target).map_err(|e| PatchError::Unavailable(e.to_string()))?;
        check_catch_types(jni, spec, &loader)?;
        if let Some(calls) = &fallback {
            check_fallback_method(jvmti, jni, spec, calls, &loader)?;
        }
    }
    Ok(())
}

/// A guard's `catch:` classes load from `loader` and are `Throwable`s (the JVM resolves a
/// handler's type when an exception reaches it).
fn check_catch_types(jni: &Jni<'_>, spec: &PatchSpec, loader: &Local<'_>) -> Result<(), PatchError> {
    let repair_model::spec::Action::Guard { catch, .. } = &spec.action else { return Ok(()) };
    let throwable = jni
        .find_class("java/lang/Throwable")
        .ok_or_else(|| PatchError::Unavailable("java.lang.Throwable is missing".to_string()))?;
    for name in catch {
        let class = jni.class_for_name(name, loader).map_err(|why| {
            PatchError::NotFound(format!(
                "patch {}: catch {name}: cannot load it from {}'s class loader: {why}",
                spec.id, spec.class
            ))
        })?;
        if !jni.is_assignable(&class, &throwable) {
            return Err(PatchError::Invalid(format!(
                "patch {}: catch {name}: not a Throwable, so nothing can be caught as one",
                spec.id
            )));
        }
    }
    Ok(())
}

/// The constructor a rethrow in `target` (dotted class, method) calls to throw `as_class`,
/// checked in every loaded copy of the class (`loaded`, one per loader): `as_class` loads from
/// its loader, is a concrete `Throwable` the class may name, is unchecked or declared in the
/// method's `throws` clause (read from `original`, the class's bytes), and has a constructor
/// `(String, Throwable)`, `(String)` or `()` the class may call, the first of those preferred.
/// Errors start with `who` and name `as_class` and the cause.
pub fn rethrow_constructor(
    jvmti: Jvmti,
    jni: &Jni<'_>,
    who: &str,
    target: (&str, &repair_bytecode::transform::MethodTarget),
    as_class: &str,
    original: &[u8],
    loaded: &[Local<'_>],
) -> Result<repair_bytecode::transform::rethrow::ThrowableConstructor, PatchError> {
    use repair_bytecode::transform::rethrow::{choose_constructor, declared_exceptions, ThrowableConstructor};
    const ACC_PUBLIC: i32 = 0x0001;
    const ACC_INTERFACE: i32 = 0x0200;
    const ACC_ABSTRACT: i32 = 0x0400;
    let (class, method) = target;
    let refused = |why: String| PatchError::Invalid(format!("{who}: rethrow as {as_class}: {why}"));
    let unavailable = |e: JvmtiError| PatchError::Unavailable(e.to_string());
    let package = |n: &str| n.rsplit_once(['.', '/']).map_or(String::new(), |(p, _)| p.replace('/', "."));
    let same_package = package(as_class) == package(class);
    let declared = declared_exceptions(original, method).map_err(|e| refused(e.to_string()))?;
    jni.with_local_frame(32, |jni| {
        let system = |name: &str| {
            jni.find_class(name)
                .ok_or_else(|| PatchError::Unavailable(format!("{} is missing", name.replace('/', "."))))
        };
        let (throwable, runtime, error) =
            (system("java/lang/Throwable")?, system("java/lang/RuntimeException")?, system("java/lang/Error")?);
        let mut chosen: Option<ThrowableConstructor> = None;
        for copy in loaded {
            let loader = jvmti.class_loader(jni, copy).map_err(unavailable)?;
            let thrown = jni.class_for_name(as_class, &loader).map_err(|why| {
                PatchError::NotFound(format!(
                    "{who}: rethrow as {as_class}: cannot load it from {class}'s class loader: {why}"
                ))
            })?;
            if !jni.is_assignable(&thrown, &throwable) {
                return Err(refused("not a Throwable, so it cannot be thrown".to_string()));
            }
            let modifiers = jvmti.class_modifiers(&thrown).map_err(unavailable)?;
            if modifiers & (ACC_INTERFACE | ACC_ABSTRACT) != 0 {
                return Err(refused("abstract: no instance of it can be made".to_string()));
            }
            if modifiers & ACC_PUBLIC == 0 && !same_package {
                return Err(refused(format!("not public, and {class} is in another package")));
            }
            let unchecked = jni.is_assignable(&thrown, &runtime) || jni.is_assignable(&thrown, &error);
            let declares = || {
                declared.iter().any(|d| jni.class_for_name(d, &loader).is_ok_and(|c| jni.is_assignable(&thrown, &c)))
            };
            if !unchecked && !declares() {
                return Err(refused(format!(
                    "a checked exception that {class}.{} does not declare (it throws {}): its callers are not \
                     compiled to handle it; name an unchecked type or one the method declares",
                    method.name,
                    if declared.is_empty() { "nothing checked".to_string() } else { declared.join(", ") }
                )));
            }
            let mut constructors = Vec::new();
            for c in ThrowableConstructor::PREFERENCE {
                if let Some(m) = jni.constructor(&thrown, c.descriptor()) {
                    let access = jvmti.method_modifiers(m).map_err(unavailable)?;
                    constructors.push((c.descriptor().to_string(), access as u16));
                }
            }
            let here = choose_constructor(&constructors, same_package).ok_or_else(|| {
                refused(format!("no constructor (String, Throwable), (String) or () that {class} may call"))
            })?;
            match chosen {
                Some(c) if c != here => {
                    return Err(refused(format!("its constructors differ between the class loaders of {class}")))
                }
                _ => chosen = Some(here),
            }
        }
        chosen.ok_or_else(|| PatchError::NotFound(format!("class {class} is not loaded in this JVM")))
    })
}

/// The static fallback method a patch calls: its class, name and every descriptor the rewritten
/// code calls it with (read from the patched class's pool); `None` for other fallbacks.
struct FallbackCalls<'s> {
    class: &'s str,
    name: &'s str,
    descriptors: Vec<String>,
}

fn fallback_calls<'s>(spec: &'s PatchSpec, patched: &[u8]) -> Result<Option<FallbackCalls<'s>>, PatchError> {
    use repair_bytecode::transform::Fallback;
    use repair_model::spec::Action;
    let (Action::Guard { fallback: Fallback::StaticMethod { class, name }, .. }
    | Action::Breaker { fallback: Fallback::StaticMethod { class, name }, .. }
    | Action::Recursion { fallback: Fallback::StaticMethod { class, name }, .. }) = &spec.action
    else {
        return Ok(None);
    };
    let internal = class.replace('.', "/");
    let cf = repair_bytecode::ClassFile::parse(patched).map_err(|e| PatchError::Invalid(e.to_string()))?;
    let mut descriptors: Vec<String> = cf
        .pool
        .iter()
        .filter_map(|(i, _)| cf.pool.member_ref(i).ok())
        .filter(|r| r.class == internal && r.name == *name)
        .map(|r| r.descriptor.into_owned())
        .collect();
    descriptors.sort();
    descriptors.dedup();
    Ok(Some(FallbackCalls { class, name, descriptors }))
}

/// The fallback is, as `loader` sees it, a static method with each descriptor the rewrite calls,
/// accessible from the target (public, or in its package).
fn check_fallback_method(
    jvmti: Jvmti,
    jni: &Jni<'_>,
    spec: &PatchSpec,
    calls: &FallbackCalls<'_>,
    loader: &Local<'_>,
) -> Result<(), PatchError> {
    const ACC_PUBLIC: i32 = 0x0001;
    let FallbackCalls { class, name, descriptors } = calls;
    let package = |n: &str| n.rsplit_once(['.', '/']).map_or(String::new(), |(p, _)| p.replace('/', "."));
    let fallback = |d: &str| format!("fallback {class}.{name}{d} of patch {}", spec.id);
    let owner = jni.class_for_name(class, loader).map_err(|why| {
        PatchError::NotFound(format!("{}: cannot load {class} from {}'s class loader: {why}", fallback(""), spec.class))
    })?;
    for d in descriptors {
        let method = jni.static_method(&owner, name, d).ok_or_else(|| {
            PatchError::NotFound(format!(
                "{}: {class} has no static method {name}{d} (the fallback takes the patched method's \
                 arguments and returns its type)",
                fallback(d)
            ))
        })?;
        let modifiers = jvmti.method_modifiers(method).map_err(|e| PatchError::Unavailable(e.to_string()))?;
        if modifiers & ACC_PUBLIC == 0 && package(class) != package(&spec.class) {
            return Err(PatchError::Invalid(format!(
                "{}: not public, and {} is in another package: it could not be called",
                fallback(d),
                spec.class
            )));
        }
    }
    Ok(())
}

/// The loaded classes with one of these internal names (one per defining loader), by name, from
/// one pass over the loaded classes; names not loaded are absent.
pub fn loaded_by_name<'a>(
    jvmti: Jvmti,
    jni: &Jni<'a>,
    names: &[String],
) -> Result<HashMap<String, Vec<Local<'a>>>, PatchError> {
    let wanted: std::collections::HashSet<&str> = names.iter().map(String::as_str).collect();
    let all = jvmti.loaded_classes(jni).map_err(|e| PatchError::Unavailable(e.to_string()))?;
    let mut found: HashMap<String, Vec<Local<'a>>> = HashMap::new();
    for class in all {
        let signature = jvmti.class_signature(&class).ok();
        match signature.as_deref().and_then(crate::jvm::internal_name).filter(|n| wanted.contains(n)) {
            Some(name) => found.entry(name.to_string()).or_default().push(class),
            None => jni.delete_local_ref(class),
        }
    }
    Ok(found)
}

/// [`loaded_by_name`], every name loaded and modifiable.
fn loaded_classes_named<'a>(
    jvmti: Jvmti,
    jni: &Jni<'a>,
    names: &[String],
) -> Result<HashMap<String, Vec<Local<'a>>>, PatchError> {
    let found = loaded_by_name(jvmti, jni, names)?;
    for name in names {
        let dotted = name.replace('/', ".");
        let Some(classes) = found.get(name) else {
            return Err(PatchError::NotFound(format!("class {dotted} is not loaded in this JVM")));
        };
        if !classes.iter().all(|c| jvmti.is_modifiable(c).unwrap_or(false)) {
            return Err(PatchError::Unavailable(format!(
                "class {dotted} cannot be modified (JVMTI IsModifiableClass says no)"
            )));
        }
        // RetransformClasses answers JVMTI_ERROR_INVALID_CLASS for such a class, which reads as
        // "not loaded" though `classes` lists it: name the real cause instead.
        if classes.iter().any(|c| jvmti.is_in_error_state(c).unwrap_or(false)) {
            return Err(PatchError::Unavailable(format!(
                "class {dotted} cannot be modified: its static initializer failed (class status ERROR), \
                 so every use throws NoClassDefFoundError until the JVM restarts; a durable repair of \
                 its <clinit> takes effect at the next start"
            )));
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn preload(m: &PatchManager, id: &str) -> AppliedPatch {
        let yaml =
            format!("id: {id}\ntarget: {{ class: a.B, method: run }}\naction:\n  guard: {{ fallback: default }}\n");
        m.preload(PatchSpec::from_yaml(&yaml, "t.yaml").unwrap(), HashMap::new(), "operator:test".into())
    }

    #[test]
    fn report_ids_are_reused_so_they_stay_small() {
        let m = PatchManager::default();
        let ids: Vec<i32> = ["a", "b", "c"].iter().map(|id| preload(&m, id).report_id).collect();
        assert_eq!(ids, [1, 2, 3]);
        m.reports.counters(2).fallbacks.fetch_add(5, std::sync::atomic::Ordering::Relaxed);
        m.state().patches.retain(|p| p.spec.id != "b");
        let d = preload(&m, "d");
        assert_eq!(d.report_id, 2, "the smallest id no patch in effect uses");
        assert_eq!(m.reports.counters(2).fallbacks.load(std::sync::atomic::Ordering::Relaxed), 0, "counted afresh");
        // However many patches come and go, ids stay below sipush's limit.
        for i in 0..40_000 {
            let p = preload(&m, &format!("x{i}"));
            m.state().patches.retain(|q| q.spec.id != p.spec.id);
        }
        assert_eq!(preload(&m, "last").report_id, 4);
    }
}
