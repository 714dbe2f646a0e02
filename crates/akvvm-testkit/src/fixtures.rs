//! The fixture files of every test: `crates/akvvm-testkit/fixtures/`, addressed by a path relative
//! to that directory (`"pkcs12/openssl3-aes-rsa2048.pfx"`, `"settings/valid/v1-flat.json"`).
//!
//! - `pem/`, `pkcs12/`: real Key Vault answers and OpenSSL-made PFX and PEM files
//!   (`pkcs12/README.md` says where each comes from; `pkcs12/generate.sh` made the OpenSSL ones).
//! - `settings/`: extension settings as users write them (`valid/`), snippets from Microsoft's
//!   documentation as published (`seeds/`) and those snippets completed (`derived/`).
//!
//! These functions return only paths, bytes and text, so unit tests inside other crates may use
//! them too.

use std::path::{Path, PathBuf};

/// The fixture directory.
pub fn dir() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures"))
}

/// The path of the fixture `rel` (it need not exist).
pub fn path(rel: &str) -> PathBuf {
    dir().join(rel)
}

/// The bytes of the fixture `rel`; panics naming the file when it cannot be read.
#[track_caller]
pub fn bytes(rel: &str) -> Vec<u8> {
    let path = path(rel);
    std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// The text of the fixture `rel`; panics naming the file when it cannot be read or is not UTF-8.
#[track_caller]
pub fn text(rel: &str) -> String {
    let path = path(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}
