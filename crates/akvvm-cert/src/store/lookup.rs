//! Reading back what is installed: the version a stable link points to, and the whole install
//! (thumbprint, expiry, custom and `.live` links) decoded from the store, which rebuilds a lost
//! or corrupt state file without writing anything.

use std::io::Read;
use std::os::fd::{AsFd, BorrowedFd};

use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;
use zeroize::Zeroizing;

use super::names::{check_key_vault_name, check_link_name};
use super::{CERTBOT_DIR_SUFFIX, Current, Installed, LIVE_LINK_SUFFIX, Store, StoreError};

impl Store {
    pub(super) fn installed_v3(
        &self,
        vault: &str,
        name: &str,
        link_name: Option<&str>,
    ) -> Result<Option<Installed>, StoreError> {
        let Some(current) = self.current(vault, name)? else {
            return Ok(None);
        };
        let file_name = format!("{vault}.{name}.{}", current.version);
        let text =
            read_file_at(self.dir.as_fd(), &file_name).map_err(|source| StoreError::Read {
                path: current.file.clone(),
                source,
            })?;
        let bundle = match crate::certificate::decode_pem(&text) {
            Ok(bundle) => bundle,
            Err(error) => {
                tracing::warn!(
                    path = %current.file.display(),
                    code = error.code(),
                    %error,
                    "the installed certificate no longer decodes; it will be installed again"
                );
                return Ok(None);
            }
        };
        let points_here = |link: &str, target: &str| {
            super::sys::readlinkat(&self.dir, link, Vec::new())
                .ok()
                .is_some_and(|t| t.as_bytes() == target.as_bytes())
        };
        let custom_link = link_name
            .filter(|link| check_link_name(link).is_ok() && points_here(link, &file_name))
            .map(|link| self.path.join(link));
        let live = format!("{vault}.{name}.{LIVE_LINK_SUFFIX}");
        let live_link = points_here(&live, &format!("{file_name}{CERTBOT_DIR_SUFFIX}"))
            .then(|| self.path.join(&live));
        Ok(Some(Installed {
            version: current.version,
            file: current.file,
            link: current.link,
            custom_link,
            live_link,
            thumbprint: bundle.thumbprint(),
            not_after: bundle.not_after(),
            pruned: Vec::new(),
            key_file: None,
            key_link: None,
            luma: None,
        }))
    }

    pub(super) fn current_v3(
        &self,
        vault: &str,
        name: &str,
    ) -> Result<Option<Current>, StoreError> {
        check_key_vault_name("vault name", vault)?;
        check_key_vault_name("certificate name", name)?;
        let link = format!("{vault}.{name}");
        let link_path = self.path.join(&link);
        // readlink, then stat of its target.
        let target = match super::sys::readlinkat(&self.dir, link.as_str(), Vec::new()) {
            Ok(target) => target,
            Err(Errno::NOENT) => return Ok(None),
            Err(Errno::INVAL) => {
                return Err(StoreError::LinkOccupied { path: link_path });
            }
            Err(e) => {
                return Err(StoreError::Read {
                    path: link_path,
                    source: e.into(),
                });
            }
        };
        let Ok(target) = target.into_string() else {
            return Ok(None);
        };
        let Some(version) = target.strip_prefix(&format!("{link}.")) else {
            tracing::warn!(link = %link_path.display(), %target, "the link points outside akvvm's layout");
            return Ok(None);
        };
        if check_key_vault_name("version", version).is_err() {
            return Ok(None);
        }
        match super::sys::statat(&self.dir, target.as_str(), AtFlags::SYMLINK_NOFOLLOW) {
            Ok(stat) if FileType::from_raw_mode(stat.st_mode) == FileType::RegularFile => {
                Ok(Some(Current {
                    version: version.to_owned(),
                    file: self.path.join(&target),
                    link: link_path,
                }))
            }
            Ok(_) | Err(Errno::NOENT) => {
                tracing::warn!(link = %link_path.display(), %target, "the link points to a missing file");
                Ok(None)
            }
            Err(e) => Err(StoreError::Read {
                path: self.path.join(&target),
                source: e.into(),
            }),
        }
    }
}

/// Most a version file can hold: a certificate chain and its key are a few kilobytes.
const MAX_VERSION_FILE: u64 = 1 << 20;

/// The text of the regular file `name` in the store `dir`, opened under the store's handle with
/// `O_NOFOLLOW|O_NONBLOCK` (a link or a FIFO swapped in is refused, not followed or waited on).
pub(super) fn read_file_at(dir: BorrowedFd<'_>, name: &str) -> std::io::Result<Zeroizing<String>> {
    let fd = super::sys::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let stat = super::sys::fstat(&fd)?;
    if FileType::from_raw_mode(stat.st_mode) != FileType::RegularFile {
        return Err(std::io::Error::other("not a regular file"));
    }
    // Sized up front: a String that grows leaves copies of the key behind, unzeroed.
    let capacity = usize::try_from(stat.st_size.clamp(0, MAX_VERSION_FILE as i64)).unwrap_or(0);
    let mut text = Zeroizing::new(String::with_capacity(capacity + 1));
    super::sys::read_to_string(
        &mut std::fs::File::from(fd).take(MAX_VERSION_FILE),
        &mut text,
    )?;
    Ok(text)
}
