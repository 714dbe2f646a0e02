//! POSIX ACLs for the `acls` setting: named users and groups get read on a certificate file and
//! traverse on the store directory, nobody else gets anything.
//!
//! ACLs are written as the `system.posix_acl_access` extended attribute in the kernel's binary
//! form (`posix_acl_xattr`: a little-endian `u32` version 2, then `(u16 tag, u16 perm, u32 id)`
//! entries sorted by tag and id), so no `libacl` is needed. The owning group and "other" get no
//! permission; the mask is exactly the union of the named entries, so `ls -l` shows the mask in the
//! group bits (`-rw-r-----+`) while the owning group itself still gets nothing.

use std::collections::BTreeMap;
use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::Path;

use rustix::fs::OFlags;
use rustix::io::Errno;
use serde::{Deserialize, Serialize};

use super::StoreError;

/// The extended attribute that holds a file's access ACL.
pub const ACL_XATTR: &str = "system.posix_acl_access";

const ACL_EA_VERSION: u32 = 2;
const TAG_USER_OBJ: u16 = 0x01;
const TAG_USER: u16 = 0x02;
const TAG_GROUP_OBJ: u16 = 0x04;
const TAG_GROUP: u16 = 0x08;
const TAG_MASK: u16 = 0x10;
const TAG_OTHER: u16 = 0x20;
const UNDEFINED_ID: u32 = u32::MAX;
/// Room for a 64 KiB attribute, the most Linux stores (ext4 keeps far fewer entries).
const ACL_BUFFER_LEN: usize = 64 * 1024;

/// Read permission bit of an ACL entry.
pub const READ: u8 = 4;
/// Write permission bit of an ACL entry.
pub const WRITE: u8 = 2;
/// Execute (search, for a directory) permission bit of an ACL entry.
pub const EXECUTE: u8 = 1;

/// One entry of an observed certificate's `acls` setting: `{ "user": "www-data" }` or
/// `{ "group": "ssl-cert" }`. A name that is all digits and matches no account is taken as a
/// numeric id, as `setfacl` does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Acl {
    User(String),
    Group(String),
}

/// An [`Acl`] resolved to a numeric id on this machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Principal {
    User(u32),
    Group(u32),
}

impl Acl {
    /// Looks the user or group up (through NSS, so LDAP and SSSD accounts resolve too).
    pub fn resolve(&self) -> Result<Principal, StoreError> {
        match self {
            Acl::User(name) => uzers::get_user_by_name(name)
                .map(|user| user.uid())
                .or_else(|| numeric_id(name))
                .map(Principal::User)
                .ok_or_else(|| StoreError::UnknownUser { name: name.clone() }),
            Acl::Group(name) => uzers::get_group_by_name(name)
                .map(|group| group.gid())
                .or_else(|| numeric_id(name))
                .map(Principal::Group)
                .ok_or_else(|| StoreError::UnknownGroup { name: name.clone() }),
        }
    }
}

fn numeric_id(name: &str) -> Option<u32> {
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    name.parse().ok().filter(|&id| id != UNDEFINED_ID)
}

/// A POSIX access ACL: the owner, owning group and other entries plus named users and groups.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PosixAcl {
    pub user_obj: u8,
    pub users: BTreeMap<u32, u8>,
    pub group_obj: u8,
    pub groups: BTreeMap<u32, u8>,
    /// Absent only in a minimal ACL (no named entries).
    pub mask: Option<u8>,
    pub other: u8,
}

/// Why bytes are not the kernel's binary form of an ACL ([`PosixAcl::from_xattr`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AclParseError {
    #[error("{len} bytes is too short for an ACL header")]
    ShortHeader { len: usize },
    #[error("ACL version {version}, expected {ACL_EA_VERSION}")]
    Version { version: u32 },
    #[error("ACL body of {len} bytes is not whole entries")]
    PartialEntry { len: usize },
    #[error("unknown ACL tag {tag:#x}")]
    UnknownTag { tag: u16 },
}

impl PosixAcl {
    /// The ACL of a certificate file: the owner reads and writes, each principal reads, nobody
    /// else gets anything.
    pub fn for_file(principals: &[Principal]) -> PosixAcl {
        PosixAcl::with_named(READ | WRITE, principals, READ)
    }

    /// The ACL of the store directory: the owner has full access, each principal may traverse
    /// (not list), nobody else gets anything.
    pub fn for_directory(principals: &[Principal]) -> PosixAcl {
        PosixAcl::with_named(READ | WRITE | EXECUTE, principals, EXECUTE)
    }

    fn with_named(user_obj: u8, principals: &[Principal], perm: u8) -> PosixAcl {
        let mut acl = PosixAcl {
            user_obj,
            ..PosixAcl::default()
        };
        for principal in principals {
            match *principal {
                Principal::User(uid) => acl.users.insert(uid, perm),
                Principal::Group(gid) => acl.groups.insert(gid, perm),
            };
        }
        if !principals.is_empty() {
            acl.mask = Some(perm);
        }
        acl
    }

    /// The named users and groups of this ACL.
    pub fn principals(&self) -> Vec<Principal> {
        let users = self.users.keys().map(|&uid| Principal::User(uid));
        let groups = self.groups.keys().map(|&gid| Principal::Group(gid));
        users.chain(groups).collect()
    }

    /// The kernel's binary form, the value of `system.posix_acl_access`.
    pub fn to_xattr(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(4 + 8 * (4 + self.users.len() + self.groups.len()));
        out.extend_from_slice(&ACL_EA_VERSION.to_le_bytes());
        let mut entry = |tag: u16, perm: u8, id: u32| {
            out.extend_from_slice(&tag.to_le_bytes());
            out.extend_from_slice(&u16::from(perm).to_le_bytes());
            out.extend_from_slice(&id.to_le_bytes());
        };
        entry(TAG_USER_OBJ, self.user_obj, UNDEFINED_ID);
        for (&uid, &perm) in &self.users {
            entry(TAG_USER, perm, uid);
        }
        entry(TAG_GROUP_OBJ, self.group_obj, UNDEFINED_ID);
        for (&gid, &perm) in &self.groups {
            entry(TAG_GROUP, perm, gid);
        }
        if let Some(mask) = self.mask {
            entry(TAG_MASK, mask, UNDEFINED_ID);
        }
        entry(TAG_OTHER, self.other, UNDEFINED_ID);
        out
    }

    /// Parses the kernel's binary form.
    pub fn from_xattr(bytes: &[u8]) -> Result<PosixAcl, AclParseError> {
        let Some((header, body)) = bytes.split_first_chunk::<4>() else {
            return Err(AclParseError::ShortHeader { len: bytes.len() });
        };
        let version = u32::from_le_bytes(*header);
        if version != ACL_EA_VERSION {
            return Err(AclParseError::Version { version });
        }
        if body.len() % 8 != 0 {
            return Err(AclParseError::PartialEntry { len: body.len() });
        }
        let mut acl = PosixAcl::default();
        for chunk in body.chunks_exact(8) {
            let tag = u16::from_le_bytes([chunk[0], chunk[1]]);
            let perm = u16::from_le_bytes([chunk[2], chunk[3]]);
            let id = u32::from_le_bytes([chunk[4], chunk[5], chunk[6], chunk[7]]);
            let perm = u8::try_from(perm & 7).unwrap_or(0);
            match tag {
                TAG_USER_OBJ => acl.user_obj = perm,
                TAG_USER => {
                    acl.users.insert(id, perm);
                }
                TAG_GROUP_OBJ => acl.group_obj = perm,
                TAG_GROUP => {
                    acl.groups.insert(id, perm);
                }
                TAG_MASK => acl.mask = Some(perm),
                TAG_OTHER => acl.other = perm,
                other => return Err(AclParseError::UnknownTag { tag: other }),
            }
        }
        Ok(acl)
    }

    /// Reads the access ACL of `path` (following links); `None` when it has none beyond its mode,
    /// or when its file system has no ACL support.
    pub fn read(path: &Path) -> io::Result<Option<PosixAcl>> {
        let mut buf = vec![0u8; ACL_BUFFER_LEN];
        Self::parse_read(rustix::fs::getxattr(path, ACL_XATTR, &mut buf[..]), &buf)
    }

    /// [`PosixAcl::read`] without following `path` when it is a symbolic link (a link has no
    /// ACL of its own: `None`).
    pub fn read_nofollow(path: &Path) -> io::Result<Option<PosixAcl>> {
        let mut buf = vec![0u8; ACL_BUFFER_LEN];
        Self::parse_read(rustix::fs::lgetxattr(path, ACL_XATTR, &mut buf[..]), &buf)
    }

    /// [`PosixAcl::read`] of an open file or directory.
    pub fn read_fd<Fd: AsFd>(fd: Fd) -> io::Result<Option<PosixAcl>> {
        let mut buf = vec![0u8; ACL_BUFFER_LEN];
        Self::parse_read(super::sys::fgetxattr(fd, ACL_XATTR, &mut buf[..]), &buf)
    }

    /// The ACL of the entry `name` of the directory `dir`, never following a link (a link has no
    /// ACL of its own: `None`). The entry is opened `O_NOFOLLOW|O_NONBLOCK`, so a FIFO put there
    /// cannot hang the read.
    pub(crate) fn read_at(dir: BorrowedFd<'_>, name: &str) -> io::Result<Option<PosixAcl>> {
        let file = match super::sys::openat(
            dir,
            name,
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        ) {
            Ok(file) => file,
            // A symbolic link has no ACL of its own.
            Err(Errno::LOOP) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        Self::read_fd(&file)
    }

    fn parse_read(read: rustix::io::Result<usize>, buf: &[u8]) -> io::Result<Option<PosixAcl>> {
        match read {
            Ok(len) => PosixAcl::from_xattr(&buf[..len])
                .map(Some)
                .map_err(|error| io::Error::new(io::ErrorKind::InvalidData, error)),
            Err(Errno::NODATA) => Ok(None),
            Err(e) if e == Errno::NOTSUP || e == Errno::OPNOTSUPP => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
}

/// Maps a failed ACL call on `path` to [`StoreError::AclUnsupported`] or [`StoreError::Acl`].
pub(crate) fn acl_error(path: &Path, errno: Errno) -> StoreError {
    if errno == Errno::NOTSUP || errno == Errno::OPNOTSUPP {
        StoreError::AclUnsupported {
            path: path.to_path_buf(),
        }
    } else {
        StoreError::Acl {
            path: path.to_path_buf(),
            source: errno.into(),
        }
    }
}

/// Gives the open directory `dir` (at `path`) exactly `acl`, or, when it names no principal,
/// removes its ACL and restores mode `mode` (removing an ACL leaves the mask in the group bits).
pub(crate) fn set_directory_acl<Fd: AsFd>(
    dir: Fd,
    path: &Path,
    acl: &PosixAcl,
    mode: u32,
) -> Result<(), StoreError> {
    let mut buf = vec![0u8; ACL_BUFFER_LEN];
    let current = match super::sys::fgetxattr(&dir, ACL_XATTR, &mut buf[..]) {
        Ok(len) => PosixAcl::from_xattr(&buf[..len]).ok(),
        Err(Errno::NODATA) => None,
        Err(e) if e == Errno::NOTSUP || e == Errno::OPNOTSUPP => None,
        Err(e) => return Err(acl_error(path, e)),
    };
    if acl.users.is_empty() && acl.groups.is_empty() {
        if current.is_some() {
            match super::sys::fremovexattr(&dir, ACL_XATTR) {
                Ok(()) | Err(Errno::NODATA) => {}
                Err(e) => return Err(acl_error(path, e)),
            }
        }
        return super::sys::fchmod(&dir, rustix::fs::Mode::from_raw_mode(mode))
            .map_err(|e| acl_error(path, e));
    }
    if current.as_ref() == Some(acl) {
        return Ok(());
    }
    super::sys::fsetxattr(
        &dir,
        ACL_XATTR,
        &acl.to_xattr(),
        rustix::fs::XattrFlags::empty(),
    )
    .map_err(|e| acl_error(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_a_file_acl_in_the_kernel_format() {
        let acl = PosixAcl::for_file(&[Principal::Group(7), Principal::User(33)]);
        let bytes = acl.to_xattr();
        #[rustfmt::skip]
        let expected: Vec<u8> = vec![
            2, 0, 0, 0,
            0x01, 0, 6, 0, 0xff, 0xff, 0xff, 0xff, // USER_OBJ rw-
            0x02, 0, 4, 0, 33, 0, 0, 0,             // USER 33 r--
            0x04, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, // GROUP_OBJ ---
            0x08, 0, 4, 0, 7, 0, 0, 0,              // GROUP 7 r--
            0x10, 0, 4, 0, 0xff, 0xff, 0xff, 0xff, // MASK r--
            0x20, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, // OTHER ---
        ];
        assert_eq!(bytes, expected);
        assert_eq!(PosixAcl::from_xattr(&bytes).unwrap(), acl);
    }

    #[test]
    fn sorts_named_entries_by_id() {
        let acl = PosixAcl::for_directory(&[Principal::User(1002), Principal::User(1001)]);
        let bytes = acl.to_xattr();
        let ids: Vec<u32> = bytes[4..]
            .chunks_exact(8)
            .filter(|e| e[0] == 0x02)
            .map(|e| u32::from_le_bytes([e[4], e[5], e[6], e[7]]))
            .collect();
        assert_eq!(ids, vec![1001, 1002]);
        assert_eq!(acl.mask, Some(EXECUTE));
        assert_eq!(acl.user_obj, 7);
    }

    #[test]
    fn rejects_malformed_values() {
        assert!(PosixAcl::from_xattr(&[2, 0]).is_err());
        assert!(PosixAcl::from_xattr(&[1, 0, 0, 0]).is_err());
        assert!(PosixAcl::from_xattr(&[2, 0, 0, 0, 1]).is_err());
        assert!(PosixAcl::from_xattr(&[2, 0, 0, 0, 0x40, 0, 0, 0, 0, 0, 0, 0]).is_err());
    }

    #[test]
    fn resolves_names_and_numeric_ids() {
        assert_eq!(
            Acl::User("root".into()).resolve().unwrap(),
            Principal::User(0)
        );
        assert_eq!(
            Acl::Group("root".into()).resolve().unwrap(),
            Principal::Group(0)
        );
        assert_eq!(
            Acl::User("4321".into()).resolve().unwrap(),
            Principal::User(4321)
        );
        let error = Acl::User("no-such-user-akvvm".into())
            .resolve()
            .unwrap_err();
        assert_eq!(error.code(), "store.unknown_user");
        assert!(error.to_string().contains("no-such-user-akvvm"));
        let error = Acl::Group("no-such-group-akvvm".into())
            .resolve()
            .unwrap_err();
        assert_eq!(error.code(), "store.unknown_group");
    }

    #[test]
    fn a_file_system_without_acls_gets_its_own_error() {
        let path = Path::new("/somewhere/store");
        for errno in [Errno::OPNOTSUPP, Errno::NOTSUP] {
            let error = acl_error(path, errno);
            assert_eq!(error.code(), "store.acl_unsupported");
            assert!(error.to_string().contains("/somewhere/store"), "{error}");
            assert!(error.to_string().contains("aclEnabled"), "{error}");
        }
        assert_eq!(acl_error(path, Errno::PERM).code(), "store.acl");
    }

    #[test]
    fn the_settings_shape_deserializes() {
        let acls: Vec<Acl> =
            serde_json::from_str(r#"[{"user":"www-data"},{"group":"ssl-cert"}]"#).unwrap();
        assert_eq!(
            acls,
            vec![Acl::User("www-data".into()), Acl::Group("ssl-cert".into())]
        );
    }
}
