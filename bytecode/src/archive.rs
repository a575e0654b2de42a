//! Reading class files out of `.jar`, `.jmod` and `.class` files.

use std::io::{Cursor, Read};
use std::path::{Path, PathBuf};

/// One entry of an archive, in archive order.
pub struct Entry {
    pub name: String,
    pub bytes: Vec<u8>,
}

impl Entry {
    /// A class file of the archive's base layer (not `module-info`, not a multi-release version).
    pub fn is_class(&self) -> bool {
        self.name.ends_with(".class")
            && !self.name.ends_with("module-info.class")
            && !self.name.starts_with("META-INF/")
    }
}

/// Reads every file entry of a jar (zip), or of a jmod (zip after a 4-byte `JM` header), in
/// archive order. Entries are inflated on every core: a large jar's inflating is most of the time
/// a deploy or a rewrite spends reading it.
pub fn read_archive(path: &Path) -> Result<Vec<Entry>, String> {
    let data = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let zip = if data.starts_with(b"JM\x01\x00") { &data[4..] } else { &data[..] };
    let archive = zip::ZipArchive::new(Cursor::new(zip)).map_err(|e| format!("{}: not a jar: {e}", path.display()))?;
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(8);
    let chunk = archive.len().div_ceil(threads).max(1);
    let parts: Vec<Result<Vec<Entry>, String>> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..archive.len())
            .step_by(chunk)
            .map(|start| {
                let mut archive = archive.clone();
                let range = start..(start + chunk).min(archive.len());
                scope.spawn(move || entries(&mut archive, range, path))
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().unwrap_or_else(|_| Err(format!("{}: reading failed", path.display()))))
            .collect()
    });
    let mut out = Vec::with_capacity(archive.len());
    for part in parts {
        out.extend(part?);
    }
    Ok(out)
}

fn entries(
    archive: &mut zip::ZipArchive<Cursor<&[u8]>>,
    range: std::ops::Range<usize>,
    path: &Path,
) -> Result<Vec<Entry>, String> {
    let mut out = Vec::with_capacity(range.len());
    for i in range {
        let mut f = archive.by_index(i).map_err(|e| format!("{}: entry {i}: {e}", path.display()))?;
        if f.is_dir() {
            continue;
        }
        let name = f.name().to_string();
        let mut bytes = Vec::with_capacity(f.size() as usize);
        f.read_to_end(&mut bytes).map_err(|e| format!("{}: {name}: {e}", path.display()))?;
        let name = name.strip_prefix("classes/").map(str::to_string).unwrap_or(name);
        out.push(Entry { name, bytes });
    }
    Ok(out)
}

/// The distinct jars of a directory (symlinks resolved), sorted by path.
pub fn jars_in(dir: &Path) -> Vec<PathBuf> {
    let mut jars: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "jar"))
        .filter_map(|p| std::fs::canonicalize(p).ok())
        .collect();
    jars.sort();
    jars.dedup();
    jars
}
