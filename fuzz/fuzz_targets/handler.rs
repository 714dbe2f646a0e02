//! The `handler` fuzz target: [`akvvm::fuzzing::handler`] on every input (docs/fuzzing.md).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| akvvm::fuzzing::handler(data));
