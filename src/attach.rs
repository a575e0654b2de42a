//! Loading the agent into a running HotSpot JVM by its attach protocol (as `jcmd` and jattach
//! do): a `.attach_pid<PID>` file and SIGQUIT make the JVM open `/tmp/.java_pid<PID>`, where
//! the `load` command is sent.

use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// What the JVM answered to `load`.
#[derive(Debug, PartialEq, Eq)]
pub struct LoadResult {
    /// `Agent_OnAttach`'s return code (0: loaded).
    pub agent_code: i32,
    pub output: String,
}

/// The socket the target's attach listener serves, seen through the target's root (containers).
fn listener_socket(pid: u32) -> PathBuf {
    let root = PathBuf::from(format!("/proc/{pid}/root/tmp"));
    let base = if root.exists() { root } else { PathBuf::from("/tmp") };
    base.join(format!(".java_pid{pid}"))
}

/// Asks JVM `pid` to load the agent at `agent` (an absolute path) with `options`.
pub fn load_agent(pid: u32, agent: &Path, options: &str, timeout: Duration) -> Result<LoadResult, String> {
    if !Path::new(&format!("/proc/{pid}")).exists() {
        return Err(format!("no process {pid}"));
    }
    if !agent.is_absolute() || !agent.exists() {
        return Err(format!("agent library {} not found (give an absolute path with --agent)", agent.display()));
    }
    check_is_jvm(pid)?;
    let socket = listener_socket(pid);
    if !socket.exists() {
        start_listener(pid, &socket, timeout)?;
    }
    let mut s =
        UnixStream::connect(&socket).map_err(|e| format!("JVM {pid}: attach socket {}: {e}", socket.display()))?;
    s.set_read_timeout(Some(timeout)).ok();
    s.write_all(&request("load", &[&agent.display().to_string(), "true", options]))
        .map_err(|e| format!("JVM {pid}: attach request: {e}"))?;
    let mut reply = String::new();
    s.read_to_string(&mut reply).map_err(|e| format!("JVM {pid}: attach reply: {e}"))?;
    parse_reply(&reply).map_err(|e| format!("JVM {pid}: {e}"))
}

/// Refuses a process that is not a HotSpot JVM before anything is sent to it: SIGQUIT, the attach
/// signal, ends most other programs. libjvm.so in the memory map also finds JVMs embedded in
/// programs that are not `java`.
fn check_is_jvm(pid: u32) -> Result<(), String> {
    let maps_path = format!("/proc/{pid}/maps");
    let maps = std::fs::read_to_string(&maps_path).map_err(|e| {
        format!("process {pid}: cannot read {maps_path} to tell whether it is a Java VM: {e}; nothing was sent to it")
    })?;
    if maps_hold_libjvm(&maps) {
        return Ok(());
    }
    let name =
        std::fs::read_to_string(format!("/proc/{pid}/comm")).map_or_else(|_| "?".into(), |n| n.trim().to_string());
    Err(format!("process {pid} ({name}) is not a Java VM: no libjvm.so in its memory map; nothing was sent to it"))
}

/// Whether a `/proc/PID/maps` text maps a `libjvm.so` (also one deleted since, by a JDK update).
pub fn maps_hold_libjvm(maps: &str) -> bool {
    maps.lines().filter_map(|line| line.find('/').map(|i| &line[i..])).any(|path| {
        let path = path.strip_suffix(" (deleted)").unwrap_or(path);
        Path::new(path).file_name().is_some_and(|f| f == "libjvm.so")
    })
}

/// The attach protocol's request: version 1, the command and three arguments, NUL-terminated.
pub fn request(command: &str, args: &[&str]) -> Vec<u8> {
    let mut v = b"1\0".to_vec();
    v.extend_from_slice(command.as_bytes());
    v.push(0);
    for i in 0..3 {
        v.extend_from_slice(args.get(i).unwrap_or(&"").as_bytes());
        v.push(0);
    }
    v
}

/// `0\n` (command accepted) then the agent's code, as `return code: N` (JDK 9+) or `N`.
pub fn parse_reply(reply: &str) -> Result<LoadResult, String> {
    let mut lines = reply.lines();
    let status = lines.next().unwrap_or("").trim();
    let rest: Vec<&str> = lines.collect();
    if status != "0" {
        return Err(format!("the JVM refused the load command (status {status:?}): {}", rest.join(" ").trim()));
    }
    let code_line = rest.first().copied().unwrap_or("").trim();
    let code = code_line.strip_prefix("return code:").unwrap_or(code_line).trim();
    let agent_code = code.parse::<i32>().map_err(|_| format!("unexpected attach reply {reply:?}"))?;
    Ok(LoadResult { agent_code, output: rest[1.min(rest.len())..].join("\n") })
}

/// Makes the JVM start its attach listener: the trigger file, then SIGQUIT, then wait.
fn start_listener(pid: u32, socket: &Path, timeout: Duration) -> Result<(), String> {
    let owner = std::fs::metadata(format!("/proc/{pid}"))
        .map_err(|e| format!("process {pid}: cannot tell whose it is: {e}"))?
        .uid();
    let candidates =
        [PathBuf::from(format!("/proc/{pid}/cwd/.attach_pid{pid}")), PathBuf::from(format!("/tmp/.attach_pid{pid}"))];
    let mut refusals = Vec::new();
    let mut trigger = None;
    for path in &candidates {
        match create_trigger(path, owner) {
            Ok(t) => {
                trigger = Some(t);
                break;
            }
            Err(e) => refusals.push(e),
        }
    }
    let Some(trigger) = trigger else {
        return Err(format!("JVM {pid}: no attach trigger: {}", refusals.join("; ")));
    };
    let signalled = std::process::Command::new("kill").args(["-QUIT", &pid.to_string()]).status();
    if !signalled.is_ok_and(|s| s.success()) {
        return Err(format!("JVM {pid}: cannot send it SIGQUIT (another user's process?)"));
    }
    let start = Instant::now();
    while !socket.exists() {
        if start.elapsed() > timeout {
            return Err(format!(
                "process {pid} did not open its attach socket within {:?}: not a HotSpot JVM, or started with -XX:+DisableAttachMechanism",
                timeout
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(trigger);
    Ok(())
}

/// The `.attach_pid<PID>` file whose presence makes the JVM start its listener on SIGQUIT.
/// Dropping it removes the file, if it is the one we created.
#[derive(Debug)]
pub struct Trigger {
    path: PathBuf,
    /// The file we created, held open so that its inode cannot be reused by another while we
    /// compare; `None` for one that was there already.
    created: Option<std::fs::File>,
}

impl Drop for Trigger {
    fn drop(&mut self) {
        // The directory may be the JVM owner's: what is at the path now may no longer be ours.
        let Some(ours) = self.created.as_ref().and_then(|f| f.metadata().ok()) else { return };
        if std::fs::symlink_metadata(&self.path).is_ok_and(|m| m.dev() == ours.dev() && m.ino() == ours.ino()) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// O_NOFOLLOW, which std does not export. `create_new` (O_EXCL) already refuses a symbolic link
/// at the path; this says so a second time where the value is known.
#[cfg(all(target_os = "linux", any(target_arch = "x86_64", target_arch = "x86")))]
const O_NOFOLLOW: i32 = 0o400000;
#[cfg(all(target_os = "linux", any(target_arch = "aarch64", target_arch = "arm")))]
const O_NOFOLLOW: i32 = 0o100000;
#[cfg(not(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "x86", target_arch = "aarch64", target_arch = "arm")
)))]
const O_NOFOLLOW: i32 = 0;

/// Creates the attach trigger at `path` for a JVM run by `owner_uid`, where repairctl may be root
/// and the directory the JVM owner's: a new file only (never one opened through a symbolic link
/// the owner planted, never one truncated), given to `owner_uid` when we are root (HotSpot obeys
/// only a trigger of its own user or root, and jattach does the same). A regular file of
/// `owner_uid` already at `path` serves as it is and is left in place.
pub fn create_trigger(path: &Path, owner_uid: u32) -> Result<Trigger, String> {
    let refuse = |why: String| format!("{}: {why}: refusing it as the attach trigger", path.display());
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => return Err(refuse("a symbolic link, not a regular file".into())),
        Ok(m) if !m.file_type().is_file() => return Err(refuse("not a regular file".into())),
        Ok(m) if m.uid() != owner_uid => {
            return Err(refuse(format!("owned by uid {}, not by the JVM's uid {owner_uid}", m.uid())))
        }
        Ok(_) => return Ok(Trigger { path: path.to_path_buf(), created: None }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("{}: {e}", path.display())),
    }
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(O_NOFOLLOW)
        .open(path)
        .map_err(|e| format!("{}: cannot create the attach trigger: {e}", path.display()))?;
    // On the open file, not the path: the path may be swapped for a symbolic link meanwhile.
    let chown = if crate::endpoint::current_uid() == Some(0) && owner_uid != 0 {
        std::os::unix::fs::fchown(&file, Some(owner_uid), None)
    } else {
        Ok(())
    };
    let trigger = Trigger { path: path.to_path_buf(), created: Some(file) };
    chown.map_err(|e| format!("{}: cannot give the attach trigger to uid {owner_uid}: {e}", path.display()))?;
    Ok(trigger)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_framed_as_hotspot_expects() {
        assert_eq!(
            request("load", &["/a/librepair.so", "true", "faults=off"]),
            b"1\0load\0/a/librepair.so\0true\0faults=off\0".to_vec()
        );
        assert_eq!(request("properties", &[]), b"1\0properties\0\0\0\0".to_vec());
    }

    #[test]
    fn replies_give_the_agent_code() {
        assert_eq!(parse_reply("0\nreturn code: 0\n").unwrap(), LoadResult { agent_code: 0, output: String::new() });
        assert_eq!(parse_reply("0\n-1\n").unwrap().agent_code, -1);
        assert!(parse_reply("101\nOperation not supported\n").unwrap_err().contains("refused the load command"));
        assert!(parse_reply("0\ngarbage").is_err());
    }

    #[test]
    fn a_missing_process_or_library_is_named() {
        assert_eq!(
            load_agent(u32::MAX - 1, Path::new("/x.so"), "", Duration::from_millis(10)).unwrap_err(),
            format!("no process {}", u32::MAX - 1)
        );
        let me = std::process::id();
        assert!(load_agent(me, Path::new("relative.so"), "", Duration::from_millis(10))
            .unwrap_err()
            .contains("not found"));
    }

    /// A fresh directory under the temp dir, removed by the test.
    fn scratch(tag: &str) -> PathBuf {
        let n = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
        let d = std::env::temp_dir().join(format!("repair-trigger-{tag}-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn a_planted_symlink_is_refused_and_its_target_left_alone() {
        let dir = scratch("symlink");
        let victim = dir.join("victim");
        std::fs::write(&victim, "precious").unwrap();
        let trigger = dir.join(".attach_pid4242");
        std::os::unix::fs::symlink(&victim, &trigger).unwrap();
        let me = crate::endpoint::current_uid().unwrap();
        let refused = create_trigger(&trigger, me).err();
        let after = std::fs::read_to_string(&victim).unwrap();
        let still_a_link = std::fs::symlink_metadata(&trigger).unwrap().file_type().is_symlink();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(after, "precious", "the symlink's target was truncated");
        assert!(still_a_link);
        let refused = refused.expect("a symlink is refused");
        assert_eq!(
            refused,
            format!("{}: a symbolic link, not a regular file: refusing it as the attach trigger", trigger.display())
        );
    }

    #[test]
    fn the_trigger_is_a_new_file_of_the_jvms_user_removed_only_if_still_ours() {
        let dir = scratch("trigger");
        let me = crate::endpoint::current_uid().unwrap();
        let path = dir.join(".attach_pid4242");

        // Someone else's regular file, or a directory: refused, not touched.
        std::fs::create_dir(&path).unwrap();
        assert!(create_trigger(&path, me)
            .unwrap_err()
            .ends_with(": not a regular file: refusing it as the attach trigger"));
        std::fs::remove_dir(&path).unwrap();
        std::fs::write(&path, "theirs").unwrap();
        let other = me.wrapping_add(1);
        assert_eq!(
            create_trigger(&path, other).unwrap_err(),
            format!(
                "{}: owned by uid {me}, not by the JVM's uid {other}: refusing it as the attach trigger",
                path.display()
            )
        );
        // The owner's own file serves, untruncated, and stays.
        drop(create_trigger(&path, me).unwrap());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "theirs");
        std::fs::remove_file(&path).unwrap();

        // A new one is removed when dropped, unless the directory's owner replaced it meanwhile.
        drop(create_trigger(&path, me).unwrap());
        assert!(!path.exists());
        let t = create_trigger(&path, me).unwrap();
        std::fs::remove_file(&path).unwrap();
        std::fs::write(&path, "replaced").unwrap();
        drop(t);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "replaced");
        std::fs::remove_file(&path).unwrap();

        // As root, the new file is the JVM user's (HotSpot ignores triggers of other users).
        if me == 0 {
            let t = create_trigger(&path, 4242).unwrap();
            assert_eq!(std::fs::metadata(&path).unwrap().uid(), 4242);
            drop(t);
            assert!(!path.exists());
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_process_without_libjvm_is_refused_before_any_signal() {
        let me = std::process::id();
        let exe = std::env::current_exe().unwrap();
        let refused = load_agent(me, &exe, "", Duration::from_millis(10)).unwrap_err();
        assert!(refused.starts_with(&format!("process {me} (")), "{refused}");
        assert!(
            refused.ends_with(") is not a Java VM: no libjvm.so in its memory map; nothing was sent to it"),
            "{refused}"
        );
        let jvm = "7f00a000-7f00b000 r-xp 00000000 08:01 1234   /usr/lib/jvm/java-21/lib/server/libjvm.so\n";
        assert!(maps_hold_libjvm(&format!("55d0-55e0 r--p 00000000 08:01 99   /usr/bin/java\n{jvm}")));
        assert!(maps_hold_libjvm("7f00-7f01 r-xp 00000000 08:01 1   /opt/my jdk/lib/server/libjvm.so (deleted)\n"));
        assert!(!maps_hold_libjvm(
            "7f00-7f01 r-xp 00000000 08:01 1   /usr/lib/libjvm.so.bak\n7f02-7f03 rw-p 0 0:0 0   [heap]\n"
        ));
    }
}
