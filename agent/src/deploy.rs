//! Hot deploy: each class of a fixed build compared, by content, with the class as the JVM loaded
//! it (before any patch), and the plan of what the JVM can take.
//!
//! A loaded class's original bytes come from the JVM itself (one retransformation that changes
//! nothing). A class not loaded yet is looked up through the class loaders of the build's loaded
//! classes: the running build's file tells whether the new build changes it (it is then taken as
//! it loads, if it loads as that file) or adds it (not defined: see [`ADDED`]).

use std::collections::HashMap;
use std::sync::Mutex;

use repair_bytecode::ClassFile;
use repair_model::deploy::{Build, Deployment, Member};
use repair_model::journal::sha256_hex;
use repair_model::spec::PatchSpec;

use crate::jvm::{Jni, Jvmti, Local};
use crate::patches::{loaded_by_name, PatchError, PatchManager};

/// Why a class the new build adds is not defined.
const ADDED: &str = "not in the running build: RedefineClasses changes only classes the JVM has, and the \
                     running code never names this one, so defining it would change nothing; restart with the \
                     new build to add it";

/// What is remembered of each class a deploy compared: the hash of its bytes as the JVM hands
/// them over, and of the class files found to be that class. A later deploy of a build whose
/// class has one of those hashes needs neither the class's bytes nor a retransformation, and the
/// agent keeps a hash per class instead of a whole application's bytes.
#[derive(Default)]
pub struct Fingerprints(Mutex<HashMap<String, Vec<String>>>);

impl Fingerprints {
    fn knows(&self, class: &str, sha: &str) -> bool {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).get(class).is_some_and(|s| s.iter().any(|h| h == sha))
    }

    fn learn(&self, class: &str, sha: String) {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let known = map.entry(class.to_string()).or_default();
        if !known.contains(&sha) {
            known.push(sha);
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClassState {
    /// Differs from the loaded class and fits: redefined now.
    Changed,
    /// Differs from the running build's file and fits; not loaded yet: taken as it loads.
    Pending,
    Unchanged,
    /// Not in the running build.
    Added,
    /// Differs in a way the JVM cannot take, or is not a class file of its path.
    Refused,
}

impl ClassState {
    pub fn name(self) -> &'static str {
        match self {
            ClassState::Changed => "changed",
            ClassState::Pending => "pending",
            ClassState::Unchanged => "unchanged",
            ClassState::Added => "added",
            ClassState::Refused => "refused",
        }
    }
}

/// What becomes of one class of the build.
#[derive(Debug, Clone)]
pub struct ClassPlan {
    /// Internal name (or the file's path when it is not a class file).
    pub name: String,
    /// Its path in the build.
    pub path: String,
    pub state: ClassState,
    pub reasons: Vec<String>,
    /// SHA-256 of the class as loaded originally (or of the running build's file).
    pub sha_before: Option<String>,
    /// The hashes a redefinition accepts the class under (see `Action::Redefine`).
    pub originals: Vec<String>,
    pub sha_after: String,
}

impl ClassPlan {
    /// A class of the build at `path` whose file hashes to `sha`, refused until found otherwise.
    fn new(name: String, path: &str, sha: &str) -> ClassPlan {
        ClassPlan {
            name,
            path: path.to_string(),
            state: ClassState::Refused,
            reasons: Vec::new(),
            sha_before: None,
            originals: Vec::new(),
            sha_after: sha.to_string(),
        }
    }
}

#[derive(Debug, Default)]
pub struct Plan {
    pub classes: Vec<ClassPlan>,
}

impl Plan {
    pub fn count(&self, state: ClassState) -> usize {
        self.classes.iter().filter(|c| c.state == state).count()
    }

    /// The deployment of the changed and pending classes, under `id`.
    pub fn deployment(&self, id: &str, source: &str, durable: bool) -> Deployment {
        let classes = self
            .classes
            .iter()
            .filter(|c| matches!(c.state, ClassState::Changed | ClassState::Pending))
            .map(|c| Member {
                class: c.name.replace('/', "."),
                class_file: c.path.clone(),
                original: c.originals.clone(),
                deployed: c.sha_after.clone(),
            })
            .collect();
        Deployment { id: id.to_string(), deploy: Build { source: source.to_string(), classes }, durable }
    }

    /// The member specs split into the classes loaded now and those that wait for their load.
    pub fn member_specs(&self, deployment: &Deployment) -> (Vec<PatchSpec>, Vec<PatchSpec>) {
        let loaded = |class: &str| {
            self.classes.iter().any(|c| c.state == ClassState::Changed && c.name.replace('/', ".") == class)
        };
        deployment.member_specs().into_iter().partition(|s| loaded(&s.class))
    }

    /// One line per reason a class is refused: `com.x.A: method com.x.A.f()V: would be added: …`.
    pub fn refusals(&self) -> Vec<String> {
        self.classes
            .iter()
            .filter(|c| c.state == ClassState::Refused)
            .flat_map(|c| c.reasons.iter().map(|r| format!("{}: {r}", c.name.replace('/', "."))))
            .collect()
    }
}

/// Compares every class file of `build` (path → bytes) with the JVM's classes. A `durable` plan
/// also hashes each changed class's file, which it must load as at the next start.
pub fn plan(
    jvmti: Jvmti,
    jni: &Jni<'_>,
    patches: &PatchManager,
    fingerprints: &Fingerprints,
    build: &HashMap<String, Vec<u8>>,
    durable: bool,
) -> Result<Plan, PatchError> {
    let mut plan = Plan::default();
    // Class files to compare with the JVM: (internal name, path, SHA-256).
    let mut compare: Vec<(String, &String, String)> = Vec::new();
    let mut paths: Vec<&String> = build.keys().collect();
    paths.sort();
    for path in paths {
        let bytes = &build[path];
        let sha = sha256_hex(bytes);
        let by_path = path.strip_suffix(".class").unwrap_or(path).to_string();
        let mut entry = ClassPlan::new(by_path, path, &sha);
        // A file an earlier deploy found to be the loaded class of its path's name: unchanged,
        // without reading it or the class again (most of a build, deployed again and again).
        if fingerprints.knows(&entry.name, &sha) {
            entry.state = ClassState::Unchanged;
            entry.sha_before = Some(sha);
            plan.classes.push(entry);
            continue;
        }
        match class_name(bytes) {
            Err(e) => entry.reasons.push(format!("{path} is not a class file: {e}")),
            Ok(name) if name != entry.name => {
                entry.reasons.push(format!(
                    "{path} defines class {}: a class file must sit at its class's path, so this build is not \
                     what it seems",
                    name.replace('/', ".")
                ));
            }
            Ok(name)
                if name.starts_with("repair/rt/") || repair_model::policy::is_jdk_class(&name.replace('/', ".")) =>
            {
                entry.reasons.push("a JDK or agent class: a deploy changes application classes only".to_string());
            }
            Ok(name) => {
                compare.push((name, path, sha));
                continue;
            }
        }
        plan.classes.push(entry);
    }
    jni.with_local_frame(64, |jni| {
        let names: Vec<String> = compare.iter().map(|(n, _, _)| n.clone()).collect();
        let mut loaded = loaded_by_name(jvmti, jni, &names)?;
        // Classes the JVM cannot redefine are refused before their bytes are asked for: one such
        // class fails a whole retransformation.
        let mut unfit: HashMap<String, String> = HashMap::new();
        loaded.retain(|name, classes| {
            let why = if classes.iter().any(|c| !jvmti.is_modifiable(c).unwrap_or(false)) {
                Some("JVMTI IsModifiableClass says it cannot be modified")
            } else if classes.iter().any(|c| jvmti.is_in_error_state(c).unwrap_or(false)) {
                Some("its static initializer failed: the JVM keeps it in the error state and cannot redefine it")
            } else {
                None
            };
            if let Some(why) = why {
                unfit.insert(name.clone(), why.to_string());
            }
            why.is_none()
        });
        let originals = patches.originals(jvmti, &loaded)?;
        let mut loaders = Loaders::default();
        for (name, path, sha) in compare {
            let new = &build[path];
            let mut entry = ClassPlan::new(name.clone(), path, &sha);
            let before = if let Some(why) = unfit.get(&name) {
                // Its bytes cannot be read from the JVM either; the running build's file tells
                // whether the new build changes it at all.
                match loaders.running_build_file(jvmti, jni, &loaded, path)? {
                    Some(file) if file == *new => entry.state = ClassState::Unchanged,
                    _ => entry.reasons.push(why.clone()),
                }
                None
            } else if patches.is_mixed(&name) {
                entry.reasons.push(
                    "loaded by several class loaders from different class files (two versions of the \
                     application side by side): a deploy cannot tell which one this build replaces"
                        .to_string(),
                );
                None
            } else if let Some(original) = originals.get(&name) {
                Some((original.clone(), ClassState::Changed))
            } else {
                match loaders.running_build_file(jvmti, jni, &loaded, path)? {
                    Some(file) => Some((file, ClassState::Pending)),
                    None => {
                        entry.state = ClassState::Added;
                        entry.reasons.push(ADDED.to_string());
                        None
                    }
                }
            };
            if let Some((old, changed)) = before {
                entry.sha_before = Some(sha256_hex(&old));
                entry.originals.push(sha256_hex(&old));
                let same = |a: &[u8], b: &[u8]| {
                    repair_bytecode::reconstitution::is_class_file(a, b)
                        .map_err(|e| PatchError::Invalid(format!("{path}: {e}")))
                };
                if same(&old, new)? {
                    entry.state = ClassState::Unchanged;
                    if changed == ClassState::Changed {
                        fingerprints.learn(&name, sha);
                    }
                } else {
                    let problems = repair_bytecode::redefinition::incompatibilities(&old, new)
                        .map_err(|e| PatchError::Invalid(format!("{path}: {e}")))?;
                    if problems.is_empty() {
                        entry.state = changed;
                        if changed == ClassState::Pending {
                            entry.reasons.push("not loaded yet: taken as it loads".to_string());
                        } else if durable {
                            // The JVM may hand back bytes reconstituted from the class; as the
                            // class loads at the next start, it is its file.
                            match loaders.running_build_file(jvmti, jni, &loaded, path)? {
                                Some(file) if file == old => {}
                                Some(file) if same(&old, &file)? => entry.originals.push(sha256_hex(&file)),
                                _ => {
                                    entry.state = ClassState::Refused;
                                    entry.reasons.push(
                                        "durable: its class file in the running build cannot be read through its \
                                         class loader, so the next start could not tell which build it loads; \
                                         deploy without --durable"
                                            .to_string(),
                                    );
                                }
                            }
                        }
                    } else {
                        entry.reasons.extend(problems.into_iter().map(|p| format!("{}: {}", p.member, p.reason)));
                    }
                }
            }
            plan.classes.push(entry);
        }
        Ok(())
    })?;
    refuse_references_to_added(&mut plan, build);
    plan.classes.sort_by(|a, b| a.name.cmp(&b.name));
    // The bytes of the classes the deployment leaves alone are not kept: their hashes are.
    let unchanged: Vec<&str> =
        plan.classes.iter().filter(|c| c.state == ClassState::Unchanged).map(|c| c.name.as_str()).collect();
    patches.release_originals(&unchanged);
    Ok(plan)
}

/// A class of a multi-release jar with versions for some Java releases: the JVM may run one of
/// those, not the base class compared here. Refused, saying so.
pub fn refuse_multi_release(plan: &mut Plan, resources: &[String]) {
    for c in &mut plan.classes {
        let versions: Vec<&str> = resources
            .iter()
            .filter_map(|r| r.strip_prefix("META-INF/versions/")?.split_once('/').filter(|(_, p)| *p == c.path))
            .map(|(v, _)| v)
            .collect();
        if !versions.is_empty() && c.state != ClassState::Unchanged {
            c.state = ClassState::Refused;
            c.reasons = vec![format!(
                "the jar is multi-release, with versions of this class for Java {}: deploy compares the base \
                 class only, and the JVM may run a versioned one",
                versions.join(", ")
            )];
        }
    }
}

/// A changed class whose new code names a class the running build lacks would throw
/// `NoClassDefFoundError` on the application's thread: refused, with the class it names.
fn refuse_references_to_added(plan: &mut Plan, build: &HashMap<String, Vec<u8>>) {
    let added: std::collections::HashSet<String> =
        plan.classes.iter().filter(|c| c.state == ClassState::Added).map(|c| c.name.clone()).collect();
    if added.is_empty() {
        return;
    }
    for c in &mut plan.classes {
        if !matches!(c.state, ClassState::Changed | ClassState::Pending) {
            continue;
        }
        let Ok(cf) = ClassFile::parse(&build[&c.path]) else { continue };
        let mut named: Vec<String> = cf
            .pool
            .iter()
            .filter_map(|(i, _)| cf.pool.class_name(i).ok())
            .filter(|n| added.contains(n.as_ref()))
            .map(|n| n.replace('/', "."))
            .collect();
        named.sort();
        named.dedup();
        if !named.is_empty() {
            c.state = ClassState::Refused;
            c.reasons = vec![format!(
                "its new code names {}, which the new build adds and the running build lacks: it would throw \
                 NoClassDefFoundError; restart with the new build",
                named.join(", ")
            )];
        }
    }
}

fn class_name(bytes: &[u8]) -> repair_bytecode::Result<String> {
    let cf = ClassFile::parse(bytes)?;
    Ok(cf.name()?.into_owned())
}

/// The class loaders the running build's files are looked up through, found on first use: those
/// of the build's loaded classes, or the system class loader when none is loaded (a build none of
/// whose classes has run yet).
#[derive(Default)]
struct Loaders<'a>(Option<Vec<Local<'a>>>);

impl<'a> Loaders<'a> {
    /// The running build's file at `path`, as the first loader that has it finds it.
    fn running_build_file(
        &mut self,
        jvmti: Jvmti,
        jni: &Jni<'a>,
        loaded: &HashMap<String, Vec<Local<'a>>>,
        path: &str,
    ) -> Result<Option<Vec<u8>>, PatchError> {
        if self.0.is_none() {
            let mut loaders: Vec<Local<'a>> = Vec::new();
            for class in loaded.values().flatten() {
                let loader = jvmti.class_loader(jni, class).map_err(|e| PatchError::Unavailable(e.to_string()))?;
                if !loader.is_null() && !loaders.iter().any(|l| jni.same_object(l, &loader)) {
                    loaders.push(loader);
                }
            }
            if loaders.is_empty() {
                loaders.push(jni.system_class_loader().map_err(PatchError::Unavailable)?);
            }
            self.0 = Some(loaders);
        }
        for loader in self.0.iter().flatten() {
            let found = jni
                .resource_bytes(loader, path)
                .map_err(|e| PatchError::Unavailable(format!("reading {path} from the running build: {e}")))?;
            if found.is_some() {
                return Ok(found);
            }
        }
        Ok(None)
    }
}
