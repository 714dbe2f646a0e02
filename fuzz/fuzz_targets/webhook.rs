//! The `webhook` fuzz target: [`akvvm::fuzzing::webhook`] on every input (docs/fuzzing.md).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| akvvm::fuzzing::webhook(data));
