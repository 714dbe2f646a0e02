//! The `akvvm` binary's tests (the fast tier), one test binary with one module per area (one
//! link instead of one per file, as uv and ripgrep do): end to end against the local vault
//! (`e2e_cli`, `e2e_cli_v4`), `inspect`, `validate`, the README's commands, local attackers
//! (`hardening_cli`) and log shipping. The slow tier (`tests/slow`: crash loops, the fault
//! matrix, the documented examples, privilege and secret-hygiene runs) is its own target, run by
//! `scripts/test`. Helpers and fixture files come from `akvvm-testkit`.

mod agent_command;
mod e2e_cli;
mod e2e_cli_v4;
mod extension_dir;
mod hardening_cli;
mod inspect_cli;
mod logship_cli;
mod readme;
mod validate_cli;
