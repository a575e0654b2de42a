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
use repair_model::spec::{PatchSpec, RewriteEnv};

use crate::runtime::breakers::Breakers;
use crate::runtime::hooks::Reports;

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

#[derive(Default)]
struct State {
    patches: Vec<AppliedPatch>,
    /// Internal class name → the bytes the JVM gave before any patch of ours.
    originals: HashMap<String, Vec<u8>>,
    /// Classes the hook must only remember the original bytes of (first patch of a class).
    capturing: Vec<String>,
    /// Bytes the hook returns during our own retransformation; `None`: the original bytes.
    pending: HashMap<String, Option<Vec<u8>>>,
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
    /// What each patch's hooks reported, by report id.
    pub reports: Reports,
    state: Mutex<State>,
    /// Serializes apply and rollback: each is a read-compute-retransform-commit sequence.
    operations: Mutex<()>,
}

/// The original bytes with `patches` applied in order.
fn chain<'p>(original: &[u8], patches: impl Iterator<Item = &'p AppliedPatch>) -> Result<Vec<u8>, PatchError> {
    let mut bytes = original.to_vec();
    for p in patches {
        let env = RewriteEnv { attachments: Some(&p.attachments), report_id: Some(p.report_id), hierarchy: None };
        bytes = p.spec.rewrite(&bytes, &env).map_err(|e| PatchError::Invalid(e.to_string()))?;
    }
    Ok(bytes)
}

impl PatchManager {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The patches in effect, in the order they were applied.
    pub fn list(&self) -> Vec<AppliedPatch> {
        self.state().patches.clone()
    }

    /// The patch a report id belongs to.
    pub fn patch_of_report(&self, report_id: i32) -> Option<String> {
        self.state().patches.iter().find(|p| p.report_id == report_id).map(|p| p.spec.id.clone())
    }

    /// The ClassFileLoadHook: new bytes for `name` (`None`: leave the class as it is), and the
    /// patches that waited for `name` but do not fit its bytes (a durable patch of an older build
    /// of the class), dropped, with the reason.
    pub fn transform(&self, name: &str, bytes: &[u8]) -> (Option<Vec<u8>>, Vec<(AppliedPatch, String)>) {
        let mut st = self.state();
        if st.pending.is_empty() && st.capturing.is_empty() && st.patches.is_empty() {
            return (None, Vec::new());
        }
        if !st.originals.contains_key(name) && (st.capturing.iter().any(|c| c == name) || st.pending.contains_key(name))
        {
            st.originals.insert(name.to_string(), bytes.to_vec());
        }
        if let Some(p) = st.pending.get(name) {
            return (p.clone(), Vec::new());
        }
        if !st.patches.iter().any(|p| p.class == name) {
            return (None, Vec::new());
        }
        // The class loads with patches waiting for it (durable ones at start-up), or a class of a
        // patched name loads in another loader, or someone else retransforms it.
        st.originals.entry(name.to_string()).or_insert_with(|| bytes.to_vec());
        let mut result = bytes.to_vec();
        let mut dropped = Vec::new();
        let mut kept = Vec::with_capacity(st.patches.len());
        for mut p in std::mem::take(&mut st.patches) {
            if p.class != name {
                kept.push(p);
                continue;
            }
            match chain(&result, std::iter::once(&p)) {
                Ok(patched) => {
                    if p.hashes.0.is_empty() {
                        p.hashes = (sha256_hex(&result), sha256_hex(&patched));
                    }
                    result = patched;
                    kept.push(p);
                }
                // Waiting for this class and never in effect: dropped.
                Err(e) if p.hashes.0.is_empty() => {
                    self.breakers.unregister(p.report_id);
                    dropped.push((p, e.to_string()));
                }
                // In effect in a class of this name in another loader: kept there.
                Err(e) => {
                    crate::log_warn!("class {} loads without patch {}: {e}", name.replace('/', "."), p.spec.id);
                    kept.push(p);
                }
            }
        }
        st.patches = kept;
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
        let _op = self.operations.lock().unwrap_or_else(|e| e.into_inner());
        if self.state().patches.iter().any(|p| p.spec.id == spec.id) {
            return Err(PatchError::AlreadyExists(format!(
                "patch {} is already applied: roll it back first or use another id",
                spec.id
            )));
        }
        let class = spec.target_class_internal();
        jni.with_local_frame(64, |jni| {
            let loaded = loaded_classes_named(jvmti, jni, &class)?;
            self.capture_originals(jvmti, &class, &loaded)?;
            let st = self.state();
            let report_id = st.free_report_id();
            self.reports.reset(report_id);
            let mut patch = AppliedPatch {
                spec,
                report_id,
                class: class.clone(),
                applied_at_ms: now_ms(),
                who,
                hashes: Default::default(),
                hashes_rollback: None,
                attachments,
            };
            let original = st.originals.get(&class).cloned().ok_or_else(|| {
                PatchError::Unavailable(format!("the JVM did not hand over the bytes of {}", patch.spec.class))
            })?;
            let before = chain(&original, st.patches.iter().filter(|p| p.class == class))?;
            let new_bytes =
                chain(&original, st.patches.iter().filter(|p| p.class == class).chain(std::iter::once(&patch)))?;
            patch.hashes = (sha256_hex(&before), sha256_hex(&new_bytes));
            drop(st);
            check_references(jvmti, jni, &patch.spec, &new_bytes, &loaded)?;
            let mut st = self.state();
            self.breakers.register(patch.report_id, &patch.spec);
            st.pending.insert(class.clone(), Some(new_bytes));
            drop(st);
            let result = jvmti.retransform(&loaded);
            let mut st = self.state();
            st.pending.remove(&class);
            match result {
                Ok(()) => {
                    st.patches.push(patch.clone());
                    Ok(patch)
                }
                Err(error) => Err(PatchError::Rejected { patch: patch.spec.id, error }),
            }
        })
    }

    /// Puts a patch in effect for classes that have not loaded yet (durable patches at start-up):
    /// the ClassFileLoadHook applies it as they load, before any of their code runs.
    pub fn preload(&self, spec: PatchSpec, attachments: HashMap<String, Vec<u8>>, who: String) -> AppliedPatch {
        let mut st = self.state();
        let report_id = st.free_report_id();
        self.reports.reset(report_id);
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
        self.breakers.register(patch.report_id, &patch.spec);
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
                    let p = st.patches.iter().find(|p| p.spec.id == id).ok_or_else(|| {
                        let known: Vec<&str> = st.patches.iter().map(|p| p.spec.id.as_str()).collect();
                        PatchError::NotFound(format!("no patch {id} is applied (applied: {})", list_or_none(&known)))
                    })?;
                    vec![p]
                }
                None => st.patches.iter().collect(),
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
                    st.pending.insert(class.clone(), bytes);
                }
            }
            let lookup: Result<(), PatchError> = classes.iter().try_for_each(|class| {
                loaded.extend(loaded_classes_named(jvmti, jni, class).or_else(|e| match e {
                    // Its classes were unloaded: nothing to restore in the JVM.
                    PatchError::NotFound(_) => Ok(Vec::new()),
                    e => Err(e),
                })?);
                Ok(())
            });
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
                self.breakers.unregister(p.report_id);
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
            let loaded = loaded_classes_named(jvmti, jni, internal)?;
            self.capture_originals(jvmti, internal, &loaded)
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

    /// Makes sure the original bytes of `class` are known, by a retransformation that changes
    /// nothing (the hook only records what the JVM hands it).
    fn capture_originals(&self, jvmti: Jvmti, class: &str, loaded: &[Local<'_>]) -> Result<(), PatchError> {
        {
            let mut st = self.state();
            if st.originals.contains_key(class) {
                return Ok(());
            }
            st.capturing.push(class.to_string());
        }
        let result = jvmti.retransform(loaded);
        self.state().capturing.retain(|c| c != class);
        result.map_err(|error| PatchError::Rejected { patch: format!("(reading the bytes of {class})"), error })
    }
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
    patched: &[u8],
    loaded: &[Local<'_>],
) -> Result<(), PatchError> {
    let fallback = fallback_calls(spec, patched)?;
    for target in loaded {
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
    | Action::Breaker { fallback: Fallback::StaticMethod { class, name }, .. }) = &spec.action
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

/// Every loaded class named `internal` (one per defining loader) that can be retransformed.
fn loaded_classes_named<'a>(jvmti: Jvmti, jni: &Jni<'a>, internal: &str) -> Result<Vec<Local<'a>>, PatchError> {
    let signature = format!("L{internal};");
    let all = jvmti.loaded_classes(jni).map_err(|e| PatchError::Unavailable(e.to_string()))?;
    let mut found = Vec::new();
    for class in all {
        if jvmti.class_signature(&class).is_ok_and(|s| s == signature) {
            found.push(class);
        } else {
            jni.delete_local_ref(class);
        }
    }
    let dotted = internal.replace('/', ".");
    if found.is_empty() {
        return Err(PatchError::NotFound(format!("class {dotted} is not loaded in this JVM")));
    }
    for class in &found {
        if !jvmti.is_modifiable(class).unwrap_or(false) {
            return Err(PatchError::Unavailable(format!(
                "class {dotted} cannot be modified (JVMTI IsModifiableClass says no)"
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
