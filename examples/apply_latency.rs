//! The apply round trip as a client that stays connected sees it (see scripts/bench-agent.sh):
//! `Apply` over gRPC → spec parse, rewrite, `RetransformClasses` → reply, then `Rollback`.
//!
//! `cargo run --release --example apply_latency -- ENDPOINT SPEC.yaml N`

use std::time::Instant;

use repair_model::client::{connect, Target};
use repair_model::endpoint::Endpoint;
use repair_model::proto;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().collect();
    let [_, endpoint, spec_path, n] = args.as_slice() else {
        return Err("usage: apply_latency ENDPOINT SPEC.yaml N".into());
    };
    let spec_yaml = std::fs::read_to_string(spec_path).map_err(|e| format!("{spec_path}: {e}"))?;
    let id = repair_model::spec::PatchSpec::from_yaml(&spec_yaml, spec_path).map_err(|e| e.to_string())?.id;
    let mut client = connect(&Target::Endpoint(Endpoint::parse(endpoint)?), &Default::default()).await?;
    let n: usize = n.parse().map_err(|_| "N must be a number".to_string())?;
    let mut millis = Vec::with_capacity(n);
    for _ in 0..n {
        let req = proto::ApplyRequest { spec_yaml: spec_yaml.clone(), source: spec_path.clone(), ..Default::default() };
        let start = Instant::now();
        client.apply(req).await.map_err(|s| s.message().to_string())?;
        millis.push(start.elapsed().as_secs_f64() * 1000.0);
        client
            .rollback(proto::RollbackRequest { id: id.clone(), all: false, who: "bench".into() })
            .await
            .map_err(|s| s.message().to_string())?;
    }
    millis.sort_by(f64::total_cmp);
    let q = |p: f64| millis[((p * n as f64) as usize).min(n - 1)];
    println!("p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms (n={n})", q(0.5), q(0.99), millis[n - 1]);
    Ok(())
}
