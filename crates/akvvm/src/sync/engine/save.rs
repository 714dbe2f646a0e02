//! Saving the engine's state file: when (at most once a second during a cycle, at its end, only
//! when something changed) and how (the changed entries appended to the state journal, or the
//! whole state when the journal has grown past a quarter of the entries). Each save first makes
//! the stores' first installs durable ([`Store::flush`]), and so does the end of every cycle.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use akvvm_cert::store::Store;

use crate::sync::state::StateFile;

use super::Engine;
use super::options::state_file_path;
use akvvm_cert::locks::MutexExt;

/// During a cycle the state file is saved at most this often, and only once a sixteenth of its
/// entries changed (so that saving, which writes every entry, costs O(1) per change amortised);
/// the end of the cycle saves it when anything changed. A lost save costs nothing: the stable
/// link in the store is the truth, and the next start reads back whatever the state file missed.
const STATE_SAVE_INTERVAL: Duration = Duration::from_secs(1);

/// See [`STATE_SAVE_INTERVAL`].
const STATE_SAVE_FRACTION: usize = 16;

/// A save appends the changed entries to the state file's journal while the journal holds at most
/// this fraction of the entries (so a push at N = 10,000 writes one entry, not 10,000); past it,
/// the whole state is written (compacted) with a new journal. Compacting once per N/4 changes
/// costs O(1) entries per change, amortised.
const STATE_JOURNAL_FRACTION: usize = 4;

/// One save: the records for the journal, or the whole state.
enum Save {
    Append(crate::sync::state::journal::JournalAppend),
    Whole(PathBuf, Vec<u8>),
}

impl Engine {
    /// [`Engine::save_state`] at most once per [`STATE_SAVE_INTERVAL`] (during a cycle).
    pub(super) async fn save_state_at_most_every_interval(&self) {
        self.save_state(Some(STATE_SAVE_INTERVAL)).await;
    }

    /// Writes the state file on the blocking pool, from a snapshot taken under the lock. With
    /// `min_interval`, skips the save when the previous one started less than that long ago.
    pub(super) async fn save_state(&self, min_interval: Option<Duration>) {
        let mut last = self.saving.lock().await;
        if !self.dirty.load(Ordering::SeqCst) {
            if min_interval.is_none() {
                // The end of a cycle: its first installs are durable, whether or not the state
                // changed.
                self.flush_stores().await;
            }
            return;
        }
        if let Some(interval) = min_interval {
            let entries = self.settings.observed.len();
            let enough = (entries / STATE_SAVE_FRACTION).max(1);
            if last.is_some_and(|at| at.elapsed() < interval) || self.changed_count() < enough {
                return;
            }
        }
        *last = Some(Instant::now());
        self.dirty.store(false, Ordering::SeqCst);
        // Serialized under the lock (a few milliseconds for 10,000 entries) rather than cloned:
        // a save then holds one copy of the state, as JSON, not three.
        let save = {
            let mut state = self.state.lock_or_recover();
            let changed = std::mem::take(&mut *self.changed.lock_or_recover());
            let budget = self.settings.observed.len() / STATE_JOURNAL_FRACTION;
            let append = !self.compact_next.swap(false, Ordering::SeqCst)
                && state
                    .journal_records()
                    .is_some_and(|records| records + changed.len() <= budget);
            let append = if append {
                state
                    .journal_append(changed.iter().map(String::as_str))
                    .map(|a| a.map(Save::Append))
            } else {
                Ok(None)
            };
            match append {
                Ok(Some(save)) => Ok(save),
                Ok(None) => state
                    .compact_json()
                    .map(|text| Save::Whole(state.path().to_path_buf(), text)),
                Err(e) => Err(e),
            }
        };
        if let Ok(Save::Append(records)) = &save
            && records.is_empty()
        {
            // The changes that made the state dirty went out with the previous save.
            if min_interval.is_none() {
                self.flush_stores().await;
            }
            return;
        }
        let stores: Vec<Arc<Store>> = self.stores.values().cloned().collect();
        let saved = tokio::task::spawn_blocking(move || {
            // The snapshot names only versions whose install returned before it was taken: once
            // the stores are flushed their files are durable, so the state file never names a
            // first install a power loss could take away.
            for store in &stores {
                store.flush()?;
            }
            match save? {
                Save::Append(records) => records.write(crate::sync::state::STATE_FILE_MODE),
                Save::Whole(path, text) => StateFile::write_json(&path, &text),
            }
        })
        .await
        .unwrap_or_else(|e| {
            Err(akvvm_cert::store::StoreError::Write {
                path: state_file_path(&self.settings),
                step: "save the state file",
                source: std::io::Error::other(e.to_string()),
            })
        });
        if let Err(e) = saved {
            tracing::error!(error = %e, code = e.code(), "failed to save the state file");
            self.dirty.store(true, Ordering::SeqCst);
            self.compact_next.store(true, Ordering::SeqCst);
        }
    }

    /// Makes the first installs of every store durable ([`Store::flush`]), on the blocking pool.
    async fn flush_stores(&self) {
        let stores: Vec<Arc<Store>> = self.stores.values().cloned().collect();
        let flushed =
            tokio::task::spawn_blocking(move || stores.iter().try_for_each(|store| store.flush()))
                .await;
        if let Ok(Err(e)) = flushed {
            tracing::error!(error = %e, code = e.code(), "cannot make the new certificates durable; the next start checks them");
        }
    }

    /// Notes that the entry of `url` changed and must be saved (the caller holds the state lock).
    pub(super) fn note_change(&self, url: &str) {
        self.dirty.store(true, Ordering::SeqCst);
        let mut changed = self.changed.lock_or_recover();
        if !changed.contains(url) {
            changed.insert(url.to_owned());
        }
    }

    fn changed_count(&self) -> usize {
        self.changed.lock_or_recover().len()
    }
}
