//! Where an agent listens: by default a Unix socket under a directory only the JVM's user can
//! enter, at a path derived from the JVM's pid, so `repairctl --pid PID` finds it.
//!
//! The directory is `$TMPDIR/repair-<uid>`. That name is predictable, so another user can make it
//! first: an agent then keeps its socket in a fresh private `repair-<uid>-<random>` instead, and a
//! client looks in every such directory that belongs to the JVM's user (not its own: root
//! attaching to another user's JVM looks under that user's uid).

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// The user id of this process (the owner of `/proc/self`); `None` without procfs.
pub fn current_uid() -> Option<u32> {
    process_uid(None)
}

/// The user id of process `pid` (this process for `None`).
pub fn process_uid(pid: Option<u32>) -> Option<u32> {
    let proc = pid.map_or_else(|| PathBuf::from("/proc/self"), |p| PathBuf::from(format!("/proc/{p}")));
    std::fs::metadata(proc).map(|m| m.uid()).ok()
}

/// The agents' socket directory for user `uid` under `base`: `<base>/repair-<uid>`.
pub fn default_socket_dir_in(base: &Path, uid: u32) -> PathBuf {
    base.join(format!("repair-{uid}"))
}

/// The socket directory this process's agent prefers: `$TMPDIR/repair-<uid>`.
pub fn default_socket_dir() -> PathBuf {
    default_socket_dir_in(&std::env::temp_dir(), current_uid().unwrap_or(0))
}

/// Whether `dir` can be trusted as user `uid`'s private directory: a real directory (not a
/// symlink), owned by `uid`, closed to everyone else.
pub fn is_private_dir_of(dir: &Path, uid: u32) -> Result<(), String> {
    let m = std::fs::symlink_metadata(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    if !m.file_type().is_dir() {
        return Err(format!("{} is not a directory", dir.display()));
    }
    if m.uid() != uid || m.mode() & 0o077 != 0 {
        return Err(format!(
            "{} must belong to uid {uid} with mode 0700 (has uid {}, mode {:o})",
            dir.display(),
            m.uid(),
            m.mode() & 0o777
        ));
    }
    Ok(())
}

/// The directories where an agent in a JVM of user `uid` may keep its files: `repair-<uid>` and
/// the fallbacks `repair-<uid>-*`, under this process's temp dir, the JVM's own (`bases`) and
/// `/tmp`; only those private to `uid`.
fn agent_dirs(uid: u32, bases: &[PathBuf]) -> Vec<PathBuf> {
    let mut all: Vec<PathBuf> = Vec::new();
    let mut seen_bases: Vec<&Path> = Vec::new();
    for base in bases {
        if seen_bases.contains(&base.as_path()) {
            continue;
        }
        seen_bases.push(base);
        let prefix = format!("repair-{uid}-");
        all.push(default_socket_dir_in(base, uid));
        if let Ok(entries) = std::fs::read_dir(base) {
            let mut fallbacks: Vec<PathBuf> = entries
                .flatten()
                .filter(|e| e.file_name().to_str().is_some_and(|n| n.starts_with(&prefix)))
                .map(|e| e.path())
                .collect();
            fallbacks.sort();
            all.extend(fallbacks);
        }
    }
    all.retain(|d| is_private_dir_of(d, uid).is_ok());
    all
}

/// The temp dirs where JVM `pid`'s agent may have made its directory: the JVM's `TMPDIR`, ours and
/// `/tmp`.
fn temp_bases(pid: u32) -> Vec<PathBuf> {
    let mut bases = Vec::new();
    if let Ok(env) = std::fs::read(format!("/proc/{pid}/environ")) {
        if let Some(t) = env.split(|&b| b == 0).find_map(|kv| kv.strip_prefix(b"TMPDIR=")) {
            if !t.is_empty() {
                bases.push(PathBuf::from(String::from_utf8_lossy(t).into_owned()));
            }
        }
    }
    bases.push(std::env::temp_dir());
    bases.push(PathBuf::from("/tmp"));
    bases
}

/// The file `<pid>.<ext>` the agent of JVM `pid` keeps in its private directory, if there is one.
/// A file older than the process is another's: a JVM killed before it could remove its socket,
/// whose pid the system has given again.
fn find_agent_file(pid: u32, ext: &str) -> Option<PathBuf> {
    let uid = process_uid(Some(pid))?;
    let started = process_start(pid);
    agent_dirs(uid, &temp_bases(pid)).into_iter().map(|d| d.join(format!("{pid}.{ext}"))).filter(|p| p.exists()).find(
        |p| match (started, std::fs::metadata(p).and_then(|m| m.modified())) {
            // Boot time is in whole seconds: a second of slack.
            (Some(start), Ok(made)) => made + std::time::Duration::from_secs(1) >= start,
            _ => true,
        },
    )
}

/// When process `pid` started, from `/proc` (its start in clock ticks after boot, and the boot
/// time).
fn process_start(pid: u32) -> Option<std::time::SystemTime> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces), itself in parentheses.
    let after = stat.rsplit_once(')')?.1;
    let ticks: u64 = after.split_whitespace().nth(19)?.parse().ok()?;
    let boot: u64 = std::fs::read_to_string("/proc/stat")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("btime ")?.trim().parse().ok())?;
    // SAFETY: sysconf only reads a configuration value.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let hz = if hz > 0 { hz as u64 } else { 100 };
    Some(std::time::UNIX_EPOCH + std::time::Duration::from_millis(boot * 1000 + ticks * 1000 / hz))
}

/// The socket of the agent inside JVM `pid`: found in its user's private directories, or where
/// it would be by default (for the error message).
pub fn socket_path(pid: u32) -> PathBuf {
    find_agent_file(pid, "sock").unwrap_or_else(|| {
        let uid = process_uid(Some(pid)).or_else(current_uid).unwrap_or(0);
        default_socket_dir_in(&std::env::temp_dir(), uid).join(format!("{pid}.sock"))
    })
}

/// The socket of the agent inside JVM `pid`, only if it exists.
pub fn find_socket(pid: u32) -> Option<PathBuf> {
    find_agent_file(pid, "sock")
}

/// The file holding the generated token of JVM `pid`'s TCP endpoint, beside its socket.
pub fn token_path(pid: u32) -> Option<PathBuf> {
    find_agent_file(pid, "token")
}

/// An endpoint as written on a command line or in agent options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    Unix(PathBuf),
    /// `host:port`, plaintext.
    Tcp(String),
    /// `host:port`, TLS.
    Tls(String),
}

impl Endpoint {
    /// Parses `unix:/path`, `tcp:host:port`, `http://host:port`, `tls:host:port` or
    /// `https://host:port`.
    pub fn parse(s: &str) -> Result<Endpoint, String> {
        if let Some(p) = s.strip_prefix("unix:") {
            if p.is_empty() {
                return Err(format!("endpoint {s:?}: no socket path after unix:"));
            }
            return Ok(Endpoint::Unix(PathBuf::from(p)));
        }
        let (hostport, tls) = match s.strip_prefix("tls:").or_else(|| s.strip_prefix("https://")) {
            Some(rest) => (rest, true),
            None => (s.strip_prefix("tcp:").or_else(|| s.strip_prefix("http://")).unwrap_or(s), false),
        };
        match hostport.rsplit_once(':') {
            Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => {
                Ok(if tls { Endpoint::Tls(hostport.to_string()) } else { Endpoint::Tcp(hostport.to_string()) })
            }
            _ => Err(format!(
                "endpoint {s:?}: expected unix:/path, tcp:HOST:PORT, tls:HOST:PORT, http://HOST:PORT or https://HOST:PORT"
            )),
        }
    }
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Endpoint::Unix(p) => write!(f, "unix:{}", p.display()),
            Endpoint::Tcp(a) => write!(f, "tcp:{a}"),
            Endpoint::Tls(a) => write!(f, "tls:{a}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_process_start_time_is_read_from_proc() {
        let me = super::process_start(std::process::id()).unwrap();
        let now = std::time::SystemTime::now();
        assert!(me <= now + std::time::Duration::from_secs(1), "{me:?} {now:?}");
        assert!(now.duration_since(me).unwrap() < std::time::Duration::from_secs(3600), "this test started recently");
        assert!(super::process_start(u32::MAX).is_none());
    }

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
        assert_eq!(Endpoint::parse("tls:h.example:443").unwrap(), Endpoint::Tls("h.example:443".into()));
        assert_eq!(Endpoint::parse("https://h:9").unwrap(), Endpoint::Tls("h:9".into()));
        assert!(Endpoint::parse("tcp:nowhere").unwrap_err().contains("expected unix:/path"));
        assert!(Endpoint::parse("unix:").is_err());
    }

    #[test]
    fn only_private_directories_of_the_jvms_user_are_searched() {
        let base = std::env::temp_dir().join(format!("repair-endpoint-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        std::fs::create_dir_all(&base).unwrap();
        let uid = current_uid().unwrap();
        let mk = |name: &str, mode: u32| {
            let d = base.join(name);
            std::fs::create_dir(&d).unwrap();
            std::fs::set_permissions(&d, std::fs::Permissions::from_mode(mode)).unwrap();
            d
        };
        let taken = mk(&format!("repair-{uid}"), 0o777);
        let fallback = mk(&format!("repair-{uid}-abc"), 0o700);
        let other = mk(&format!("repair-{}-x", uid + 1), 0o700);
        std::os::unix::fs::symlink(&fallback, base.join(format!("repair-{uid}-link"))).unwrap();
        assert_eq!(agent_dirs(uid, &[base.clone(), base.clone()]), [fallback], "not {taken:?}, {other:?} or the link");
        let _ = std::fs::remove_dir_all(&base);
    }
}
