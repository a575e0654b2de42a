//! `repairctl fleet ...`: a service's desired state in etcd (apply, rollback), what its
//! instances run (status) and its rollouts (history). The `repaird` on each host does the rest.

use std::path::Path;

use serde_json::json;

use super::{print, table, Output};
use crate::fleet::rollout::{self, Phase, View};
use crate::fleet::{deploy_name, store, BuildContent, Canary, Desired, HistoryRecord, Keys, Kind};

/// Where the service's keys are and how to reach etcd.
#[derive(Debug, Clone)]
pub struct Target {
    pub service: String,
    pub etcd: String,
    pub tls: store::TlsFiles,
}

/// How a rollout proceeds (`--canary`, `--hold`, `--max-faults`).
#[derive(Debug, Clone)]
pub struct RolloutOptions {
    pub canary: String,
    pub hold: std::time::Duration,
    pub max_faults: u64,
}

async fn open(target: &Target) -> Result<(etcd_client::Client, Keys), String> {
    crate::fleet::check_service(&target.service).map_err(|e| format!("--service {:?}: {e}", target.service))?;
    let client = store::connect(&store::endpoints(&target.etcd, &target.tls)?, &target.tls)
        .await
        .map_err(|e| explain(target, e))?;
    Ok((client, Keys::new(&target.service)))
}

/// An etcd error for people: a connection over TLS that closed says what to check (etcd closes
/// it when it wants a client certificate and gets none, or one it does not trust); others as is.
fn explain(target: &Target, error: String) -> String {
    let secure = target.etcd.contains("https://") || target.tls.ca.is_some() || target.tls.cert.is_some();
    let transport = ["connection closed", "Transport", "transport error", "tls handshake", "InvalidCertificate"];
    if !secure || !transport.iter().any(|t| error.contains(t)) {
        return error;
    }
    let what = error.strip_prefix("etcd: ").and_then(|e| e.split_once(": ")).map_or("connect", |(w, _)| w);
    let hint = if target.tls.cert.is_none() {
        "no client certificate was given: if etcd runs with --client-cert-auth, give --etcd-cert and --etcd-key"
    } else {
        "check that etcd trusts the client certificate's CA (its --trusted-ca-file) and that --etcd-ca signed etcd's"
    };
    format!("etcd {}: {what}: the TLS connection was refused or closed; {hint}", target.etcd)
}

/// A patch spec or a policy, told apart as the agent would: a top-level `rules:` key is a policy.
fn kind_and_name(file: &Path, text: &str) -> Result<(Kind, String), String> {
    let source = file.display().to_string();
    let value: serde_yaml_ng::Value = serde_yaml_ng::from_str(text).map_err(|e| format!("{source}: {e}"))?;
    if value.get("rules").is_some() {
        crate::policy::parse(text, &source)?;
        let name = file.file_stem().map_or_else(|| "policy".to_string(), |s| s.to_string_lossy().into_owned());
        let name: String = name
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') { c } else { '-' })
            .collect();
        return Ok((Kind::Policy, name));
    }
    let spec = crate::spec::PatchSpec::from_yaml(text, &source).map_err(|e| e.to_string())?;
    if let Some(file) = spec.attachments_needed().first() {
        return Err(format!(
            "{source}: the spec needs the file {file}; the fleet carries the spec alone (roll out a build with \
             repairctl deploy on each JVM, or a guard/rethrow/probe/breaker spec)"
        ));
    }
    Ok((Kind::Patch, spec.id))
}

pub async fn apply(target: &Target, file: &Path, options: &RolloutOptions, output: Output) -> Result<(), String> {
    let text = std::fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()))?;
    let (kind, name) = kind_and_name(file, &text)?;
    put(target, kind, name, text, options, output).await
}

/// `fleet deploy`: the build's class files (read as `repairctl deploy` reads them) as the
/// desired state; each repaird deploys them whole, as patch `deploy-<build's file stem>`.
pub async fn deploy(target: &Target, build: &Path, options: &RolloutOptions, output: Output) -> Result<(), String> {
    let files = super::deploy::read_build(build)?;
    let content = BuildContent::new(&build.display().to_string(), &files.class_files, &files.resources).to_content()?;
    let name = deploy_name(build);
    crate::spec::PatchSpec::check_id(&name).map_err(|e| format!("{}: {e}", build.display()))?;
    put(target, Kind::Deploy, name, content, options, output).await
}

async fn put(
    target: &Target,
    kind: Kind,
    name: String,
    content: String,
    options: &RolloutOptions,
    output: Output,
) -> Result<(), String> {
    let canary: Canary = rollout::parse_canary(&options.canary)?;
    let (client, keys) = open(target).await?;
    let at_ms = crate::journal::now_ms();
    let by = super::live::operator();
    let id = format!("{name}-{at_ms}");
    let desired = Desired {
        id: id.clone(),
        kind,
        name: name.clone(),
        content,
        canary,
        hold_ms: options.hold.as_millis() as u64,
        max_faults: options.max_faults,
        by: by.clone(),
        at_ms,
    };
    let record = HistoryRecord { id: id.clone(), kind: kind.to_string(), name, by, at_ms };
    store::put_desired(&client, &keys, &desired, &record).await.map_err(|e| explain(target, e))?;
    print(output, json!({"rollout": id, "service": target.service}), |_| format!("{id}\n"))
}

pub async fn rollback(target: &Target, output: Output) -> Result<(), String> {
    let (client, keys) = open(target).await?;
    let (values, _) = store::read_service(&client, &keys).await.map_err(|e| explain(target, e))?;
    let (view, _) = View::from_keys(&values);
    let current = view.desired.as_ref().map(|d| d.id.clone());
    let at_ms = crate::journal::now_ms();
    let record = HistoryRecord {
        id: format!("rollback-{at_ms}"),
        kind: "rollback".to_string(),
        name: current.clone().unwrap_or_default(),
        by: super::live::operator(),
        at_ms,
    };
    // A failed rollout keeps its phase (and reason); one still going is marked rolled-back.
    let going = current.as_deref().filter(|_| view.phase.as_ref().is_none_or(|(p, _)| !p.stopped()));
    store::rollback(&client, &keys, going, &record).await.map_err(|e| explain(target, e))?;
    print(output, json!({"rollback": record.id, "rolled_back": current, "service": target.service}), |_| match &current
    {
        Some(id) => format!("rolled back {id}: desired state of {} is nothing\n", target.service),
        None => format!("no rollout in force for {}: desired state is nothing\n", target.service),
    })
}

pub async fn status(target: &Target, output: Output) -> Result<(), String> {
    let (client, keys) = open(target).await?;
    let (values, _) = store::read_service(&client, &keys).await.map_err(|e| explain(target, e))?;
    let (view, problems) = View::from_keys(&values);
    for p in &problems {
        eprintln!("repairctl: {}: {p}", target.service);
    }
    let rollout = view.desired.as_ref().map(|d| {
        let phase = view.phase.as_ref().map(|(p, _)| p.clone());
        let reason = match &phase {
            Some(Phase::Failed(r)) => r.clone(),
            _ => String::new(),
        };
        json!({
            "id": d.id, "kind": d.kind, "name": d.name,
            "phase": phase.as_ref().map_or_else(|| "?".to_string(), Phase::to_string),
            "canaries": view.slots.values().collect::<Vec<_>>(), "reason": reason,
        })
    });
    let instances: Vec<&crate::fleet::Observed> = view.instances.values().collect();
    let value = json!({"service": target.service, "rollout": rollout, "instances": instances});
    print(output, value, |wide| {
        let mut out = match &view.desired {
            Some(d) => format!(
                "service {}: rollout {} ({} {}), phase {}, canaries {}\n",
                target.service,
                d.id,
                d.kind,
                d.name,
                view.phase.as_ref().map_or_else(|| "?".to_string(), |p| p.0.to_string()),
                if view.slots.is_empty() {
                    "-".to_string()
                } else {
                    view.slots.values().cloned().collect::<Vec<_>>().join(",")
                }
            ),
            None => format!("service {}: no desired state\n", target.service),
        };
        let rows: Vec<Vec<String>> = instances
            .iter()
            .map(|o| {
                vec![
                    o.id.clone(),
                    o.agent_version.clone(),
                    o.desired.clone().unwrap_or_else(|| "-".into()),
                    if o.running.is_empty() { "-".into() } else { o.running.join(",") },
                    serde_json::to_value(o.verdict)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_string))
                        .unwrap_or_default(),
                    if o.matches { "yes" } else { "no" }.into(),
                    o.faults.to_string(),
                ]
            })
            .collect();
        out.push_str(&table(
            &["INSTANCE", "AGENT", "DESIRED", "RUNNING", "VERDICT", "MATCHES", "FAULTS"],
            &rows,
            wide,
            "no instances reported (is repaird running beside the service?)",
        ));
        out
    })
}

pub async fn history(target: &Target, output: Output) -> Result<(), String> {
    let (client, keys) = open(target).await?;
    let (values, _) = store::read_service(&client, &keys).await.map_err(|e| explain(target, e))?;
    let mut records: Vec<HistoryRecord> = values
        .iter()
        .filter(|(k, _)| k.starts_with("history/"))
        .filter_map(|(_, (v, _))| serde_json::from_str(v).ok())
        .collect();
    records.sort_by_key(|r| r.at_ms);
    let phase_of = |id: &str| values.get(&format!("rollouts/{id}/phase")).map(|(p, _)| p.clone()).unwrap_or_default();
    let rows: Vec<serde_json::Value> = records
        .iter()
        .map(|r| json!({"id": r.id, "kind": r.kind, "name": r.name, "phase": phase_of(&r.id), "when": r.at_ms, "by": r.by}))
        .collect();
    print(output, json!(rows), |wide| {
        let rows: Vec<Vec<String>> = records
            .iter()
            .map(|r| vec![r.id.clone(), r.kind.clone(), r.name.clone(), clock(r.at_ms), r.by.clone(), phase_of(&r.id)])
            .collect();
        table(&["ROLLOUT", "KIND", "NAME", "WHEN (UTC)", "BY", "PHASE"], &rows, wide, "no rollouts")
    })
}

/// `YYYY-MM-DD HH:MM:SS` of a Unix-millisecond time, UTC.
fn clock(ms: u64) -> String {
    let secs = ms / 1000;
    let days = (secs / 86_400) as i64;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}", (secs / 3600) % 24, (secs / 60) % 60, secs % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patch_specs_and_policies_are_told_apart() {
        let spec = "id: fix\ntarget: { class: a.B, method: run }\naction:\n  guard: { fallback: default }\n";
        assert_eq!(kind_and_name(Path::new("fix.yaml"), spec).unwrap(), (Kind::Patch, "fix".to_string()));
        let policy = "rules:\n  - name: r\n    when: { exception: java.lang.RuntimeException }\n    then:\n      - guard: { fallback: default }\n";
        assert_eq!(kind_and_name(Path::new("dir/my policy.yaml"), policy).unwrap(), (Kind::Policy, "my-policy".into()));
        assert!(kind_and_name(Path::new("x.yaml"), "id: [").unwrap_err().contains("x.yaml"));
        assert_eq!(clock(0), "1970-01-01 00:00:00");
        let target = |url: &str, cert: bool| Target {
            service: "shop".into(),
            etcd: url.into(),
            tls: store::TlsFiles {
                ca: Some("ca.pem".into()),
                cert: cert.then(|| "me.pem".into()),
                key: cert.then(|| "me.key".into()),
            },
        };
        let closed = "etcd: read: grpc request error: source: tonic::transport::Error(Transport, hyper::Error(Canceled, \"connection closed\"))";
        let e = explain(&target("https://10.0.0.5:2379", false), closed.into());
        assert!(
            e.starts_with("etcd https://10.0.0.5:2379: read: the TLS connection") && e.contains("--etcd-cert"),
            "{e}"
        );
        assert!(explain(&target("https://e:2379", true), closed.into()).contains("--trusted-ca-file"));
        let plain = Target { tls: store::TlsFiles::default(), ..target("http://e:2379", false) };
        assert_eq!(explain(&plain, closed.into()), closed);
        assert_eq!(clock(1_700_000_000_000), "2023-11-14 22:13:20");
    }
}
