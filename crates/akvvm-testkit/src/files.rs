//! What the store tests look at on disk: a file's permission bits and a directory's entries.
//! Paths and plain values only, so unit tests inside `src/` may use them too.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// The permission bits (`0o7777`) of `path` itself (a link is not followed).
pub fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path)
        .unwrap_or_else(|e| panic!("stat {}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o7777
}

/// The names in `dir`, sorted.
pub fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("list {}: {e}", dir.display()))
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}
