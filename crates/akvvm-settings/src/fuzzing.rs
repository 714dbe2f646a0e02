//! The fuzz harnesses of the settings, handler and `.cscfg` parsers: one function per `cargo fuzz`
//! target (`fuzz/`), shared with the stable regression test that replays every committed corpus
//! and regression input (`crates/akvvm/tests/it/fuzz_corpus.rs`), so that both run the same code.
//! The webhook's harness is in `akvvm::fuzzing`, the decoders' (`pkcs12`, `pem`) in
//! `akvvm_cert::fuzzing`.
//!
//! A harness takes the raw input and returns nothing: whatever the input, the parsers must
//! answer with a value or an error, never panic. Where it is cheap the harness also checks what
//! an answer promises (a report is valid exactly when it has no error, settings the agent
//! accepts also pass `akvvm validate`, ...); a broken promise is a panic, which the fuzzer
//! reports as a crash. Not part of the API: `docs/fuzzing.md` says how to use it.

use std::path::Path;

use serde_json::Value;

use crate::handler::{HandlerEnvironment, HandlerSettings};
use crate::settings::{Diagnostic, Settings};
use crate::validate::{InputKind, ValidationReport};

/// `settings` target: what `akvvm validate` and the agent read. The input is the text of a file
/// (plain settings, an extension resource, a Cloud Services profile, an ARM template or a
/// handler settings file); after a NUL byte, optionally, the text of an ARM parameters file.
pub fn settings(data: &[u8]) {
    let (main, parameters) = match data.iter().position(|&b| b == 0) {
        Some(at) => (&data[..at], Some(&data[at + 1..])),
        None => (data, None),
    };
    let Ok(text) = std::str::from_utf8(main) else {
        return;
    };
    let text = text.trim_start_matches('\u{feff}');
    let parameter_values = parameters
        .and_then(|p| std::str::from_utf8(p).ok())
        .and_then(|p| crate::validate::parse_json(p).ok())
        .and_then(|(value, _)| crate::validate::parameters_from_value(&value).ok())
        .unwrap_or_default();
    let no_parameters = parameter_values.is_empty();
    let report = crate::validate::validate_text(text, parameter_values);
    check_report(&report);

    // The agent's own reader (`Settings::load`): plain JSON, then the settings object.
    let Ok(value) = serde_json::from_str::<Value>(text) else {
        return;
    };
    match Settings::from_json_value(&value) {
        Ok((settings, warnings)) => {
            warnings.iter().for_each(check_diagnostic);
            assert!(
                warnings.iter().all(|d| !d.is_error()),
                "an error as warning"
            );
            serde_json::to_string(&settings).expect("settings serialize");
            if report.kind == InputKind::Settings && no_parameters {
                assert!(
                    report.valid,
                    "settings the agent accepts fail `akvvm validate`: {}",
                    report.render_text()
                );
            }
        }
        Err(diagnostics) => {
            assert!(
                diagnostics.iter().any(Diagnostic::is_error),
                "refused without an error"
            );
            diagnostics.iter().for_each(check_diagnostic);
        }
    }
}

/// `handler` target: the input is read both as `HandlerEnvironment.json` and as a handler
/// `<seq>.settings` file, as the agent reads them once the file is trusted.
pub fn handler(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let dir = Path::new("/var/lib/waagent/Microsoft.Azure.KeyVault.KeyVaultForLinux-3.0.0");
    match HandlerEnvironment::parse(&dir.join("HandlerEnvironment.json"), text) {
        Ok(env) => {
            for folder in [&env.log_folder, &env.config_folder, &env.status_folder] {
                assert!(folder.is_absolute(), "a relative folder {folder:?}");
            }
            if let Some(heartbeat) = &env.heartbeat_file {
                assert!(heartbeat.is_absolute(), "a relative heartbeat file");
            }
        }
        Err(error) => check_error(error.code(), &error),
    }
    match HandlerSettings::parse(&dir.join("config/0.settings"), 0, text) {
        Ok(handler_settings) => {
            assert!(
                handler_settings.public_settings.is_object()
                    || handler_settings.public_settings.is_string(),
                "public settings neither an object nor a string"
            );
            match handler_settings.validate(None) {
                Ok(settings) => {
                    serde_json::to_string(&settings).expect("settings serialize");
                }
                Err(error) => check_error(error.code(), &error),
            }
        }
        Err(error) => check_error(error.code(), &error),
    }
}

/// `cscfg` target: the input is a Cloud Services `.cscfg`, checked against an empty machine.
pub fn cscfg(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match crate::cscfg::parse(Path::new("ServiceConfiguration.Cloud.cscfg"), text) {
        Ok(certificates) => {
            for certificate in &certificates {
                assert!(certificate.line >= 1, "line 0");
                if let Ok(thumbprint) = crate::cscfg::normalize_thumbprint(&certificate.thumbprint)
                {
                    assert_eq!(thumbprint.len(), 40);
                    assert!(
                        thumbprint
                            .bytes()
                            .all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b)),
                        "thumbprint {thumbprint:?} is not upper-case hex"
                    );
                }
            }
            let mut installed = crate::cscfg::Installed::default();
            installed.add(
                "0123456789ABCDEF0123456789ABCDEF01234567",
                crate::cscfg::Location {
                    file: "/var/lib/waagent/0123456789ABCDEF0123456789ABCDEF01234567.crt".into(),
                    url: None,
                },
            );
            let findings = crate::cscfg::check(&certificates, &installed);
            assert_eq!(findings.len(), certificates.len());
            serde_json::to_string(&findings).expect("findings serialize");
        }
        Err(error) => check_error(error.code(), &error),
    }
}

/// A validation report is valid exactly when it has no error, and renders.
fn check_report(report: &ValidationReport) {
    assert_eq!(report.valid, !report.has_errors(), "valid disagrees");
    report.all_diagnostics().for_each(check_diagnostic);
    assert!(!report.render_text().is_empty());
    serde_json::to_string(report).expect("the report serializes");
}

fn check_diagnostic(diagnostic: &Diagnostic) {
    assert!(!diagnostic.code.is_empty(), "a diagnostic without code");
    assert!(
        !diagnostic.message.is_empty(),
        "a diagnostic without message"
    );
}

fn check_error(code: &str, error: &dyn std::fmt::Display) {
    assert!(
        akvvm_cert::codes::is_well_formed(code),
        "bad error code {code:?}"
    );
    assert!(!error.to_string().is_empty(), "an empty error message");
}
