//! Old versions: listing the versions of a certificate in the store, newest first, and pruning
//! all but the newest `keep`, never one that a link still points to.

use std::collections::BTreeSet;
use std::num::NonZeroU32;
use std::os::fd::AsFd;
use std::path::PathBuf;

use rustix::fs::{AtFlags, FileType};
use rustix::io::Errno;

use super::atomic::{self, TEMP_PREFIX};
use super::names::check_key_vault_name;
use super::{CERTBOT_DIR_SUFFIX, Store, StoreError};

/// One version of a certificate found in the store.
pub(super) struct VersionEntry {
    pub(super) version: String,
    pub(super) modified: (i64, u64),
    pub(super) has_file: bool,
    pub(super) has_certbot_dir: bool,
}

impl Store {
    /// Removes the versions of `vault.name` beyond the newest `keep` (by install time), never one
    /// that a link in the store points to. Failures are logged, not returned: the install itself
    /// succeeded.
    pub(super) fn prune(&self, vault: &str, name: &str, keep: NonZeroU32) -> Vec<PathBuf> {
        let mut pruned = Vec::new();
        let versions = match self.versions_by_age(vault, name) {
            Ok(versions) => versions,
            Err(error) => {
                tracing::warn!(%error, "cannot list old versions to prune");
                return pruned;
            }
        };
        let linked = match self.link_targets() {
            Ok(linked) => linked,
            Err(error) => {
                tracing::warn!(%error, "cannot list links; not pruning");
                return pruned;
            }
        };
        let keep = usize::try_from(keep.get()).unwrap_or(usize::MAX);
        for entry in versions.into_iter().skip(keep) {
            let file = format!("{vault}.{name}.{}", entry.version);
            let certbot_dir = format!("{file}{CERTBOT_DIR_SUFFIX}");
            if linked.contains(&file) || linked.contains(&certbot_dir) {
                continue;
            }
            if entry.has_file {
                match rustix::fs::unlinkat(&self.dir, file.as_str(), AtFlags::empty()) {
                    Ok(()) => pruned.push(self.path.join(&file)),
                    Err(e) => {
                        tracing::warn!(path = %self.path.join(&file).display(), error = %e, "cannot prune an old version");
                        continue;
                    }
                }
            }
            if entry.has_certbot_dir {
                let path = self.path.join(&certbot_dir);
                match std::fs::remove_dir_all(&path) {
                    Ok(()) => pruned.push(path),
                    Err(e) => {
                        tracing::warn!(path = %path.display(), error = %e, "cannot prune an old version's directory");
                    }
                }
            }
        }
        if !pruned.is_empty()
            && let Err(e) = rustix::fs::fsync(&self.dir)
        {
            tracing::warn!(path = %self.path.display(), error = %e, "cannot fsync the store after pruning");
        }
        pruned
    }

    /// The versions of `vault.name` present in the store (as a file, a certbot-style directory or
    /// both), newest first by modification time.
    pub fn versions(&self, vault: &str, name: &str) -> Result<Vec<String>, StoreError> {
        Ok(self
            .versions_by_age(vault, name)?
            .into_iter()
            .map(|entry| entry.version)
            .collect())
    }

    pub(super) fn versions_by_age(
        &self,
        vault: &str,
        name: &str,
    ) -> Result<Vec<VersionEntry>, StoreError> {
        let prefix = format!("{vault}.{name}.");
        let mut found: Vec<VersionEntry> = Vec::new();
        for (entry_name, file_type) in atomic::list_dir(self.dir.as_fd(), &self.path)? {
            let Some(rest) = entry_name.strip_prefix(&prefix) else {
                continue;
            };
            let (version, is_dir) = match rest.strip_suffix(CERTBOT_DIR_SUFFIX) {
                Some(version) if file_type == FileType::Directory => (version, true),
                _ if file_type == FileType::RegularFile => (rest, false),
                _ => continue,
            };
            if check_key_vault_name("version", version).is_err() {
                continue;
            }
            let stat =
                match rustix::fs::statat(&self.dir, entry_name.as_str(), AtFlags::SYMLINK_NOFOLLOW)
                {
                    Ok(stat) => stat,
                    Err(Errno::NOENT) => continue,
                    Err(e) => {
                        return Err(StoreError::Read {
                            path: self.path.join(&entry_name),
                            source: e.into(),
                        });
                    }
                };
            let modified = (stat.st_mtime, stat.st_mtime_nsec);
            match found.iter_mut().find(|e| e.version == version) {
                Some(existing) => {
                    existing.modified = existing.modified.max(modified);
                    existing.has_file |= !is_dir;
                    existing.has_certbot_dir |= is_dir;
                }
                None => found.push(VersionEntry {
                    version: version.to_owned(),
                    modified,
                    has_file: !is_dir,
                    has_certbot_dir: is_dir,
                }),
            }
        }
        found.sort_by(|a, b| {
            b.modified
                .cmp(&a.modified)
                .then_with(|| b.version.cmp(&a.version))
        });
        Ok(found)
    }

    /// The names every symbolic link in the store points to.
    fn link_targets(&self) -> Result<BTreeSet<String>, StoreError> {
        let mut targets = BTreeSet::new();
        for (name, file_type) in atomic::list_dir(self.dir.as_fd(), &self.path)? {
            if file_type != FileType::Symlink || name.starts_with(TEMP_PREFIX) {
                continue;
            }
            match rustix::fs::readlinkat(&self.dir, name.as_str(), Vec::new()) {
                Ok(target) => {
                    if let Ok(target) = target.into_string() {
                        targets.insert(target);
                    }
                }
                Err(Errno::NOENT) => {}
                Err(e) => {
                    return Err(StoreError::Read {
                        path: self.path.join(&name),
                        source: e.into(),
                    });
                }
            }
        }
        Ok(targets)
    }
}
