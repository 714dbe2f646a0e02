//! The `cscfg` fuzz target: [`akvvm_settings::fuzzing::cscfg`] on every input
//! (docs/fuzzing.md).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| akvvm_settings::fuzzing::cscfg(data));
