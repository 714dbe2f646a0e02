//! What akvvm's tests and benches share, in one place (a dev-dependency of every crate; never
//! published).
//!
//! | module | what it holds | used by |
//! | --- | --- | --- |
//! | [`harness`] | the local vault in-process with a vault, an identity and settings pointing at it; one sync cycle; store snapshots; `eventually` | the agent's and the CLI's end-to-end tests |
//! | [`servers`] | a test CA, https and http servers on `127.0.0.1:0` serving axum routers, client certificates, a fast retry policy, [`servers::HostileVault`] (a Key Vault answering what the local vault never would) | the identity, vault client and hostile server tests |
//! | [`accounts`] | Linux users and groups made for one test (root), removed when dropped | ACL and file ownership tests |
//! | [`certs`] | a generated root, intermediate and leaf decoded by akvvm's own PEM decoder; PEM labels; [`certs::assert_same_secret`], which never prints key material | the store tests and benches |
//! | [`proxy`] | a minimal CONNECT proxy on loopback that counts its tunnels | the proxy tests (environment and waagent.conf) |
//! | [`sdk`] | an HTTP client that trusts the local vault, an IMDS credential and the official SDK's secret client; [`sdk::assert_value`], which never prints a secret | the emulator's SDK tests |
//! | [`files`] | a file's permission bits, a directory's sorted entries | the store's unit and integration tests |
//! | [`fluent`] | a Fluentd collector (Forward protocol over TCP or a unix socket, acks, stop and restart) | the log forwarding tests |
//! | [`fuzz`] | the committed fuzz corpus and regression inputs (`fuzz/corpus`, `fuzz/regressions`), replayed through a harness | the stable fuzz regression tests of akvvm and akvvm-cert |
//! | [`fixtures`] | the fixture files under `crates/akvvm-testkit/fixtures/` (`pem/`, `pkcs12/`, `recordings/`, `settings/`) | every crate's tests, benches and unit tests |
//!
//! A unit test inside `src/` of akvvm or akvvm-cert sees this crate's copy of those crates as a
//! different crate: it may only use what exchanges no akvvm type, i.e. [`fixtures`] and [`files`].
//!
//! To add a helper: put it in the module of its kind, or a new module with its own `//!` doc and
//! a row above; add a fixture file under the directory of its format, with a README line saying
//! where it comes from.

pub mod accounts;
pub mod certs;
pub mod chains;
pub mod files;
pub mod fixtures;
pub mod fluent;
pub mod fuzz;
pub mod harness;
pub mod proxy;
pub mod sdk;
pub mod servers;
