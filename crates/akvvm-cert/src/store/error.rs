//! The store's error type: one variant per way an install, a lookup or the state file can fail,
//! each with a stable machine code for the status file and metrics.

use std::io;
use std::path::PathBuf;

/// Everything that can go wrong in the store and the state file.
///
/// Every variant names the path, name or principal involved; [`StoreError::code`] gives a stable
/// code that never changes once released.
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
    /// An `acls` entry names a user that does not exist on this machine.
    #[error("acls: no user named {name:?} exists on this machine; create it or fix the name")]
    UnknownUser { name: String },
    /// An `acls` entry names a group that does not exist on this machine.
    #[error("acls: no group named {name:?} exists on this machine; create it or fix the name")]
    UnknownGroup { name: String },
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
}

impl StoreError {
    /// A stable machine code for this error, used in the status file and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            StoreError::InvalidName { .. } => "store_invalid_name",
            StoreError::OpenDir { .. } => "store_open_dir",
            StoreError::NotADirectory { .. } => "store_not_a_directory",
            StoreError::UnsafeOwner { .. } => "store_unsafe_owner",
            StoreError::Write { .. } => "store_write",
            StoreError::Link { .. } => "store_link",
            StoreError::LinkOccupied { .. } => "store_link_occupied",
            StoreError::Read { .. } => "store_read",
            StoreError::Acl { .. } => "store_acl",
            StoreError::AclUnsupported { .. } => "store_acl_unsupported",
            StoreError::UnknownUser { .. } => "store_unknown_user",
            StoreError::UnknownGroup { .. } => "store_unknown_group",
            StoreError::StateRead { .. } => "state_read",
            StoreError::StateCorrupt { .. } => "state_corrupt",
        }
    }
}
