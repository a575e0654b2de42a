//! `repairctl`: the operator console of repair.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};
use repair_model::cli::live::{self, Conn};
use repair_model::cli::{self, topics};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "repairctl",
    version,
    about = "Repairs running JVMs: the console of the repair agent",
    long_about = "Repairs running JVMs: the console of the repair agent (librepair.so).\n\n\
        Live commands talk to the agent in one JVM: --pid PID, --endpoint ENDPOINT, or, with neither,\n\
        the only JVM on this host with the agent (repairctl ps lists them). Options go before or\n\
        after the command: `repairctl --pid 42 apply fix.yaml` = `repairctl apply fix.yaml --pid 42`.",
    after_help = "Examples:\n  \
        repairctl ps                                  # the JVMs on this host, with or without the agent\n  \
        repairctl attach 4242                         # load the agent into JVM 4242\n  \
        repairctl faults                              # what is failing in the only JVM with the agent\n  \
        repairctl apply demo/price-npe.yaml --pid 4242\n  \
        repairctl diff price-npe                      # the method's bytecode before and after\n  \
        repairctl rollback price-npe\n\n\
        Help topics (repairctl help TOPIC):\n  \
        spec     the patch spec (repairctl apply, repairctl rewrite)\n  \
        policy   the self-healing policy file (repairctl policy apply)\n\n\
        Shell completions: repairctl completions bash|zsh|fish",
    disable_help_subcommand = true
)]
struct Cli {
    #[command(flatten)]
    global: Conn,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The JVMs on this host that you may see: pid, user, main class or jar, JDK, uptime, and
    /// whether the agent is loaded (and where it listens).
    #[command(after_help = "Examples:\n  repairctl ps\n  repairctl ps --agent -o json")]
    Ps {
        /// Only the JVMs with the agent loaded. Example: `repairctl ps --agent`
        #[arg(long)]
        agent: bool,
    },
    /// What the agent in a JVM is, can do and lacks.
    #[command(
        after_help = "Examples:\n  repairctl status\n  repairctl status --pid 4242 -o wide   # with why each missing capability is missing"
    )]
    Status,
    /// Faults the agent has seen (deduplicated by site); --follow streams new ones.
    #[command(
        after_help = "Examples:\n  repairctl faults --pid 4242\n  repairctl faults --follow -o json | jq .exception"
    )]
    Faults {
        /// Keep printing faults as they happen (one JSON object a line with -o json), until the
        /// JVM exits or Ctrl-C. Example: `repairctl faults --follow`
        #[arg(short, long)]
        follow: bool,
    },
    /// Loaded classes matching a glob, their class loader, and whether they can be patched.
    #[command(
        after_help = "Examples:\n  repairctl classes 'repair.demo.*'\n  repairctl classes 'com.shop.**' -o json"
    )]
    Classes {
        /// A glob on dotted class names: `*` within a package, `**` across packages. Example:
        /// `'com.shop.*'` (quoted, so the shell leaves it alone)
        glob: String,
    },
    /// Disassemble a class as javap -c -v does: a FILE.class offline, or a class loaded in a JVM
    /// (the bytes it runs now, patches included).
    #[command(
        after_help = "Examples:\n  repairctl javap repair.demo.PriceService --pid 4242\n  repairctl javap build/classes/Price.class\n  repairctl javap repair.demo.PriceService -o json"
    )]
    Javap {
        /// A dotted class name loaded in the JVM, or the path of a .class file. Example:
        /// `repair.demo.PriceService`
        class: String,
    },
    /// The bytecode a method runs now, as the JVM reports it: its length and SHA-256 (patches and
    /// observations change it; their end puts it back).
    #[command(
        after_help = "Examples:\n  repairctl code com.shop.Prices price\n  repairctl code com.shop.Prices 'price(Ljava/lang/String;)J' -o json"
    )]
    Code {
        /// The class, dotted. Example: `com.shop.Prices`
        class: String,
        /// The method: a name (every overload), or a name and descriptor. Example: `price`
        method: String,
    },
    /// Apply a patch spec to a live JVM (repairctl help spec: the format).
    #[command(
        after_help = "Examples:\n  repairctl apply demo/price-npe.yaml --pid 4242\n  repairctl apply fix.yaml --file Fixed.class=build/Fixed.class\n  repairctl apply getname.yaml --allow-jdk"
    )]
    Apply {
        /// The patch spec (YAML; repairctl help spec). Example: `demo/price-npe.yaml`
        spec: PathBuf,
        /// Extra files to attach, NAME=PATH (files the spec names are attached by themselves).
        /// Example: `--file Fixed.class=build/Fixed.class`
        #[arg(long = "file", value_name = "NAME=PATH")]
        files: Vec<String>,
        /// Patch a JDK class (java.*, javax.*, jdk.*, sun.*, com.sun.*): it changes every caller in
        /// the JVM, so it must be meant. Example: `repairctl apply getname.yaml --allow-jdk`
        #[arg(long)]
        allow_jdk: bool,
    },
    /// Hot-deploy a fixed build: compare each class of a jar or class directory with the class as
    /// the JVM loaded it, and redefine the changed ones together as one patch (all or none).
    #[command(
        after_help = "Examples:\n  repairctl deploy shop-1.4.1.jar --dry-run   # the plan only\n  repairctl deploy shop-1.4.1.jar --pid 4242 --durable\n  repairctl deploy build/classes --id hotfix-7\n  repairctl rollback hotfix-7"
    )]
    Deploy {
        /// The new build: a jar, or a directory of class files (`com/shop/Cart.class`). Example:
        /// `shop-1.4.1.jar`
        build: PathBuf,
        /// Print what would change and change nothing. Example: `repairctl deploy app.jar --dry-run`
        #[arg(long)]
        dry_run: bool,
        /// Keep the deployment across restarts of the JVM (restored from the state dir while the
        /// JVM runs the old build, dropped once it runs the new one). Example: `--durable`
        #[arg(long)]
        durable: bool,
        /// The deployment's patch id (default: deploy-N). Example: `--id hotfix-7`
        #[arg(long)]
        id: Option<String>,
        /// Deploy the classes that fit even when others cannot be redefined (by default one
        /// refused class refuses the whole build). Example: `--partial`
        #[arg(long)]
        partial: bool,
    },
    /// Each call of a method as it happens: thread, time, arguments, return value or exception.
    /// The method's class is instrumented only while this runs.
    #[command(
        after_help = "Examples:\n  repairctl watch com.shop.Prices price -n 10\n  repairctl watch com.shop.Prices 'price(Ljava/lang/String;)J' --if 'duration > 5ms || exception != null' --for 30s\n  repairctl watch com.shop.Cart total --sample 100 -o json\n\nConditions (--if): args[N], return, exception, duration, thread compared with ==, !=, <, <=, >, >=, ~ (contains)\nand a number, \"text\", null, true, false or a duration (5ms); joined with && and ||."
    )]
    Watch {
        /// The class, dotted. Example: `com.shop.Prices`
        class: String,
        /// The method: a name, or a name and descriptor for one overload. Example: `price`
        method: String,
        /// End after this many calls are reported. Example: `-n 10`
        #[arg(short = 'n', long = "count")]
        count: Option<u64>,
        /// End after this long (500ms, 30s, 2m). Example: `--for 30s`
        #[arg(long = "for", value_parser = parse_duration)]
        duration: Option<std::time::Duration>,
        /// Report only the calls this holds for. Example: `--if 'args[0] == "pear"'`
        #[arg(long = "if")]
        condition: Option<String>,
        /// Report one call in N. Example: `--sample 100`
        #[arg(long, default_value_t = 1)]
        sample: u32,
        /// Reports a second before the agent samples down, then stops (default 1000). Example:
        /// `--max-per-second 5000`
        #[arg(long, default_value_t = 0, hide_default_value = true)]
        max_per_second: u32,
        /// Also report these values with each call: field paths into the arguments, the return
        /// value or this, read without running the application's code. Example:
        /// `--show 'args[0].items.size,return.total'`
        #[arg(long, value_delimiter = ',')]
        show: Vec<String>,
        /// Show object arguments and return values this many levels into their fields (default
        /// 0: the class only). Example: `-x 2`
        #[arg(short = 'x', long, default_value_t = 0)]
        expand: u32,
        /// Also capture `this` (instance methods). Example: `--this`
        #[arg(long)]
        this: bool,
        /// Milliseconds of the agent's CPU a second the reports may cost before it samples down
        /// (default 50). Example: `--max-cpu-ms 100`
        #[arg(long, default_value_t = 0, hide_default_value = true)]
        max_cpu_ms: u32,
        /// KiB a second of reports before the agent samples down (default 1024). Example:
        /// `--max-kib 4096`
        #[arg(long, default_value_t = 0, hide_default_value = true)]
        max_kib: u32,
    },
    /// A method's calls, failures and durations (mean, p50, p99, max) per interval, while this
    /// runs.
    #[command(
        after_help = "Examples:\n  repairctl monitor com.shop.Prices price --every 5s\n  repairctl monitor com.shop.Cart total --every 1s -n 10"
    )]
    Monitor {
        /// The class, dotted. Example: `com.shop.Prices`
        class: String,
        /// The method: a name, or a name and descriptor for one overload. Example: `price`
        method: String,
        /// The interval (default 5s). Example: `--every 1s`
        #[arg(long, value_parser = parse_duration)]
        every: Option<std::time::Duration>,
        /// End after this many intervals. Example: `-n 10`
        #[arg(short = 'n', long = "count")]
        count: Option<u64>,
        /// End after this long. Example: `--for 1m`
        #[arg(long = "for", value_parser = parse_duration)]
        duration: Option<std::time::Duration>,
    },
    /// Each call of a method as the calls it makes, with the time spent in each (one level).
    #[command(
        after_help = "Examples:\n  repairctl trace com.shop.Cart checkout -n 5\n  repairctl trace com.shop.Cart checkout --min 50ms --for 1m"
    )]
    Trace {
        /// The class, dotted. Example: `com.shop.Cart`
        class: String,
        /// The method: a name, or a name and descriptor for one overload. Example: `checkout`
        method: String,
        /// End after this many calls are reported. Example: `-n 5`
        #[arg(short = 'n', long = "count")]
        count: Option<u64>,
        /// End after this long. Example: `--for 1m`
        #[arg(long = "for", value_parser = parse_duration)]
        duration: Option<std::time::Duration>,
        /// Report only calls that took at least this long. Example: `--min 50ms`
        #[arg(long, value_parser = parse_duration)]
        min: Option<std::time::Duration>,
        /// Levels of calls shown (1: the method's own calls; at most 4): deeper levels trace the
        /// application methods those calls reach. Example: `--depth 2`
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=4))]
        depth: u32,
        /// Report one call in N. Example: `--sample 100`
        #[arg(long, default_value_t = 1)]
        sample: u32,
        /// Reports a second before the agent samples down (default 1000). Example:
        /// `--max-per-second 5000`
        #[arg(long, default_value_t = 0, hide_default_value = true)]
        max_per_second: u32,
        /// Milliseconds of the agent's CPU a second the trace may cost before it samples down
        /// (default 50). Example: `--max-cpu-ms 200`
        #[arg(long, default_value_t = 0, hide_default_value = true)]
        max_cpu_ms: u32,
    },
    /// The distinct call paths that reach a method, with how many calls took each, while this
    /// runs (updated every interval).
    #[command(
        after_help = "Examples:\n  repairctl stack com.shop.Prices price --for 10s\n  repairctl stack com.shop.Prices price -n 1000 -o json"
    )]
    Stack {
        /// The class, dotted. Example: `com.shop.Prices`
        class: String,
        /// The method: a name, or a name and descriptor for one overload. Example: `price`
        method: String,
        /// End after this many calls. Example: `-n 1000`
        #[arg(short = 'n', long = "count")]
        count: Option<u64>,
        /// End after this long. Example: `--for 10s`
        #[arg(long = "for", value_parser = parse_duration)]
        duration: Option<std::time::Duration>,
        /// How often the counts are printed (default 5s). Example: `--every 1s`
        #[arg(long, value_parser = parse_duration)]
        every: Option<std::time::Duration>,
        /// Look at one call in N. Example: `--sample 10`
        #[arg(long, default_value_t = 1)]
        sample: u32,
    },
    /// The locals, arguments, `this` and stack at a source line, each time a thread reaches it
    /// (without stopping the thread), N times.
    #[command(
        after_help = "Examples:\n  repairctl snapshot com.shop.Cart:42\n  repairctl snapshot com.shop.Cart:42 -n 5 -x 2 -o json\n  repairctl snapshot com.shop.Cart:42 --method 'total(I)J'"
    )]
    Snapshot {
        /// The class and source line. Example: `com.shop.Cart:42`
        at: String,
        /// How many snapshots (default 1). Example: `-n 5`
        #[arg(short = 'n', long = "count", default_value_t = 1)]
        count: u64,
        /// End after this long. Example: `--for 1m`
        #[arg(long = "for", value_parser = parse_duration)]
        duration: Option<std::time::Duration>,
        /// The method, when the line is in several (a lambda's). Example: `--method total`
        #[arg(long)]
        method: Option<String>,
        /// Show objects this many levels into their fields (default 1). Example: `-x 2`
        #[arg(short = 'x', long, default_value_t = 1)]
        expand: u32,
    },
    /// A log line added live at a source line: text with {local} or {local.field} placeholders,
    /// printed here (and on the JVM's stderr with --stderr) each time the line runs.
    #[command(
        after_help = "Examples:\n  repairctl log com.shop.Cart:42 'total {total} for {order.items.size} items'\n  repairctl log com.shop.Cart:42 'user {user}' --stderr --for 10m"
    )]
    Log {
        /// The class and source line. Example: `com.shop.Cart:42`
        at: String,
        /// The text; {name} is a local's value, {name.field.field} a field of it. Example:
        /// `'total {total}'`
        text: String,
        /// End after this many lines. Example: `-n 100`
        #[arg(short = 'n', long = "count")]
        count: Option<u64>,
        /// End after this long. Example: `--for 10m`
        #[arg(long = "for", value_parser = parse_duration)]
        duration: Option<std::time::Duration>,
        /// The method, when the line is in several. Example: `--method total`
        #[arg(long)]
        method: Option<String>,
        /// Also print each line on the JVM's stderr. Example: `--stderr`
        #[arg(long)]
        stderr: bool,
    },
    /// The observations (watch, monitor, stack, snapshot, log) in progress.
    #[command(after_help = "Examples:\n  repairctl observations\n  repairctl observations -o json")]
    Observations,
    /// End an observation in progress (its stream says so and ends).
    #[command(after_help = "Examples:\n  repairctl stop 3")]
    Stop {
        /// The observation's id (repairctl observations lists them). Example: `3`
        id: u64,
    },
    /// Active patches, in the order they were applied.
    #[command(
        after_help = "Examples:\n  repairctl patches\n  repairctl patches -o wide   # long ids and classes in full"
    )]
    Patches,
    /// The bytecode of a patched method before and after the patch, as a unified diff of javap
    /// text.
    #[command(
        after_help = "Examples:\n  repairctl diff price-npe\n  repairctl diff price-npe --class   # the whole class, constant pool included"
    )]
    Diff {
        /// The patch's id (repairctl patches lists them). Example: `price-npe`
        id: String,
        /// Diff the whole class, not only the patched method. Example: `repairctl diff price-npe --class`
        #[arg(long)]
        class: bool,
    },
    /// Roll back one patch, or all of them.
    #[command(after_help = "Examples:\n  repairctl rollback price-npe\n  repairctl rollback --all --pid 4242")]
    Rollback {
        /// The patch's id (repairctl patches lists them). Example: `price-npe`
        #[arg(required_unless_present = "all")]
        id: Option<String>,
        /// Roll back every active patch. Example: `repairctl rollback --all`
        #[arg(long, conflicts_with = "id")]
        all: bool,
    },
    /// The self-healing policy: apply a file, or show the one in force (repairctl help policy:
    /// the format).
    #[command(after_help = "Examples:\n  repairctl policy apply demo/policy.yaml\n  repairctl policy show")]
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
    },
    /// The journal: every patch applied, validated, refused and rolled back, across restarts.
    #[command(after_help = "Examples:\n  repairctl history\n  repairctl history -o json | jq '.records[] | .event'")]
    History,
    /// What the agent decided and did, with reasons; --follow streams new events.
    #[command(after_help = "Examples:\n  repairctl events\n  repairctl events --follow -o json")]
    Events {
        /// Keep printing events as they happen (one JSON object a line with -o json), until the
        /// JVM exits or Ctrl-C. Example: `repairctl events --follow`
        #[arg(short, long)]
        follow: bool,
    },
    /// Load the agent into a running JVM (HotSpot's attach protocol, as jcmd does).
    #[command(
        after_help = "Examples:\n  repairctl attach 4242\n  repairctl attach 4242 log=info,faults=jvmti\n  repairctl attach 4242 control=tcp:127.0.0.1:7000,token_file=/etc/repair/token"
    )]
    Attach {
        /// The JVM's pid (or --pid). Example: `4242`
        #[arg(value_name = "PID")]
        target: Option<u32>,
        /// Agent options, key=value,... (log, faults, state, policy, control, token_file, tls_*).
        /// Example: `log=info,faults=jvmti`
        #[arg(default_value = "")]
        options: String,
        /// The agent library (default: librepair.so beside repairctl). Example:
        /// `--agent /opt/repair/librepair.so`
        #[arg(long, value_name = "FILE")]
        agent: Option<PathBuf>,
    },
    /// Rewrite a .class or .jar offline: by a patch spec, or every method (--guard-all,
    /// --probe-all). Shows progress on a terminal and a summary at the end.
    #[command(
        after_help = "Examples:\n  repairctl rewrite demo/price-npe.yaml shop.jar --out shop-fixed.jar\n  repairctl rewrite --guard-all app.jar --out app-guarded.jar\n  repairctl rewrite --probe-all Price.class --out Price.class -o json"
    )]
    Rewrite {
        /// The patch spec (YAML; repairctl help spec); omit with --guard-all or --probe-all.
        /// Example: `demo/price-npe.yaml`
        #[arg(required_unless_present_any = ["guard_all", "probe_all"])]
        spec: Option<PathBuf>,
        /// The input .class or .jar (after the spec when one is given). Example: `shop.jar`
        input: Option<PathBuf>,
        /// Where to write the result (.class or .jar, like the input). Example: `--out fixed.jar`
        #[arg(long = "out", value_name = "FILE")]
        out: PathBuf,
        /// Guard every method with a body against java.lang.Throwable, default fallback.
        /// Example: `repairctl rewrite --guard-all app.jar --out guarded.jar`
        #[arg(long, conflicts_with = "probe_all")]
        guard_all: bool,
        /// Entry, exit and throw probes on every method with a body. Example:
        /// `repairctl rewrite --probe-all app.jar --out probed.jar`
        #[arg(long)]
        probe_all: bool,
    },
    /// A service's fleet in etcd: roll a patch, policy or build out to every JVM of it (canary first),
    /// see what each runs, roll it back, list the rollouts. repaird on each host carries it out.
    #[command(
        after_help = "Examples:\n  repairctl fleet apply guard.yaml --service shop --etcd http://127.0.0.1:2379 --canary 1 --hold 30s\n  repairctl fleet deploy shop-1.4.1.jar --service shop --etcd http://127.0.0.1:2379\n  repairctl fleet status --service shop --etcd http://127.0.0.1:2379\n  repairctl fleet rollback --service shop --etcd http://127.0.0.1:2379\n  repairctl fleet history --service shop --etcd http://127.0.0.1:2379 -o json"
    )]
    Fleet {
        #[command(subcommand)]
        command: FleetCommand,
    },
    /// Shell completions for bash, zsh or fish, on stdout.
    #[command(
        after_help = "Examples:\n  repairctl completions bash > /etc/bash_completion.d/repairctl\n  repairctl completions zsh > \"${fpath[1]}/_repairctl\"\n  repairctl completions fish > ~/.config/fish/completions/repairctl.fish"
    )]
    Completions {
        /// The shell. Example: `bash`
        shell: clap_complete::Shell,
    },
    /// Help on a command (repairctl help apply) or a topic: spec, policy.
    #[command(after_help = "Examples:\n  repairctl help spec\n  repairctl help policy\n  repairctl help rollback")]
    Help {
        /// A command (`apply`, `policy apply`) or a topic (`spec`, `policy`). Example: `spec`
        #[arg(value_name = "COMMAND|TOPIC")]
        topic: Vec<String>,
    },
}

#[derive(Subcommand, Debug)]
enum PolicyCommand {
    /// Replace the policy with FILE (a policy that does not parse changes nothing).
    #[command(after_help = "Examples:\n  repairctl policy apply demo/policy.yaml --pid 4242")]
    Apply {
        /// The policy (YAML; repairctl help policy). Example: `demo/policy.yaml`
        file: PathBuf,
    },
    /// The policy in force and what each rule did.
    #[command(after_help = "Examples:\n  repairctl policy show\n  repairctl policy show -o yaml")]
    Show,
}

/// Where a fleet command finds the service's keys.
#[derive(clap::Args, Debug, Clone)]
struct FleetTarget {
    /// The service (the agent's service= option, else the JVM's main class or jar). Example:
    /// `--service shop`
    #[arg(long)]
    service: String,
    /// The etcd endpoints, comma-separated. Example: `--etcd http://127.0.0.1:2379`
    #[arg(long, value_name = "URL[,URL...]")]
    etcd: String,
    #[command(flatten)]
    tls: repair_model::fleet::store::TlsFiles,
}

impl FleetTarget {
    fn target(self) -> cli::fleet::Target {
        cli::fleet::Target { service: self.service, etcd: self.etcd, tls: self.tls }
    }
}

/// How a rollout goes: the flags `fleet apply` and `fleet deploy` share.
#[derive(clap::Args, Debug, Clone)]
struct RolloutArgs {
    /// Canaries: a count of instances, or a share of them. Example: `--canary 10%`
    #[arg(long, default_value = "1")]
    canary: String,
    /// How long each canary must hold it (in force, no more new faults than --max-faults)
    /// before every instance runs it. Example: `--hold 30s`
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    hold: std::time::Duration,
    /// New faults a canary may see during its hold: at the classes a patch or build changes; for
    /// a policy, at sites that were not faulting before. Example: `--max-faults 2`
    #[arg(long, default_value_t = 0)]
    max_faults: u64,
}

impl From<RolloutArgs> for cli::fleet::RolloutOptions {
    fn from(a: RolloutArgs) -> Self {
        cli::fleet::RolloutOptions { canary: a.canary, hold: a.hold, max_faults: a.max_faults }
    }
}

#[derive(Subcommand, Debug)]
enum FleetCommand {
    /// Make FILE (a patch spec, or a policy: a file with `rules:`) the service's desired state:
    /// the canaries run it first, for the hold time, then every instance. Prints the rollout id.
    #[command(
        after_help = "Examples:\n  repairctl fleet apply guard.yaml --service shop --etcd http://127.0.0.1:2379 --canary 1 --hold 30s\n  repairctl fleet apply policy.yaml --service shop --etcd http://127.0.0.1:2379 --canary 10%"
    )]
    Apply {
        /// The patch spec or policy (YAML). Example: `guard.yaml`
        file: PathBuf,
        #[command(flatten)]
        target: FleetTarget,
        #[command(flatten)]
        rollout: RolloutArgs,
    },
    /// Make a build (a jar or a directory of class files) the service's desired state: each
    /// repaird hot-deploys its changed classes whole (as `repairctl deploy --durable`), canaries
    /// first. The build travels through etcd: at most 1 MiB encoded. Prints the rollout id.
    #[command(
        after_help = "Examples:\n  repairctl fleet deploy shop-1.4.1.jar --service shop --etcd http://127.0.0.1:2379 --canary 1 --hold 30s\n  repairctl fleet deploy build/classes --service shop --etcd http://127.0.0.1:2379 --canary 10%"
    )]
    Deploy {
        /// The build: a jar, or a directory of class files. Example: `shop-1.4.1.jar`
        build: PathBuf,
        #[command(flatten)]
        target: FleetTarget,
        #[command(flatten)]
        rollout: RolloutArgs,
    },
    /// Each instance of the service: what it runs of the fleet's, its verdict, whether it
    /// matches the desired state; and the rollout in force.
    #[command(after_help = "Examples:\n  repairctl fleet status --service shop --etcd http://127.0.0.1:2379 -o json")]
    Status {
        #[command(flatten)]
        target: FleetTarget,
    },
    /// Desired state: nothing. Every repaird rolls the fleet's patch or policy back on its JVMs.
    #[command(after_help = "Examples:\n  repairctl fleet rollback --service shop --etcd http://127.0.0.1:2379")]
    Rollback {
        #[command(flatten)]
        target: FleetTarget,
    },
    /// Every rollout and rollback of the service: id, kind, name, phase, when, by whom.
    #[command(after_help = "Examples:\n  repairctl fleet history --service shop --etcd http://127.0.0.1:2379 -o json")]
    History {
        #[command(flatten)]
        target: FleetTarget,
    },
}

fn fleet(command: FleetCommand, output: cli::Output) -> Result<(), String> {
    match command {
        FleetCommand::Apply { file, target, rollout } => {
            block_on(cli::fleet::apply(&target.target(), &file, &rollout.into(), output))
        }
        FleetCommand::Deploy { build, target, rollout } => {
            block_on(cli::fleet::deploy(&target.target(), &build, &rollout.into(), output))
        }
        FleetCommand::Status { target } => block_on(cli::fleet::status(&target.target(), output)),
        FleetCommand::Rollback { target } => block_on(cli::fleet::rollback(&target.target(), output)),
        FleetCommand::History { target } => block_on(cli::fleet::history(&target.target(), output)),
    }
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a tokio runtime").block_on(f)
}

fn javap(class: &str, conn: &Conn) -> Result<(), String> {
    let (bytes, from) = if class.ends_with(".class") && std::path::Path::new(class).exists() {
        (std::fs::read(class).map_err(|e| format!("{class}: {e}"))?, class.to_string())
    } else {
        (block_on(live::class_bytes(conn, class, false))?, "the JVM".to_string())
    };
    let text = repair_bytecode::javap::disassemble(&bytes).map_err(|e| format!("{class}: {e}"))?;
    let value = serde_json::json!({"class": class, "from": from, "javap": text});
    cli::print(conn.output, value, |_| text.clone())
}

/// `repairctl help [COMMAND|TOPIC]`.
fn help(words: &[String]) -> Result<(), String> {
    let mut command = Cli::command();
    let Some(first) = words.first() else {
        return command.print_long_help().map_err(|e| e.to_string());
    };
    if words.len() == 1 {
        if let Some(text) = topics::topic(first) {
            let mut text = text.to_string();
            if command.find_subcommand(first).is_some() {
                text.push_str(&format!("\nThe `{first}` command: repairctl {first} --help\n"));
            }
            return cli::out(&text);
        }
    }
    let mut sub = &mut command;
    for w in words {
        sub = match sub.find_subcommand_mut(w) {
            Some(s) => s,
            None => {
                let commands: Vec<String> =
                    Cli::command().get_subcommands().map(|c| c.get_name().to_string()).collect();
                return Err(format!(
                    "no command or help topic {:?}: topics are {}; commands are {}",
                    words.join(" "),
                    topics::TOPICS.iter().map(|t| t.0).collect::<Vec<_>>().join(", "),
                    commands.join(", ")
                ));
            }
        };
    }
    let name = format!("repairctl {}", words.join(" "));
    let help = sub.clone().bin_name(name).render_long_help().to_string();
    cli::out(&help)
}

fn main() -> ExitCode {
    let args = Cli::parse();
    let conn = args.global;
    let result = match args.command {
        Command::Ps { agent } => cli::ps::ps(conn.output, agent),
        Command::Rewrite { spec, input, out, guard_all, probe_all } => {
            let (mode, input) = match (guard_all || probe_all, spec, input) {
                (true, Some(i), None) | (true, None, Some(i)) => {
                    (if guard_all { cli::rewrite::Mode::GuardAll } else { cli::rewrite::Mode::ProbeAll }, i)
                }
                (false, Some(s), Some(i)) => (cli::rewrite::Mode::Spec(s), i),
                _ => {
                    eprintln!(
                        "repairctl: error: give PATCH.yaml IN --out OUT, or --guard-all/--probe-all IN --out OUT"
                    );
                    return ExitCode::from(2);
                }
            };
            cli::rewrite::run(&mode, &input, &out, conn.output)
        }
        Command::Status => block_on(live::status(&conn)),
        Command::Faults { follow } => block_on(live::faults(&conn, follow)),
        Command::Classes { glob } => block_on(live::classes(&conn, &glob)),
        Command::Javap { class } => javap(&class, &conn),
        Command::Code { class, method } => block_on(live::running_code(&conn, &class, &method)),
        Command::Apply { spec, files, allow_jdk } => block_on(live::apply(&conn, &spec, &files, allow_jdk)),
        Command::Deploy { build, dry_run, durable, id, partial } => {
            let options = cli::deploy::DeployOptions { id, dry_run, durable, partial };
            block_on(cli::deploy::deploy(&conn, &build, &options))
        }
        Command::Watch {
            class,
            method,
            count,
            duration,
            condition,
            sample,
            max_per_second,
            show,
            expand,
            this,
            max_cpu_ms,
            max_kib,
        } => {
            let o = cli::observe::Observe {
                kind: "watch",
                class,
                method,
                condition,
                sample,
                count: count.unwrap_or(0),
                duration,
                every: None,
                max_per_second,
                show,
                expand,
                this,
                max_cpu_ms,
                max_kib,
                ..Default::default()
            };
            block_on(cli::observe::observe(&conn, &o))
        }
        Command::Monitor { class, method, every, count, duration } => {
            let o = cli::observe::Observe {
                kind: "monitor",
                class,
                method,
                count: count.unwrap_or(0),
                duration,
                every,
                ..Default::default()
            };
            block_on(cli::observe::observe(&conn, &o))
        }
        Command::Stack { class, method, count, duration, every, sample } => {
            let o = cli::observe::Observe {
                kind: "stack",
                class,
                method,
                sample,
                count: count.unwrap_or(0),
                duration,
                every,
                ..Default::default()
            };
            block_on(cli::observe::observe(&conn, &o))
        }
        Command::Snapshot { at, count, duration, method, expand } => {
            cli::observe::class_and_line(&at).and_then(|(class, line)| {
                let o = cli::observe::Observe {
                    kind: "snapshot",
                    class,
                    method: method.unwrap_or_default(),
                    count,
                    duration,
                    expand,
                    line,
                    ..Default::default()
                };
                block_on(cli::observe::observe(&conn, &o))
            })
        }
        Command::Log { at, text, count, duration, method, stderr } => {
            cli::observe::class_and_line(&at).and_then(|(class, line)| {
                let o = cli::observe::Observe {
                    kind: "log",
                    class,
                    method: method.unwrap_or_default(),
                    count: count.unwrap_or(0),
                    duration,
                    line,
                    template: text,
                    to_stderr: stderr,
                    ..Default::default()
                };
                block_on(cli::observe::observe(&conn, &o))
            })
        }
        Command::Trace { class, method, count, duration, min, depth, sample, max_per_second, max_cpu_ms } => {
            let o = cli::observe::Observe {
                kind: "trace",
                class,
                method,
                count: count.unwrap_or(0),
                duration,
                min,
                sample,
                max_per_second,
                max_cpu_ms,
                depth,
                ..Default::default()
            };
            block_on(cli::observe::observe(&conn, &o))
        }
        Command::Observations => block_on(cli::observe::observations(&conn)),
        Command::Stop { id } => block_on(cli::observe::stop(&conn, id)),
        Command::Patches => block_on(live::patches(&conn)),
        Command::Diff { id, class } => block_on(cli::diff::diff(&conn, &id, class)),
        Command::Rollback { id, all } => block_on(live::rollback(&conn, id, all)),
        Command::Policy { command: PolicyCommand::Apply { file } } => block_on(live::policy_apply(&conn, &file)),
        Command::Policy { command: PolicyCommand::Show } => block_on(live::policy_show(&conn)),
        Command::History => block_on(live::history(&conn)),
        Command::Events { follow } => block_on(live::events(&conn, follow)),
        Command::Attach { target, options, agent } => match target.or(conn.pid) {
            Some(pid) => live::attach(pid, &options, agent, conn.output),
            None => Err("give the JVM: repairctl attach PID (repairctl ps lists the JVMs)".to_string()),
        },
        Command::Fleet { command } => fleet(command, conn.output),
        Command::Completions { shell } => {
            let mut buf = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "repairctl", &mut buf);
            cli::out(&String::from_utf8_lossy(&buf))
        }
        Command::Help { topic } => help(&topic),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("repairctl: error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `500ms`, `30s`, `2m` or a number of seconds.
fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let value = serde_yaml_ng::Value::String(text.to_string());
    let d = repair_model::spec::parse_duration(Some(&value), std::time::Duration::ZERO)?;
    if d.is_zero() {
        return Err("a duration above zero, such as 500ms, 30s or 2m".to_string());
    }
    Ok(d)
}
