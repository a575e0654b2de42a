//! Agent options: `key=value` pairs separated by commas, as given after `librepair.so=`.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

/// Where the control plane listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ControlEndpoint {
    /// A Unix socket at a path derived from the pid, in a directory only the JVM's user can enter.
    Unix,
    /// TCP on `host:port`, only with a token; beyond loopback only with TLS.
    Tcp { host: String, port: u16 },
}

/// PEM files of the control plane's TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// With a CA, clients must present a certificate it signed (mTLS).
    pub client_ca: Option<PathBuf>,
}

/// How faults are captured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultMode {
    /// JVMTI `Exception` events. Holding that capability makes every throw in the JVM 2–19x
    /// dearer, so it is only taken when asked for, and only at start-up (attach cannot have it).
    Jvmti,
    /// Exception-exit probes injected into the application's classes (`Hooks.thrown`).
    Bytecode,
    Off,
}

impl fmt::Display for FaultMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FaultMode::Jvmti => "jvmti",
            FaultMode::Bytecode => "bytecode",
            FaultMode::Off => "off",
        })
    }
}

/// Log verbosity on the JVM's stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    Error = 0,
    Warn = 1,
    Info = 2,
    Debug = 3,
}

impl FromStr for LogLevel {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "error" => Ok(LogLevel::Error),
            "warn" => Ok(LogLevel::Warn),
            "info" => Ok(LogLevel::Info),
            "debug" => Ok(LogLevel::Debug),
            _ => Err(format!("log={s:?}: expected error, warn, info or debug")),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    pub control: ControlEndpoint,
    /// `token_file=PATH`: the TCP token; else `$REPAIR_TOKEN`, else one is generated.
    pub token_file: Option<PathBuf>,
    pub tls: Option<TlsFiles>,
    pub state_dir: Option<PathBuf>,
    /// `journal_max=MIB`: the journal is compacted above this size (default 8 MiB).
    pub journal_max_bytes: u64,
    pub policy: Option<PathBuf>,
    pub faults: FaultMode,
    pub log: LogLevel,
    /// `app=GLOB:GLOB...`: bytecode capture only in these classes (dotted globs, `com.shop.*`);
    /// empty: every class outside the JDK and the agent.
    pub app: Vec<String>,
    /// `service=NAME`: the service this JVM is an instance of (`repaird` groups JVMs by it);
    /// empty: not said (the fleet falls back to the main class or jar).
    pub service: String,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            control: ControlEndpoint::Unix,
            token_file: None,
            tls: None,
            state_dir: None,
            journal_max_bytes: repair_model::journal::DEFAULT_MAX_BYTES,
            policy: None,
            faults: FaultMode::Bytecode,
            log: LogLevel::Warn,
            app: Vec::new(),
            service: String::new(),
        }
    }
}

pub const KEYS: &str =
    "control, token_file, tls_cert, tls_key, tls_client_ca, state, journal_max, policy, faults, log, app, service";

impl Options {
    /// Parses `key=value,key=value`; the error names the offending pair and why.
    pub fn parse(text: &str) -> Result<Options, String> {
        let mut o = Options::default();
        let (mut cert, mut tls_key, mut client_ca) = (None, None, None);
        for pair in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let Some((key, value)) = pair.split_once('=') else {
                return Err(format!("option {pair:?} is not key=value (known keys: {KEYS})"));
            };
            let nonempty = |v: &str| {
                if v.is_empty() {
                    Err(format!("option {key}= needs a value"))
                } else {
                    Ok(v.to_string())
                }
            };
            match key {
                "control" => o.control = parse_control(value)?,
                "token" => {
                    return Err("option token= would show the secret to every local user (ps, /proc/PID/cmdline): \
                                use token_file=PATH (mode 0600) or $REPAIR_TOKEN"
                        .to_string())
                }
                "token_file" => o.token_file = Some(PathBuf::from(nonempty(value)?)),
                "tls_cert" => cert = Some(PathBuf::from(nonempty(value)?)),
                "tls_key" => tls_key = Some(PathBuf::from(nonempty(value)?)),
                "tls_client_ca" => client_ca = Some(PathBuf::from(nonempty(value)?)),
                "state" => o.state_dir = Some(PathBuf::from(nonempty(value)?)),
                "journal_max" => {
                    o.journal_max_bytes = match value.parse::<u64>() {
                        Ok(mib @ 1..=65536) => mib << 20,
                        _ => return Err(format!("journal_max={value:?}: expected a size in MiB, 1-65536")),
                    }
                }
                "policy" => o.policy = Some(PathBuf::from(nonempty(value)?)),
                "faults" => {
                    o.faults = match value {
                        "jvmti" => FaultMode::Jvmti,
                        "bytecode" => FaultMode::Bytecode,
                        "off" => FaultMode::Off,
                        _ => return Err(format!("faults={value:?}: expected jvmti, bytecode or off")),
                    }
                }
                "log" => o.log = value.parse()?,
                "app" => {
                    o.app = value.split(':').map(str::trim).filter(|g| !g.is_empty()).map(str::to_string).collect();
                    if o.app.is_empty() {
                        return Err("option app= needs class globs, e.g. app=com.shop.*:org.acme.*".to_string());
                    }
                    if let Some(g) = o.app.iter().find(|g| g.contains('/')) {
                        return Err(format!("app={value:?}: {g:?} uses '/'; write dotted names (com.shop.*)"));
                    }
                }
                "service" => o.service = parse_service(value)?,
                _ => return Err(format!("unknown option {key:?} (known keys: {KEYS})")),
            }
        }
        o.tls = match (cert, tls_key, client_ca) {
            (Some(cert), Some(key), client_ca) => Some(TlsFiles { cert, key, client_ca }),
            (None, None, None) => None,
            (None, None, Some(_)) => return Err("tls_client_ca= needs tls_cert= and tls_key= too".to_string()),
            _ => return Err("TLS needs both tls_cert=PEM and tls_key=PEM".to_string()),
        };
        if o.control == ControlEndpoint::Unix && (o.tls.is_some() || o.token_file.is_some()) {
            return Err("token_file= and tls_*= are for control=tcp:HOST:PORT; the Unix socket is guarded by \
                        its directory's permissions"
                .to_string());
        }
        Ok(o)
    }
}

/// A service name: 1-64 of `A-Z a-z 0-9 . _ -` (it is a path segment of the fleet's keys in etcd).
pub fn parse_service(value: &str) -> Result<String, String> {
    repair_model::fleet::check_service(value).map_err(|e| format!("service={value:?}: {e}"))?;
    Ok(value.to_string())
}

fn parse_control(value: &str) -> Result<ControlEndpoint, String> {
    if value == "unix" {
        return Ok(ControlEndpoint::Unix);
    }
    let bad = || format!("control={value:?}: expected unix or tcp:HOST:PORT");
    let rest = value.strip_prefix("tcp:").ok_or_else(bad)?;
    let (host, port) = rest.rsplit_once(':').ok_or_else(bad)?;
    let port = port.parse::<u16>().map_err(|_| format!("control={value:?}: port {port:?} is not a number 0-65535"))?;
    if host.is_empty() {
        return Err(bad());
    }
    Ok(ControlEndpoint::Tcp { host: host.to_string(), port })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_capture_faults_in_bytecode_over_a_unix_socket() {
        let o = Options::parse("").unwrap();
        assert_eq!(o, Options::default());
        assert_eq!(o.faults, FaultMode::Bytecode);
        assert_eq!(o.control, ControlEndpoint::Unix);
    }

    #[test]
    fn every_key_parses() {
        let o =
            Options::parse("control=tcp:127.0.0.1:7000,token_file=/t,tls_cert=/c.pem,tls_key=/k.pem,tls_client_ca=/ca.pem,state=/tmp/st,policy=/p.yaml,faults=jvmti,log=debug,app=com.shop.*:org.acme.Main,service=shop")
                .unwrap();
        assert_eq!(o.control, ControlEndpoint::Tcp { host: "127.0.0.1".into(), port: 7000 });
        assert_eq!(o.token_file, Some(PathBuf::from("/t")));
        let tls = TlsFiles { cert: "/c.pem".into(), key: "/k.pem".into(), client_ca: Some("/ca.pem".into()) };
        assert_eq!(o.tls, Some(tls));
        assert_eq!(o.state_dir, Some(PathBuf::from("/tmp/st")));
        assert_eq!(o.policy, Some(PathBuf::from("/p.yaml")));
        assert_eq!(o.faults, FaultMode::Jvmti);
        assert_eq!(o.log, LogLevel::Debug);
        assert_eq!(o.app, ["com.shop.*", "org.acme.Main"]);
        assert_eq!(o.service, "shop");
    }

    #[test]
    fn bad_input_names_the_key() {
        assert!(Options::parse("colour=red").unwrap_err().contains("\"colour\""));
        assert!(Options::parse("faults=maybe").unwrap_err().contains("faults=\"maybe\""));
        assert!(Options::parse("control=tcp:h:99999").unwrap_err().contains("99999"));
        assert!(Options::parse("control=tcp:h:1,token=s3").unwrap_err().contains("token_file=PATH"));
        assert!(Options::parse("control=tcp:h:1,tls_cert=/c").unwrap_err().contains("both"));
        assert!(Options::parse("tls_cert=/c,tls_key=/k").unwrap_err().contains("control=tcp"));
        assert!(Options::parse("justaword").unwrap_err().contains("\"justaword\""));
        assert!(Options::parse("log=loud").unwrap_err().contains("log=\"loud\""));
        assert!(Options::parse("app=").unwrap_err().contains("app= needs"));
        assert!(Options::parse("journal_max=0").unwrap_err().contains("journal_max=\"0\""));
        assert_eq!(Options::parse("journal_max=64").unwrap().journal_max_bytes, 64 << 20);
        assert!(Options::parse("app=com/shop/*").unwrap_err().contains("dotted"));
        assert!(Options::parse("service=").unwrap_err().contains("service=\"\""));
        assert!(Options::parse("service=shop/eu").unwrap_err().contains("'/'"));
        assert!(Options::parse(&format!("service={}", "s".repeat(65))).unwrap_err().contains("64"));
    }

    #[test]
    fn the_service_option_names_the_fleet() {
        assert_eq!(Options::parse("service=shop-eu_1.a").unwrap().service, "shop-eu_1.a");
        assert_eq!(Options::parse("log=info").unwrap().service, "");
    }
}
