//! akvvm-cert's integration tests, one binary with one module per area (one link instead of one
//! per file, as uv and ripgrep do). Helpers and fixture files come from `akvvm-testkit`. The
//! SIGKILL crash test is a binary of its own: `tests/crash_store.rs` says why.

mod certificate_chain;
mod certificate_errors;
mod fuzz_corpus;
mod keyvault_answers;
mod pkcs12_encode;
mod pkcs12_fixtures;
mod store_install;
mod store_path;
mod store_v4;
mod store_work;
