//! Hot deploy: each class of a fixed build compared, by content, with the class as the JVM loaded
//! it (before any patch), and the plan of what the JVM can take.
//!
//! A loaded class's original bytes come from the JVM itself (one retransformation that changes
//! nothing). A class not loaded yet is looked up through the class loaders of the build's loaded
//! classes: the running build's file tells whether the new build changes it (it is then taken as
//! it loads, if it loads as that file) or adds it (not defined: see [`ADDED`]).

use std::collections::HashMap;

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

/// Compares every class file of `build` (path → bytes) with the JVM's classes.
pub fn plan(
    jvmti: Jvmti,
    jni: &Jni<'_>,
    patches: &PatchManager,
    build: &HashMap<String, Vec<u8>>,
) -> Result<Plan, PatchError> {
    let mut plan = Plan::default();
    let mut named: Vec<(String, String)> = Vec::new(); // (internal name, path)
    let mut paths: Vec<&String> = build.keys().collect();
    paths.sort();
    for path in paths {
        let bytes = &build[path];
        let mut entry = ClassPlan {
            name: path.trim_end_matches(".class").to_string(),
            path: path.clone(),
            state: ClassState::Refused,
            reasons: Vec::new(),
            sha_before: None,
            originals: Vec::new(),
            sha_after: sha256_hex(bytes),
        };
        match class_name(bytes) {
            Err(e) => entry.reasons.push(format!("{path} is not a class file: {e}")),
            Ok(name) if format!("{name}.class") != *path => {
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
                named.push((name.clone(), path.clone()));
                continue;
            }
        }
        plan.classes.push(entry);
    }
    jni.with_local_frame(64, |jni| {
        let names: Vec<String> = named.iter().map(|(n, _)| n.clone()).collect();
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
        let loaders = loaders_of(jvmti, jni, &loaded)?;
        for (name, path) in named {
            let new = &build[&path];
            let mut entry = ClassPlan {
                name: name.clone(),
                path: path.clone(),
                state: ClassState::Refused,
                reasons: Vec::new(),
                sha_before: None,
                originals: Vec::new(),
                sha_after: sha256_hex(new),
            };
            let before = if let Some(why) = unfit.get(&name) {
                entry.reasons.push(why.clone());
                None
            } else if let Some(original) = originals.get(&name) {
                Some((original.clone(), ClassState::Changed))
            } else {
                match running_build_file(jni, &loaders, &path)? {
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
                } else {
                    let problems = repair_bytecode::redefinition::incompatibilities(&old, new)
                        .map_err(|e| PatchError::Invalid(format!("{path}: {e}")))?;
                    if problems.is_empty() {
                        entry.state = changed;
                        if changed == ClassState::Pending {
                            entry.reasons.push("not loaded yet: taken as it loads".to_string());
                        } else if let Some(file) = running_build_file(jni, &loaders, &path)? {
                            // The JVM may hand back bytes reconstituted from the class; as the
                            // class loads at the next start, it is its file.
                            if file != old && same(&old, &file)? {
                                entry.originals.push(sha256_hex(&file));
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
    plan.classes.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(plan)
}

fn class_name(bytes: &[u8]) -> repair_bytecode::Result<String> {
    let cf = ClassFile::parse(bytes)?;
    Ok(cf.name()?.into_owned())
}

/// The distinct class loaders of the loaded classes, or the system class loader when none is
/// loaded (a build none of whose classes has run yet).
fn loaders_of<'a>(
    jvmti: Jvmti,
    jni: &Jni<'a>,
    loaded: &HashMap<String, Vec<Local<'a>>>,
) -> Result<Vec<Local<'a>>, PatchError> {
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
    Ok(loaders)
}

/// The running build's file at `path`, as the first of `loaders` that has it finds it.
fn running_build_file(jni: &Jni<'_>, loaders: &[Local<'_>], path: &str) -> Result<Option<Vec<u8>>, PatchError> {
    for loader in loaders {
        let found = jni
            .resource_bytes(loader, path)
            .map_err(|e| PatchError::Unavailable(format!("reading {path} from the running build: {e}")))?;
        if found.is_some() {
            return Ok(found);
        }
    }
    Ok(None)
}
