//! The `pkcs12` fuzz target: [`akvvm_cert::fuzzing::pkcs12`] on every input (docs/fuzzing.md).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| akvvm_cert::fuzzing::pkcs12(data));
