//! The `cscfg` fuzz target: [`akvvm::fuzzing::cscfg`] on every input (docs/fuzzing.md).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| akvvm::fuzzing::cscfg(data));
