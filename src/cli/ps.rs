//! `repairctl ps`: the JVMs on this host that this user may see, and whether the agent is in them;
//! and the default JVM of the live commands (the only one with the agent).

use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::json;

use super::{print, table, Output};
use crate::endpoint;

/// One JVM as `ps` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Jvm {
    pub pid: u32,
    pub user: String,
    /// The main class, `-jar` file or `-m` module of the command line (else the program's name).
    pub main: String,
    /// `JAVA_VERSION` of the JDK's `release` file, else `?`.
    pub jdk: String,
    pub uptime_s: u64,
    /// librepair is mapped into the JVM.
    pub agent: bool,
    /// Where its agent listens (`unix:/tmp/repair-1000/42.sock`), when that is known.
    pub endpoint: Option<String>,
}

/// Every process whose memory map this user may read and that maps a `libjvm.so`, by pid.
pub fn list() -> Vec<Jvm> {
    let mut pids: Vec<u32> = std::fs::read_dir("/proc")
        .map(|d| d.flatten().filter_map(|e| e.file_name().to_str()?.parse().ok()).collect())
        .unwrap_or_default();
    pids.sort_unstable();
    let me = std::process::id();
    pids.into_iter().filter(|&p| p != me).filter_map(jvm).collect()
}

/// What `ps` knows of `pid`, if it is a JVM this user may see.
pub fn jvm(pid: u32) -> Option<Jvm> {
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).ok()?;
    if !crate::attach::maps_hold_libjvm(&maps) {
        return None;
    }
    let agent = maps_hold_agent(&maps);
    let cmdline: Vec<String> = std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| {
            b.split(|&c| c == 0).filter(|a| !a.is_empty()).map(|a| String::from_utf8_lossy(a).into_owned()).collect()
        })
        .unwrap_or_default();
    let endpoint = endpoint::find_socket(pid)
        .map(|p| format!("unix:{}", p.display()))
        .or_else(|| agent.then(|| control_option(&cmdline)).flatten());
    Some(Jvm {
        pid,
        user: endpoint::process_uid(Some(pid)).map_or_else(|| "?".into(), user_name),
        main: main_of(&cmdline).unwrap_or_else(|| comm(pid)),
        jdk: jdk_version(pid).unwrap_or_else(|| "?".into()),
        uptime_s: uptime_s(pid).unwrap_or(0),
        agent,
        endpoint,
    })
}

/// Whether a `/proc/PID/maps` text maps the agent, `librepair.so`.
pub fn maps_hold_agent(maps: &str) -> bool {
    maps.lines().filter_map(|line| line.find('/').map(|i| &line[i..])).any(|path| {
        let path = path.strip_suffix(" (deleted)").unwrap_or(path);
        Path::new(path).file_name().is_some_and(|f| f == "librepair.so")
    })
}

/// The program name of `pid` (`/proc/PID/comm`).
pub fn comm(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm")).map_or_else(|_| "?".into(), |n| n.trim().to_string())
}

/// The login name of `uid` from `/etc/passwd`, else `uid:N`.
pub fn user_name(uid: u32) -> String {
    std::fs::read_to_string("/etc/passwd")
        .ok()
        .and_then(|passwd| {
            passwd.lines().find_map(|l| {
                let mut f = l.split(':');
                let name = f.next()?;
                (f.nth(1)?.parse::<u32>().ok()? == uid && !name.is_empty()).then(|| name.to_string())
            })
        })
        .unwrap_or_else(|| format!("uid:{uid}"))
}

/// Options of the java launcher that take the next argument as their value.
const WITH_VALUE: &[&str] = &[
    "-cp",
    "-classpath",
    "--class-path",
    "-p",
    "--module-path",
    "--upgrade-module-path",
    "--add-modules",
    "--limit-modules",
    "--add-opens",
    "--add-exports",
    "--add-reads",
    "--patch-module",
    "--enable-native-access",
];

/// The main class, `-jar` file or module of a java command line.
pub fn main_of(cmdline: &[String]) -> Option<String> {
    let mut args = cmdline.iter().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "-jar" => {
                return args.next().map(|j| Path::new(j).file_name().map_or(j.clone(), |f| f.to_string_lossy().into()))
            }
            "-m" | "--module" => return args.next().cloned(),
            o if WITH_VALUE.contains(&o) => {
                args.next();
            }
            o if o.starts_with('-') => {}
            main => return Some(main.to_string()),
        }
    }
    None
}

/// `control=` of the agent's options on the command line (`-agentpath:…/librepair.so=control=…`).
fn control_option(cmdline: &[String]) -> Option<String> {
    cmdline.iter().filter(|a| a.starts_with("-agentpath:") && a.contains("librepair")).find_map(|a| {
        let (_, options) = a.split_once('=')?;
        options.split(',').find_map(|kv| kv.strip_prefix("control=").map(str::to_string))
    })
}

/// `JAVA_VERSION` from the `release` file of the JDK whose `bin/java` runs `pid`.
fn jdk_version(pid: u32) -> Option<String> {
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).ok()?;
    let home: PathBuf = exe.parent()?.parent()?.into();
    let release = std::fs::read_to_string(home.join("release")).ok()?;
    release.lines().find_map(|l| l.strip_prefix("JAVA_VERSION=").map(|v| v.trim_matches('"').to_string()))
}

/// Seconds since `pid` started (`/proc/PID/stat` field 22 against `/proc/uptime`).
fn uptime_s(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_comm = &stat[stat.rfind(')')? + 2..];
    let start_ticks: u64 = after_comm.split(' ').nth(19)?.parse().ok()?;
    // SAFETY: sysconf only reads a configuration value.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    let up: f64 = std::fs::read_to_string("/proc/uptime").ok()?.split(' ').next()?.parse().ok()?;
    Some((up as u64).saturating_sub(start_ticks / hz))
}

/// `93s`, `12m`, `3h05m`, `2d04h`.
pub fn duration_text(s: u64) -> String {
    match s {
        0..=119 => format!("{s}s"),
        120..=3599 => format!("{}m", s / 60),
        3600..=86_399 => format!("{}h{:02}m", s / 3600, (s / 60) % 60),
        _ => format!("{}d{:02}h", s / 86_400, (s / 3600) % 24),
    }
}

pub fn ps(output: Output, agent_only: bool) -> Result<(), String> {
    let jvms: Vec<Jvm> = list().into_iter().filter(|j| j.agent || !agent_only).collect();
    print(output, json!(jvms), |wide| {
        let rows: Vec<Vec<String>> = jvms
            .iter()
            .map(|j| {
                vec![
                    j.pid.to_string(),
                    j.user.clone(),
                    j.main.clone(),
                    j.jdk.clone(),
                    duration_text(j.uptime_s),
                    if j.agent { "yes" } else { "no" }.into(),
                    j.endpoint.clone().unwrap_or_else(|| "-".into()),
                ]
            })
            .collect();
        let empty =
            if agent_only { "no JVM with the agent on this host" } else { "no JVM on this host that you may see" };
        table(&["PID", "USER", "MAIN", "JDK", "UPTIME", "AGENT", "ENDPOINT"], &rows, wide, empty)
    })
}

/// The JVM a live command talks to when it is given neither `--pid` nor `--endpoint`: the only
/// one with the agent's socket; says on stderr which it picked (once: a command that connects
/// several times keeps its first answer).
pub fn default_pid() -> Result<u32, String> {
    static PICKED: std::sync::OnceLock<Result<u32, String>> = std::sync::OnceLock::new();
    PICKED.get_or_init(pick_default_pid).clone()
}

fn pick_default_pid() -> Result<u32, String> {
    let with_agent: Vec<Jvm> = list().into_iter().filter(|j| j.agent).collect();
    let reachable: Vec<&Jvm> = with_agent.iter().filter(|j| endpoint::find_socket(j.pid).is_some()).collect();
    match (reachable.as_slice(), with_agent.as_slice()) {
        ([one], _) => {
            eprintln!("repairctl: JVM {} ({}), the only one with the agent (give --pid to choose)", one.pid, one.main);
            Ok(one.pid)
        }
        ([], []) => Err("no JVM on this host has the agent: `repairctl ps` lists the JVMs, \
             `repairctl attach PID` loads the agent into one"
            .into()),
        ([], [one]) => Err(format!(
            "JVM {} ({}) has the agent but no socket of it was found: give its --endpoint",
            one.pid, one.main
        )),
        _ => {
            let named = |j: &Jvm| format!("{} ({})", j.pid, j.main);
            let list: Vec<String> = if reachable.is_empty() {
                with_agent.iter().map(named).collect()
            } else {
                reachable.iter().map(|j| named(j)).collect()
            };
            Err(format!("{} JVMs have the agent: {}; give one with --pid PID", list.len(), list.join(", ")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split(' ').map(str::to_string).collect()
    }

    #[test]
    fn the_main_of_a_java_command_line() {
        assert_eq!(
            main_of(&args("java -Xmx1g -cp a:b -Dx=y com.shop.Main --port 1")).as_deref(),
            Some("com.shop.Main")
        );
        assert_eq!(main_of(&args("java -agentpath:/x.so=a=b -jar /opt/app/shop.jar x")).as_deref(), Some("shop.jar"));
        assert_eq!(main_of(&args("java --module-path m -m shop/com.shop.Main")).as_deref(), Some("shop/com.shop.Main"));
        assert_eq!(main_of(&args("java -version")), None);
    }

    #[test]
    fn the_agent_is_told_by_its_library_in_the_map() {
        let maps = "7f00-7f01 r-xp 0 08:01 1 /usr/lib/jvm/lib/server/libjvm.so\n\
                    7f02-7f03 r-xp 0 08:01 2 /opt/repair/librepair.so (deleted)\n";
        assert!(maps_hold_agent(maps));
        assert!(!maps_hold_agent("7f00-7f01 r-xp 0 08:01 1 /usr/lib/librepair.so.bak\n"));
        assert_eq!(
            control_option(&args("java -agentpath:/a/librepair.so=log=info,control=tcp:127.0.0.1:7 M")).as_deref(),
            Some("tcp:127.0.0.1:7")
        );
    }

    #[test]
    fn user_names_come_from_passwd() {
        assert_eq!(user_name(0), "root");
        assert_eq!(user_name(4_000_000_000), "uid:4000000000");
    }
}
