//! `repairctl rewrite`: the offline rewrite of a `.class` or a `.jar`, by a patch spec or by a
//! stress mode that guards or probes every method.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use repair_bytecode::archive::{read_archive, Entry};
use repair_bytecode::transform::{guard::guard_all, probe::probe_all};
use serde::Serialize;

use super::Output;
use crate::spec::{PatchSpec, RewriteEnv};

/// New bytes per entry, `None` where the entry is copied unchanged.
type Rewritten = Vec<Option<Vec<u8>>>;

/// What to do to the classes.
pub enum Mode {
    Spec(PathBuf),
    GuardAll,
    ProbeAll,
}

#[derive(Debug, Default, Serialize, PartialEq)]
pub struct Summary {
    pub classes: usize,
    pub rewritten: usize,
    /// Methods guarded or probed (a spec counts its one method).
    pub methods: usize,
    pub skipped_methods: usize,
    /// Class entries that do not parse, copied unchanged.
    pub unparsed: usize,
    pub seconds: f64,
    pub classes_per_s: f64,
}

pub fn run(mode: &Mode, input: &Path, output: &Path, format: Output) -> Result<(), String> {
    let started = Instant::now();
    let spec = match mode {
        Mode::Spec(path) => Some(load_spec(path)?),
        _ => None,
    };
    let is_jar = |p: &Path| p.extension().is_some_and(|e| e == "jar");
    let mut summary = Summary::default();
    if is_jar(input) {
        if !is_jar(output) {
            return Err(format!("{}: the output of a jar must be a .jar", output.display()));
        }
        let entries = read_archive(input)?;
        if let Some((spec, _)) = &spec {
            let wanted = format!("{}.class", spec.target_class_internal());
            if !entries.iter().any(|e| e.name == wanted) {
                return Err(format!("{}: class {} not found (no entry {wanted})", input.display(), spec.class));
            }
        }
        let rewritten = rewrite_entries(&entries, mode, spec.as_ref(), &mut summary)?;
        write_jar(output, &entries, &rewritten)?;
    } else {
        let bytes = std::fs::read(input).map_err(|e| format!("{}: {e}", input.display()))?;
        let entry = Entry { name: input.display().to_string(), bytes };
        let rewritten = rewrite_entries(std::slice::from_ref(&entry), mode, spec.as_ref(), &mut summary)?;
        let bytes = rewritten.into_iter().next().flatten().unwrap_or(entry.bytes);
        std::fs::write(output, bytes).map_err(|e| format!("{}: {e}", output.display()))?;
    }
    summary.seconds = started.elapsed().as_secs_f64();
    summary.classes_per_s = summary.classes as f64 / summary.seconds.max(1e-9);
    let value = serde_json::to_value(&summary).map_err(|e| e.to_string())?;
    super::print(format, value, |_| {
        let verb = match mode {
            Mode::Spec(_) => "patched",
            Mode::GuardAll => "guarded",
            Mode::ProbeAll => "probed",
        };
        let mut text = format!(
            "{} of {} classes rewritten, {} methods {verb}",
            summary.rewritten, summary.classes, summary.methods
        );
        if summary.skipped_methods > 0 {
            text.push_str(&format!(" ({} skipped)", summary.skipped_methods));
        }
        if summary.unparsed > 0 {
            text.push_str(&format!(", {} copied unchanged (not parsed)", summary.unparsed));
        }
        text.push_str(&format!(
            ", in {:.2} s ({:.0} classes/s) -> {}\n",
            summary.seconds,
            summary.classes_per_s,
            output.display()
        ));
        text
    })
}

/// The spec and the files it refers to (read relative to the spec's directory).
fn load_spec(path: &Path) -> Result<(PatchSpec, HashMap<String, Vec<u8>>), String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let spec = PatchSpec::from_yaml(&text, &path.display().to_string()).map_err(|e| e.to_string())?;
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut attachments = HashMap::new();
    for name in spec.attachments_needed() {
        let file = dir.join(&name);
        let bytes = std::fs::read(&file)
            .map_err(|e| format!("{}: {} (named by the spec): {e}", path.display(), file.display()))?;
        attachments.insert(name, bytes);
    }
    Ok((spec, attachments))
}

/// New bytes per entry (`None`: copy unchanged), computed on every core, in entry order.
fn rewrite_entries(
    entries: &[Entry],
    mode: &Mode,
    spec: Option<&(PatchSpec, HashMap<String, Vec<u8>>)>,
    summary: &mut Summary,
) -> Result<Rewritten, String> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(entries.len().max(1));
    let chunk = entries.len().div_ceil(threads).max(1);
    // A progress line on a terminal (nothing when stderr is piped), for inputs large enough to wait on.
    let progress = super::stderr_is_terminal() && entries.len() > 1;
    let done = AtomicUsize::new(0);
    if progress {
        eprint!("rewriting: 0/{} entries (0%)", entries.len());
    }
    let results: Vec<Result<(Rewritten, Summary), String>> = std::thread::scope(|s| {
        let handles: Vec<_> =
            entries.chunks(chunk).map(|part| s.spawn(|| rewrite_part(part, mode, spec, &done))).collect();
        if progress {
            let mut last = format!("rewriting: 0/{} entries (0%)", entries.len());
            while !handles.iter().all(|h| h.is_finished()) {
                let n = done.load(Ordering::Relaxed);
                let line = format!("rewriting: {n}/{} entries ({}%)", entries.len(), n * 100 / entries.len().max(1));
                if line != last {
                    eprint!("\r\x1b[K{line}");
                    last = line;
                }
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            eprint!("\r\x1b[K");
        }
        handles.into_iter().map(|h| h.join().unwrap_or_else(|_| Err("a rewrite thread panicked".to_string()))).collect()
    });
    let mut out = Vec::with_capacity(entries.len());
    for r in results {
        let (part, s) = r?;
        out.extend(part);
        summary.classes += s.classes;
        summary.rewritten += s.rewritten;
        summary.methods += s.methods;
        summary.skipped_methods += s.skipped_methods;
        summary.unparsed += s.unparsed;
    }
    Ok(out)
}

fn rewrite_part(
    entries: &[Entry],
    mode: &Mode,
    spec: Option<&(PatchSpec, HashMap<String, Vec<u8>>)>,
    done: &AtomicUsize,
) -> Result<(Rewritten, Summary), String> {
    let mut s = Summary::default();
    let mut out = Vec::with_capacity(entries.len());
    for e in entries {
        done.fetch_add(1, Ordering::Relaxed);
        let is_class = e.name.ends_with(".class") && !e.name.ends_with("module-info.class");
        if !is_class {
            out.push(None);
            continue;
        }
        s.classes += 1;
        let result = match (mode, spec) {
            (Mode::Spec(_), Some((spec, attachments))) => {
                let name =
                    match repair_bytecode::ClassFile::parse(&e.bytes).and_then(|c| c.name().map(|n| n.into_owned())) {
                        Ok(n) => n,
                        Err(err) if !e.name.contains('!') && entries.len() == 1 => {
                            return Err(format!("{}: {err}", e.name))
                        }
                        Err(_) => {
                            s.unparsed += 1;
                            out.push(None);
                            continue;
                        }
                    };
                if name != spec.target_class_internal() {
                    if entries.len() == 1 {
                        return Err(format!(
                            "{}: holds class {}, not the patch target {}",
                            e.name,
                            name.replace('/', "."),
                            spec.class
                        ));
                    }
                    out.push(None);
                    continue;
                }
                let env = RewriteEnv { attachments: Some(attachments), ..RewriteEnv::default() };
                let bytes = spec.rewrite(&e.bytes, &env).map_err(|err| err.to_string())?;
                s.methods += 1;
                Ok(bytes)
            }
            (Mode::GuardAll, _) => guard_all(&e.bytes).map(|(b, st)| {
                s.methods += st.guarded;
                s.skipped_methods += st.skipped.len();
                b
            }),
            (Mode::ProbeAll, _) => probe_all(&e.bytes, 0).map(|(b, n)| {
                s.methods += n;
                b
            }),
            (Mode::Spec(_), None) => unreachable!("spec mode always carries its spec"),
        };
        match result {
            Ok(b) => {
                s.rewritten += 1;
                out.push(Some(b));
            }
            Err(_) => {
                s.unparsed += 1;
                out.push(None);
            }
        }
    }
    Ok((out, s))
}

fn write_jar(path: &Path, entries: &[Entry], rewritten: &[Option<Vec<u8>>]) -> Result<(), String> {
    let file = std::fs::File::create(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut zip = zip::ZipWriter::new(std::io::BufWriter::new(file));
    let options = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    for (e, new) in entries.iter().zip(rewritten) {
        zip.start_file(e.name.as_str(), options).map_err(|err| format!("{}: {}: {err}", path.display(), e.name))?;
        zip.write_all(new.as_deref().unwrap_or(&e.bytes)).map_err(|err| format!("{}: {err}", path.display()))?;
    }
    zip.finish().map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(())
}
