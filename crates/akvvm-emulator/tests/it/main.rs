//! The local vault's integration tests, one binary with one module per area (one link instead of
//! one per file, as uv and ripgrep do): the official Rust SDK against it (`sdk_conformance`),
//! Entra ID, IMDS, certificates, seed and persistence (`entra_imds_certificates`), what real
//! IMDS and Key Vault do that the SDKs rely on (`fidelity`), the certificate operation
//! (`pending`), replay of real Key Vault answers from the Azure SDKs' recordings (`recordings`),
//! and the README's demo (`demo`). Helpers come from `akvvm-testkit`; the Python SDK tests are in
//! `tests/python/`.

mod deletion;
mod demo;
mod entra_imds_certificates;
mod fidelity;
mod pending;
mod recordings;
mod sdk_conformance;
mod throttle;
