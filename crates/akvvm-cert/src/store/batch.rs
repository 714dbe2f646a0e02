//! Deferred durability for first installs: the batch of unsynced writes, [`Store::flush`], and
//! the start-up repair of what a power loss in the middle of a batch could leave.
//!
//! A *first install* (a certificate with no version, no stable link, no custom link and no
//! `.live` link in the store yet, without the certbot layout) has no previous version to
//! protect. Its file is written, renamed into place and linked without an `fsync` each
//! ([`atomic::write_unsynced_at`], [`atomic::symlink_unsynced_at`]). What a crash must not leave
//! is a link to an incomplete file that nothing repairs, so:
//!
//! 1. The first unsynced write of a batch takes an exclusive `flock` on the store directory and
//!    sets the extended attribute [`UNSYNCED_XATTR`] on it, then `fsync`s the directory: the
//!    marker is durable before any unsynced byte is written.
//! 2. Each unsynced file carries the SHA-256 of its content in [`DIGEST_XATTR`], set before the
//!    content is written.
//! 3. [`Store::flush`] (the agent calls it before each state file save, so the state file never
//!    names a version whose files are not durable) makes the whole batch durable with one
//!    `syncfs`, then removes the marker and drops the lock.
//! 4. [`Store::open`] finds a marker left by a process that died in the middle of a batch (the
//!    lock is free: a live process's batch is left alone), reads every version file that
//!    carries a digest, removes those whose content no longer matches (an empty, truncated or
//!    zero-filled file after a power loss) with every link to them, removes links to version
//!    files that are missing, `syncfs`es, then removes the marker. The next cycle installs those
//!    certificates again, as first installs.
//!
//! Rotations (and every install that is not a first install) keep the full durability of
//! [`atomic::write_atomic_at`]: their file and links are `fsync`ed before the install returns. A
//! store whose file system has no user extended attributes never batches.

use std::collections::HashSet;
use std::os::fd::BorrowedFd;
use std::path::Path;

use rustix::fs::{AtFlags, FileType, FlockOperation, Mode, OFlags, XattrFlags};
use rustix::io::Errno;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::atomic::{self, DIGEST_XATTR, TEMP_PREFIX};
use super::index::split_version_name;
use super::{Store, StoreError};
use crate::locks::MutexExt;

/// The extended attribute on the store directory while a batch of unsynced first installs is
/// open (or was, when its process died).
pub const UNSYNCED_XATTR: &str = "user.akvvm.unsynced";

/// The batch state of one [`Store`]; locked after the store's index lock, never before.
#[derive(Debug, Default)]
pub(super) struct Batch {
    /// The marker is set and durable, the lock held, and some writes may not be durable yet.
    open: bool,
    /// Setting the marker failed (no user extended attributes here): never batch.
    unsupported: bool,
}

/// The SHA-256 of `bytes`.
pub(super) fn digest(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

impl Store {
    /// Whether the first install about to be written may skip its `fsync`s: opens the batch
    /// when none is open (see the module documentation). `false` when the store cannot batch:
    /// another process holds its lock (its own batch), or the marker cannot be set. The caller
    /// holds the index lock.
    pub(super) fn begin_unsynced(&self) -> bool {
        let mut batch = self.lock_batch();
        if batch.open {
            return true;
        }
        if batch.unsupported {
            return false;
        }
        if super::sys::flock(&self.dir, FlockOperation::NonBlockingLockExclusive).is_err() {
            return false;
        }
        let marked = super::sys::fsetxattr(&self.dir, UNSYNCED_XATTR, b"1", XattrFlags::empty())
            .and_then(|()| super::sys::fsync(&self.dir));
        match marked {
            Ok(()) => {
                batch.open = true;
                true
            }
            Err(e) => {
                if matches!(e, Errno::NOTSUP | Errno::PERM | Errno::ACCESS) {
                    batch.unsupported = true;
                } else {
                    tracing::warn!(path = %self.path.display(), error = %e, "cannot mark the store for unsynced first installs; installing with fsyncs");
                }
                let _ = super::sys::fremovexattr(&self.dir, UNSYNCED_XATTR);
                let _ = super::sys::flock(&self.dir, FlockOperation::Unlock);
                false
            }
        }
    }

    /// Makes every first install since the last flush durable: one `syncfs` of the store's file
    /// system, then the marker is removed. Nothing to do (no system call) when no first install
    /// is pending. The agent calls it before it saves the state file, and dropping the store
    /// calls it too. On failure the batch stays open (the marker stays: the next start checks the
    /// batch's files) and the next flush tries again.
    pub fn flush(&self) -> Result<(), StoreError> {
        let mut guard = self.lock_index();
        let mut batch = self.lock_batch();
        if !batch.open {
            return Ok(());
        }
        super::sys::syncfs(&self.dir).map_err(|e| StoreError::Write {
            path: self.path.clone(),
            step: "syncfs the store's file system",
            source: e.into(),
        })?;
        if let Err(e) = super::sys::fremovexattr(&self.dir, UNSYNCED_XATTR)
            && e != Errno::NODATA
        {
            tracing::warn!(path = %self.path.display(), error = %e, "cannot remove the store's unsynced marker; the next start checks the new files once more");
        }
        let _ = super::sys::flock(&self.dir, FlockOperation::Unlock);
        batch.open = false;
        drop(batch);
        self.restamp(&mut guard);
        Ok(())
    }

    fn lock_batch(&self) -> std::sync::MutexGuard<'_, Batch> {
        self.batch.lock_or_recover()
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        if let Err(error) = self.flush() {
            tracing::error!(%error, code = error.code(), "the store's first installs may not be durable; the next start checks them");
        }
    }
}

/// What a power loss in the middle of a batch could leave, repaired (see the module
/// documentation); returns the names removed. Nothing is read unless the store directory `dir`
/// (at `path`) carries the marker and no live process holds its lock.
pub(super) fn repair(dir: BorrowedFd<'_>, path: &Path) -> Result<Vec<String>, StoreError> {
    let read_error = |name: &str, e: Errno| StoreError::Read {
        path: path.join(name),
        source: e.into(),
    };
    let write_error = |name: &str, step: &'static str, e: Errno| StoreError::Write {
        path: path.join(name),
        step,
        source: e.into(),
    };
    let mut flag = [0u8; 8];
    match super::sys::fgetxattr(dir, UNSYNCED_XATTR, &mut flag[..]) {
        Ok(_) => {}
        Err(Errno::NODATA | Errno::NOTSUP) => return Ok(Vec::new()),
        Err(e) => return Err(read_error("", e)),
    }
    if super::sys::flock(dir, FlockOperation::NonBlockingLockExclusive).is_err() {
        // A live process's batch: it flushes it itself.
        return Ok(Vec::new());
    }
    let result = repair_locked(dir, path, &read_error, &write_error);
    let _ = super::sys::flock(dir, FlockOperation::Unlock);
    result
}

fn repair_locked(
    dir: BorrowedFd<'_>,
    path: &Path,
    read_error: &dyn Fn(&str, Errno) -> StoreError,
    write_error: &dyn Fn(&str, &'static str, Errno) -> StoreError,
) -> Result<Vec<String>, StoreError> {
    let entries = atomic::list_dir(dir, path)?;
    let mut files = HashSet::new();
    let mut bad = HashSet::new();
    for (name, file_type) in &entries {
        if *file_type != FileType::RegularFile || split_version_name(name).is_none() {
            continue;
        }
        files.insert(name.as_str());
        if !content_matches(dir, name).map_err(|e| read_error(name, e))? {
            bad.insert(name.as_str());
        }
    }
    let mut removed = Vec::new();
    for (name, file_type) in &entries {
        if *file_type != FileType::Symlink || name.starts_with(TEMP_PREFIX) {
            continue;
        }
        let target = match super::sys::readlinkat(dir, name.as_str(), Vec::new()) {
            Ok(target) => target.into_string().unwrap_or_default(),
            Err(Errno::NOENT) => continue,
            Err(e) => return Err(read_error(name, e)),
        };
        if split_version_name(&target).is_none()
            || (files.contains(target.as_str()) && !bad.contains(target.as_str()))
        {
            continue;
        }
        match super::sys::unlinkat(dir, name.as_str(), AtFlags::empty()) {
            Ok(()) | Err(Errno::NOENT) => removed.push(name.clone()),
            Err(e) => return Err(write_error(name, "remove a link to an incomplete file", e)),
        }
    }
    for name in bad {
        match super::sys::unlinkat(dir, name, AtFlags::empty()) {
            Ok(()) | Err(Errno::NOENT) => removed.push(name.to_owned()),
            Err(e) => return Err(write_error(name, "remove an incomplete file", e)),
        }
    }
    if !removed.is_empty() {
        removed.sort();
        tracing::warn!(path = %path.display(), removed = ?removed, "removed the links and files of first installs a crash left incomplete; the next cycle installs them again");
    }
    // What was checked is durable before the marker goes.
    super::sys::syncfs(dir).map_err(|e| write_error("", "syncfs the store's file system", e))?;
    match super::sys::fremovexattr(dir, UNSYNCED_XATTR) {
        Ok(()) | Err(Errno::NODATA) => {}
        Err(e) => return Err(write_error("", "remove the unsynced marker", e)),
    }
    super::sys::fsync(dir).map_err(|e| write_error("", "fsync the directory", e))?;
    Ok(removed)
}

/// Whether the version file `name` holds what was written: `true` for a file without a digest
/// (written with `fsync`s), else whether its content's SHA-256 is the digest.
fn content_matches(dir: BorrowedFd<'_>, name: &str) -> Result<bool, Errno> {
    let fd = match super::sys::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    ) {
        Ok(fd) => fd,
        Err(Errno::NOENT) => return Ok(true),
        Err(e) => return Err(e),
    };
    let mut expected = [0u8; 32];
    match super::sys::fgetxattr(&fd, DIGEST_XATTR, &mut expected[..]) {
        Ok(32) => {}
        Ok(_) => return Ok(false),
        Err(Errno::NODATA | Errno::NOTSUP) => return Ok(true),
        // Longer than a digest: not ours as written.
        Err(Errno::RANGE) => return Ok(false),
        Err(e) => return Err(e),
    }
    // The content holds a private key.
    let mut content = Zeroizing::new(Vec::new());
    super::sys::read_to_end(&mut std::fs::File::from(fd), &mut content)
        .map_err(|e| Errno::from_io_error(&e).unwrap_or(Errno::IO))?;
    Ok(digest(&content) == expected)
}
