//! The store's error type: one variant per way an install, a lookup or the state file can fail,
//! each with a stable machine code for the status file and metrics.

use std::io;
use std::path::PathBuf;

/// Everything that can go wrong in the store and the state file.
///
/// Every variant names the path, name or principal involved; [`StoreError::code`] gives a stable
/// code (`store.*`) that never changes once released.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A vault, certificate, version or link name that cannot be used as a file name.
    #[error(
        "invalid {what} {value:?}: {reason}; use only letters, digits and '-' (Key Vault names), \
         or a plain file name for customSymbolicLinkName"
    )]
    InvalidName {
        what: &'static str,
        value: String,
        reason: &'static str,
    },
    /// The store directory could not be created or opened.
    #[error("cannot open the certificate store directory {}: {source}", path.display())]
    OpenDir { path: PathBuf, source: io::Error },
    /// The store path exists but is not a directory.
    #[error(
        "the certificate store {} is not a directory; point certificateStoreLocation at a directory",
        path.display()
    )]
    NotADirectory { path: PathBuf },
    /// The store directory belongs to another user, who could swap the certificates under us.
    #[error(
        "the certificate store {} belongs to uid {owner}, not to uid {expected} that runs akvvm; \
         chown it to uid {expected} or choose another certificateStoreLocation",
        path.display()
    )]
    UnsafeOwner {
        path: PathBuf,
        owner: u32,
        expected: u32,
    },
    /// `certificateStoreLocation` names a system directory (see
    /// [`SYSTEM_DIRECTORIES`](super::path::SYSTEM_DIRECTORIES)), which akvvm never takes over.
    #[error(
        "certificateStoreLocation {} is {why}; akvvm will not take it over (it would narrow its \
         mode to 0700 and mix certificates with the system's): use a directory of its own, such \
         as {}",
        path.display(),
        super::path::SUGGESTED_STORE
    )]
    SystemDirectory { path: PathBuf, why: &'static str },
    /// A component of the store path (or the store directory itself) is a symbolic link.
    #[error(
        "{} on the way to the certificate store {} is a symbolic link; akvvm follows no link to \
         its store: point certificateStoreLocation at the real directory",
        component.display(),
        path.display()
    )]
    SymlinkInPath { path: PathBuf, component: PathBuf },
    /// A parent of the store belongs to another user or others may write it: they could swap the
    /// store directory under akvvm.
    #[error(
        "{} on the way to the certificate store {} is owned by uid {owner} with mode {mode:04o}; \
         a directory above the store must belong to root (or the user running akvvm) and not be \
         writable by group or others (a root-owned sticky directory such as /tmp aside): \
         chown root and chmod go-w it, or choose another certificateStoreLocation",
        component.display(),
        path.display()
    )]
    UnsafePath {
        path: PathBuf,
        component: PathBuf,
        owner: u32,
        mode: u32,
    },
    /// Writing a file failed; `step` says which one (create, chown, write, fsync, rename...).
    #[error("failed to write {} ({step}): {source}", path.display())]
    Write {
        path: PathBuf,
        step: &'static str,
        source: io::Error,
    },
    /// Creating or swapping a symbolic link failed.
    #[error("failed to point the link {} at {target}: {source}", path.display())]
    Link {
        path: PathBuf,
        target: String,
        source: io::Error,
    },
    /// A link path is taken by something that is not a symbolic link; akvvm never replaces it.
    #[error(
        "{} exists and is not a symbolic link; akvvm will not replace it: move it away or choose \
         another customSymbolicLinkName",
        path.display()
    )]
    LinkOccupied { path: PathBuf },
    /// Reading the store (a directory listing, a link, a file) failed.
    #[error("failed to read {}: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },
    /// Setting a POSIX ACL failed.
    #[error("failed to set the POSIX ACL of {}: {source}", path.display())]
    Acl { path: PathBuf, source: io::Error },
    /// The file system under the store has no POSIX ACL support.
    #[error(
        "the file system under {} does not support POSIX ACLs; mount it with the 'acl' option, \
         move certificateStoreLocation, or set aclEnabled to false",
        path.display()
    )]
    AclUnsupported { path: PathBuf },
    /// An `acls` entry or an `owner` names a user that does not exist on this machine.
    #[error(
        "no user named {name:?} exists on this machine (named by this certificate's acls or \
         owner); create it or fix the name"
    )]
    UnknownUser { name: String },
    /// An `acls` entry or a `group` names a group that does not exist on this machine.
    #[error(
        "no group named {name:?} exists on this machine (named by this certificate's acls or \
         group); create it or fix the name"
    )]
    UnknownGroup { name: String },
    /// A certificate's `mode` grants more than `0640` or takes the owner's read away.
    #[error(
        "mode {mode:04o} is not allowed for a certificate file (it holds the private key): use \
         0600, 0640, 0400 or 0440; others may never read it"
    )]
    BadFileMode { mode: u32 },
    /// The state file exists but could not be read.
    #[error("failed to read the state file {}: {source}", path.display())]
    StateRead { path: PathBuf, source: io::Error },
    /// The state file is not valid JSON of the expected shape.
    #[error(
        "the state file {} is corrupt ({message}, line {line} column {column}); akvvm rebuilds it \
         from the store, or delete it",
        path.display()
    )]
    StateCorrupt {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    /// The certbot-style `cert.pfx` could not be built from the decoded certificate (its code is
    /// the certificate error's own).
    #[error("cannot build cert.pfx for the certbot-style directory: {0}")]
    Encode(#[source] crate::CertError),
}

crate::error_codes! {
    StoreError {
        StoreError::InvalidName { .. } => "store.invalid_name",
        StoreError::OpenDir { .. } => "store.open_dir",
        StoreError::NotADirectory { .. } => "store.not_a_directory",
        StoreError::UnsafeOwner { .. } => "store.unsafe_owner",
        StoreError::SystemDirectory { .. } => "store.system_directory",
        StoreError::SymlinkInPath { .. } => "store.symlink_in_path",
        StoreError::UnsafePath { .. } => "store.unsafe_path",
        StoreError::Write { .. } => "store.write",
        StoreError::Link { .. } => "store.link",
        StoreError::LinkOccupied { .. } => "store.link_occupied",
        StoreError::Read { .. } => "store.read",
        StoreError::Acl { .. } => "store.acl",
        StoreError::AclUnsupported { .. } => "store.acl_unsupported",
        StoreError::UnknownUser { .. } => "store.unknown_user",
        StoreError::UnknownGroup { .. } => "store.unknown_group",
        StoreError::BadFileMode { .. } => "store.bad_file_mode",
        StoreError::StateRead { .. } => "store.state_read",
        StoreError::StateCorrupt { .. } => "store.state_corrupt",
    }
    passes through {
        StoreError::Encode(inner) => inner,
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::StoreError;

    /// One of every variant; the store's tests produce each from a real failure.
    fn all() -> Vec<StoreError> {
        let path = || PathBuf::from("/store/v.c.1");
        let io = || std::io::Error::other("x");
        vec![
            StoreError::InvalidName {
                what: "version",
                value: "a/b".into(),
                reason: "x",
            },
            StoreError::OpenDir {
                path: path(),
                source: io(),
            },
            StoreError::NotADirectory { path: path() },
            StoreError::UnsafeOwner {
                path: path(),
                owner: 1,
                expected: 0,
            },
            StoreError::SystemDirectory {
                path: path(),
                why: "x",
            },
            StoreError::SymlinkInPath {
                path: path(),
                component: path(),
            },
            StoreError::UnsafePath {
                path: path(),
                component: path(),
                owner: 1,
                mode: 0o777,
            },
            StoreError::Write {
                path: path(),
                step: "write",
                source: io(),
            },
            StoreError::Link {
                path: path(),
                target: "t".into(),
                source: io(),
            },
            StoreError::LinkOccupied { path: path() },
            StoreError::Read {
                path: path(),
                source: io(),
            },
            StoreError::Acl {
                path: path(),
                source: io(),
            },
            StoreError::AclUnsupported { path: path() },
            StoreError::UnknownUser { name: "u".into() },
            StoreError::UnknownGroup { name: "g".into() },
            StoreError::BadFileMode { mode: 0o644 },
            StoreError::StateRead {
                path: path(),
                source: io(),
            },
            StoreError::StateCorrupt {
                path: path(),
                line: 1,
                column: 1,
                message: "x".into(),
            },
        ]
    }

    #[test]
    fn codes_are_distinct_well_formed_and_stable() {
        let codes: Vec<&str> = all().iter().map(StoreError::code).collect();
        assert_eq!(codes, StoreError::CODES);
        let mut unique = codes.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), codes.len());
        assert!(codes.iter().all(|c| crate::codes::is_well_formed(c)));
        assert!(codes.iter().all(|c| c.starts_with("store.")));
    }
}
