//! The agent's layering, checked from its source: every module uses only modules of lower layers
//! (so there is no import cycle), and `unsafe` code lives in `jvm/` alone. The layers are drawn
//! at the top of `agent/src/lib.rs`; this test is how anyone checks them:
//! `cargo test -p repair-agent --test layers`.

use std::path::{Path, PathBuf};

/// Top-level modules of `agent/src`, lowest first. A module may use modules of lower layers only.
const LAYERS: &[(&str, u32)] = &[
    ("config", 0),
    ("log", 1),
    ("events", 2),
    ("jvm", 2),
    ("runtime", 3),
    ("patches", 4),
    ("journal", 5),
    ("deploy", 5),
    ("observe", 4),
    ("healing", 6),
    ("control", 7),
    ("lifecycle", 8),
];

fn layer(module: &str) -> Option<u32> {
    LAYERS.iter().find(|(m, _)| *m == module).map(|(_, l)| *l)
}

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let p = entry.path();
        if p.is_dir() {
            sources(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

/// The code of a file without comments (line comments only: the crate has no block comments) and
/// without its `#[cfg(test)]` module (tests may reach anything).
fn code(text: &str) -> String {
    let text = match text.find("#[cfg(test)]\nmod tests") {
        Some(at) => &text[..at],
        None => text,
    };
    text.lines().map(|l| l.split("//").next().unwrap_or("")).collect::<Vec<_>>().join("\n")
}

/// The top-level modules a file refers to: `crate::x` paths and the log macros (`log::`).
fn uses(code: &str) -> Vec<String> {
    let mut found = Vec::new();
    let ident =
        |s: &str| -> String { s.trim().chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect() };
    for (at, _) in code.match_indices("crate::") {
        let rest = &code[at + "crate::".len()..];
        // `use crate::{a, b::C}` names several modules at once.
        let names: Vec<String> = match rest.strip_prefix('{') {
            Some(group) => group[..group.find('}').unwrap_or(group.len())].split(',').map(ident).collect(),
            None => vec![ident(rest)],
        };
        for name in names.into_iter().filter(|n| !n.is_empty()) {
            // `crate::log_warn!` and the like are the log macros.
            found.push(if name.starts_with("log_") { "log".to_string() } else { name });
        }
    }
    for m in ["log_error!", "log_warn!", "log_info!", "log_debug!", "log_at!"] {
        if code.contains(m) {
            found.push("log".to_string());
        }
    }
    found.sort();
    found.dedup();
    found
}

#[test]
fn every_module_uses_only_lower_layers() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let mut wrong = Vec::new();
    for f in &files {
        let rel = f.strip_prefix(&src).unwrap();
        let top = rel.components().next().unwrap().as_os_str().to_string_lossy().trim_end_matches(".rs").to_string();
        if top == "lib" {
            continue;
        }
        let Some(own) = layer(&top) else {
            wrong.push(format!("{}: module {top} has no layer in LAYERS", rel.display()));
            continue;
        };
        for used in uses(&code(&std::fs::read_to_string(f).unwrap())) {
            if used == top {
                continue;
            }
            match layer(&used) {
                Some(l) if l < own => {}
                Some(l) => wrong.push(format!("{} (layer {own}) uses {used} (layer {l})", rel.display())),
                None => wrong.push(format!("{} uses crate::{used}, which has no layer", rel.display())),
            }
        }
    }
    assert!(files.len() > 10, "found only {} source files under {}", files.len(), src.display());
    assert!(wrong.is_empty(), "imports that do not point down:\n{}", wrong.join("\n"));
}

#[test]
fn unsafe_code_lives_in_the_jvm_wrapper_only() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let outside: Vec<String> = files
        .iter()
        .filter(|f| !f.strip_prefix(&src).unwrap().starts_with("jvm"))
        .filter(|f| code(&std::fs::read_to_string(f).unwrap()).contains("unsafe"))
        .map(|f| f.display().to_string())
        .collect();
    assert!(outside.is_empty(), "unsafe outside jvm/: {outside:?}");
}

#[test]
fn the_checker_sees_a_use_that_points_up() {
    let up = "use crate::healing::Healer;\nuse crate::{patches, journal::Journal};\nfn f() { crate::log_warn!(\"x\"); }\n// crate::control in a comment\n";
    assert_eq!(uses(&code(up)), ["healing", "journal", "log", "patches"]);
}
