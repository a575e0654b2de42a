//! `repairctl deploy BUILD`: hot-deploy the changed classes of a fixed build (a jar or a
//! directory of class files) into a live JVM, or print the plan (`--dry-run`).

use std::collections::HashMap;
use std::path::Path;

use serde_json::json;

use super::live::{operator, rpc, Conn};
use super::{print, table};
use crate::proto;

/// What `deploy` was asked to do besides reading the build.
#[derive(Debug, Clone, Default)]
pub struct DeployOptions {
    pub id: Option<String>,
    pub dry_run: bool,
    pub durable: bool,
    pub partial: bool,
}

/// A build's class files (path in the build → bytes) and its other files.
#[derive(Debug, Default)]
pub struct BuildFiles {
    pub class_files: HashMap<String, Vec<u8>>,
    pub resources: Vec<String>,
}

/// Reads a jar, or every file under a directory (paths relative to it, with `/`).
pub fn read_build(path: &Path) -> Result<BuildFiles, String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut entries: Vec<(String, Vec<u8>)> = Vec::new();
    if meta.is_dir() {
        walk(path, path, &mut entries)?;
    } else {
        for e in repair_bytecode::archive::read_archive(path)? {
            entries.push((e.name, e.bytes));
        }
    }
    let mut build = BuildFiles::default();
    for (name, bytes) in entries {
        let is_class =
            name.ends_with(".class") && !name.ends_with("module-info.class") && !name.starts_with("META-INF/");
        if is_class {
            build.class_files.insert(name, bytes);
        } else {
            build.resources.push(name);
        }
    }
    if build.class_files.is_empty() {
        return Err(format!(
            "{}: no class files in it: a deploy takes a jar or a directory of classes",
            path.display()
        ));
    }
    build.resources.sort();
    Ok(build)
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, Vec<u8>)>) -> Result<(), String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for entry in entries {
        let path = entry.map_err(|e| format!("{}: {e}", dir.display()))?.path();
        if path.is_dir() {
            walk(root, &path, out)?;
        } else {
            let name = path.strip_prefix(root).unwrap_or(&path).to_string_lossy().replace('\\', "/");
            out.push((name, std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?));
        }
    }
    Ok(())
}

pub async fn deploy(conn: &Conn, build_path: &Path, options: &DeployOptions) -> Result<(), String> {
    let build = read_build(build_path)?;
    let req = proto::DeployRequest {
        id: options.id.clone().unwrap_or_default(),
        source: build_path.display().to_string(),
        class_files: build.class_files,
        resources: build.resources,
        dry_run: options.dry_run,
        durable: options.durable,
        who: operator(),
        partial: options.partial,
    };
    let r = rpc(conn.client().await?.deploy(req).await)?;
    let value = json!({
        "id": r.id, "applied": r.applied, "summary": r.summary, "elapsed_us": r.elapsed_us,
        "resources": r.resources,
        "classes": r.classes.iter().map(|c| json!({"name": c.name, "state": c.state, "reasons": c.reasons,
            "sha_before": c.sha_before, "sha_after": c.sha_after})).collect::<Vec<_>>(),
    });
    print(conn.output, value, |wide| {
        // Unchanged classes are most of a build: listed only in the wide table.
        // One row per reason, the class and state on the first.
        let rows: Vec<Vec<String>> = r
            .classes
            .iter()
            .filter(|c| wide || c.state != "unchanged")
            .flat_map(|c| {
                let reasons = if c.reasons.is_empty() { vec![String::new()] } else { c.reasons.clone() };
                reasons.into_iter().enumerate().map(|(i, why)| match i {
                    0 => vec![c.name.clone(), c.state.clone(), why],
                    _ => vec![String::new(), String::new(), why],
                })
            })
            .collect();
        let mut text = table(&["CLASS", "STATE", "WHY"], &rows, wide, "every class of the build is as loaded");
        if !r.resources.is_empty() {
            text.push_str(&format!(
                "{} resources ignored (a deploy redefines classes only): {}\n",
                r.resources.len(),
                if wide || r.resources.len() <= 5 {
                    r.resources.join(", ")
                } else {
                    format!("{}, …", r.resources[..5].join(", "))
                }
            ));
        }
        text.push_str(&format!("{}\n", r.summary));
        if r.applied {
            text.push_str(&format!("roll back with: repairctl rollback {}\n", r.id));
        }
        text
    })
}
