//! The agent's journal: every patch applied, validated, refused or rolled back goes to the journal
//! under the state dir (`state=/path`), fsync'd before the operation is reported done. The
//! journal also tells, at start-up, which durable patches to put back.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use repair_model::journal::{sha256_hex, Event, Journal as JournalFile, Record};

use crate::events::{About, EventLog, Kind};
use crate::patches::AppliedPatch;

pub struct Journal {
    dir: PathBuf,
    /// `None` when the journal could not be opened: the agent works on, without memory.
    journal: Mutex<Option<(JournalFile, Vec<Record>)>>,
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

impl Journal {
    /// Opens the journal in `dir`; a torn tail (a crash mid-write) is cut off with a warning.
    pub fn open(dir: PathBuf, events: &EventLog) -> Journal {
        let journal = match JournalFile::open(&dir, repair_model::journal::DEFAULT_MAX_BYTES) {
            Ok((journal, records, recovery)) => {
                if recovery.torn_bytes > 0 {
                    events.emit(
                        Kind::Journal,
                        About::default(),
                        format!(
                            "journal {} was torn by a crash: read up to its last whole record ({} records), \
                             {} bytes after it dropped",
                            journal.path().display(),
                            recovery.records,
                            recovery.torn_bytes
                        ),
                    );
                    crate::log_warn!(
                        "journal {}: {} torn bytes after record {} dropped",
                        journal.path().display(),
                        recovery.torn_bytes,
                        recovery.records
                    );
                }
                Some((journal, records))
            }
            Err(e) => {
                crate::log_error!("no journal: {e}; patches will not be remembered across restarts");
                None
            }
        };
        Journal { dir, journal: Mutex::new(journal) }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Appends and syncs one record.
    pub fn write(&self, record: Record) {
        let mut guard = self.journal.lock().unwrap_or_else(|e| e.into_inner());
        let Some((journal, records)) = guard.as_mut() else { return };
        match journal.append(record) {
            Ok(appended) => records.push(appended.record),
            Err(e) => crate::log_error!("journal write failed: {e}"),
        }
    }

    /// Every record, oldest first: this run's and the runs' before.
    pub fn history(&self) -> Vec<Record> {
        self.journal.lock().unwrap_or_else(|e| e.into_inner()).as_ref().map(|(_, r)| r.clone()).unwrap_or_default()
    }

    /// The durable patches in effect, to put back at start-up.
    pub fn durable(&self) -> Vec<Record> {
        repair_model::journal::durable_patches(&self.history())
    }

    pub fn applied(&self, p: &AppliedPatch, reason: &str) {
        let mut r = record(Event::Applied, p, p.spec.durable, reason, true);
        for (name, bytes) in &p.attachments {
            let sha = sha256_hex(bytes);
            let path = self.dir.join("attachments").join(&sha);
            let saved = repair_model::journal::create_private_dir(&self.dir.join("attachments")).and_then(|()| {
                use std::io::Write;
                use std::os::unix::fs::OpenOptionsExt;
                let mut f =
                    std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&path)?;
                f.write_all(bytes)
            });
            if let Err(e) = saved {
                crate::log_error!("cannot keep {name} for patch {} at {}: {e}", p.spec.id, path.display());
            }
            r.attachments.push((name.clone(), sha));
        }
        self.write(r);
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

    pub fn refused(&self, spec_yaml: &str, id: &str, who: &str, class: &str, reason: &str) {
        self.write(Record {
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
        });
    }

    pub fn validated(&self, p: &AppliedPatch, durable: bool, reason: &str) {
        self.write(record(Event::Validated, p, durable, reason, false));
    }

    pub fn rolled_back(&self, p: &AppliedPatch, who: &str, reason: &str) {
        let mut r = record(Event::RolledBack, p, false, reason, false);
        r.who = who.to_string();
        r.hashes = p.hashes_rollback.iter().cloned().collect();
        self.write(r);
    }
}

fn record(event: Event, p: &AppliedPatch, durable: bool, reason: &str, with_spec: bool) -> Record {
    Record {
        seq: 0,
        at_ms: 0,
        event,
        patch_id: p.spec.id.clone(),
        who: p.who.clone(),
        classes: vec![p.spec.class.clone()],
        spec: if with_spec { p.spec.source.clone() } else { String::new() },
        durable,
        hashes: if event == Event::Applied { vec![p.hashes.clone()] } else { Vec::new() },
        reason: reason.to_string(),
        attachments: Vec::new(),
        instance: String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::default_state_dir;

    #[test]
    fn the_default_state_dir_is_per_application() {
        let a = default_state_dir(Some("repair.demo.ShopService 8080"));
        let b = default_state_dir(Some("/opt/app/billing.jar --port 1"));
        assert!(a.ends_with("repair/repair.demo.ShopService"), "{}", a.display());
        assert!(b.ends_with("repair/billing.jar"), "{}", b.display());
        assert!(default_state_dir(None).ends_with("repair/default"));
    }
}
