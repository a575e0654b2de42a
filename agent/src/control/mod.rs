//! The control plane: a tonic gRPC server on the agent's own threads (never a JVM thread),
//! with server reflection, on a Unix socket only the JVM's user can open, or on TCP with a token.
//! Its threads are not attached to the JVM: a request that needs the JVM attaches for its call.

mod service;

use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use repair_model::endpoint::Endpoint;
use tokio::sync::oneshot;

use crate::api::AgentApi;

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

/// Binds the endpoint and serves `api` on a runtime of its own. Errors (a socket taken by a live
/// agent, a directory others can enter, a port in use) come back before anything is served.
pub fn start(api: Arc<dyn AgentApi>, config: ControlConfig) -> Result<ControlServer, ControlError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(4)
        .thread_name("repair-control")
        .enable_io()
        .enable_time()
        .build()
        .map_err(|e| ControlError(format!("control plane: cannot start its threads: {e}")))?;
    let (stop, stopped) = oneshot::channel::<()>();
    let service = service::AgentService::new(api);
    match &config.endpoint {
        Endpoint::Unix(path) => {
            prepare_socket(path)?;
            let listener = runtime
                .block_on(async { tokio::net::UnixListener::bind(path) })
                .map_err(|e| ControlError(format!("control socket {}: {e}", path.display())))?;
            let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
            let incoming = tokio_stream::wrappers::UnixListenerStream::new(listener);
            runtime.spawn(service::serve(service, None, incoming, stopped));
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
            runtime.spawn(service::serve(service, Some(token), incoming, stopped));
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
