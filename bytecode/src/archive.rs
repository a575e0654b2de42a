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

/// Reads every file entry of a jar (zip), or of a jmod (zip after a 4-byte `JM` header).
pub fn read_archive(path: &Path) -> Result<Vec<Entry>, String> {
    let data = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let zip = if data.starts_with(b"JM\x01\x00") { &data[4..] } else { &data[..] };
    let mut archive =
        zip::ZipArchive::new(Cursor::new(zip)).map_err(|e| format!("{}: not a jar: {e}", path.display()))?;
    let mut out = Vec::with_capacity(archive.len());
    for i in 0..archive.len() {
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
