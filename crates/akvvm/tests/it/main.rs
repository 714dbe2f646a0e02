//! akvvm's integration tests, one binary with one module per area (one link instead of one per
//! file, as uv and ripgrep do): the agent end to end against the local vault (`e2e_*`), the
//! identities and the vault client against real HTTP(S) servers (`identity_*`, `vault_*`),
//! hostile Key Vault answers (`hostile_servers`),
//! settings and `validate` (`settings_*`, `validate_fixtures`) and the error codes. Helpers and
//! fixture files come from `akvvm-testkit`.

mod e2e_daemon;
mod e2e_identity;
mod e2e_list;
mod e2e_metrics;
mod e2e_sync;
mod e2e_webhook;
mod error_codes;
mod fuzz_corpus;
mod hostile_servers;
mod identity_arc;
mod identity_bootstrap;
mod identity_imds;
mod settings_bad_inputs;
mod settings_docs;
mod settings_fixtures;
mod settings_proptest;
mod validate_fixtures;
mod vault_client;
mod vault_emulator;
