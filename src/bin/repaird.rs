//! `repaird`: the fleet's daemon, one per host. It finds the local JVMs with the agent, groups
//! them by service and keeps each JVM equal to its service's desired state in etcd, canary
//! first (see `repair_model::fleet`).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use repair_model::fleet::{daemon, store};

#[derive(Parser)]
#[command(
    name = "repaird",
    version,
    about = "Keeps the JVMs of this host equal to their service's desired state in etcd (repairctl fleet)",
    after_help = "Examples:\n  repaird --etcd http://10.0.0.5:2379 --host $(hostname)\n  \
        repaird --etcd https://etcd:2379 --host node-7 --etcd-ca ca.pem --etcd-cert me.pem --etcd-key me.key"
)]
struct Args {
    /// The etcd endpoints, comma-separated. Example: `--etcd http://127.0.0.1:2379`
    #[arg(long, value_name = "URL[,URL...]")]
    etcd: String,
    /// This host's name in the fleet (instance ids are HOST/PID). Example: `--host node-7`
    #[arg(long)]
    host: String,
    /// Only the JVMs whose agent socket is under this directory (e.g. their $TMPDIR). Example:
    /// `--agents-dir /run/shop`
    #[arg(long, value_name = "DIR")]
    agents_dir: Option<PathBuf>,
    /// Only these JVMs, comma-separated pids. Example: `--pids 4242,4243`
    #[arg(long, value_delimiter = ',')]
    pids: Option<Vec<u32>>,
    /// How long this daemon's instances stay in etcd after it stops keeping its lease alive.
    /// Example: `--lease-ttl 10s`
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    lease_ttl: std::time::Duration,
    #[command(flatten)]
    tls: store::TlsFiles,
}

fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let value = serde_yaml_ng::Value::String(text.to_string());
    let d = repair_model::spec::parse_duration(Some(&value), std::time::Duration::ZERO)?;
    if d < std::time::Duration::from_secs(1) {
        return Err("at least 1s (etcd leases count whole seconds)".to_string());
    }
    Ok(d)
}

fn main() -> ExitCode {
    let args = Args::parse();
    let tls = args.tls;
    let run = || -> Result<(), String> {
        if args.host.is_empty() || args.host.contains('/') {
            return Err(format!("--host {:?}: a host name without '/'", args.host));
        }
        let config = daemon::Config {
            etcd: store::endpoints(&args.etcd, &tls)?,
            tls,
            host: args.host,
            agents_dir: args.agents_dir,
            pids: args.pids,
            lease_ttl: args.lease_ttl,
        };
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("a tokio runtime: {e}"))?
            .block_on(daemon::run(config))
    };
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("repaird: error: {e}");
            ExitCode::FAILURE
        }
    }
}
