//! The store's index: what one scan of the store directory found (every version of every
//! certificate with its age, every link's target, every version file's ACL principals), kept
//! current by the store's own installs, prunes and ACL changes.
//!
//! With it an install costs the same number of system calls whatever the store holds: pruning
//! reads the certificate's versions and the linked names from the index instead of listing the
//! directory and reading every link, and the store directory's ACL is recomputed from counts
//! instead of reading the ACL of every version file. [`Store::rescan`](super::Store::rescan)
//! drops the index (the engine calls it at the start of each cycle) and the next change rebuilds
//! it with one scan, so a change someone else made to the store is seen at the next cycle. A
//! cycle that changes nothing never scans.
//!
//! To index something new: fill it in [`Index::scan`] and keep it current in the `Store` method
//! that changes it.

use std::collections::{BTreeMap, HashMap};
use std::os::fd::BorrowedFd;
use std::path::Path;

use rustix::fs::{AtFlags, FileType};
use rustix::io::Errno;

use super::acl::{PosixAcl, Principal};
use super::atomic::{self, TEMP_PREFIX};
use super::names::check_key_vault_name;
use super::{CERTBOT_DIR_SUFFIX, StoreError};

/// One version of a certificate found in the store.
#[derive(Debug, Clone)]
pub(super) struct VersionEntry {
    pub(super) version: String,
    pub(super) modified: (i64, u64),
    pub(super) has_file: bool,
    pub(super) has_certbot_dir: bool,
}

/// See the module documentation.
#[derive(Debug, Default)]
pub(super) struct Index {
    /// `<vault>.<cert>` -> its versions (in no particular order).
    versions: HashMap<String, Vec<VersionEntry>>,
    /// Link name -> its target.
    links: HashMap<String, String>,
    /// Target -> how many links point to it.
    linked: HashMap<String, u32>,
    /// Version file name -> the principals its ACL names (only files with some).
    file_principals: HashMap<String, Vec<Principal>>,
    /// Principal -> how many version files name it.
    principal_counts: BTreeMap<Principal, u32>,
    /// The principals the store directory's ACL was last set to by this index's owner; `None`
    /// until then (the directory is then read and compared before it is set).
    pub(super) directory_principals: Option<Vec<Principal>>,
    /// The store directory's change time (`st_ctime`) when this index was last known to match
    /// it: taken before the scan and after each of the store's own changes
    /// ([`Store::rescan_if_changed`](super::Store::rescan_if_changed)).
    pub(super) stamp: Option<(i64, i64)>,
    /// The 4.x layout's versioned files (`super::v4`); their ACL principals are counted above
    /// with the others, so the store directory's ACL serves both layouts.
    pub(super) v4: super::v4::Files,
}

/// Splits `<vault>.<cert>.<version>` into `(<vault>.<cert>, <version>)` when every part is a Key
/// Vault name.
pub(super) fn split_version_name(name: &str) -> Option<(&str, &str)> {
    let (certificate, version) = name.rsplit_once('.')?;
    let (vault, cert) = certificate.split_once('.')?;
    // `<vault>.<cert>.luma` is the 4.x layout's, never a version.
    if super::v4::RESERVED_VERSIONS.contains(&version) {
        return None;
    }
    [vault, cert, version]
        .iter()
        .all(|part| check_key_vault_name("name", part).is_ok())
        .then_some((certificate, version))
}

impl Index {
    /// Scans the store directory: one `getdents` pass, then one call per entry of akvvm's
    /// layout (the age of each version, the target of each link, the ACL of each version file).
    pub(super) fn scan(dir: BorrowedFd<'_>, path: &Path) -> Result<Index, StoreError> {
        let mut index = Index::default();
        let read_error = |name: &str, e: Errno| StoreError::Read {
            path: path.join(name),
            source: e.into(),
        };
        for (name, file_type) in atomic::list_dir(dir, path)? {
            if name.starts_with(TEMP_PREFIX) {
                continue;
            }
            match file_type {
                FileType::Symlink => match super::sys::readlinkat(dir, name.as_str(), Vec::new()) {
                    Ok(target) => {
                        if let Ok(target) = target.into_string() {
                            index.set_link(&name, &target);
                        }
                    }
                    Err(Errno::NOENT) => {}
                    Err(e) => return Err(read_error(&name, e)),
                },
                FileType::RegularFile => {
                    if let Some(file) = super::v4::FileName::parse(&name) {
                        let principals = read_principals(dir, path, &name)?;
                        index.v4.add(&file);
                        index.set_file_principals(&name, principals);
                        continue;
                    }
                    let Some((certificate, version)) = split_version_name(&name) else {
                        continue;
                    };
                    let Some(modified) =
                        modified_at(dir, &name).map_err(|e| read_error(&name, e))?
                    else {
                        continue;
                    };
                    let principals = read_principals(dir, path, &name)?;
                    index.add_version(certificate, version, modified, false);
                    index.set_file_principals(&name, principals);
                }
                FileType::Directory => {
                    let Some(stem) = name.strip_suffix(CERTBOT_DIR_SUFFIX) else {
                        continue;
                    };
                    let Some((certificate, version)) = split_version_name(stem) else {
                        continue;
                    };
                    let Some(modified) =
                        modified_at(dir, &name).map_err(|e| read_error(&name, e))?
                    else {
                        continue;
                    };
                    index.add_version(certificate, version, modified, true);
                }
                _ => {}
            }
        }
        Ok(index)
    }

    /// The versions of `<vault>.<cert>`, newest first (by modification time, then name).
    pub(super) fn versions_by_age(&self, certificate: &str) -> Vec<VersionEntry> {
        let mut found = self.versions.get(certificate).cloned().unwrap_or_default();
        found.sort_by(|a, b| {
            b.modified
                .cmp(&a.modified)
                .then_with(|| b.version.cmp(&a.version))
        });
        found
    }

    /// Whether the store holds some version of `<vault>.<cert>`.
    pub(super) fn has_versions(&self, certificate: &str) -> bool {
        self.versions.contains_key(certificate)
    }

    /// Records a version file (`is_dir` false) or certbot-style directory (`is_dir` true).
    pub(super) fn add_version(
        &mut self,
        certificate: &str,
        version: &str,
        modified: (i64, u64),
        is_dir: bool,
    ) {
        let versions = self.versions.entry(certificate.to_owned()).or_default();
        match versions.iter_mut().find(|e| e.version == version) {
            Some(existing) => {
                existing.modified = existing.modified.max(modified);
                existing.has_file |= !is_dir;
                existing.has_certbot_dir |= is_dir;
            }
            None => versions.push(VersionEntry {
                version: version.to_owned(),
                modified,
                has_file: !is_dir,
                has_certbot_dir: is_dir,
            }),
        }
    }

    /// Forgets a removed version file (`is_dir` false) or certbot-style directory.
    pub(super) fn remove_version(&mut self, certificate: &str, version: &str, is_dir: bool) {
        let Some(versions) = self.versions.get_mut(certificate) else {
            return;
        };
        if let Some(entry) = versions.iter_mut().find(|e| e.version == version) {
            if is_dir {
                entry.has_certbot_dir = false;
            } else {
                entry.has_file = false;
            }
        }
        versions.retain(|e| e.has_file || e.has_certbot_dir);
        if versions.is_empty() {
            self.versions.remove(certificate);
        }
        if !is_dir {
            self.set_file_principals(&format!("{certificate}.{version}"), Vec::new());
        }
    }

    /// Records that the link `name` now points to `target`.
    pub(super) fn set_link(&mut self, name: &str, target: &str) {
        self.remove_link(name);
        self.links.insert(name.to_owned(), target.to_owned());
        *self.linked.entry(target.to_owned()).or_default() += 1;
    }

    /// Forgets the link `name`.
    pub(super) fn remove_link(&mut self, name: &str) {
        if let Some(old) = self.links.remove(name)
            && let Some(count) = self.linked.get_mut(&old)
        {
            *count -= 1;
            if *count == 0 {
                self.linked.remove(&old);
            }
        }
    }

    /// Whether the link `name` exists.
    pub(super) fn has_link(&self, name: &str) -> bool {
        self.links.contains_key(name)
    }

    /// The target of the link `name`, if the index knows one.
    pub(super) fn link_target(&self, name: &str) -> Option<&str> {
        self.links.get(name).map(String::as_str)
    }

    /// Whether some link points to `target`.
    pub(super) fn is_linked(&self, target: &str) -> bool {
        self.linked.contains_key(target)
    }

    /// Records the principals the ACL of version file `file` now names.
    pub(super) fn set_file_principals(&mut self, file: &str, principals: Vec<Principal>) {
        if let Some(old) = self.file_principals.remove(file) {
            for principal in old {
                if let Some(count) = self.principal_counts.get_mut(&principal) {
                    *count -= 1;
                    if *count == 0 {
                        self.principal_counts.remove(&principal);
                    }
                }
            }
        }
        if principals.is_empty() {
            return;
        }
        for principal in &principals {
            *self.principal_counts.entry(*principal).or_default() += 1;
        }
        self.file_principals.insert(file.to_owned(), principals);
    }

    /// Every principal named in the ACL of some version file, sorted.
    pub(super) fn all_principals(&self) -> Vec<Principal> {
        self.principal_counts.keys().copied().collect()
    }
}

/// The modification time of `name` in `dir`, `None` when it is gone.
pub(super) fn modified_at(dir: BorrowedFd<'_>, name: &str) -> Result<Option<(i64, u64)>, Errno> {
    match super::sys::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(stat) => Ok(Some((stat.st_mtime, stat.st_mtime_nsec))),
        Err(Errno::NOENT) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The principals named in the ACL of the version file `name` of the store `dir` (at `path`):
/// none without an ACL, or on a file system without ACLs.
fn read_principals(
    dir: BorrowedFd<'_>,
    path: &Path,
    name: &str,
) -> Result<Vec<Principal>, StoreError> {
    // open, read the ACL.
    match PosixAcl::read_at(dir, name) {
        Ok(Some(acl)) => Ok(acl.principals()),
        Ok(None) => Ok(Vec::new()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(source) => Err(StoreError::Read {
            path: path.join(name),
            source,
        }),
    }
}
