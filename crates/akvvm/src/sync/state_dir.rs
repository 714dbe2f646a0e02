//! The agent's state directory (`stateDirectory`: the state file, the hook journal with hook
//! output, the pid file): created 0700, and narrowed to 0700 when it already exists wider and
//! holds nothing but akvvm's own files. A directory that holds other files is shared with
//! something else: it is left as it is, with a warning, rather than narrowed under its owner.
//!
//! A state directory that belongs to another user than root or the one running akvvm is refused
//! ([`StateDirError::UnsafeOwner`]): its owner could plant a hook journal that makes akvvm run a
//! hook again, or swap the state file. So is a path that is a symbolic link or not a directory.

use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Why the state directory cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum StateDirError {
    /// The state directory belongs to a user other than root or the one running akvvm.
    #[error(
        "the state directory {} belongs to uid {owner}, not to root or uid {expected} that runs \
         akvvm; its owner could plant a hook journal or swap the state file: chown it to root \
         (chown root: {}) or point stateDirectory at a directory of akvvm's own (the default is \
         {})",
        path.display(),
        path.display(),
        crate::settings::DEFAULT_STATE_DIRECTORY
    )]
    UnsafeOwner {
        path: PathBuf,
        owner: u32,
        expected: u32,
    },
    /// The state directory path is a symbolic link or something else than a directory.
    #[error(
        "the state directory {} is {what}, not a directory; point stateDirectory at a directory \
         (the default is {})",
        path.display(),
        crate::settings::DEFAULT_STATE_DIRECTORY
    )]
    NotADirectory { path: PathBuf, what: &'static str },
}

akvvm_cert::error_codes! {
    StateDirError {
        StateDirError::UnsafeOwner { .. } => "state.unsafe_owner",
        StateDirError::NotADirectory { .. } => "state.not_a_directory",
    }
}

/// The mode of the state directory.
pub const STATE_DIRECTORY_MODE: u32 = 0o700;

/// The names akvvm writes in its state directory (temporary files aside).
const OWN_FILES: [&str; 3] = [
    super::STATE_FILE_NAME,
    super::hook::HOOK_JOURNAL_FILE,
    crate::handler::PID_FILE_NAME,
];

/// Creates `dir` (0700) or narrows it to 0700 when it holds only akvvm's files. Refuses a
/// directory of another user, a link and a non-directory; other problems are logged (writing the
/// state file reports them in its own error).
pub fn secure(dir: &Path) -> Result<(), StateDirError> {
    let meta = match std::fs::symlink_metadata(dir) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if let Err(error) = std::fs::DirBuilder::new()
                .recursive(true)
                .mode(STATE_DIRECTORY_MODE)
                .create(dir)
            {
                tracing::warn!(path = %dir.display(), %error, "cannot create the state directory");
            }
            return Ok(());
        }
        Err(error) => {
            tracing::warn!(path = %dir.display(), %error, "cannot read the state directory");
            return Ok(());
        }
    };
    if !meta.is_dir() {
        let what = if meta.file_type().is_symlink() {
            "a symbolic link"
        } else {
            "a file"
        };
        return Err(StateDirError::NotADirectory {
            path: dir.to_path_buf(),
            what,
        });
    }
    // Root's or the running user's (`akvvm_cert::trust`'s owner rule; the mode is narrowed
    // below, not refused).
    let euid = rustix::process::geteuid().as_raw();
    if akvvm_cert::trust::check_owner(meta.uid(), &akvvm_cert::trust::trusted_owners()).is_err() {
        return Err(StateDirError::UnsafeOwner {
            path: dir.to_path_buf(),
            owner: meta.uid(),
            expected: euid,
        });
    }
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o077 == 0 {
        return Ok(());
    }
    let only_ours = std::fs::read_dir(dir).is_ok_and(|entries| {
        entries.flatten().all(|entry| {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            OWN_FILES.contains(&name.as_ref()) || name.starts_with(akvvm_cert::store::TEMP_PREFIX)
        })
    });
    if !only_ours {
        tracing::warn!(
            path = %dir.display(),
            mode = format!("{mode:04o}"),
            "the state directory holds other files and others may read it; give akvvm a \
             directory of its own (stateDirectory), mode 0700"
        );
        return Ok(());
    }
    match std::fs::set_permissions(dir, std::fs::Permissions::from_mode(STATE_DIRECTORY_MODE)) {
        Ok(()) => {
            tracing::info!(path = %dir.display(), from = format!("{mode:04o}"), "state directory narrowed to 0700")
        }
        Err(error) => {
            tracing::warn!(path = %dir.display(), %error, "cannot narrow the state directory to 0700")
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn a_new_state_directory_is_0700() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("var/lib/akvvm");
        secure(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700);
    }

    #[test]
    fn an_existing_wide_one_is_narrowed_only_when_it_is_akvvms_alone() {
        let root = tempfile::tempdir().unwrap();
        let ours = root.path().join("ours");
        std::fs::create_dir(&ours).unwrap();
        std::fs::write(ours.join("state.json"), "{}").unwrap();
        std::fs::write(ours.join("hooks.json"), "{}").unwrap();
        std::fs::set_permissions(&ours, std::fs::Permissions::from_mode(0o755)).unwrap();
        secure(&ours).unwrap();
        assert_eq!(mode(&ours), 0o700);

        let shared = root.path().join("shared");
        std::fs::create_dir(&shared).unwrap();
        std::fs::write(shared.join("state.json"), "{}").unwrap();
        std::fs::write(shared.join("something-else.conf"), "").unwrap();
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o755)).unwrap();
        secure(&shared).unwrap();
        assert_eq!(mode(&shared), 0o755, "a shared directory is left alone");
    }

    #[test]
    fn a_link_or_a_file_is_refused() {
        let root = tempfile::tempdir().unwrap();
        let real = root.path().join("real");
        std::fs::create_dir(&real).unwrap();
        let link = root.path().join("link");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let error = secure(&link).unwrap_err();
        assert_eq!(error.code(), "state.not_a_directory");
        assert!(error.to_string().contains("a symbolic link"), "{error}");
        let file = root.path().join("file");
        std::fs::write(&file, "").unwrap();
        assert_eq!(secure(&file).unwrap_err().code(), "state.not_a_directory");
    }

    #[test]
    fn a_directory_of_another_user_is_refused_and_left_as_it_is() {
        // Only root can give a directory away.
        if !crate::cert::machine::require_root(
            "a_directory_of_another_user_is_refused_and_left_as_it_is",
        ) {
            return;
        }
        let root = tempfile::tempdir().unwrap();
        let theirs = root.path().join("theirs");
        std::fs::create_dir(&theirs).unwrap();
        std::fs::write(theirs.join("state.json"), "{}").unwrap();
        std::fs::set_permissions(&theirs, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::os::unix::fs::chown(&theirs, Some(65534), Some(65534)).unwrap();
        let error = secure(&theirs).unwrap_err();
        assert_eq!(error.code(), "state.unsafe_owner");
        let message = error.to_string();
        assert!(message.contains("uid 65534"), "{message}");
        assert!(message.contains(&theirs.display().to_string()), "{message}");
        assert_eq!(mode(&theirs), 0o755);

        // Root's own is fine, whoever runs akvvm.
        std::os::unix::fs::chown(&theirs, Some(0), Some(0)).unwrap();
        secure(&theirs).unwrap();
        assert_eq!(mode(&theirs), 0o700);
    }
}
