//! Who may read the store: the `acls` setting applied to every installed version of a
//! certificate, and the store directory's ACL kept to the union of its version files' principals.
//! The ACL encoding itself is in [`acl`](super::acl).

use std::os::fd::AsFd;
use std::path::Path;

use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;

use super::acl::{self, Acl, PosixAcl, Principal};
use super::index::Index;
use super::names::check_key_vault_name;
use super::{
    CERT_FILE_MODE, CERTBOT_DIR_MODE, CERTBOT_DIR_SUFFIX, CERTBOT_FILES, STORE_DIR_MODE, Store,
    StoreError,
};

impl Store {
    /// Sets the store directory's ACL to traverse for every principal named in the ACL of any
    /// certificate file in the store (and no one else), or removes it when there is none. The
    /// principals come from the index's counts; the directory is only touched when they changed.
    pub(super) fn update_directory_acl(&self, index: &mut Index) -> Result<(), StoreError> {
        let principals = index.all_principals();
        if index.directory_principals.as_ref() == Some(&principals) {
            return Ok(());
        }
        let acl = PosixAcl::for_directory(&principals);
        acl::set_directory_acl(&self.dir, &self.path, &acl, STORE_DIR_MODE)?;
        index.directory_principals = Some(principals);
        Ok(())
    }

    /// Applies `acls` to every version of `vault.name` in the store (the files, and the
    /// certbot-style directories and their files) and recomputes the store's ACL: for a change of
    /// `acls` or `aclEnabled` while the installed version stays. An empty `acls` removes every
    /// grant. Returns how many versions were updated (0 when none is installed). In the 4.x
    /// layout: both files of every kept install.
    pub fn apply_acls(&self, vault: &str, name: &str, acls: &[Acl]) -> Result<usize, StoreError> {
        let mut guard = self.lock_index();
        check_key_vault_name("vault name", vault)?;
        check_key_vault_name("certificate name", name)?;
        let principals = acls
            .iter()
            .map(Acl::resolve)
            .collect::<Result<Vec<_>, _>>()?;
        let result = self.apply_acls_of_layout(&mut guard, vault, name, &principals);
        if result.is_err() {
            // The index may be behind the files now: the next change scans again.
            *guard = None;
        }
        self.restamp(&mut guard);
        result
    }

    pub(super) fn apply_acls_indexed(
        &self,
        guard: &mut std::sync::MutexGuard<'_, Option<Index>>,
        vault: &str,
        name: &str,
        principals: &[Principal],
    ) -> Result<usize, StoreError> {
        let index = self.index(guard)?;
        let file_acl = PosixAcl::for_file(principals);
        let dir_acl = PosixAcl::for_directory(principals);
        let certificate = format!("{vault}.{name}");
        let versions = index.versions_by_age(&certificate);
        for entry in &versions {
            let file = format!("{certificate}.{}", entry.version);
            if entry.has_file {
                set_file_acl(self.dir.as_fd(), &self.path, &file, &file_acl)?;
                index.set_file_principals(&file, principals.to_vec());
            }
            if entry.has_certbot_dir {
                let dir_name = format!("{file}{CERTBOT_DIR_SUFFIX}");
                let dir_path = self.path.join(&dir_name);
                let sub = super::sys::openat(
                    &self.dir,
                    dir_name.as_str(),
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .map_err(|e| StoreError::Read {
                    path: dir_path.clone(),
                    source: e.into(),
                })?;
                acl::set_directory_acl(&sub, &dir_path, &dir_acl, CERTBOT_DIR_MODE)?;
                for file in CERTBOT_FILES {
                    set_file_acl(sub.as_fd(), &dir_path, file, &file_acl)?;
                }
            }
        }
        self.update_directory_acl(index)?;
        Ok(versions.len())
    }
}

/// Gives the existing file `name` in `dir` exactly `acl` (no ACL, mode 0600, when it names no
/// principal). Setting an ACL replaces the previous one in one step.
pub(super) fn set_file_acl(
    dir: std::os::fd::BorrowedFd<'_>,
    dir_path: &Path,
    name: &str,
    acl: &PosixAcl,
) -> Result<(), StoreError> {
    let path = dir_path.join(name);
    // open, set or remove the ACL (and chmod), close.
    let file = super::sys::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| StoreError::Read {
        path: path.clone(),
        source: e.into(),
    })?;
    if acl.users.is_empty() && acl.groups.is_empty() {
        match super::sys::fremovexattr(&file, acl::ACL_XATTR) {
            // No ACL, or a file system without ACLs: nothing to remove.
            Ok(()) | Err(Errno::NODATA | Errno::NOTSUP) => {}
            Err(e) => return Err(acl::acl_error(&path, e)),
        }
        super::sys::fchmod(&file, Mode::from_raw_mode(CERT_FILE_MODE))
            .map_err(|e| acl::acl_error(&path, e))
    } else {
        super::sys::fsetxattr(
            &file,
            acl::ACL_XATTR,
            &acl.to_xattr(),
            rustix::fs::XattrFlags::empty(),
        )
        .map_err(|e| acl::acl_error(&path, e))
    }
}
