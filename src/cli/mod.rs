//! The `repairctl` commands, one module per command group.

pub mod live;
pub mod rewrite;

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    /// Tables and lines for people.
    Human,
    /// One JSON document, for scripts.
    Json,
}

/// Writes `text` to stdout. Rust ignores SIGPIPE, so a reader that went away (`repairctl … | head`)
/// shows up here as EPIPE, which `print!` would turn into a panic: it ends repairctl quietly
/// instead, with status 0, since the reader took all it wanted.
pub fn out(text: &str) -> Result<(), String> {
    use std::io::Write;
    let written = {
        let mut stdout = std::io::stdout().lock();
        stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush())
    };
    match written {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(0),
        Err(e) => Err(format!("writing to stdout: {e}")),
    }
}
