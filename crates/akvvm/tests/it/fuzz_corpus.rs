//! The fuzz targets' committed inputs (`fuzz/corpus`, `fuzz/regressions`) replayed on stable
//! through the harnesses the fuzzers run (`akvvm_settings::fuzzing`, `akvvm::fuzzing`): a parser
//! that panics on one of them, or breaks a promise the harness checks, fails here on every run.

use akvvm_testkit::fuzz::replay;

#[test]
fn settings_inputs_parse_without_panicking() {
    replay("settings", akvvm_settings::fuzzing::settings);
}

#[test]
fn handler_inputs_parse_without_panicking() {
    replay("handler", akvvm_settings::fuzzing::handler);
}

#[test]
fn webhook_inputs_parse_without_panicking() {
    replay("webhook", akvvm::fuzzing::webhook);
}

#[test]
fn cscfg_inputs_parse_without_panicking() {
    replay("cscfg", akvvm_settings::fuzzing::cscfg);
}
