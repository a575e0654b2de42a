//! The gRPC client of an agent: found by the JVM's pid (its socket path) or by endpoint.

use std::path::PathBuf;

use hyper_util::rt::TokioIo;
use tonic::metadata::MetadataValue;
use tonic::transport::{Channel, Endpoint as TonicEndpoint};

use crate::endpoint::{socket_path, token_path, Endpoint};
use crate::proto::agent_client::AgentClient;

/// Which agent to talk to.
#[derive(Debug, Clone)]
pub enum Target {
    Pid(u32),
    Endpoint(Endpoint),
}

/// A connected client; TCP calls carry the token.
pub type Client = AgentClient<tonic::service::interceptor::InterceptedService<Channel, Auth>>;

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

/// Connects to the agent; the error says which endpoint and what to try.
pub async fn connect(target: &Target, token: Option<String>) -> Result<Client, String> {
    let (endpoint, pid) = match target {
        Target::Pid(pid) => (Endpoint::Unix(socket_path(*pid)), Some(*pid)),
        Target::Endpoint(e) => (e.clone(), None),
    };
    let channel = match &endpoint {
        Endpoint::Unix(path) => {
            if !path.exists() {
                return Err(match pid {
                    Some(pid) if !PathBuf::from(format!("/proc/{pid}")).exists() => format!("no process {pid}"),
                    Some(pid) => format!(
                        "no repair agent in JVM {pid}: {} not found (is the agent loaded? try `repairctl attach {pid}`)",
                        path.display()
                    ),
                    None => format!("no agent socket at {}", path.display()),
                });
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
    };
    let token =
        token.or_else(|| pid.and_then(|p| std::fs::read_to_string(token_path(p)).ok()).map(|t| t.trim().to_string()));
    let auth = match token {
        Some(t) => Some(
            format!("Bearer {t}").parse().map_err(|_| "the token has characters a header cannot carry".to_string())?,
        ),
        None => None,
    };
    Ok(AgentClient::with_interceptor(channel, Auth(auth)))
}

/// One clear line for a failed call: the status message, with the code when it adds something.
pub fn describe(status: &tonic::Status) -> String {
    match status.code() {
        tonic::Code::Unavailable => format!("the agent is unreachable: {}", status.message()),
        tonic::Code::Unauthenticated => format!("refused: {}", status.message()),
        _ => status.message().to_string(),
    }
}
