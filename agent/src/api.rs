//! What the control plane asks of the agent. The gRPC server (`control`) calls these methods on
//! its own threads (attached to the JVM as daemons), never on a JVM thread; they may block.

use std::collections::HashMap;

use tokio::sync::broadcast;

/// The agent as the control plane sees it.
pub trait AgentApi: Send + Sync + 'static {
    fn status(&self) -> AgentStatus;
    /// Loaded classes whose dotted name matches `glob` (`*`, `?`).
    fn classes(&self, glob: &str) -> Result<Vec<LoadedClass>, ApiError>;
    /// The current class-file bytes of a loaded class (dotted or internal name).
    fn class_bytes(&self, class: &str) -> Result<Vec<u8>, ApiError>;
    /// Faults seen, most recent first, and how many sites were dropped for space.
    fn faults(&self) -> (Vec<Fault>, u64);
    /// New faults and updated counts as they happen.
    fn subscribe_faults(&self) -> broadcast::Receiver<Fault>;
    /// Validates, transforms and applies a patch; on any error nothing changes in the JVM.
    fn apply(&self, request: ApplyRequest) -> Result<PatchInfo, ApiError>;
    /// Active patches, in the order applied.
    fn patches(&self) -> Vec<PatchInfo>;
    /// Rolls back one patch or all for `who`; returns what was rolled back.
    /// `peer`: the client as the transport vouches for it, for the journal.
    fn rollback(&self, target: RollbackTarget, who: &str, peer: &str) -> Result<Vec<PatchInfo>, ApiError>;
    /// Replaces the self-healing policy; one that does not parse changes nothing.
    fn policy_apply(&self, yaml: &str, source: &str, who: &str) -> Result<PolicyInfo, ApiError>;
    /// The policy in force (`loaded: false` when none) and what its rules did.
    fn policy_show(&self) -> PolicyInfo;
    /// The journal's records, oldest first, and the state dir it lives in.
    fn history(&self) -> (Vec<repair_model::journal::Record>, String);
    /// Recent events, oldest first.
    fn events(&self) -> Vec<EventInfo>;
    /// Events as they happen.
    fn subscribe_events(&self) -> broadcast::Receiver<EventInfo>;
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PolicyInfo {
    pub loaded: bool,
    pub source: String,
    /// `enforce` or `dry-run`.
    pub mode: String,
    pub yaml: String,
    pub loaded_at_ms: u64,
    pub loaded_by: String,
    pub rules: Vec<RuleInfo>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuleInfo {
    pub name: String,
    /// The fault pattern, in words.
    pub when: String,
    /// Summaries of its actions, in escalation order.
    pub actions: Vec<String>,
    pub fired: u64,
    pub applied: u64,
    pub validated: u64,
    pub rolled_back: u64,
    pub held: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventInfo {
    pub seq: u64,
    pub at_ms: u64,
    /// Microseconds since the agent loaded.
    pub at_us: u64,
    pub kind: String,
    pub rule: String,
    pub patch: String,
    pub site: String,
    pub reason: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AgentStatus {
    pub pid: i64,
    pub jvm: String,
    pub agent_version: String,
    pub load_mode: LoadMode,
    pub fault_capture: FaultCapture,
    pub capabilities: Vec<String>,
    /// Requested but refused, each with the reason (e.g. the JVMTI error).
    pub missing_capabilities: Vec<String>,
    pub faults_seen: u64,
    pub patches_active: u64,
    pub classes_loaded: u64,
    pub uptime_ms: u64,
    pub endpoint: String,
    pub fault_capture_detail: String,
    pub classes_skipped: u64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LoadMode {
    /// `-agentpath` at JVM start.
    #[default]
    OnLoad,
    /// Loaded into a running JVM.
    OnAttach,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum FaultCapture {
    /// JVMTI `Exception` events (costly; explicit choice, load time only).
    JvmtiExceptionEvents,
    /// Exception-exit probes injected into application classes.
    #[default]
    BytecodeProbes,
    Off,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadedClass {
    /// Dotted name; arrays and primitives are not listed.
    pub name: String,
    /// The defining loader's class name, or `bootstrap`.
    pub loader: String,
    pub modifiable: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Frame {
    /// Dotted class name.
    pub class: String,
    pub method: String,
    pub descriptor: String,
    /// -1 for a native method.
    pub bci: i64,
    pub line: Option<i32>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fault {
    pub id: u64,
    pub exception: String,
    pub message: Option<String>,
    pub thread: String,
    pub site: Frame,
    /// Innermost first, bounded.
    pub stack: Vec<Frame>,
    pub count: u64,
    pub first_seen_ms: u64,
    pub last_seen_ms: u64,
    /// `None`: the fault capture cannot tell.
    pub caught: Option<bool>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApplyRequest {
    pub spec_yaml: String,
    /// The spec's file name, for error messages.
    pub source: String,
    /// Files the spec names (e.g. a swap's patch class), by the name the spec uses.
    pub attachments: HashMap<String, Vec<u8>>,
    /// `operator:<name>` or `rule:<name>`.
    pub who: String,
    /// The client as the transport vouches for it (`uid 1000, pid 4242`), for the journal.
    pub peer: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PatchInfo {
    pub id: String,
    /// Dotted names of the classes the patch touches.
    pub classes: Vec<String>,
    pub method: String,
    /// Human summary of the action.
    pub action: String,
    pub applied_at_ms: u64,
    pub who: String,
    pub state: PatchState,
    /// Times a guard of this patch took its fallback.
    pub fallbacks: u64,
    pub durable: bool,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum PatchState {
    #[default]
    Active,
    RolledBack,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RollbackTarget {
    One(String),
    All,
}

/// An error for the caller: what kind (maps to a gRPC status) and one clear message that names
/// the input and the cause.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub kind: ErrorKind,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    InvalidArgument,
    NotFound,
    AlreadyExists,
    FailedPrecondition,
    Internal,
}

impl ApiError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self { kind, message: message.into() }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ApiError {}
