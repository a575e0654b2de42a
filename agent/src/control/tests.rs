//! The control plane end to end in one process: a fake [`Operations`] behind the real server, called
//! by the real client over a real Unix socket or TCP.

use std::sync::{Arc, Mutex};

use repair_model::client::{connect, Credentials, Target};
use repair_model::endpoint::Endpoint;
use repair_model::proto;

use super::{start, ControlConfig, Operations, Operator, Status, TokenSource};
use crate::config::TlsFiles;

#[derive(Default)]
struct FakeOperations {
    patches: Mutex<Vec<proto::Patch>>,
    faults: Mutex<Option<tokio::sync::broadcast::Sender<proto::Fault>>>,
    /// The peer of each apply and rollback, as the server passed it on.
    peers: Mutex<Vec<String>>,
    /// Set by an observation's `finish`, which takes its time as a rollback does.
    rolled_back: Arc<std::sync::atomic::AtomicBool>,
}

/// The fake's observations: messages sent on a channel, ended when it closes.
impl super::Reports for tokio::sync::mpsc::Receiver<proto::Observed> {
    fn next(&mut self) -> super::Next {
        use tokio::sync::mpsc::error::TryRecvError;
        match self.try_recv() {
            Ok(m) => super::Next::Report(prost::Message::encode_to_vec(&m)),
            Err(TryRecvError::Disconnected) => super::Next::End,
            Err(TryRecvError::Empty) => super::Next::Wait { busy: false },
        }
    }
}

impl Operations for FakeOperations {
    fn status(&self) -> proto::StatusReply {
        proto::StatusReply { pid: 42, jvm: "fake".into(), load_mode: "onattach".into(), ..Default::default() }
    }
    fn classes(&self, glob: &str) -> Result<Vec<proto::LoadedClass>, Status> {
        Ok(["a.B", "a.C", "x.Y"]
            .iter()
            .filter(|n| glob.is_empty() || repair_model::glob::matches(glob, n))
            .map(|n| proto::LoadedClass { name: n.to_string(), loader: "app".into(), modifiable: true })
            .collect())
    }
    fn class_bytes(&self, class: &str, _original: bool) -> Result<Vec<u8>, Status> {
        Err(Status::not_found(format!("class {class} is not loaded")))
    }
    fn running_code(&self, class: &str, _method: &str) -> Result<Vec<proto::MethodCode>, Status> {
        Err(Status::not_found(format!("class {class} is not loaded")))
    }
    fn faults(&self) -> proto::FaultsReply {
        let npe =
            proto::Fault { id: 1, exception: "java.lang.NullPointerException".into(), count: 3, ..Default::default() };
        proto::FaultsReply { faults: vec![npe], dropped_sites: 0 }
    }
    fn subscribe_faults(&self) -> tokio::sync::broadcast::Receiver<proto::Fault> {
        self.faults.lock().unwrap().get_or_insert_with(|| tokio::sync::broadcast::channel(16).0).subscribe()
    }
    fn apply(&self, r: proto::ApplyRequest, by: Operator) -> Result<proto::Patch, Status> {
        let spec = repair_model::spec::PatchSpec::from_yaml(&r.spec_yaml, &r.source)
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        self.peers.lock().unwrap().push(by.peer);
        let p = proto::Patch { id: spec.id, who: by.who, state: "active".into(), ..Default::default() };
        self.patches.lock().unwrap().push(p.clone());
        Ok(p)
    }
    fn deploy(&self, r: proto::DeployRequest, _by: Operator) -> Result<proto::DeployReply, Status> {
        let classes = r.class_files.keys().map(|k| proto::DeployClass { name: k.clone(), ..Default::default() });
        Ok(proto::DeployReply { id: r.id, classes: classes.collect(), ..Default::default() })
    }
    fn observe(&self, r: proto::ObserveRequest, _by: Operator) -> Result<super::ObservationStream, Status> {
        let (tx, reports) = tokio::sync::mpsc::channel(4);
        let ended = proto::observed::What::Ended(format!("fake {} of {}", r.kind, r.class_name));
        tx.try_send(proto::Observed { observation: 1, what: Some(ended), dropped: 0 }).unwrap();
        let rolled_back = self.rolled_back.clone();
        let finish = move || {
            std::thread::sleep(std::time::Duration::from_millis(300));
            rolled_back.store(true, std::sync::atomic::Ordering::SeqCst);
        };
        Ok(super::ObservationStream::new(Box::new(reports), Box::new(finish)))
    }
    fn observations(&self) -> Vec<proto::ObservationInfo> {
        Vec::new()
    }
    fn stop_observation(&self, id: u64, _by: Operator) -> Result<Vec<proto::ObservationInfo>, Status> {
        Err(Status::not_found(format!("no observation {id}")))
    }
    fn patches(&self) -> Vec<proto::Patch> {
        self.patches.lock().unwrap().clone()
    }
    fn policy_apply(&self, yaml: &str, source: &str, by: Operator) -> Result<proto::PolicyReply, Status> {
        let p = repair_model::policy::parse(yaml, source).map_err(Status::invalid_argument)?;
        Ok(proto::PolicyReply { loaded: true, source: p.source, loaded_by: by.who, ..Default::default() })
    }
    fn policy_show(&self) -> proto::PolicyReply {
        proto::PolicyReply::default()
    }
    fn history(&self, _: u64, _: usize) -> proto::HistoryReply {
        proto::HistoryReply { state_dir: "/nowhere".into(), ..Default::default() }
    }
    fn events(&self) -> Vec<proto::Event> {
        vec![proto::Event { seq: 1, kind: "policy".into(), ..Default::default() }]
    }
    fn subscribe_events(&self) -> tokio::sync::broadcast::Receiver<proto::Event> {
        tokio::sync::broadcast::channel(1).1
    }
    fn rollback(&self, id: Option<&str>, by: Operator) -> Result<Vec<proto::Patch>, Status> {
        self.peers.lock().unwrap().push(by.peer);
        let mut all = self.patches.lock().unwrap();
        match id {
            None => Ok(std::mem::take(&mut *all)),
            Some(id) => match all.iter().position(|p| p.id == id) {
                Some(i) => Ok(vec![all.remove(i)]),
                None => Err(Status::not_found(format!("no active patch {id}"))),
            },
        }
    }
}

fn socket(name: &str) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("repair-control-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    dir.join("agent.sock")
}

fn config(endpoint: Endpoint, token: Option<&str>) -> ControlConfig {
    let token = token.map_or(TokenSource::Generate, |t| TokenSource::Given(t.to_string()));
    ControlConfig { endpoint, token, tls: None, pid: std::process::id() }
}

fn none() -> Credentials {
    Credentials::default()
}

fn token(t: &str) -> Credentials {
    Credentials { token: Some(t.to_string()), ..Default::default() }
}

const SPEC: &str = "id: p1\ntarget: { class: a.B, method: run }\naction:\n  guard: { fallback: default }\n";

#[test]
fn a_client_drives_the_agent_over_the_unix_socket() {
    let path = socket("unix");
    let api = Arc::new(FakeOperations::default());
    let server = start(api.clone(), config(Endpoint::Unix(path.clone()), None)).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut c = connect(&Target::Endpoint(Endpoint::Unix(path.clone())), &none()).await.unwrap();
        let s = c.status(proto::StatusRequest {}).await.unwrap().into_inner();
        assert_eq!((s.pid, s.load_mode.as_str()), (42, "onattach"));
        let classes = c.classes(proto::ClassesRequest { glob: "a.*".into() }).await.unwrap().into_inner().classes;
        assert_eq!(classes.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(), ["a.B", "a.C"]);
        let err =
            c.class_bytes(proto::ClassBytesRequest { class_name: "q.Z".into(), original: false }).await.unwrap_err();
        assert_eq!((err.code(), err.message()), (tonic::Code::NotFound, "class q.Z is not loaded"));
        let bad = c
            .apply(proto::ApplyRequest { spec_yaml: "id: [".into(), source: "bad.yaml".into(), ..Default::default() })
            .await
            .unwrap_err();
        assert_eq!(bad.code(), tonic::Code::InvalidArgument);
        assert!(bad.message().starts_with("bad.yaml:"), "{}", bad.message());
        let p = c
            .apply(proto::ApplyRequest {
                spec_yaml: SPEC.into(),
                source: "p1.yaml".into(),
                who: "ann".into(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!((p.id.as_str(), p.who.as_str(), p.state.as_str()), ("p1", "operator:ann", "active"));
        assert_eq!(c.patches(proto::PatchesRequest {}).await.unwrap().into_inner().patches.len(), 1);
        let back = c.rollback(proto::RollbackRequest { all: true, ..Default::default() }).await.unwrap().into_inner();
        assert_eq!(back.patches.len(), 1);
        assert_eq!(c.faults(proto::FaultsRequest {}).await.unwrap().into_inner().faults[0].count, 3);
    });
    // The socket vouches for the client: this very process.
    let uid = repair_model::endpoint::current_uid().expect("procfs");
    let me = format!("uid {uid}, pid {}", std::process::id());
    assert_eq!(*api.peers.lock().unwrap(), [me.clone(), me.clone()], "the bad apply never reached the agent");
    server.shutdown();
    assert!(!path.exists(), "socket removed at shutdown");
}

/// An observation whose stream was never taken (its client went away while it started) is
/// finished all the same.
#[test]
fn an_observation_stream_dropped_untaken_is_finished() {
    let finished = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (_tx, reports) = tokio::sync::mpsc::channel::<proto::Observed>(1);
    let f = finished.clone();
    let stream = super::ObservationStream::new(
        Box::new(reports),
        Box::new(move || f.store(true, std::sync::atomic::Ordering::SeqCst)),
    );
    drop(stream);
    assert!(finished.load(std::sync::atomic::Ordering::SeqCst));
}

/// A client that sees an observation end finds its probes rolled back: the stream ends after.
#[test]
fn an_observation_stream_ends_once_its_rollback_is_done() {
    let path = socket("observe-end");
    let api = Arc::new(FakeOperations::default());
    let server = start(api.clone(), config(Endpoint::Unix(path.clone()), None)).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut c = connect(&Target::Endpoint(Endpoint::Unix(path.clone())), &none()).await.unwrap();
        let request = proto::ObserveRequest { kind: "watch".into(), class_name: "a.B".into(), ..Default::default() };
        let mut stream = c.observe(request).await.unwrap().into_inner();
        let mut seen = Vec::new();
        while let Some(m) = stream.message().await.unwrap() {
            seen.push(m.what);
        }
        assert_eq!(seen, [Some(proto::observed::What::Ended("fake watch of a.B".into()))]);
        assert!(api.rolled_back.load(std::sync::atomic::Ordering::SeqCst), "the stream ended before its rollback");
    });
    server.shutdown();
}

#[test]
fn a_live_socket_is_refused_and_a_stale_one_replaced() {
    let path = socket("stale");
    let first = start(Arc::new(FakeOperations::default()), config(Endpoint::Unix(path.clone()), None)).unwrap();
    let err = start(Arc::new(FakeOperations::default()), config(Endpoint::Unix(path.clone()), None)).err().unwrap();
    assert!(err.0.contains("in use by a live agent"), "{err}");
    first.shutdown();

    // A JVM killed with -9 leaves its socket file behind with nobody listening.
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    assert!(path.exists());
    let second = start(Arc::new(FakeOperations::default()), config(Endpoint::Unix(path.clone()), None)).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut c = connect(&Target::Endpoint(Endpoint::Unix(path.clone())), &none()).await.unwrap();
        assert_eq!(c.status(proto::StatusRequest {}).await.unwrap().into_inner().pid, 42);
    });
    second.shutdown();
}

#[test]
fn tcp_needs_the_token() {
    let server =
        start(Arc::new(FakeOperations::default()), config(Endpoint::Tcp("127.0.0.1:0".into()), Some("s3cret")))
            .unwrap();
    let endpoint = Endpoint::parse(server.endpoint()).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut anon = connect(&Target::Endpoint(endpoint.clone()), &none()).await.unwrap();
        let err = anon.status(proto::StatusRequest {}).await.unwrap_err();
        assert_eq!(err.code(), tonic::Code::Unauthenticated);
        let mut wrong = connect(&Target::Endpoint(endpoint.clone()), &token("nope")).await.unwrap();
        assert_eq!(wrong.status(proto::StatusRequest {}).await.unwrap_err().code(), tonic::Code::Unauthenticated);
        let mut ok = connect(&Target::Endpoint(endpoint), &token("s3cret")).await.unwrap();
        assert_eq!(ok.status(proto::StatusRequest {}).await.unwrap().into_inner().jvm, "fake");
    });
    server.shutdown();
}

#[test]
fn an_open_socket_directory_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let path = socket("open");
    std::fs::set_permissions(path.parent().unwrap(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let err = start(Arc::new(FakeOperations::default()), config(Endpoint::Unix(path), None)).err().unwrap();
    assert!(err.0.contains("mode 0700"), "{err}");
}

/// A CA, a server certificate for localhost/127.0.0.1 and a client certificate, as PEM files in a
/// fresh directory.
struct Pki {
    dir: std::path::PathBuf,
}

impl Pki {
    fn new(name: &str) -> Pki {
        use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
        let dir = std::env::temp_dir().join(format!("repair-pki-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let ca_key = KeyPair::generate().unwrap();
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let issuer = rcgen::Issuer::new(ca, ca_key);
        let write = |f: &str, text: String| std::fs::write(dir.join(f), text).unwrap();
        write("ca.pem", ca_cert.pem());
        for (who, names) in
            [("server", vec!["localhost".to_string(), "127.0.0.1".to_string()]), ("client", vec!["ops".into()])]
        {
            let key = KeyPair::generate().unwrap();
            let cert = CertificateParams::new(names).unwrap().signed_by(&key, &issuer).unwrap();
            write(&format!("{who}.pem"), cert.pem());
            write(&format!("{who}.key"), key.serialize_pem());
        }
        Pki { dir }
    }

    fn file(&self, name: &str) -> std::path::PathBuf {
        self.dir.join(name)
    }

    fn server(&self, mtls: bool) -> TlsFiles {
        TlsFiles {
            cert: self.file("server.pem"),
            key: self.file("server.key"),
            client_ca: mtls.then(|| self.file("ca.pem")),
        }
    }

    fn client(&self, with_cert: bool, t: &str) -> Credentials {
        Credentials {
            token: Some(t.to_string()),
            tls_ca: Some(self.file("ca.pem")),
            tls_cert: with_cert.then(|| self.file("client.pem")),
            tls_key: with_cert.then(|| self.file("client.key")),
            tls_domain: Some("localhost".into()),
        }
    }
}

async fn status(endpoint: &Endpoint, c: &Credentials) -> Result<String, String> {
    let mut client = connect(&Target::Endpoint(endpoint.clone()), c).await?;
    client.status(proto::StatusRequest {}).await.map(|r| r.into_inner().jvm).map_err(|s| format!("{s:?}"))
}

#[test]
fn tls_serves_clients_that_trust_its_ca_and_carry_the_token() {
    let pki = Pki::new("tls");
    let mut cfg = config(Endpoint::Tcp("127.0.0.1:0".into()), Some("s3cret"));
    cfg.tls = Some(pki.server(false));
    let server = start(Arc::new(FakeOperations::default()), cfg).unwrap();
    assert!(server.endpoint().starts_with("tls:127.0.0.1:"), "{}", server.endpoint());
    let endpoint = Endpoint::parse(server.endpoint()).unwrap();
    let plain = Endpoint::Tcp(server.endpoint().trim_start_matches("tls:").to_string());
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        assert_eq!(status(&endpoint, &pki.client(false, "s3cret")).await.unwrap(), "fake");
        let wrong = status(&endpoint, &pki.client(false, "nope")).await.unwrap_err();
        assert!(wrong.contains("Unauthenticated"), "{wrong}");
        assert!(status(&plain, &token("s3cret")).await.is_err(), "plaintext to a TLS port");
        let no_ca = status(&endpoint, &token("s3cret")).await.unwrap_err();
        assert!(no_ca.contains("--tls-ca"), "{no_ca}");
        let other = Pki::new("other-ca");
        let untrusted = status(&endpoint, &other.client(false, "s3cret")).await;
        assert!(untrusted.is_err(), "a CA that did not sign the agent's certificate is not trusted");
    });
    server.shutdown();
}

#[test]
fn mtls_refuses_clients_without_a_certificate_from_its_ca() {
    let pki = Pki::new("mtls");
    let mut cfg = config(Endpoint::Tcp("127.0.0.1:0".into()), Some("s3cret"));
    cfg.tls = Some(pki.server(true));
    let server = start(Arc::new(FakeOperations::default()), cfg).unwrap();
    let endpoint = Endpoint::parse(server.endpoint()).unwrap();
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        assert_eq!(status(&endpoint, &pki.client(true, "s3cret")).await.unwrap(), "fake");
        assert!(status(&endpoint, &pki.client(false, "s3cret")).await.is_err(), "no client certificate");
    });
    server.shutdown();
}

#[test]
fn plaintext_beyond_loopback_is_refused() {
    let err =
        start(Arc::new(FakeOperations::default()), config(Endpoint::Tcp("0.0.0.0:0".into()), Some("t"))).err().unwrap();
    assert!(err.0.contains("reachable from other hosts") && err.0.contains("tls_cert"), "{err}");
    let pki = Pki::new("wide");
    let mut cfg = config(Endpoint::Tcp("0.0.0.0:0".into()), Some("t"));
    cfg.tls = Some(pki.server(false));
    let server = start(Arc::new(FakeOperations::default()), cfg).unwrap();
    assert!(server.endpoint().starts_with("tls:0.0.0.0:"), "{}", server.endpoint());
    server.shutdown();
}

#[test]
fn bad_tls_files_and_open_token_files_are_refused_by_name() {
    use std::os::unix::fs::PermissionsExt;
    let pki = Pki::new("bad");
    let mut cfg = config(Endpoint::Tcp("127.0.0.1:0".into()), Some("t"));
    cfg.tls = Some(TlsFiles { cert: pki.file("nope.pem"), key: pki.file("server.key"), client_ca: None });
    let err = start(Arc::new(FakeOperations::default()), cfg).err().unwrap();
    assert!(err.0.contains("tls_cert") && err.0.contains("nope.pem"), "{err}");

    let token_file = pki.file("token");
    std::fs::write(&token_file, "s3cret\n").unwrap();
    std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let mut cfg = config(Endpoint::Tcp("127.0.0.1:0".into()), None);
    cfg.token = TokenSource::File(token_file.clone());
    let err = start(Arc::new(FakeOperations::default()), cfg.clone()).err().unwrap();
    assert!(err.0.contains("readable by others") && err.0.contains("token"), "{err}");
    std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let server = start(Arc::new(FakeOperations::default()), cfg).unwrap();
    let endpoint = Endpoint::parse(server.endpoint()).unwrap();
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        assert_eq!(status(&endpoint, &token("s3cret")).await.unwrap(), "fake");
    });
    server.shutdown();
}

#[test]
fn an_error_echoing_a_huge_input_still_reaches_the_client() {
    let path = socket("huge");
    let server = start(Arc::new(FakeOperations::default()), config(Endpoint::Unix(path.clone()), None)).unwrap();
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let mut c = connect(&Target::Endpoint(Endpoint::Unix(path.clone())), &none()).await.unwrap();
        let id = "a".repeat(30_000);
        let err = c.rollback(proto::RollbackRequest { id, ..Default::default() }).await.unwrap_err();
        assert_eq!(err.code(), tonic::Code::NotFound, "{err:?}");
        assert!(err.message().starts_with("no active patch aaa") && err.message().ends_with("more bytes)"));
        // The connection survives: the next call on it works.
        assert_eq!(c.status(proto::StatusRequest {}).await.unwrap().into_inner().pid, 42);
    });
    server.shutdown();
}
