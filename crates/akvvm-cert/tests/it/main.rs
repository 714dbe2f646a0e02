//! akvvm-cert's integration tests, one binary with one module per area (one link instead of one
//! per file, as uv and ripgrep do). Helpers and fixture files come from `akvvm-testkit`. The
//! SIGKILL crash tests are binaries of their own (`tests/crash_store.rs` says why) and, with the
//! work counts at 1,000 certificates (`tests/slow`), belong to the slow tier that `scripts/test`
//! runs and `cargo test --workspace` leaves out.

mod certificate_chain;
mod certificate_errors;
mod fuzz_corpus;
mod keyvault_answers;
mod pkcs12_encode;
mod pkcs12_fixtures;
mod store_install;
mod store_path;
mod store_v4;
