//! The fuzz targets' committed inputs (`fuzz/corpus`, `fuzz/regressions`) replayed on stable
//! through the harnesses the fuzzers run (`akvvm_cert::fuzzing`): a decoder that panics on one
//! of them, or breaks a promise the harness checks, fails here on every run.

use akvvm_testkit::fuzz::replay;

#[test]
fn pkcs12_inputs_decode_without_panicking() {
    replay("pkcs12", akvvm_cert::fuzzing::pkcs12);
}

#[test]
fn pem_inputs_decode_without_panicking() {
    replay("pem", akvvm_cert::fuzzing::pem);
}
