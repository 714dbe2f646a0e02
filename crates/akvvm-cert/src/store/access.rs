//! Who may read the store: the `acls` setting applied to every installed version of a
//! certificate, and the store directory's ACL kept to the union of its version files' principals.
//! The ACL encoding itself is in [`acl`](super::acl).

use std::collections::BTreeSet;
use std::os::fd::AsFd;
use std::path::Path;

use rustix::fs::{FileType, Mode, OFlags};
use rustix::io::Errno;

use super::acl::{self, Acl, PosixAcl};
use super::atomic;
use super::names::{check_key_vault_name, is_version_file_name};
use super::{
    CERT_FILE_MODE, CERTBOT_DIR_MODE, CERTBOT_DIR_SUFFIX, CERTBOT_FILES, STORE_DIR_MODE, Store,
    StoreError,
};

impl Store {
    /// Sets the store directory's ACL to traverse for every principal named in the ACL of any
    /// certificate file in the store (and no one else), or removes it when there is none.
    pub(super) fn update_directory_acl(&self) -> Result<(), StoreError> {
        let mut principals = BTreeSet::new();
        for (name, file_type) in atomic::list_dir(self.dir.as_fd(), &self.path)? {
            // Only akvvm's own version files count: another file's ACL widens nothing.
            if file_type != FileType::RegularFile || !is_version_file_name(&name) {
                continue;
            }
            let path = self.path.join(&name);
            match PosixAcl::read(&path) {
                Ok(Some(acl)) => principals.extend(acl.principals()),
                Ok(None) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => return Err(StoreError::Read { path, source }),
            }
        }
        let principals: Vec<_> = principals.into_iter().collect();
        let acl = PosixAcl::for_directory(&principals);
        acl::set_directory_acl(&self.dir, &self.path, &acl, STORE_DIR_MODE)
    }

    /// Applies `acls` to every version of `vault.name` in the store (the files, and the
    /// certbot-style directories and their files) and recomputes the store's ACL: for a change of
    /// `acls` or `aclEnabled` while the installed version stays. An empty `acls` removes every
    /// grant. Returns how many versions were updated (0 when none is installed).
    pub fn apply_acls(&self, vault: &str, name: &str, acls: &[Acl]) -> Result<usize, StoreError> {
        let _guard = self
            .lock
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        check_key_vault_name("vault name", vault)?;
        check_key_vault_name("certificate name", name)?;
        let principals = acls
            .iter()
            .map(Acl::resolve)
            .collect::<Result<Vec<_>, _>>()?;
        let file_acl = PosixAcl::for_file(&principals);
        let dir_acl = PosixAcl::for_directory(&principals);
        let versions = self.versions_by_age(vault, name)?;
        for entry in &versions {
            let file = format!("{vault}.{name}.{}", entry.version);
            if entry.has_file {
                set_file_acl(self.dir.as_fd(), &self.path, &file, &file_acl)?;
            }
            if entry.has_certbot_dir {
                let dir_name = format!("{file}{CERTBOT_DIR_SUFFIX}");
                let dir_path = self.path.join(&dir_name);
                let sub = rustix::fs::openat(
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
        self.update_directory_acl()?;
        Ok(versions.len())
    }
}

/// Gives the existing file `name` in `dir` exactly `acl` (no ACL, mode 0600, when it names no
/// principal). Setting an ACL replaces the previous one in one step.
fn set_file_acl(
    dir: std::os::fd::BorrowedFd<'_>,
    dir_path: &Path,
    name: &str,
    acl: &PosixAcl,
) -> Result<(), StoreError> {
    let path = dir_path.join(name);
    let file = rustix::fs::openat(
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
        match rustix::fs::fremovexattr(&file, acl::ACL_XATTR) {
            // No ACL, or a file system without ACLs: nothing to remove.
            Ok(()) | Err(Errno::NODATA | Errno::NOTSUP) => {}
            Err(e) => return Err(acl::acl_error(&path, e)),
        }
        rustix::fs::fchmod(&file, Mode::from_raw_mode(CERT_FILE_MODE))
            .map_err(|e| acl::acl_error(&path, e))
    } else {
        rustix::fs::fsetxattr(
            &file,
            acl::ACL_XATTR,
            &acl.to_xattr(),
            rustix::fs::XattrFlags::empty(),
        )
        .map_err(|e| acl::acl_error(&path, e))
    }
}
