//! The `settings` fuzz target: [`akvvm_settings::fuzzing::settings`] on every input
//! (docs/fuzzing.md).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| akvvm_settings::fuzzing::settings(data));
