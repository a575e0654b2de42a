//! Generates the JVMTI/JNI bindings from the JDK's own `jvmti.h` (bindgen, into OUT_DIR).
//!
//! The JDK is `$JAVA_HOME`, or the one `javac` on the PATH belongs to.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

fn java_home() -> PathBuf {
    if let Some(home) = env::var_os("JAVA_HOME").filter(|h| !h.is_empty()) {
        return PathBuf::from(home);
    }
    let javac = Command::new("sh")
        .args(["-c", "readlink -f \"$(command -v javac)\""])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()))
        .filter(|p| p.is_file());
    match javac.as_deref().and_then(Path::parent).and_then(Path::parent) {
        Some(home) => home.to_path_buf(),
        None => panic!("repair-agent: cannot find a JDK: set JAVA_HOME or put javac on the PATH"),
    }
}

fn main() {
    println!("cargo:rerun-if-env-changed=JAVA_HOME");
    println!("cargo:rerun-if-changed=build.rs");
    let home = java_home();
    let include = home.join("include");
    let header = include.join("jvmti.h");
    if !header.is_file() {
        panic!("repair-agent: {} does not exist: JAVA_HOME must point to a JDK (not a JRE)", header.display());
    }
    let bindings = bindgen::Builder::default()
        .header(header.to_string_lossy())
        .clang_arg(format!("-I{}", include.display()))
        .clang_arg(format!("-I{}", include.join("linux").display()))
        .allowlist_type("jvmti.*")
        .allowlist_type("JNI.*")
        .allowlist_type("JavaVM.*")
        .allowlist_type("_?j.*")
        .allowlist_var("JVMTI_.*")
        .allowlist_var("JNI_.*")
        .derive_default(true)
        .layout_tests(false)
        .generate_comments(false)
        .generate()
        .unwrap_or_else(|e| panic!("repair-agent: bindgen over {} failed: {e}", header.display()));
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR")).join("jvmti_bindings.rs");
    bindings.write_to_file(&out).unwrap_or_else(|e| panic!("repair-agent: cannot write {}: {e}", out.display()));
}
