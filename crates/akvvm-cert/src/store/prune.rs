//! Old versions: listing the versions of a certificate in the store, newest first, and pruning
//! all but the newest `keep`, never one that a link still points to; and removing all of a
//! certificate's versions and links (uninstall). Listing and pruning read the store's
//! index ([`super::index`]), so pruning costs the same whatever else the store holds.

use std::num::NonZeroU32;
use std::os::fd::AsFd;
use std::path::PathBuf;

use rustix::fs::{AtFlags, FileType};

use super::atomic::{list_dir, remove_tree_at};
use super::index::Index;
use super::names::{check_key_vault_name, check_link_name};
use super::{CERTBOT_DIR_SUFFIX, LIVE_LINK_SUFFIX, Store, StoreError};

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
                match super::sys::unlinkat(&self.dir, file.as_str(), AtFlags::empty()) {
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
                // Under the store's handle, never following a link (counts itself).
                match remove_tree_at(self.dir.as_fd(), &certbot_dir) {
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
        if !pruned.is_empty()
            && let Err(e) = super::sys::fsync(&self.dir)
        {
            tracing::warn!(path = %self.path.display(), error = %e, "cannot fsync the store after pruning");
        }
        pruned
    }

    pub(super) fn remove_certificate_v3(
        &self,
        vault: &str,
        name: &str,
        link_name: Option<&str>,
    ) -> Result<Vec<PathBuf>, StoreError> {
        check_key_vault_name("vault name", vault)?;
        check_key_vault_name("certificate name", name)?;
        if let Some(link) = link_name {
            check_link_name(link)?;
        }
        let mut guard = self.lock_index();
        // The store changes under the index: the next change scans again.
        *guard = None;
        let stable = format!("{vault}.{name}");
        let live = format!("{stable}.{LIVE_LINK_SUFFIX}");
        let prefix = format!("{stable}.");
        let mut removed = Vec::new();
        for (entry, file_type) in list_dir(self.dir.as_fd(), &self.path)? {
            let is_version = |rest: &str| {
                check_key_vault_name("version", rest).is_ok()
                    && !super::v4::RESERVED_VERSIONS.contains(&rest)
            };
            let ours = match file_type {
                FileType::Symlink => {
                    entry == stable || entry == live || link_name == Some(entry.as_str())
                }
                FileType::RegularFile => entry.strip_prefix(&prefix).is_some_and(is_version),
                FileType::Directory => entry
                    .strip_prefix(&prefix)
                    .and_then(|rest| rest.strip_suffix(CERTBOT_DIR_SUFFIX))
                    .is_some_and(is_version),
                _ => false,
            };
            if !ours {
                continue;
            }
            let path = self.path.join(&entry);
            let result = if file_type == FileType::Directory {
                remove_tree_at(self.dir.as_fd(), &entry)
            } else {
                super::sys::unlinkat(&self.dir, entry.as_str(), AtFlags::empty())
                    .map_err(std::io::Error::from)
            };
            match result {
                Ok(()) => removed.push(path),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => {
                    return Err(StoreError::Write {
                        path,
                        step: "remove",
                        source,
                    });
                }
            }
        }
        if !removed.is_empty() {
            super::sys::fsync(&self.dir).map_err(|e| StoreError::Write {
                path: self.path.clone(),
                step: "fsync the directory",
                source: e.into(),
            })?;
        }
        Ok(removed)
    }

    pub(super) fn versions_v3(&self, vault: &str, name: &str) -> Result<Vec<String>, StoreError> {
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
