//! akvvm's integration tests, one binary with one module per area (one link instead of one per
//! file, as uv and ripgrep do): the agent end to end against the local vault (`e2e_*`), the
//! identities and the vault client against real HTTP(S) servers (`identity_*`, `vault_*`),
//! hostile Key Vault answers (`hostile_servers`),
//! settings and `validate` (`settings_*`, `validate_fixtures`) and the error codes. Helpers and
//! fixture files come from `akvvm-testkit`.

mod e2e_auth_override;
mod e2e_batch_hook;
mod e2e_chain;
mod e2e_daemon;
mod e2e_file_access;
mod e2e_identity;
mod e2e_list;
mod e2e_metrics;
mod e2e_msi_forms;
mod e2e_network_rules;
mod e2e_prune_removed;
mod e2e_push_work;
mod e2e_sync;
mod e2e_v4;
mod e2e_waagent_proxy;
mod e2e_webhook;
mod error_codes;
mod fuzz_corpus;
mod hostile_servers;
mod identity_arc;
mod identity_bootstrap;
mod identity_imds;
mod logship;
mod settings_bad_inputs;
mod settings_docs;
mod settings_fixtures;
mod settings_mode;
mod settings_proptest;
mod settings_v4;
mod state_file;
mod v3_documented;
mod validate_fixtures;
mod vault_client;
mod vault_emulator;
