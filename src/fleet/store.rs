//! Typed access to the fleet's keys in etcd: the desired state (written in one transaction with
//! its phase and history), canary slots claimed by transaction, phases moved by compare-and-swap
//! on their mod_revision, observed state under a lease, and the watch of a service's prefix.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use etcd_client::{
    Certificate, Client, Compare, CompareOp, ConnectOptions, DeleteOptions, EventType, GetOptions, Identity,
    PutOptions, TlsOptions, Txn, TxnOp, WatchOptions, WatchStream,
};

use super::rollout::Phase;
use super::{Desired, HistoryRecord, Keys, Observed};

/// How a unary call waits for etcd before it counts as unreachable.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// PEM files for TLS to etcd: the flags `repaird` and `repairctl fleet` share.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct TlsFiles {
    /// PEM file of the CA that signed etcd's certificate. Example: `--etcd-ca ca.pem`
    #[arg(long = "etcd-ca", id = "etcd_ca", value_name = "PEM")]
    pub ca: Option<PathBuf>,
    /// PEM file of the client certificate etcd checks. Example: `--etcd-cert me.pem`
    #[arg(long = "etcd-cert", id = "etcd_cert", value_name = "PEM", requires = "etcd_key")]
    pub cert: Option<PathBuf>,
    /// PEM file of that certificate's key. Example: `--etcd-key me.key`
    #[arg(long = "etcd-key", id = "etcd_key", value_name = "PEM", requires = "etcd_cert")]
    pub key: Option<PathBuf>,
}

/// The endpoints of `--etcd URL[,URL...]`: `http://` or `https://` URLs, or `host:port` (http,
/// or https when TLS files are given).
pub fn endpoints(text: &str, tls: &TlsFiles) -> Result<Vec<String>, String> {
    let secure = tls.ca.is_some() || tls.cert.is_some();
    let urls: Vec<String> = text
        .split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .map(|u| {
            if u.starts_with("http://") || u.starts_with("https://") {
                u.to_string()
            } else if secure {
                format!("https://{u}")
            } else {
                format!("http://{u}")
            }
        })
        .collect();
    if urls.is_empty() {
        return Err(format!("--etcd {text:?}: give the etcd endpoints, e.g. http://127.0.0.1:2379"));
    }
    if secure {
        if let Some(u) = urls.iter().find(|u| u.starts_with("http://")) {
            return Err(format!("--etcd {u}: TLS files are given, so the endpoint must be https://"));
        }
    }
    Ok(urls)
}

fn read_pem(flag: &str, path: &std::path::Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("{flag} {}: {e}", path.display()))
}

/// A client of the etcd cluster at `urls`. It connects lazily: a cluster that is down now is
/// not an error here, calls fail until it is back.
pub async fn connect(urls: &[String], tls: &TlsFiles) -> Result<Client, String> {
    let mut options = ConnectOptions::new()
        .with_connect_timeout(Duration::from_secs(2))
        // HTTP/2 pings find a dead connection (a watch would otherwise wait forever); they are
        // answered by the transport, not served by etcd.
        .with_keep_alive(Duration::from_secs(10), Duration::from_secs(5));
    if tls.ca.is_some() || tls.cert.is_some() || tls.key.is_some() {
        let mut t = TlsOptions::new();
        if let Some(ca) = &tls.ca {
            t = t.ca_certificate(Certificate::from_pem(read_pem("--etcd-ca", ca)?));
        }
        match (&tls.cert, &tls.key) {
            (Some(c), Some(k)) => {
                t = t.identity(Identity::from_pem(read_pem("--etcd-cert", c)?, read_pem("--etcd-key", k)?))
            }
            (None, None) => {}
            _ => return Err("a client certificate needs both --etcd-cert and --etcd-key".to_string()),
        }
        options = options.with_tls(t);
    }
    Client::connect(urls, Some(options)).await.map_err(|e| format!("etcd {}: {e}", urls.join(",")))
}

async fn within<T>(
    what: &str,
    call: impl std::future::Future<Output = Result<T, etcd_client::Error>>,
) -> Result<T, String> {
    match tokio::time::timeout(CALL_TIMEOUT, call).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(format!("etcd: {what}: {e}")),
        Err(_) => Err(format!("etcd: {what}: no answer in {}s", CALL_TIMEOUT.as_secs())),
    }
}

fn json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("fleet values serialize")
}

/// Every key of a service (relative to its prefix) with its value and mod_revision, and the
/// store's revision at the read.
pub async fn read_service(client: &Client, keys: &Keys) -> Result<(BTreeMap<String, (String, i64)>, i64), String> {
    let mut kv = client.kv_client();
    let r = within("read", kv.get(keys.prefix.as_str(), Some(GetOptions::new().with_prefix()))).await?;
    let revision = r.header().map_or(0, |h| h.revision());
    let mut out = BTreeMap::new();
    for item in r.kvs() {
        if let (Ok(k), Ok(v)) = (item.key_str(), item.value_str()) {
            if let Some(rel) = keys.relative(k) {
                out.insert(rel.to_string(), (v.to_string(), item.mod_revision()));
            }
        }
    }
    Ok((out, revision))
}

/// Watches a service's prefix from `revision` on.
pub async fn watch_service(client: &Client, keys: &Keys, revision: i64) -> Result<WatchStream, String> {
    let mut w = client.watch_client();
    let options = WatchOptions::new().with_prefix().with_start_revision(revision);
    within("watch", w.watch(keys.prefix.as_str(), Some(options))).await
}

/// One change a watch reported: the relative key and its new value and mod_revision (`None`: deleted).
pub type Change = (String, Option<(String, i64)>);

/// The changes in one watch response, relative to the service's prefix.
pub fn changes(keys: &Keys, response: &etcd_client::WatchResponse) -> Vec<Change> {
    response
        .events()
        .iter()
        .filter_map(|e| {
            let kv = e.kv()?;
            let rel = keys.relative(kv.key_str().ok()?)?.to_string();
            Some(match e.event_type() {
                EventType::Put => (rel, Some((kv.value_str().ok()?.to_string(), kv.mod_revision()))),
                EventType::Delete => (rel, None),
            })
        })
        .collect()
}

/// `fleet apply`: the desired state, its phase `canary` and its history record, in one txn.
pub async fn put_desired(
    client: &Client,
    keys: &Keys,
    desired: &Desired,
    record: &HistoryRecord,
) -> Result<(), String> {
    let txn = Txn::new().and_then(vec![
        TxnOp::put(keys.desired(), json(desired), None),
        TxnOp::put(keys.phase(&desired.id), Phase::Canary.to_string(), None),
        TxnOp::put(keys.history(&record.id), json(record), None),
    ]);
    within("apply", client.kv_client().txn(txn)).await.map(|_| ())
}

/// `fleet rollback`: no desired state; the rollout in force (if any) `rolled-back`; a history
/// record.
pub async fn rollback(
    client: &Client,
    keys: &Keys,
    rollout: Option<&str>,
    record: &HistoryRecord,
) -> Result<(), String> {
    let mut ops = vec![TxnOp::delete(keys.desired(), None), TxnOp::put(keys.history(&record.id), json(record), None)];
    if let Some(id) = rollout {
        ops.push(TxnOp::put(keys.phase(id), Phase::RolledBack.to_string(), None));
    }
    within("rollback", client.kv_client().txn(Txn::new().and_then(ops))).await.map(|_| ())
}

/// Claims canary slot `k` of `rollout` for `instance`, if nobody has: whether it won.
pub async fn claim_slot(client: &Client, keys: &Keys, rollout: &str, k: usize, instance: &str) -> Result<bool, String> {
    let key = keys.slot(rollout, k);
    let txn = Txn::new()
        .when(vec![Compare::create_revision(key.clone(), CompareOp::Equal, 0)])
        .and_then(vec![TxnOp::put(key, instance, None)]);
    within("claim a canary slot", client.kv_client().txn(txn)).await.map(|r| r.succeeded())
}

/// Records that canary `instance` held `rollout`.
pub async fn put_held(client: &Client, keys: &Keys, rollout: &str, instance: &str) -> Result<(), String> {
    let at = crate::journal::now_ms().to_string();
    within("record a held canary", client.kv_client().put(keys.held(rollout, instance), at, None)).await.map(|_| ())
}

/// Moves `rollout`'s phase to `to` if it is still the one seen at `seen_revision` (its
/// mod_revision): whether this call moved it (exactly one of racing daemons does).
pub async fn move_phase(
    client: &Client,
    keys: &Keys,
    rollout: &str,
    seen_revision: i64,
    to: &Phase,
) -> Result<bool, String> {
    let key = keys.phase(rollout);
    let txn = Txn::new()
        .when(vec![Compare::mod_revision(key.clone(), CompareOp::Equal, seen_revision)])
        .and_then(vec![TxnOp::put(key, to.to_string(), None)]);
    within("move the phase", client.kv_client().txn(txn)).await.map(|r| r.succeeded())
}

/// An instance's observed state, under `lease`.
pub async fn put_instance(client: &Client, keys: &Keys, observed: &Observed, lease: i64) -> Result<(), String> {
    let options = PutOptions::new().with_lease(lease);
    within("report an instance", client.kv_client().put(keys.instance(&observed.id), json(observed), Some(options)))
        .await
        .map(|_| ())
}

/// Removes an instance whose JVM is gone.
pub async fn delete_instance(client: &Client, keys: &Keys, instance: &str) -> Result<(), String> {
    within("remove an instance", client.kv_client().delete(keys.instance(instance), None::<DeleteOptions>))
        .await
        .map(|_| ())
}

/// Grants a lease of `ttl`.
pub async fn grant_lease(client: &Client, ttl: Duration) -> Result<i64, String> {
    let ttl = ttl.as_secs().max(1) as i64;
    within("grant a lease", client.lease_client().grant(ttl, None)).await.map(|r| r.id())
}

/// Keeps `lease` alive until it cannot be (etcd unreachable, or the lease expired): returns why.
pub async fn keep_alive(client: &Client, lease: i64, ttl: Duration) -> String {
    let mut leases = client.lease_client();
    let (mut keeper, mut stream) = match within("keep the lease alive", leases.keep_alive(lease)).await {
        Ok(k) => k,
        Err(e) => return e,
    };
    let every = (ttl / 3).max(Duration::from_millis(300));
    loop {
        if let Err(e) = keeper.keep_alive().await {
            return format!("etcd: lease keepalive: {e}");
        }
        match tokio::time::timeout(CALL_TIMEOUT, stream.message()).await {
            Ok(Ok(Some(r))) if r.ttl() > 0 => {}
            Ok(Ok(Some(_))) => return "etcd: the lease expired".to_string(),
            Ok(Ok(None)) => return "etcd: the keepalive stream ended".to_string(),
            Ok(Err(e)) => return format!("etcd: lease keepalive: {e}"),
            Err(_) => return "etcd: lease keepalive: no answer".to_string(),
        }
        tokio::time::sleep(every).await;
    }
}
