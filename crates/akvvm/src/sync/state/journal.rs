//! The state file's journal, `<state file>.journal`: the entries changed since the state file was
//! last written whole, one JSON line each, so that a change (a pushed rotation, a retried
//! certificate) costs the bytes of its own entry instead of a rewrite of every entry.
//!
//! ```text
//! {"journal":1234567890}                                   header: the id it continues
//! {"url":"https://v.vault.azure.net/secrets/a","entry":{...}}   a changed entry, whole
//! {"url":"https://v.vault.azure.net/secrets/b","entry":null}    an entry removed
//! ```
//!
//! Crash safety. The state file names the journal that continues it (`"journal": id`); a journal
//! whose header names another id is ignored (it belongs to an older state file, and the state file
//! already holds what it says). A compaction writes the whole state with a fresh id (atomically),
//! so the old journal is dropped in the same rename; the first append after it writes a new
//! journal atomically (header and records); later appends go to its end and are `fdatasync`ed.
//! A torn last line (a crash during an append) is ignored on load: the entry then reads as it was
//! before that save, as when a whole-file save is lost, and the store's stable links are the truth
//! either way. An akvvm that knows no journal reads the state file alone, as of its last
//! compaction.
//!
//! [`StateFile`](super::StateFile) owns when to append and when to compact; this module
//! owns the format and the file operations.

use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use akvvm_cert::store::{StoreError, write_atomic};

use super::entry::StateEntry;

/// The journal's path beside the state file: `<state file>.journal`.
pub fn journal_path(state_path: &Path) -> PathBuf {
    let mut path = state_path.as_os_str().to_owned();
    path.push(".journal");
    PathBuf::from(path)
}

#[derive(Serialize, Deserialize)]
struct Header {
    journal: u64,
}

/// One line of the journal: an URL and its entry (`None`: removed).
#[derive(Deserialize)]
pub(super) struct Record {
    pub(super) url: String,
    pub(super) entry: Option<StateEntry>,
}

#[derive(Serialize)]
struct RecordRef<'a> {
    url: &'a str,
    entry: Option<&'a StateEntry>,
}

/// Appends one record line for `url` to `out`.
pub(super) fn render_record(
    out: &mut Vec<u8>,
    url: &str,
    entry: Option<&StateEntry>,
) -> serde_json::Result<()> {
    serde_json::to_writer(&mut *out, &RecordRef { url, entry })?;
    out.push(b'\n');
    Ok(())
}

/// The records of the journal at `path` if it continues the state file whose id is `id`, in
/// order; `None` when there is no journal or it belongs to another state file. A line that does
/// not parse ends the journal (a torn append): what follows it is ignored with a warning.
pub(super) fn read(path: &Path, id: u64) -> Result<Option<Vec<Record>>, io::Error> {
    let text = match read_regular_file(path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut lines = text.split_inclusive('\n');
    let Some(header) = lines
        .next()
        .and_then(|l| serde_json::from_str::<Header>(l).ok())
    else {
        tracing::warn!(path = %path.display(), "ignoring a state journal without a header");
        return Ok(None);
    };
    if header.journal != id {
        return Ok(None);
    }
    let mut records = Vec::new();
    for (index, line) in lines.enumerate() {
        match serde_json::from_str::<Record>(line) {
            Ok(record) if line.ends_with('\n') => records.push(record),
            _ => {
                tracing::warn!(
                    path = %path.display(),
                    line = index + 2,
                    "the state journal ends in an incomplete record (an interrupted save); \
                     the entries before it are used"
                );
                break;
            }
        }
    }
    Ok(Some(records))
}

/// Records ready to go to the journal (from [`StateFile::journal_append`](super::StateFile::journal_append)).
#[derive(Debug)]
pub struct JournalAppend {
    pub(super) path: PathBuf,
    pub(super) id: u64,
    /// Whether the journal must be started (written whole with its header) rather than appended to.
    pub(super) start: bool,
    pub(super) records: Vec<u8>,
}

impl JournalAppend {
    /// How many bytes the records take.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Writes the records: a new journal atomically (mode `mode`), or an append `fdatasync`ed.
    pub fn write(&self, mode: u32) -> Result<(), StoreError> {
        if self.start {
            let mut text = serde_json::to_vec(&Header { journal: self.id })
                .map_err(|e| self.error("serialize", io::Error::other(e)))?;
            text.push(b'\n');
            text.extend_from_slice(&self.records);
            return write_atomic(&self.path, &text, mode, None);
        }
        use std::os::unix::fs::OpenOptionsExt as _;
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .custom_flags(
                (rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::NONBLOCK).bits() as i32,
            )
            .open(&self.path)
            .map_err(|e| self.error("open the state journal", e))?;
        if !file
            .metadata()
            .map_err(|e| self.error("open the state journal", e))?
            .is_file()
        {
            return Err(self.error(
                "open the state journal",
                io::Error::new(io::ErrorKind::InvalidInput, "not a regular file"),
            ));
        }
        file.write_all(&self.records)
            .map_err(|e| self.error("append to the state journal", e))?;
        file.sync_data()
            .map_err(|e| self.error("fsync the state journal", e))
    }

    fn error(&self, step: &'static str, source: io::Error) -> StoreError {
        StoreError::Write {
            path: self.path.clone(),
            step,
            source,
        }
    }
}

/// The text of the regular file at `path`, opened without following a final symlink and
/// without blocking: a FIFO or a device planted in the state file's place is refused at once
/// instead of hanging the agent.
pub(super) fn read_regular_file(path: &Path) -> io::Result<String> {
    use std::io::Read as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags((rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::NONBLOCK).bits() as i32)
        .open(path)?;
    if !file.metadata()?.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file (remove it; akvvm writes the state file itself)",
        ));
    }
    let mut text = String::new();
    file.read_to_string(&mut text)?;
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync::state::{STATE_FILE_MODE, StateFile};
    use time::macros::datetime;

    fn checked(state: &mut StateFile, url: &str, minute: u8) {
        state
            .entry_mut(url)
            .record_check(datetime!(2026-11-22 10:00 UTC) + time::Duration::minutes(minute.into()));
    }

    /// A state of `n` entries, compacted to disk.
    fn compacted(dir: &Path, n: usize) -> StateFile {
        let path = dir.join("state.json");
        let mut state = StateFile::load(&path).unwrap();
        for i in 0..n {
            checked(&mut state, &format!("u{i}"), 0);
        }
        let text = state.compact_json().unwrap();
        StateFile::write_json(&path, &text).unwrap();
        state
    }

    fn append(state: &mut StateFile, urls: &[&str]) -> usize {
        let append = state.journal_append(urls.iter().copied()).unwrap().unwrap();
        append.write(STATE_FILE_MODE).unwrap();
        append.len()
    }

    #[test]
    fn appended_changes_are_loaded_and_cost_their_own_bytes_only() {
        let dir = tempfile::tempdir().unwrap();
        let mut sizes = Vec::new();
        for n in [10, 2_000] {
            let sub = dir.path().join(n.to_string());
            let mut state = compacted(&sub, n);
            let before = std::fs::metadata(sub.join("state.json")).unwrap();
            checked(&mut state, "u1", 5);
            state.remove("u2");
            let first = append(&mut state, &["u1", "u2"]);
            checked(&mut state, "u3", 6);
            let second = append(&mut state, &["u3"]);
            sizes.push((first, second));
            assert_eq!(state.journal_records(), Some(3));

            let loaded = StateFile::load(&sub.join("state.json")).unwrap();
            assert_eq!(loaded, state, "the state file and its journal, at N = {n}");
            let after = std::fs::metadata(sub.join("state.json")).unwrap();
            use std::os::unix::fs::MetadataExt as _;
            assert_eq!(
                (before.ino(), before.len()),
                (after.ino(), after.len()),
                "the state file itself is not rewritten"
            );
        }
        assert_eq!(sizes[0], sizes[1], "bytes per save do not grow with N");
    }

    #[test]
    fn a_torn_last_record_is_ignored_and_a_stale_journal_does_not_apply() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        let mut state = compacted(dir.path(), 3);
        checked(&mut state, "u0", 5);
        append(&mut state, &["u0"]);
        let expected = state.clone();
        checked(&mut state, "u1", 6);
        let torn = state.journal_append(["u1"]).unwrap().unwrap();
        let mut text = std::fs::read(journal_path(&path)).unwrap();
        text.extend_from_slice(&torn.records[..torn.records.len() / 2]);
        std::fs::write(journal_path(&path), &text).unwrap();
        let loaded = StateFile::load(&path).unwrap();
        assert_eq!(
            loaded.entries().collect::<Vec<_>>(),
            expected.entries().collect::<Vec<_>>()
        );

        // A compaction (new id) makes the old journal irrelevant even if it stays on disk.
        let mut state = loaded;
        checked(&mut state, "u2", 7);
        let whole = state.compact_json().unwrap();
        StateFile::write_json(&path, &whole).unwrap();
        assert!(journal_path(&path).exists());
        assert_eq!(StateFile::load(&path).unwrap(), state);
        // The next append starts a new journal.
        checked(&mut state, "u0", 8);
        append(&mut state, &["u0"]);
        assert_eq!(StateFile::load(&path).unwrap(), state);
    }

    #[test]
    fn without_a_journal_id_the_changes_go_to_a_whole_save() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        let mut state = StateFile::load(&path).unwrap();
        checked(&mut state, "u0", 0);
        assert!(state.journal_append(["u0"]).unwrap().is_none());
        state.save().unwrap();
        assert_eq!(state.journal_records(), None);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains("journal"), "{text}");
    }
}
