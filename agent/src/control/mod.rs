//! The control plane: a tonic gRPC server on the agent's own threads (never a JVM thread),
//! with server reflection, on a Unix socket only the JVM's user can open, or on TCP with a token.
//! Its threads are not attached to the JVM: a request that needs the JVM attaches for its call.

mod grpc;

use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use repair_model::endpoint::Endpoint;
use tokio::sync::oneshot;

use repair_model::proto;
use tokio::sync::broadcast;
pub use tonic::Status;

/// An operator's request as the control plane received it: the name the client gives
/// (`operator:<name>`), and the client as the transport vouches for it (`uid 1000, pid 4242`,
/// `from 127.0.0.1:5555`; empty when it cannot).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
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

/// What the control plane asks of the agent, in the contract's own messages: the agent maps its
/// domain onto them once (`lifecycle::operations`), and the server's tests serve a fake without
/// a JVM. Called on the control plane's blocking threads, never on a JVM thread; may block.
/// Errors are gRPC statuses with one clear message naming the input and the cause.
pub trait Operations: Send + Sync + 'static {
    fn status(&self) -> proto::StatusReply;
    /// Loaded classes whose dotted name matches `glob` (`*`, `?`; empty: all).
    fn classes(&self, glob: &str) -> Result<Vec<proto::LoadedClass>, Status>;
    /// The current class-file bytes of a loaded class (dotted or internal name).
    fn class_bytes(&self, class: &str) -> Result<Vec<u8>, Status>;
    /// Faults seen, most recent first, and how many sites were dropped for space.
    fn faults(&self) -> proto::FaultsReply;
    /// New faults and updated counts as they happen.
    fn subscribe_faults(&self) -> broadcast::Receiver<proto::Fault>;
    /// Validates, transforms and applies a patch; on any error nothing changes in the JVM.
    fn apply(&self, request: proto::ApplyRequest, by: Operator) -> Result<proto::Patch, Status>;
    /// Active patches, in the order applied.
    fn patches(&self) -> Vec<proto::Patch>;
    /// Rolls back one patch (`Some(id)`) or all; returns what was rolled back.
    fn rollback(&self, id: Option<&str>, by: Operator) -> Result<Vec<proto::Patch>, Status>;
    /// Replaces the self-healing policy; one that does not parse changes nothing.
    fn policy_apply(&self, yaml: &str, source: &str, by: Operator) -> Result<proto::PolicyReply, Status>;
    /// The policy in force (`loaded: false` when none) and what its rules did.
    fn policy_show(&self) -> proto::PolicyReply;
    /// The journal's records, oldest first, and the state dir it lives in.
    fn history(&self) -> proto::HistoryReply;
    /// Recent events, oldest first.
    fn events(&self) -> Vec<proto::Event>;
    /// Events as they happen.
    fn subscribe_events(&self) -> broadcast::Receiver<proto::Event>;
}

/// Where and how to serve.
#[derive(Debug, Clone)]
pub struct ControlConfig {
    pub endpoint: Endpoint,
    /// Required on TCP; generated (and written beside the socket, mode 0600) when absent.
    pub token: Option<String>,
    /// The JVM's pid, for the token file's name.
    pub pid: u32,
}

#[derive(Debug)]
pub struct ControlError(pub String);

impl std::fmt::Display for ControlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ControlError {}

/// A running server; stopped by [`ControlServer::shutdown`] or when dropped.
pub struct ControlServer {
    runtime: Option<tokio::runtime::Runtime>,
    stop: Option<oneshot::Sender<()>>,
    socket: Option<PathBuf>,
    endpoint: String,
}

impl ControlServer {
    /// The endpoint as a client names it (`unix:/…/1234.sock`, `tcp:127.0.0.1:7000`).
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    pub fn shutdown(mut self) {
        self.stop_now();
    }

    fn stop_now(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_timeout(Duration::from_secs(1));
        }
        if let Some(s) = self.socket.take() {
            let _ = std::fs::remove_file(s);
        }
    }
}

impl Drop for ControlServer {
    fn drop(&mut self) {
        self.stop_now();
    }
}

/// Binds the endpoint and serves `operations` on a runtime of its own. Errors (a socket taken by a live
/// agent, a directory others can enter, a port in use) come back before anything is served.
pub fn start(operations: Arc<dyn Operations>, config: ControlConfig) -> Result<ControlServer, ControlError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(4)
        .thread_name("repair-control")
        .enable_io()
        .enable_time()
        .build()
        .map_err(|e| ControlError(format!("control plane: cannot start its threads: {e}")))?;
    let (stop, stopped) = oneshot::channel::<()>();
    let service = grpc::AgentService::new(operations);
    match &config.endpoint {
        Endpoint::Unix(path) => {
            prepare_socket(path)?;
            let listener = runtime
                .block_on(async { tokio::net::UnixListener::bind(path) })
                .map_err(|e| ControlError(format!("control socket {}: {e}", path.display())))?;
            let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
            let incoming = tokio_stream::wrappers::UnixListenerStream::new(listener);
            runtime.spawn(grpc::serve(service, None, incoming, stopped));
            Ok(ControlServer {
                runtime: Some(runtime),
                stop: Some(stop),
                socket: Some(path.clone()),
                endpoint: config.endpoint.to_string(),
            })
        }
        Endpoint::Tcp(addr) => {
            let token = match &config.token {
                Some(t) if !t.is_empty() => t.clone(),
                _ => write_token(config.pid)?,
            };
            let listener = runtime
                .block_on(tokio::net::TcpListener::bind(addr.as_str()))
                .map_err(|e| ControlError(format!("control endpoint tcp:{addr}: {e}")))?;
            let local = listener.local_addr().map(|a| a.to_string()).unwrap_or_else(|_| addr.clone());
            let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
            runtime.spawn(grpc::serve(service, Some(token), incoming, stopped));
            Ok(ControlServer {
                runtime: Some(runtime),
                stop: Some(stop),
                socket: None,
                endpoint: format!("tcp:{local}"),
            })
        }
    }
}

/// Makes the socket's directory private (created 0700; an existing one must be ours and closed
/// to others) and clears a stale socket left by a JVM that died. A socket a live agent answers on
/// is an error: two agents cannot share one endpoint.
fn prepare_socket(path: &Path) -> Result<(), ControlError> {
    let dir = path.parent().ok_or_else(|| ControlError(format!("control socket {}: no directory", path.display())))?;
    match std::fs::metadata(dir) {
        Err(_) => {
            std::fs::create_dir_all(dir)
                .map_err(|e| ControlError(format!("control socket directory {}: {e}", dir.display())))?;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
                .map_err(|e| ControlError(format!("control socket directory {}: {e}", dir.display())))?;
        }
        Ok(m) => {
            let me = std::fs::metadata("/proc/self").map(|s| s.uid()).unwrap_or(m.uid());
            if m.uid() != me || m.mode() & 0o077 != 0 {
                return Err(ControlError(format!(
                    "control socket directory {} must belong to uid {me} with mode 0700 (has uid {}, mode {:o})",
                    dir.display(),
                    m.uid(),
                    m.mode() & 0o777
                )));
            }
        }
    }
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(ControlError(format!(
                "control socket {} is in use by a live agent: one agent per JVM (was the agent loaded twice?)",
                path.display()
            )));
        }
        crate::log_warn!("removing stale control socket {} (its JVM is gone)", path.display());
        std::fs::remove_file(path)
            .map_err(|e| ControlError(format!("stale control socket {}: {e}", path.display())))?;
    }
    Ok(())
}

/// Generates a token and writes it, readable by the owner only, to the pid's token file.
fn write_token(pid: u32) -> Result<String, ControlError> {
    use std::io::{Read, Write};
    let mut raw = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut raw))
        .map_err(|e| ControlError(format!("control token: {e}")))?;
    let token: String = raw.iter().map(|b| format!("{b:02x}")).collect();
    let path = repair_model::endpoint::token_path(pid);
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
        let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&path)
        .map_err(|e| ControlError(format!("control token file {}: {e}", path.display())))?;
    f.write_all(token.as_bytes()).map_err(|e| ControlError(format!("control token file {}: {e}", path.display())))?;
    Ok(token)
}

#[cfg(test)]
mod tests;
