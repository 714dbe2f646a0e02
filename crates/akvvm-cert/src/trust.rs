//! The one rule for "may akvvm, running as root, act on what this file or directory says or
//! holds": who owns it, who can write it, and what it is. The settings reader, the reload hook
//! programs and the directories that lead to them, the store's parent directories, the store and
//! state directories and Azure Arc's key file all ask [`check`] (or [`check_owner`] where the
//! mode is narrowed rather than refused), each with the owners it trusts, and map a [`Distrust`]
//! to an error of their own that names the path and what to do.
//!
//! The rule: the entry is of the kind expected (a regular file, or a directory), one of the
//! trusted owners owns it, and neither group nor others can write it, except a sticky directory
//! (as `/tmp` is, root's: others may add names there, but not move or replace ours; only its
//! owner, trusted, could).
//! The caller passes what it learnt from the opened descriptor (`fstat`), never from a path it
//! opens again afterwards.

/// What the entry must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    File,
    Directory,
}

/// Why an entry is not trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Distrust {
    /// Not a regular file (a directory, a FIFO, a device, ...) where a file is expected.
    NotRegular,
    /// Not a directory where one is expected.
    NotDirectory,
    /// Owned by `uid`, which is not one of the trusted owners.
    Owner { uid: u32 },
    /// Group or others can write it (`mode`: its permission bits).
    Writable { mode: u32 },
}

/// Root, and the effective user when that is not root: whose files akvvm trusts by default.
pub fn trusted_owners() -> Vec<u32> {
    let me = rustix::process::geteuid().as_raw();
    if me == 0 { vec![0] } else { vec![0, me] }
}

/// Checks an entry whose `st_mode` (type and permission bits) and owner `uid` were read from
/// its open descriptor against the rule, with `owners` the uids trusted to own it.
pub fn check(st_mode: u32, uid: u32, kind: Kind, owners: &[u32]) -> Result<(), Distrust> {
    let file_type = rustix::fs::FileType::from_raw_mode(st_mode);
    match kind {
        Kind::File if file_type != rustix::fs::FileType::RegularFile => {
            return Err(Distrust::NotRegular);
        }
        Kind::Directory if file_type != rustix::fs::FileType::Directory => {
            return Err(Distrust::NotDirectory);
        }
        _ => {}
    }
    check_owner(uid, owners)?;
    let mode = st_mode & 0o7777;
    let sticky = kind == Kind::Directory && mode & 0o1000 != 0;
    if mode & 0o022 != 0 && !sticky {
        return Err(Distrust::Writable { mode });
    }
    Ok(())
}

/// The owner part of the rule alone, for the directories akvvm narrows to `0700` itself (the
/// store, the state directory) rather than refuse for their mode.
pub fn check_owner(uid: u32, owners: &[u32]) -> Result<(), Distrust> {
    if owners.contains(&uid) {
        Ok(())
    } else {
        Err(Distrust::Owner { uid })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIR: u32 = 0o040_000;
    const FILE: u32 = 0o100_000;
    const FIFO: u32 = 0o010_000;

    #[test]
    fn kind_owner_and_writers_each_refuse() {
        let owners = [0, 1000];
        assert_eq!(check(FILE | 0o600, 0, Kind::File, &owners), Ok(()));
        assert_eq!(check(FILE | 0o644, 1000, Kind::File, &owners), Ok(()));
        assert_eq!(
            check(FIFO | 0o600, 0, Kind::File, &owners),
            Err(Distrust::NotRegular)
        );
        assert_eq!(
            check(DIR | 0o700, 0, Kind::File, &owners),
            Err(Distrust::NotRegular)
        );
        assert_eq!(
            check(FILE | 0o600, 0, Kind::Directory, &owners),
            Err(Distrust::NotDirectory)
        );
        assert_eq!(
            check(FILE | 0o600, 4242, Kind::File, &owners),
            Err(Distrust::Owner { uid: 4242 })
        );
        for mode in [0o620, 0o602, 0o666, 0o1777] {
            assert_eq!(
                check(FILE | mode, 0, Kind::File, &owners),
                Err(Distrust::Writable { mode }),
                "{mode:o}"
            );
        }
    }

    #[test]
    fn only_a_sticky_directory_of_a_trusted_owner_may_be_writable_by_others() {
        let owners = [0, 1000];
        assert_eq!(check(DIR | 0o1777, 0, Kind::Directory, &owners), Ok(()));
        assert_eq!(check(DIR | 0o1777, 1000, Kind::Directory, &owners), Ok(()));
        assert_eq!(
            check(DIR | 0o1777, 4242, Kind::Directory, &owners),
            Err(Distrust::Owner { uid: 4242 })
        );
        assert_eq!(
            check(DIR | 0o777, 0, Kind::Directory, &owners),
            Err(Distrust::Writable { mode: 0o777 })
        );
        assert_eq!(check(DIR | 0o755, 1000, Kind::Directory, &owners), Ok(()));
        // A sticky file is no exception.
        assert_eq!(
            check(FILE | 0o1666, 0, Kind::File, &owners),
            Err(Distrust::Writable { mode: 0o1666 })
        );
    }
}
