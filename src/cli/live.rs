//! The commands that talk to a live agent over gRPC.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;
use serde_json::json;
use tokio_stream::StreamExt;

use super::Output;
use crate::client::{connect, describe, Client, Target};
use crate::endpoint::Endpoint;
use crate::proto;
use crate::spec::PatchSpec;

/// Which agent, and how to print.
#[derive(Args, Debug, Clone)]
pub struct Conn {
    /// The JVM's pid: its agent's socket is found from it.
    #[arg(short = 'p', long, conflicts_with = "endpoint")]
    pub pid: Option<u32>,
    /// unix:/path/to.sock, tcp:HOST:PORT or http://HOST:PORT.
    #[arg(long)]
    pub endpoint: Option<String>,
    /// Token of a TCP endpoint (read from the pid's token file when omitted).
    #[arg(long)]
    pub token: Option<String>,
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
        connect(&target, self.token.clone()).await
    }
}

fn rpc<T>(r: Result<tonic::Response<T>, tonic::Status>) -> Result<T, String> {
    r.map(tonic::Response::into_inner).map_err(|s| describe(&s))
}

fn print(output: Output, value: serde_json::Value, human: impl FnOnce() -> String) {
    match output {
        Output::Json => println!("{value}"),
        Output::Human => print!("{}", human()),
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
    });
    print(conn.output, value, || {
        let missing = if s.missing_capabilities.is_empty() { "none".into() } else { s.missing_capabilities.join("; ") };
        format!(
            "pid            {}\njvm            {}\nagent          {}\nloaded         {}\nfault capture  {}\ncapabilities   {}\nmissing        {}\nfaults seen    {}\npatches active {}\nclasses loaded {}\nuptime         {:.1}s\nendpoint       {}\n",
            s.pid, s.jvm, s.agent_version, s.load_mode, s.fault_capture, s.capabilities.join(", "), missing,
            s.faults_seen, s.patches_active, s.classes_loaded, s.uptime_ms as f64 / 1000.0, s.endpoint
        )
    });
    Ok(())
}

fn fault_json(f: &proto::Fault) -> serde_json::Value {
    let site = f.site.clone().unwrap_or_default();
    json!({
        "id": f.id, "exception": f.exception, "message": f.message, "thread": f.thread, "count": f.count,
        "caught": f.caught, "first_seen_ms": f.first_seen_ms, "last_seen_ms": f.last_seen_ms,
        "site": { "class": site.class_name, "method": site.method, "descriptor": site.descriptor, "bci": site.bci, "line": site.line },
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
        f.message.clone(),
    ]
}

pub async fn faults(conn: &Conn, follow: bool) -> Result<(), String> {
    let mut client = conn.client().await?;
    let r = rpc(client.faults(proto::FaultsRequest {}).await)?;
    let header = ["COUNT", "EXCEPTION", "SITE", "THREAD", "MESSAGE"];
    print(
        conn.output,
        json!({ "faults": r.faults.iter().map(fault_json).collect::<Vec<_>>(), "dropped_sites": r.dropped_sites }),
        || table(&header, &r.faults.iter().map(fault_row).collect::<Vec<_>>()),
    );
    if follow {
        let mut stream = rpc(client.watch_faults(proto::FaultsRequest {}).await)?;
        while let Some(f) = stream.next().await {
            let f = f.map_err(|s| describe(&s))?;
            match conn.output {
                Output::Json => println!("{}", fault_json(&f)),
                Output::Human => println!("{}", fault_row(&f).join("  ")),
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
    );
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
pub async fn apply(conn: &Conn, spec_path: &Path, files: &[String]) -> Result<(), String> {
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
    let who = std::env::var("USER").unwrap_or_else(|_| "unknown".into());
    let req = proto::ApplyRequest { spec_yaml: text, source, attachments, who };
    let p = rpc(conn.client().await?.apply(req).await)?;
    print(conn.output, patch_json(&p), || {
        format!("applied {}: {} on {}.{}\n", p.id, p.action, p.classes.join(","), p.method)
    });
    Ok(())
}

pub async fn patches(conn: &Conn) -> Result<(), String> {
    let r = rpc(conn.client().await?.patches(proto::PatchesRequest {}).await)?;
    print(conn.output, json!(r.patches.iter().map(patch_json).collect::<Vec<_>>()), || {
        table(&PATCH_HEADER, &r.patches.iter().map(patch_row).collect::<Vec<_>>())
    });
    Ok(())
}

pub async fn rollback(conn: &Conn, id: Option<String>, all: bool) -> Result<(), String> {
    let req = proto::RollbackRequest { id: id.unwrap_or_default(), all };
    let r = rpc(conn.client().await?.rollback(req).await)?;
    print(conn.output, json!(r.patches.iter().map(patch_json).collect::<Vec<_>>()), || {
        r.patches.iter().map(|p| format!("rolled back {}\n", p.id)).collect()
    });
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
    print(output, json!({"pid": pid, "agent": agent, "loaded": true}), || format!("agent loaded into JVM {pid}\n"));
    Ok(())
}
