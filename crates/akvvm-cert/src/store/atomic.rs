//! Crash-safe file writes and link swaps.
//!
//! [`write_atomic`] is the one way akvvm writes a file: a temp file named
//! `.akvvm-tmp-<name>.<random>` is created in the destination directory (`O_EXCL|O_NOFOLLOW`),
//! given its mode, owner and ACL before any byte goes in, written, `fsync`ed, renamed over the
//! destination, and the directory is `fsync`ed. A reader sees the old file or the new one, never a
//! part of one; a crash leaves at most a temp file, which `remove_temp_files` deletes on the next
//! start. `swap_symlink_at` moves a symbolic link the same way: the new link is made under a temp
//! name and renamed over the old one. `write_unsynced_at` and `symlink_unsynced_at` do the same
//! without the `fsync`s, for the first installs of a batch (see the store's `batch` module: they
//! become durable with its one `syncfs`).

use std::ffi::CStr;
use std::fs::File;
use std::hash::{BuildHasher, Hasher};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, XattrFlags};
use rustix::io::Errno;

use super::StoreError;
use super::acl::{ACL_XATTR, acl_error};

/// The extended attribute of a version file written without `fsync` (a first install in the
/// store's batch): the SHA-256 of its content, which the start-up repair checks.
pub const DIGEST_XATTR: &str = "user.akvvm.sha256";

/// The prefix of every temp file or link akvvm makes; anything so named is debris of an
/// interrupted write and is removed on start.
pub const TEMP_PREFIX: &str = ".akvvm-tmp-";

/// How many fresh temp names to try before giving up (each collision is astronomically unlikely).
const TEMP_NAME_ATTEMPTS: u32 = 16;

/// Writes `bytes` to `path` atomically: after a crash at any moment `path` holds either its old
/// content or `bytes`, never a mix or a truncated file.
///
/// The file gets exactly `mode` (the umask does not apply) and, when `owner` is `(uid, gid)`, that
/// owner, both before any byte is written. `path` itself is never followed if it is a symbolic
/// link: the link is replaced by the file.
pub fn write_atomic(
    path: &Path,
    bytes: &[u8],
    mode: u32,
    owner: Option<(u32, u32)>,
) -> Result<(), StoreError> {
    let (dir_path, name) = split_path(path)?;
    let dir = open_dir(dir_path).map_err(|source| StoreError::Write {
        path: path.to_path_buf(),
        step: "open the directory",
        source,
    })?;
    let options = FileOptions {
        mode,
        owner,
        acl: None,
    };
    write_atomic_at(dir.as_fd(), dir_path, name, bytes, &options)
}

/// What a new file gets before its content goes in.
pub(crate) struct FileOptions<'a> {
    pub mode: u32,
    pub owner: Option<(u32, u32)>,
    /// A `system.posix_acl_access` value (see [`super::acl::PosixAcl::to_xattr`]).
    pub acl: Option<&'a [u8]>,
}

/// [`write_atomic`] for the entry `name` of the open directory `dir` (whose path, for messages,
/// is `dir_path`).
pub(crate) fn write_atomic_at(
    dir: BorrowedFd<'_>,
    dir_path: &Path,
    name: &str,
    bytes: &[u8],
    options: &FileOptions<'_>,
) -> Result<(), StoreError> {
    write_at(dir, dir_path, name, bytes, options, None)
}

/// [`write_atomic_at`] without its two `fsync`s, for a first install in a batch (the store's
/// `batch` module): the same temp file, mode, owner and ACL before any byte, then `digest` (the
/// SHA-256 of `bytes`) in the [`DIGEST_XATTR`] extended attribute,
/// the bytes, and the rename. A reader sees the whole file or none of it; only its durability
/// waits for the batch's `syncfs`.
pub(crate) fn write_unsynced_at(
    dir: BorrowedFd<'_>,
    dir_path: &Path,
    name: &str,
    bytes: &[u8],
    options: &FileOptions<'_>,
    digest: &[u8; 32],
) -> Result<(), StoreError> {
    write_at(dir, dir_path, name, bytes, options, Some(digest))
}

/// [`write_atomic_at`] (`digest` `None`) or [`write_unsynced_at`].
fn write_at(
    dir: BorrowedFd<'_>,
    dir_path: &Path,
    name: &str,
    bytes: &[u8],
    options: &FileOptions<'_>,
    digest: Option<&[u8; 32]>,
) -> Result<(), StoreError> {
    let synced = digest.is_none();
    let path = dir_path.join(name);
    let write_error = |step: &'static str| {
        let path = path.clone();
        move |source: io::Error| StoreError::Write { path, step, source }
    };
    let mode = Mode::from_raw_mode(options.mode);
    // open, fchmod, write, close, rename, and either the two fsyncs (of the file and of the
    // directory) or the digest; fchown and the ACL below.
    let (temp_name, fd) = create_temp(name, |temp| {
        super::sys::openat(
            dir,
            temp,
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            mode,
        )
    })
    .map_err(write_error("create the temp file"))?;

    let result = (|| {
        // The umask may have narrowed the mode given to open; set it exactly.
        super::sys::fchmod(&fd, mode).map_err(|e| write_error("set the mode")(e.into()))?;
        if let Some((uid, gid)) = options.owner {
            super::sys::fchown(
                &fd,
                Some(rustix::fs::Uid::from_raw(uid)),
                Some(rustix::fs::Gid::from_raw(gid)),
            )
            .map_err(|e| write_error("set the owner")(e.into()))?;
        }
        if let Some(acl) = options.acl {
            super::sys::fsetxattr(&fd, ACL_XATTR, acl, XattrFlags::empty())
                .map_err(|e| acl_error(&path, e))?;
        }
        if let Some(digest) = digest {
            super::sys::fsetxattr(&fd, DIGEST_XATTR, digest, XattrFlags::empty())
                .map_err(|e| write_error("set the digest")(e.into()))?;
        }
        let mut file = File::from(fd);
        super::sys::write_all(&mut file, bytes).map_err(write_error("write"))?;
        if synced {
            super::sys::sync_all(&file).map_err(write_error("fsync the file"))?;
        }
        drop(file);
        super::sys::renameat(dir, temp_name.as_str(), dir, name)
            .map_err(|e| write_error("rename the temp file over it")(e.into()))?;
        Ok(())
    })();
    if let Err(error) = result {
        let _ = super::sys::unlinkat(dir, temp_name.as_str(), AtFlags::empty());
        return Err(error);
    }
    if !synced {
        return Ok(());
    }
    super::sys::fsync(dir).map_err(|e| write_error("fsync the directory")(e.into()))
}

/// Points the link `link_name` in `dir` at `target` (a name relative to `dir`), atomically: the
/// new link is created under a temp name and renamed over the old one, then the directory is
/// `fsync`ed. Refuses to replace anything that is not a symbolic link.
pub(crate) fn swap_symlink_at(
    dir: BorrowedFd<'_>,
    dir_path: &Path,
    link_name: &str,
    target: &str,
) -> Result<(), StoreError> {
    link_at(dir, dir_path, link_name, target, true)
}

/// [`swap_symlink_at`] without the directory `fsync`, for a first install in a batch (the
/// store's `batch` module): the link becomes durable with the batch's `syncfs`.
pub(crate) fn symlink_unsynced_at(
    dir: BorrowedFd<'_>,
    dir_path: &Path,
    link_name: &str,
    target: &str,
) -> Result<(), StoreError> {
    link_at(dir, dir_path, link_name, target, false)
}

fn link_at(
    dir: BorrowedFd<'_>,
    dir_path: &Path,
    link_name: &str,
    target: &str,
    synced: bool,
) -> Result<(), StoreError> {
    let path = dir_path.join(link_name);
    ensure_link_or_absent(dir, dir_path, link_name)?;
    // symlink, rename, and the fsync of the directory.
    let link_error = |source: io::Error| StoreError::Link {
        path: path.clone(),
        target: target.to_owned(),
        source,
    };
    let (temp_name, ()) = create_temp(link_name, |temp| super::sys::symlinkat(target, dir, temp))
        .map_err(link_error)?;
    if let Err(e) = super::sys::renameat(dir, temp_name.as_str(), dir, link_name) {
        let _ = super::sys::unlinkat(dir, temp_name.as_str(), AtFlags::empty());
        return Err(link_error(e.into()));
    }
    if !synced {
        return Ok(());
    }
    super::sys::fsync(dir).map_err(|e| link_error(e.into()))
}

/// Fails with [`StoreError::LinkOccupied`] when `name` exists in `dir` and is not a symbolic link.
pub(crate) fn ensure_link_or_absent(
    dir: BorrowedFd<'_>,
    dir_path: &Path,
    name: &str,
) -> Result<(), StoreError> {
    link_exists(dir, dir_path, name).map(|_| ())
}

/// Whether `name` exists in `dir` as a symbolic link (`false`: absent); fails like
/// [`ensure_link_or_absent`] when it is something else.
pub(crate) fn link_exists(
    dir: BorrowedFd<'_>,
    dir_path: &Path,
    name: &str,
) -> Result<bool, StoreError> {
    match super::sys::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(stat) if FileType::from_raw_mode(stat.st_mode) == FileType::Symlink => Ok(true),
        Ok(_) => Err(StoreError::LinkOccupied {
            path: dir_path.join(name),
        }),
        Err(Errno::NOENT) => Ok(false),
        Err(e) => Err(StoreError::Read {
            path: dir_path.join(name),
            source: e.into(),
        }),
    }
}

/// Removes the temp files an interrupted [`write_atomic`] of `path` left beside it
/// (`.akvvm-tmp-<name>.<16 hex digits>`), and returns how many there were. Other files are never touched.
pub fn remove_stale_temp_files(path: &Path) -> Result<usize, StoreError> {
    let (dir_path, name) = split_path(path)?;
    let dir = match open_dir(dir_path) {
        Ok(dir) => dir,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(source) => {
            return Err(StoreError::Read {
                path: dir_path.to_path_buf(),
                source,
            });
        }
    };
    let prefix = format!("{TEMP_PREFIX}{name}.");
    let mut removed = 0;
    for (entry, file_type) in list_dir(dir.as_fd(), dir_path)? {
        let ours = entry.strip_prefix(&prefix).is_some_and(|suffix| {
            suffix.len() == 16 && suffix.bytes().all(|b| b.is_ascii_hexdigit())
        });
        if file_type != FileType::RegularFile || !ours {
            continue;
        }
        match super::sys::unlinkat(&dir, entry.as_str(), AtFlags::empty()) {
            Ok(()) => removed += 1,
            Err(Errno::NOENT) => {}
            Err(e) => {
                return Err(StoreError::Write {
                    path: dir_path.join(&entry),
                    step: "remove a leftover temp file",
                    source: e.into(),
                });
            }
        }
    }
    Ok(removed)
}

/// Removes every entry of `dir` whose name starts with [`TEMP_PREFIX`] (files, links and
/// directories left by an interrupted write) and returns their names.
pub(crate) fn remove_temp_files(
    dir: BorrowedFd<'_>,
    dir_path: &Path,
) -> Result<Vec<String>, StoreError> {
    remove_temp_files_if(dir, dir_path, |_| true)
}

/// [`remove_temp_files`] of the temp entries for which `ours(name)` is true (the store's
/// layouts each remove only the debris of their own names).
pub(crate) fn remove_temp_files_if(
    dir: BorrowedFd<'_>,
    dir_path: &Path,
    ours: impl Fn(&str) -> bool,
) -> Result<Vec<String>, StoreError> {
    let mut removed = Vec::new();
    for (name, file_type) in list_dir(dir, dir_path)? {
        if !name.starts_with(TEMP_PREFIX) || !ours(&name) {
            continue;
        }
        let path = dir_path.join(&name);
        let result = if file_type == FileType::Directory {
            remove_tree_at(dir, &name)
        } else {
            super::sys::unlinkat(dir, name.as_str(), AtFlags::empty()).map_err(io::Error::from)
        };
        match result {
            Ok(()) => removed.push(name),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(StoreError::Write {
                    path,
                    step: "remove a leftover temp file",
                    source,
                });
            }
        }
    }
    if !removed.is_empty() {
        super::sys::fsync(dir).map_err(|e| StoreError::Write {
            path: dir_path.to_path_buf(),
            step: "fsync the directory",
            source: e.into(),
        })?;
    }
    Ok(removed)
}

/// How deep [`remove_tree_at`] goes: akvvm's layout is one level deep; anything deeper was not
/// made by akvvm and is left (with an error) rather than risk the stack.
const MAX_REMOVE_DEPTH: usize = 16;

/// Removes the entry `name` of `dir` and, when it is a directory, everything under it, relative
/// to the open handles only: each directory is opened `O_DIRECTORY|O_NOFOLLOW` under its parent's
/// handle and its entries are removed with `unlinkat`, so a symbolic link anywhere (the entry
/// itself, or one swapped in mid-way) is removed as a link and never followed.
pub(crate) fn remove_tree_at(dir: BorrowedFd<'_>, name: &str) -> io::Result<()> {
    remove_tree_depth(dir, name, 0)
}

fn remove_tree_depth(dir: BorrowedFd<'_>, name: &str, depth: usize) -> io::Result<()> {
    let sub = match super::sys::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    ) {
        Ok(sub) => sub,
        // A link, a file or a FIFO: remove the entry itself.
        Err(Errno::LOOP | Errno::NOTDIR) => {
            return super::sys::unlinkat(dir, name, AtFlags::empty()).map_err(io::Error::from);
        }
        Err(e) => return Err(e.into()),
    };
    if depth >= MAX_REMOVE_DEPTH {
        return Err(io::Error::other(format!(
            "more than {MAX_REMOVE_DEPTH} directories deep; akvvm did not make this"
        )));
    }
    let entries =
        list_dir(sub.as_fd(), Path::new(name)).map_err(|e| io::Error::other(e.to_string()))?;
    for (entry, file_type) in entries {
        if file_type == FileType::Directory {
            remove_tree_depth(sub.as_fd(), &entry, depth + 1)?;
        } else {
            match super::sys::unlinkat(&sub, entry.as_str(), AtFlags::empty()) {
                Ok(()) | Err(Errno::NOENT) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    drop(sub);
    super::sys::unlinkat(dir, name, AtFlags::REMOVEDIR).map_err(io::Error::from)
}

/// The entries of `dir` (without `.` and `..`), with their types. Names that are not UTF-8 are
/// skipped: akvvm never creates such names.
pub(crate) fn list_dir(
    dir: BorrowedFd<'_>,
    dir_path: &Path,
) -> Result<Vec<(String, FileType)>, StoreError> {
    let read_error = |e: Errno| StoreError::Read {
        path: dir_path.to_path_buf(),
        source: e.into(),
    };
    let entries = super::sys::read_dir(dir).map_err(read_error)?;
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(read_error)?;
        let Some(name) = utf8_name(entry.file_name()) else {
            continue;
        };
        if name == "." || name == ".." {
            continue;
        }
        let mut file_type = entry.file_type();
        if file_type == FileType::Unknown {
            // Some file systems do not fill d_type.
            file_type = match super::sys::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
                Ok(stat) => FileType::from_raw_mode(stat.st_mode),
                Err(Errno::NOENT) => continue,
                Err(e) => return Err(read_error(e)),
            };
        }
        names.push((name.to_owned(), file_type));
    }
    Ok(names)
}

fn utf8_name(name: &CStr) -> Option<&str> {
    name.to_str().ok()
}

/// Opens a directory for `*at` calls and `fsync`.
pub(crate) fn open_dir(path: &Path) -> io::Result<OwnedFd> {
    rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(io::Error::from)
}

/// Splits `path` into its directory and its file name.
fn split_path(path: &Path) -> Result<(&Path, &str), StoreError> {
    let name = path
        .file_name()
        .and_then(|name| name.to_str())
        .ok_or_else(|| StoreError::InvalidName {
            what: "file path",
            value: path.display().to_string(),
            reason: "it does not end in a UTF-8 file name",
        })?;
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    Ok((dir, name))
}

/// Calls `create` with fresh temp names for `name` until one does not exist yet.
fn create_temp<T>(
    name: &str,
    mut create: impl FnMut(&str) -> rustix::io::Result<T>,
) -> io::Result<(String, T)> {
    let mut last = Errno::EXIST;
    for _ in 0..TEMP_NAME_ATTEMPTS {
        let temp = temp_name(name);
        match create(&temp) {
            Ok(value) => return Ok((temp, value)),
            Err(Errno::EXIST) => last = Errno::EXIST,
            Err(e) => return Err(e.into()),
        }
    }
    Err(last.into())
}

/// `.akvvm-tmp-<name>.<16 random hex digits>`.
pub(crate) fn temp_name(name: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    hasher.write_u32(std::process::id());
    if let Ok(now) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        hasher.write_u128(now.as_nanos());
    }
    format!("{TEMP_PREFIX}{name}.{:016x}", hasher.finish())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    #[test]
    fn writes_the_content_with_the_exact_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("file");
        write_atomic(&path, b"first", 0o640, None).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"first");
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(meta.permissions().mode() & 0o7777, 0o640);

        write_atomic(&path, b"second", 0o600, None).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"second");
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(meta.permissions().mode() & 0o7777, 0o600);
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temp file may remain"
        );
    }

    #[test]
    fn replaces_a_symlink_instead_of_following_it() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, b"keep me").unwrap();
        let path = dir.path().join("file");
        std::os::unix::fs::symlink(&victim, &path).unwrap();
        write_atomic(&path, b"new", 0o600, None).unwrap();
        assert_eq!(std::fs::read(&victim).unwrap(), b"keep me");
        assert!(!std::fs::symlink_metadata(&path).unwrap().is_symlink());
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
    }

    #[test]
    fn sets_the_owner() {
        // Root may give the file to anyone; another user only to itself.
        let owner = if rustix::process::geteuid().is_root() {
            (65534, 65533)
        } else {
            (
                rustix::process::geteuid().as_raw(),
                rustix::process::getegid().as_raw(),
            )
        };
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("owned");
        write_atomic(&path, b"x", 0o600, Some(owner)).unwrap();
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!((meta.uid(), meta.gid()), owner);
    }

    #[test]
    fn a_failed_write_leaves_the_old_file_and_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        // A non-empty directory at the destination: the final rename fails.
        let path = dir.path().join("taken");
        std::fs::create_dir(&path).unwrap();
        std::fs::write(path.join("inside"), b"old").unwrap();
        let error = write_atomic(&path, b"new", 0o600, None).unwrap_err();
        assert_eq!(error.code(), "store.write");
        assert!(error.to_string().contains("rename"), "{error}");
        assert_eq!(std::fs::read(path.join("inside")).unwrap(), b"old");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn swaps_links_and_refuses_to_replace_a_regular_file() {
        let dir = tempfile::tempdir().unwrap();
        let fd = open_dir(dir.path()).unwrap();
        std::fs::write(dir.path().join("a"), b"a").unwrap();
        std::fs::write(dir.path().join("b"), b"b").unwrap();
        swap_symlink_at(fd.as_fd(), dir.path(), "link", "a").unwrap();
        assert_eq!(std::fs::read(dir.path().join("link")).unwrap(), b"a");
        swap_symlink_at(fd.as_fd(), dir.path(), "link", "b").unwrap();
        assert_eq!(
            std::fs::read_link(dir.path().join("link")).unwrap(),
            Path::new("b")
        );

        let error = swap_symlink_at(fd.as_fd(), dir.path(), "a", "b").unwrap_err();
        assert_eq!(error.code(), "store.link_occupied");
        assert_eq!(std::fs::read(dir.path().join("a")).unwrap(), b"a");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 3);
    }

    #[test]
    fn a_link_that_cannot_be_made_is_a_link_error() {
        let dir = tempfile::tempdir().unwrap();
        let fd = open_dir(dir.path()).unwrap();
        // 250 bytes is a valid name, but its temp name is not.
        let name = "l".repeat(250);
        let error = swap_symlink_at(fd.as_fd(), dir.path(), &name, "target").unwrap_err();
        assert_eq!(error.code(), "store.link");
        assert!(error.to_string().contains("at target"), "{error}");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn an_unreadable_directory_is_a_read_error() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("file");
        std::fs::write(&file, b"").unwrap();
        let fd = rustix::fs::open(&file, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty()).unwrap();
        let error = list_dir(fd.as_fd(), &file).unwrap_err();
        assert_eq!(error.code(), "store.read");
        assert!(error.to_string().contains("file"), "{error}");
    }

    #[test]
    fn an_acl_the_kernel_rejects_is_an_acl_error_and_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let fd = open_dir(dir.path()).unwrap();
        // A version-2 header and an ACL_USER entry alone: no USER_OBJ, invalid.
        let invalid = [2, 0, 0, 0, 2, 0, 4, 0, 1, 0, 0, 0];
        let options = FileOptions {
            mode: 0o600,
            owner: None,
            acl: Some(&invalid),
        };
        let error = write_atomic_at(fd.as_fd(), dir.path(), "f", b"x", &options).unwrap_err();
        assert_eq!(error.code(), "store.acl");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn removes_only_temp_entries() {
        let dir = tempfile::tempdir().unwrap();
        let fd = open_dir(dir.path()).unwrap();
        std::fs::write(dir.path().join("keep"), b"k").unwrap();
        std::fs::write(dir.path().join(temp_name("cert")), b"partial").unwrap();
        std::os::unix::fs::symlink("keep", dir.path().join(temp_name("link"))).unwrap();
        std::fs::create_dir(dir.path().join(temp_name("cert.d"))).unwrap();
        let mut removed = remove_temp_files(fd.as_fd(), dir.path()).unwrap();
        removed.sort();
        assert_eq!(removed.len(), 3);
        assert!(removed.iter().all(|name| name.starts_with(TEMP_PREFIX)));
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, vec!["keep"]);
    }

    #[test]
    fn removes_the_stale_temp_files_of_one_file_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        std::fs::write(dir.path().join(temp_name("state.json")), b"{").unwrap();
        std::fs::write(dir.path().join(temp_name("state.json")), b"{").unwrap();
        std::fs::write(dir.path().join(temp_name("other.json")), b"{").unwrap();
        std::fs::write(dir.path().join(temp_name("state.json.bak")), b"{").unwrap();
        assert_eq!(remove_stale_temp_files(&path).unwrap(), 2);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
        assert_eq!(
            remove_stale_temp_files(&dir.path().join("gone/x")).unwrap(),
            0
        );
    }

    #[test]
    fn temp_names_are_distinct_and_recognisable() {
        let a = temp_name("v.c.1");
        let b = temp_name("v.c.1");
        assert_ne!(a, b);
        assert!(a.starts_with(".akvvm-tmp-v.c.1."));
    }
}
