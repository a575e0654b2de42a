//! The agent's life: loading (at start-up or by attach), the [`Agent`] that owns every part, and
//! what the JVM calls: its events and the hooks' natives, each handed to the part that does it.
//!
//! Loading twice in one JVM (a second `-agentpath`, a second attach, or another copy of the
//! library) initializes nothing the second time: at start-up the second load is ignored with a
//! message and returns 0, so the JVM starts; an attach returns [`ALREADY_LOADED`] so that `jcmd
//! PID JVMTI.agent_load` and `repairctl attach` show a failure code instead of a silent success.

mod operations;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use repair_model::deploy::Deployment;

use crate::config::{ControlEndpoint, FaultMode, LogLevel, Options};
use crate::control::{self, ControlConfig, ControlServer, TokenSource};
use crate::events::{About, EventLog, Kind};
use crate::healing::{self, Healer};
use crate::journal::Journal;
use crate::jvm::ffi::{self, ExceptionEvent, HookCalls, VmEvents};
use crate::jvm::{internal_name, CallArgs, Capability, Captured, Event, JavaVm, Jni, Jvmti, Local, REQUESTED_VERSION};
use crate::patches::PatchManager;
use crate::runtime::faults::{is_application_class, FaultLog};
use crate::runtime::hooks;
use crate::{log_at, log_debug, log_error, log_info, log_warn};

/// What `Agent_OnAttach` returns when the agent is already in the JVM (JNI_EEXIST).
pub const ALREADY_LOADED: i32 = -5;
/// What `Agent_OnLoad`/`Agent_OnAttach` return for bad options or a JVM without JVMTI.
pub const LOAD_FAILED: i32 = -1;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoadMode {
    /// `-agentpath` at JVM start-up.
    Startup,
    /// Loaded into a running JVM.
    Attach,
}

/// Capabilities asked for and what came of it.
#[derive(Debug, Clone, Default)]
pub struct Capabilities {
    pub held: Vec<Capability>,
    /// `(capability, why not)`: the JVMTI error name, or that it was not asked for.
    pub missing: Vec<(Capability, String)>,
}

impl Capabilities {
    pub fn holds(&self, c: Capability) -> bool {
        self.held.contains(&c)
    }
}

/// Fault probes added to the classes loaded before an attach.
#[derive(Debug, Clone, Default)]
pub struct AttachProbes {
    pub probed: usize,
    /// `(dotted class name, why not)`.
    pub skipped: Vec<(String, String)>,
}

/// How adding fault probes to the classes loaded before an attach went, in words (the log at
/// attach and `repairctl status` say the same).
pub fn attach_probes_text(report: &Result<AttachProbes, String>) -> String {
    match report {
        Ok(r) if r.skipped.is_empty() => format!("fault probes added to {} classes loaded before the attach", r.probed),
        Ok(r) => {
            format!("fault probes added to {} classes loaded before the attach; {}", r.probed, r.skipped_text())
        }
        Err(e) => format!("no fault probes in the classes loaded before the attach: {e}"),
    }
}

impl AttachProbes {
    fn skip(&mut self, class: String, why: &str) {
        self.skipped.push((class, why.to_string()));
    }

    /// `3 skipped: 2 in the error state: ... (a.B, c.D), 1 JVMTI_ERROR_...(e.F)`.
    pub fn skipped_text(&self) -> String {
        let mut by_reason: Vec<(&str, Vec<&str>)> = Vec::new();
        for (class, why) in &self.skipped {
            match by_reason.iter_mut().find(|(w, _)| w == why) {
                Some((_, v)) => v.push(class),
                None => by_reason.push((why, vec![class])),
            }
        }
        let parts: Vec<String> = by_reason
            .iter()
            .map(|(why, classes)| {
                let shown: Vec<&str> = classes.iter().take(5).copied().collect();
                let more = if classes.len() > 5 { format!(", {} more", classes.len() - 5) } else { String::new() };
                format!("{} {why} ({}{more})", classes.len(), shown.join(", "))
            })
            .collect();
        format!("{} skipped: {}", self.skipped.len(), parts.join("; "))
    }
}

pub struct Agent {
    pub vm: JavaVm,
    pub jvmti: Jvmti,
    pub mode: LoadMode,
    pub options: Options,
    /// What `GetVersionNumber` reported (the JVM's JVMTI version, e.g. 0x30110000 on JDK 17).
    pub jvmti_version: i32,
    pub capabilities: Capabilities,
    /// How faults are captured in fact (asking for `jvmti` after attach gets `bytecode`).
    pub fault_mode: FaultMode,
    pub faults: FaultLog,
    pub patches: PatchManager,
    /// What deploys learnt of the classes they compared.
    pub fingerprints: crate::deploy::Fingerprints,
    /// Methods watched while an operator's stream lasts.
    pub observations: crate::observe::Observations,
    pub events: EventLog,
    pub journal: Journal,
    pub healer: Healer,
    /// The gRPC server, while it runs.
    control: Mutex<Option<ControlServer>>,
    /// Whether `repair/rt/Hooks` is defined and bound, or why not.
    pub hooks: Mutex<Result<(), String>>,
    /// After attach with bytecode capture: how adding probes to the loaded classes went.
    pub attach_probes: Mutex<Option<Result<AttachProbes, String>>>,
    pub loaded_at: Instant,
}

static AGENT: OnceLock<Agent> = OnceLock::new();
static LOADING: AtomicBool = AtomicBool::new(false);

/// `Agent_OnLoad` / `Agent_OnAttach`.
pub fn load(vm: JavaVm, options: &str, mode: LoadMode) -> i32 {
    if LOADING.swap(true, Ordering::SeqCst) {
        return already_loaded(mode, options);
    }
    match init(vm, options, mode) {
        Ok(()) => 0,
        Err((code, message)) => {
            // Nothing was set up: a corrected load may follow (attach again with fixed options).
            if code != ALREADY_LOADED {
                LOADING.store(false, Ordering::SeqCst);
            }
            crate::log::line(&message);
            code
        }
    }
}

fn already_loaded(mode: LoadMode, options: &str) -> i32 {
    eprintln!(
        "repair: the agent is already loaded in this JVM (pid {}); this second load (options {options:?}) is ignored",
        std::process::id()
    );
    match mode {
        LoadMode::Startup => 0,
        LoadMode::Attach => ALREADY_LOADED,
    }
}

fn init(vm: JavaVm, text: &str, mode: LoadMode) -> Result<(), (i32, String)> {
    let options = Options::parse(text).map_err(|e| (LOAD_FAILED, format!("refusing to load: {e}")))?;
    crate::log::set_level(options.log);
    let jvmti = vm.jvmti().map_err(|rc| {
        (
            LOAD_FAILED,
            format!("refusing to load: the JVM has no JVMTI version {REQUESTED_VERSION:#x} (GetEnv returned {rc})"),
        )
    })?;
    if mode == LoadMode::Attach {
        // Another copy of the library (another path) has its own statics: the JVM-wide sign is
        // the hooks class it defined.
        if vm.with_env(hooks::already_defined).unwrap_or(false) {
            return Err((
                ALREADY_LOADED,
                format!(
                    "the agent is already loaded in this JVM (pid {}: repair/rt/Hooks exists); this load is ignored",
                    std::process::id()
                ),
            ));
        }
    }
    let jvmti_version = jvmti.version().map_err(|e| (LOAD_FAILED, format!("refusing to load: {e}")))?;
    let capabilities = take_capabilities(jvmti, &options, mode);
    let fault_mode = match options.faults {
        FaultMode::Jvmti if !capabilities.holds(Capability::ExceptionEvents) => {
            log_warn!(
                "faults=jvmti asked for, but {} is not available{}: capturing faults in bytecode instead",
                Capability::ExceptionEvents.name(),
                if mode == LoadMode::Attach { " after attach" } else { "" }
            );
            FaultMode::Bytecode
        }
        m => m,
    };
    let policy = match &options.policy {
        Some(path) => {
            let policy = healing::load_file(path)
                .and_then(|p| p.check_capture(fault_mode == FaultMode::Jvmti).map(|()| p))
                .map_err(|e| (LOAD_FAILED, format!("refusing to load: {e}")))?;
            Some(policy)
        }
        None => None,
    };
    let state_dir = options.state_dir.clone().unwrap_or_else(|| {
        crate::journal::default_state_dir(jvmti.system_property("sun.java.command").ok().as_deref())
    });
    let events = EventLog::default();
    let journal = Journal::open(state_dir, options.journal_max_bytes, crate::journal::instance_id(), &events);
    let agent = Agent {
        vm,
        jvmti,
        mode,
        options,
        jvmti_version,
        capabilities,
        fault_mode,
        faults: FaultLog::default(),
        patches: PatchManager::default(),
        fingerprints: Default::default(),
        observations: Default::default(),
        events,
        journal,
        healer: Healer::default(),
        control: Mutex::new(None),
        hooks: Mutex::new(Err("not defined yet: the VM has not finished starting".to_string())),
        attach_probes: Mutex::new(None),
        loaded_at: Instant::now(),
    };
    let agent = AGENT.get_or_init(|| agent);
    ffi::install_callbacks(jvmti, agent).map_err(|e| (LOAD_FAILED, format!("refusing to load: {e}")))?;
    if let Some(p) = policy {
        agent.healer.replace(p, "agent option policy=".to_string());
    }
    if mode == LoadMode::Startup {
        // Before any application class loads: durable patches apply as their classes load.
        agent.restore_durable(None);
    }
    enable(jvmti, Event::ClassFileLoadHook);
    enable(jvmti, Event::VmDeath);
    match mode {
        LoadMode::Startup => enable(jvmti, Event::VmInit),
        LoadMode::Attach => {
            if vm.with_env(|jni| agent.start(jni)).is_none() {
                log_error!("the attaching thread has no JNI environment: runtime hooks are not available");
            }
        }
    }
    Ok(())
}

fn take_capabilities(jvmti: Jvmti, options: &Options, mode: LoadMode) -> Capabilities {
    let mut caps = Capabilities::default();
    for c in Capability::ALL {
        // Holding exception events makes every throw dearer even while disabled: only on request.
        if c == Capability::ExceptionEvents && options.faults != FaultMode::Jvmti {
            caps.missing.push((c, "not asked for (faults=jvmti asks for it)".to_string()));
            continue;
        }
        match jvmti.add_capability(c) {
            Ok(()) => caps.held.push(c),
            Err(e) => {
                if mode == LoadMode::Startup || c != Capability::ExceptionEvents {
                    log_warn!("capability {} refused: {}; continuing without it", c.name(), e.name());
                }
                caps.missing.push((c, e.name().to_string()));
            }
        }
    }
    caps
}

fn enable(jvmti: Jvmti, event: Event) {
    if let Err(e) = jvmti.set_event(event, true) {
        log_error!("cannot enable the {event:?} event: {e}");
    }
}

/// `0x30110000` → `17.0.0`.
pub fn version_text(v: i32) -> String {
    format!("{}.{}.{}", (v >> 16) & 0xfff, (v >> 8) & 0xff, v & 0xff)
}

fn names(caps: &[Capability]) -> String {
    caps.iter().map(|c| c.name()).collect::<Vec<_>>().join(", ")
}

fn missing_text(missing: &[(Capability, String)]) -> String {
    if missing.is_empty() {
        return String::new();
    }
    let parts: Vec<String> = missing.iter().map(|(c, why)| format!("{} ({why})", c.name())).collect();
    format!("; without: {}", parts.join(", "))
}

impl Agent {
    /// Whether bytecode capture probes the class (internal name): not the JDK's or the agent's,
    /// and within `app=` when it is given.
    fn captures(&self, internal: &str) -> bool {
        is_application_class(internal)
            && (self.options.app.is_empty() || {
                let dotted = internal.replace('/', ".");
                self.options.app.iter().any(|g| repair_model::glob::matches(g, &dotted))
            })
    }

    /// Once the VM is live: define the hooks class and turn fault capture on.
    fn start(&'static self, jni: &Jni<'_>) {
        let hooks = hooks::define(jni, self);
        if let Err(e) = &hooks {
            log_error!("runtime hooks unavailable: {e}");
        }
        *self.hooks.lock().unwrap_or_else(|e| e.into_inner()) = hooks;
        if !jni.look_up_wrappers() {
            log_warn!("java.lang.Throwable has no cause field: wrapped exceptions are faults of their own");
        }
        if self.fault_mode == FaultMode::Jvmti {
            enable(self.jvmti, Event::Exception);
        }
        if self.fault_mode == FaultMode::Bytecode && self.mode == LoadMode::Attach {
            self.probe_loaded_classes(jni);
        }
        if self.mode == LoadMode::Attach {
            self.restore_durable(Some(jni));
        }
        self.healer.start(healing::Parts {
            vm: self.vm,
            jvmti: self.jvmti,
            fault_mode: self.fault_mode,
            faults: &self.faults,
            patches: &self.patches,
            events: &self.events,
            journal: &self.journal,
            observations: &self.observations,
        });
        let control = self.start_control();
        self.announce(control);
    }

    /// Starts the control plane (at VMInit, or at once after attach); returns where it listens,
    /// or why it does not.
    fn start_control(&'static self) -> Result<String, String> {
        let pid = std::process::id();
        let endpoint = match &self.options.control {
            ControlEndpoint::Unix => repair_model::endpoint::Endpoint::Unix(
                repair_model::endpoint::default_socket_dir().join(format!("{pid}.sock")),
            ),
            ControlEndpoint::Tcp { host, port } => repair_model::endpoint::Endpoint::Tcp(format!("{host}:{port}")),
        };
        let token = match (&self.options.token_file, std::env::var("REPAIR_TOKEN")) {
            (Some(f), _) => TokenSource::File(f.clone()),
            (None, Ok(t)) if !t.trim().is_empty() => TokenSource::Given(t.trim().to_string()),
            _ => TokenSource::Generate,
        };
        let config = ControlConfig { endpoint, token, tls: self.options.tls.clone(), pid };
        match control::start(Arc::new(operations::AgentOperations(self)), config) {
            Ok(server) => {
                let endpoint = match server.token_file() {
                    Some(f) => format!("{} (token in {})", server.endpoint(), f.display()),
                    None => server.endpoint().to_string(),
                };
                *self.control.lock().unwrap_or_else(|e| e.into_inner()) = Some(server);
                Ok(endpoint)
            }
            Err(e) => {
                log_error!("control plane not started: {e}; the agent keeps running without it");
                Err(e.to_string())
            }
        }
    }

    /// Where the control plane listens (empty when it does not).
    fn control_endpoint(&self) -> String {
        self.control
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map(|s| s.endpoint().to_string())
            .unwrap_or_default()
    }

    /// The one line a load prints by default (at `log=warn`, the default level, as warnings
    /// are): what was loaded, how faults are captured, and where the control plane listens.
    fn announce(&self, control: Result<String, String>) {
        log_at!(
            LogLevel::Warn,
            "loaded ({}), JVMTI {}, faults={}, capabilities held: {}{}; {}",
            if self.mode == LoadMode::Startup { "at start-up" } else { "by attach" },
            version_text(self.jvmti_version),
            self.fault_mode,
            names(&self.capabilities.held),
            missing_text(&self.capabilities.missing),
            match control {
                Ok(endpoint) => format!("control plane listening on {endpoint}"),
                Err(_) => "control plane not started".to_string(),
            }
        );
    }

    /// Puts back the durable patches the journal holds. At start-up (`jni` is `None`) they wait
    /// for their classes to load; after attach they are applied to the loaded classes. A rule's
    /// repair is handed to the healer, to be validated again under its rule.
    fn restore_durable(&self, jni: Option<&Jni<'_>>) {
        for record in self.journal.durable() {
            let about = About { patch: &record.patch_id, ..About::default() };
            let specs = if Deployment::is_manifest(&record.spec) {
                Deployment::from_yaml(&record.spec, "journal").map(|d| d.member_specs())
            } else {
                repair_model::spec::PatchSpec::from_yaml(&record.spec, "journal")
                    .map(|s| vec![s])
                    .map_err(|e| e.to_string())
            };
            let attachments = self.journal.attachments(&record);
            let (specs, attachments) = match (specs, attachments) {
                (Ok(s), Ok(a)) if !s.is_empty() => (s, a),
                (Err(e), _) | (_, Err(e)) => {
                    self.events.emit(Kind::Journal, about, format!("durable patch not restored: {e}"));
                    continue;
                }
                _ => continue,
            };
            let site = if specs.len() == 1 { specs[0].site() } else { format!("{} classes", specs.len()) };
            let about = About { site: &site, ..about };
            // Durable patches belong to the service (its state dir), so a replica restores what
            // another applied: said here, with who and which JVM.
            let by = if record.instance.is_empty() || record.instance == self.journal.instance() {
                String::new()
            } else {
                format!(", JVM {}", record.instance)
            };
            let since = format!(
                "durable for this service since journal record {} ({}{by}) in {}",
                record.seq,
                record.who,
                self.journal.dir().display()
            );
            let with_files = |spec: repair_model::spec::PatchSpec| {
                let files = spec
                    .attachments_needed()
                    .into_iter()
                    .filter_map(|f| Some((f.clone(), attachments.get(&f)?.clone())))
                    .collect();
                (spec, files)
            };
            // A rule's repair is one patch; an operator's patches were never the healer's to judge.
            let validating = |restored: Vec<crate::patches::AppliedPatch>| match restored.as_slice() {
                [patch] if record.who.starts_with("rule:") => {
                    match self.healer.validate_restored(patch.clone(), record.fault.clone()) {
                        Ok(how) => format!("; {how}"),
                        Err(why) => format!("; restored, not validated again: {why}"),
                    }
                }
                _ => String::new(),
            };
            match jni {
                None => {
                    let restored = specs
                        .into_iter()
                        .map(|spec| {
                            let (spec, files) = with_files(spec);
                            self.patches.preload(spec, files, record.who.clone())
                        })
                        .collect();
                    let validating = validating(restored);
                    self.events.emit(
                        Kind::Restored,
                        about,
                        format!("{since}: applies as the classes load{validating}"),
                    );
                }
                Some(jni) => {
                    // After attach, the classes loaded now are patched together; the others as they load.
                    let loaded = jni.with_local_frame(16, |jni| {
                        let names: Vec<String> = specs.iter().map(|s| s.target_class_internal()).collect();
                        crate::patches::loaded_by_name(self.jvmti, jni, &names)
                            .map(|found| found.into_keys().collect::<std::collections::HashSet<_>>())
                    });
                    let loaded = match loaded {
                        Ok(l) => l,
                        Err(e) => {
                            self.events.emit(Kind::Journal, about, format!("durable patch not restored: {e}"));
                            continue;
                        }
                    };
                    let (now, waiting): (Vec<_>, Vec<_>) = specs
                        .into_iter()
                        .map(with_files)
                        .partition(|(s, _)| loaded.contains(&s.target_class_internal()));
                    match self.patches.apply_set(self.jvmti, jni, now, waiting, record.who.clone()) {
                        Ok(restored) => {
                            let validating = validating(restored);
                            let text = format!("{since}: applied to the loaded classes{validating}");
                            self.events.emit(Kind::Restored, about, text)
                        }
                        Err(e) => self.events.emit(Kind::Journal, about, format!("durable patch not restored: {e}")),
                    }
                }
            };
        }
    }

    /// After attach, the application classes already loaded get their fault probes through
    /// `RetransformClasses` (the ClassFileLoadHook adds them); classes loaded later get them as
    /// they load. Classes in the error state (a failed static initializer) are skipped: one in a
    /// batch fails it whole. If the batch still fails, each class is tried alone, so one bad
    /// class costs only itself. What was skipped and why is kept for `status`.
    fn probe_loaded_classes(&self, jni: &Jni<'_>) {
        let report = jni.with_local_frame(4096, |jni| {
            let classes = self.jvmti.loaded_classes(jni).map_err(|e| e.to_string())?;
            let mut report = AttachProbes::default();
            let mut batch = Vec::new();
            for c in classes {
                let Ok(sig) = self.jvmti.class_signature(&c) else { continue };
                let internal = internal_name(&sig).unwrap_or("");
                if internal.is_empty() || internal.contains("$$Lambda") || !self.captures(internal) {
                    continue;
                }
                let name = internal.replace('/', ".");
                if !self.jvmti.is_modifiable(&c).unwrap_or(false) {
                    report.skip(name, "not modifiable (IsModifiableClass)");
                } else if self.jvmti.is_in_error_state(&c).unwrap_or(false) {
                    report.skip(name, "in the error state: its static initializer failed");
                } else {
                    batch.push((name, c));
                }
            }
            let classes: Vec<_> = batch.iter().map(|(_, c)| *c).collect();
            match self.jvmti.retransform(&classes) {
                Ok(()) => report.probed = classes.len(),
                Err(e) => {
                    log_debug!("RetransformClasses of {} classes failed ({e}): trying each alone", classes.len());
                    for (name, c) in batch {
                        match self.jvmti.retransform(&[c]) {
                            Ok(()) => report.probed += 1,
                            Err(e) => report.skip(name, e.name()),
                        }
                    }
                }
            }
            Ok::<AttachProbes, String>(report)
        });
        match &report {
            Ok(r) if r.skipped.is_empty() => log_info!("{}", attach_probes_text(&report)),
            _ => log_warn!("{}", attach_probes_text(&report)),
        }
        *self.attach_probes.lock().unwrap_or_else(|e| e.into_inner()) = Some(report);
    }

    /// One line per fault site and per report id, for the log at exit.
    fn summary(&self) -> Vec<String> {
        let mut lines = Vec::new();
        let (faults, dropped) = self.faults.list();
        for f in &faults {
            lines.push(format!(
                "fault #{} {} x{} at {}.{}{} bci {} line {} thread {:?}{}: {}",
                f.id,
                f.exception,
                f.count,
                f.site.class,
                f.site.method,
                f.site.descriptor,
                f.site.bci,
                f.site.line.map(|l| l.to_string()).unwrap_or_else(|| "?".into()),
                f.thread,
                repair_model::policy::handled_word(f.caught).map(|w| format!(", {w}")).unwrap_or_default(),
                f.message.as_deref().unwrap_or("(no message)")
            ));
        }
        if dropped > 0 {
            lines.push(format!("{dropped} fault sites dropped for room"));
        }
        for (id, c) in self.patches.reports.all() {
            let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
            let patch = self.patches.patch_of_report(id).unwrap_or_else(|| "-".to_string());
            lines.push(format!(
                "report {id} (patch {patch}): fallbacks={} enters={} exits={} throws={} lines={}",
                load(&c.fallbacks),
                load(&c.enters),
                load(&c.exits),
                load(&c.throws),
                load(&c.lines)
            ));
        }
        lines
    }
}

impl VmEvents for Agent {
    fn vm_init(&self, jni: &Jni<'_>) {
        // The agent lives in a static once loaded; only that one is registered for events.
        if let Some(agent) = AGENT.get() {
            agent.start(jni);
        }
    }

    fn vm_death(&self, _jni: &Jni<'_>) {
        if let Some(server) = self.control.lock().unwrap_or_else(|e| e.into_inner()).take() {
            server.shutdown();
        }
        for event in [Event::Exception, Event::ClassFileLoadHook] {
            // Already disabled or never enabled is fine at exit.
            let _ = self.jvmti.set_event(event, false);
        }
        for line in self.summary() {
            log_info!("{line}");
        }
    }

    fn class_file_load(&self, _jni: &Jni<'_>, name: Option<&str>, _redefining: bool, bytes: &[u8]) -> Option<Vec<u8>> {
        let name = name?;
        let (new_bytes, dropped) = self.patches.transform(name, bytes);
        for crate::patches::Dropped { patches, reason, whole } in dropped {
            let Some(first) = patches.first() else { continue };
            let site = first.spec.site();
            let about = About { patch: &first.spec.id, site: &site, ..About::default() };
            // An observation's probes waiting for their class (a health signal's) are not
            // journaled: the observation ends with them.
            let observation = || self.observations.list().into_iter().find(|o| o.patch_id == first.spec.id);
            if let Some(o) = observation().filter(|_| whole) {
                let rule = o.who.strip_prefix("rule:").unwrap_or("");
                let what = format!("observation {} ({} {}) ended: {reason}", o.id, o.info().kind, o.target);
                self.events.emit(Kind::RolledBack, About { rule, ..about }, what);
                self.observations.remove(o.id);
            } else if whole {
                self.events.emit(Kind::RolledBack, about, &reason);
                // A failure is reported by the journal itself (event, status); the class loads on.
                let _ = self.journal.rolled_back(&self.events, &patches, "agent", &reason);
            } else {
                self.events.emit(Kind::Journal, about, format!("{reason}; the deployment's other classes stay"));
            }
        }
        if self.fault_mode == FaultMode::Jvmti {
            self.faults.note_class(name, new_bytes.as_deref().unwrap_or(bytes));
        }
        if self.fault_mode == FaultMode::Bytecode && self.captures(name) {
            return capture_probes(name, new_bytes.as_deref().unwrap_or(bytes)).or(new_bytes);
        }
        new_bytes
    }

    fn exception(&self, jni: &Jni<'_>, event: &ExceptionEvent<'_>) {
        if self.fault_mode == FaultMode::Jvmti {
            self.faults.on_exception(self.jvmti, jni, &event.exception, event.catch);
        }
    }
}

/// The hooks' natives, each to the part that keeps its state.
impl HookCalls for Agent {
    fn fallback(&self, jni: &Jni<'_>, id: i32, thrown: Option<&Local<'_>>) {
        self.patches.reports.fallback(jni, id, thrown)
    }
    fn enter(&self, jni: &Jni<'_>, id: i32, nanos: Option<i64>) {
        if !self.observations.entered(self.jvmti, jni, &self.faults, id, None) {
            self.patches.reports.enter(id, nanos)
        }
    }
    fn enter_args(&self, jni: &Jni<'_>, id: i32, args: Option<&CallArgs<'_, '_>>) {
        if !self.observations.entered(self.jvmti, jni, &self.faults, id, args) {
            self.patches.reports.enter_args(jni, id, args)
        }
    }
    fn exit(&self, jni: &Jni<'_>, id: i32, nanos: Option<i64>) {
        if !self.observations.exited(self.jvmti, jni, id, None, None) {
            self.patches.reports.exit(id, nanos)
        }
    }
    fn exit_value(&self, jni: &Jni<'_>, id: i32, value: Option<Captured<'_, '_>>) {
        if !self.observations.exited(self.jvmti, jni, id, value, None) {
            self.patches.reports.exit_value(jni, id, value)
        }
    }
    fn thrown(&self, jni: &Jni<'_>, id: i32, thrown: Option<&Local<'_>>) {
        // An observation's exit by an exception: the fault capture's own probe on the method
        // records the fault.
        if !self.observations.exited(self.jvmti, jni, id, None, thrown) {
            self.patches.reports.thrown(&self.faults, self.jvmti, jni, id, thrown)
        }
    }
    fn line(&self, id: i32, line: i32) {
        self.patches.reports.line(id, line)
    }
    fn call_enter(&self, id: i32, site: i32) {
        self.observations.call_entered(id, site)
    }
    fn call_exit(&self, id: i32, site: i32) {
        self.observations.call_exited(id, site)
    }
    fn snapshot(&self, jni: &Jni<'_>, id: i32, locals: Option<&Local<'_>>) {
        self.observations.snapshot(self.jvmti, jni, &self.faults, id, locals)
    }
    fn breaker_enter(&self, id: i32) -> bool {
        // Counted as the patch's calls: a verdict on a breaker rests on them.
        self.patches.reports.counters(id).enters.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.patches.breakers.enter(&self.events, id)
    }
    fn breaker_exit(&self, id: i32) {
        self.patches.breakers.exit(&self.events, id)
    }
    fn breaker_thrown(&self, jni: &Jni<'_>, id: i32, thrown: Option<&Local<'_>>) {
        let name = || thrown.map_or_else(|| "an exception".to_string(), |t| jni.class_name_of_object(t));
        self.patches.breakers.thrown(&self.events, id, name)
    }
    fn recursion_enter(&self, id: i32) -> bool {
        // Every call is one of the patch's calls, and a refused one a fallback, as a guard's: the
        // verdict's fallback rate rests on them.
        self.patches.reports.counters(id).enters.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let run = self.patches.recursion.enter(id);
        if !run {
            self.patches.reports.fallback_taken(id);
        }
        run
    }
    fn recursion_exit(&self, id: i32) {
        self.patches.recursion.exit(id)
    }
}

/// Bytecode fault capture: a `Hooks.thrown` exception-exit probe on every method of `name`,
/// with probe ids of its own, the same each time the class is rewritten again
/// ([`crate::runtime::faults::probe_ids`]).
fn capture_probes(name: &str, bytes: &[u8]) -> Option<Vec<u8>> {
    match repair_bytecode::transform::probe::throw_probe_all(bytes, crate::runtime::faults::probe_ids) {
        Ok((probed, n)) if n > 0 => Some(probed),
        Ok(_) => None,
        Err(e) => {
            crate::log_debug!("no fault probes in {}: {e}", name.replace('/', "."));
            None
        }
    }
}
