//! Where an agent listens: by default a Unix socket under a directory only the JVM's user can
//! enter, at a path derived from the JVM's pid, so `repairctl --pid PID` finds it.

use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

/// The user id of this process (the owner of `/proc/self`); `None` without procfs.
pub fn current_uid() -> Option<u32> {
    std::fs::metadata("/proc/self").map(|m| m.uid()).ok()
}

/// The directory of the agents' sockets for the current user: `$TMPDIR/repair-<uid>`.
pub fn socket_dir() -> PathBuf {
    let uid = current_uid().unwrap_or(0);
    std::env::temp_dir().join(format!("repair-{uid}"))
}

/// The socket of the agent inside JVM `pid`.
pub fn socket_path(pid: u32) -> PathBuf {
    socket_dir().join(format!("{pid}.sock"))
}

/// The file holding the token of a TCP endpoint, beside the socket.
pub fn token_path(pid: u32) -> PathBuf {
    socket_dir().join(format!("{pid}.token"))
}

/// An endpoint as written on a command line or in agent options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    Unix(PathBuf),
    /// `host:port`.
    Tcp(String),
}

impl Endpoint {
    /// Parses `unix:/path`, `tcp:host:port` or `http://host:port`.
    pub fn parse(s: &str) -> Result<Endpoint, String> {
        if let Some(p) = s.strip_prefix("unix:") {
            if p.is_empty() {
                return Err(format!("endpoint {s:?}: no socket path after unix:"));
            }
            return Ok(Endpoint::Unix(PathBuf::from(p)));
        }
        let hostport = s.strip_prefix("tcp:").or_else(|| s.strip_prefix("http://")).unwrap_or(s);
        match hostport.rsplit_once(':') {
            Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => {
                Ok(Endpoint::Tcp(hostport.to_string()))
            }
            _ => Err(format!("endpoint {s:?}: expected unix:/path, tcp:HOST:PORT or http://HOST:PORT")),
        }
    }
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Endpoint::Unix(p) => write!(f, "unix:{}", p.display()),
            Endpoint::Tcp(a) => write!(f, "tcp:{a}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_paths_derive_from_the_pid() {
        let p = socket_path(4242);
        assert!(p.ends_with("4242.sock"));
        assert!(p.parent().unwrap().file_name().unwrap().to_str().unwrap().starts_with("repair-"));
    }

    #[test]
    fn endpoints_parse_or_say_why_not() {
        assert_eq!(Endpoint::parse("unix:/tmp/x.sock").unwrap(), Endpoint::Unix("/tmp/x.sock".into()));
        assert_eq!(Endpoint::parse("tcp:127.0.0.1:7000").unwrap(), Endpoint::Tcp("127.0.0.1:7000".into()));
        assert_eq!(Endpoint::parse("http://localhost:1").unwrap(), Endpoint::Tcp("localhost:1".into()));
        assert!(Endpoint::parse("tcp:nowhere").unwrap_err().contains("expected unix:/path"));
        assert!(Endpoint::parse("unix:").is_err());
    }
}
