//! The journal: an append-only, fsync'd record of every patch applied, validated and rolled
//! back, shared by every JVM (replica) that uses the same state dir. Each record is framed as
//! `[len: u32 BE][crc32: u32 BE][JSON]`, so damage is found record by record: a bad stretch is
//! quarantined to a side file and the whole records after it are kept.
//!
//! Files in the state dir:
//! - `journal.log`: the journal;
//! - `journal.log.1`: the journal as it was before the last compaction;
//! - `journal.lock`: `flock`ed around every read-repair, append and compaction. A file of its
//!   own because repair and compaction replace `journal.log` (a new inode), and a lock on the
//!   old inode would not exclude a writer that opened the new one;
//! - `journal.corrupt-<unix_ms>-<offset>`: bytes cut out of the journal as corrupt or torn.

use std::collections::{BTreeSet, HashMap};
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::ops::Range;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, FileExt, MetadataExt, OpenOptionsExt};
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
    /// Position in the journal, from 1; unique across the instances sharing it.
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
    /// Which JVM wrote the record, set by the caller; empty in records written before
    /// instances shared a journal.
    #[serde(default)]
    pub instance: String,
    /// A rule's repair kept durable: the fault it was made for, by which a restart validates the
    /// restored repair again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fault: Option<RepairedFault>,
}

/// The fault a rule's repair was made for, as its durable verdict journals it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepairedFault {
    /// Dotted class name of the exception.
    pub exception: String,
    /// The methods (`class.method`) above the repaired one in its stack: a fault thrown in one of
    /// them after the repair's fallback is the repair's doing.
    pub callers: Vec<String>,
}

/// Bytes cut out of the journal and kept in a side file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quarantined {
    /// Where the bytes were in the journal.
    pub offset: u64,
    pub len: u64,
    /// The side file holding them (mode 0600).
    pub file: PathBuf,
}

/// How reading an existing journal went.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Recovery {
    pub records: usize,
    /// Bytes after the last whole record, cut off (a write torn by a crash). They are also the
    /// last entry of `quarantined`.
    pub torn_bytes: u64,
    /// Every bad stretch cut out, corrupt records in the middle and a torn tail alike.
    pub quarantined: Vec<Quarantined>,
}

/// What other instances sharing the journal wrote since this [`Journal`] last read it.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct News {
    /// Their records, in seq order.
    pub records: Vec<Record>,
    /// Bad bytes found while reading them (a crashed instance's torn write), cut out.
    pub quarantined: Vec<Quarantined>,
}

/// A record written by [`Journal::append`].
#[derive(Debug)]
pub struct Appended {
    /// As written, with its `seq` and `at_ms`.
    pub record: Record,
    /// Written by other instances before it: history has them ahead of `record`.
    pub news: News,
    /// The record is written, but compacting the journal failed; retried on the next append.
    pub compaction_error: Option<String>,
}

/// The size `journal.log` is kept under unless told otherwise.
pub const DEFAULT_MAX_BYTES: u64 = 8 << 20;

const JOURNAL: &str = "journal.log";
const ROTATED: &str = "journal.log.1";
const LOCK: &str = "journal.lock";
const HEADER: usize = 8;
/// Larger records are taken as corruption, not allocated.
const MAX_RECORD: u32 = 16 << 20;

pub struct Journal {
    dir: PathBuf,
    path: PathBuf,
    lock: File,
    file: File,
    /// How much of `file` this instance has read: whole records, where the next one goes.
    read_len: u64,
    next_seq: u64,
    max_bytes: u64,
    /// Set when a write failed and cutting it back failed too: the most the failed write can
    /// have left the file at, so the next append can cut it before writing.
    failed_write_end: Option<u64>,
    /// Read from other instances, not yet handed to the caller (kept through a failed append).
    news: News,
    #[cfg(test)]
    faults: Faults,
}

/// Injected I/O failures: running as root, permissions cannot make a write fail.
#[cfg(test)]
#[derive(Default)]
struct Faults {
    /// The next frame write stops after this many bytes and fails.
    write_after: Option<usize>,
    /// Cutting the file back fails.
    truncate: bool,
}

/// Creates `dir` and its missing parents with mode 0700 (an existing directory is left as it is).
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)
}

impl Journal {
    /// Opens (or creates) the journal in `state_dir`, returning the records `journal.log` holds
    /// (enough for [`durable_patches`]; [`read_history`] adds `journal.log.1`) and what was
    /// recovered. Bad bytes (corrupt records, a torn tail) are saved to side files and the
    /// journal is rewritten without them, keeping every whole record. `max_bytes` bounds
    /// `journal.log` (see [`DEFAULT_MAX_BYTES`]): past it, an append compacts.
    pub fn open(state_dir: &Path, max_bytes: u64) -> Result<(Journal, Vec<Record>, Recovery), String> {
        create_private_dir(state_dir).map_err(|e| format!("state dir {}: {e}", state_dir.display()))?;
        let lock_path = state_dir.join(LOCK);
        let lock = open_private(&lock_path).map_err(at(&lock_path))?;
        let _held = Held::take(&lock).map_err(at(&lock_path))?;
        let path = state_dir.join(JOURNAL);
        let loaded = load(state_dir, &path)?;
        let journal = Journal {
            dir: state_dir.to_path_buf(),
            path,
            lock,
            file: loaded.file,
            read_len: loaded.len,
            next_seq: loaded.records.last().map_or(1, |r| r.seq + 1),
            max_bytes,
            failed_write_end: None,
            news: News::default(),
            #[cfg(test)]
            faults: Faults::default(),
        };
        Ok((journal, loaded.records, loaded.recovery))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends a record (its `seq` is assigned here, and `at_ms` when 0) and syncs it to disk
    /// before returning. Under the journal lock it first reads what other instances appended, so
    /// seqs stay unique and contiguous across them, and hands those records back in
    /// [`Appended::news`] (also when an earlier append failed after reading them). A write that
    /// fails is cut back: the journal never keeps part of a record. Past `max_bytes` the journal
    /// is compacted: it keeps what [`durable_patches`] needs (each patch's last `Applied` and its
    /// last durable `Validated` or `RolledBack` after it) and the most recent records that fit in
    /// half of `max_bytes`; the old file becomes `journal.log.1` (see [`read_history`]).
    pub fn append(&mut self, mut record: Record) -> Result<Appended, String> {
        let _held = Held::take(&self.lock).map_err(at(&self.dir.join(LOCK)))?;
        self.cut_failed_write()?;
        self.catch_up()?;
        record.seq = self.next_seq;
        if record.at_ms == 0 {
            record.at_ms = now_ms();
        }
        let frame = frame(&record)?;
        if let Err(e) = self.write_synced(&frame) {
            if self.truncate(self.read_len).is_err() {
                self.failed_write_end = Some(self.read_len + frame.len() as u64);
            }
            return Err(format!("journal {}: {e}", self.path.display()));
        }
        self.read_len += frame.len() as u64;
        self.next_seq += 1;
        let compaction_error = if self.read_len > self.max_bytes { self.compact().err() } else { None };
        Ok(Appended { record, news: std::mem::take(&mut self.news), compaction_error })
    }

    /// What other instances wrote since this `Journal` last read the file, for a caller that
    /// wants them without appending.
    pub fn refresh(&mut self) -> Result<News, String> {
        let _held = Held::take(&self.lock).map_err(at(&self.dir.join(LOCK)))?;
        self.cut_failed_write()?;
        self.catch_up()?;
        Ok(std::mem::take(&mut self.news))
    }

    /// Cuts off what a failed write left when cutting it back failed too. Only this instance's
    /// bytes lie past `read_len` while the file is the same one and no longer than that write
    /// could make it: another instance reads them before appending, and either quarantines them
    /// (replacing the file) or, when they are a whole record whose sync alone failed, keeps the
    /// record and appends after it (the file grows past the bound).
    fn cut_failed_write(&mut self) -> Result<(), String> {
        let Some(end) = self.failed_write_end else { return Ok(()) };
        let len = self.file.metadata().map_err(at(&self.path))?.len();
        if self.same_file()? && len <= end {
            self.truncate(self.read_len).map_err(at(&self.path))?;
        }
        self.failed_write_end = None;
        Ok(())
    }

    /// Reads into `self.news` what other instances appended since this `Journal` last read the
    /// file, following the file when another instance replaced it.
    fn catch_up(&mut self) -> Result<(), String> {
        if !self.same_file()? {
            // Compacted or repaired by another instance: the records appended to the old file
            // after we read it are still readable through our descriptor; then the new file.
            let tail = self.read_from(self.read_len)?;
            self.take_news(scan(&tail).records);
            return self.reload();
        }
        let tail = self.read_from(self.read_len)?;
        let scan = scan(&tail);
        if !scan.bad.is_empty() {
            // A crashed instance's torn write: repair the whole file as open does.
            return self.reload();
        }
        self.read_len += tail.len() as u64;
        self.take_news(scan.records);
        Ok(())
    }

    fn reload(&mut self) -> Result<(), String> {
        let loaded = load(&self.dir, &self.path)?;
        self.file = loaded.file;
        self.read_len = loaded.len;
        self.take_news(loaded.records);
        self.news.quarantined.extend(loaded.recovery.quarantined);
        Ok(())
    }

    /// Keeps the records this instance has not seen (seq from `next_seq` on) as news.
    fn take_news(&mut self, records: Vec<Record>) {
        for r in records {
            if r.seq >= self.next_seq {
                self.next_seq = r.seq + 1;
                self.news.records.push(r);
            }
        }
    }

    /// Whether `journal.log` is still the file this `Journal` has open.
    fn same_file(&self) -> Result<bool, String> {
        let open = self.file.metadata().map_err(at(&self.path))?;
        match std::fs::metadata(&self.path) {
            Ok(now) => Ok((now.dev(), now.ino()) == (open.dev(), open.ino())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(at(&self.path)(e)),
        }
    }

    fn read_from(&self, offset: u64) -> Result<Vec<u8>, String> {
        read_from(&self.file, offset).map_err(at(&self.path))
    }

    fn write_synced(&mut self, frame: &[u8]) -> io::Result<()> {
        #[cfg(test)]
        if let Some(n) = self.faults.write_after.take() {
            self.file.write_all(&frame[..n.min(frame.len())])?;
            return Err(io::Error::other("injected write failure"));
        }
        self.file.write_all(frame)?;
        self.file.sync_data()
    }

    fn truncate(&mut self, len: u64) -> io::Result<()> {
        #[cfg(test)]
        if self.faults.truncate {
            return Err(io::Error::other("injected truncate failure"));
        }
        self.file.set_len(len)?;
        self.file.sync_data()
    }

    /// Replaces `journal.log` with the records `compaction_keep` picks (original bytes, so
    /// seqs are kept) and keeps the old file as `journal.log.1`. Runs under the lock right after
    /// an append, when the file holds whole records only.
    fn compact(&mut self) -> Result<(), String> {
        let data = self.read_from(0)?;
        let scan = scan(&data);
        let sizes: Vec<u64> = scan.spans.iter().map(|s| s.len() as u64).collect();
        let keep = compaction_keep(&scan.records, &sizes, self.max_bytes / 2);
        let bytes: Vec<u8> = keep.iter().flat_map(|&i| &data[scan.spans[i].clone()]).copied().collect();
        let tmp = write_tmp(&self.path, &bytes)?;
        // journal.log stays whole through a crash at any step: journal.log.1 becomes a second
        // name of the old file (via a link renamed over it), then the new file is renamed over
        // journal.log.
        let rotated = self.dir.join(ROTATED);
        let link = self.dir.join(format!("{ROTATED}.tmp"));
        remove_if_present(&link).map_err(at(&link))?;
        std::fs::hard_link(&self.path, &link).map_err(at(&link))?;
        std::fs::rename(&link, &rotated).map_err(at(&rotated))?;
        std::fs::rename(&tmp, &self.path).map_err(at(&self.path))?;
        sync_dir(&self.dir)?;
        self.file = open_private(&self.path).map_err(at(&self.path))?;
        self.read_len = bytes.len() as u64;
        Ok(())
    }
}

/// An exclusive `flock` on `journal.lock`, released on drop. Held on a duplicate of the lock
/// file's descriptor so it borrows nothing from the `Journal`: the lock belongs to the open
/// file description, which the duplicate shares.
struct Held(File);

impl Held {
    fn take(lock: &File) -> io::Result<Held> {
        let file = lock.try_clone()?;
        loop {
            // SAFETY: flock only reads the descriptor number, which `file` keeps open.
            if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } == 0 {
                return Ok(Held(file));
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        // SAFETY: as in `take`. Unlocking an open descriptor cannot fail.
        unsafe { libc::flock(self.0.as_raw_fd(), libc::LOCK_UN) };
    }
}

/// `journal.log` read whole under the lock, with bad bytes quarantined and cut out.
struct Loaded {
    file: File,
    len: u64,
    records: Vec<Record>,
    recovery: Recovery,
}

fn load(dir: &Path, path: &Path) -> Result<Loaded, String> {
    // What patches were applied, by whom, with their specs: readable by the JVM's user only.
    let file = open_private(path).map_err(at(path))?;
    let data = read_from(&file, 0).map_err(at(path))?;
    let scan = scan(&data);
    let mut recovery = Recovery { records: scan.records.len(), ..Recovery::default() };
    if scan.bad.is_empty() {
        return Ok(Loaded { file, len: data.len() as u64, records: scan.records, recovery });
    }
    let now = now_ms();
    for bad in &scan.bad {
        recovery.quarantined.push(quarantine(dir, now, bad.start, &data[bad.clone()])?);
    }
    recovery.torn_bytes = scan.bad.last().filter(|b| b.end == data.len()).map_or(0, |b| b.len() as u64);
    let good: Vec<u8> = scan.spans.iter().flat_map(|s| &data[s.clone()]).copied().collect();
    let tmp = write_tmp(path, &good)?;
    std::fs::rename(&tmp, path).map_err(at(path))?;
    sync_dir(dir)?;
    let file = open_private(path).map_err(at(path))?;
    Ok(Loaded { file, len: good.len() as u64, records: scan.records, recovery })
}

/// Saves bad bytes found at `offset` to `journal.corrupt-<now_ms>-<offset>`, synced before the
/// journal is rewritten without them.
fn quarantine(dir: &Path, now_ms: u64, offset: usize, bytes: &[u8]) -> Result<Quarantined, String> {
    let file = dir.join(format!("journal.corrupt-{now_ms}-{offset}"));
    let mut f =
        OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&file).map_err(at(&file))?;
    f.write_all(bytes).and_then(|()| f.sync_all()).map_err(at(&file))?;
    Ok(Quarantined { offset: offset as u64, len: bytes.len() as u64, file })
}

/// Opens (creating, 0600) a file for reading and appending.
fn open_private(path: &Path) -> io::Result<File> {
    OpenOptions::new().read(true).append(true).create(true).mode(0o600).open(path)
}

fn read_from(file: &File, offset: u64) -> io::Result<Vec<u8>> {
    let len = file.metadata()?.len();
    let mut data = vec![0; len.saturating_sub(offset) as usize];
    file.read_exact_at(&mut data, offset)?;
    Ok(data)
}

/// Writes `bytes` to `<path>.tmp` (0600) and syncs it, ready to be renamed over `path`.
fn write_tmp(path: &Path, bytes: &[u8]) -> Result<PathBuf, String> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let mut f = OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp).map_err(at(&tmp))?;
    f.write_all(bytes).and_then(|()| f.sync_all()).map_err(at(&tmp))?;
    Ok(tmp)
}

/// Makes renames in `dir` durable.
fn sync_dir(dir: &Path) -> Result<(), String> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(at(dir))
}

fn remove_if_present(path: &Path) -> io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

fn at(path: &Path) -> impl Fn(io::Error) -> String + '_ {
    move |e| format!("journal {}: {e}", path.display())
}

fn frame(record: &Record) -> Result<Vec<u8>, String> {
    let body = serde_json::to_vec(record).map_err(|e| format!("journal record: {e}"))?;
    let mut frame = Vec::with_capacity(HEADER + body.len());
    frame.extend_from_slice(&(body.len() as u32).to_be_bytes());
    frame.extend_from_slice(&crc32fast::hash(&body).to_be_bytes());
    frame.extend_from_slice(&body);
    Ok(frame)
}

/// The whole records in some bytes of a journal, where they are, and the bad stretches between.
struct Scan {
    records: Vec<Record>,
    /// Byte range of each record's frame, parallel to `records`.
    spans: Vec<Range<usize>>,
    bad: Vec<Range<usize>>,
}

/// Reads frames from the start of `data`; at a bad one, resynchronises on the next offset
/// where a whole valid frame starts, so one damaged record costs only itself.
fn scan(data: &[u8]) -> Scan {
    let mut scan = Scan { records: Vec::new(), spans: Vec::new(), bad: Vec::new() };
    let mut pos = 0;
    while pos < data.len() {
        if let Some((record, len)) = frame_at(data, pos) {
            scan.records.push(record);
            scan.spans.push(pos..pos + len);
            pos += len;
            continue;
        }
        let next = (pos + 1..data.len()).find(|&i| frame_at(data, i).is_some()).unwrap_or(data.len());
        scan.bad.push(pos..next);
        pos = next;
    }
    scan
}

/// The record framed at `pos` and the frame's length, if a whole valid frame starts there.
fn frame_at(data: &[u8], pos: usize) -> Option<(Record, usize)> {
    let header = data.get(pos..pos.checked_add(HEADER)?)?;
    let len = u32::from_be_bytes(header[..4].try_into().expect("4 bytes"));
    let crc = u32::from_be_bytes(header[4..].try_into().expect("4 bytes"));
    if len > MAX_RECORD {
        return None;
    }
    let body = data.get(pos + HEADER..pos + HEADER + len as usize)?;
    // Every record is a JSON object: a cheap test before the checksum while resynchronising.
    if body.first() != Some(&b'{') || crc32fast::hash(body) != crc {
        return None;
    }
    let record = serde_json::from_slice::<Record>(body).ok()?;
    Some((record, HEADER + len as usize))
}

/// Which records (indices into `records`, in order) a compaction keeps: the `replay_anchors`,
/// so [`durable_patches`] gives the same answer now and after any later records (this covers
/// every patch in effect, with the record that made it durable); and the most recent records
/// whose frames (`sizes`) fit in `budget` bytes, always at least the newest, whose seq the next
/// open numbers on from.
fn compaction_keep(records: &[Record], sizes: &[u64], budget: u64) -> Vec<usize> {
    let mut keep: BTreeSet<usize> = replay_anchors(records).into_iter().collect();
    let mut used = 0;
    for i in (0..records.len()).rev() {
        used += sizes[i];
        if used > budget && i + 1 < records.len() {
            break;
        }
        keep.insert(i);
    }
    keep.into_iter().collect()
}

/// Every record in `journal.log.1` and `journal.log`, in seq order, each seq once: history that
/// survives one compaction. Reads without the lock, taking whole records only.
pub fn read_history(state_dir: &Path) -> Result<Vec<Record>, String> {
    let mut records = Vec::new();
    for name in [ROTATED, JOURNAL] {
        let path = state_dir.join(name);
        match std::fs::read(&path) {
            Ok(data) => records.extend(scan(&data).records),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(at(&path)(e)),
        }
    }
    records.sort_by_key(|r| r.seq);
    records.dedup_by_key(|r| r.seq);
    Ok(records)
}

/// The attachment hashes (names under `attachments/`) that records in `journal.log` or
/// `journal.log.1` refer to; the other files there can be deleted. An attachment is saved
/// before the record naming it is appended, so a caller deleting concurrently with appends
/// (another instance) should spare recent files.
pub fn referenced_attachments(state_dir: &Path) -> Result<BTreeSet<String>, String> {
    Ok(read_history(state_dir)?.into_iter().flat_map(|r| r.attachments).map(|(_, sha)| sha).collect())
}

/// One page of history: the records (sorted by seq) with seq above `after_seq`, at most
/// `limit` of them, and the seq to pass as `after_seq` for the next page when more remain.
pub fn page(records: &[Record], after_seq: u64, limit: usize) -> (&[Record], Option<u64>) {
    let start = records.partition_point(|r| r.seq <= after_seq);
    let end = start + limit.min(records.len() - start);
    let next = (end < records.len()).then(|| if end > start { records[end - 1].seq } else { after_seq });
    (&records[start..end], next)
}

/// The durable patches in effect after replaying `records`: applied with `durable`, or kept by
/// a rule (validated with `durable`), and not rolled back since. Returned in the order they
/// became durable, each with the spec it was applied with (and, kept by a rule, the fault its
/// last durable verdict named).
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
                    active.push(Record { durable: true, fault: r.fault.clone(), ..(*a).clone() });
                }
            }
            // Rolled back, it is gone: a later validation (of the same id) has nothing to keep.
            Event::RolledBack => {
                applied.retain(|a| a.patch_id != r.patch_id);
                active.retain(|a| a.patch_id != r.patch_id);
            }
            _ => {}
        }
    }
    active
}

/// For every patch still in effect, the records [`durable_patches`] needs to reach the same
/// answer after any later records: its last `Applied` (a later durable `Validated` makes that one
/// durable) and the last durable `Validated` after it. A patch rolled back since needs nothing:
/// so the journal compacts to the patches in effect, however many ids were ever used.
fn replay_anchors(records: &[Record]) -> Vec<usize> {
    // Per patch id: its last Applied and last durable Validated, while not rolled back since.
    let mut anchors: HashMap<&str, Option<(usize, Option<usize>)>> = HashMap::new();
    for (i, r) in records.iter().enumerate() {
        match r.event {
            Event::Applied => {
                anchors.insert(&r.patch_id, Some((i, None)));
            }
            Event::RolledBack => {
                anchors.insert(&r.patch_id, None);
            }
            Event::Validated if r.durable => {
                if let Some(Some((_, last))) = anchors.get_mut(r.patch_id.as_str()) {
                    *last = Some(i);
                }
            }
            _ => {}
        }
    }
    anchors.into_values().flatten().flat_map(|(applied, last)| [Some(applied), last]).flatten().collect()
}

pub fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// Hex SHA-256 of class bytes, as journaled.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digest = sha2::Sha256::digest(bytes);
    let mut text = String::with_capacity(64);
    for b in digest {
        text.push(HEX[(b >> 4) as usize] as char);
        text.push(HEX[(b & 15) as usize] as char);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

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
            instance: String::new(),
            fault: None,
        }
    }

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("repair-journal-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    fn seqs(records: &[Record]) -> Vec<u64> {
        records.iter().map(|r| r.seq).collect()
    }

    fn mode(p: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn records_survive_reopening_in_order() {
        let d = dir("reopen");
        let (mut j, old, rec) = Journal::open(&d, DEFAULT_MAX_BYTES).unwrap();
        assert!(old.is_empty());
        assert_eq!(rec, Recovery::default());
        j.append(record("a", Event::Applied, true)).unwrap();
        j.append(record("b", Event::Applied, false)).unwrap();
        j.append(record("a", Event::Validated, true)).unwrap();
        drop(j);
        let (mut j, old, rec) = Journal::open(&d, DEFAULT_MAX_BYTES).unwrap();
        assert_eq!(seqs(&old), vec![1, 2, 3]);
        assert_eq!(rec.torn_bytes, 0);
        assert_eq!(j.append(record("c", Event::Applied, true)).unwrap().record.seq, 4);
    }

    #[test]
    fn the_state_dir_and_journal_are_private_to_the_jvms_user() {
        let d = dir("private").join("app");
        let (mut j, _, _) = Journal::open(&d, DEFAULT_MAX_BYTES).unwrap();
        j.append(record("a", Event::Applied, true)).unwrap();
        assert_eq!(mode(&d), 0o700, "state dir");
        assert_eq!(mode(d.parent().unwrap()), 0o700, "a parent it created");
        assert_eq!(mode(j.path()), 0o600, "journal");
        assert_eq!(mode(&d.join(LOCK)), 0o600, "lock file");
    }

    #[test]
    fn a_torn_tail_is_cut_and_quarantined() {
        let d = dir("torn");
        let (mut j, _, _) = Journal::open(&d, DEFAULT_MAX_BYTES).unwrap();
        j.append(record("a", Event::Applied, true)).unwrap();
        j.append(record("b", Event::Applied, true)).unwrap();
        let path = j.path().to_path_buf();
        drop(j);
        let full = std::fs::metadata(&path).unwrap().len();
        // A crash in the middle of writing a third record.
        let torn = [0, 0, 1, 0, 0xde, 0xad, b'{', b'"'];
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(&torn).unwrap();
        drop(f);
        let (mut j, records, rec) = Journal::open(&d, DEFAULT_MAX_BYTES).unwrap();
        assert_eq!(records.len(), 2);
        assert_eq!((rec.records, rec.torn_bytes), (2, 8));
        assert_eq!(rec.quarantined.len(), 1);
        let q = &rec.quarantined[0];
        assert_eq!((q.offset, q.len), (full, 8));
        assert_eq!(std::fs::read(&q.file).unwrap(), torn, "the torn bytes are kept aside");
        assert_eq!(mode(&q.file), 0o600);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), full, "torn tail cut off");
        j.append(record("c", Event::Applied, true)).unwrap();
        drop(j);
        let (_, records, rec) = Journal::open(&d, DEFAULT_MAX_BYTES).unwrap();
        assert_eq!(records.iter().map(|r| r.patch_id.as_str()).collect::<Vec<_>>(), ["a", "b", "c"]);
        assert_eq!(rec, Recovery { records: 3, ..Recovery::default() });
    }

    #[test]
    fn a_corrupt_last_record_is_quarantined_as_a_torn_tail() {
        let d = dir("corrupt");
        let (mut j, _, _) = Journal::open(&d, DEFAULT_MAX_BYTES).unwrap();
        j.append(record("a", Event::Applied, true)).unwrap();
        j.append(record("b", Event::Applied, true)).unwrap();
        let path = j.path().to_path_buf();
        drop(j);
        let mut data = std::fs::read(&path).unwrap();
        let last = data.len() - 3;
        data[last] ^= 0xFF;
        std::fs::write(&path, &data).unwrap();
        let (_, records, rec) = Journal::open(&d, DEFAULT_MAX_BYTES).unwrap();
        assert_eq!(records.len(), 1);
        let second = scan(&data).bad[0].clone();
        assert_eq!(rec.torn_bytes, second.len() as u64);
        assert_eq!(std::fs::read(&rec.quarantined[0].file).unwrap(), &data[second]);
    }

    #[test]
    fn a_corrupt_byte_in_the_middle_costs_only_its_record() {
        let d = dir("middle");
        let (mut j, _, _) = Journal::open(&d, DEFAULT_MAX_BYTES).unwrap();
        for i in 0..132 {
            j.append(record(&format!("p{i}"), Event::Applied, i % 2 == 0)).unwrap();
        }
        let path = j.path().to_path_buf();
        drop(j);
        let mut data = std::fs::read(&path).unwrap();
        let hit = scan(&data).spans[65].clone();
        data[hit.start + HEADER + 20] ^= 0x40;
        std::fs::write(&path, &data).unwrap();

        let (mut j, records, rec) = Journal::open(&d, DEFAULT_MAX_BYTES).unwrap();
        assert_eq!(records.len(), 131);
        assert_eq!(seqs(&records), (1..=132).filter(|&s| s != 66).collect::<Vec<_>>());
        assert_eq!((rec.records, rec.torn_bytes, rec.quarantined.len()), (131, 0, 1));
        let q = &rec.quarantined[0];
        assert_eq!((q.offset, q.len), (hit.start as u64, hit.len() as u64));
        assert_eq!(std::fs::read(&q.file).unwrap(), &data[hit.clone()], "the bad bytes, as they were");
        assert_eq!(std::fs::metadata(&path).unwrap().len(), (data.len() - hit.len()) as u64, "rewritten without them");
        assert_eq!(j.append(record("next", Event::Applied, true)).unwrap().record.seq, 133);
        drop(j);
        let (_, records, rec) = Journal::open(&d, DEFAULT_MAX_BYTES).unwrap();
        assert_eq!((records.len(), rec.quarantined.len()), (132, 0), "the repaired journal reads clean");
    }

    /// Two instances (JVMs sharing the state dir `d`) append in turn; returns what each has seen.
    fn alternate(d: &Path, max_bytes: u64, rounds: usize) -> (Vec<Record>, Vec<Record>) {
        let (mut a, mut seen_a, _) = Journal::open(d, max_bytes).unwrap();
        let (mut b, mut seen_b, _) = Journal::open(d, max_bytes).unwrap();
        for i in 0..rounds {
            for (j, seen, who) in [(&mut a, &mut seen_a, "a"), (&mut b, &mut seen_b, "b")] {
                let r =
                    j.append(Record { instance: who.into(), ..record(&format!("{who}{i}"), Event::Applied, false) });
                let r = r.unwrap();
                assert_eq!(r.compaction_error, None);
                seen.extend(r.news.records);
                seen.push(r.record);
            }
        }
        seen_a.extend(a.refresh().unwrap().records);
        seen_b.extend(b.refresh().unwrap().records);
        (seen_a, seen_b)
    }

    #[test]
    fn two_instances_number_records_as_one_and_see_each_others() {
        let d = dir("instances");
        let (a, b) = alternate(&d, DEFAULT_MAX_BYTES, 10);
        assert_eq!(seqs(&a), (1..=20).collect::<Vec<_>>());
        assert_eq!(a, b, "each saw the other's records");
        let instances: Vec<&str> = a.iter().map(|r| r.instance.as_str()).collect();
        assert_eq!(instances, ["a", "b"].repeat(10));
        assert_eq!(Journal::open(&d, DEFAULT_MAX_BYTES).unwrap().1, a);
    }

    #[test]
    fn instances_follow_each_other_through_compactions() {
        let d = dir("instances-compact");
        let (a, b) = alternate(&d, 3000, 40);
        assert_eq!(seqs(&a), (1..=80).collect::<Vec<_>>());
        assert_eq!(a, b);
        assert!(d.join(ROTATED).exists(), "it compacted");
    }

    #[test]
    fn a_crashed_instances_torn_write_is_quarantined_by_the_next_writer() {
        let d = dir("crashed");
        let (mut a, _, _) = Journal::open(&d, DEFAULT_MAX_BYTES).unwrap();
        let (mut b, _, _) = Journal::open(&d, DEFAULT_MAX_BYTES).unwrap();
        a.append(record("a", Event::Applied, true)).unwrap();
        b.faults = Faults { write_after: Some(10), truncate: true };
        b.append(record("b", Event::Applied, true)).unwrap_err();
        drop(b); // It crashes before it can cut its bytes.
        let next = a.append(record("c", Event::Applied, true)).unwrap();
        assert_eq!(next.record.seq, 2);
        assert_eq!(next.news.quarantined.len(), 1);
        assert_eq!(next.news.quarantined[0].len, 10);
        let (_, records, rec) = Journal::open(&d, DEFAULT_MAX_BYTES).unwrap();
        assert_eq!((seqs(&records), rec.quarantined.len()), (vec![1, 2], 0));
    }

    #[test]
    fn a_failed_write_leaves_no_partial_record() {
        let d = dir("failed-write");
        let (mut j, _, _) = Journal::open(&d, DEFAULT_MAX_BYTES).unwrap();
        for id in ["a", "b", "c"] {
            j.append(record(id, Event::Applied, true)).unwrap();
        }
        let before = std::fs::metadata(j.path()).unwrap().len();
        j.faults.write_after = Some(10);
        let err = j.append(record("d", Event::Applied, true)).unwrap_err();
        assert!(err.contains(&j.path().display().to_string()) && err.contains("injected write failure"), "{err}");
        assert_eq!(std::fs::metadata(j.path()).unwrap().len(), before, "cut back");
        let (_, records, rec) = Journal::open(&d, DEFAULT_MAX_BYTES).unwrap();
        assert_eq!((seqs(&records), rec), (vec![1, 2, 3], Recovery { records: 3, ..Recovery::default() }));
        assert_eq!(j.append(record("d", Event::Applied, true)).unwrap().record.seq, 4);
        let (_, records, _) = Journal::open(&d, DEFAULT_MAX_BYTES).unwrap();
        assert_eq!(seqs(&records), vec![1, 2, 3, 4]);
    }

    #[test]
    fn a_failed_cut_back_is_cut_before_the_next_write() {
        let d = dir("failed-cut");
        let (mut j, _, _) = Journal::open(&d, DEFAULT_MAX_BYTES).unwrap();
        j.append(record("a", Event::Applied, true)).unwrap();
        let before = std::fs::metadata(j.path()).unwrap().len();
        j.faults = Faults { write_after: Some(10), truncate: true };
        j.append(record("b", Event::Applied, true)).unwrap_err();
        assert_eq!(std::fs::metadata(j.path()).unwrap().len(), before + 10, "the partial record is still there");
        j.faults.truncate = false;
        assert_eq!(j.append(record("b", Event::Applied, true)).unwrap().record.seq, 2);
        let (_, records, rec) = Journal::open(&d, DEFAULT_MAX_BYTES).unwrap();
        assert_eq!((seqs(&records), rec.quarantined.len()), (vec![1, 2], 0), "cut, not quarantined");
    }

    /// A deterministic mix of events over a few patches.
    fn churn(i: u64) -> Record {
        let x = i.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407) >> 33;
        let id = format!("p{}", x % 4);
        match x % 7 {
            0 | 1 => record(&id, Event::Applied, x % 3 == 0),
            2 | 3 => record(&id, Event::Validated, x % 2 == 0),
            4 => record(&id, Event::RolledBack, false),
            _ => record(&id, Event::Refused, false),
        }
    }

    #[test]
    fn compaction_bounds_the_journal_and_keeps_durable_patches_and_history() {
        let d = dir("compact");
        let max = 16 << 10;
        let (mut j, _, _) = Journal::open(&d, max).unwrap();
        let mut all = Vec::new();
        for i in 0..400 {
            let r = j.append(churn(i)).unwrap();
            assert_eq!(r.compaction_error, None);
            assert_eq!(r.record.seq, i + 1, "seqs go on through compactions");
            all.push(r.record);
            assert!(std::fs::metadata(j.path()).unwrap().len() <= max, "after record {}", i + 1);
            assert_eq!(
                durable_patches(&Journal::open(&d, max).unwrap().1),
                durable_patches(&all),
                "after record {}",
                i + 1
            );
        }
        assert!(d.join(ROTATED).exists(), "it compacted");
        let (mut j, current, _) = Journal::open(&d, max).unwrap();
        assert!(current.len() < all.len());
        assert!(seqs(&current).windows(2).all(|w| w[0] < w[1]));
        assert!(current.iter().all(|r| *r == all[r.seq as usize - 1]), "records keep their seq and content");
        all.push(j.append(churn(400)).unwrap().record);
        assert_eq!(all[400].seq, 401);

        let history = read_history(&d).unwrap();
        assert!(history.iter().all(|r| *r == all[r.seq as usize - 1]));
        assert!(seqs(&history).windows(2).all(|w| w[0] < w[1]), "deduplicated, in order");
        let run = |rs: &[Record]| rs.iter().rev().zip((1..=401).rev()).take_while(|(r, s)| r.seq == *s).count();
        let (_, current, _) = Journal::open(&d, max).unwrap();
        assert!(run(&history) > run(&current), "journal.log.1 extends the unbroken recent history");
        assert!(seqs(&current).iter().all(|s| seqs(&history).contains(s)));
    }

    #[test]
    fn referenced_attachments_are_those_named_in_either_file() {
        let d = dir("attachments");
        let (mut j, _, _) = Journal::open(&d, 4096).unwrap();
        let with = |id: &str, durable: bool, sha: &str| Record {
            attachments: vec![("Swap.class".into(), sha.into())],
            ..record(id, Event::Applied, durable)
        };
        j.append(with("kept", true, "sha-durable")).unwrap();
        j.append(with("gone", false, "sha-gone")).unwrap();
        assert_eq!(referenced_attachments(&d).unwrap(), BTreeSet::from(["sha-durable".into(), "sha-gone".into()]));
        // Applied again, differently: nothing can bring back the first one.
        j.append(record("gone", Event::Applied, false)).unwrap();
        for _ in 0..100 {
            j.append(record("filler", Event::Refused, false)).unwrap();
        }
        j.append(with("recent", false, "sha-recent")).unwrap();
        assert_eq!(referenced_attachments(&d).unwrap(), BTreeSet::from(["sha-durable".into(), "sha-recent".into()]));
    }

    #[test]
    fn pages_of_history() {
        let rs: Vec<Record> = [2, 3, 5, 8, 13].map(|seq| Record { seq, ..record("a", Event::Applied, false) }).into();
        let page_seqs = |after, limit| {
            let (p, next) = page(&rs, after, limit);
            (seqs(p), next)
        };
        assert_eq!(page_seqs(0, 2), (vec![2, 3], Some(3)));
        assert_eq!(page_seqs(3, 2), (vec![5, 8], Some(8)));
        assert_eq!(page_seqs(8, 2), (vec![13], None));
        assert_eq!(page_seqs(4, 1), (vec![5], Some(5)), "after a seq not in the list");
        assert_eq!(page_seqs(0, 5), (vec![2, 3, 5, 8, 13], None), "an exact fit leaves nothing to continue");
        assert_eq!(page_seqs(13, 2), (vec![], None));
        assert_eq!(page_seqs(99, 2), (vec![], None));
        assert_eq!(page_seqs(3, 0), (vec![], Some(3)), "an empty page continues where it was");
        assert_eq!(page(&[], 0, 10), (&[][..], None));
    }

    #[test]
    fn durable_patches_are_those_applied_and_not_rolled_back() {
        let cart_npe = RepairedFault {
            exception: "java.lang.NullPointerException".into(),
            callers: vec!["com.shop.Cart.total".into()],
        };
        let mut rs = vec![
            record("a", Event::Applied, true),
            record("b", Event::Applied, false),
            record("c", Event::Applied, true),
            record("a", Event::RolledBack, true),
            record("d", Event::Applied, true),
            record("e", Event::Applied, false),
            Record { fault: Some(cart_npe.clone()), ..record("e", Event::Validated, true) },
            record("f", Event::Applied, false),
            record("f", Event::Validated, false),
        ];
        for (i, r) in rs.iter_mut().enumerate() {
            r.seq = i as u64 + 1;
        }
        let ids: Vec<String> = durable_patches(&rs).into_iter().map(|r| r.patch_id).collect();
        assert_eq!(ids, ["c", "d", "e"], "e was kept by its rule");
        assert_eq!(durable_patches(&rs)[2].spec, "id: e", "a kept patch replays the spec it was applied with");
        assert_eq!(durable_patches(&rs)[2].fault, Some(cart_npe), "and the fault its verdict named");
    }

    proptest! {
        #[test]
        fn compaction_keeps_the_durable_patches_now_and_after(
            events in prop::collection::vec((0..4u8, 0..4u8, any::<bool>(), 1..50u64), 0..80),
            split in 0..80usize,
            budget in 0..500u64,
        ) {
            let records: Vec<Record> = events.iter().enumerate().map(|(i, &(id, event, durable, _))| {
                let event = [Event::Applied, Event::Validated, Event::RolledBack, Event::Refused][event as usize];
                Record { seq: i as u64 + 1, ..record(&format!("p{id}"), event, durable) }
            }).collect();
            // Compacted at `split`, then the rest appended.
            let (before, after) = records.split_at(split.min(records.len()));
            let sizes: Vec<u64> = events.iter().map(|e| e.3).collect();
            let keep = compaction_keep(before, &sizes, budget);
            let kept: Vec<Record> = keep.iter().map(|&i| before[i].clone()).collect();
            prop_assert_eq!(durable_patches(&kept), durable_patches(before));
            let continued: Vec<Record> = kept.iter().chain(after).cloned().collect();
            prop_assert_eq!(durable_patches(&continued), durable_patches(&records));
            prop_assert!(keep.windows(2).all(|w| w[0] < w[1]));
            prop_assert_eq!(keep.last().copied(), before.len().checked_sub(1), "the newest is kept");
        }
    }
}
