//! The `pem` fuzz target: [`akvvm_cert::fuzzing::pem`] on every input (docs/fuzzing.md).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| akvvm_cert::fuzzing::pem(data));
