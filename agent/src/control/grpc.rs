//! The gRPC service: proto messages in, [`Operations`] calls on blocking threads, proto out. The
//! only mapping here is of the request: the operator's name and the peer the transport vouches for.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use repair_model::proto::{self, agent_server};
use tokio_stream::{Stream, StreamExt};
use tonic::codegen::http;
use tonic::{Request, Response, Status};

use super::{Operations, Operator};

pub struct AgentService {
    operations: Arc<dyn Operations>,
}

impl AgentService {
    pub fn new(operations: Arc<dyn Operations>) -> Self {
        Self { operations }
    }

    /// An observation, started: its stream.
    async fn observing(&self, req: Request<proto::ObserveRequest>) -> Result<Observing, Status> {
        let peer = peer(&req);
        let r = req.into_inner();
        let by = Operator { who: operator(&r.who), peer };
        let stream = self.try_call(move |o| o.observe(r, by)).await?;
        Ok(Observing { stream, tick: None, wait: BUSY_WAIT, finishing: None })
    }

    /// Runs a call that can fail, with its error message bounded (see [`bounded`]).
    async fn try_call<T: Send + 'static>(
        &self,
        f: impl FnOnce(&dyn Operations) -> Result<T, Status> + Send + 'static,
    ) -> Result<T, Status> {
        self.call(f).await?.map_err(bounded)
    }

    /// Runs `f` on a blocking thread of the control runtime (attached to the JVM for the calls
    /// that need it).
    async fn call<T: Send + 'static>(
        &self,
        f: impl FnOnce(&dyn Operations) -> T + Send + 'static,
    ) -> Result<T, Status> {
        let operations = self.operations.clone();
        tokio::task::spawn_blocking(move || f(operations.as_ref()))
            .await
            .map_err(|e| Status::internal(format!("agent call failed: {e}")))
    }
}

/// Serves until `stop` fires. With a token, every call must carry `authorization: Bearer TOKEN`;
/// with TLS, connections are TLS (and, with a client CA, clients show a certificate it signed).
pub async fn serve<S, IO, E>(
    service: AgentService,
    token: Option<String>,
    tls: Option<tonic::transport::ServerTlsConfig>,
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
    let mut builder = tonic::transport::Server::builder();
    if let Some(tls) = tls {
        builder = match builder.tls_config(tls) {
            Ok(b) => b,
            Err(e) => {
                crate::log_error!("control plane not started: TLS: {e}");
                return;
            }
        };
    }
    // A deploy carries a whole build's class files (gRPC's default limit is 4 MiB).
    let service = Arc::new(service);
    let agent = tonic::service::interceptor::InterceptedService::new(
        WireObserve {
            generated: agent_server::AgentServer::from_arc(service.clone()).max_decoding_message_size(MAX_REQUEST),
            service,
        },
        check.clone(),
    );
    let mut router = builder.add_service(agent);
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

type FaultStream = Pin<Box<dyn Stream<Item = Result<proto::Fault, Status>> + Send>>;
type ObservedStream = Pin<Box<dyn Stream<Item = Result<proto::Observed, Status>> + Send>>;

/// The Observe method's path.
const OBSERVE: &str = "/repair.v1.Agent/Observe";

/// The agent's service: the generated one, except Observe, whose messages the observation writes
/// in protobuf's wire form itself (a watched call goes from its record to its bytes; see
/// `observe::Reader`) and which goes out as they are.
#[derive(Clone)]
struct WireObserve<S> {
    generated: S,
    service: Arc<AgentService>,
}

impl<S> tonic::server::NamedService for WireObserve<S> {
    const NAME: &'static str = agent_server::SERVICE_NAME;
}

impl<S, B> tonic::codegen::Service<http::Request<B>> for WireObserve<S>
where
    S: tonic::codegen::Service<http::Request<B>, Response = http::Response<tonic::body::Body>, Error = Infallible>,
    S::Future: Send + 'static,
    B: tonic::codegen::Body + Send + 'static,
    B::Error: Into<tonic::codegen::StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = tonic::codegen::BoxFuture<Self::Response, Infallible>;

    fn poll_ready(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Infallible>> {
        self.generated.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        if req.uri().path() != OBSERVE {
            return Box::pin(self.generated.call(req));
        }
        let service = self.service.clone();
        Box::pin(
            async move { Ok(tonic::server::Grpc::new(WireCodec).server_streaming(ObserveCall(service), req).await) },
        )
    }
}

/// An Observe call: its request decoded as usual, its messages already encoded.
struct ObserveCall(Arc<AgentService>);

impl tonic::server::ServerStreamingService<proto::ObserveRequest> for ObserveCall {
    type Response = Vec<u8>;
    type ResponseStream = Observing;
    type Future = tonic::codegen::BoxFuture<Response<Observing>, Status>;

    fn call(&mut self, req: Request<proto::ObserveRequest>) -> Self::Future {
        let service = self.0.clone();
        Box::pin(async move { service.observing(req).await.map(Response::new) })
    }
}

/// The Observe method's codec: the request by prost, the messages as they come (encoded).
struct WireCodec;

impl tonic::codec::Codec for WireCodec {
    type Encode = Vec<u8>;
    type Decode = proto::ObserveRequest;
    type Encoder = WireEncoder;
    type Decoder = tonic_prost::ProstDecoder<proto::ObserveRequest>;

    fn encoder(&mut self) -> WireEncoder {
        WireEncoder
    }

    fn decoder(&mut self) -> Self::Decoder {
        tonic_prost::ProstDecoder::default()
    }
}

struct WireEncoder;

impl tonic::codec::Encoder for WireEncoder {
    type Item = Vec<u8>;
    type Error = Status;

    fn encode(&mut self, item: Vec<u8>, dst: &mut tonic::codec::EncodeBuf<'_>) -> Result<(), Status> {
        use prost::bytes::BufMut;
        dst.put_slice(&item);
        Ok(())
    }
}

/// An observation's stream. Its `finish` (it rolls the probes back) runs on a blocking thread:
/// when the observation ends, before the stream does, so that a client which sees the end finds
/// the classes as they were and the observation no longer listed; when the client goes away, as
/// the stream is dropped (by the [`ObservationStream`](super::ObservationStream)'s drop).
///
/// It takes what the queue holds and, once it is empty, looks again after a short wait (1 ms,
/// doubling while nothing comes, to [`IDLE_WAIT`]) rather than being woken by each report: a wakeup
/// per report would cost the application's thread, which queues it, a system call each time
/// (tens of thousands a second), and the control plane a context switch each.
struct Observing {
    stream: super::ObservationStream,
    /// The wait in progress while the queue is empty.
    tick: Option<Pin<Box<tokio::time::Sleep>>>,
    wait: std::time::Duration,
    /// The rollback in progress once the observation has ended; the stream ends after it.
    finishing: Option<tokio::task::JoinHandle<()>>,
}

/// The first wait on an empty queue (while reports come, each is on its way within this long).
const BUSY_WAIT: std::time::Duration = std::time::Duration::from_millis(1);
/// The longest wait on an empty queue (the latest a report after a quiet spell is taken).
const IDLE_WAIT: std::time::Duration = std::time::Duration::from_millis(16);

impl Stream for Observing {
    type Item = Result<Vec<u8>, Status>;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<Option<Self::Item>> {
        use std::task::Poll;
        loop {
            match self.stream.reports.next() {
                super::Next::Report(m) => {
                    self.wait = BUSY_WAIT;
                    return Poll::Ready(Some(Ok(m)));
                }
                super::Next::End => {
                    if let Some(finish) = self.stream.finish.take() {
                        self.finishing = Some(tokio::task::spawn_blocking(finish));
                    }
                    if let Some(finishing) = self.finishing.as_mut() {
                        // Ends the stream either way: a rollback that panicked is only a JoinError here.
                        let _ = std::task::ready!(Pin::new(finishing).poll(cx));
                        self.finishing = None;
                    }
                    return Poll::Ready(None);
                }
                super::Next::Wait { busy: true } => self.wait = BUSY_WAIT,
                super::Next::Wait { busy: false } => {}
            }
            let wait = self.wait;
            let tick = self.tick.get_or_insert_with(|| Box::pin(tokio::time::sleep(wait)));
            std::task::ready!(tick.as_mut().poll(cx));
            self.tick = None;
            self.wait = (wait * 2).min(IDLE_WAIT);
        }
    }
}

type EventStream = Pin<Box<dyn Stream<Item = Result<proto::Event, Status>> + Send>>;

#[tonic::async_trait]
impl agent_server::Agent for AgentService {
    async fn status(&self, _: Request<proto::StatusRequest>) -> Result<Response<proto::StatusReply>, Status> {
        Ok(Response::new(self.call(|o| o.status()).await?))
    }

    async fn classes(&self, req: Request<proto::ClassesRequest>) -> Result<Response<proto::ClassesReply>, Status> {
        let glob = req.into_inner().glob;
        let classes = self.try_call(move |o| o.classes(&glob)).await?;
        Ok(Response::new(proto::ClassesReply { classes }))
    }

    async fn class_bytes(
        &self,
        req: Request<proto::ClassBytesRequest>,
    ) -> Result<Response<proto::ClassBytesReply>, Status> {
        let req = req.into_inner();
        let (name, original) = (req.class_name, req.original);
        let n = name.clone();
        let bytes = self.try_call(move |o| o.class_bytes(&n, original)).await?;
        Ok(Response::new(proto::ClassBytesReply { class_name: name, bytes }))
    }

    async fn running_code(
        &self,
        req: Request<proto::RunningCodeRequest>,
    ) -> Result<Response<proto::RunningCodeReply>, Status> {
        let r = req.into_inner();
        let methods = self.try_call(move |o| o.running_code(&r.class_name, &r.method)).await?;
        Ok(Response::new(proto::RunningCodeReply { methods }))
    }

    async fn faults(&self, _: Request<proto::FaultsRequest>) -> Result<Response<proto::FaultsReply>, Status> {
        Ok(Response::new(self.call(|o| o.faults()).await?))
    }

    type WatchFaultsStream = FaultStream;

    async fn watch_faults(&self, _: Request<proto::FaultsRequest>) -> Result<Response<FaultStream>, Status> {
        let rx = self.operations.subscribe_faults();
        // A subscriber that falls behind skips what it missed rather than ending the stream.
        let stream = tokio_stream::wrappers::BroadcastStream::new(rx).filter_map(|r| r.ok().map(Ok));
        Ok(Response::new(Box::pin(stream)))
    }

    async fn apply(&self, req: Request<proto::ApplyRequest>) -> Result<Response<proto::Patch>, Status> {
        let peer = peer(&req);
        let mut r = req.into_inner();
        if r.source.is_empty() {
            r.source = "<grpc>".into();
        }
        let by = Operator { who: operator(&r.who), peer };
        Ok(Response::new(self.try_call(move |o| o.apply(r, by)).await?))
    }

    async fn deploy(&self, req: Request<proto::DeployRequest>) -> Result<Response<proto::DeployReply>, Status> {
        let peer = peer(&req);
        let mut r = req.into_inner();
        if r.source.is_empty() {
            r.source = "<grpc>".into();
        }
        let by = Operator { who: operator(&r.who), peer };
        Ok(Response::new(self.try_call(move |o| o.deploy(r, by)).await?))
    }

    type ObserveStream = ObservedStream;

    /// Never called: [`WireObserve`] serves Observe, its messages as the observation encoded them.
    async fn observe(&self, _: Request<proto::ObserveRequest>) -> Result<Response<ObservedStream>, Status> {
        Err(Status::internal("Observe is served by the agent's own route (WireObserve), not the generated one"))
    }

    async fn observations(
        &self,
        _: Request<proto::ObservationsRequest>,
    ) -> Result<Response<proto::ObservationsReply>, Status> {
        let observations = self.call(|o| o.observations()).await?;
        Ok(Response::new(proto::ObservationsReply { observations }))
    }

    async fn stop_observation(
        &self,
        req: Request<proto::StopObservationRequest>,
    ) -> Result<Response<proto::ObservationsReply>, Status> {
        let peer = peer(&req);
        let r = req.into_inner();
        let by = Operator { who: operator(&r.who), peer };
        let observations = self.try_call(move |o| o.stop_observation(r.id, by)).await?;
        Ok(Response::new(proto::ObservationsReply { observations }))
    }

    async fn patches(&self, _: Request<proto::PatchesRequest>) -> Result<Response<proto::PatchesReply>, Status> {
        let patches = self.call(|o| o.patches()).await?;
        Ok(Response::new(proto::PatchesReply { patches }))
    }

    async fn rollback(&self, req: Request<proto::RollbackRequest>) -> Result<Response<proto::PatchesReply>, Status> {
        let peer = peer(&req);
        let r = req.into_inner();
        let id = match (r.all, r.id.is_empty()) {
            (true, true) => None,
            (false, false) => Some(r.id),
            _ => return Err(Status::invalid_argument("rollback: give a patch id or all, not both")),
        };
        let by = Operator { who: operator(&r.who), peer };
        let patches = self.try_call(move |o| o.rollback(id.as_deref(), by)).await?;
        Ok(Response::new(proto::PatchesReply { patches }))
    }

    async fn policy_apply(
        &self,
        req: Request<proto::PolicyApplyRequest>,
    ) -> Result<Response<proto::PolicyReply>, Status> {
        let peer = peer(&req);
        let r = req.into_inner();
        let source = if r.source.is_empty() { "<grpc>".to_string() } else { r.source };
        let by = Operator { who: operator(&r.who), peer };
        Ok(Response::new(self.try_call(move |o| o.policy_apply(&r.yaml, &source, by)).await?))
    }

    async fn policy_show(&self, _: Request<proto::PolicyShowRequest>) -> Result<Response<proto::PolicyReply>, Status> {
        Ok(Response::new(self.call(|o| o.policy_show()).await?))
    }

    async fn history(&self, req: Request<proto::HistoryRequest>) -> Result<Response<proto::HistoryReply>, Status> {
        let r = req.into_inner();
        // Pages keep a reply far below gRPC's 4 MiB message limit, however long the journal.
        let limit = if r.limit == 0 { 1000 } else { (r.limit as usize).min(5000) };
        Ok(Response::new(self.call(move |o| o.history(r.after_seq, limit)).await?))
    }

    async fn events(&self, _: Request<proto::EventsRequest>) -> Result<Response<proto::EventsReply>, Status> {
        let events = self.call(|o| o.events()).await?;
        Ok(Response::new(proto::EventsReply { events }))
    }

    type WatchEventsStream = EventStream;

    async fn watch_events(&self, _: Request<proto::EventsRequest>) -> Result<Response<EventStream>, Status> {
        let rx = self.operations.subscribe_events();
        let stream = tokio_stream::wrappers::BroadcastStream::new(rx).filter_map(|r| r.ok().map(Ok));
        Ok(Response::new(Box::pin(stream)))
    }
}

/// Largest request accepted: a deploy of a large build.
const MAX_REQUEST: usize = 256 << 20;

/// Longest error message sent: it travels in an HTTP/2 trailer, and a message echoing a huge
/// input (a 30 KB patch id) would exceed the peer's header list limit and reach it as a protocol
/// error that also kills the connection, instead of the error.
const MAX_MESSAGE: usize = 2048;

/// `status` with its message cut to [`MAX_MESSAGE`] bytes (at a character boundary), saying so.
fn bounded(status: Status) -> Status {
    let message = status.message();
    if message.len() <= MAX_MESSAGE {
        return status;
    }
    let mut end = MAX_MESSAGE;
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    let cut = format!("{}... ({} more bytes)", &message[..end], message.len() - end);
    Status::new(status.code(), cut)
}

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
