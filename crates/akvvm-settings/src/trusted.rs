//! Files that steer what akvvm does as root: the settings (which name the reload hooks it runs,
//! `resolve`, `caCertificates`, `msiEndpoint`), `HandlerEnvironment.json` and the handler's
//! `<seq>.settings`, the webhook secret, the extra CA roots. [`read`] reads one only when nobody
//! but root could have written it: a regular file, owned by root (or, when akvvm does not run as
//! root, by the user it runs as) and not writable by group or others. The checks are made on the
//! opened descriptor, so the file cannot be swapped between check and read.
//!
//! A new file of that kind is read through [`read`], and its callers map [`Read::Untrusted`] to
//! a variant of their own error type that passes [`Untrusted`]'s code through.

use std::io::Read as _;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Why a file is not trusted.
#[derive(Debug, thiserror::Error)]
pub enum Untrusted {
    #[error(
        "refusing the {what} {}: it is owned by uid {uid}, and only a file owned by {owners} \
         is trusted (what it says is acted on as root); `chown root: {}` if its content is yours",
        path.display(), path.display()
    )]
    Owner {
        what: &'static str,
        path: PathBuf,
        uid: u32,
        owners: String,
    },
    #[error(
        "refusing the {what} {}: its mode {mode:04o} lets group or others write it (what it says \
         is acted on as root); `chmod go-w {}`",
        path.display(), path.display()
    )]
    Writable {
        what: &'static str,
        path: PathBuf,
        mode: u32,
    },
    #[error("refusing the {what} {}: it is not a regular file", path.display())]
    NotRegular { what: &'static str, path: PathBuf },
}

akvvm_cert::error_codes! {
    Untrusted {
        Untrusted::Owner { .. } => "file.untrusted_owner",
        Untrusted::Writable { .. } => "file.writable_by_others",
        Untrusted::NotRegular { .. } => "file.not_regular",
    }
}

/// Why [`read`] failed.
#[derive(Debug)]
pub enum Read {
    /// The file could not be opened or read.
    Io(std::io::Error),
    /// The file was read but is not trusted.
    Untrusted(Untrusted),
}

/// The owners whose files are trusted: root, and the effective user when that is not root.
pub use akvvm_cert::trust::trusted_owners;

/// `distrust` of the `what` at `path`, as an [`Untrusted`].
fn untrusted(
    what: &'static str,
    path: &Path,
    distrust: akvvm_cert::trust::Distrust,
    owners: &[u32],
) -> Untrusted {
    use akvvm_cert::trust::Distrust;
    let path = path.to_path_buf();
    match distrust {
        Distrust::NotRegular | Distrust::NotDirectory => Untrusted::NotRegular { what, path },
        Distrust::Owner { uid } => Untrusted::Owner {
            what,
            path,
            uid,
            owners: match owners {
                [_] => "root".to_string(),
                _ => format!("root or uid {} (the user akvvm runs as)", owners[1]),
            },
        },
        Distrust::Writable { mode } => Untrusted::Writable { what, path, mode },
    }
}

/// Checks the metadata of an opened `what` at `path` against the rule of this module
/// ([`akvvm_cert::trust`]: a regular file, a trusted owner, nobody else may write it).
pub fn check(what: &'static str, path: &Path, meta: &std::fs::Metadata) -> Result<(), Untrusted> {
    let owners = trusted_owners();
    akvvm_cert::trust::check(
        meta.mode(),
        meta.uid(),
        akvvm_cert::trust::Kind::File,
        &owners,
    )
    .map_err(|distrust| untrusted(what, path, distrust, &owners))
}

/// Checks every directory that leads to `path`, as written and with its symbolic links
/// resolved: each must be owned by a trusted owner and not writable by group or others (unless
/// sticky, as `/tmp` is: others may add names there but not replace ours). Whoever could write
/// one of them could swap the file (or a link on the way to it) for their own. `what` names the
/// file the directories lead to.
pub fn check_directories(what: &'static str, path: &Path) -> Result<(), Untrusted> {
    let resolved = path.canonicalize().ok();
    let written = path.ancestors().skip(1);
    let real = resolved.iter().flat_map(|r| r.ancestors().skip(1));
    for dir in written.chain(real) {
        if dir.as_os_str().is_empty() {
            continue;
        }
        // Followed: a link on the way is checked where it leads (its own directory is checked
        // as an ancestor, and only who can write there can change the link).
        let Ok(meta) = std::fs::metadata(dir) else {
            continue;
        };
        let owners = trusted_owners();
        akvvm_cert::trust::check(
            meta.mode(),
            meta.uid(),
            akvvm_cert::trust::Kind::Directory,
            &owners,
        )
        .map_err(|distrust| untrusted(what, dir, distrust, &owners))?;
    }
    Ok(())
}

/// Reads the `what` at `path` (a symlink is followed: the file it reaches is checked), if it is
/// trusted. Opened non-blocking, so a FIFO planted in its place cannot hang the agent.
pub fn read(what: &'static str, path: &Path) -> Result<Vec<u8>, Read> {
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
        .open(path)
        .map_err(Read::Io)?;
    let meta = file.metadata().map_err(Read::Io)?;
    check(what, path, &meta).map_err(Read::Untrusted)?;
    let mut bytes = Vec::with_capacity(meta.len().min(1 << 20) as usize);
    file.read_to_end(&mut bytes).map_err(Read::Io)?;
    Ok(bytes)
}

/// [`read`], as UTF-8 text (invalid UTF-8 is an I/O error of kind `InvalidData`).
pub fn read_to_string(what: &'static str, path: &Path) -> Result<String, Read> {
    let bytes = read(what, path)?;
    String::from_utf8(bytes)
        .map_err(|e| Read::Io(std::io::Error::new(std::io::ErrorKind::InvalidData, e)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn file(dir: &Path, mode: u32) -> PathBuf {
        let path = dir.join(format!("f{mode:o}"));
        std::fs::write(&path, "{}").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        path
    }

    #[test]
    fn own_files_not_writable_by_others_are_read() {
        let dir = tempfile::tempdir().unwrap();
        for mode in [0o600, 0o644, 0o400, 0o755] {
            assert_eq!(
                read("settings file", &file(dir.path(), mode)).unwrap(),
                b"{}"
            );
        }
    }

    #[test]
    fn files_writable_by_group_or_others_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        for mode in [0o664, 0o666, 0o646, 0o620] {
            let path = file(dir.path(), mode);
            match read("settings file", &path) {
                Err(Read::Untrusted(e @ Untrusted::Writable { .. })) => {
                    assert_eq!(e.code(), "file.writable_by_others");
                    let message = e.to_string();
                    assert!(message.contains(&path.display().to_string()), "{message}");
                    assert!(message.contains("chmod go-w"), "{message}");
                }
                other => panic!("mode {mode:o}: {other:?}"),
            }
        }
    }

    #[test]
    fn files_owned_by_another_user_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = file(dir.path(), 0o644);
        let stranger = 4242;
        if akvvm_cert::machine::require_root("files_owned_by_another_user_are_refused") {
            std::os::unix::fs::chown(&path, Some(stranger), None).unwrap();
            match read("settings file", &path) {
                Err(Read::Untrusted(e @ Untrusted::Owner { uid: 4242, .. })) => {
                    assert_eq!(e.code(), "file.untrusted_owner");
                    assert!(e.to_string().contains("owned by root"), "{e}");
                }
                other => panic!("{other:?}"),
            }
        } else {
            // Not root: the check itself, with the metadata of a file owned by root (trusted)
            // and by nobody we are (not trusted).
            let meta = std::fs::metadata("/").unwrap();
            assert!(check("settings file", Path::new("/"), &meta).is_err()); // a directory
            assert!(!trusted_owners().contains(&stranger));
        }
    }

    #[test]
    fn a_fifo_is_refused_without_hanging() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fifo");
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &path,
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        assert!(matches!(
            read("settings file", &path),
            Err(Read::Untrusted(Untrusted::NotRegular { .. }))
        ));
    }
}
