//! The agent's state directory (`stateDirectory`: the state file, the hook journal with hook
//! output, the pid file): created 0700, and narrowed to 0700 when it already exists wider and
//! holds nothing but akvvm's own files. A directory that holds other files is shared with
//! something else: it is left as it is, with a warning, rather than narrowed under its owner.

use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::Path;

/// The mode of the state directory.
pub const STATE_DIRECTORY_MODE: u32 = 0o700;

/// The names akvvm writes in its state directory (temporary files aside).
const OWN_FILES: [&str; 3] = [
    super::STATE_FILE_NAME,
    super::hook::HOOK_JOURNAL_FILE,
    crate::handler::PID_FILE_NAME,
];

/// Creates `dir` (0700) or narrows it to 0700 when it holds only akvvm's files. Problems are
/// logged: writing the state file reports them in its own error.
pub fn secure(dir: &Path) {
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
            return;
        }
        Err(error) => {
            tracing::warn!(path = %dir.display(), %error, "cannot read the state directory");
            return;
        }
    };
    if !meta.is_dir() {
        tracing::warn!(path = %dir.display(), "the state directory is not a directory (a symlink?); left as it is");
        return;
    }
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o077 == 0 {
        return;
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
        return;
    }
    match std::fs::set_permissions(dir, std::fs::Permissions::from_mode(STATE_DIRECTORY_MODE)) {
        Ok(()) => {
            tracing::info!(path = %dir.display(), from = format!("{mode:04o}"), "state directory narrowed to 0700")
        }
        Err(error) => {
            tracing::warn!(path = %dir.display(), %error, "cannot narrow the state directory to 0700")
        }
    }
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
        secure(&dir);
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
        secure(&ours);
        assert_eq!(mode(&ours), 0o700);

        let shared = root.path().join("shared");
        std::fs::create_dir(&shared).unwrap();
        std::fs::write(shared.join("state.json"), "{}").unwrap();
        std::fs::write(shared.join("something-else.conf"), "").unwrap();
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o755)).unwrap();
        secure(&shared);
        assert_eq!(mode(&shared), 0o755, "a shared directory is left alone");
    }
}
