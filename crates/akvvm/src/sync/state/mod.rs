//! The state file: what akvvm installed for each observed URL, so that a restart neither rewrites
//! files nor re-runs reload hooks.
//!
//! It lives beside the store (the caller chooses the path, e.g. `<state dir>/state.json`), is
//! written with [`write_atomic`], and looks like:
//!
//! ```json
//! {
//!   "version": 1,
//!   "certificates": {
//!     "https://myvault.vault.azure.net/secrets/mycert": {
//!       "installedVersion": "0123abcd...",
//!       "thumbprint": "9F1C...",
//!       "notAfter": "2027-11-22T10:00:00Z",
//!       "file": "/var/lib/waagent/Microsoft.Azure.KeyVault.Store/myvault.mycert.0123abcd...",
//!       "link": "/var/lib/waagent/Microsoft.Azure.KeyVault.Store/myvault.mycert",
//!       "installedAt": "2026-11-22T10:00:00Z",
//!       "lastCheck": "2026-11-22T11:00:00Z",
//!       "lastError": { "code": "vault.forbidden", "message": "...", "at": "2026-11-22T11:00:00Z" },
//!       "versionUpdated": "2026-11-22T09:59:00Z",
//!       "verifiedAt": "2026-11-22T10:00:00Z"
//!     }
//!   }
//! }
//! ```
//!
//! A state file written by [`StateFile::compact_json`] also names its journal (`"journal": id`),
//! which holds the entries changed since ([`journal`]); [`StateFile::load`] applies it.
//!
//! To add a field: add it to [`StateEntry`] as an `Option` with `#[serde(default)]`, so files
//! written by older versions still load; unknown fields are ignored, so older versions still load
//! newer files. Bump [`STATE_FORMAT_VERSION`] only for a change an older akvvm must not misread.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use akvvm_cert::store::{StoreError, write_atomic};

use journal::{JournalAppend, journal_path, render_record};

mod entry;
pub mod journal;

pub use entry::{LastError, StateEntry};
use journal::read_regular_file;

/// The format version this akvvm writes and the newest it reads.
pub const STATE_FORMAT_VERSION: u32 = 1;

/// The state file's mode: root's alone, like the state directory (0700), since it holds the
/// agent's last errors and which versions are installed where; `akvvm status` runs as root.
pub const STATE_FILE_MODE: u32 = 0o600;

#[derive(Debug, Deserialize)]
struct Document {
    version: u32,
    /// The id of the journal that continues this file ([`journal`]).
    #[serde(default)]
    journal: Option<u64>,
    #[serde(default)]
    certificates: BTreeMap<String, StateEntry>,
}

/// [`Document`] to write, borrowing the entries (a save copies nothing but the JSON text).
#[derive(Serialize)]
struct DocumentRef<'a> {
    version: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    journal: Option<u64>,
    certificates: &'a BTreeMap<String, StateEntry>,
}

/// The state file, loaded in memory; [`StateFile::save`] writes it back atomically, and
/// [`StateFile::journal_append`] records a few changed entries in its journal instead
/// ([`journal`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateFile {
    path: PathBuf,
    entries: BTreeMap<String, StateEntry>,
    /// The id of the journal continuing the file on disk; `None` until written with one.
    journal: Option<u64>,
    /// How many records that journal holds.
    journal_records: usize,
}

impl StateFile {
    /// Loads the state file at `path`; a missing file is an empty state. Temp files an
    /// interrupted save left beside it are removed.
    pub fn load(path: &Path) -> Result<StateFile, StoreError> {
        let removed = akvvm_cert::store::atomic::remove_stale_temp_files(path).and_then(|count| {
            Ok(count + akvvm_cert::store::atomic::remove_stale_temp_files(&journal_path(path))?)
        });
        match removed {
            Ok(0) => {}
            Ok(count) => {
                tracing::info!(path = %path.display(), count, "removed temp files of an interrupted save");
            }
            Err(error) => {
                tracing::warn!(%error, "cannot remove the temp files of an interrupted save");
            }
        }
        let text = match read_regular_file(path) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Ok(StateFile::empty(path));
            }
            Err(source) => {
                return Err(StoreError::StateRead {
                    path: path.to_path_buf(),
                    source,
                });
            }
        };
        let document: Document =
            serde_json::from_str(&text).map_err(|e| StoreError::StateCorrupt {
                path: path.to_path_buf(),
                line: e.line(),
                column: e.column(),
                message: e.to_string(),
            })?;
        if document.version > STATE_FORMAT_VERSION {
            return Err(StoreError::StateCorrupt {
                path: path.to_path_buf(),
                line: 1,
                column: 1,
                message: format!(
                    "format version {} was written by a newer akvvm; this one reads up to {}",
                    document.version, STATE_FORMAT_VERSION
                ),
            });
        }
        let mut state = StateFile {
            path: path.to_path_buf(),
            entries: document.certificates,
            journal: document.journal,
            journal_records: 0,
        };
        if let Some(id) = document.journal {
            let journal = journal_path(path);
            let records = journal::read(&journal, id).map_err(|source| StoreError::StateRead {
                path: journal.clone(),
                source,
            })?;
            for record in records.into_iter().flatten() {
                state.journal_records += 1;
                match record.entry {
                    Some(entry) => state.entries.insert(record.url, entry),
                    None => state.entries.remove(&record.url),
                };
            }
        }
        Ok(state)
    }

    /// Loads the state file, never failing: a corrupt file is renamed to `<name>.corrupt` (kept
    /// for a post-mortem) and an empty state is returned with the error, for the caller to report.
    /// The caller then rebuilds entries from the store ([`Store::installed`](akvvm_cert::store::Store::installed)), so nothing
    /// that is installed is written again.
    pub fn load_or_recover(path: &Path) -> (StateFile, Option<StoreError>) {
        match StateFile::load(path) {
            Ok(state) => (state, None),
            Err(error @ StoreError::StateCorrupt { .. }) => {
                let mut aside = path.as_os_str().to_owned();
                aside.push(".corrupt");
                if let Err(e) = std::fs::rename(path, &aside) {
                    tracing::warn!(path = %path.display(), error = %e, "cannot move the corrupt state file aside");
                }
                (StateFile::empty(path), Some(error))
            }
            Err(error) => (StateFile::empty(path), Some(error)),
        }
    }

    /// An empty state that [`StateFile::save`] writes to `path`.
    pub fn empty(path: &Path) -> StateFile {
        StateFile {
            path: path.to_path_buf(),
            entries: BTreeMap::new(),
            journal: None,
            journal_records: 0,
        }
    }

    /// Where this state is saved.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The entry of an observed URL.
    pub fn entry(&self, url: &str) -> Option<&StateEntry> {
        self.entries.get(url)
    }

    /// The entry of an observed URL, created empty if missing.
    pub fn entry_mut(&mut self, url: &str) -> &mut StateEntry {
        self.entries.entry(url.to_owned()).or_default()
    }

    /// Replaces the entry of an observed URL.
    pub fn set(&mut self, url: &str, entry: StateEntry) {
        self.entries.insert(url.to_owned(), entry);
    }

    /// Forgets an URL that is no longer observed.
    pub fn remove(&mut self, url: &str) -> Option<StateEntry> {
        self.entries.remove(url)
    }

    /// Every URL and its entry, sorted by URL.
    pub fn entries(&self) -> impl Iterator<Item = (&str, &StateEntry)> {
        self.entries
            .iter()
            .map(|(url, entry)| (url.as_str(), entry))
    }

    /// Writes the state atomically (mode [`STATE_FILE_MODE`]), creating its directory if needed:
    /// the whole of it, continued by no journal (any journal on disk no longer applies).
    pub fn save(&mut self) -> Result<(), StoreError> {
        self.journal = None;
        self.journal_records = 0;
        let text = self.to_json()?;
        StateFile::write_json(&self.path, &text)
    }

    /// The whole state as [`StateFile::to_json`] renders it, under a new journal id: the content
    /// of a compaction (write it with [`StateFile::write_json`]). Until that write succeeds,
    /// appending to the journal is pointless (a crash would lose the appends); the caller then
    /// compacts again rather than append.
    pub fn compact_json(&mut self) -> Result<Vec<u8>, StoreError> {
        self.journal = Some(rand::random::<u64>() | 1);
        self.journal_records = 0;
        self.to_json()
    }

    /// How many records the journal holds since the last compaction (`None`: the file on disk
    /// has no journal yet, so changes must go to a compaction).
    pub fn journal_records(&self) -> Option<usize> {
        self.journal.map(|_| self.journal_records)
    }

    /// The records of `urls`' current entries (or their removal), for the journal: the cost of
    /// a save of a few changes, instead of every entry. `None` when this state has no journal id
    /// yet (compact first).
    pub fn journal_append<'u>(
        &mut self,
        urls: impl IntoIterator<Item = &'u str>,
    ) -> Result<Option<JournalAppend>, StoreError> {
        let Some(id) = self.journal else {
            return Ok(None);
        };
        let mut records = Vec::new();
        let mut count = 0;
        for url in urls {
            render_record(&mut records, url, self.entries.get(url)).map_err(|e| {
                StoreError::Write {
                    path: journal_path(&self.path),
                    step: "serialize",
                    source: io::Error::other(e),
                }
            })?;
            count += 1;
        }
        let start = self.journal_records == 0;
        self.journal_records += count;
        Ok(Some(JournalAppend {
            path: journal_path(&self.path),
            id,
            start,
            records,
        }))
    }

    /// The file's content: pretty JSON and a final newline.
    pub fn to_json(&self) -> Result<Vec<u8>, StoreError> {
        let document = DocumentRef {
            version: STATE_FORMAT_VERSION,
            journal: self.journal,
            certificates: &self.entries,
        };
        // About 600 bytes an entry: one allocation instead of a doubling series.
        let mut text = Vec::with_capacity(64 + 640 * self.entries.len());
        serde_json::to_writer_pretty(&mut text, &document).map_err(|e| StoreError::Write {
            path: self.path.clone(),
            step: "serialize",
            source: io::Error::other(e),
        })?;
        text.push(b'\n');
        Ok(text)
    }

    /// Writes `text` (from [`StateFile::to_json`]) to `path` as [`StateFile::save`] does: so that
    /// a caller can serialize under its lock and write elsewhere, without copying the state.
    pub fn write_json(path: &Path, text: &[u8]) -> Result<(), StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::Write {
                path: dir.to_path_buf(),
                step: "create the state directory",
                source,
            })?;
        }
        write_atomic(path, text, STATE_FILE_MODE, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use akvvm_cert::store::Installed;
    use std::os::unix::fs::PermissionsExt;
    use time::macros::datetime;

    const URL: &str = "https://myvault.vault.azure.net/secrets/mycert";

    #[test]
    fn a_fifo_in_the_state_files_place_is_refused_without_hanging() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        let made = std::process::Command::new("mkfifo")
            .arg(&path)
            .status()
            .unwrap();
        assert!(made.success(), "mkfifo");
        // Without O_NONBLOCK, opening a FIFO nobody writes to blocks for ever.
        let Err(error) = StateFile::load(&path) else {
            panic!("a FIFO is not a state file");
        };
        assert!(error.to_string().contains("not a regular file"), "{error}");
    }

    fn installed() -> Installed {
        Installed {
            version: "0123abcd".into(),
            file: "/store/myvault.mycert.0123abcd".into(),
            link: "/store/myvault.mycert".into(),
            custom_link: Some("/store/web".into()),
            live_link: None,
            thumbprint: "9F1C0000000000000000000000000000000000AB".into(),
            not_after: datetime!(2027-11-22 10:00 UTC),
            pruned: Vec::new(),
            key_file: None,
            key_link: None,
            luma: None,
        }
    }

    #[test]
    fn a_missing_file_is_an_empty_state() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateFile::load(&dir.path().join("state.json")).unwrap();
        assert_eq!(state.entries().count(), 0);
    }

    #[test]
    fn saves_and_loads_every_field() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/state.json");
        let mut state = StateFile::load(&path).unwrap();
        state
            .entry_mut(URL)
            .record_install(&installed(), datetime!(2026-11-22 10:00 UTC));
        state.entry_mut(URL).record_error(
            "vault.forbidden",
            "403 from Key Vault",
            datetime!(2026-11-22 11:00 UTC),
        );
        state.save().unwrap();

        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            text,
            r#"{
  "version": 1,
  "certificates": {
    "https://myvault.vault.azure.net/secrets/mycert": {
      "installedVersion": "0123abcd",
      "thumbprint": "9F1C0000000000000000000000000000000000AB",
      "notAfter": "2027-11-22T10:00:00Z",
      "file": "/store/myvault.mycert.0123abcd",
      "link": "/store/myvault.mycert",
      "customLink": "/store/web",
      "installedAt": "2026-11-22T10:00:00Z",
      "lastCheck": "2026-11-22T11:00:00Z",
      "lastError": {
        "code": "vault.forbidden",
        "message": "403 from Key Vault",
        "at": "2026-11-22T11:00:00Z"
      }
    }
  }
}
"#
        );
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, STATE_FILE_MODE);
        let loaded = StateFile::load(&path).unwrap();
        assert_eq!(loaded, state);

        let mut loaded = loaded;
        loaded
            .entry_mut(URL)
            .record_check(datetime!(2026-11-22 12:00 UTC));
        let entry = loaded.entry(URL).unwrap();
        assert_eq!(entry.last_error, None);
        assert_eq!(entry.installed_version.as_deref(), Some("0123abcd"));
        assert!(loaded.remove(URL).is_some());
        assert_eq!(loaded.entry(URL), None);
    }

    #[test]
    fn tolerates_unknown_and_missing_fields() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        std::fs::write(
            &path,
            r#"{"version":1,"certificates":{"u":{"thumbprint":"AB","futureField":3}},"other":1}"#,
        )
        .unwrap();
        let state = StateFile::load(&path).unwrap();
        let entry = state.entry("u").unwrap();
        assert_eq!(entry.thumbprint.as_deref(), Some("AB"));
        assert_eq!(entry.installed_version, None);
    }

    #[test]
    fn a_corrupt_file_is_a_clear_error_and_is_recovered_from() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        std::fs::write(&path, "{\"version\": 1,\n \"certificates\": {\"u\": 3}").unwrap();
        let error = StateFile::load(&path).unwrap_err();
        assert_eq!(error.code(), "store.state_corrupt");
        let message = error.to_string();
        assert!(message.contains("state.json"), "{message}");
        assert!(message.contains("line 2"), "{message}");

        let (mut state, error) = StateFile::load_or_recover(&path);
        assert_eq!(error.unwrap().code(), "store.state_corrupt");
        assert_eq!(state.entries().count(), 0);
        assert!(!path.exists());
        assert!(dir.path().join("state.json.corrupt").exists());
        state.save().unwrap();
        assert_eq!(StateFile::load(&path).unwrap().entries().count(), 0);
    }

    #[test]
    fn loading_removes_the_debris_of_an_interrupted_save() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        std::fs::write(&path, r#"{"version":1,"certificates":{}}"#).unwrap();
        let debris = dir.path().join(".akvvm-tmp-state.json.00ff00ff00ff00ff");
        std::fs::write(&debris, "{\"vers").unwrap();
        StateFile::load(&path).unwrap();
        assert!(!debris.exists());
        assert!(path.exists());
    }

    #[test]
    fn a_newer_format_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        std::fs::write(&path, r#"{"version":2,"certificates":{}}"#).unwrap();
        let error = StateFile::load(&path).unwrap_err();
        assert_eq!(error.code(), "store.state_corrupt");
        assert!(error.to_string().contains("newer akvvm"), "{error}");
    }

    #[test]
    fn an_unreadable_file_is_a_read_error() {
        let dir = tempfile::tempdir().unwrap();
        let error = StateFile::load(dir.path()).unwrap_err();
        assert_eq!(error.code(), "store.state_read");
        let (state, error) = StateFile::load_or_recover(dir.path());
        assert_eq!(error.unwrap().code(), "store.state_read");
        assert_eq!(state.entries().count(), 0);
        assert!(dir.path().is_dir());
    }
}
