//! The committed fuzz inputs (`fuzz/corpus/<target>/` and `fuzz/regressions/<target>/` at the
//! repository root), replayed on stable through the same harness functions the `cargo fuzz`
//! targets call (`akvvm_settings::fuzzing`, `akvvm::fuzzing`, `akvvm_cert::fuzzing`), so that
//! every test run checks them.

use std::path::{Path, PathBuf};

/// The repository's `fuzz/` directory.
pub fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
}

/// The committed inputs of `target`: its corpus, then its regressions, sorted by path.
pub fn inputs(target: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for kind in ["corpus", "regressions"] {
        let Ok(entries) = std::fs::read_dir(dir().join(kind).join(target)) else {
            continue; // a target without regressions has no directory
        };
        let mut files: Vec<PathBuf> = entries
            .map(|e| e.expect("a readable fuzz directory entry").path())
            .filter(|p| p.is_file())
            .collect();
        files.sort();
        out.extend(files);
    }
    out
}

/// Runs `harness` on every committed input of `target` and fails naming each input that made it
/// panic (the panic's message is printed above by the default hook). Fails too when the target
/// has no corpus, so that a moved directory cannot make the test pass on nothing.
#[track_caller]
pub fn replay(target: &str, harness: fn(&[u8])) {
    let inputs = inputs(target);
    assert!(
        inputs.iter().any(|p| p.starts_with(dir().join("corpus"))),
        "no corpus for the fuzz target {target} in {}",
        dir().join("corpus").display()
    );
    let mut failed = Vec::new();
    for path in &inputs {
        let data =
            std::fs::read(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
        if std::panic::catch_unwind(|| harness(&data)).is_err() {
            failed.push(path.display().to_string());
        }
    }
    assert!(
        failed.is_empty(),
        "the {target} harness panicked on {} of {} committed inputs (reproduce with `cargo +nightly \
         fuzz run {target} <file>`, docs/fuzzing.md):\n{}",
        failed.len(),
        inputs.len(),
        failed.join("\n")
    );
}
