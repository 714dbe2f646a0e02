//! Installing one version: the bundle rendered to the store file's content (and certbot's files
//! and PFX), written complete with its ACL, then the links moved to it, then old versions
//! pruned. The order is what makes a crash at any moment leave every link on a complete version.
//! A first install skips the fsyncs and joins the store's batch (`batch`).

use std::num::NonZeroU32;
use std::os::fd::AsFd;

use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;
use time::OffsetDateTime;
use zeroize::Zeroizing;

use super::acl::{self, Acl, PosixAcl, Principal};
use super::atomic::{self, FileOptions};
use super::batch;
use super::index::{Index, modified_at};
use super::names::Names;
use super::{
    CERT_FILE_MODE, CERTBOT_DIR_MODE, CERTBOT_FILES, FileAccess, InstallRequest, Installed,
    PFX_FILE, Store, StoreError,
};
use crate::certificate::CertificateBundle;

/// The mode and owner of one install's files.
pub(super) struct FileSettings {
    pub(super) mode: u32,
    pub(super) owner: Option<(u32, u32)>,
}

/// An [`InstallRequest`] without its bundle.
pub(super) struct Target<'a> {
    pub(super) vault: &'a str,
    pub(super) name: &'a str,
    pub(super) version: &'a str,
    pub(super) link_name: Option<&'a str>,
    pub(super) acls: &'a [Acl],
    pub(super) keep: NonZeroU32,
    pub(super) certbot_layout: bool,
}

/// The content of one version, rendered from a bundle.
pub(super) struct Rendered {
    /// Leaf, intermediates, root, then the key.
    pub(super) full: Zeroizing<Vec<u8>>,
    pub(super) leaf: Vec<u8>,
    pub(super) chain: Vec<u8>,
    pub(super) key: Zeroizing<Vec<u8>>,
    /// The same as a PKCS#12 file (`cert.pfx` of the certbot-style directory), when that
    /// directory is written.
    pub(super) pfx: Option<Zeroizing<Vec<u8>>>,
    pub(super) thumbprint: String,
    pub(super) not_after: OffsetDateTime,
}

impl Rendered {
    fn from_bundle(bundle: &CertificateBundle, with_pfx: bool) -> Result<Rendered, StoreError> {
        let pfx = if with_pfx {
            let mut certs = vec![bundle.leaf.der().to_vec()];
            certs.extend(bundle.chain.iter().map(|c| c.der().to_vec()));
            let der = crate::pkcs12::encode_keyvault(bundle.key.pkcs8_der(), &certs)
                .map_err(StoreError::Encode)?;
            Some(Zeroizing::new(der))
        } else {
            None
        };
        Ok(Rendered {
            full: Zeroizing::new(bundle.to_pem().as_bytes().to_vec()),
            leaf: bundle.leaf_pem().into_bytes(),
            chain: bundle.chain_pem().into_bytes(),
            key: Zeroizing::new(bundle.key_pem().as_bytes().to_vec()),
            pfx,
            thumbprint: bundle.thumbprint(),
            not_after: bundle.not_after(),
        })
    }
}

/// The principals granted read (the `acls`, and an `owner` or reading `group` of `access`, who
/// also need traverse on the store) and the mode and owner of one install's files. Every name is
/// resolved, and the mode checked, before anything is written.
pub(super) fn file_settings(
    acls: &[Acl],
    access: Option<&FileAccess>,
) -> Result<(Vec<Principal>, FileSettings), StoreError> {
    let mut principals = acls
        .iter()
        .map(Acl::resolve)
        .collect::<Result<Vec<_>, _>>()?;
    let mut file_mode = CERT_FILE_MODE;
    let mut owner = None;
    if let Some(access) = access {
        let mode = access.mode.unwrap_or(CERT_FILE_MODE);
        if mode & !0o640 != 0 || mode & 0o400 == 0 {
            return Err(StoreError::BadFileMode { mode });
        }
        file_mode = mode;
        let uid = match &access.owner {
            Some(user) => match Acl::User(user.clone()).resolve()? {
                Principal::User(uid) => Some(uid),
                Principal::Group(_) => None,
            },
            None => None,
        };
        let gid = match &access.group {
            Some(group) => match Acl::Group(group.clone()).resolve()? {
                Principal::Group(gid) => Some(gid),
                Principal::User(_) => None,
            },
            None => None,
        };
        if uid.is_some() || gid.is_some() {
            owner = Some((
                uid.unwrap_or_else(|| rustix::process::geteuid().as_raw()),
                gid.unwrap_or_else(|| rustix::process::getegid().as_raw()),
            ));
        }
        if let Some(uid) = uid.filter(|&u| u != rustix::process::geteuid().as_raw()) {
            principals.push(Principal::User(uid));
        }
        if let Some(gid) = gid.filter(|_| mode & 0o040 != 0) {
            principals.push(Principal::Group(gid));
        }
        principals.sort();
        principals.dedup();
    }
    let file = FileSettings {
        mode: file_mode,
        owner,
    };
    Ok((principals, file))
}

impl Store {
    pub(super) fn install_v3(
        &self,
        request: &InstallRequest<'_>,
        access: Option<&FileAccess>,
    ) -> Result<Installed, StoreError> {
        let rendered = Rendered::from_bundle(request.bundle, request.certbot_layout)?;
        let target = Target {
            vault: request.vault,
            name: request.name,
            version: request.version,
            link_name: request.link_name,
            acls: request.acls,
            keep: request.keep,
            certbot_layout: request.certbot_layout,
        };
        self.install_rendered_with(&target, &rendered, access)
    }

    #[cfg(test)]
    pub(super) fn install_rendered(
        &self,
        request: &Target<'_>,
        rendered: &Rendered,
    ) -> Result<Installed, StoreError> {
        self.install_rendered_with(request, rendered, None)
    }

    fn install_rendered_with(
        &self,
        request: &Target<'_>,
        rendered: &Rendered,
        access: Option<&FileAccess>,
    ) -> Result<Installed, StoreError> {
        let mut guard = self.lock_index();
        let names = Names::new(request)?;
        let (principals, file) = file_settings(request.acls, access)?;
        let result =
            self.install_indexed(&mut guard, request, rendered, &names, &principals, &file);
        if result.is_err() {
            // The index may be behind the directory now: the next change scans again.
            *guard = None;
        }
        self.restamp(&mut guard);
        result
    }

    fn install_indexed(
        &self,
        guard: &mut std::sync::MutexGuard<'_, Option<Index>>,
        request: &Target<'_>,
        rendered: &Rendered,
        names: &Names,
        principals: &[Principal],
        file: &FileSettings,
    ) -> Result<Installed, StoreError> {
        let dir = self.dir.as_fd();
        let index = self.index(guard)?;
        let certificate = names.link.as_str();

        // Refuse up front to replace anything that is not a link.
        let mut links_exist = atomic::link_exists(dir, &self.path, &names.link)?;
        if let Some(custom) = &names.custom_link {
            links_exist |= atomic::link_exists(dir, &self.path, custom)?;
        }
        if request.certbot_layout {
            atomic::ensure_link_or_absent(dir, &self.path, &names.live_link)?;
        }

        // A first install (no version and no link of this certificate yet, so no previous
        // version a crash could take away) is written without fsyncs and made durable with its
        // batch (`batch`); the certbot layout and every other install keep their fsyncs.
        let unsynced = !links_exist
            && !request.certbot_layout
            && !index.has_versions(certificate)
            && !index.has_link(&names.live_link)
            && self.begin_unsynced();
        let file_acl = (!principals.is_empty()).then(|| PosixAcl::for_file(principals).to_xattr());
        let file_options = FileOptions {
            mode: file.mode,
            owner: file.owner,
            acl: file_acl.as_deref(),
        };
        if unsynced {
            let digest = batch::digest(&rendered.full);
            atomic::write_unsynced_at(
                dir,
                &self.path,
                &names.file,
                &rendered.full,
                &file_options,
                &digest,
            )?;
        } else {
            atomic::write_atomic_at(dir, &self.path, &names.file, &rendered.full, &file_options)?;
        }
        let read_error = |name: &str| {
            let path = self.path.join(name);
            move |e: Errno| StoreError::Read {
                path,
                source: e.into(),
            }
        };
        if let Some(modified) = modified_at(dir, &names.file).map_err(read_error(&names.file))? {
            index.add_version(certificate, request.version, modified, false);
        }
        index.set_file_principals(&names.file, principals.to_vec());
        if request.certbot_layout {
            self.write_certbot_dir(&names.certbot_dir, rendered, principals, &file_options)?;
            if let Some(modified) =
                modified_at(dir, &names.certbot_dir).map_err(read_error(&names.certbot_dir))?
            {
                index.add_version(certificate, request.version, modified, true);
            }
        }
        self.update_directory_acl(index)?;

        let link = if unsynced {
            atomic::symlink_unsynced_at
        } else {
            atomic::swap_symlink_at
        };
        // The stable link moves last: it is what `current` reads, so a crash before it leaves the
        // previous version current and the next run installs this one again, moving every link;
        // a crash after it finds every other link already on this version.
        if let Some(custom) = &names.custom_link {
            link(dir, &self.path, custom, &names.file)?;
            index.set_link(custom, &names.file);
        }
        if request.certbot_layout {
            atomic::swap_symlink_at(dir, &self.path, &names.live_link, &names.certbot_dir)?;
            index.set_link(&names.live_link, &names.certbot_dir);
        } else if index.has_link(&names.live_link) {
            // The output was turned off: a `.live` link left behind would serve an old
            // certificate forever.
            self.remove_link(&names.live_link);
            index.remove_link(&names.live_link);
        }
        link(dir, &self.path, &names.link, &names.file)?;
        index.set_link(&names.link, &names.file);

        let pruned = self.prune(index, request.vault, request.name, request.keep);
        if !pruned.is_empty()
            && let Err(error) = self.update_directory_acl(index)
        {
            tracing::warn!(%error, "cannot narrow the store's ACL after pruning");
        }
        Ok(Installed {
            version: request.version.to_owned(),
            file: self.path.join(&names.file),
            link: self.path.join(&names.link),
            custom_link: names.custom_link.as_ref().map(|c| self.path.join(c)),
            live_link: request
                .certbot_layout
                .then(|| self.path.join(&names.live_link)),
            thumbprint: rendered.thumbprint.clone(),
            not_after: rendered.not_after,
            pruned,
            key_file: None,
            key_link: None,
            luma: None,
        })
    }

    /// Removes the link `name` if it is one; failures are logged.
    fn remove_link(&self, name: &str) {
        let path = self.path.join(name);
        match super::sys::statat(&self.dir, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(stat) if FileType::from_raw_mode(stat.st_mode) == FileType::Symlink => {}
            _ => return,
        }
        match super::sys::unlinkat(&self.dir, name, AtFlags::empty()) {
            Ok(()) => {
                tracing::info!(path = %path.display(), "removed a link to an output that is no longer asked for")
            }
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot remove a stale link")
            }
        }
    }

    /// Writes `<store>/<name>/` with certbot's four files. The directory is only reached through
    /// the `.live` link, which moves after all four are complete.
    fn write_certbot_dir(
        &self,
        name: &str,
        rendered: &Rendered,
        principals: &[Principal],
        file_options: &FileOptions<'_>,
    ) -> Result<(), StoreError> {
        let dir_path = self.path.join(name);
        let write_error = |step: &'static str| {
            let path = dir_path.clone();
            move |e: Errno| StoreError::Write {
                path,
                step,
                source: e.into(),
            }
        };
        // mkdir, open, close, fsync of the store; the ACL and the files count themselves.
        match super::sys::mkdirat(&self.dir, name, Mode::from_raw_mode(CERTBOT_DIR_MODE)) {
            Ok(()) | Err(Errno::EXIST) => {}
            Err(e) => return Err(write_error("create the directory")(e)),
        }
        let sub = super::sys::openat(
            &self.dir,
            name,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| match e {
            Errno::NOTDIR | Errno::LOOP => StoreError::LinkOccupied {
                path: dir_path.clone(),
            },
            e => write_error("open the directory")(e),
        })?;
        let acl = PosixAcl::for_directory(principals);
        acl::set_directory_acl(&sub, &dir_path, &acl, CERTBOT_DIR_MODE)?;

        let mut fullchain = Vec::with_capacity(rendered.leaf.len() + rendered.chain.len());
        fullchain.extend_from_slice(&rendered.leaf);
        fullchain.extend_from_slice(&rendered.chain);
        let contents: [&[u8]; 4] = [&rendered.leaf, &rendered.chain, &fullchain, &rendered.key];
        for (file, bytes) in CERTBOT_FILES.into_iter().zip(contents) {
            atomic::write_atomic_at(sub.as_fd(), &dir_path, file, bytes, file_options)?;
        }
        if let Some(pfx) = &rendered.pfx {
            atomic::write_atomic_at(sub.as_fd(), &dir_path, PFX_FILE, pfx, file_options)?;
        }
        super::sys::fsync(&self.dir).map_err(write_error("fsync the store directory"))
    }
}
