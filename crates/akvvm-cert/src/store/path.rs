//! Where the store may be and how it is reached: the system directories that
//! `certificateStoreLocation` may not name ([`system_directory`]), and the walk from `/` to the
//! store directory that [`Store::open`](super::Store::open) makes once, after which every call on
//! the store goes through the directory handle it returns (`*at` calls), never through the path.
//!
//! The walk (`open_store_dir`) opens each component of the (lexically normalised) path with
//! `openat(parent, name, O_DIRECTORY|O_NOFOLLOW|O_CLOEXEC)` under the handle of its parent, and
//! refuses:
//!
//! - a component that is a symbolic link (`store.symlink_in_path`): whoever made the link chose
//!   where the keys go;
//! - a component owned by anyone but root or the user running akvvm, or writable by group or
//!   others (`store.unsafe_path`): whoever can write a directory can rename the entry under it
//!   and put a directory (or a link) of their own in its place. One exception: a directory owned
//!   by root with the sticky bit (`/tmp`, `/var/tmp`, mode 1777). There only an entry's owner can
//!   rename or remove it, and the entry below is itself required to be root's (or the running
//!   user's), so nobody else can swap it;
//! - the store directory itself when it is a link or not a directory, or belongs to another user
//!   (checked by [`Store::open`](super::Store::open)).
//!
//! Missing components are created with `mkdirat` under the held parent (0755, the store itself
//! 0700) and then opened and checked like the others, so a directory someone else made first in a
//! sticky directory is refused too.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;

use super::{STORE_DIR_MODE, StoreError};

/// Mode of the parents of the store akvvm creates (before the umask).
pub const PARENT_DIR_MODE: u32 = 0o755;

/// Directories `certificateStoreLocation` may not name (after normalisation), besides every
/// direct child of `/`, `/etc`, `/usr`, `/usr/local` and `/var` and everything under `/proc`,
/// `/sys` and `/dev` (see [`system_directory`]). Taking one over would narrow it to 0700 (breaking
/// every other program that reads it) and mix akvvm's files with the system's.
pub const SYSTEM_DIRECTORIES: &[&str] = &[
    "/",
    "/etc/ssl/certs",
    "/etc/ssl/private",
    "/etc/pki/tls",
    "/etc/pki/tls/certs",
    "/etc/pki/tls/private",
    "/etc/pki/ca-trust",
    "/etc/pki/ca-trust/source",
    "/etc/pki/ca-trust/source/anchors",
    "/etc/pki/ca-trust/extracted",
    "/etc/pki/ca-trust/extracted/pem",
    "/etc/pki/ca-trust/extracted/openssl",
    "/etc/pki/ca-trust/extracted/java",
    "/etc/ca-certificates/update.d",
    "/etc/letsencrypt/live",
    "/etc/letsencrypt/archive",
    "/usr/lib/ssl",
    "/usr/share/ca-certificates",
    "/usr/local/share/ca-certificates",
    "/var/lib/waagent",
    "/var/lib/ca-certificates",
    "/run/user",
];

/// Directories whose every direct child belongs to the system (`/bin`, `/etc/ssl`, `/usr/lib64`,
/// `/var/lib`, `/var/tmp`...).
const SYSTEM_PARENTS: &[&str] = &["/", "/etc", "/usr", "/usr/local", "/var"];

/// Pseudo file systems: nothing under them can be a store.
const PSEUDO_FILE_SYSTEMS: &[&str] = &["/proc", "/sys", "/dev"];

/// Where akvvm's default store is: the directory to suggest instead of a refused one.
pub const SUGGESTED_STORE: &str = "/var/lib/waagent/Microsoft.Azure.KeyVault.Store";

/// `path` made absolute (against the working directory when it is relative) and normalised
/// lexically: `//`, `.` and trailing slashes dropped, `..` removing the component before it. The
/// walk refuses symbolic links, so the lexical `..` is the one the kernel would take.
pub fn normalize(path: &Path) -> std::io::Result<PathBuf> {
    let absolute = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()?.join(path)
    };
    let mut out = PathBuf::from("/");
    for component in absolute.components() {
        match component {
            Component::Normal(name) => out.push(name),
            Component::ParentDir => {
                out.pop();
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    Ok(out)
}

/// Why the absolute, normalised `path` may not be the store, or `None` when it may. Compare a
/// path from the user after [`normalize`].
pub fn system_directory(path: &Path) -> Option<&'static str> {
    if SYSTEM_DIRECTORIES.iter().any(|d| path == Path::new(d)) {
        return Some(if path == Path::new("/") {
            "the root directory"
        } else {
            "a directory that other programs read certificates or keys from"
        });
    }
    if PSEUDO_FILE_SYSTEMS
        .iter()
        .any(|d| path.starts_with(Path::new(d)))
    {
        return Some("on a pseudo file system (/proc, /sys, /dev)");
    }
    let parent = path.parent()?;
    if SYSTEM_PARENTS.iter().any(|d| parent == Path::new(d)) {
        return Some("a directory of the operating system or of another package");
    }
    None
}

/// Refuses a system directory as the store: [`StoreError::SystemDirectory`].
pub fn check_store_location(path: &Path) -> Result<PathBuf, StoreError> {
    let normalized = normalize(path).map_err(|source| StoreError::OpenDir {
        path: path.to_path_buf(),
        source,
    })?;
    match system_directory(&normalized) {
        Some(why) => Err(StoreError::SystemDirectory {
            path: normalized,
            why,
        }),
        None => Ok(normalized),
    }
}

/// Opens the store directory at the normalised, absolute `path` by the walk of the module
/// documentation, creating what is missing, and returns its handle. Does not check the store
/// directory's own owner and mode: [`Store::open`](super::Store::open) does.
pub(crate) fn open_store_dir(path: &Path) -> Result<OwnedFd, StoreError> {
    let names: Vec<&std::ffi::OsStr> = path
        .components()
        .filter_map(|c| match c {
            Component::Normal(name) => Some(name),
            _ => None,
        })
        .collect();
    let Some((store_name, parents)) = names.split_last() else {
        return Err(StoreError::SystemDirectory {
            path: path.to_path_buf(),
            why: "the root directory",
        });
    };
    let open_error = |source: std::io::Error| StoreError::OpenDir {
        path: path.to_path_buf(),
        source,
    };
    let mut current = rustix::fs::open(
        "/",
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| open_error(e.into()))?;
    let mut current_path = PathBuf::from("/");
    check_parent(current.as_fd(), &current_path, path)?;
    for name in parents {
        current_path.push(name);
        let next = open_component(current.as_fd(), name, &current_path, PARENT_DIR_MODE, path)?;
        check_parent(next.as_fd(), &current_path, path)?;
        current = next;
    }
    current_path.push(store_name);
    open_component(
        current.as_fd(),
        store_name,
        &current_path,
        STORE_DIR_MODE,
        path,
    )
}

/// Opens (creating it with `mode` when missing) the directory `name` under `parent`, never
/// following a link.
fn open_component(
    parent: BorrowedFd<'_>,
    name: &std::ffi::OsStr,
    component: &Path,
    mode: u32,
    store: &Path,
) -> Result<OwnedFd, StoreError> {
    let open = || {
        rustix::fs::openat(
            parent,
            name,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
    };
    let open_error = |e: Errno| StoreError::OpenDir {
        path: store.to_path_buf(),
        source: e.into(),
    };
    let mut created = false;
    let result = match open() {
        Err(Errno::NOENT) => {
            match rustix::fs::mkdirat(parent, name, Mode::from_raw_mode(mode)) {
                Ok(()) => created = true,
                Err(Errno::EXIST) => {}
                Err(e) => return Err(open_error(e)),
            }
            open()
        }
        other => other,
    };
    match result {
        Ok(fd) => {
            // The umask may have narrowed the mode, or (002) widened what group may do. Only
            // when it is the directory just made (one someone else made first is checked and
            // refused by the caller, never changed).
            let ours = || {
                rustix::fs::fstat(&fd)
                    .is_ok_and(|s| s.st_uid == rustix::process::geteuid().as_raw())
            };
            if created && ours() {
                rustix::fs::fchmod(&fd, Mode::from_raw_mode(mode)).map_err(open_error)?;
            }
            Ok(fd)
        }
        Err(Errno::LOOP | Errno::NOTDIR) => {
            let is_link = rustix::fs::statat(parent, name, AtFlags::SYMLINK_NOFOLLOW)
                .is_ok_and(|s| FileType::from_raw_mode(s.st_mode) == FileType::Symlink);
            if is_link {
                Err(StoreError::SymlinkInPath {
                    path: store.to_path_buf(),
                    component: component.to_path_buf(),
                })
            } else if component == store {
                Err(StoreError::NotADirectory {
                    path: store.to_path_buf(),
                })
            } else {
                Err(open_error(Errno::NOTDIR))
            }
        }
        Err(e) => Err(open_error(e)),
    }
}

/// Refuses the parent directory `dir` (at `component`) of the store at `store` when someone other
/// than root or the running user could replace what is under it.
fn check_parent(dir: BorrowedFd<'_>, component: &Path, store: &Path) -> Result<(), StoreError> {
    let stat = rustix::fs::fstat(dir).map_err(|e| StoreError::OpenDir {
        path: store.to_path_buf(),
        source: e.into(),
    })?;
    // The one rule (`crate::trust`): root's or the running user's, and nobody else may write
    // it, unless it is sticky.
    let kind = crate::trust::Kind::Directory;
    match crate::trust::check(
        stat.st_mode,
        stat.st_uid,
        kind,
        &crate::trust::trusted_owners(),
    ) {
        Ok(()) => Ok(()),
        Err(_) => Err(StoreError::UnsafePath {
            path: store.to_path_buf(),
            component: component.to_path_buf(),
            owner: stat.st_uid,
            mode: stat.st_mode & 0o7777,
        }),
    }
}
