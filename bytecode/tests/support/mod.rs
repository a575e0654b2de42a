//! Test support: compile Java sources with the JDK's javac and run classes on a real JVM.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

pub fn java_home() -> PathBuf {
    std::env::var_os("JAVA_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/lib/jvm/java-17-openjdk-amd64"))
}

/// A fresh directory under the target dir, removed first if it exists.
pub fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("repair-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Writes `sources` (file name → text) into `dir/src` and compiles them into `dir/classes`.
pub fn javac(dir: &Path, sources: &[(&str, &str)]) -> PathBuf {
    javac_with(dir, &["-g"], sources)
}

/// [`javac`] with other debug-information flags (`-g:lines`, `-g:none`).
pub fn javac_with(dir: &Path, flags: &[&str], sources: &[(&str, &str)]) -> PathBuf {
    let src = dir.join("src");
    let out = dir.join("classes");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::create_dir_all(&out).unwrap();
    let mut files = Vec::new();
    for (name, text) in sources {
        let p = src.join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, text).unwrap();
        files.push(p);
    }
    let status = Command::new(java_home().join("bin/javac"))
        .args(flags)
        .arg("-d")
        .arg(&out)
        .args(&files)
        .status()
        .expect("javac runs");
    assert!(status.success(), "javac failed");
    out
}

/// The other JDK the tests run on when this machine has it.
pub const TEMURIN: &str = "/usr/lib/jvm/temurin-25-jdk-amd64";

/// Runs `main` with `classpath` on the default JDK and, when present, on Temurin too, which must
/// behave the same; returns (success, stdout, stderr) of the default JDK's run.
pub fn java(classpath: &[&Path], main: &str) -> (bool, String, String) {
    let run = |home: &Path| {
        let cp = std::env::join_paths(classpath).unwrap();
        let out = Command::new(home.join("bin/java"))
            .arg("-Xshare:off")
            .arg("-cp")
            .arg(cp)
            .arg(main)
            .output()
            .expect("java runs");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let reference = run(&java_home());
    let temurin = Path::new(TEMURIN);
    if temurin.join("bin/java").exists() {
        let other = run(temurin);
        assert_eq!(
            (other.0, &other.1),
            (reference.0, &reference.1),
            "Temurin behaves differently; its stderr:\n{}",
            other.2
        );
    } else {
        println!("skipping the second JDK: {TEMURIN} not found");
    }
    reference
}
