//! Agent options: `key=value` pairs separated by commas, as given after `librepair.so=`.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

/// Where the control plane listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ControlEndpoint {
    /// A Unix socket at a path derived from the pid, in a directory only the JVM's user can enter.
    Unix,
    /// TCP on `host:port`, only with a token.
    Tcp { host: String, port: u16 },
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
    pub token: Option<String>,
    pub state_dir: Option<PathBuf>,
    pub policy: Option<PathBuf>,
    pub faults: FaultMode,
    pub log: LogLevel,
    /// `app=GLOB:GLOB...`: bytecode capture only in these classes (dotted globs, `com.shop.*`);
    /// empty: every class outside the JDK and the agent.
    pub app: Vec<String>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            control: ControlEndpoint::Unix,
            token: None,
            state_dir: None,
            policy: None,
            faults: FaultMode::Bytecode,
            log: LogLevel::Warn,
            app: Vec::new(),
        }
    }
}

pub const KEYS: &str = "control, token, state, policy, faults, log, app";

impl Options {
    /// Parses `key=value,key=value`; the error names the offending pair and why.
    pub fn parse(text: &str) -> Result<Options, String> {
        let mut o = Options::default();
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
                "token" => o.token = Some(nonempty(value)?),
                "state" => o.state_dir = Some(PathBuf::from(nonempty(value)?)),
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
                _ => return Err(format!("unknown option {key:?} (known keys: {KEYS})")),
            }
        }
        if matches!(o.control, ControlEndpoint::Tcp { .. }) && o.token.is_none() {
            return Err("control=tcp:... needs token=SECRET: a TCP endpoint is open to other users".to_string());
        }
        Ok(o)
    }
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
            Options::parse("control=tcp:127.0.0.1:7000,token=s3,state=/tmp/st,policy=/p.yaml,faults=jvmti,log=debug,app=com.shop.*:org.acme.Main")
                .unwrap();
        assert_eq!(o.control, ControlEndpoint::Tcp { host: "127.0.0.1".into(), port: 7000 });
        assert_eq!(o.token.as_deref(), Some("s3"));
        assert_eq!(o.state_dir, Some(PathBuf::from("/tmp/st")));
        assert_eq!(o.policy, Some(PathBuf::from("/p.yaml")));
        assert_eq!(o.faults, FaultMode::Jvmti);
        assert_eq!(o.log, LogLevel::Debug);
        assert_eq!(o.app, ["com.shop.*", "org.acme.Main"]);
    }

    #[test]
    fn bad_input_names_the_key() {
        assert!(Options::parse("colour=red").unwrap_err().contains("\"colour\""));
        assert!(Options::parse("faults=maybe").unwrap_err().contains("faults=\"maybe\""));
        assert!(Options::parse("control=tcp:h:99999").unwrap_err().contains("99999"));
        assert!(Options::parse("control=tcp:h:1").unwrap_err().contains("token"));
        assert!(Options::parse("justaword").unwrap_err().contains("\"justaword\""));
        assert!(Options::parse("log=loud").unwrap_err().contains("log=\"loud\""));
        assert!(Options::parse("app=").unwrap_err().contains("app= needs"));
        assert!(Options::parse("app=com/shop/*").unwrap_err().contains("dotted"));
    }
}
