//! Installing one version in the 4.x layout: the `.pem` and `.keyid` files, the store's ACL, the
//! two links, `.luma`, then pruning (the order is the module's guarantee, see [`super`]).

use std::num::NonZeroU32;
use std::os::fd::AsFd;
use std::path::PathBuf;

use rustix::fs::AtFlags;
use time::OffsetDateTime;
use zeroize::Zeroizing;

use super::super::acl::{PosixAcl, Principal};
use super::super::atomic::{self, FileOptions};
use super::super::index::Index;
use super::super::install::{FileSettings, file_settings};
use super::super::names::check_key_vault_name;
use super::super::{FileAccess, InstallRequest, Installed, Store, StoreError};
use super::{
    FileName, KEYID, Kind, LUMA, LUMA_FILE_MODE, Luma, MAX_STEM_LEN, PEM, Pair, file_name,
    next_stamp, parse_stamp, stable_name,
};

/// The steps of a 4.x install, in order: each is announced to [`checkpoint`] before it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Step {
    PemFile,
    KeyFile,
    DirectoryAcl,
    PemLink,
    KeyLink,
    Luma,
    Prune,
    Done,
}

#[cfg(test)]
type Hook = Box<dyn FnMut(Step) -> Result<(), StoreError>>;

#[cfg(test)]
thread_local! {
    /// The store tests' fault injection: called before each [`Step`] of the installs of this
    /// thread. An `Err` is a failure of that step; a panic is a crash there (nothing after it
    /// runs, not even the failure handling).
    pub(super) static CHECKPOINT: std::cell::RefCell<Option<Hook>> =
        const { std::cell::RefCell::new(None) };
}

/// Announces `step` (a no-op outside the store's own tests).
fn checkpoint(step: Step) -> Result<(), StoreError> {
    #[cfg(test)]
    {
        let hook = CHECKPOINT.with(|c| c.borrow_mut().take());
        if let Some(mut hook) = hook {
            let result = hook(step);
            CHECKPOINT.with(|c| *c.borrow_mut() = Some(hook));
            return result;
        }
    }
    let _ = step;
    Ok(())
}

/// The names of one install.
pub(super) struct Names {
    pub(super) pem_link: String,
    pub(super) keyid_link: String,
    pub(super) luma: String,
    pub(super) pem_file: String,
    pub(super) keyid_file: String,
}

impl Names {
    pub(super) fn new(certificate: &str, version: &str, stamp: &str) -> Names {
        Names {
            pem_link: stable_name(certificate, PEM),
            keyid_link: stable_name(certificate, KEYID),
            luma: stable_name(certificate, LUMA),
            pem_file: file_name(certificate, version, Kind::Pem, stamp),
            keyid_file: file_name(certificate, version, Kind::Keyid, stamp),
        }
    }
}

/// Checks the names of a 4.x install; returns `<vault>.<cert>`.
pub(super) fn check_names(vault: &str, name: &str, version: &str) -> Result<String, StoreError> {
    check_key_vault_name("vault name", vault)?;
    check_key_vault_name("certificate name", name)?;
    check_key_vault_name("version", version)?;
    if vault.len() + name.len() + version.len() + 2 > MAX_STEM_LEN {
        return Err(StoreError::InvalidName {
            what: "version",
            value: version.to_owned(),
            reason: "vault, certificate and version names together exceed 194 bytes, too long \
                     for the 4.x layout's file names",
        });
    }
    Ok(format!("{vault}.{name}"))
}

impl Store {
    /// [`Store::install`] and [`Store::install_with_access`] in the 4.x layout. `link_name` and
    /// `certbot_layout` have no 4.x equivalent and are not written.
    pub(in crate::store) fn install_v4(
        &self,
        request: &InstallRequest<'_>,
        access: Option<&FileAccess>,
    ) -> Result<Installed, StoreError> {
        let mut guard = self.lock_index();
        let certificate = check_names(request.vault, request.name, request.version)?;
        let (principals, file) = file_settings(request.acls, access)?;
        let result = self.install_v4_indexed(&mut guard, request, &certificate, &principals, &file);
        if result.is_err() {
            // The index may be behind the directory now: the next change scans again.
            *guard = None;
        }
        self.restamp(&mut guard);
        result
    }

    fn install_v4_indexed(
        &self,
        guard: &mut std::sync::MutexGuard<'_, Option<super::super::index::Index>>,
        request: &InstallRequest<'_>,
        certificate: &str,
        principals: &[Principal],
        file: &FileSettings,
    ) -> Result<Installed, StoreError> {
        let dir = self.dir.as_fd();
        let index = self.index(guard)?;
        let stamp = next_stamp(
            OffsetDateTime::now_utc(),
            index.v4.newest_stamp(certificate),
        );
        let installed_at = parse_stamp(&stamp).expect("next_stamp makes a valid timestamp");
        let names = Names::new(certificate, request.version, &stamp);

        // Refuse up front to replace anything that is not a link.
        atomic::ensure_link_or_absent(dir, &self.path, &names.pem_link)?;
        atomic::ensure_link_or_absent(dir, &self.path, &names.keyid_link)?;

        let bundle = request.bundle;
        let pem = bundle.fullchain_pem();
        let key = Zeroizing::new(bundle.key_pem().as_bytes().to_vec());
        let luma = Luma::new(
            request.vault,
            request.name,
            request.version,
            &stamp,
            &names.pem_file,
            &names.keyid_file,
            bundle,
            installed_at,
        )
        .to_bytes();

        let file_acl = (!principals.is_empty()).then(|| PosixAcl::for_file(principals).to_xattr());
        let options = FileOptions {
            mode: file.mode,
            owner: file.owner,
            acl: file_acl.as_deref(),
        };
        for (kind, name, bytes) in [
            (Kind::Pem, &names.pem_file, pem.as_bytes()),
            (Kind::Keyid, &names.keyid_file, key.as_slice()),
        ] {
            checkpoint(match kind {
                Kind::Pem => Step::PemFile,
                Kind::Keyid => Step::KeyFile,
            })?;
            atomic::write_atomic_at(dir, &self.path, name, bytes, &options)?;
            index
                .v4
                .add(&FileName::parse(name).expect("a 4.x file name parses"));
            index.set_file_principals(name, principals.to_vec());
        }
        checkpoint(Step::DirectoryAcl)?;
        self.update_directory_acl(index)?;

        // The pair served until now: kept before any older or never linked one.
        let previous = index
            .link_target(&names.pem_link)
            .and_then(|target| index.v4.pair_of(certificate, target, Kind::Pem));

        if let Err(error) = self.switch_v4(index, &names, &luma) {
            // One link may have moved: finish the switch (or leave it consistent) if we can.
            if let Err(repair) = self.repair_v4_certificate(index, certificate) {
                tracing::warn!(certificate, error = %repair, "cannot repair the 4.x links after a failed install");
            }
            return Err(error);
        }

        checkpoint(Step::Prune)?;
        let pruned = self.prune_v4(index, certificate, request.keep, previous.as_ref());
        if !pruned.is_empty()
            && let Err(error) = self.update_directory_acl(index)
        {
            tracing::warn!(%error, "cannot narrow the store's ACL after pruning");
        }
        checkpoint(Step::Done)?;
        Ok(Installed {
            version: request.version.to_owned(),
            file: self.path.join(&names.pem_file),
            link: self.path.join(&names.pem_link),
            custom_link: None,
            live_link: None,
            thumbprint: bundle.thumbprint(),
            not_after: bundle.not_after(),
            pruned,
            key_file: Some(self.path.join(&names.keyid_file)),
            key_link: Some(self.path.join(&names.keyid_link)),
            luma: Some(self.path.join(&names.luma)),
        })
    }

    /// Moves the `.pem` link, then the `.keyid` link, to the new pair, then writes `.luma`.
    fn switch_v4(&self, index: &mut Index, names: &Names, luma: &[u8]) -> Result<(), StoreError> {
        let dir = self.dir.as_fd();
        checkpoint(Step::PemLink)?;
        atomic::swap_symlink_at(dir, &self.path, &names.pem_link, &names.pem_file)?;
        index.set_link(&names.pem_link, &names.pem_file);
        checkpoint(Step::KeyLink)?;
        atomic::swap_symlink_at(dir, &self.path, &names.keyid_link, &names.keyid_file)?;
        index.set_link(&names.keyid_link, &names.keyid_file);
        checkpoint(Step::Luma)?;
        self.write_luma(&names.luma, luma)
    }

    /// Writes `.luma` (0644, the agent's, no ACL).
    pub(super) fn write_luma(&self, name: &str, bytes: &[u8]) -> Result<(), StoreError> {
        let options = FileOptions {
            mode: LUMA_FILE_MODE,
            owner: None,
            acl: None,
        };
        atomic::write_atomic_at(self.dir.as_fd(), &self.path, name, bytes, &options)
    }

    /// Removes `certificate`'s installs beyond the newest `keep` complete ones of distinct
    /// versions, never one whose file a link points to (which covers the pair `.luma` names:
    /// it is always the linked one). `previous`, the pair the links named before this install,
    /// counts right after the newest, before a newer pair that was never linked (left by an
    /// install a crash stopped before its links). An older install of a version kept, and an
    /// incomplete pair (a crash between its two files), are removed too. Failures are logged,
    /// not returned.
    pub(super) fn prune_v4(
        &self,
        index: &mut Index,
        certificate: &str,
        keep: NonZeroU32,
        previous: Option<&Pair>,
    ) -> Vec<PathBuf> {
        let keep = usize::try_from(keep.get()).unwrap_or(usize::MAX);
        let mut pairs = index.v4.pairs(certificate);
        if let Some(at) = previous.and_then(|previous| pairs.iter().position(|p| p == previous)) {
            let previous = pairs.remove(at);
            pairs.insert(1.min(pairs.len()), previous);
        }
        let mut kept_versions: Vec<String> = Vec::new();
        let mut doomed: Vec<Pair> = Vec::new();
        for pair in pairs {
            let linked = [Kind::Pem, Kind::Keyid]
                .iter()
                .any(|&kind| index.is_linked(&pair.file(certificate, kind)));
            let counts = pair.is_complete() && !kept_versions.contains(&pair.version);
            if counts && kept_versions.len() < keep {
                kept_versions.push(pair.version.clone());
            } else if !linked {
                doomed.push(pair);
            }
        }
        let mut pruned = Vec::new();
        for pair in doomed {
            for kind in [Kind::Pem, Kind::Keyid] {
                if !match kind {
                    Kind::Pem => pair.pem,
                    Kind::Keyid => pair.keyid,
                } {
                    continue;
                }
                let name = pair.file(certificate, kind);
                match super::super::sys::unlinkat(&self.dir, name.as_str(), AtFlags::empty()) {
                    Ok(()) | Err(rustix::io::Errno::NOENT) => {
                        index
                            .v4
                            .remove(&FileName::parse(&name).expect("a 4.x file name parses"));
                        index.set_file_principals(&name, Vec::new());
                        pruned.push(self.path.join(&name));
                    }
                    Err(e) => {
                        tracing::warn!(path = %self.path.join(&name).display(), error = %e, "cannot prune an old version");
                    }
                }
            }
        }
        if !pruned.is_empty()
            && let Err(e) = super::super::sys::fsync(&self.dir)
        {
            tracing::warn!(path = %self.path.display(), error = %e, "cannot fsync the store after pruning");
        }
        pruned
    }
}
