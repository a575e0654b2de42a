//! The agent's journal: every patch applied, validated, refused or rolled back goes to the journal
//! under the state dir (`state=/path`), fsync'd before the operation is reported done. The
//! journal also tells, at start-up, which durable patches to put back.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use repair_model::journal::{sha256_hex, Event, Journal as JournalFile, Record, RepairedFault};

use crate::events::{About, EventLog, Kind};
use crate::patches::AppliedPatch;

pub struct Journal {
    dir: PathBuf,
    /// Who writes: this JVM, one of the service's replicas that may share the state dir.
    instance: String,
    /// `None` when the journal could not be opened: the agent works on, without memory, and says so.
    journal: Mutex<Option<Open>>,
    /// Why the journal is not to be trusted right now (it could not be opened, the last write
    /// failed); `None` when healthy. Shown by `status`.
    trouble: Mutex<Option<String>>,
    /// What was recovered at open (quarantined bytes), for `status`.
    recovered: String,
}

/// The state dir when none is given: per user and per application (main class or jar), so that
/// two services on one host do not share durable patches; under `$XDG_STATE_HOME` or
/// `~/.local/state`, which survive a reboot.
pub fn default_state_dir(java_command: Option<&str>) -> PathBuf {
    let app = java_command
        .and_then(|c| c.split_whitespace().next())
        .map(|c| Path::new(c).file_name().map_or(c.to_string(), |f| f.to_string_lossy().into_owned()))
        .filter(|c| !c.is_empty())
        .unwrap_or_else(|| "default".to_string());
    let app: String =
        app.chars().map(|c| if c.is_ascii_alphanumeric() || "._-".contains(c) { c } else { '_' }).collect();
    let base = std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("repair").join(app)
}

/// The open journal and its records in memory, which mirror the files: when `journal.log`
/// shrinks (compacted, by this JVM or a replica) they are read again, so memory stays bounded
/// by the journal's size limit.
struct Open {
    file: JournalFile,
    records: Vec<Record>,
    len: u64,
}

impl Open {
    /// Reads the records again if the journal was compacted since the last look.
    fn follow_compaction(&mut self, dir: &Path) {
        let len = std::fs::metadata(self.file.path()).map_or(0, |m| m.len());
        if len < self.len {
            if let Ok(records) = repair_model::journal::read_history(dir) {
                self.records = records;
            }
        }
        self.len = len;
    }
}

/// This JVM's identity in a shared journal: its pid and the agent's start time, unique on a host.
pub fn instance_id() -> String {
    format!("{}@{}", std::process::id(), repair_model::journal::now_ms())
}

impl Journal {
    /// Opens the journal in `dir`. Bytes that do not read as records (a crash mid-write, a
    /// corrupt byte) are moved to a side file and every valid record around them kept; said in
    /// an event, on stderr and in `status`.
    pub fn open(dir: PathBuf, max_bytes: u64, instance: String, events: &EventLog) -> Journal {
        let mut recovered = String::new();
        let (journal, trouble) = match JournalFile::open(&dir, max_bytes) {
            Ok((journal, _, recovery)) => {
                for q in &recovery.quarantined {
                    let text = format!(
                        "journal {}: {} unreadable bytes at offset {} moved to {}; every valid record around them kept \
                         ({} records)",
                        journal.path().display(),
                        q.len,
                        q.offset,
                        q.file.display(),
                        recovery.records
                    );
                    events.emit(Kind::Journal, About::default(), text.clone());
                    crate::log_warn!("{text}");
                    if !recovered.is_empty() {
                        recovered.push_str("; ");
                    }
                    recovered.push_str(&format!("{} bytes quarantined to {}", q.len, q.file.display()));
                }
                // The rotated part too, so history survives one compaction.
                let records = match repair_model::journal::read_history(&dir) {
                    Ok(r) => r,
                    Err(e) => {
                        crate::log_warn!("journal history: {e}");
                        Vec::new()
                    }
                };
                let len = std::fs::metadata(journal.path()).map_or(0, |m| m.len());
                (Some(Open { file: journal, records, len }), None)
            }
            Err(e) => {
                crate::log_error!("no journal: {e}; patches will not be remembered across restarts");
                (None, Some(format!("not open: {e}")))
            }
        };
        let j = Journal { dir, instance, journal: Mutex::new(journal), trouble: Mutex::new(trouble), recovered };
        j.collect_attachments();
        j
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// `ok`, or what is wrong with the journal (and what was recovered at open).
    pub fn health(&self) -> String {
        let trouble = self.trouble.lock().unwrap_or_else(|e| e.into_inner()).clone();
        match (trouble, self.recovered.is_empty()) {
            (Some(t), true) => t,
            (Some(t), false) => format!("{t}; at open: {}", self.recovered),
            (None, true) => "ok".to_string(),
            (None, false) => format!("ok; at open: {}", self.recovered),
        }
    }

    /// Appends and syncs one record. An error means the record is not on disk (no partial record
    /// is left either): the caller must not report the operation as done.
    pub fn write(&self, events: &EventLog, mut record: Record) -> Result<(), String> {
        record.instance = self.instance.clone();
        let mut guard = self.journal.lock().unwrap_or_else(|e| e.into_inner());
        let Some(open) = guard.as_mut() else {
            return Err(self.trouble.lock().unwrap_or_else(|e| e.into_inner()).clone().unwrap_or_default());
        };
        let result = open.file.append(record);
        if let Ok(appended) = &result {
            open.records.extend(appended.news.records.iter().cloned());
        }
        let mut trouble = self.trouble.lock().unwrap_or_else(|e| e.into_inner());
        match result {
            Ok(appended) => {
                open.records.push(appended.record);
                open.follow_compaction(&self.dir);
                if let Some(e) = appended.compaction_error {
                    crate::log_warn!("journal compaction failed (retried at the next record): {e}");
                }
                if let Some(was) = trouble.take() {
                    events.emit(Kind::Journal, About::default(), format!("journal writable again (was: {was})"));
                }
                Ok(())
            }
            Err(e) => {
                let text = format!("write failed: {e}");
                if trouble.as_deref() != Some(text.as_str()) {
                    events.emit(
                        Kind::Journal,
                        About::default(),
                        format!(
                            "journal {text}; operations that need \
                        a record are refused until it can be written"
                        ),
                    );
                    crate::log_error!("journal {text}");
                }
                *trouble = Some(text);
                Err(format!("the journal in {} cannot be written: {e}", self.dir.display()))
            }
        }
    }

    /// Every record, oldest first: this run's, the runs' before and the other replicas' (read
    /// from the shared file when they last appended).
    pub fn history(&self) -> Vec<Record> {
        self.with_records(<[Record]>::to_vec).unwrap_or_default()
    }

    /// One page of [`Journal::history`]: records after `after_seq`, at most `limit`, and the seq
    /// to continue after when more remain. Copies only the page.
    pub fn page(&self, after_seq: u64, limit: usize) -> (Vec<Record>, Option<u64>) {
        self.with_records(|all| {
            let (page, next) = repair_model::journal::page(all, after_seq, limit);
            (page.to_vec(), next)
        })
        .unwrap_or_default()
    }

    /// `f` on the records, brought up to date with the other replicas' and with compaction.
    fn with_records<R>(&self, f: impl FnOnce(&[Record]) -> R) -> Option<R> {
        let mut guard = self.journal.lock().unwrap_or_else(|e| e.into_inner());
        let open = guard.as_mut()?;
        if let Ok(news) = open.file.refresh() {
            open.records.extend(news.records);
        }
        open.follow_compaction(&self.dir);
        Some(f(&open.records))
    }

    /// The durable patches in effect, to put back at start-up: the service's, whichever replica
    /// applied them.
    pub fn durable(&self) -> Vec<Record> {
        repair_model::journal::durable_patches(&self.history())
    }

    /// Removes kept class files no record names any more (compaction dropped the records);
    /// recent ones are spared, as a record naming them may be on its way.
    fn collect_attachments(&self) {
        let Ok(referenced) = repair_model::journal::referenced_attachments(&self.dir) else { return };
        let Ok(entries) = std::fs::read_dir(self.dir.join("attachments")) else { return };
        let old = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let stale = e.metadata().and_then(|m| m.modified()).is_ok_and(|t| t < old);
            if stale && !referenced.contains(&name) {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }

    /// Journals a patch applied: `patches` are all of one id (one, or a deployment's classes),
    /// with their attached files kept beside the journal.
    pub fn applied(&self, events: &EventLog, patches: &[AppliedPatch], reason: &str) -> Result<(), String> {
        let Some(p) = patches.first() else { return Ok(()) };
        let mut r = record(Event::Applied, patches, p.spec.durable, reason, true);
        for (name, bytes) in patches.iter().flat_map(|p| &p.attachments) {
            let sha = sha256_hex(bytes);
            let path = self.dir.join("attachments").join(&sha);
            // Named by their hash: one already kept whole (a build deployed again) is not written
            // again, only marked recent so that collecting old attachments spares it.
            let kept = std::fs::read(&path).is_ok_and(|b| b == *bytes);
            let saved = if kept {
                std::fs::File::options()
                    .append(true)
                    .open(&path)
                    .and_then(|f| f.set_modified(std::time::SystemTime::now()))
            } else {
                repair_model::journal::create_private_dir(&self.dir.join("attachments")).and_then(|()| {
                    use std::io::Write;
                    use std::os::unix::fs::OpenOptionsExt;
                    let mut f =
                        std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&path)?;
                    f.write_all(bytes)?;
                    f.sync_all()
                })
            };
            if let Err(e) = saved {
                return Err(format!("cannot keep {name} for patch {} at {}: {e}", p.spec.id, path.display()));
            }
            r.attachments.push((name.clone(), sha));
        }
        self.write(events, r)
    }

    /// The files a journaled patch names, read back from the state dir.
    pub fn attachments(&self, r: &Record) -> Result<HashMap<String, Vec<u8>>, String> {
        r.attachments
            .iter()
            .map(|(name, sha)| {
                let path = self.dir.join("attachments").join(sha);
                match std::fs::read(&path) {
                    Ok(b) if sha256_hex(&b) == *sha => Ok((name.clone(), b)),
                    Ok(_) => Err(format!("{} ({name}) does not match its hash", path.display())),
                    Err(e) => Err(format!("{} ({name}): {e}", path.display())),
                }
            })
            .collect()
    }

    pub fn refused(&self, events: &EventLog, refusal: Refusal<'_>) -> Result<(), String> {
        let Refusal { spec_yaml, id, who, class, reason } = refusal;
        self.write(
            events,
            Record {
                seq: 0,
                at_ms: 0,
                event: Event::Refused,
                patch_id: id.to_string(),
                who: who.to_string(),
                classes: vec![class.to_string()],
                spec: spec_yaml.to_string(),
                durable: false,
                hashes: Vec::new(),
                reason: reason.to_string(),
                attachments: Vec::new(),
                instance: String::new(),
                fault: None,
            },
        )
    }

    /// Journals a verdict that keeps `p`; `fault` is the one a rule's durable repair was made
    /// for, by which a restart validates it again.
    pub fn validated(
        &self,
        events: &EventLog,
        p: &AppliedPatch,
        durable: bool,
        fault: Option<RepairedFault>,
        reason: &str,
    ) -> Result<(), String> {
        let r = record(Event::Validated, std::slice::from_ref(p), durable, reason, false);
        self.write(events, Record { fault, ..r })
    }

    /// Journals a patch rolled back: `patches` are all of one id.
    pub fn rolled_back(
        &self,
        events: &EventLog,
        patches: &[AppliedPatch],
        who: &str,
        reason: &str,
    ) -> Result<(), String> {
        let mut r = record(Event::RolledBack, patches, false, reason, false);
        r.who = who.to_string();
        r.hashes = patches.iter().filter_map(|p| p.hashes_rollback.clone()).collect();
        self.write(events, r)
    }
}

/// An apply that was refused, as journaled.
pub struct Refusal<'a> {
    pub spec_yaml: &'a str,
    pub id: &'a str,
    pub who: &'a str,
    pub class: &'a str,
    pub reason: &'a str,
}

/// The record of `patches`, all of one id (the first one's spec stands for them all: a
/// deployment's members share its manifest).
fn record(event: Event, patches: &[AppliedPatch], durable: bool, reason: &str, with_spec: bool) -> Record {
    let p = &patches[0];
    Record {
        seq: 0,
        at_ms: 0,
        event,
        patch_id: p.spec.id.clone(),
        who: p.who.clone(),
        classes: patches.iter().map(|p| p.spec.class.clone()).collect(),
        spec: if with_spec { p.spec.source.clone() } else { String::new() },
        durable,
        hashes: if event == Event::Applied { patches.iter().map(|p| p.hashes.clone()).collect() } else { Vec::new() },
        reason: reason.to_string(),
        attachments: Vec::new(),
        instance: String::new(),
        fault: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_state_dir_is_per_application() {
        let a = default_state_dir(Some("repair.demo.ShopService 8080"));
        let b = default_state_dir(Some("/opt/app/billing.jar --port 1"));
        assert!(a.ends_with("repair/repair.demo.ShopService"), "{}", a.display());
        assert!(b.ends_with("repair/billing.jar"), "{}", b.display());
        assert!(default_state_dir(None).ends_with("repair/default"));
    }

    #[test]
    fn the_history_in_memory_follows_compaction() {
        let dir = std::env::temp_dir().join(format!("repair-agent-journal-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let events = EventLog::default();
        let journal = Journal::open(dir.clone(), 16 << 10, "test@1".into(), &events);
        for i in 0..400 {
            let r = Record {
                seq: 0,
                at_ms: 0,
                event: if i % 2 == 0 { Event::Applied } else { Event::RolledBack },
                patch_id: format!("p{}", i / 2),
                who: "operator:test".into(),
                classes: vec!["a.B".into()],
                spec: "x".repeat(100),
                durable: false,
                hashes: Vec::new(),
                reason: String::new(),
                attachments: Vec::new(),
                instance: String::new(),
                fault: None,
            };
            journal.write(&events, r).unwrap();
        }
        let history = journal.history();
        assert_eq!(history, repair_model::journal::read_history(&dir).unwrap(), "memory mirrors the files");
        assert!(history.len() < 200, "compacted: {} records kept of 400", history.len());
        assert_eq!(history.last().unwrap().seq, 400);
        assert!(history.iter().all(|r| r.instance == "test@1"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
