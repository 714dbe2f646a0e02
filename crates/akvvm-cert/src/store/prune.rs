//! Old versions: listing the versions of a certificate in the store, newest first, and pruning
//! all but the newest `keep`, never one that a link still points to. Both read the store's index
//! ([`super::index`]), so pruning costs the same whatever else the store holds.

use std::num::NonZeroU32;
use std::path::PathBuf;

use rustix::fs::AtFlags;

use super::atomic::count_operations;
use super::index::Index;
use super::names::check_key_vault_name;
use super::{CERTBOT_DIR_SUFFIX, Store, StoreError};

impl Store {
    /// Removes the versions of `vault.name` beyond the newest `keep` (by install time), never one
    /// that a link in the store points to. Failures are logged, not returned: the install itself
    /// succeeded.
    pub(super) fn prune(
        &self,
        index: &mut Index,
        vault: &str,
        name: &str,
        keep: NonZeroU32,
    ) -> Vec<PathBuf> {
        let mut pruned = Vec::new();
        let certificate = format!("{vault}.{name}");
        let versions = index.versions_by_age(&certificate);
        let keep = usize::try_from(keep.get()).unwrap_or(usize::MAX);
        for entry in versions.into_iter().skip(keep) {
            let file = format!("{certificate}.{}", entry.version);
            let certbot_dir = format!("{file}{CERTBOT_DIR_SUFFIX}");
            if index.is_linked(&file) || index.is_linked(&certbot_dir) {
                continue;
            }
            if entry.has_file {
                count_operations(1);
                match rustix::fs::unlinkat(&self.dir, file.as_str(), AtFlags::empty()) {
                    Ok(()) => {
                        index.remove_version(&certificate, &entry.version, false);
                        pruned.push(self.path.join(&file));
                    }
                    Err(e) => {
                        tracing::warn!(path = %self.path.join(&file).display(), error = %e, "cannot prune an old version");
                        continue;
                    }
                }
            }
            if entry.has_certbot_dir {
                let path = self.path.join(&certbot_dir);
                // The directory's five files and itself.
                count_operations(8);
                match std::fs::remove_dir_all(&path) {
                    Ok(()) => {
                        index.remove_version(&certificate, &entry.version, true);
                        pruned.push(path);
                    }
                    Err(e) => {
                        tracing::warn!(path = %path.display(), error = %e, "cannot prune an old version's directory");
                    }
                }
            }
        }
        if !pruned.is_empty() {
            count_operations(1);
            if let Err(e) = rustix::fs::fsync(&self.dir) {
                tracing::warn!(path = %self.path.display(), error = %e, "cannot fsync the store after pruning");
            }
        }
        pruned
    }

    /// The versions of `vault.name` present in the store (as a file, a certbot-style directory or
    /// both), newest first by modification time. Read from the index: call [`Store::rescan`]
    /// first to see changes made by others since the store's last change.
    pub fn versions(&self, vault: &str, name: &str) -> Result<Vec<String>, StoreError> {
        check_key_vault_name("vault name", vault)?;
        check_key_vault_name("certificate name", name)?;
        let mut guard = self.lock_index();
        let index = self.index(&mut guard)?;
        Ok(index
            .versions_by_age(&format!("{vault}.{name}"))
            .into_iter()
            .map(|entry| entry.version)
            .collect())
    }
}
