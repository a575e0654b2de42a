//! The gRPC client of an agent: found by the JVM's pid (its socket path) or by endpoint.

use std::path::PathBuf;

use hyper_util::rt::TokioIo;
use tonic::metadata::MetadataValue;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint as TonicEndpoint, Identity};

use crate::endpoint::{find_socket, socket_path, token_path, Endpoint};
use crate::proto::{self, agent_client::AgentClient};

/// Which agent to talk to.
#[derive(Debug, Clone)]
pub enum Target {
    Pid(u32),
    Endpoint(Endpoint),
}

/// How to prove who we are and whom we talk to, over TCP.
#[derive(Debug, Clone, Default)]
pub struct Credentials {
    /// The bearer token (from a file or the environment; never a command-line argument).
    pub token: Option<String>,
    /// PEM file of the CA that signed the agent's certificate (TLS).
    pub tls_ca: Option<PathBuf>,
    /// PEM files of our certificate and key, for an agent that requires client certificates.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// The name the agent's certificate must carry, when not the endpoint's host.
    pub tls_domain: Option<String>,
}

impl Credentials {
    /// The token from `file` (trimmed), or else from `$REPAIR_TOKEN`.
    pub fn token_from(file: Option<&std::path::Path>) -> Result<Option<String>, String> {
        if let Some(f) = file {
            let t = std::fs::read_to_string(f).map_err(|e| format!("token file {}: {e}", f.display()))?;
            let t = t.trim();
            if t.is_empty() {
                return Err(format!("token file {}: empty", f.display()));
            }
            return Ok(Some(t.to_string()));
        }
        Ok(std::env::var("REPAIR_TOKEN").ok().map(|t| t.trim().to_string()).filter(|t| !t.is_empty()))
    }
}

/// The channel to an agent, with the token its TCP calls carry.
pub type Service = tonic::service::interceptor::InterceptedService<Channel, Auth>;

/// A connected client: the generated one (what it derefs to) and, for the calls it reads off the
/// wire itself ([`Client::observe_wire`]), the same channel and token.
#[derive(Clone)]
pub struct Client {
    agent: AgentClient<Service>,
    service: Service,
}

impl std::ops::Deref for Client {
    type Target = AgentClient<Service>;
    fn deref(&self) -> &Self::Target {
        &self.agent
    }
}

impl std::ops::DerefMut for Client {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.agent
    }
}

impl Client {
    /// The Observe call with each streamed message's bytes, undecoded: `repairctl watch` reads
    /// the watched calls in them in place (cli::wire) instead of decoding each into a message.
    pub async fn observe_wire(
        &mut self,
        request: proto::ObserveRequest,
    ) -> Result<tonic::Response<tonic::codec::Streaming<prost::bytes::Bytes>>, tonic::Status> {
        let mut grpc = tonic::client::Grpc::new(self.service.clone());
        grpc.ready().await.map_err(|e| tonic::Status::unknown(format!("Service was not ready: {e}")))?;
        let mut request = tonic::Request::new(request);
        request.extensions_mut().insert(tonic::GrpcMethod::new("repair.v1.Agent", "Observe"));
        let path = tonic::codegen::http::uri::PathAndQuery::from_static("/repair.v1.Agent/Observe");
        grpc.server_streaming(request, path, RawCodec).await
    }
}

/// Encodes a request as prost does; decodes a response to its bytes.
struct RawCodec;

impl tonic::codec::Codec for RawCodec {
    type Encode = proto::ObserveRequest;
    type Decode = prost::bytes::Bytes;
    type Encoder = tonic_prost::ProstEncoder<proto::ObserveRequest>;
    type Decoder = RawDecoder;

    fn encoder(&mut self) -> Self::Encoder {
        tonic_prost::ProstEncoder::new(tonic::codec::BufferSettings::default())
    }

    fn decoder(&mut self) -> Self::Decoder {
        RawDecoder
    }
}

/// A message's bytes, as they came (split off tonic's buffer, not copied).
struct RawDecoder;

impl tonic::codec::Decoder for RawDecoder {
    type Item = prost::bytes::Bytes;
    type Error = tonic::Status;

    fn decode(&mut self, src: &mut tonic::codec::DecodeBuf<'_>) -> Result<Option<prost::bytes::Bytes>, tonic::Status> {
        use prost::bytes::Buf;
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
}

#[derive(Clone)]
pub struct Auth(Option<MetadataValue<tonic::metadata::Ascii>>);

impl tonic::service::Interceptor for Auth {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(v) = &self.0 {
            req.metadata_mut().insert("authorization", v.clone());
        }
        Ok(req)
    }
}

fn read_pem(what: &str, path: &std::path::Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("{what} {}: {e}", path.display()))
}

fn tls_config(addr: &str, c: &Credentials) -> Result<ClientTlsConfig, String> {
    let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h).trim_start_matches('[').trim_end_matches(']');
    let mut tls = ClientTlsConfig::new().domain_name(c.tls_domain.clone().unwrap_or_else(|| host.to_string()));
    match &c.tls_ca {
        Some(ca) => tls = tls.ca_certificate(Certificate::from_pem(read_pem("--tls-ca", ca)?)),
        None => return Err(format!("tls:{addr}: give the CA of the agent's certificate with --tls-ca FILE")),
    }
    match (&c.tls_cert, &c.tls_key) {
        (Some(cert), Some(key)) => {
            tls = tls.identity(Identity::from_pem(read_pem("--tls-cert", cert)?, read_pem("--tls-key", key)?))
        }
        (None, None) => {}
        _ => return Err("a client certificate needs both --tls-cert and --tls-key".to_string()),
    }
    Ok(tls)
}

/// Connects to the agent; the error says which endpoint and what to try.
pub async fn connect(target: &Target, credentials: &Credentials) -> Result<Client, String> {
    let (endpoint, pid) = match target {
        Target::Pid(pid) => (Endpoint::Unix(socket_path(*pid)), Some(*pid)),
        Target::Endpoint(e) => (e.clone(), None),
    };
    let endpoint = match pid {
        Some(pid) => Endpoint::Unix(agent_socket(pid).await?),
        None => endpoint,
    };
    let channel = match &endpoint {
        Endpoint::Unix(path) => {
            if !path.exists() {
                return Err(format!("no agent socket at {}", path.display()));
            }
            let path = path.clone();
            TonicEndpoint::from_static("http://agent.local")
                .connect_with_connector(tower::service_fn(move |_| {
                    let path = path.clone();
                    async move { tokio::net::UnixStream::connect(path).await.map(TokioIo::new) }
                }))
                .await
                .map_err(|e| format!("{endpoint}: cannot connect: {e} (a stale socket from a JVM that died?)"))?
        }
        Endpoint::Tcp(addr) => TonicEndpoint::from_shared(format!("http://{addr}"))
            .map_err(|e| format!("{endpoint}: {e}"))?
            .connect()
            .await
            .map_err(|e| format!("{endpoint}: cannot connect: {e}"))?,
        Endpoint::Tls(addr) => TonicEndpoint::from_shared(format!("https://{addr}"))
            .map_err(|e| format!("{endpoint}: {e}"))?
            .tls_config(tls_config(addr, credentials)?)
            .map_err(|e| format!("{endpoint}: {e}"))?
            .connect()
            .await
            .map_err(|e| format!("{endpoint}: cannot connect: {}", error_chain(&e)))?,
    };
    let token = credentials.token.clone().or_else(|| {
        pid.and_then(token_path).and_then(|p| std::fs::read_to_string(p).ok()).map(|t| t.trim().to_string())
    });
    let auth = match token {
        Some(t) => Some(
            format!("Bearer {t}").parse().map_err(|_| "the token has characters a header cannot carry".to_string())?,
        ),
        None => None,
    };
    let service = Service::new(channel, Auth(auth));
    Ok(Client { agent: AgentClient::new(service.clone()), service })
}

/// The socket of JVM `pid`'s agent, or one line that says why there is none and what to do:
/// suggests `repairctl attach` only for a JVM without the agent, and waits a little for the
/// socket of an agent that is loaded (just attached) but not listening yet.
pub async fn agent_socket(pid: u32) -> Result<PathBuf, String> {
    let proc = PathBuf::from(format!("/proc/{pid}"));
    if !proc.exists() {
        return Err(format!("no process {pid}"));
    }
    if let Some(p) = find_socket(pid) {
        return Ok(p);
    }
    let name = crate::cli::ps::comm(pid);
    let maps = std::fs::read_to_string(proc.join("maps")).map_err(|e| {
        format!("process {pid} ({name}): no agent socket found, and its memory map cannot be read to tell why: {e}")
    })?;
    if !crate::attach::maps_hold_libjvm(&maps) {
        return Err(format!("process {pid} ({name}) is not a Java VM (`repairctl ps` lists the JVMs)"));
    }
    if !crate::cli::ps::maps_hold_agent(&maps) {
        return Err(format!("no repair agent in JVM {pid} ({name}): load it with `repairctl attach {pid}`"));
    }
    for _ in 0..30 {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        if let Some(p) = find_socket(pid) {
            return Ok(p);
        }
    }
    Err(format!(
        "the agent is loaded in JVM {pid} ({name}) but no socket of it was found (looked for {}): \
         if it listens on TCP, give --endpoint",
        socket_path(pid).display()
    ))
}

/// An error with its causes: a TLS failure's reason is several sources deep.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(c) = source {
        s.push_str(": ");
        s.push_str(&c.to_string());
        source = c.source();
    }
    s
}

/// One clear line for a failed call: the status message, with the code when it adds something.
pub fn describe(status: &tonic::Status) -> String {
    match status.code() {
        tonic::Code::Unavailable => {
            let cause = std::error::Error::source(status).map(|s| format!(" ({})", error_chain(s))).unwrap_or_default();
            format!("the agent is unreachable: {}{cause}", status.message())
        }
        tonic::Code::Unauthenticated => format!("refused: {}", status.message()),
        _ => status.message().to_string(),
    }
}
