//! The gRPC service: proto messages in, `AgentApi` calls on blocking threads, proto out.

use std::pin::Pin;
use std::sync::Arc;

use repair_model::proto::{self, agent_server};
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status};

use crate::api::{self, AgentApi, ErrorKind};

pub struct AgentService {
    api: Arc<dyn AgentApi>,
}

impl AgentService {
    pub fn new(api: Arc<dyn AgentApi>) -> Self {
        Self { api }
    }

    /// Runs `f` on a blocking thread of the control runtime (attached to the JVM).
    async fn call<T: Send + 'static>(&self, f: impl FnOnce(&dyn AgentApi) -> T + Send + 'static) -> Result<T, Status> {
        let api = self.api.clone();
        tokio::task::spawn_blocking(move || f(api.as_ref()))
            .await
            .map_err(|e| Status::internal(format!("agent call failed: {e}")))
    }
}

/// Serves until `stop` fires. With a token, every call must carry `authorization: Bearer TOKEN`.
pub async fn serve<S, IO, E>(
    service: AgentService,
    token: Option<String>,
    incoming: S,
    stop: tokio::sync::oneshot::Receiver<()>,
) where
    S: Stream<Item = Result<IO, E>> + Send + 'static,
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + tonic::transport::server::Connected + Unpin + Send + 'static,
    E: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(repair_model::proto::FILE_DESCRIPTOR_SET)
        .build_v1();
    let check = move |req: Request<()>| -> Result<Request<()>, Status> {
        match &token {
            None => Ok(req),
            Some(t) => {
                let given = req.metadata().get("authorization").and_then(|v| v.to_str().ok());
                if given == Some(format!("Bearer {t}").as_str()) {
                    Ok(req)
                } else {
                    Err(Status::unauthenticated(
                        "a valid token is required on a TCP endpoint (authorization: Bearer TOKEN)",
                    ))
                }
            }
        }
    };
    let mut router = tonic::transport::Server::builder()
        .add_service(agent_server::AgentServer::with_interceptor(service, check.clone()));
    match reflection {
        Ok(r) => router = router.add_service(tonic::service::interceptor::InterceptedService::new(r, check)),
        Err(e) => crate::log_warn!("gRPC reflection unavailable: {e}"),
    }
    let result = router
        .serve_with_incoming_shutdown(incoming, async {
            let _ = stop.await;
        })
        .await;
    if let Err(e) = result {
        crate::log_error!("control plane stopped: {e}");
    }
}

fn status(e: api::ApiError) -> Status {
    match e.kind {
        ErrorKind::InvalidArgument => Status::invalid_argument(e.message),
        ErrorKind::NotFound => Status::not_found(e.message),
        ErrorKind::AlreadyExists => Status::already_exists(e.message),
        ErrorKind::FailedPrecondition => Status::failed_precondition(e.message),
        ErrorKind::Internal => Status::internal(e.message),
    }
}

fn frame(f: api::Frame) -> proto::Frame {
    proto::Frame {
        class_name: f.class,
        method: f.method,
        method_descriptor: f.descriptor,
        bci: f.bci,
        line: f.line.unwrap_or(0),
    }
}

fn fault(f: api::Fault) -> proto::Fault {
    proto::Fault {
        id: f.id,
        exception: f.exception,
        message: f.message.unwrap_or_default(),
        thread: f.thread,
        site: Some(frame(f.site)),
        stack: f.stack.into_iter().map(frame).collect(),
        count: f.count,
        first_seen_ms: f.first_seen_ms,
        last_seen_ms: f.last_seen_ms,
        caught: f.caught,
    }
}

fn patch(p: api::PatchInfo) -> proto::Patch {
    proto::Patch {
        id: p.id,
        classes: p.classes,
        method: p.method,
        action: p.action,
        applied_at_ms: p.applied_at_ms,
        who: p.who,
        state: match p.state {
            api::PatchState::Active => "active".into(),
            api::PatchState::RolledBack => "rolled-back".into(),
        },
        fallbacks: p.fallbacks,
        durable: p.durable,
    }
}

type FaultStream = Pin<Box<dyn Stream<Item = Result<proto::Fault, Status>> + Send>>;

#[tonic::async_trait]
impl agent_server::Agent for AgentService {
    async fn status(&self, _: Request<proto::StatusRequest>) -> Result<Response<proto::StatusReply>, Status> {
        let s = self.call(|a| a.status()).await?;
        Ok(Response::new(proto::StatusReply {
            pid: s.pid,
            jvm: s.jvm,
            agent_version: s.agent_version,
            load_mode: match s.load_mode {
                api::LoadMode::OnLoad => "onload".into(),
                api::LoadMode::OnAttach => "onattach".into(),
            },
            fault_capture: match s.fault_capture {
                api::FaultCapture::JvmtiExceptionEvents => "jvmti-exception-events".into(),
                api::FaultCapture::BytecodeProbes => "bytecode-probes".into(),
                api::FaultCapture::Off => "off".into(),
            },
            capabilities: s.capabilities,
            missing_capabilities: s.missing_capabilities,
            faults_seen: s.faults_seen,
            patches_active: s.patches_active,
            classes_loaded: s.classes_loaded,
            uptime_ms: s.uptime_ms,
            endpoint: s.endpoint,
            fault_capture_detail: s.fault_capture_detail,
            classes_skipped: s.classes_skipped,
        }))
    }

    async fn classes(&self, req: Request<proto::ClassesRequest>) -> Result<Response<proto::ClassesReply>, Status> {
        let glob = req.into_inner().glob;
        let list = self.call(move |a| a.classes(&glob)).await?.map_err(status)?;
        Ok(Response::new(proto::ClassesReply {
            classes: list
                .into_iter()
                .map(|c| proto::LoadedClass { name: c.name, loader: c.loader, modifiable: c.modifiable })
                .collect(),
        }))
    }

    async fn class_bytes(
        &self,
        req: Request<proto::ClassBytesRequest>,
    ) -> Result<Response<proto::ClassBytesReply>, Status> {
        let name = req.into_inner().class_name;
        let n = name.clone();
        let bytes = self.call(move |a| a.class_bytes(&n)).await?.map_err(status)?;
        Ok(Response::new(proto::ClassBytesReply { class_name: name, bytes }))
    }

    async fn faults(&self, _: Request<proto::FaultsRequest>) -> Result<Response<proto::FaultsReply>, Status> {
        let (list, dropped) = self.call(|a| a.faults()).await?;
        Ok(Response::new(proto::FaultsReply { faults: list.into_iter().map(fault).collect(), dropped_sites: dropped }))
    }

    type WatchFaultsStream = FaultStream;

    async fn watch_faults(&self, _: Request<proto::FaultsRequest>) -> Result<Response<FaultStream>, Status> {
        let rx = self.api.subscribe_faults();
        // A subscriber that falls behind skips what it missed rather than ending the stream.
        let stream = tokio_stream::wrappers::BroadcastStream::new(rx).filter_map(|r| r.ok().map(|f| Ok(fault(f))));
        Ok(Response::new(Box::pin(stream)))
    }

    async fn apply(&self, req: Request<proto::ApplyRequest>) -> Result<Response<proto::Patch>, Status> {
        let peer = peer(&req);
        let r = req.into_inner();
        let request = api::ApplyRequest {
            spec_yaml: r.spec_yaml,
            source: if r.source.is_empty() { "<grpc>".into() } else { r.source },
            attachments: r.attachments.into_iter().collect(),
            who: operator(&r.who),
            peer,
        };
        let p = self.call(move |a| a.apply(request)).await?.map_err(status)?;
        Ok(Response::new(patch(p)))
    }

    async fn patches(&self, _: Request<proto::PatchesRequest>) -> Result<Response<proto::PatchesReply>, Status> {
        let list = self.call(|a| a.patches()).await?;
        Ok(Response::new(proto::PatchesReply { patches: list.into_iter().map(patch).collect() }))
    }

    async fn rollback(&self, req: Request<proto::RollbackRequest>) -> Result<Response<proto::PatchesReply>, Status> {
        let peer = peer(&req);
        let r = req.into_inner();
        let target = match (r.all, r.id.is_empty()) {
            (true, true) => api::RollbackTarget::All,
            (false, false) => api::RollbackTarget::One(r.id),
            _ => return Err(Status::invalid_argument("rollback: give a patch id or all, not both")),
        };
        let who = operator(&r.who);
        let list = self.call(move |a| a.rollback(target, &who, &peer)).await?.map_err(status)?;
        Ok(Response::new(proto::PatchesReply { patches: list.into_iter().map(patch).collect() }))
    }

    async fn policy_apply(
        &self,
        req: Request<proto::PolicyApplyRequest>,
    ) -> Result<Response<proto::PolicyReply>, Status> {
        let r = req.into_inner();
        let source = if r.source.is_empty() { "<grpc>".to_string() } else { r.source };
        let who = operator(&r.who);
        let p = self.call(move |a| a.policy_apply(&r.yaml, &source, &who)).await?.map_err(status)?;
        Ok(Response::new(policy(p)))
    }

    async fn policy_show(&self, _: Request<proto::PolicyShowRequest>) -> Result<Response<proto::PolicyReply>, Status> {
        Ok(Response::new(policy(self.call(|a| a.policy_show()).await?)))
    }

    async fn history(&self, _: Request<proto::HistoryRequest>) -> Result<Response<proto::HistoryReply>, Status> {
        let (records, state_dir) = self.call(|a| a.history()).await?;
        let records = records
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
            })
            .collect();
        Ok(Response::new(proto::HistoryReply { records, state_dir }))
    }

    async fn events(&self, _: Request<proto::EventsRequest>) -> Result<Response<proto::EventsReply>, Status> {
        let list = self.call(|a| a.events()).await?;
        Ok(Response::new(proto::EventsReply { events: list.into_iter().map(event).collect() }))
    }

    type WatchEventsStream = EventStream;

    async fn watch_events(&self, _: Request<proto::EventsRequest>) -> Result<Response<EventStream>, Status> {
        let rx = self.api.subscribe_events();
        let stream = tokio_stream::wrappers::BroadcastStream::new(rx).filter_map(|r| r.ok().map(|e| Ok(event(e))));
        Ok(Response::new(Box::pin(stream)))
    }
}

type EventStream = Pin<Box<dyn Stream<Item = Result<proto::Event, Status>> + Send>>;

/// The other end as the transport vouches for it, unlike the name a client claims: the peer
/// process's uid and pid on the Unix socket, its address over TCP.
fn peer<T>(req: &Request<T>) -> String {
    let cred = req.extensions().get::<tonic::transport::server::UdsConnectInfo>().and_then(|i| i.peer_cred);
    match (cred, req.remote_addr()) {
        (Some(c), _) => format!("uid {}, pid {}", c.uid(), c.pid().map_or_else(|| "?".to_string(), |p| p.to_string())),
        (None, Some(addr)) => format!("from {addr}"),
        (None, None) => String::new(),
    }
}

fn operator(name: &str) -> String {
    if name.is_empty() {
        "operator".into()
    } else {
        format!("operator:{name}")
    }
}

fn event(e: api::EventInfo) -> proto::Event {
    proto::Event {
        seq: e.seq,
        at_ms: e.at_ms,
        at_us: e.at_us,
        kind: e.kind,
        rule: e.rule,
        patch: e.patch,
        site: e.site,
        reason: e.reason,
    }
}

fn policy(p: api::PolicyInfo) -> proto::PolicyReply {
    proto::PolicyReply {
        loaded: p.loaded,
        source: p.source,
        mode: p.mode,
        yaml: p.yaml,
        loaded_at_ms: p.loaded_at_ms,
        loaded_by: p.loaded_by,
        rules: p
            .rules
            .into_iter()
            .map(|r| proto::RuleState {
                name: r.name,
                when: r.when,
                actions: r.actions,
                fired: r.fired,
                applied: r.applied,
                validated: r.validated,
                rolled_back: r.rolled_back,
                held: r.held,
            })
            .collect(),
    }
}
