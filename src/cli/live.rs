//! The commands that talk to a live agent over gRPC.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;
use serde_json::json;
use tokio_stream::StreamExt;

use super::{cut, print, print_record, table, Output, LAST_CELL};
use crate::client::{connect, describe, Client, Credentials, Target};
use crate::endpoint::Endpoint;
use crate::proto;
use crate::spec::PatchSpec;

/// The options every command takes, before or after its name (`repairctl --pid 42 apply x.yaml`):
/// which agent, and how to print.
#[derive(Args, Debug, Clone, Default)]
pub struct Conn {
    /// The JVM's pid: its agent's socket is found from it. Left out, the only JVM on this host
    /// with the agent is used (and named on stderr). Example: `--pid 4242`
    #[arg(short = 'p', long, global = true, conflicts_with = "endpoint", help_heading = "Global options")]
    pub pid: Option<u32>,
    /// The agent's endpoint instead of a pid: unix:/path/to.sock, tcp:HOST:PORT (plaintext,
    /// loopback) or tls:HOST:PORT. Example: `--endpoint tcp:127.0.0.1:7000`
    #[arg(long, global = true, value_name = "ENDPOINT", help_heading = "Global options")]
    pub endpoint: Option<String>,
    /// File holding the token of a TCP endpoint; else $REPAIR_TOKEN, else (with --pid) the
    /// token file the agent generated. Never on the command line: `ps` shows it to everyone.
    /// Example: `--token-file /etc/repair/token`
    #[arg(long, global = true, value_name = "FILE", help_heading = "Global options")]
    pub token_file: Option<PathBuf>,
    /// PEM file of the CA that signed the agent's certificate (tls: endpoints). Example:
    /// `--tls-ca ca.pem`
    #[arg(long, global = true, value_name = "FILE", help_heading = "Global options")]
    pub tls_ca: Option<PathBuf>,
    /// PEM file of this client's certificate, for an agent that requires one (mTLS). Example:
    /// `--tls-cert me.pem --tls-key me.key`
    #[arg(long, global = true, value_name = "FILE", requires = "tls_key", help_heading = "Global options")]
    pub tls_cert: Option<PathBuf>,
    /// PEM file of this client's private key (mTLS). Example: `--tls-key me.key`
    #[arg(long, global = true, value_name = "FILE", requires = "tls_cert", help_heading = "Global options")]
    pub tls_key: Option<PathBuf>,
    /// The name the agent's certificate must carry, when not the endpoint's host. Example:
    /// `--tls-domain agent.shop.internal`
    #[arg(long, global = true, value_name = "NAME", help_heading = "Global options")]
    pub tls_domain: Option<String>,
    /// How to print records: table (long cells cut), wide (every cell in full), json or yaml;
    /// a --follow stream prints one JSON object a line. Example: `-o json`
    #[arg(
        short = 'o',
        long = "output",
        global = true,
        value_enum,
        default_value = "table",
        help_heading = "Global options"
    )]
    pub output: Output,
}

impl Conn {
    /// Which agent: --pid, --endpoint, else the only JVM with the agent.
    fn target(&self) -> Result<Target, String> {
        Ok(match (&self.pid, &self.endpoint) {
            (Some(p), _) => Target::Pid(*p),
            (None, Some(e)) => Target::Endpoint(Endpoint::parse(e)?),
            (None, None) => Target::Pid(super::ps::default_pid()?),
        })
    }

    async fn open(&self) -> Result<(Client, Target), String> {
        let target = self.target()?;
        let credentials = Credentials {
            token: Credentials::token_from(self.token_file.as_deref())?,
            tls_ca: self.tls_ca.clone(),
            tls_cert: self.tls_cert.clone(),
            tls_key: self.tls_key.clone(),
            tls_domain: self.tls_domain.clone(),
        };
        Ok((connect(&target, &credentials).await?, target))
    }

    pub(crate) async fn client(&self) -> Result<Client, String> {
        Ok(self.open().await?.0)
    }
}

/// Whether process `pid` is gone (or a zombie waiting to be reaped).
fn exited(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat.rfind(')').and_then(|i| stat.get(i + 2..i + 3)).is_some_and(|st| st == "Z" || st == "X"),
    }
}

/// A --follow stream ended (`error`: how, if not cleanly). If the JVM exited, that is the end of
/// the stream, not an error: one line on stderr, status 0.
async fn stream_ended(conn: &Conn, target: &Target, error: Option<String>) -> Result<(), String> {
    match target {
        Target::Pid(pid) => {
            // The connection can close a moment before the process is gone.
            for _ in 0..40 {
                if exited(*pid) {
                    eprintln!("repairctl: JVM {pid} exited; the stream ended");
                    return Ok(());
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        Target::Endpoint(e) => {
            tokio::time::sleep(Duration::from_millis(200)).await;
            if conn.client().await.is_err() {
                eprintln!("repairctl: the agent at {e} went away (its JVM exited?); the stream ended");
                return Ok(());
            }
        }
    }
    Err(error.unwrap_or_else(|| "the agent ended the stream".to_string()))
}

pub(crate) fn rpc<T>(r: Result<tonic::Response<T>, tonic::Status>) -> Result<T, String> {
    r.map(tonic::Response::into_inner).map_err(|s| describe(&s))
}

pub async fn status(conn: &Conn) -> Result<(), String> {
    let s = rpc(conn.client().await?.status(proto::StatusRequest {}).await)?;
    let value = json!({
        "pid": s.pid, "jvm": s.jvm, "agent_version": s.agent_version, "load_mode": s.load_mode,
        "fault_capture": s.fault_capture, "capabilities": s.capabilities, "missing_capabilities": s.missing_capabilities,
        "faults_seen": s.faults_seen, "patches_active": s.patches_active, "classes_loaded": s.classes_loaded,
        "uptime_ms": s.uptime_ms, "endpoint": s.endpoint,
        "fault_capture_detail": s.fault_capture_detail, "classes_skipped": s.classes_skipped,
        "journal": s.journal, "instance": s.instance, "service": s.service,
    });
    print(conn.output, value, |wide| {
        // Each entry is `capability: why`; the table names them, -o wide adds why.
        let missing = if s.missing_capabilities.is_empty() {
            "none".into()
        } else if wide {
            s.missing_capabilities.join("\n               ")
        } else {
            let names: Vec<&str> =
                s.missing_capabilities.iter().map(|m| m.split_once(": ").map_or(m.as_str(), |(n, _)| n)).collect();
            format!("{} (why: -o wide)", names.join(", "))
        };
        let capture = if s.fault_capture_detail.is_empty() {
            s.fault_capture.clone()
        } else {
            format!(
                "{} ({})",
                s.fault_capture,
                if wide { s.fault_capture_detail.clone() } else { cut(&s.fault_capture_detail, LAST_CELL) }
            )
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

const FAULT_HEADER: [&str; 6] = ["COUNT", "EXCEPTION", "SITE", "THREAD", "HANDLED", "MESSAGE"];

/// A table row as one line of a stream: the cells cut as in a table (unless wide), two spaces apart.
fn stream_line(row: Vec<String>, wide: bool) -> String {
    let last = row.len().saturating_sub(1);
    row.iter()
        .enumerate()
        .map(|(i, c)| if wide { c.clone() } else { cut(c, if i == last { LAST_CELL } else { super::CELL }) })
        .collect::<Vec<_>>()
        .join("  ")
}

pub async fn faults(conn: &Conn, follow: bool) -> Result<(), String> {
    let (mut client, target) = conn.open().await?;
    // Subscribe before listing so no fault falls between the two (one in both shows twice, with
    // its count as each saw it).
    let mut stream = if follow { Some(rpc(client.watch_faults(proto::FaultsRequest {}).await)?) } else { None };
    let r = rpc(client.faults(proto::FaultsRequest {}).await)?;
    if follow && !conn.output.is_table() {
        // A stream: every record on its own (one JSON object a line), the known ones first.
        for f in &r.faults {
            print_record(conn.output, &fault_json(f), |_| String::new())?;
        }
    } else {
        print(
            conn.output,
            json!({ "faults": r.faults.iter().map(fault_json).collect::<Vec<_>>(), "dropped_sites": r.dropped_sites }),
            |wide| {
                let empty = if follow { "no faults yet; waiting for new ones" } else { "no faults" };
                table(&FAULT_HEADER, &r.faults.iter().map(fault_row).collect::<Vec<_>>(), wide, empty)
            },
        )?;
    }
    if let Some(stream) = stream.as_mut() {
        loop {
            match stream.next().await {
                Some(Ok(f)) => print_record(conn.output, &fault_json(&f), |wide| stream_line(fault_row(&f), wide))?,
                Some(Err(s)) => return stream_ended(conn, &target, Some(describe(&s))).await,
                None => return stream_ended(conn, &target, None).await,
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
        |wide| table(&["CLASS", "LOADER", "MODIFIABLE"], &rows, wide, &format!("no loaded class matches {glob}")),
    )?;
    Ok(())
}

/// The bytes the JVM runs for `class` now, or (`original`) as it loaded them, before any patch.
pub async fn class_bytes(conn: &Conn, class: &str, original: bool) -> Result<Vec<u8>, String> {
    let r =
        rpc(conn.client().await?.class_bytes(proto::ClassBytesRequest { class_name: class.into(), original }).await)?;
    Ok(r.bytes)
}

/// The bytecode the methods of `method` run now.
pub async fn running_code(conn: &Conn, class: &str, method: &str) -> Result<(), String> {
    let req = proto::RunningCodeRequest { class_name: class.into(), method: method.into() };
    let r = rpc(conn.client().await?.running_code(req).await)?;
    let value = json!(r
        .methods
        .iter()
        .map(|m| json!({"method": m.method, "length": m.bytecode.len(), "sha256": m.sha256,
                        "bytecode": m.bytecode.iter().map(|b| format!("{b:02x}")).collect::<String>()}))
        .collect::<Vec<_>>());
    print(conn.output, value, |wide| {
        let rows: Vec<Vec<String>> =
            r.methods.iter().map(|m| vec![m.method.clone(), m.bytecode.len().to_string(), m.sha256.clone()]).collect();
        table(&["METHOD", "BYTES", "SHA256"], &rows, wide, "no methods")
    })
}

/// The active patch `id`, as `repairctl patches` lists it.
pub async fn patch(conn: &Conn, id: &str) -> Result<proto::Patch, String> {
    let r = rpc(conn.client().await?.patches(proto::PatchesRequest {}).await)?;
    let ids: Vec<String> = r.patches.iter().map(|p| p.id.clone()).collect();
    r.patches.into_iter().find(|p| p.id == id).ok_or_else(|| {
        if ids.is_empty() {
            format!("no active patch {id:?}: there are no patches")
        } else {
            format!("no active patch {id:?} (active: {})", ids.join(", "))
        }
    })
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
    print(conn.output, patch_json(&p), |_| {
        format!("applied {}: {} on {}.{}\n", p.id, p.action, p.classes.join(","), p.method)
    })?;
    Ok(())
}

pub async fn patches(conn: &Conn) -> Result<(), String> {
    let r = rpc(conn.client().await?.patches(proto::PatchesRequest {}).await)?;
    print(conn.output, json!(r.patches.iter().map(patch_json).collect::<Vec<_>>()), |wide| {
        table(&PATCH_HEADER, &r.patches.iter().map(patch_row).collect::<Vec<_>>(), wide, "no patches")
    })?;
    Ok(())
}

pub async fn rollback(conn: &Conn, id: Option<String>, all: bool) -> Result<(), String> {
    let req = proto::RollbackRequest { id: id.unwrap_or_default(), all, who: operator() };
    let r = rpc(conn.client().await?.rollback(req).await)?;
    print(conn.output, json!(r.patches.iter().map(patch_json).collect::<Vec<_>>()), |_| {
        if r.patches.is_empty() {
            return "no patches to roll back\n".to_string();
        }
        r.patches.iter().map(|p| format!("rolled back {}\n", p.id)).collect()
    })?;
    Ok(())
}

/// Who is at the console, as journaled: the login name ($USER, $LOGNAME, else the uid's name in
/// /etc/passwd), else the user id (`uid:1000`).
pub(crate) fn operator() -> String {
    ["USER", "LOGNAME"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|n| !n.is_empty()))
        .or_else(|| crate::endpoint::current_uid().map(super::ps::user_name))
        .unwrap_or_else(|| "unknown".into())
}

fn policy_json(p: &proto::PolicyReply) -> serde_json::Value {
    json!({
        "loaded": p.loaded, "source": p.source, "mode": p.mode, "loaded_at_ms": p.loaded_at_ms,
        "loaded_by": p.loaded_by, "yaml": p.yaml,
        "rules": p.rules.iter().map(|r| json!({
            "name": r.name, "when": r.when, "actions": r.actions, "fired": r.fired, "applied": r.applied,
            "validated": r.validated, "unproven": r.unproven, "rolled_back": r.rolled_back, "held": r.held,
        })).collect::<Vec<_>>(),
    })
}

fn policy_text(p: &proto::PolicyReply, wide: bool) -> String {
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
                r.unproven.to_string(),
                r.rolled_back.to_string(),
                r.held.to_string(),
            ]
        })
        .collect();
    out.push_str(&table(
        &["RULE", "WHEN", "FIRED", "APPLIED", "HELD UP", "UNPROVEN", "ROLLED BACK", "HELD BACK"],
        &rows,
        wide,
        "no rules",
    ));
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
    print(conn.output, policy_json(&p), |_| format!("policy {} in force ({} rules)\n", p.source, p.rules.len()))?;
    Ok(())
}

pub async fn policy_show(conn: &Conn) -> Result<(), String> {
    let p = rpc(conn.client().await?.policy_show(proto::PolicyShowRequest {}).await)?;
    print(conn.output, policy_json(&p), |wide| policy_text(&p, wide))?;
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
    print(conn.output, value, |wide| {
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
            table(
                &["SEQ", "TIME (UTC)", "EVENT", "PATCH", "WHO", "JVM", "", "CLASS SHA-256", "REASON"],
                &rows,
                wide,
                "no records"
            )
        )
    })?;
    Ok(())
}

fn event_json(e: &proto::Event) -> serde_json::Value {
    json!({"seq": e.seq, "at_ms": e.at_ms, "at_us": e.at_us, "kind": e.kind, "rule": e.rule, "patch": e.patch,
           "site": e.site, "reason": e.reason})
}

fn event_line(e: &proto::Event, wide: bool) -> String {
    let mut s = format!("{} {:<17}", clock(e.at_ms), e.kind);
    for (k, v) in [("rule", &e.rule), ("patch", &e.patch), ("at", &e.site)] {
        if !v.is_empty() {
            s.push_str(&format!(" {k}={}", if wide { v.clone() } else { cut(v, super::CELL) }));
        }
    }
    if !e.reason.is_empty() {
        s.push_str(": ");
        s.push_str(&if wide { e.reason.clone() } else { cut(&e.reason, LAST_CELL) });
    }
    s
}

pub async fn events(conn: &Conn, follow: bool) -> Result<(), String> {
    let (mut client, target) = conn.open().await?;
    // Subscribe before listing so nothing falls between the two; duplicates are skipped by seq.
    let mut stream = if follow { Some(rpc(client.watch_events(proto::EventsRequest {}).await)?) } else { None };
    let r = rpc(client.events(proto::EventsRequest {}).await)?;
    if follow && !conn.output.is_table() {
        for e in &r.events {
            print_record(conn.output, &event_json(e), |_| String::new())?;
        }
    } else {
        print(conn.output, json!(r.events.iter().map(event_json).collect::<Vec<_>>()), |wide| {
            if r.events.is_empty() {
                return if follow { "no events yet; waiting for new ones\n" } else { "no events\n" }.to_string();
            }
            r.events.iter().map(|e| format!("{}\n", event_line(e, wide))).collect()
        })?;
    }
    let mut last = r.events.last().map_or(0, |e| e.seq);
    if let Some(stream) = stream.as_mut() {
        loop {
            match stream.next().await {
                Some(Ok(e)) if e.seq <= last => {}
                Some(Ok(e)) => {
                    last = e.seq;
                    print_record(conn.output, &event_json(&e), |wide| event_line(&e, wide))?;
                }
                Some(Err(s)) => return stream_ended(conn, &target, Some(describe(&s))).await,
                None => return stream_ended(conn, &target, None).await,
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
    // The agent opens its socket on a thread of its own: wait for it (under the JVM's user's
    // uid, found as `repairctl --pid` finds it), so the next command finds it too.
    let tcp = options.split(',').find_map(|kv| kv.strip_prefix("control=")).filter(|c| c.starts_with("tcp:"));
    let mut socket = crate::endpoint::find_socket(pid);
    for _ in 0..if tcp.is_some() { 0 } else { 50 } {
        if socket.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
        socket = crate::endpoint::find_socket(pid);
    }
    let endpoint = socket.map(|s| format!("unix:{}", s.display())).or(tcp.map(str::to_string));
    print(output, json!({"pid": pid, "agent": agent, "loaded": true, "endpoint": endpoint}), |_| match &endpoint {
        Some(e) => format!("agent loaded into JVM {pid}, listening on {e}\n"),
        None => format!("agent loaded into JVM {pid} (no socket of it found: see the JVM's stderr)\n"),
    })?;
    Ok(())
}
