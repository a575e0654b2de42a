//! `repairctl`: the operator console of repair.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use repair::cli::{self, Output};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "repairctl", version, about = "Repairs running JVMs: the console of the repair agent")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Rewrite a .class or .jar offline: by a patch spec, or every method (--guard-all, --probe-all).
    Rewrite {
        /// The patch spec (YAML); omit with --guard-all or --probe-all.
        #[arg(required_unless_present_any = ["guard_all", "probe_all"])]
        spec: Option<PathBuf>,
        /// The input .class or .jar (after the spec when one is given).
        input: Option<PathBuf>,
        /// Where to write the result (.class or .jar, like the input).
        #[arg(short = 'o', long = "out")]
        out: PathBuf,
        /// Summary format (`-o` names the output file here).
        #[arg(long, value_enum, default_value = "human")]
        format: Output,
        /// Guard every method with a body against java.lang.Throwable, default fallback.
        #[arg(long, conflicts_with = "probe_all")]
        guard_all: bool,
        /// Entry, exit and throw probes on every method with a body.
        #[arg(long)]
        probe_all: bool,
    },
}

fn main() -> ExitCode {
    let args = Cli::parse();
    let result = match args.command {
        Command::Rewrite { spec, input, out, format, guard_all, probe_all } => {
            let (mode, input) = match (guard_all || probe_all, spec, input) {
                (true, Some(i), None) | (true, None, Some(i)) => {
                    (if guard_all { cli::rewrite::Mode::GuardAll } else { cli::rewrite::Mode::ProbeAll }, i)
                }
                (false, Some(s), Some(i)) => (cli::rewrite::Mode::Spec(s), i),
                _ => {
                    eprintln!("repairctl: error: give PATCH.yaml IN -o OUT, or --guard-all/--probe-all IN -o OUT");
                    return ExitCode::from(2);
                }
            };
            cli::rewrite::run(&mode, &input, &out, format)
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("repairctl: error: {e}");
            ExitCode::FAILURE
        }
    }
}
