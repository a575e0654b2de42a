//! `repairctl`: the operator console of repair.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use repair_model::cli::live::{self, Conn};
use repair_model::cli::{self, Output};

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
    /// What the agent in a JVM is, can do and lacks.
    Status(#[command(flatten)] Conn),
    /// Faults the agent has seen; --follow streams new ones.
    Faults {
        #[command(flatten)]
        conn: Conn,
        #[arg(short, long)]
        follow: bool,
    },
    /// Loaded classes matching a glob (`repair.demo.*`).
    Classes {
        glob: String,
        #[command(flatten)]
        conn: Conn,
    },
    /// Disassemble a class: a FILE.class offline, or a loaded class of the JVM given by --pid.
    Javap {
        class: String,
        #[command(flatten)]
        conn: Conn,
    },
    /// Apply a patch spec to a live JVM.
    Apply {
        spec: PathBuf,
        /// Extra files to attach, NAME=PATH (files the spec names are attached by themselves).
        #[arg(long = "file")]
        files: Vec<String>,
        /// Patch a JDK class (java.*, javax.*, jdk.*, sun.*, com.sun.*): it changes every caller in
        /// the JVM, so it must be meant.
        #[arg(long)]
        allow_jdk: bool,
        #[command(flatten)]
        conn: Conn,
    },
    /// Active patches.
    Patches(#[command(flatten)] Conn),
    /// Roll back one patch, or all of them.
    Rollback {
        #[arg(required_unless_present = "all")]
        id: Option<String>,
        #[arg(long, conflicts_with = "id")]
        all: bool,
        #[command(flatten)]
        conn: Conn,
    },
    /// The self-healing policy: apply a file, or show the one in force.
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
    },
    /// The journal: every patch applied, validated, refused and rolled back, across restarts.
    History(#[command(flatten)] Conn),
    /// What the agent decided and did, with reasons; --follow streams new events.
    Events {
        #[arg(short, long)]
        follow: bool,
        #[command(flatten)]
        conn: Conn,
    },
    /// Load the agent into a running JVM (HotSpot's attach protocol, as jcmd does).
    Attach {
        pid: u32,
        /// Agent options, key=value,... (e.g. control=tcp:127.0.0.1:7000).
        #[arg(default_value = "")]
        options: String,
        /// The agent library (default: librepair.so beside repairctl).
        #[arg(long)]
        agent: Option<PathBuf>,
        #[arg(short = 'o', long = "output", value_enum, default_value = "human")]
        output: Output,
    },
}

#[derive(Subcommand, Debug)]
enum PolicyCommand {
    /// Replace the policy with FILE (a policy that does not parse changes nothing).
    Apply {
        file: PathBuf,
        #[command(flatten)]
        conn: Conn,
    },
    /// The policy in force and what each rule did.
    Show(#[command(flatten)] Conn),
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a tokio runtime").block_on(f)
}

fn javap(class: &str, conn: &Conn) -> Result<(), String> {
    let bytes = if class.ends_with(".class") && std::path::Path::new(class).exists() {
        std::fs::read(class).map_err(|e| format!("{class}: {e}"))?
    } else {
        block_on(live::class_bytes(conn, class))?
    };
    let text = repair_bytecode::javap::disassemble(&bytes).map_err(|e| format!("{class}: {e}"))?;
    cli::out(&text)
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
        Command::Status(conn) => block_on(live::status(&conn)),
        Command::Faults { conn, follow } => block_on(live::faults(&conn, follow)),
        Command::Classes { glob, conn } => block_on(live::classes(&conn, &glob)),
        Command::Javap { class, conn } => javap(&class, &conn),
        Command::Apply { spec, files, allow_jdk, conn } => block_on(live::apply(&conn, &spec, &files, allow_jdk)),
        Command::Patches(conn) => block_on(live::patches(&conn)),
        Command::Rollback { id, all, conn } => block_on(live::rollback(&conn, id, all)),
        Command::Policy { command: PolicyCommand::Apply { file, conn } } => block_on(live::policy_apply(&conn, &file)),
        Command::Policy { command: PolicyCommand::Show(conn) } => block_on(live::policy_show(&conn)),
        Command::History(conn) => block_on(live::history(&conn)),
        Command::Events { follow, conn } => block_on(live::events(&conn, follow)),
        Command::Attach { pid, options, agent, output } => live::attach(pid, &options, agent, output),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("repairctl: error: {e}");
            ExitCode::FAILURE
        }
    }
}
