//! The 4.x layout read back: the current pair, the install decoded from it, the versions kept;
//! and what changes the files of an installed certificate without a new version: removing it,
//! applying new ACLs, and the repair of an interrupted install that [`Store::open_layout`]
//! runs.
//!
//! [`Store::open_layout`]: super::super::Store::open_layout

use std::os::fd::AsFd;
use std::path::PathBuf;

use rustix::fs::{AtFlags, FileType};
use rustix::io::Errno;

use super::super::access::set_file_acl;
use super::super::acl::{PosixAcl, Principal};
use super::super::atomic::{self, list_dir};
use super::super::index::Index;
use super::super::lookup::read_file_at;
use super::super::names::check_key_vault_name;
use super::super::{Current, Installed, Store, StoreError};
use super::{FileName, KEYID, Kind, LUMA, Luma, PEM, Pair, parse_stamp, stable_name};
use crate::certificate::CertificateBundle;

impl Store {
    /// [`Store::current`] in the 4.x layout.
    pub(in crate::store) fn current_v4(
        &self,
        vault: &str,
        name: &str,
    ) -> Result<Option<Current>, StoreError> {
        check_key_vault_name("vault name", vault)?;
        check_key_vault_name("certificate name", name)?;
        let certificate = format!("{vault}.{name}");
        let Some(pem) = self.read_v4_link(&certificate, Kind::Pem)? else {
            return Ok(None);
        };
        let Some(keyid) = self.read_v4_link(&certificate, Kind::Keyid)? else {
            return Ok(None);
        };
        let (pem_file, keyid_file) = (FileName::parse(&pem), FileName::parse(&keyid));
        let (Some(pem_file), Some(keyid_file)) = (pem_file, keyid_file) else {
            return Ok(None);
        };
        if (pem_file.version, pem_file.stamp) != (keyid_file.version, keyid_file.stamp) {
            tracing::warn!(
                certificate,
                pem = %pem,
                keyid = %keyid,
                "the .pem and .keyid links point to different installs (an interrupted install)"
            );
            return Ok(None);
        }
        for target in [&pem, &keyid] {
            match super::super::sys::statat(&self.dir, target.as_str(), AtFlags::SYMLINK_NOFOLLOW) {
                Ok(stat) if FileType::from_raw_mode(stat.st_mode) == FileType::RegularFile => {}
                Ok(_) | Err(Errno::NOENT) => {
                    tracing::warn!(certificate, %target, "a 4.x link points to a missing file");
                    return Ok(None);
                }
                Err(e) => {
                    return Err(StoreError::Read {
                        path: self.path.join(target),
                        source: e.into(),
                    });
                }
            }
        }
        Ok(Some(Current {
            version: pem_file.version.to_owned(),
            file: self.path.join(&pem),
            link: self.path.join(stable_name(&certificate, PEM)),
        }))
    }

    /// The target of `certificate`'s `kind` link when it is one of that certificate's 4.x file
    /// names; `None` when there is no link or it points elsewhere.
    fn read_v4_link(&self, certificate: &str, kind: Kind) -> Result<Option<String>, StoreError> {
        let link = stable_name(certificate, kind.suffix());
        let target = match super::super::sys::readlinkat(&self.dir, link.as_str(), Vec::new()) {
            Ok(target) => target,
            Err(Errno::NOENT) => return Ok(None),
            Err(Errno::INVAL) => {
                return Err(StoreError::LinkOccupied {
                    path: self.path.join(&link),
                });
            }
            Err(e) => {
                return Err(StoreError::Read {
                    path: self.path.join(&link),
                    source: e.into(),
                });
            }
        };
        let Ok(target) = target.into_string() else {
            return Ok(None);
        };
        let ours = FileName::parse(&target)
            .is_some_and(|file| file.certificate == certificate && file.kind == kind);
        if !ours {
            tracing::warn!(link = %self.path.join(&link).display(), %target, "the link points outside akvvm's 4.x layout");
            return Ok(None);
        }
        Ok(Some(target))
    }

    /// [`Store::installed`] in the 4.x layout: the current pair decoded (its key must match its
    /// certificate), with the key's file and link and `.luma`.
    pub(in crate::store) fn installed_v4(
        &self,
        vault: &str,
        name: &str,
    ) -> Result<Option<Installed>, StoreError> {
        let Some(current) = self.current_v4(vault, name)? else {
            return Ok(None);
        };
        let certificate = format!("{vault}.{name}");
        let pem = current
            .file
            .file_name()
            .and_then(|n| n.to_str())
            .expect("current_v4 names a file")
            .to_owned();
        let pair = FileName::parse(&pem).expect("current_v4 checked the name");
        let keyid = super::file_name(&certificate, pair.version, Kind::Keyid, pair.stamp);
        let Some(bundle) = self.decode_pair(&pem, &keyid)? else {
            return Ok(None);
        };
        Ok(Some(Installed {
            version: current.version,
            file: current.file,
            link: current.link,
            custom_link: None,
            live_link: None,
            thumbprint: bundle.thumbprint(),
            not_after: bundle.not_after(),
            pruned: Vec::new(),
            key_file: Some(self.path.join(&keyid)),
            key_link: Some(self.path.join(stable_name(&certificate, KEYID))),
            luma: Some(self.path.join(stable_name(&certificate, LUMA))),
        }))
    }

    /// The bundle of the `.pem` file `pem` and the `.keyid` file `keyid`; `None` (logged) when
    /// they do not decode into a certificate and its key.
    fn decode_pair(&self, pem: &str, keyid: &str) -> Result<Option<CertificateBundle>, StoreError> {
        let read = |name: &str| {
            read_file_at(self.dir.as_fd(), name).map_err(|source| StoreError::Read {
                path: self.path.join(name),
                source,
            })
        };
        let mut text = read(pem)?;
        text.push_str(&read(keyid)?);
        match crate::certificate::decode_pem(&text) {
            Ok(bundle) => Ok(Some(bundle)),
            Err(error) => {
                tracing::warn!(
                    pem = %self.path.join(pem).display(),
                    code = error.code(),
                    %error,
                    "the installed 4.x pair no longer decodes; it will be installed again"
                );
                Ok(None)
            }
        }
    }

    /// [`Store::versions`] in the 4.x layout: the versions with a file in the store, newest
    /// install first.
    pub(in crate::store) fn versions_v4(
        &self,
        vault: &str,
        name: &str,
    ) -> Result<Vec<String>, StoreError> {
        check_key_vault_name("vault name", vault)?;
        check_key_vault_name("certificate name", name)?;
        let mut guard = self.lock_index();
        let index = self.index(&mut guard)?;
        let mut versions: Vec<String> = Vec::new();
        for pair in index.v4.pairs(&format!("{vault}.{name}")) {
            if !versions.contains(&pair.version) {
                versions.push(pair.version);
            }
        }
        Ok(versions)
    }

    /// [`Store::remove_certificate`] in the 4.x layout: `.luma` first, then the two links (when
    /// they are links), then every versioned file of the certificate. Nothing of the 3.x layout
    /// is touched.
    pub(in crate::store) fn remove_certificate_v4(
        &self,
        vault: &str,
        name: &str,
    ) -> Result<Vec<PathBuf>, StoreError> {
        check_key_vault_name("vault name", vault)?;
        check_key_vault_name("certificate name", name)?;
        let mut guard = self.lock_index();
        // The store changes under the index: the next change scans again.
        *guard = None;
        let certificate = format!("{vault}.{name}");
        let luma = stable_name(&certificate, LUMA);
        let links = [
            stable_name(&certificate, PEM),
            stable_name(&certificate, KEYID),
        ];
        let mut doomed: Vec<(u8, String)> = Vec::new();
        for (entry, file_type) in list_dir(self.dir.as_fd(), &self.path)? {
            let rank = match file_type {
                FileType::RegularFile if entry == luma => 0,
                FileType::Symlink if links.contains(&entry) => 1,
                FileType::RegularFile
                    if FileName::parse(&entry).is_some_and(|f| f.certificate == certificate) =>
                {
                    2
                }
                _ => continue,
            };
            doomed.push((rank, entry));
        }
        doomed.sort();
        let mut removed = Vec::new();
        for (_, entry) in doomed {
            match super::super::sys::unlinkat(&self.dir, entry.as_str(), AtFlags::empty()) {
                Ok(()) => removed.push(self.path.join(&entry)),
                Err(Errno::NOENT) => {}
                Err(e) => {
                    return Err(StoreError::Write {
                        path: self.path.join(&entry),
                        step: "remove",
                        source: e.into(),
                    });
                }
            }
        }
        if !removed.is_empty() {
            super::super::sys::fsync(&self.dir).map_err(|e| StoreError::Write {
                path: self.path.clone(),
                step: "fsync the directory",
                source: e.into(),
            })?;
        }
        Ok(removed)
    }

    /// [`Store::apply_acls`] in the 4.x layout: every kept `.pem` and `.keyid` file of the
    /// certificate gets exactly `principals`. Returns how many installs were updated.
    pub(in crate::store) fn apply_acls_v4(
        &self,
        guard: &mut std::sync::MutexGuard<'_, Option<Index>>,
        vault: &str,
        name: &str,
        principals: &[Principal],
    ) -> Result<usize, StoreError> {
        let index = self.index(guard)?;
        let acl = PosixAcl::for_file(principals);
        let certificate = format!("{vault}.{name}");
        let pairs = index.v4.pairs(&certificate);
        for pair in &pairs {
            for (kind, present) in [(Kind::Pem, pair.pem), (Kind::Keyid, pair.keyid)] {
                if present {
                    let file = pair.file(&certificate, kind);
                    set_file_acl(self.dir.as_fd(), &self.path, &file, &acl)?;
                    index.set_file_principals(&file, principals.to_vec());
                }
            }
        }
        self.update_directory_acl(index)?;
        Ok(pairs.len())
    }

    /// On open: repairs every 4.x certificate of the store (see [`Self::repair_v4_certificate`]).
    /// Failures are logged: the next install of that certificate repairs it too.
    pub(in crate::store) fn repair_v4(&self) {
        let mut guard = self.lock_index();
        let index = match self.index(&mut guard) {
            Ok(index) => index,
            Err(error) => {
                tracing::warn!(%error, "cannot scan the store to check its 4.x links");
                return;
            }
        };
        let mut changed = false;
        for certificate in index.v4.certificates() {
            match self.repair_v4_certificate(index, &certificate) {
                Ok(repaired) => changed |= repaired,
                Err(error) => {
                    tracing::warn!(certificate, %error, "cannot repair the 4.x links");
                    *guard = None;
                    return;
                }
            }
        }
        if changed {
            self.restamp(&mut guard);
        }
    }

    /// Makes `certificate`'s two links point to one complete pair and its `.luma` name that pair,
    /// moving forward: to the pair the `.pem` link reached (it moves first), else the one the
    /// `.keyid` link points to, else the newest complete pair. Nothing is done for a certificate
    /// without links (an install interrupted before its first link: the previous state, no
    /// install, stands). Returns whether anything changed.
    pub(in crate::store) fn repair_v4_certificate(
        &self,
        index: &mut Index,
        certificate: &str,
    ) -> Result<bool, StoreError> {
        let pem_link = stable_name(certificate, PEM);
        let keyid_link = stable_name(certificate, KEYID);
        let linked = |link: &str, kind: Kind| -> Option<Pair> {
            index
                .link_target(link)
                .and_then(|target| index.v4.pair_of(certificate, target, kind))
        };
        let pem_pair = linked(&pem_link, Kind::Pem);
        let keyid_pair = linked(&keyid_link, Kind::Keyid);
        if index.link_target(&pem_link).is_none() && index.link_target(&keyid_link).is_none() {
            return Ok(false);
        }
        let target = [pem_pair, keyid_pair]
            .into_iter()
            .flatten()
            .find(Pair::is_complete)
            .or_else(|| {
                index
                    .v4
                    .pairs(certificate)
                    .into_iter()
                    .find(Pair::is_complete)
            });
        let Some(target) = target else {
            tracing::warn!(
                certificate,
                "the 4.x links point to no complete pair and none is left to point them to; the next install fixes them"
            );
            return Ok(false);
        };
        let pem_file = target.file(certificate, Kind::Pem);
        let keyid_file = target.file(certificate, Kind::Keyid);
        let dir = self.dir.as_fd();
        let mut changed = false;
        for (link, file) in [(&pem_link, &pem_file), (&keyid_link, &keyid_file)] {
            if index.link_target(link) != Some(file.as_str()) {
                atomic::swap_symlink_at(dir, &self.path, link, file)?;
                index.set_link(link, file);
                changed = true;
                tracing::info!(link = %self.path.join(link).display(), target = %file, "repaired a 4.x link left by an interrupted install");
            }
        }
        let luma = stable_name(certificate, LUMA);
        let current = read_file_at(dir, &luma)
            .ok()
            .and_then(|text| Luma::parse(text.as_bytes()));
        if current.is_some_and(|l| l.pem == pem_file && l.keyid == keyid_file) {
            return Ok(changed);
        }
        let Some(bundle) = self.decode_pair(&pem_file, &keyid_file)? else {
            return Ok(changed);
        };
        let (vault, name) = certificate
            .split_once('.')
            .expect("a 4.x certificate is <vault>.<cert>");
        let installed_at = parse_stamp(&target.stamp).expect("an indexed timestamp parses");
        let bytes = Luma::new(
            vault,
            name,
            &target.version,
            &target.stamp,
            &pem_file,
            &keyid_file,
            &bundle,
            installed_at,
        )
        .to_bytes();
        self.write_luma(&luma, &bytes)?;
        tracing::info!(path = %self.path.join(&luma).display(), "rewrote .luma to name the linked pair");
        Ok(true)
    }
}
