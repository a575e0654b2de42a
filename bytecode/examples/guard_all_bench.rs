//! The repair side of the guard-all benchmark (see scripts/bench-rewrite.sh): loads every class
//! of the given jars into memory, warms up, then times at least 5 passes of `guard_all` over
//! them on one thread, as the ASM driver does.
//!
//! `cargo run --release -p repair-bytecode --example guard_all_bench -- [--seconds S] JAR...`

use std::path::Path;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::time::{Duration, Instant};

use repair_bytecode::archive::read_archive;
use repair_bytecode::transform::guard::guard_all;

fn main() {
    let mut args = std::env::args().skip(1).peekable();
    let mut warmup = 5.0;
    let mut classes = Vec::new();
    while let Some(a) = args.next() {
        if a == "--seconds" {
            warmup = args.next().and_then(|s| s.parse().ok()).expect("--seconds takes a number");
            continue;
        }
        match read_archive(Path::new(&a)) {
            Ok(entries) => classes.extend(entries.into_iter().filter(|e| e.is_class()).map(|e| e.bytes)),
            Err(e) => eprintln!("skipping {e}"),
        }
    }
    let pass = |classes: &[Vec<u8>]| classes.iter().filter(|c| guard_all(c).is_err()).count();
    let end = Instant::now() + Duration::from_secs_f64(warmup);
    while Instant::now() < end {
        pass(&classes);
    }
    let start = Instant::now();
    let mut passes = 0;
    let mut failures = 0;
    while passes < 5 || start.elapsed() < Duration::from_secs(5) {
        failures = pass(&classes);
        passes += 1;
    }
    let seconds = start.elapsed().as_secs_f64();
    let n = classes.len() * passes;
    println!("repair classes={n} seconds={seconds:.3} classes_per_s={:.0} failures={failures}", n as f64 / seconds);
}
