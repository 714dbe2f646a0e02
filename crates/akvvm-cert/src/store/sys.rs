//! The store's system calls, each one counted where it is made.
//!
//! Every call the store makes on its directory and the files in it goes through this module
//! (the state file's and the store path walk's do not: they are not the store's work per
//! install). Each wrapper adds one to [`store_operations`] and then makes the call, and the two
//! that wait for the disk ([`fsync`], [`syncfs`]) add one to [`store_syncs`] as well; a
//! directory read adds one per entry. So the counts that `store_work` and the benchmarks read
//! cannot drift from the calls: there is no count without its call, and no call without its
//! count. A new call the store needs gets its wrapper here.
//!
//! The wrappers keep rustix's signatures (and its `Errno`), so a call site reads as the system
//! call it is.

use std::cell::Cell;
use std::ffi::CString;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};

use rustix::buffer::Buffer;
use rustix::fs::{
    AtFlags, Dir, DirEntry, FlockOperation, Gid, Mode, OFlags, Stat, Uid, XattrFlags,
};
use rustix::io::Errno;
use rustix::path::Arg;

thread_local! {
    static OPERATIONS: Cell<u64> = const { Cell::new(0) };
    static SYNCS: Cell<u64> = const { Cell::new(0) };
}

/// How much file system work the store has done on this thread: one per system call on the
/// store and one per directory entry read. It only ever grows; compare two readings. For tests
/// and benchmarks that check the work an install does (it must not grow with the store's size).
pub fn store_operations() -> u64 {
    OPERATIONS.with(Cell::get)
}

/// How many `fsync`s and `syncfs`s the store has made on this thread (the state file's are not
/// counted): it only ever grows; compare two readings. For tests and benchmarks that check how
/// often an install waits for the disk.
pub fn store_syncs() -> u64 {
    SYNCS.with(Cell::get)
}

fn count() {
    OPERATIONS.with(|c| c.set(c.get().saturating_add(1)));
}

pub(crate) fn openat<P: Arg, Fd: AsFd>(
    dir: Fd,
    path: P,
    flags: OFlags,
    mode: Mode,
) -> Result<OwnedFd, Errno> {
    count();
    rustix::fs::openat(dir, path, flags, mode)
}

pub(crate) fn mkdirat<P: Arg, Fd: AsFd>(dir: Fd, path: P, mode: Mode) -> Result<(), Errno> {
    count();
    rustix::fs::mkdirat(dir, path, mode)
}

pub(crate) fn statat<P: Arg, Fd: AsFd>(dir: Fd, path: P, flags: AtFlags) -> Result<Stat, Errno> {
    count();
    rustix::fs::statat(dir, path, flags)
}

pub(crate) fn fstat<Fd: AsFd>(fd: Fd) -> Result<Stat, Errno> {
    count();
    rustix::fs::fstat(fd)
}

pub(crate) fn readlinkat<P: Arg, Fd: AsFd, B: Into<Vec<u8>>>(
    dir: Fd,
    path: P,
    reuse: B,
) -> Result<CString, Errno> {
    count();
    rustix::fs::readlinkat(dir, path, reuse)
}

pub(crate) fn symlinkat<P: Arg, Q: Arg, Fd: AsFd>(
    target: P,
    dir: Fd,
    path: Q,
) -> Result<(), Errno> {
    count();
    rustix::fs::symlinkat(target, dir, path)
}

pub(crate) fn renameat<P: Arg, Q: Arg, PFd: AsFd, QFd: AsFd>(
    old_dir: PFd,
    old: P,
    new_dir: QFd,
    new: Q,
) -> Result<(), Errno> {
    count();
    rustix::fs::renameat(old_dir, old, new_dir, new)
}

pub(crate) fn unlinkat<P: Arg, Fd: AsFd>(dir: Fd, path: P, flags: AtFlags) -> Result<(), Errno> {
    count();
    rustix::fs::unlinkat(dir, path, flags)
}

pub(crate) fn fchmod<Fd: AsFd>(fd: Fd, mode: Mode) -> Result<(), Errno> {
    count();
    rustix::fs::fchmod(fd, mode)
}

pub(crate) fn fchown<Fd: AsFd>(
    fd: Fd,
    owner: Option<Uid>,
    group: Option<Gid>,
) -> Result<(), Errno> {
    count();
    rustix::fs::fchown(fd, owner, group)
}

pub(crate) fn fgetxattr<Fd: AsFd, Name: Arg, Buf: Buffer<u8>>(
    fd: Fd,
    name: Name,
    value: Buf,
) -> Result<Buf::Output, Errno> {
    count();
    rustix::fs::fgetxattr(fd, name, value)
}

pub(crate) fn fsetxattr<Fd: AsFd, Name: Arg>(
    fd: Fd,
    name: Name,
    value: &[u8],
    flags: XattrFlags,
) -> Result<(), Errno> {
    count();
    rustix::fs::fsetxattr(fd, name, value, flags)
}

pub(crate) fn fremovexattr<Fd: AsFd, Name: Arg>(fd: Fd, name: Name) -> Result<(), Errno> {
    count();
    rustix::fs::fremovexattr(fd, name)
}

pub(crate) fn flock<Fd: AsFd>(fd: Fd, operation: FlockOperation) -> Result<(), Errno> {
    count();
    rustix::fs::flock(fd, operation)
}

/// `fsync`: also counted in [`store_syncs`].
pub(crate) fn fsync<Fd: AsFd>(fd: Fd) -> Result<(), Errno> {
    count_sync();
    rustix::fs::fsync(fd)
}

/// `syncfs`: also counted in [`store_syncs`].
pub(crate) fn syncfs<Fd: AsFd>(fd: Fd) -> Result<(), Errno> {
    count_sync();
    rustix::fs::syncfs(fd)
}

fn count_sync() {
    count();
    SYNCS.with(|c| c.set(c.get().saturating_add(1)));
}

/// `fsync` of an open file (`File::sync_all`), counted as [`fsync`].
pub(crate) fn sync_all(file: &File) -> io::Result<()> {
    count_sync();
    file.sync_all()
}

/// Writes all of `bytes` to the file (counted as one call: the kernel takes a store file in one
/// `write` but for an interrupted or partial one).
pub(crate) fn write_all(file: &mut File, bytes: &[u8]) -> io::Result<()> {
    count();
    file.write_all(bytes)
}

/// Reads a store file to its end (counted as one call, as [`write_all`]).
pub(crate) fn read_to_end(file: &mut impl Read, into: &mut Vec<u8>) -> io::Result<usize> {
    count();
    file.read_to_end(into)
}

/// Reads a store file to its end as text (counted as one call, as [`write_all`]).
pub(crate) fn read_to_string(file: &mut impl Read, into: &mut String) -> io::Result<usize> {
    count();
    file.read_to_string(into)
}

/// The entries of the directory `fd`: one count for the read, and one per entry as it is read.
pub(crate) fn read_dir<Fd: AsFd>(
    fd: Fd,
) -> Result<impl Iterator<Item = Result<DirEntry, Errno>>, Errno> {
    count();
    let dir = Dir::read_from(fd)?;
    Ok(dir.inspect(|_| count()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_call_counts_once_and_a_sync_counts_as_a_sync_too() {
        let dir = tempfile::tempdir().unwrap();
        let fd = rustix::fs::open(
            dir.path(),
            OFlags::RDONLY | OFlags::DIRECTORY,
            Mode::empty(),
        )
        .unwrap();
        let (operations, syncs) = (store_operations(), store_syncs());
        let file = openat(
            &fd,
            "f",
            OFlags::WRONLY | OFlags::CREATE | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        )
        .unwrap();
        let mut file = File::from(file);
        write_all(&mut file, b"x").unwrap();
        sync_all(&file).unwrap();
        fsync(&fd).unwrap();
        // A call that fails is a call made: counted as well.
        assert_eq!(unlinkat(&fd, "absent", AtFlags::empty()), Err(Errno::NOENT));
        assert_eq!(store_operations() - operations, 5);
        assert_eq!(store_syncs() - syncs, 2);

        // A directory read: one for the read, one per entry (`.`, `..` and `f`).
        let before = store_operations();
        assert_eq!(read_dir(&fd).unwrap().count(), 3);
        assert_eq!(store_operations() - before, 4);
    }
}
