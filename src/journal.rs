//! The journal: an append-only, fsync'd record of every patch applied, validated and rolled
//! back. Each record is framed as `[len: u32 BE][crc32: u32 BE][JSON]`, so a record torn by a
//! crash is detected and the journal is read up to its last whole record.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// What happened to a patch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Event {
    Applied,
    Validated,
    RolledBack,
    /// An apply that the transform or the JVM refused; nothing changed.
    Refused,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// Position in the journal, from 1.
    pub seq: u64,
    /// Unix time in milliseconds.
    pub at_ms: u64,
    pub event: Event,
    pub patch_id: String,
    /// `operator:<name>` or `rule:<name>`.
    pub who: String,
    /// Dotted class names the patch touches.
    pub classes: Vec<String>,
    /// The patch spec (YAML) as applied; empty for later events of the same patch.
    #[serde(default)]
    pub spec: String,
    #[serde(default)]
    pub durable: bool,
    /// SHA-256 of the class bytes before and after, hex (one pair per class).
    #[serde(default)]
    pub hashes: Vec<(String, String)>,
    #[serde(default)]
    pub reason: String,
    /// Files the spec names (a swap's class), as `(name, SHA-256)`: kept beside the journal
    /// under `attachments/<SHA-256>`.
    #[serde(default)]
    pub attachments: Vec<(String, String)>,
}

/// How reading an existing journal went.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Recovery {
    pub records: usize,
    /// Bytes after the last whole record, dropped (a write torn by a crash).
    pub torn_bytes: u64,
}

pub struct Journal {
    path: PathBuf,
    file: File,
    next_seq: u64,
}

const HEADER: usize = 8;
/// Larger records are taken as corruption, not allocated.
const MAX_RECORD: u32 = 16 << 20;

/// Creates `dir` and its missing parents with mode 0700 (an existing directory is left as it is).
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)
}

impl Journal {
    /// Opens (or creates) the journal in `state_dir`, returning the records it holds and what was
    /// recovered. A torn tail is cut off so new records follow the last whole one.
    pub fn open(state_dir: &Path) -> Result<(Journal, Vec<Record>, Recovery), String> {
        create_private_dir(state_dir).map_err(|e| format!("state dir {}: {e}", state_dir.display()))?;
        let path = state_dir.join("journal.log");
        // What patches were applied, by whom, with their specs: readable by the JVM's user only.
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| format!("journal {}: {e}", path.display()))?;
        let mut data = Vec::new();
        file.read_to_end(&mut data).map_err(|e| format!("journal {}: {e}", path.display()))?;
        let (records, good) = parse(&data);
        let recovery = Recovery { records: records.len(), torn_bytes: (data.len() - good) as u64 };
        if good < data.len() {
            file.set_len(good as u64).map_err(|e| format!("journal {}: cutting torn tail: {e}", path.display()))?;
            file.sync_all().map_err(|e| format!("journal {}: {e}", path.display()))?;
        }
        file.seek(SeekFrom::End(0)).map_err(|e| format!("journal {}: {e}", path.display()))?;
        let next_seq = records.last().map_or(1, |r| r.seq + 1);
        Ok((Journal { path, file, next_seq }, records, recovery))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends a record (its `seq` and `at_ms` are assigned here) and syncs it to disk before
    /// returning.
    pub fn append(&mut self, mut record: Record) -> Result<Record, String> {
        record.seq = self.next_seq;
        if record.at_ms == 0 {
            record.at_ms = now_ms();
        }
        let body = serde_json::to_vec(&record).map_err(|e| format!("journal record: {e}"))?;
        let mut frame = Vec::with_capacity(HEADER + body.len());
        frame.extend_from_slice(&(body.len() as u32).to_be_bytes());
        frame.extend_from_slice(&crc32fast::hash(&body).to_be_bytes());
        frame.extend_from_slice(&body);
        self.file
            .write_all(&frame)
            .and_then(|_| self.file.sync_data())
            .map_err(|e| format!("journal {}: {e}", self.path.display()))?;
        self.next_seq += 1;
        Ok(record)
    }
}

/// Whole records from the start of `data`, and how many bytes they span.
fn parse(data: &[u8]) -> (Vec<Record>, usize) {
    let mut records = Vec::new();
    let mut at = 0;
    while data.len() - at >= HEADER {
        let len = u32::from_be_bytes(data[at..at + 4].try_into().expect("4 bytes"));
        let crc = u32::from_be_bytes(data[at + 4..at + 8].try_into().expect("4 bytes"));
        if len > MAX_RECORD || data.len() - at - HEADER < len as usize {
            break;
        }
        let body = &data[at + HEADER..at + HEADER + len as usize];
        if crc32fast::hash(body) != crc {
            break;
        }
        let Ok(record) = serde_json::from_slice::<Record>(body) else { break };
        records.push(record);
        at += HEADER + len as usize;
    }
    (records, at)
}

/// The durable patches in effect after replaying `records`: applied with `durable`, or kept by
/// a rule (validated with `durable`), and not rolled back since. Returned in the order they
/// became durable, each with the spec it was applied with.
pub fn durable_patches(records: &[Record]) -> Vec<Record> {
    let mut applied: Vec<&Record> = Vec::new();
    let mut active: Vec<Record> = Vec::new();
    for r in records {
        match r.event {
            Event::Applied => {
                applied.retain(|a| a.patch_id != r.patch_id);
                applied.push(r);
                active.retain(|a| a.patch_id != r.patch_id);
                if r.durable {
                    active.push(r.clone());
                }
            }
            Event::Validated if r.durable => {
                if let Some(a) = applied.iter().find(|a| a.patch_id == r.patch_id) {
                    active.retain(|x| x.patch_id != r.patch_id);
                    active.push(Record { durable: true, ..(*a).clone() });
                }
            }
            Event::RolledBack => active.retain(|a| a.patch_id != r.patch_id),
            _ => {}
        }
    }
    active
}

pub fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// Hex SHA-256 of class bytes, as journaled.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str, event: Event, durable: bool) -> Record {
        Record {
            seq: 0,
            at_ms: 0,
            event,
            patch_id: id.into(),
            who: "operator:test".into(),
            classes: vec!["com.shop.PriceService".into()],
            spec: format!("id: {id}"),
            durable,
            hashes: vec![(sha256_hex(b"before"), sha256_hex(b"after"))],
            reason: String::new(),
            attachments: Vec::new(),
        }
    }

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("repair-journal-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn records_survive_reopening_in_order() {
        let d = dir("reopen");
        let (mut j, old, rec) = Journal::open(&d).unwrap();
        assert!(old.is_empty());
        assert_eq!(rec, Recovery::default());
        j.append(record("a", Event::Applied, true)).unwrap();
        j.append(record("b", Event::Applied, false)).unwrap();
        j.append(record("a", Event::Validated, true)).unwrap();
        drop(j);
        let (mut j, old, rec) = Journal::open(&d).unwrap();
        assert_eq!(old.iter().map(|r| r.seq).collect::<Vec<_>>(), vec![1, 2, 3]);
        assert_eq!(rec.torn_bytes, 0);
        assert_eq!(j.append(record("c", Event::Applied, true)).unwrap().seq, 4);
    }

    #[test]
    fn the_state_dir_and_journal_are_private_to_the_jvms_user() {
        use std::os::unix::fs::PermissionsExt;
        let d = dir("private").join("app");
        let (mut j, _, _) = Journal::open(&d).unwrap();
        j.append(record("a", Event::Applied, true)).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&d), 0o700, "state dir");
        assert_eq!(mode(d.parent().unwrap()), 0o700, "a parent it created");
        assert_eq!(mode(j.path()), 0o600, "journal");
    }

    #[test]
    fn a_torn_tail_is_dropped_and_nothing_earlier_is_lost() {
        let d = dir("torn");
        let (mut j, _, _) = Journal::open(&d).unwrap();
        j.append(record("a", Event::Applied, true)).unwrap();
        j.append(record("b", Event::Applied, true)).unwrap();
        let path = j.path().to_path_buf();
        drop(j);
        let full = std::fs::metadata(&path).unwrap().len();
        // A crash in the middle of writing a third record.
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(&[0, 0, 1, 0, 0xde, 0xad, b'{', b'"']).unwrap();
        drop(f);
        let (mut j, records, rec) = Journal::open(&d).unwrap();
        assert_eq!(records.len(), 2);
        assert_eq!(rec, Recovery { records: 2, torn_bytes: 8 });
        assert_eq!(std::fs::metadata(&path).unwrap().len(), full, "torn tail cut off");
        j.append(record("c", Event::Applied, true)).unwrap();
        drop(j);
        let (_, records, rec) = Journal::open(&d).unwrap();
        assert_eq!(records.iter().map(|r| r.patch_id.as_str()).collect::<Vec<_>>(), ["a", "b", "c"]);
        assert_eq!(rec.torn_bytes, 0);
    }

    #[test]
    fn a_corrupt_record_ends_the_readable_journal() {
        let d = dir("corrupt");
        let (mut j, _, _) = Journal::open(&d).unwrap();
        j.append(record("a", Event::Applied, true)).unwrap();
        j.append(record("b", Event::Applied, true)).unwrap();
        let path = j.path().to_path_buf();
        drop(j);
        let mut data = std::fs::read(&path).unwrap();
        let last = data.len() - 3;
        data[last] ^= 0xFF;
        std::fs::write(&path, &data).unwrap();
        let (_, records, rec) = Journal::open(&d).unwrap();
        assert_eq!(records.len(), 1);
        assert!(rec.torn_bytes > 0);
    }

    #[test]
    fn durable_patches_are_those_applied_and_not_rolled_back() {
        let mut rs = vec![
            record("a", Event::Applied, true),
            record("b", Event::Applied, false),
            record("c", Event::Applied, true),
            record("a", Event::RolledBack, true),
            record("d", Event::Applied, true),
            record("e", Event::Applied, false),
            record("e", Event::Validated, true),
            record("f", Event::Applied, false),
            record("f", Event::Validated, false),
        ];
        for (i, r) in rs.iter_mut().enumerate() {
            r.seq = i as u64 + 1;
        }
        let ids: Vec<String> = durable_patches(&rs).into_iter().map(|r| r.patch_id).collect();
        assert_eq!(ids, ["c", "d", "e"], "e was kept by its rule");
        assert_eq!(durable_patches(&rs)[2].spec, "id: e", "a kept patch replays the spec it was applied with");
    }
}
