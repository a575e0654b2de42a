//! What bytecode fault capture costs per class as it loads: `throw_probe_all` (the agent's
//! exception-exit probes) over every class of the given jars, the first pass alone (cold caches,
//! as a program's start-up sees it) and then warm passes, on one thread, with the
//! system allocator (as the agent runs). With `--names FILE`, only the classes named there (dotted, one a
//! line: the classes a program loads, from `-Xlog:class+load`).
//!
//! `cargo run --release -p repair-bytecode --example capture_probe_bench -- [--names FILE] JAR...`

use std::path::Path;
use std::time::{Duration, Instant};

use repair_bytecode::archive::read_archive;
use repair_bytecode::transform::probe::throw_probe_all;

fn main() {
    let mut args = std::env::args().skip(1).peekable();
    let mut names: Option<std::collections::HashSet<String>> = None;
    let mut classes = Vec::new();
    while let Some(a) = args.next() {
        if a == "--names" {
            let file = args.next().expect("--names takes a file");
            let text = std::fs::read_to_string(&file).expect("--names file");
            names = Some(text.lines().map(|l| l.trim().replace('.', "/") + ".class").collect());
            continue;
        }
        match read_archive(Path::new(&a)) {
            Ok(entries) => classes.extend(
                entries
                    .into_iter()
                    .filter(|e| e.is_class())
                    .filter(|e| names.as_ref().is_none_or(|n| n.contains(&e.name)))
                    .map(|e| e.bytes),
            ),
            Err(e) => eprintln!("skipping {e}"),
        }
    }
    let bytes: usize = classes.iter().map(Vec::len).sum();
    let pass = |classes: &[Vec<u8>]| {
        let mut methods = 0;
        for c in classes {
            if let Ok((_, n)) = throw_probe_all(c, |_, _| Some(-1_000_000)) {
                methods += n;
            }
        }
        methods
    };
    let t = Instant::now();
    let methods = pass(&classes);
    let cold = t.elapsed();
    let start = Instant::now();
    let mut passes = 0;
    while passes < 5 || start.elapsed() < Duration::from_secs(3) {
        pass(&classes);
        passes += 1;
    }
    let warm = start.elapsed() / passes;
    let per = |d: Duration| d.as_secs_f64() * 1e6 / classes.len().max(1) as f64;
    println!(
        "classes={} bytes={bytes} methods_probed={methods} first_pass_ms={:.1} ({:.1} us/class) warm_pass_ms={:.1} ({:.1} us/class)",
        classes.len(),
        cold.as_secs_f64() * 1e3,
        per(cold),
        warm.as_secs_f64() * 1e3,
        per(warm)
    );
}
