//! The agent's side of the control plane's contract ([`crate::api::AgentApi`]), over
//! [`crate::service`], and starting/stopping the server.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use tokio::sync::broadcast;

use crate::api::{self, AgentApi, ApiError, ErrorKind};
use crate::config::{ControlEndpoint, FaultMode};
use crate::control::{self, ControlConfig, ControlServer};
use crate::patches::{AppliedPatch, PatchError};
use crate::{agent, events, faults, healing, service};

static SERVER: Mutex<Option<ControlServer>> = Mutex::new(None);

/// Starts the control plane (at VMInit, or at once after attach); returns where it listens, or
/// why it does not.
pub fn start_control(options: &crate::config::Options) -> Result<String, String> {
    let pid = std::process::id();
    let endpoint = match &options.control {
        ControlEndpoint::Unix => repair_model::endpoint::Endpoint::Unix(repair_model::endpoint::socket_path(pid)),
        ControlEndpoint::Tcp { host, port } => repair_model::endpoint::Endpoint::Tcp(format!("{host}:{port}")),
    };
    let config = ControlConfig { endpoint, token: options.token.clone(), pid };
    match control::start(Arc::new(Api), config) {
        Ok(server) => {
            let endpoint = server.endpoint().to_string();
            *SERVER.lock().unwrap_or_else(|e| e.into_inner()) = Some(server);
            Ok(endpoint)
        }
        Err(e) => {
            crate::log_error!("control plane not started: {e}; the agent keeps running without it");
            Err(e.to_string())
        }
    }
}

/// Stops the control plane (VMDeath).
pub fn stop_control() {
    if let Some(server) = SERVER.lock().unwrap_or_else(|e| e.into_inner()).take() {
        server.shutdown();
    }
}

fn endpoint_text() -> String {
    SERVER.lock().unwrap_or_else(|e| e.into_inner()).as_ref().map(|s| s.endpoint().to_string()).unwrap_or_default()
}

fn api_error(e: PatchError) -> ApiError {
    let kind = match &e {
        PatchError::NotFound(_) => ErrorKind::NotFound,
        PatchError::AlreadyExists(_) => ErrorKind::AlreadyExists,
        PatchError::Invalid(_) => ErrorKind::InvalidArgument,
        PatchError::Rejected { .. } => ErrorKind::FailedPrecondition,
        PatchError::Unavailable(_) => ErrorKind::FailedPrecondition,
    };
    ApiError::new(kind, e.to_string())
}

fn frame(f: &faults::StackFrame) -> api::Frame {
    api::Frame {
        class: f.class.clone(),
        method: f.method.clone(),
        descriptor: f.descriptor.clone(),
        bci: f.bci,
        line: f.line,
    }
}

fn fault(f: &faults::Fault) -> api::Fault {
    api::Fault {
        id: f.id,
        exception: f.exception.clone(),
        message: f.message.clone(),
        thread: f.thread.clone(),
        site: frame(&f.site),
        stack: f.stack.iter().map(frame).collect(),
        count: f.count,
        first_seen_ms: f.first_seen_ms,
        last_seen_ms: f.last_seen_ms,
        caught: f.caught,
    }
}

fn patch_info(p: &AppliedPatch, state: api::PatchState) -> api::PatchInfo {
    let fallbacks =
        agent::get().map(|a| a.reports.counters(p.report_id).fallbacks.load(Ordering::Relaxed)).unwrap_or(0);
    api::PatchInfo {
        id: p.spec.id.clone(),
        classes: vec![p.class.replace('/', ".")],
        method: p.spec.method.to_string(),
        action: match crate::breakers::state(p.report_id) {
            Some((state, short)) => format!("{} [{state}, {short} calls short-circuited]", p.spec.action.summary()),
            None => p.spec.action.summary(),
        },
        applied_at_ms: p.applied_at_ms,
        who: p.who.clone(),
        state,
        fallbacks,
        durable: p.spec.durable,
    }
}

/// The agent as the control plane sees it.
pub struct Api;

impl AgentApi for Api {
    fn status(&self) -> api::AgentStatus {
        let Some(s) = service::status() else { return api::AgentStatus::default() };
        let a = agent::get();
        api::AgentStatus {
            pid: s.pid as i64,
            jvm: format!("JVMTI {}", s.jvmti_version),
            agent_version: env!("CARGO_PKG_VERSION").to_string(),
            load_mode: if s.load_mode == "startup" { api::LoadMode::OnLoad } else { api::LoadMode::OnAttach },
            fault_capture: match a.map(|a| a.fault_mode) {
                Some(FaultMode::Jvmti) => api::FaultCapture::JvmtiExceptionEvents,
                Some(FaultMode::Off) => api::FaultCapture::Off,
                _ => api::FaultCapture::BytecodeProbes,
            },
            capabilities: s.capabilities_held,
            missing_capabilities: s
                .capabilities_missing
                .iter()
                .map(|(c, why)| format!("{c}: {why}"))
                .chain((!s.fault_mode_lacks.is_empty()).then(|| format!("fault capture: {}", s.fault_mode_lacks)))
                .chain(s.hooks.err().map(|e| format!("runtime hooks: {e}")))
                .collect(),
            faults_seen: s.fault_sites as u64,
            patches_active: s.patches as u64,
            classes_loaded: service::class_count().map(|n| n as u64).unwrap_or(0),
            uptime_ms: s.uptime_ms,
            endpoint: endpoint_text(),
            fault_capture_detail: s.fault_capture_detail,
            classes_skipped: s.classes_skipped,
        }
    }

    fn classes(&self, glob: &str) -> Result<Vec<api::LoadedClass>, ApiError> {
        service::classes(glob).map_err(api_error)
    }

    fn class_bytes(&self, class: &str) -> Result<Vec<u8>, ApiError> {
        service::class_bytes(class).map_err(api_error)
    }

    fn faults(&self) -> (Vec<api::Fault>, u64) {
        let Some(a) = agent::get() else { return (Vec::new(), 0) };
        let (list, dropped) = a.faults.list();
        (list.iter().map(fault).collect(), dropped)
    }

    fn subscribe_faults(&self) -> broadcast::Receiver<api::Fault> {
        let (tx, rx) = broadcast::channel(256);
        if let (Some(a), Ok(runtime)) = (agent::get(), tokio::runtime::Handle::try_current()) {
            let mut inner = a.faults.subscribe();
            // Converts the agent's faults into the API's type on the control plane's runtime.
            runtime.spawn(async move {
                loop {
                    match inner.recv().await {
                        Ok(f) => {
                            if tx.send(fault(&f)).is_err() {
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

    fn apply(&self, request: api::ApplyRequest) -> Result<api::PatchInfo, ApiError> {
        let by = service::Operator { who: request.who, peer: request.peer };
        let p = service::apply(&request.spec_yaml, &request.source, request.attachments, by).map_err(api_error)?;
        Ok(patch_info(&p, api::PatchState::Active))
    }

    fn patches(&self) -> Vec<api::PatchInfo> {
        agent::get()
            .map(|a| a.patches.list().iter().map(|p| patch_info(p, api::PatchState::Active)).collect())
            .unwrap_or_default()
    }

    fn rollback(&self, target: api::RollbackTarget, who: &str, peer: &str) -> Result<Vec<api::PatchInfo>, ApiError> {
        let id = match &target {
            api::RollbackTarget::One(id) => Some(id.as_str()),
            api::RollbackTarget::All => None,
        };
        let by = service::Operator { who: who.to_string(), peer: peer.to_string() };
        let gone = service::rollback(id, &by).map_err(api_error)?;
        Ok(gone.iter().map(|p| patch_info(p, api::PatchState::RolledBack)).collect())
    }

    fn policy_apply(&self, yaml: &str, source: &str, who: &str) -> Result<api::PolicyInfo, ApiError> {
        let a =
            agent::get().ok_or_else(|| ApiError::new(ErrorKind::FailedPrecondition, "the agent is not initialized"))?;
        let policy =
            repair_model::policy::parse(yaml, source).map_err(|e| ApiError::new(ErrorKind::InvalidArgument, e))?;
        policy
            .check_capture(a.fault_mode == FaultMode::Jvmti)
            .map_err(|e| ApiError::new(ErrorKind::FailedPrecondition, e))?;
        a.healer.replace(policy, who.to_string());
        Ok(policy_info(a.healer.state().as_ref()))
    }

    fn policy_show(&self) -> api::PolicyInfo {
        policy_info(agent::get().and_then(|a| a.healer.state()).as_ref())
    }

    fn history(&self) -> (Vec<repair_model::journal::Record>, String) {
        agent::get().map(|a| (a.audit.history(), a.audit.dir().display().to_string())).unwrap_or_default()
    }

    fn events(&self) -> Vec<api::EventInfo> {
        agent::get().map(|a| a.events.list().iter().map(event_info).collect()).unwrap_or_default()
    }

    fn subscribe_events(&self) -> broadcast::Receiver<api::EventInfo> {
        let (tx, rx) = broadcast::channel(1024);
        if let (Some(a), Ok(runtime)) = (agent::get(), tokio::runtime::Handle::try_current()) {
            let mut inner = a.events.subscribe();
            runtime.spawn(async move {
                loop {
                    match inner.recv().await {
                        Ok(e) => {
                            if tx.send(event_info(&e)).is_err() {
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
}

fn event_info(e: &events::Event) -> api::EventInfo {
    api::EventInfo {
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

fn policy_info(state: Option<&healing::PolicyState>) -> api::PolicyInfo {
    let Some(s) = state else { return api::PolicyInfo::default() };
    let p = &s.policy;
    api::PolicyInfo {
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
                api::RuleInfo {
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
                                serde_yaml::to_string(&s.action).unwrap_or_default().trim().replace('\n', " ")
                            )
                        })
                        .collect(),
                    fired: st.fired,
                    applied: st.applied,
                    validated: st.validated,
                    rolled_back: st.rolled_back,
                    held: st.held,
                }
            })
            .collect(),
    }
}
