//! The `handler` fuzz target: [`akvvm_settings::fuzzing::handler`] on every input
//! (docs/fuzzing.md).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| akvvm_settings::fuzzing::handler(data));
