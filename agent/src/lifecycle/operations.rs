//! The control plane's operations on the agent ([`Operations`]): each maps the agent's domain
//! straight onto the contract's messages, the one conversion between them. Each runs on a
//! control-plane thread, attached to the JVM for the call only (see `JavaVm::attached`).

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use repair_bytecode::descriptor::MethodDescriptor;
use repair_bytecode::transform::ProbePoint;

use repair_model::proto;
use repair_model::spec::PatchSpec;
use tokio::sync::broadcast;

use super::{version_text, Agent, LoadMode};
use crate::config::FaultMode;
use crate::control::{ObservationStream, Operations, Operator, Status};
use crate::deploy::ClassState;
use crate::events::{self, About, Kind};
use crate::healing::PolicyState;
use crate::journal::Refusal;
use crate::jvm::{internal_name, Capability, Jni};
use crate::patches::{by_id, AppliedPatch, PatchError};
use crate::runtime::faults;

/// The agent as the control plane sees it.
pub struct AgentOperations(pub &'static Agent);

fn status_of(e: PatchError) -> Status {
    let message = e.to_string();
    match e {
        PatchError::NotFound(_) => Status::not_found(message),
        PatchError::AlreadyExists(_) => Status::already_exists(message),
        PatchError::Invalid(_) => Status::invalid_argument(message),
        PatchError::Rejected { .. } | PatchError::Unavailable(_) => Status::failed_precondition(message),
    }
}

impl AgentOperations {
    fn with_jni<R>(&self, f: impl FnOnce(&'static Agent, &Jni<'_>) -> Result<R, PatchError>) -> Result<R, Status> {
        let a = self.0;
        a.vm.attached("repair-control", |jni| f(a, jni))
            .unwrap_or_else(|rc| {
                Err(PatchError::Unavailable(format!("cannot attach the control thread to the JVM (JNI error {rc})")))
            })
            .map_err(status_of)
    }

    /// How many classes are loaded (arrays and primitives included).
    fn class_count(&self) -> Result<usize, Status> {
        self.with_jni(|a, jni| {
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

    /// `deploy-N`, the smallest N no patch in effect or in the journal uses.
    fn free_deploy_id(&self) -> String {
        let a = self.0;
        let mut used: std::collections::HashSet<String> = a.patches.list().into_iter().map(|p| p.spec.id).collect();
        used.extend(a.journal.history().into_iter().map(|r| r.patch_id));
        (1..).map(|n| format!("deploy-{n}")).find(|id| !used.contains(id)).unwrap_or_default()
    }

    /// The patch of one id: one [`AppliedPatch`], or a deployment's classes.
    fn patch(&self, group: &[AppliedPatch], state: &str) -> proto::Patch {
        let a = self.0;
        let p = &group[0];
        proto::Patch {
            id: p.spec.id.clone(),
            classes: group.iter().map(|p| p.class.replace('/', ".")).collect(),
            method: p.spec.method.to_string(),
            action: match a.patches.breakers.state(p.report_id) {
                Some((state, short)) => {
                    format!("{} [{state}, {short} calls short-circuited]", p.spec.action.summary())
                }
                None if group.len() > 1 => format!("deploy {} classes", group.len()),
                None => p.spec.action.summary(),
            },
            applied_at_ms: p.applied_at_ms,
            who: p.who.clone(),
            state: state.to_string(),
            fallbacks: a.patches.reports.counters(p.report_id).fallbacks.load(Ordering::Relaxed),
            durable: p.spec.durable,
        }
    }
}

impl Operations for AgentOperations {
    fn status(&self) -> proto::StatusReply {
        let a = self.0;
        let (faults, _) = a.faults.list();
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
        let (fault_capture_detail, classes_skipped) = match &*a.attach_probes.lock().unwrap_or_else(|e| e.into_inner())
        {
            None => (String::new(), 0),
            Some(report) => (super::attach_probes_text(report), report.as_ref().map_or(0, |r| r.skipped.len() as u64)),
        };
        let hooks = a.hooks.lock().unwrap_or_else(|e| e.into_inner()).clone();
        proto::StatusReply {
            pid: std::process::id() as i64,
            jvm: format!("JVMTI {}", version_text(a.jvmti_version)),
            agent_version: env!("CARGO_PKG_VERSION").to_string(),
            load_mode: if a.mode == LoadMode::Startup { "onload" } else { "onattach" }.to_string(),
            fault_capture: match a.fault_mode {
                FaultMode::Jvmti => "jvmti-exception-events",
                FaultMode::Bytecode => "bytecode-probes",
                FaultMode::Off => "off",
            }
            .to_string(),
            capabilities: a.capabilities.held.iter().map(|c| c.name().to_string()).collect(),
            missing_capabilities: a
                .capabilities
                .missing
                .iter()
                .map(|(c, why)| format!("{}: {why}", c.name()))
                .chain((!fault_mode_lacks.is_empty()).then(|| format!("fault capture: {fault_mode_lacks}")))
                .chain(hooks.err().map(|e| format!("runtime hooks: {e}")))
                .collect(),
            faults_seen: faults.len() as u64,
            patches_active: a.patches.list().len() as u64,
            classes_loaded: self.class_count().map(|n| n as u64).unwrap_or(0),
            uptime_ms: a.loaded_at.elapsed().as_millis() as u64,
            endpoint: self.0.control_endpoint(),
            fault_capture_detail,
            classes_skipped,
            journal: a.journal.health(),
            instance: a.journal.instance().to_string(),
            service: a.options.service.clone(),
        }
    }

    fn classes(&self, glob: &str) -> Result<Vec<proto::LoadedClass>, Status> {
        self.with_jni(|a, jni| {
            jni.with_local_frame(16, |jni| {
                let all = a.jvmti.loaded_classes(jni).map_err(|e| PatchError::Unavailable(e.to_string()))?;
                let mut found = Vec::new();
                for class in all {
                    let dotted = a
                        .jvmti
                        .class_signature(&class)
                        .ok()
                        .and_then(|sig| Some(internal_name(&sig)?.replace('/', ".")));
                    if let Some(name) = dotted.filter(|n| repair_model::glob::matches(glob, n)) {
                        let loader = jni.with_local_frame(4, |jni| match a.jvmti.class_loader(jni, &class) {
                            Ok(l) if l.is_null() => "bootstrap".to_string(),
                            Ok(l) => jni.class_name_of_object(&l),
                            Err(e) => format!("? ({e})"),
                        });
                        // A class whose static initializer failed passes IsModifiableClass, yet
                        // RetransformClasses refuses it: it is not modifiable in any way that counts.
                        let modifiable = a.jvmti.is_modifiable(&class).unwrap_or(false)
                            && !a.jvmti.is_in_error_state(&class).unwrap_or(true);
                        found.push(proto::LoadedClass { name, loader, modifiable });
                    }
                    jni.delete_local_ref(class);
                }
                found.sort_by(|x, y| (&x.name, &x.loader).cmp(&(&y.name, &y.loader)));
                found.dedup();
                Ok(found)
            })
        })
    }

    fn class_bytes(&self, class: &str, original: bool) -> Result<Vec<u8>, Status> {
        self.with_jni(|a, jni| a.patches.live_bytes(a.jvmti, jni, &class.replace('.', "/"), original))
    }

    fn running_code(&self, class: &str, method: &str) -> Result<Vec<proto::MethodCode>, Status> {
        let target = repair_bytecode::transform::MethodTarget::parse(method.trim());
        let internal = class.trim().replace('.', "/");
        self.with_jni(|a, jni| {
            if !a.capabilities.holds(Capability::Bytecodes) {
                return Err(PatchError::Unavailable(format!(
                    "the agent does not hold {}",
                    Capability::Bytecodes.name()
                )));
            }
            jni.with_local_frame(16, |jni| {
                let loaded = crate::patches::loaded_by_name(a.jvmti, jni, std::slice::from_ref(&internal))?;
                let classes = loaded.get(&internal).ok_or_else(|| {
                    PatchError::NotFound(format!("class {} is not loaded in this JVM", internal.replace('/', ".")))
                })?;
                let mut out = Vec::new();
                for m in a.jvmti.class_methods(&classes[0]).map_err(|e| PatchError::Unavailable(e.to_string()))? {
                    let Ok((name, descriptor)) = a.jvmti.method_name(m) else { continue };
                    if name != target.name || target.descriptor.as_deref().is_some_and(|d| d != descriptor) {
                        continue;
                    }
                    let bytecode = a.jvmti.bytecodes(m).map_err(|e| PatchError::Unavailable(e.to_string()))?;
                    let sha256 = repair_model::journal::sha256_hex(&bytecode);
                    out.push(proto::MethodCode { method: format!("{name}{descriptor}"), bytecode, sha256 });
                }
                if out.is_empty() {
                    return Err(PatchError::NotFound(format!("class {class} has no method {target}")));
                }
                Ok(out)
            })
        })
    }

    fn faults(&self) -> proto::FaultsReply {
        let (list, dropped) = self.0.faults.list();
        proto::FaultsReply { faults: list.iter().map(fault).collect(), dropped_sites: dropped }
    }

    fn subscribe_faults(&self) -> broadcast::Receiver<proto::Fault> {
        relay(self.0.faults.subscribe(), 256, |f| fault(&f))
    }

    fn apply(&self, request: proto::ApplyRequest, by: Operator) -> Result<proto::Patch, Status> {
        let yaml = request.spec_yaml;
        let spec = PatchSpec::from_yaml(&yaml, &request.source).map_err(|e| Status::invalid_argument(e.to_string()))?;
        if spec.class.starts_with("repair.rt.") {
            return Err(Status::invalid_argument(format!(
                "{}: {} is the agent's own class",
                request.source, spec.class
            )));
        }
        if repair_model::policy::is_jdk_class(&spec.class) && !request.allow_jdk {
            return Err(Status::failed_precondition(format!(
                "{}: {} is a JDK class: a patch there changes every caller in the JVM; apply with --allow-jdk \
                 to mean it",
                request.source, spec.class
            )));
        }
        let attachments: HashMap<String, Vec<u8>> = request.attachments.into_iter().collect();
        let p = self.with_jni(|a, jni| {
            if !a.capabilities.holds(Capability::RetransformClasses) {
                return Err(PatchError::Unavailable(format!(
                    "the agent does not hold {}: patches cannot be applied in this JVM",
                    Capability::RetransformClasses.name()
                )));
            }
            let (id, class) = (spec.id.clone(), spec.class.clone());
            let site = spec.site();
            let about = About { patch: &id, site: &site, ..About::default() };
            match a.patches.apply(a.jvmti, jni, spec, attachments, by.who.clone()) {
                Ok(p) => {
                    // Never a silent success: a patch the journal cannot record is undone.
                    if let Err(e) = a.journal.applied(&a.events, std::slice::from_ref(&p), &format!("applied by {by}"))
                    {
                        let undone =
                            a.patches.rollback(a.jvmti, jni, Some(&id)).map(|_| "undone").unwrap_or("NOT undone");
                        a.events.emit(Kind::Refused, about, format!("{e}; the patch was {undone}"));
                        return Err(PatchError::Unavailable(format!("patch {id}: {e}; the patch was {undone}")));
                    }
                    a.events.emit(Kind::Applied, about, format!("{} by {by}", p.spec.action.summary()));
                    Ok(p)
                }
                Err(e) => {
                    let reason = format!("{e} (asked by {by})");
                    let refusal = Refusal { spec_yaml: &yaml, id: &id, who: &by.who, class: &class, reason: &reason };
                    let _ = a.journal.refused(&a.events, refusal);
                    a.events.emit(Kind::Refused, about, e.to_string());
                    Err(e)
                }
            }
        })?;
        Ok(self.patch(std::slice::from_ref(&p), "active"))
    }

    fn deploy(&self, request: proto::DeployRequest, by: Operator) -> Result<proto::DeployReply, Status> {
        let started = std::time::Instant::now();
        let a = self.0;
        let source = request.source.clone();
        if request.class_files.is_empty() {
            return Err(Status::invalid_argument(format!("{source}: the build has no class files")));
        }
        if !request.id.is_empty() {
            PatchSpec::check_id(&request.id).map_err(|e| Status::invalid_argument(format!("deploy id: {e}")))?;
        }
        let build: HashMap<String, Vec<u8>> = request.class_files.into_iter().collect();
        let (id, plan, applied) = self.with_jni(|a, jni| {
            if !a.capabilities.holds(Capability::RetransformClasses) {
                return Err(PatchError::Unavailable(format!(
                    "the agent does not hold {}: classes cannot be redefined in this JVM",
                    Capability::RetransformClasses.name()
                )));
            }
            let mut plan = crate::deploy::plan(a.jvmti, jni, &a.patches, &a.fingerprints, &build, request.durable)?;
            crate::deploy::refuse_multi_release(&mut plan, &request.resources);
            let id = if request.id.is_empty() { self.free_deploy_id() } else { request.id.clone() };
            let refusals = plan.refusals();
            let todo = plan.count(ClassState::Changed) + plan.count(ClassState::Pending);
            if request.dry_run {
                return Ok((id, plan, false));
            }
            if !refusals.is_empty() && !request.partial {
                let others = if todo > 0 { " (deploy with --partial to take the others)" } else { "" };
                return Err(PatchError::Invalid(format!(
                    "{source}: nothing deployed: {} of the build's classes cannot be redefined{others}:\n  {}",
                    plan.count(ClassState::Refused),
                    refusals.join("\n  ")
                )));
            }
            if todo == 0 {
                return Ok((id, plan, false));
            }
            let deployment = plan.deployment(&id, &source, request.durable);
            let attach = |spec: PatchSpec| {
                let file = spec.attachments_needed().pop().unwrap_or_default();
                let bytes = build.get(&file).cloned().unwrap_or_default();
                (spec, HashMap::from([(file, bytes)]))
            };
            let (now, waiting) = plan.member_specs(&deployment);
            let now: Vec<_> = now.into_iter().map(attach).collect();
            let waiting: Vec<_> = waiting.into_iter().map(attach).collect();
            let about = About { patch: &id, site: &source, ..About::default() };
            let members = match a.patches.apply_set(a.jvmti, jni, now, waiting, by.who.clone()) {
                Ok(members) => members,
                Err(e) => {
                    let reason = format!("{e} (asked by {by})");
                    let yaml = deployment.to_yaml();
                    let refusal = Refusal { spec_yaml: &yaml, id: &id, who: &by.who, class: &source, reason: &reason };
                    let _ = a.journal.refused(&a.events, refusal);
                    a.events.emit(Kind::Refused, about, e.to_string());
                    return Err(e);
                }
            };
            // A class that loaded between the plan and the apply is redefined now, or the whole
            // deployment is undone: a build is deployed whole or not at all.
            let straggler = match a.patches.catch_up(a.jvmti, jni, &id) {
                Ok(missing) if missing.is_empty() => None,
                Ok(missing) => Some(format!(
                    "{} loaded while the deploy was being planned, as another build than the one compared",
                    missing.iter().map(|c| c.replace('/', ".")).collect::<Vec<_>>().join(", ")
                )),
                Err(e) => Some(e.to_string()),
            };
            if let Some(why) = straggler {
                let undone = a.patches.rollback(a.jvmti, jni, Some(&id)).map(|_| "undone").unwrap_or("NOT undone");
                a.events.emit(Kind::Refused, about, format!("{why}; the deployment was {undone}"));
                return Err(PatchError::Unavailable(format!(
                    "{source}: nothing deployed: {why}; the deployment was {undone}: deploy again"
                )));
            }
            let summary = format!(
                "deployed {source}: {} classes redefined, {} taken as they load, by {by}",
                plan.count(ClassState::Changed),
                plan.count(ClassState::Pending)
            );
            // Never a silent success: a deployment the journal cannot record is undone.
            if let Err(e) = a.journal.applied(&a.events, &members, &summary) {
                let undone = a.patches.rollback(a.jvmti, jni, Some(&id)).map(|_| "undone").unwrap_or("NOT undone");
                a.events.emit(Kind::Refused, about, format!("{e}; the deployment was {undone}"));
                return Err(PatchError::Unavailable(format!("deployment {id}: {e}; it was {undone}")));
            }
            a.events.emit(Kind::Applied, about, summary);
            Ok((id, plan, true))
        })?;
        let summary = format!(
            "{}: {} changed, {} pending (not loaded yet), {} unchanged, {} added, {} refused{}",
            if applied {
                format!("deployed as {id}")
            } else if request.dry_run {
                "dry run".into()
            } else {
                "nothing to deploy".into()
            },
            plan.count(ClassState::Changed),
            plan.count(ClassState::Pending),
            plan.count(ClassState::Unchanged),
            plan.count(ClassState::Added),
            plan.count(ClassState::Refused),
            if request.resources.is_empty() {
                String::new()
            } else {
                format!(", {} resources ignored", request.resources.len())
            }
        );
        let _ = a;
        Ok(proto::DeployReply {
            id,
            applied,
            classes: plan
                .classes
                .iter()
                .map(|c| proto::DeployClass {
                    name: c.name.replace('/', "."),
                    state: c.state.name().to_string(),
                    reasons: c.reasons.clone(),
                    sha_before: c.sha_before.clone().unwrap_or_default(),
                    sha_after: c.sha_after.clone(),
                })
                .collect(),
            resources: request.resources,
            elapsed_us: started.elapsed().as_micros() as u64,
            summary,
        })
    }

    fn observe(&self, request: proto::ObserveRequest, by: Operator) -> Result<ObservationStream, Status> {
        let a = self.0;
        let kind = match request.kind.as_str() {
            "watch" => crate::observe::Kind::Watch,
            "monitor" => crate::observe::Kind::Monitor,
            "stack" => crate::observe::Kind::Stack,
            "snapshot" => crate::observe::Kind::Snapshot,
            "log" => crate::observe::Kind::Log,
            "trace" => crate::observe::Kind::Trace,
            k => {
                return Err(Status::invalid_argument(format!(
                    "observe: {k:?} is not watch, monitor, stack, trace, snapshot or log"
                )))
            }
        };
        let is_glob = |s: &str| s.contains(['*', '?']);
        if is_glob(&request.class_name) || is_glob(&request.method) {
            return self.observe_many(kind, request, by);
        }
        let class = request.class_name.trim().to_string();
        if !repair_model::spec::is_binary_name(&class) {
            return Err(Status::invalid_argument(format!("{class:?} is not a Java class name")));
        }
        if class.starts_with("repair.rt.") {
            return Err(Status::invalid_argument(format!("{class} is the agent's own class")));
        }
        let method = repair_bytecode::transform::MethodTarget::parse(request.method.trim());
        let bytes = self.with_jni(|a, jni| a.patches.live_bytes(a.jvmti, jni, &class.replace('.', "/"), true))?;
        let at_line = matches!(kind, crate::observe::Kind::Snapshot | crate::observe::Kind::Log);
        // The methods it names: a condition's argument count is checked against theirs.
        let descriptors = if at_line {
            Vec::new()
        } else {
            method_descriptors(&bytes, &class, &method).map_err(Status::not_found)?
        };
        let mut arities: Vec<usize> = descriptors.iter().map(|d| d.params.len()).collect();
        arities.dedup();
        let arity = (arities.len() == 1).then(|| arities[0]);
        let (locals, template) = if at_line {
            let line = u16::try_from(request.line)
                .ok()
                .filter(|l| *l > 0)
                .ok_or_else(|| Status::invalid_argument(format!("{class}:{}: not a line number", request.line)))?;
            let spec = repair_bytecode::transform::snapshot::SnapshotSpec {
                method: (!method.name.is_empty()).then(|| method.clone()),
                line,
                snapshot_id: 1,
            };
            let (_, locals) = repair_bytecode::transform::snapshot::snapshot(&bytes, &spec)
                .map_err(|e| Status::not_found(e.to_string()))?;
            let template = match kind {
                crate::observe::Kind::Log => {
                    let t =
                        repair_model::observe::Template::parse(&request.template).map_err(Status::invalid_argument)?;
                    for part in &t.parts {
                        if let repair_model::observe::Part::Value { local, .. } = part {
                            if !locals.iter().any(|l| l.name == *local) {
                                let names: Vec<&str> = locals.iter().map(|l| l.name.as_str()).collect();
                                return Err(Status::invalid_argument(format!(
                                    "{{{local}}}: no local {local} at {class}:{line} (there: {})",
                                    names.join(", ")
                                )));
                            }
                        }
                    }
                    Some(t)
                }
                _ => None,
            };
            (locals, template)
        } else {
            (Vec::new(), None)
        };
        let condition = match request.condition.trim() {
            "" => None,
            text => Some(repair_model::observe::Condition::parse(text, arity).map_err(Status::invalid_argument)?),
        };
        let show = request
            .show
            .iter()
            .filter(|t| !t.trim().is_empty())
            .map(|t| repair_model::observe::Expr::parse(t, arity).map_err(|e| format!("--show {t:?}: {e}")))
            .collect::<Result<Vec<_>, _>>()
            .map_err(Status::invalid_argument)?;
        let mut exprs = condition.as_ref().map(|c| c.exprs()).unwrap_or_default();
        exprs.extend(show.iter().cloned());
        // A path into `this` needs `this` captured.
        let capture_this = request.this || exprs.iter().any(|e| e.root == repair_model::observe::Root::This);
        self.with_jni(|a, jni| check_paths(a, jni, &class, &bytes, &method, &exprs))?;
        // Trace: the method, and with --depth the methods its calls reach (loaded application
        // classes with a body), level by level.
        let traced = if kind == crate::observe::Kind::Trace {
            self.traced_methods(&class, &bytes, &method, request.depth.clamp(1, 4))?
        } else {
            Vec::new()
        };
        let sites: Vec<(String, Vec<String>)> =
            traced.iter().map(|(c, m, sites)| (format!("{c}.{m}"), sites.clone())).collect();
        let target = match (at_line, method.name.is_empty()) {
            (true, true) => format!("{class}:{}", request.line),
            (true, false) => format!("{class}.{method}:{}", request.line),
            (false, _) => format!("{class}.{method}"),
        };
        let (o, reports) = a.observations.start(crate::observe::Request {
            condition,
            show,
            depth: request.expand.min(4),
            this: capture_this,
            locals,
            template,
            to_stderr: request.to_stderr,
            sites,
            min_ns: request.min_ns,
            sample: u64::from(request.sample),
            count: request.count,
            max_per_second: u64::from(request.max_per_second),
            max_cpu_ms: request.max_cpu_ms,
            max_kib: request.max_kib,
            ..crate::observe::Request::new(kind, target.clone(), by.who.clone())
        });
        if let [one] = descriptors.as_slice() {
            o.declare(&[one]);
        }
        let watch = kind == crate::observe::Kind::Watch;
        let spec = PatchSpec {
            id: o.patch_id.clone(),
            class: class.clone(),
            method: method.clone(),
            action: match (at_line, kind) {
                (true, _) => repair_model::spec::Action::Snapshot { line: request.line as u16 },
                (false, crate::observe::Kind::Trace) => repair_model::spec::Action::Trace,
                (false, _) => observation_probe(watch, capture_this),
            },
            durable: false,
            source: String::new(),
        };
        // The method asked for, then the methods traced inside its calls.
        let mut specs = vec![(spec, format!("{class}.{method}"))];
        for (c, m, _) in traced.into_iter().skip(1) {
            let shown = format!("{c}.{m}");
            let inner = PatchSpec {
                id: o.patch_id.clone(),
                class: c,
                method: m,
                action: repair_model::spec::Action::Trace,
                durable: false,
                source: String::new(),
            };
            specs.push((inner, shown));
        }
        self.run_observation(o, reports, specs, request.duration_ms, request.every_ms, &by)
    }

    fn observations(&self) -> Vec<proto::ObservationInfo> {
        self.0.observations.list().iter().map(|o| o.info()).collect()
    }

    fn stop_observation(&self, id: u64, by: Operator) -> Result<Vec<proto::ObservationInfo>, Status> {
        let o = self.0.observations.get(id).ok_or_else(|| {
            let ids: Vec<String> = self.0.observations.list().iter().map(|o| o.id.to_string()).collect();
            Status::not_found(format!(
                "no observation {id} in progress (in progress: {})",
                if ids.is_empty() { "none".to_string() } else { ids.join(", ") }
            ))
        })?;
        if o.kind == crate::observe::Kind::Health {
            return Err(Status::failed_precondition(format!(
                "observation {id} is the health signal of {} ({}): it ends with the policy, not by itself",
                o.who, o.target
            )));
        }
        // Rolled back here, not by the stream: its client may not be reading (a stalled client
        // would keep the probes in); what is still queued for it is sent before the end.
        o.end(format!("stopped by {by}"));
        o.roll_back();
        Ok(vec![o.info()])
    }

    fn patches(&self) -> Vec<proto::Patch> {
        let patches = self.0.patches.list().into_iter().filter(|p| !is_observation(&p.spec.id)).collect();
        by_id(patches).iter().map(|g| self.patch(g, "active")).collect()
    }

    fn rollback(&self, id: Option<&str>, by: Operator) -> Result<Vec<proto::Patch>, Status> {
        let gone = self.with_jni(|a, jni| {
            let gone = by_id(a.patches.rollback(a.jvmti, jni, id)?);
            let mut unrecorded = None;
            for group in &gone {
                let reason = format!("rolled back by {by}");
                if let Err(e) = a.journal.rolled_back(&a.events, group, &by.who, &reason) {
                    unrecorded = Some(e);
                }
                let (id, site) = (&group[0].spec.id, group[0].spec.site());
                a.events.emit(Kind::RolledBack, About { patch: id, site: &site, ..About::default() }, reason);
            }
            match unrecorded {
                // The JVM is rolled back; the operator must know a durable patch would return.
                Some(e) => Err(PatchError::Unavailable(format!(
                    "rolled back in the JVM ({}), but {e}: a durable patch among them would be restored at the next \
                     start",
                    gone.iter().map(|g| g[0].spec.id.as_str()).collect::<Vec<_>>().join(", ")
                ))),
                None => Ok(gone),
            }
        })?;
        Ok(gone.iter().map(|g| self.patch(g, "rolled-back")).collect())
    }

    fn policy_apply(&self, yaml: &str, source: &str, by: Operator) -> Result<proto::PolicyReply, Status> {
        let a = self.0;
        let policy = repair_model::policy::parse(yaml, source).map_err(Status::invalid_argument)?;
        policy.check_capture(a.fault_mode == FaultMode::Jvmti).map_err(Status::failed_precondition)?;
        a.healer.replace(policy, by.who);
        Ok(policy_reply(a.healer.state().as_ref()))
    }

    fn policy_show(&self) -> proto::PolicyReply {
        policy_reply(self.0.healer.state().as_ref())
    }

    fn history(&self, after_seq: u64, limit: usize) -> proto::HistoryReply {
        let a = self.0;
        let (page, next) = a.journal.page(after_seq, limit);
        let records = page
            .into_iter()
            .map(|r| proto::HistoryRecord {
                seq: r.seq,
                at_ms: r.at_ms,
                event: serde_json::to_value(r.event)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default(),
                patch_id: r.patch_id,
                who: r.who,
                classes: r.classes,
                spec: r.spec,
                durable: r.durable,
                hashes_before: r.hashes.iter().map(|h| h.0.clone()).collect(),
                hashes_after: r.hashes.into_iter().map(|h| h.1).collect(),
                reason: r.reason,
                instance: r.instance,
            })
            .collect();
        proto::HistoryReply {
            records,
            state_dir: a.journal.dir().display().to_string(),
            next_after_seq: next.unwrap_or(0),
            more: next.is_some(),
            journal: a.journal.health(),
        }
    }

    fn events(&self) -> Vec<proto::Event> {
        self.0.events.list().iter().map(event).collect()
    }

    fn subscribe_events(&self) -> broadcast::Receiver<proto::Event> {
        relay(self.0.events.subscribe(), 1024, |e| event(&e))
    }
}

/// A receiver of `map`ped items from `inner`, mapped on the control plane's runtime (none outside
/// it: the receiver then gets nothing).
fn relay<T: Clone + Send + 'static, U: Clone + Send + 'static>(
    mut inner: broadcast::Receiver<T>,
    capacity: usize,
    map: impl Fn(T) -> U + Send + 'static,
) -> broadcast::Receiver<U> {
    let (tx, rx) = broadcast::channel(capacity);
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        runtime.spawn(async move {
            loop {
                match inner.recv().await {
                    Ok(item) => {
                        if tx.send(map(item)).is_err() {
                            break;
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => break,
                }
            }
        });
    }
    rx
}

fn frame(f: &faults::StackFrame) -> proto::Frame {
    proto::Frame {
        class_name: f.class.clone(),
        method: f.method.clone(),
        method_descriptor: f.descriptor.clone(),
        bci: f.bci,
        line: f.line.unwrap_or(0),
    }
}

fn fault(f: &faults::Fault) -> proto::Fault {
    proto::Fault {
        id: f.id,
        exception: f.exception.clone(),
        message: f.message.clone().unwrap_or_default(),
        thread: f.thread.clone(),
        site: Some(frame(&f.site)),
        stack: f.stack.iter().map(frame).collect(),
        count: f.count,
        first_seen_ms: f.first_seen_ms,
        last_seen_ms: f.last_seen_ms,
        caught: f.caught,
    }
}

fn event(e: &events::Event) -> proto::Event {
    proto::Event {
        seq: e.seq,
        at_ms: e.at_ms,
        at_us: e.at_us,
        kind: e.kind.name().to_string(),
        rule: e.rule.clone(),
        patch: e.patch.clone(),
        site: e.site.clone(),
        reason: e.reason.clone(),
    }
}

fn policy_reply(state: Option<&PolicyState>) -> proto::PolicyReply {
    let Some(s) = state else { return proto::PolicyReply::default() };
    let p = &s.policy;
    proto::PolicyReply {
        loaded: true,
        source: p.source.clone(),
        mode: if p.mode == repair_model::policy::Mode::DryRun { "dry-run" } else { "enforce" }.to_string(),
        yaml: p.text.clone(),
        loaded_at_ms: s.loaded_at_ms,
        loaded_by: s.who.clone(),
        rules: p
            .rules
            .iter()
            .map(|r| {
                let st = s.stats.get(&r.name).cloned().unwrap_or_default();
                proto::RuleState {
                    name: r.name.clone(),
                    when: format!(
                        "{}{}{}{} x{} within {:?}",
                        r.exception,
                        repair_model::policy::handled_word(r.caught).map(|w| format!(" {w}")).unwrap_or_default(),
                        r.within_code.as_ref().map(|g| format!(" in {g}")).unwrap_or_default(),
                        r.message.as_ref().map(|m| format!(" message /{m}/")).unwrap_or_default(),
                        r.count,
                        r.window
                    ),
                    actions: r
                        .then
                        .iter()
                        .map(|s| {
                            let at = if s.at == repair_model::policy::At::Caller { " at caller" } else { "" };
                            format!(
                                "{}{at}",
                                serde_yaml_ng::to_string(&s.action).unwrap_or_default().trim().replace('\n', " ")
                            )
                        })
                        .collect(),
                    fired: st.fired,
                    applied: st.applied,
                    validated: st.validated,
                    rolled_back: st.rolled_back,
                    held: st.held,
                    unproven: st.unproven,
                }
            })
            .collect(),
    }
}

impl AgentOperations {
    /// The methods a trace instruments: `method` of `class`, then, `depth - 1` levels down, each
    /// method its calls name that has a body in a loaded application class (at most 30), each
    /// with its call sites as shown. The first is the method asked for; it must make calls.
    fn traced_methods(
        &self,
        class: &str,
        bytes: &[u8],
        method: &repair_bytecode::transform::MethodTarget,
        depth: u32,
    ) -> Result<Vec<(String, repair_bytecode::transform::MethodTarget, Vec<String>)>, Status> {
        use repair_bytecode::transform::{trace, MethodTarget};
        const MAX_TRACED: usize = 30;
        let sites_of = |bytes: &[u8], m: &MethodTarget| {
            trace::trace(bytes, &trace::TraceSpec { method: m.clone(), trace_id: 1 }).map(|(_, calls)| calls)
        };
        let shown = |c: &trace::TracedCall| {
            let owner = c.owner.rsplit('/').next().unwrap_or(&c.owner);
            let at = c.line.map(|l| format!(":{l}")).unwrap_or_default();
            if owner.is_empty() {
                format!("{} (invokedynamic){at}", c.name)
            } else {
                format!("{owner}.{}{at}", c.name)
            }
        };
        let first = sites_of(bytes, method).map_err(|e| Status::invalid_argument(e.to_string()))?;
        let mut out = vec![(class.to_string(), method.clone(), first.iter().map(shown).collect::<Vec<_>>())];
        let mut level = vec![first];
        for _ in 1..depth {
            let mut next = Vec::new();
            for call in level.iter().flatten() {
                let owner = call.owner.replace('/', ".");
                let callee = MethodTarget { name: call.name.clone(), descriptor: Some(call.descriptor.clone()) };
                let known = out.iter().any(|(c, m, _)| *c == owner && *m == callee);
                if owner.is_empty() || known || call.name == "<init>" || out.len() >= MAX_TRACED {
                    continue;
                }
                if repair_model::policy::is_jdk_class(&owner) || owner.starts_with("repair.rt.") {
                    continue;
                }
                let Ok(b) = self.with_jni(|a, jni| a.patches.live_bytes(a.jvmti, jni, &call.owner, true)) else {
                    continue;
                };
                // Abstract, native, without calls, or declared elsewhere: not traced deeper.
                if let Ok(calls) = sites_of(&b, &callee) {
                    out.push((owner, callee, calls.iter().map(shown).collect()));
                    next.push(calls);
                }
            }
            level = next;
        }
        Ok(out)
    }

    /// An observation of the methods that class and method globs match (`'com.shop.*' 'get*'`):
    /// one probe patch per method, applied together; conditions on values are checked per call.
    fn observe_many(
        &self,
        kind: crate::observe::Kind,
        request: proto::ObserveRequest,
        by: Operator,
    ) -> Result<ObservationStream, Status> {
        use crate::observe::Kind;
        const MAX_METHODS: usize = 100;
        const ACC_ABSTRACT_OR_NATIVE: u16 = 0x0400 | 0x0100;
        let a = self.0;
        if !matches!(kind, Kind::Watch | Kind::Monitor | Kind::Stack) {
            return Err(Status::invalid_argument(
                "globs pick several methods for watch, monitor and stack; trace, snapshot and log take one",
            ));
        }
        let (class_glob, method) = (request.class_name.trim(), request.method.trim());
        let method_target = repair_bytecode::transform::MethodTarget::parse(method);
        let classes: Vec<String> = self
            .classes(class_glob)?
            .into_iter()
            .filter(|c| c.modifiable && !c.name.starts_with('[') && !c.name.starts_with("repair.rt."))
            .filter(|c| !repair_model::policy::is_jdk_class(&c.name))
            .map(|c| c.name)
            .collect();
        let mut found: Vec<(String, String, String)> = Vec::new();
        let mut arities = Vec::new();
        for class in classes.iter().take(MAX_METHODS) {
            let bytes = self.with_jni(|a, jni| a.patches.live_bytes(a.jvmti, jni, &class.replace('.', "/"), true))?;
            let cf = repair_bytecode::ClassFile::parse(&bytes).map_err(|e| Status::internal(e.to_string()))?;
            for m in cf.methods.iter().filter(|m| m.access & ACC_ABSTRACT_OR_NATIVE == 0) {
                let (Ok(name), Ok(descriptor)) = (cf.member_name(m), cf.member_descriptor(m)) else { continue };
                if !repair_model::glob::matches(&method_target.name, &name)
                    || method_target.descriptor.as_deref().is_some_and(|d| d != descriptor)
                {
                    continue;
                }
                if found.len() == MAX_METHODS {
                    return Err(Status::invalid_argument(format!(
                        "{class_glob} {method} matches more than {MAX_METHODS} methods: narrow it"
                    )));
                }
                if let Ok(d) = repair_bytecode::descriptor::MethodDescriptor::parse(&descriptor) {
                    arities.push(d.params.len());
                }
                found.push((class.clone(), name.into_owned(), descriptor.into_owned()));
            }
        }
        if found.is_empty() {
            return Err(Status::not_found(format!(
                "no method matching {method} in the loaded classes matching {class_glob} ({} such classes)",
                classes.len()
            )));
        }
        arities.sort_unstable();
        arities.dedup();
        let arity = (arities.len() == 1).then(|| arities[0]);
        let condition = match request.condition.trim() {
            "" => None,
            text => Some(repair_model::observe::Condition::parse(text, arity).map_err(Status::invalid_argument)?),
        };
        let target = format!("{class_glob}.{method} ({} methods)", found.len());
        let (o, reports) = a.observations.start(crate::observe::Request {
            condition,
            depth: request.expand.min(4),
            sample: u64::from(request.sample),
            count: request.count,
            max_per_second: u64::from(request.max_per_second),
            max_cpu_ms: request.max_cpu_ms,
            max_kib: request.max_kib,
            ..crate::observe::Request::new(kind, target, by.who.clone())
        });
        let watch = kind == Kind::Watch;
        let specs = found
            .into_iter()
            .map(|(class, name, descriptor)| {
                let shown = format!("{class}.{name}{descriptor}");
                let spec = PatchSpec {
                    id: o.patch_id.clone(),
                    class,
                    method: repair_bytecode::transform::MethodTarget { name, descriptor: Some(descriptor) },
                    action: observation_probe(watch, false),
                    durable: false,
                    source: String::new(),
                };
                (spec, shown)
            })
            .collect();
        self.run_observation(o, reports, specs, request.duration_ms, request.every_ms, &by)
    }

    /// Applies an observation's probes (`specs`: one patch each, with the method it shows as)
    /// and runs its clock; the stream's end rolls them back.
    fn run_observation(
        &self,
        o: std::sync::Arc<crate::observe::Observation>,
        reports: crate::observe::Reader,
        specs: Vec<(PatchSpec, String)>,
        duration_ms: u64,
        every_ms: u64,
        by: &Operator,
    ) -> Result<ObservationStream, Status> {
        let a = self.0;
        let descriptors: Vec<MethodDescriptor> =
            specs.iter().filter_map(|(s, _)| MethodDescriptor::parse(s.method.descriptor.as_deref()?).ok()).collect();
        if descriptors.len() == specs.len() {
            o.declare(&descriptors.iter().collect::<Vec<_>>());
        }
        let (specs, methods): (Vec<_>, Vec<_>) = specs.into_iter().map(|(s, m)| ((s, HashMap::new()), m)).unzip();
        let applied = self.with_jni(|a, jni| a.patches.apply_set(a.jvmti, jni, specs, Vec::new(), by.who.clone()));
        let patches = match applied {
            Ok(p) => p,
            Err(e) => {
                a.observations.remove(o.id);
                return Err(e);
            }
        };
        for (p, m) in patches.iter().zip(methods) {
            a.observations.attach(&o, p.report_id, m);
        }
        let target = o.target.clone();
        a.events.emit(
            Kind::Applied,
            About { patch: &o.patch_id, site: &target, ..About::default() },
            format!("{} {target} for {by}", o.info().kind),
        );
        // The clock of the observation: monitor intervals, its end after --for, and its rollback
        // a second after it ended.
        let until = (duration_ms > 0).then(|| Instant::now() + Duration::from_millis(duration_ms));
        let every = Duration::from_millis(if every_ms == 0 { 5000 } else { every_ms.max(100) });
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let o = o.clone();
            runtime.spawn(async move {
                let mut next_window = Instant::now() + every;
                while !o.has_ended() {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    let now = Instant::now();
                    if now >= next_window {
                        match o.kind {
                            crate::observe::Kind::Monitor => o.flush_window(),
                            crate::observe::Kind::Stack => o.flush_paths(),
                            _ => {}
                        }
                        next_window = now + every;
                    }
                    if until.is_some_and(|u| now >= u) {
                        if o.kind == crate::observe::Kind::Stack {
                            o.flush_paths();
                        }
                        o.end(format!("{duration_ms} ms passed, as asked (--for)"));
                    }
                }
                // However it ended, its probes go within a second even when its stream is stuck
                // behind a client that stopped reading (a stream that ended has rolled back).
                tokio::time::sleep(Duration::from_secs(1)).await;
                let _ = tokio::task::spawn_blocking(move || o.roll_back()).await;
            });
        }
        // Holds the observation weakly: the observation holds its rollback.
        let weak = std::sync::Arc::downgrade(&o);
        o.set_rollback(Box::new(move || {
            let Some(o) = weak.upgrade() else { return };
            o.end("the client went away".to_string());
            let undone = a.vm.attached("repair-control", |jni| a.patches.rollback(a.jvmti, jni, Some(&o.patch_id)));
            let why = match undone {
                Ok(Ok(_)) => format!("observation {} ended: {} is as it was", o.id, o.target),
                Ok(Err(e)) => format!("observation {} ended, but its probes stay: {e}", o.id),
                Err(rc) => format!("observation {} ended, but its probes stay: JNI error {rc}", o.id),
            };
            a.events.emit(Kind::RolledBack, About { patch: &o.patch_id, site: &o.target, ..About::default() }, why);
            // Listed until its probes are gone.
            a.observations.remove(o.id);
        }));
        // A `stop` while the probes went in found nothing to roll back yet.
        if o.has_ended() {
            o.roll_back();
        }
        Ok(ObservationStream::new(Box::new(reports), Box::new(move || o.roll_back())))
    }
}

/// The parameter count of the method `target` names in the class `bytes` (`None`: overloads that
/// differ in it); the error names what the class has instead.
fn method_descriptors(
    bytes: &[u8],
    class: &str,
    target: &repair_bytecode::transform::MethodTarget,
) -> Result<Vec<repair_bytecode::descriptor::MethodDescriptor>, String> {
    let cf = repair_bytecode::ClassFile::parse(bytes).map_err(|e| format!("class {class}: {e}"))?;
    let mut found = Vec::new();
    let mut names = Vec::new();
    for m in &cf.methods {
        let (Ok(name), Ok(descriptor)) = (cf.member_name(m), cf.member_descriptor(m)) else { continue };
        names.push(format!("{name}{descriptor}"));
        if name == target.name && target.descriptor.as_deref().is_none_or(|d| d == descriptor) {
            let parsed = repair_bytecode::descriptor::MethodDescriptor::parse(&descriptor)
                .map_err(|e| format!("{class}.{name}{descriptor}: {}", e.reason))?;
            found.push(parsed);
        }
    }
    if found.is_empty() {
        names.sort();
        return Err(format!("class {class} has no method {target} (it has: {})", names.join(", ")));
    }
    Ok(found)
}

/// Whether a patch id is an observation's probes (listed by `observations`, not `patches`).
fn is_observation(id: &str) -> bool {
    id.starts_with(repair_model::observe::PATCH_PREFIX)
}

/// Checks each value path against the declared types: the method's parameter or return type, or
/// the class for `this`; each field must exist in that type or a superclass. A type that is an
/// interface or abstract class is not checked past it: the object's class is known only at run
/// time. The error names the path, the type and the fields it has.
fn check_paths(
    a: &super::Agent,
    jni: &Jni<'_>,
    class: &str,
    bytes: &[u8],
    method: &repair_bytecode::transform::MethodTarget,
    exprs: &[repair_model::observe::Expr],
) -> Result<(), PatchError> {
    use repair_bytecode::descriptor::{FieldType, MethodDescriptor};
    use repair_model::observe::Root;
    const ACC_STATIC: i32 = 0x0008;
    const OPEN: i32 = 0x0200 | 0x0400; // interface, abstract
    let exprs: Vec<_> = exprs.iter().filter(|e| !e.fields.is_empty()).collect();
    if exprs.is_empty() {
        return Ok(());
    }
    let cf = repair_bytecode::ClassFile::parse(bytes).map_err(|e| PatchError::Invalid(e.to_string()))?;
    let descriptors: Vec<String> = cf
        .methods
        .iter()
        .filter(|m| cf.member_name(m).is_ok_and(|n| n == method.name))
        .filter_map(|m| cf.member_descriptor(m).ok().map(|d| d.into_owned()))
        .filter(|d| method.descriptor.as_deref().is_none_or(|want| want == d))
        .collect();
    let invalid = |e: &str, why: String| PatchError::Invalid(format!("{e}: {why}"));
    jni.with_local_frame(32, |jni| {
        let target = crate::patches::loaded_by_name(a.jvmti, jni, &[class.replace('.', "/")])
            .ok()
            .and_then(|found| found.into_values().flatten().next())
            .ok_or_else(|| PatchError::NotFound(format!("class {class} is not loaded in this JVM")))?;
        let loader = a.jvmti.class_loader(jni, &target).map_err(|e| PatchError::Unavailable(e.to_string()))?;
        for e in exprs {
            let declared: Vec<FieldType> = match e.root {
                Root::This => vec![FieldType::Object(class.replace('.', "/"))],
                Root::Arg(n) => {
                    descriptors.iter().filter_map(|d| MethodDescriptor::parse(d).ok()?.params.get(n).cloned()).collect()
                }
                Root::Return => descriptors.iter().filter_map(|d| Some(MethodDescriptor::parse(d).ok()?.ret)).collect(),
            };
            // Overloads that disagree on the type: checked at run time only.
            let [mut ty] =
                <[FieldType; 1]>::try_from(declared).unwrap_or([FieldType::Object("java/lang/Object".into())]);
            for (i, field) in e.fields.iter().enumerate() {
                match ty {
                    FieldType::Array(_) if field == "length" && i + 1 == e.fields.len() => break,
                    FieldType::Array(_) => {
                        return Err(invalid(&e.text, format!("an array has no field {field} (only length)")))
                    }
                    FieldType::Object(ref name) => {
                        let dotted = name.replace('/', ".");
                        let c = jni
                            .class_for_name(&dotted, &loader)
                            .map_err(|why| invalid(&e.text, format!("{dotted}: {why}")))?;
                        let modifiers = a.jvmti.class_modifiers(&c).unwrap_or(0);
                        let mut found = None;
                        let mut names = Vec::new();
                        let mut k = c;
                        while !k.is_null() && found.is_none() {
                            for (_, n, sig, m) in a.jvmti.class_fields(&k).unwrap_or_default() {
                                if m & ACC_STATIC == 0 {
                                    if n == *field {
                                        found = Some(sig.clone());
                                    }
                                    names.push(n);
                                }
                            }
                            k = jni.superclass(&k);
                        }
                        match found {
                            Some(sig) => {
                                ty = repair_bytecode::descriptor::parse_field(&sig)
                                    .map_err(|_| invalid(&e.text, format!("field {field} has type {sig}")))?;
                            }
                            None if modifiers & OPEN != 0 => break,
                            None => {
                                names.sort();
                                names.dedup();
                                return Err(invalid(
                                    &e.text,
                                    format!(
                                        "{dotted} has no field {field} (its fields: {})",
                                        if names.is_empty() { "none".to_string() } else { names.join(", ") }
                                    ),
                                ));
                            }
                        }
                    }
                    ref other => {
                        return Err(invalid(
                            &e.text,
                            format!("{} is of type {}: it has no field {field}", path_to(e, i), other.java_name()),
                        ))
                    }
                }
            }
        }
        Ok(())
    })
}

/// An observation's probes on a method: entry, exit and throw; for a watch with the arguments
/// (and `this`) and the return value.
fn observation_probe(watch: bool, this: bool) -> repair_model::spec::Action {
    repair_model::spec::Action::Probe {
        points: vec![ProbePoint::Entry, ProbePoint::Exit, ProbePoint::Throw],
        capture_args: watch,
        capture_this: watch && this,
        capture_return: watch,
        timestamp: false,
    }
}

/// The text of `e` up to its `i`-th field (`args[0].items`).
fn path_to(e: &repair_model::observe::Expr, i: usize) -> String {
    let root = match e.root {
        repair_model::observe::Root::Arg(n) => format!("args[{n}]"),
        repair_model::observe::Root::Return => "return".to_string(),
        repair_model::observe::Root::This => "this".to_string(),
    };
    std::iter::once(root).chain(e.fields[..i].iter().cloned()).collect::<Vec<_>>().join(".")
}

impl crate::control::Reports for crate::observe::Reader {
    fn next(&mut self) -> crate::control::Next {
        use crate::observe::Taken;
        match crate::observe::Reader::next(self) {
            Taken::Report(m) => crate::control::Next::Report(m),
            Taken::Nothing { busy } => crate::control::Next::Wait { busy },
            Taken::End => crate::control::Next::End,
        }
    }
}
