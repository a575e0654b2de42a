//! The control plane: a tonic gRPC server on the agent's own threads (never a JVM thread),
//! with server reflection, on a Unix socket only the JVM's user can open, or on TCP with a token.
//! Its threads are not attached to the JVM: a request that needs the JVM attaches for its call.

mod grpc;

use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
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

/// An observation's reports, and what to run once its stream is over. Dropped with `finish` not
/// yet run (the client went away, even while the observation started), it runs it.
pub struct ObservationStream {
    reports: Box<dyn Reports>,
    /// Taken by the stream when it runs it at the observation's end.
    finish: Option<Finish>,
}

/// What runs once an observation's stream is over (it may block: a rollback).
pub type Finish = Box<dyn FnOnce() + Send>;

impl ObservationStream {
    pub fn new(reports: Box<dyn Reports>, finish: Finish) -> ObservationStream {
        ObservationStream { reports, finish: Some(finish) }
    }
}

impl Drop for ObservationStream {
    /// `finish` may block (a rollback): on the runtime's blocking threads when there is a runtime
    /// (a drop may happen on one of its workers), else here.
    fn drop(&mut self) {
        let Some(finish) = self.finish.take() else { return };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn_blocking(finish);
            }
            Err(_) => finish(),
        }
    }
}

/// Where an observation's stream takes its reports from. It is polled, never woken: a wakeup per
/// report would cost the thread that queued it a system call.
pub trait Reports: Send + 'static {
    fn next(&mut self) -> Next;
}

/// What a poll of an observation's reports found.
pub enum Next {
    /// A `proto::Observed` message in protobuf's wire form (the stream sends it as it is).
    Report(Vec<u8>),
    /// Nothing to send now. `busy`: items were queued (and none was reported: a condition or a
    /// quota left them out), so more are likely soon.
    Wait { busy: bool },
    /// The observation is over and everything before its end was sent.
    End,
}

/// What the control plane asks of the agent, in the contract's own messages: the agent maps its
/// domain onto them once (`lifecycle::operations`), and the server's tests serve a fake without
/// a JVM. Called on the control plane's blocking threads, never on a JVM thread; may block.
/// Errors are gRPC statuses with one clear message naming the input and the cause.
pub trait Operations: Send + Sync + 'static {
    fn status(&self) -> proto::StatusReply;
    /// Loaded classes whose dotted name matches `glob` (`*`, `?`; empty: all).
    fn classes(&self, glob: &str) -> Result<Vec<proto::LoadedClass>, Status>;
    /// The current class-file bytes of a loaded class (dotted or internal name); with
    /// `original`, its bytes as loaded, before any patch.
    fn class_bytes(&self, class: &str, original: bool) -> Result<Vec<u8>, Status>;
    /// The bytecode the methods of a name run now, as the JVM reports it.
    fn running_code(&self, class: &str, method: &str) -> Result<Vec<proto::MethodCode>, Status>;
    /// Faults seen, most recent first, and how many sites were dropped for space.
    fn faults(&self) -> proto::FaultsReply;
    /// New faults and updated counts as they happen.
    fn subscribe_faults(&self) -> broadcast::Receiver<proto::Fault>;
    /// Validates, transforms and applies a patch; on any error nothing changes in the JVM.
    fn apply(&self, request: proto::ApplyRequest, by: Operator) -> Result<proto::Patch, Status>;
    /// Compares a build with the loaded classes and redefines the changed ones as one patch, all
    /// or none (a dry run only plans); on any error nothing changes in the JVM.
    fn deploy(&self, request: proto::DeployRequest, by: Operator) -> Result<proto::DeployReply, Status>;
    /// Starts observing a method: the reports, and what to run when the stream ends (the
    /// client went away, or the observation ended): the method's probes are rolled back then.
    fn observe(&self, request: proto::ObserveRequest, by: Operator) -> Result<ObservationStream, Status>;
    /// The observations in progress.
    fn observations(&self) -> Vec<proto::ObservationInfo>;
    /// Ends an observation; its stream says so and ends.
    fn stop_observation(&self, id: u64, by: Operator) -> Result<Vec<proto::ObservationInfo>, Status>;
    /// Active patches, in the order applied.
    fn patches(&self) -> Vec<proto::Patch>;
    /// Rolls back one patch (`Some(id)`) or all; returns what was rolled back.
    fn rollback(&self, id: Option<&str>, by: Operator) -> Result<Vec<proto::Patch>, Status>;
    /// Replaces the self-healing policy; one that does not parse changes nothing.
    fn policy_apply(&self, yaml: &str, source: &str, by: Operator) -> Result<proto::PolicyReply, Status>;
    /// The policy in force (`loaded: false` when none) and what its rules did.
    fn policy_show(&self) -> proto::PolicyReply;
    /// The journal's records, oldest first, and the state dir it lives in.
    /// A page of the journal: records after `after_seq`, at most `limit`.
    fn history(&self, after_seq: u64, limit: usize) -> proto::HistoryReply;
    /// Recent events, oldest first.
    fn events(&self) -> Vec<proto::Event>;
    /// Events as they happen.
    fn subscribe_events(&self) -> broadcast::Receiver<proto::Event>;
}

/// Where and how to serve.
#[derive(Debug, Clone)]
pub struct ControlConfig {
    pub endpoint: Endpoint,
    /// The token TCP calls must carry.
    pub token: TokenSource,
    /// TCP over TLS; required for an address other than loopback.
    pub tls: Option<crate::config::TlsFiles>,
    /// The JVM's pid, for the token file's name.
    pub pid: u32,
}

/// Where the TCP token comes from: never the agent's options, which every local user can read.
#[derive(Debug, Clone)]
pub enum TokenSource {
    /// From `$REPAIR_TOKEN`.
    Given(String),
    /// From a file only the JVM's user can read.
    File(PathBuf),
    /// Generated, and written (0600) to `<pid>.token` beside where the socket would be, for
    /// `repairctl --pid` to find.
    Generate,
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
    /// The socket or token file, removed at shutdown.
    files: Vec<PathBuf>,
    endpoint: String,
    token_file: Option<PathBuf>,
}

impl ControlServer {
    /// The endpoint as a client names it (`unix:/…/1234.sock`, `tcp:127.0.0.1:7000`,
    /// `tls:0.0.0.0:7443`).
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The generated token's file, when the token was generated.
    pub fn token_file(&self) -> Option<&Path> {
        self.token_file.as_deref()
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
        for f in self.files.drain(..) {
            let _ = std::fs::remove_file(f);
        }
    }
}

impl Drop for ControlServer {
    fn drop(&mut self) {
        self.stop_now();
    }
}

/// Binds the endpoint and serves `operations` on a runtime of its own. Errors (a socket taken by a
/// live agent, a directory others can enter, a port in use, plaintext beyond loopback, a token
/// file others can read, TLS files that do not load) come back before anything is served.
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
            let path = prepare_socket(path)?;
            let listener = runtime
                .block_on(async { tokio::net::UnixListener::bind(&path) })
                .map_err(|e| ControlError(format!("control socket {}: {e}", path.display())))?;
            let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600));
            let incoming = tokio_stream::wrappers::UnixListenerStream::new(listener);
            runtime.spawn(grpc::serve(service, None, None, incoming, stopped));
            Ok(ControlServer {
                runtime: Some(runtime),
                stop: Some(stop),
                endpoint: Endpoint::Unix(path.clone()).to_string(),
                files: vec![path],
                token_file: None,
            })
        }
        Endpoint::Tcp(addr) | Endpoint::Tls(addr) => {
            let loopback = is_loopback(addr)?;
            let tls = match &config.tls {
                Some(files) => Some(tls_config(files)?),
                None if loopback => None,
                None => {
                    return Err(ControlError(format!(
                        "control=tcp:{addr} is reachable from other hosts: it needs TLS (tls_cert=PEM,tls_key=PEM), \
                         or bind 127.0.0.1"
                    )))
                }
            };
            let (token, token_file) = match &config.token {
                TokenSource::Given(t) => (t.clone(), None),
                TokenSource::File(f) => (read_token_file(f)?, None),
                TokenSource::Generate => {
                    let (t, f) = write_token(config.pid)?;
                    (t, Some(f))
                }
            };
            let listener = runtime
                .block_on(tokio::net::TcpListener::bind(addr.as_str()))
                .map_err(|e| ControlError(format!("control endpoint tcp:{addr}: {e}")))?;
            let local = listener.local_addr().map(|a| a.to_string()).unwrap_or_else(|_| addr.clone());
            let endpoint =
                if tls.is_some() { Endpoint::Tls(local.clone()) } else { Endpoint::Tcp(local.clone()) }.to_string();
            if !loopback {
                let clients = match config.tls.as_ref().and_then(|t| t.client_ca.as_ref()) {
                    Some(ca) => format!("clients need a certificate signed by {}", ca.display()),
                    None => "any client with the token (no client certificate required)".to_string(),
                };
                crate::log_warn!("control plane on {endpoint} is reachable from other hosts, over TLS; {clients}");
            }
            let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
            runtime.spawn(grpc::serve(service, Some(token), tls, incoming, stopped));
            Ok(ControlServer {
                runtime: Some(runtime),
                stop: Some(stop),
                endpoint,
                files: token_file.iter().cloned().collect(),
                token_file,
            })
        }
    }
}

/// Whether every address `addr` resolves to is a loopback one.
fn is_loopback(addr: &str) -> Result<bool, ControlError> {
    use std::net::ToSocketAddrs;
    let addrs: Vec<_> =
        addr.to_socket_addrs().map_err(|e| ControlError(format!("control endpoint tcp:{addr}: {e}")))?.collect();
    Ok(!addrs.is_empty() && addrs.iter().all(|a| a.ip().is_loopback()))
}

fn tls_config(files: &crate::config::TlsFiles) -> Result<tonic::transport::ServerTlsConfig, ControlError> {
    use tonic::transport::{Certificate, Identity, ServerTlsConfig};
    let read = |what: &str, p: &Path| {
        let pem = std::fs::read(p).map_err(|e| ControlError(format!("{what} {}: {e}", p.display())))?;
        if !pem.starts_with(b"-----BEGIN") && !String::from_utf8_lossy(&pem).contains("-----BEGIN") {
            return Err(ControlError(format!("{what} {}: not a PEM file", p.display())));
        }
        Ok(pem)
    };
    let mut tls = ServerTlsConfig::new()
        .identity(Identity::from_pem(read("tls_cert", &files.cert)?, read("tls_key", &files.key)?));
    if let Some(ca) = &files.client_ca {
        tls = tls.client_ca_root(Certificate::from_pem(read("tls_client_ca", ca)?));
    }
    Ok(tls)
}

/// The token in `path`, which only the JVM's user may be able to read.
fn read_token_file(path: &Path) -> Result<String, ControlError> {
    let err = |e: String| ControlError(format!("token_file {}: {e}", path.display()));
    let m = std::fs::metadata(path).map_err(|e| err(e.to_string()))?;
    if m.mode() & 0o077 != 0 {
        return Err(err(format!("readable by others (mode {:o}): chmod 600 it", m.mode() & 0o777)));
    }
    let token = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?.trim().to_string();
    if token.is_empty() {
        return Err(err("empty".to_string()));
    }
    Ok(token)
}

/// Makes the socket's directory private (created 0700; an existing one must be ours and closed
/// to others) and clears a stale socket left by a JVM that died. A socket a live agent answers on
/// is an error: two agents cannot share one endpoint. When the default directory
/// (`repair-<uid>`, a predictable name) was made by someone else, the socket goes to a fresh
/// private directory beside it instead; returns the path bound.
fn prepare_socket(path: &Path) -> Result<PathBuf, ControlError> {
    let dir = path.parent().ok_or_else(|| ControlError(format!("control socket {}: no directory", path.display())))?;
    let name = path.file_name().ok_or_else(|| ControlError(format!("control socket {}: no name", path.display())))?;
    let dir = private_dir(dir)?;
    let path = dir.join(name);
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(&path).is_ok() {
            return Err(ControlError(format!(
                "control socket {} is in use by a live agent: one agent per JVM (was the agent loaded twice?)",
                path.display()
            )));
        }
        // Routine, not a warning: a JVM killed with SIGKILL leaves its socket, and the kernel
        // hands its pid (the socket's name) to a later JVM, this one.
        crate::log_info!("removing stale control socket {} (its JVM is gone)", path.display());
        std::fs::remove_file(&path)
            .map_err(|e| ControlError(format!("stale control socket {}: {e}", path.display())))?;
    }
    Ok(path)
}

/// `dir` made private to this user (created 0700, or found so); for the default directory that
/// someone else holds, a fresh `repair-<uid>-<random>` beside it.
fn private_dir(dir: &Path) -> Result<PathBuf, ControlError> {
    use repair_model::endpoint::{current_uid, default_socket_dir, is_private_dir_of};
    let me = current_uid().unwrap_or(0);
    let made = std::fs::DirBuilder::new().mode(0o700).create(dir);
    if let Err(e) = &made {
        if e.kind() != std::io::ErrorKind::AlreadyExists {
            return Err(ControlError(format!("control socket directory {}: {e}", dir.display())));
        }
    }
    let refused = match is_private_dir_of(dir, me) {
        Ok(()) => return Ok(dir.to_path_buf()),
        Err(why) => why,
    };
    if dir != default_socket_dir() {
        return Err(ControlError(format!("control socket directory {refused}")));
    }
    for _ in 0..8 {
        let fresh = dir.with_file_name(format!("repair-{me}-{}", random_hex(8)?));
        if std::fs::DirBuilder::new().mode(0o700).create(&fresh).is_ok() {
            crate::log_warn!(
                "control socket directory {refused}: someone else made it; using {} instead (repairctl --pid finds it)",
                fresh.display()
            );
            return Ok(fresh);
        }
    }
    Err(ControlError(format!("control socket directory {refused}; no private directory could be made beside it")))
}

fn random_hex(bytes: usize) -> Result<String, ControlError> {
    use std::io::Read;
    let mut raw = vec![0u8; bytes];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut raw))
        .map_err(|e| ControlError(format!("/dev/urandom: {e}")))?;
    Ok(raw.iter().map(|b| format!("{b:02x}")).collect())
}

/// Generates a token and writes it, readable by the owner only, to `<pid>.token` in the private
/// socket directory; returns the token and the file.
fn write_token(pid: u32) -> Result<(String, PathBuf), ControlError> {
    use std::io::Write;
    let token = random_hex(16)?;
    let path = private_dir(&repair_model::endpoint::default_socket_dir())?.join(format!("{pid}.token"));
    // Left by an earlier JVM with this pid; create_new then refuses anything planted in its place.
    let _ = std::fs::remove_file(&path);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .map_err(|e| ControlError(format!("control token file {}: {e}", path.display())))?;
    f.write_all(token.as_bytes()).map_err(|e| ControlError(format!("control token file {}: {e}", path.display())))?;
    Ok((token, path))
}

#[cfg(test)]
mod tests;
