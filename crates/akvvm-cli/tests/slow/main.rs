//! The `akvvm` binary's slow tests, a target of their own that `cargo test --workspace` leaves
//! out and `scripts/test` runs (`cargo test -p akvvm-cli --test slow`): SIGKILL at random
//! moments (`crash_safety`), the fault matrix (`fault_matrix`, one file per group of faults),
//! Microsoft's documented examples installed against the local vault (`docs_examples`,
//! `docs_examples_v4`), a local unprivileged attacker (`privilege`, needs root) and secrets kept
//! out of every output at trace level (`secret_hygiene`). The helpers are the fast tier's
//! (`tests/it`); each tier uses some of them.

#[allow(dead_code)]
#[path = "../it/agent_command.rs"]
mod agent_command;
#[allow(dead_code)]
#[path = "../it/extension_dir.rs"]
mod extension_dir;

mod crash_safety;
mod docs_examples;
mod docs_examples_v4;
mod fault_matrix;
mod privilege;
mod secret_hygiene;
