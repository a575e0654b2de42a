//! The commands that talk to a live agent over gRPC.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;
use serde_json::json;
use tokio_stream::StreamExt;

use super::{out, Output};
use crate::client::{connect, describe, Client, Credentials, Target};
use crate::endpoint::Endpoint;
use crate::proto;
use crate::spec::PatchSpec;

/// Which agent, and how to print.
#[derive(Args, Debug, Clone)]
pub struct Conn {
    /// The JVM's pid: its agent's socket is found from it.
    #[arg(short = 'p', long, conflicts_with = "endpoint")]
    pub pid: Option<u32>,
    /// unix:/path/to.sock, tcp:HOST:PORT (plaintext, loopback) or tls:HOST:PORT.
    #[arg(long)]
    pub endpoint: Option<String>,
    /// File holding the token of a TCP endpoint; else $REPAIR_TOKEN, else (with --pid) the
    /// token file the agent generated. Never on the command line: `ps` shows it to everyone.
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// PEM file of the CA that signed the agent's certificate (tls: endpoints).
    #[arg(long, value_name = "FILE")]
    pub tls_ca: Option<PathBuf>,
    /// PEM file of this client's certificate, for an agent that requires one (mTLS).
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM file of this client's private key (mTLS).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// The name the agent's certificate must carry, when not the endpoint's host.
    #[arg(long, value_name = "NAME")]
    pub tls_domain: Option<String>,
    /// human (tables) or json.
    #[arg(short = 'o', long = "output", value_enum, default_value = "human")]
    pub output: Output,
}

impl Conn {
    async fn client(&self) -> Result<Client, String> {
        let target = match (&self.pid, &self.endpoint) {
            (Some(p), _) => Target::Pid(*p),
            (None, Some(e)) => Target::Endpoint(Endpoint::parse(e)?),
            (None, None) => return Err("give the JVM with --pid PID or --endpoint ENDPOINT".into()),
        };
        let credentials = Credentials {
            token: Credentials::token_from(self.token_file.as_deref())?,
            tls_ca: self.tls_ca.clone(),
            tls_cert: self.tls_cert.clone(),
            tls_key: self.tls_key.clone(),
            tls_domain: self.tls_domain.clone(),
        };
        connect(&target, &credentials).await
    }
}

fn rpc<T>(r: Result<tonic::Response<T>, tonic::Status>) -> Result<T, String> {
    r.map(tonic::Response::into_inner).map_err(|s| describe(&s))
}

fn print(output: Output, value: serde_json::Value, human: impl FnOnce() -> String) -> Result<(), String> {
    match output {
        Output::Json => out(&format!("{value}\n")),
        Output::Human => out(&human()),
    }
}

/// Left-aligned columns with a header row.
fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut width: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            width[i] = width[i].max(c.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let mut s: String = cells
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<w$}  ", w = width[i]))
            .collect::<String>()
            .trim_end()
            .to_string();
        s.push('\n');
        s
    };
    let mut out = line(header.iter().map(|h| h.to_string()).collect());
    for r in rows {
        out.push_str(&line(r.clone()));
    }
    out
}

pub async fn status(conn: &Conn) -> Result<(), String> {
    let s = rpc(conn.client().await?.status(proto::StatusRequest {}).await)?;
    let value = json!({
        "pid": s.pid, "jvm": s.jvm, "agent_version": s.agent_version, "load_mode": s.load_mode,
        "fault_capture": s.fault_capture, "capabilities": s.capabilities, "missing_capabilities": s.missing_capabilities,
        "faults_seen": s.faults_seen, "patches_active": s.patches_active, "classes_loaded": s.classes_loaded,
        "uptime_ms": s.uptime_ms, "endpoint": s.endpoint,
        "fault_capture_detail": s.fault_capture_detail, "classes_skipped": s.classes_skipped,
        "journal": s.journal, "instance": s.instance,
    });
    print(conn.output, value, || {
        let missing = if s.missing_capabilities.is_empty() { "none".into() } else { s.missing_capabilities.join("; ") };
        let capture = if s.fault_capture_detail.is_empty() {
            s.fault_capture.clone()
        } else {
            format!("{} ({})", s.fault_capture, s.fault_capture_detail)
        };
        format!(
            "pid            {}\njvm            {}\nagent          {}\nloaded         {}\nfault capture  {}\ncapabilities   {}\nmissing        {}\nfaults seen    {}\npatches active {}\nclasses loaded {}\nuptime         {:.1}s\nendpoint       {}\njournal        {} (this JVM: {})\n",
            s.pid, s.jvm, s.agent_version, s.load_mode, capture, s.capabilities.join(", "), missing,
            s.faults_seen, s.patches_active, s.classes_loaded, s.uptime_ms as f64 / 1000.0, s.endpoint,
            s.journal, s.instance
        )
    })?;
    Ok(())
}

fn fault_json(f: &proto::Fault) -> serde_json::Value {
    let site = f.site.clone().unwrap_or_default();
    json!({
        "id": f.id, "exception": f.exception, "message": f.message, "thread": f.thread, "count": f.count,
        "caught": f.caught, "first_seen_ms": f.first_seen_ms, "last_seen_ms": f.last_seen_ms,
        "site": { "class": site.class_name, "method": site.method, "descriptor": site.method_descriptor, "bci": site.bci, "line": site.line },
        "stack": f.stack.iter().map(|s| format!("{}.{}:{}", s.class_name, s.method, s.line)).collect::<Vec<_>>(),
    })
}

fn fault_row(f: &proto::Fault) -> Vec<String> {
    let site = f.site.clone().unwrap_or_default();
    let line = if site.line > 0 { format!(":{}", site.line) } else { format!("@{}", site.bci) };
    vec![
        f.count.to_string(),
        f.exception.clone(),
        format!("{}.{}{line}", site.class_name, site.method),
        f.thread.clone(),
        crate::policy::handled_word(f.caught).unwrap_or("-").to_string(),
        f.message.clone(),
    ]
}

pub async fn faults(conn: &Conn, follow: bool) -> Result<(), String> {
    let mut client = conn.client().await?;
    let r = rpc(client.faults(proto::FaultsRequest {}).await)?;
    let header = ["COUNT", "EXCEPTION", "SITE", "THREAD", "HANDLED", "MESSAGE"];
    print(
        conn.output,
        json!({ "faults": r.faults.iter().map(fault_json).collect::<Vec<_>>(), "dropped_sites": r.dropped_sites }),
        || table(&header, &r.faults.iter().map(fault_row).collect::<Vec<_>>()),
    )?;
    if follow {
        let mut stream = rpc(client.watch_faults(proto::FaultsRequest {}).await)?;
        while let Some(f) = stream.next().await {
            let f = f.map_err(|s| describe(&s))?;
            match conn.output {
                Output::Json => out(&format!("{}\n", fault_json(&f)))?,
                Output::Human => out(&format!("{}\n", fault_row(&f).join("  ")))?,
            }
        }
    }
    Ok(())
}

pub async fn classes(conn: &Conn, glob: &str) -> Result<(), String> {
    let r = rpc(conn.client().await?.classes(proto::ClassesRequest { glob: glob.into() }).await)?;
    let rows: Vec<Vec<String>> = r
        .classes
        .iter()
        .map(|c| vec![c.name.clone(), c.loader.clone(), if c.modifiable { "yes" } else { "no" }.into()])
        .collect();
    print(
        conn.output,
        json!(r
            .classes
            .iter()
            .map(|c| json!({"name": c.name, "loader": c.loader, "modifiable": c.modifiable}))
            .collect::<Vec<_>>()),
        || table(&["CLASS", "LOADER", "MODIFIABLE"], &rows),
    )?;
    Ok(())
}

pub async fn class_bytes(conn: &Conn, class: &str) -> Result<Vec<u8>, String> {
    let r = rpc(conn.client().await?.class_bytes(proto::ClassBytesRequest { class_name: class.into() }).await)?;
    Ok(r.bytes)
}

fn patch_row(p: &proto::Patch) -> Vec<String> {
    vec![
        p.id.clone(),
        p.classes.join(","),
        p.method.clone(),
        p.action.clone(),
        p.state.clone(),
        p.fallbacks.to_string(),
        p.who.clone(),
    ]
}

fn patch_json(p: &proto::Patch) -> serde_json::Value {
    json!({"id": p.id, "classes": p.classes, "method": p.method, "action": p.action, "state": p.state,
           "fallbacks": p.fallbacks, "who": p.who, "applied_at_ms": p.applied_at_ms, "durable": p.durable})
}

const PATCH_HEADER: [&str; 7] = ["ID", "CLASSES", "METHOD", "ACTION", "STATE", "FALLBACKS", "WHO"];

/// Reads the spec and the files it names (relative to it), plus `--file NAME=PATH` extras.
pub async fn apply(conn: &Conn, spec_path: &Path, files: &[String], allow_jdk: bool) -> Result<(), String> {
    let text = std::fs::read_to_string(spec_path).map_err(|e| format!("{}: {e}", spec_path.display()))?;
    let source = spec_path.display().to_string();
    let spec = PatchSpec::from_yaml(&text, &source).map_err(|e| e.to_string())?;
    let dir = spec_path.parent().unwrap_or(Path::new("."));
    let mut attachments = HashMap::new();
    for name in spec.attachments_needed() {
        let p = dir.join(&name);
        attachments.insert(
            name,
            std::fs::read(&p).map_err(|e| format!("{}: {} (named by the spec): {e}", source, p.display()))?,
        );
    }
    for f in files {
        let (name, path) = f.split_once('=').ok_or_else(|| format!("--file {f:?}: expected NAME=PATH"))?;
        attachments.insert(name.to_string(), std::fs::read(path).map_err(|e| format!("{path}: {e}"))?);
    }
    let req = proto::ApplyRequest { spec_yaml: text, source, attachments, who: operator(), allow_jdk };
    let p = rpc(conn.client().await?.apply(req).await)?;
    print(conn.output, patch_json(&p), || {
        format!("applied {}: {} on {}.{}\n", p.id, p.action, p.classes.join(","), p.method)
    })?;
    Ok(())
}

pub async fn patches(conn: &Conn) -> Result<(), String> {
    let r = rpc(conn.client().await?.patches(proto::PatchesRequest {}).await)?;
    print(conn.output, json!(r.patches.iter().map(patch_json).collect::<Vec<_>>()), || {
        table(&PATCH_HEADER, &r.patches.iter().map(patch_row).collect::<Vec<_>>())
    })?;
    Ok(())
}

pub async fn rollback(conn: &Conn, id: Option<String>, all: bool) -> Result<(), String> {
    let req = proto::RollbackRequest { id: id.unwrap_or_default(), all, who: operator() };
    let r = rpc(conn.client().await?.rollback(req).await)?;
    print(conn.output, json!(r.patches.iter().map(patch_json).collect::<Vec<_>>()), || {
        r.patches.iter().map(|p| format!("rolled back {}\n", p.id)).collect()
    })?;
    Ok(())
}

/// Who is at the console, as journaled: the login name, else the user id (`uid:1000`).
fn operator() -> String {
    ["USER", "LOGNAME"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|n| !n.is_empty()))
        .or_else(|| crate::endpoint::current_uid().map(|uid| format!("uid:{uid}")))
        .unwrap_or_else(|| "unknown".into())
}

fn policy_json(p: &proto::PolicyReply) -> serde_json::Value {
    json!({
        "loaded": p.loaded, "source": p.source, "mode": p.mode, "loaded_at_ms": p.loaded_at_ms,
        "loaded_by": p.loaded_by, "yaml": p.yaml,
        "rules": p.rules.iter().map(|r| json!({
            "name": r.name, "when": r.when, "actions": r.actions, "fired": r.fired, "applied": r.applied,
            "validated": r.validated, "rolled_back": r.rolled_back, "held": r.held,
        })).collect::<Vec<_>>(),
    })
}

fn policy_text(p: &proto::PolicyReply) -> String {
    if !p.loaded {
        return "no policy in force\n".to_string();
    }
    let mut out = format!("policy {} (mode {}), loaded by {}\n", p.source, p.mode, p.loaded_by);
    let rows: Vec<Vec<String>> = p
        .rules
        .iter()
        .map(|r| {
            vec![
                r.name.clone(),
                r.when.clone(),
                r.fired.to_string(),
                r.applied.to_string(),
                r.validated.to_string(),
                r.rolled_back.to_string(),
                r.held.to_string(),
            ]
        })
        .collect();
    out.push_str(&table(&["RULE", "WHEN", "FIRED", "APPLIED", "HELD UP", "ROLLED BACK", "HELD BACK"], &rows));
    for r in &p.rules {
        for (i, a) in r.actions.iter().enumerate() {
            out.push_str(&format!("  {} action {i}: {a}\n", r.name));
        }
    }
    out
}

pub async fn policy_apply(conn: &Conn, file: &Path) -> Result<(), String> {
    let yaml = std::fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()))?;
    let source = file.display().to_string();
    // Checked here first: a bad file gets its error without a round trip.
    crate::policy::parse(&yaml, &source)?;
    let req = proto::PolicyApplyRequest { yaml, source, who: operator() };
    let p = rpc(conn.client().await?.policy_apply(req).await)?;
    print(conn.output, policy_json(&p), || format!("policy {} in force ({} rules)\n", p.source, p.rules.len()))?;
    Ok(())
}

pub async fn policy_show(conn: &Conn) -> Result<(), String> {
    let p = rpc(conn.client().await?.policy_show(proto::PolicyShowRequest {}).await)?;
    print(conn.output, policy_json(&p), || policy_text(&p))?;
    Ok(())
}

/// Local time of a Unix-millisecond timestamp, as `HH:MM:SS.mmm` UTC.
fn clock(ms: u64) -> String {
    let s = ms / 1000;
    format!("{:02}:{:02}:{:02}.{:03}", (s / 3600) % 24, (s / 60) % 60, s % 60, ms % 1000)
}

pub async fn history(conn: &Conn) -> Result<(), String> {
    let mut client = conn.client().await?;
    // Page by page: a long journal would not fit in one gRPC message.
    let mut r = rpc(client.history(proto::HistoryRequest { after_seq: 0, limit: 1000 }).await)?;
    let (mut more, mut after_seq) = (r.more, r.next_after_seq);
    while more {
        let mut page = rpc(client.history(proto::HistoryRequest { after_seq, limit: 1000 }).await)?;
        r.records.append(&mut page.records);
        (more, after_seq) = (page.more, page.next_after_seq);
    }
    let value = json!({
        "state_dir": r.state_dir,
        "journal": r.journal,
        "records": r.records.iter().map(|h| json!({
            "seq": h.seq, "at_ms": h.at_ms, "event": h.event, "patch_id": h.patch_id, "who": h.who,
            "classes": h.classes, "spec": h.spec, "durable": h.durable, "hashes_before": h.hashes_before,
            "hashes_after": h.hashes_after, "reason": h.reason, "instance": h.instance,
        })).collect::<Vec<_>>(),
    });
    print(conn.output, value, || {
        let short = |h: &[String]| h.iter().map(|x| x.get(..12).unwrap_or(x).to_string()).collect::<Vec<_>>().join(",");
        let rows: Vec<Vec<String>> = r
            .records
            .iter()
            .map(|h| {
                let hashes = if h.hashes_before.is_empty() {
                    String::new()
                } else {
                    format!("{} -> {}", short(&h.hashes_before), short(&h.hashes_after))
                };
                vec![
                    h.seq.to_string(),
                    clock(h.at_ms),
                    h.event.clone(),
                    h.patch_id.clone(),
                    h.who.clone(),
                    h.instance.clone(),
                    if h.durable { "durable".into() } else { String::new() },
                    hashes,
                    h.reason.clone(),
                ]
            })
            .collect();
        format!(
            "journal in {} ({})\n{}",
            r.state_dir,
            r.journal,
            table(&["SEQ", "TIME (UTC)", "EVENT", "PATCH", "WHO", "JVM", "", "CLASS SHA-256", "REASON"], &rows)
        )
    })?;
    Ok(())
}

fn event_json(e: &proto::Event) -> serde_json::Value {
    json!({"seq": e.seq, "at_ms": e.at_ms, "at_us": e.at_us, "kind": e.kind, "rule": e.rule, "patch": e.patch,
           "site": e.site, "reason": e.reason})
}

fn event_line(e: &proto::Event) -> String {
    let mut s = format!("{} {:<17}", clock(e.at_ms), e.kind);
    for (k, v) in [("rule", &e.rule), ("patch", &e.patch), ("at", &e.site)] {
        if !v.is_empty() {
            s.push_str(&format!(" {k}={v}"));
        }
    }
    if !e.reason.is_empty() {
        s.push_str(": ");
        s.push_str(&e.reason);
    }
    s
}

pub async fn events(conn: &Conn, follow: bool) -> Result<(), String> {
    let mut client = conn.client().await?;
    // Subscribe before listing so nothing falls between the two; duplicates are skipped by seq.
    let mut stream = if follow { Some(rpc(client.watch_events(proto::EventsRequest {}).await)?) } else { None };
    let r = rpc(client.events(proto::EventsRequest {}).await)?;
    print(conn.output, json!(r.events.iter().map(event_json).collect::<Vec<_>>()), || {
        r.events.iter().map(|e| format!("{}\n", event_line(e))).collect()
    })?;
    let mut last = r.events.last().map_or(0, |e| e.seq);
    if let Some(stream) = stream.as_mut() {
        while let Some(e) = stream.next().await {
            let e = e.map_err(|s| describe(&s))?;
            if e.seq <= last {
                continue;
            }
            last = e.seq;
            match conn.output {
                Output::Json => out(&format!("{}\n", event_json(&e)))?,
                Output::Human => out(&format!("{}\n", event_line(&e)))?,
            }
        }
    }
    Ok(())
}

/// Loads the agent into JVM `pid`; the library defaults to `librepair.so` beside repairctl.
pub fn attach(pid: u32, options: &str, agent: Option<PathBuf>, output: Output) -> Result<(), String> {
    let agent = match agent {
        Some(a) => std::fs::canonicalize(&a).map_err(|e| format!("agent library {}: {e}", a.display()))?,
        None => std::env::current_exe()
            .map_err(|e| format!("cannot find repairctl's directory: {e}"))?
            .with_file_name("librepair.so"),
    };
    let r = crate::attach::load_agent(pid, &agent, options, Duration::from_secs(10))?;
    if r.agent_code != 0 {
        return Err(format!(
            "JVM {pid}: the agent refused to start (Agent_OnAttach returned {}); see the JVM's stderr",
            r.agent_code
        ));
    }
    print(output, json!({"pid": pid, "agent": agent, "loaded": true}), || format!("agent loaded into JVM {pid}\n"))?;
    Ok(())
}
