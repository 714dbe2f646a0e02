//! The `akvvm` binary's tests, one test binary with one module per area (one link instead of one
//! per file, as uv and ripgrep do): end to end against the local vault (`e2e_cli`), Microsoft's documented examples (`docs_examples`, needs root), `inspect`, the fault matrix (`fault_matrix`, one file per group of faults), SIGKILL at random moments
//! (`crash_safety`),
//! `validate`, the README's commands, local attackers (`hardening_cli`, `privilege`, which needs
//! root) and secrets kept out of every output (`secret_hygiene`). Helpers and fixture files come from `akvvm-testkit`.

mod agent_command;
mod crash_safety;
mod docs_examples;
mod docs_examples_v4;
mod e2e_cli;
mod e2e_cli_v4;
mod extension_dir;
mod fault_matrix;
mod hardening_cli;
mod inspect_cli;
mod logship_cli;
mod privilege;
mod readme;
mod secret_hygiene;
mod validate_cli;
