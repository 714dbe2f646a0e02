//! Error codes are a public contract (status file, logs, metric labels): every error type's
//! codes follow one scheme, no code means two things, and every code is in `docs/errors.md`
//! with what it means and what to do (and the docs name no code that does not exist).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use akvvm_cert::codes::is_well_formed;

/// Every error type with codes, and the codes it owns (wrappers pass their inner codes through).
fn every_error_type() -> Vec<(&'static str, &'static [&'static str])> {
    vec![
        ("CertError", akvvm_cert::CertError::CODES),
        (
            "ChainError",
            akvvm_cert::certificate::chain::ChainError::CODES,
        ),
        ("StoreError", akvvm_cert::store::StoreError::CODES),
        ("HttpError", akvvm::http::HttpError::CODES),
        ("IdentityError", akvvm::identity::IdentityError::CODES),
        ("VaultError", akvvm::vault::VaultError::CODES),
        ("ConnectError", akvvm::sync::connect::ConnectError::CODES),
        ("SetupError", akvvm::sync::SetupError::CODES),
        (
            "StateDirError",
            akvvm::sync::state_dir::StateDirError::CODES,
        ),
        ("SyncError", akvvm::sync::SyncError::CODES),
        ("HookError", akvvm::sync::hook::HookError::CODES),
        ("StatusError", akvvm::status::StatusError::CODES),
        ("AgentError", akvvm::agent::AgentError::CODES),
        ("HandlerError", akvvm::handler::HandlerError::CODES),
        ("LoadError", akvvm::settings::LoadError::CODES),
        ("ValidateError", akvvm::validate::ValidateError::CODES),
        ("WebhookError", akvvm::webhook::WebhookError::CODES),
        ("CscfgError", akvvm::cscfg::CscfgError::CODES),
        ("Untrusted", akvvm::trusted::Untrusted::CODES),
    ]
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The names of the types that invoke `error_codes!` anywhere in the workspace's sources.
fn types_with_codes_in_sources() -> Vec<String> {
    fn walk(dir: &Path, found: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, found);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                let mut lines = text.lines().map(str::trim);
                while let Some(line) = lines.next() {
                    if line.starts_with("//") || !line.ends_with("error_codes! {") {
                        continue;
                    }
                    let name = lines.next().unwrap_or_default();
                    let name = name.split_whitespace().next().unwrap_or_default();
                    found.push(name.to_string());
                }
            }
        }
    }
    let mut found = Vec::new();
    for krate in std::fs::read_dir(workspace().join("crates")).unwrap() {
        let src = krate.unwrap().path().join("src");
        if src.is_dir() {
            walk(&src, &mut found);
        }
    }
    found.sort();
    found
}

/// The agent codes in `docs/errors.md`: the first cell of each table row, when it is a
/// `domain.reason` code (the settings diagnostics, `kebab-case`, are a namespace of their own).
fn documented_codes() -> Vec<String> {
    let text = std::fs::read_to_string(workspace().join("docs/errors.md")).unwrap();
    text.lines()
        .filter_map(|line| line.strip_prefix("| `"))
        .filter_map(|rest| rest.split_once('`').map(|(code, _)| code))
        .filter(|code| code.contains('.'))
        .map(str::to_string)
        .collect()
}

#[test]
fn every_error_type_with_codes_is_checked_here() {
    let mut listed: Vec<String> = every_error_type()
        .iter()
        .map(|(name, _)| name.to_string())
        .collect();
    listed.sort();
    assert_eq!(
        types_with_codes_in_sources(),
        listed,
        "a type uses error_codes! but is not in every_error_type() (or the reverse)"
    );
}

#[test]
fn every_code_is_well_formed_unique_and_documented() {
    let mut owner: BTreeMap<&str, &str> = BTreeMap::new();
    for (name, codes) in every_error_type() {
        for code in codes {
            assert!(
                is_well_formed(code),
                "{name}: {code:?} is not domain.reason"
            );
            if let Some(other) = owner.insert(code, name) {
                panic!("{code:?} is used by both {other} and {name}");
            }
        }
    }
    let documented = documented_codes();
    let mut seen = std::collections::BTreeSet::new();
    for code in &documented {
        assert!(seen.insert(code), "docs/errors.md lists {code} twice");
        assert!(
            owner.contains_key(code.as_str()),
            "docs/errors.md lists {code}, which no error type has"
        );
    }
    let missing: Vec<&&str> = owner
        .keys()
        .filter(|code| !seen.contains(&code.to_string()))
        .collect();
    assert!(missing.is_empty(), "not in docs/errors.md: {missing:?}");
}
