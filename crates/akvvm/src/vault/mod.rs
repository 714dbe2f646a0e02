//! Key Vault access: reading secrets through the official `azure_security_keyvault_secrets`
//! client, with akvvm's identities, HTTP client and retry policy.
//!
//! One [`VaultClient`] per vault: it owns one pooled reqwest client (built by
//! [`crate::http::build_client`], so extra CA roots, host overrides and `HTTPS_PROXY` apply) and
//! one SDK `SecretClient` on top of it.
//!
//! How a request flows:
//! 1. The SDK's Key Vault authorization policy sends the first request without a token.
//! 2. Key Vault answers 401 with `WWW-Authenticate: Bearer authorization="…/{tenant}",
//!    resource="https://vault.azure.net"`. akvvm's transport ([`VaultTransport`]) reads the
//!    tenant from it into the vault's [`TenantSlot`](crate::identity::TenantSlot) (only when the request was https and its
//!    host ends with `.{resource host}`); the bootstrap credential needs that tenant.
//! 3. The SDK checks the same host rule (`verify_challenge_resource`, always on) and refuses
//!    tokens over plain http, then asks the credential for `{resource}/.default` and repeats
//!    the request with the token. So a token only ever goes over https to a host under the
//!    challenge's resource host.
//!
//! Retries: azure_core's own retry policy is turned off (`RetryOptions::none()`), and the
//! transport retries 429 and 5xx (and connection failures) with akvvm's [`RetryPolicy`](crate::http::RetryPolicy)
//! (exponential backoff, full jitter, `Retry-After` honoured), so retries are never doubled and
//! one policy, as data, governs every request akvvm sends.
//!
//! Errors are [`VaultError`]s, each with a stable [`VaultError::code`], naming the identity, the
//! vault and, for permission problems, the missing right.//!
//! Modules:
//! - `client`: [`VaultClient`], [`VaultOptions`] and what a read returns ([`SecretBundle`]).
//! - `errors`: [`VaultError`], its codes, and the mapping from the SDK's errors (HTTP status and
//!   Key Vault's error document) to it.
//! - `transport`: [`VaultTransport`], the SDK's HTTP client with akvvm's retries.
//! - `challenge`: [`Challenge`], the 401 challenge's tenant and resource.
//! - `preauth`: the first request carries a token when the vault's DNS suffix names its cloud
//!   ([`known_resource`]), saving the challenge round trip; a 401 falls back to the challenge.

mod challenge;
mod client;
mod errors;
mod preauth;
mod transport;

pub use challenge::Challenge;
pub use client::{
    LIST_PAGE_SIZE, ListedSecret, SecretBundle, SecretList, VaultClient, VaultOptions,
    split_secret_id,
};
pub use errors::{REQUIRED_RIGHT, VaultError};
pub use preauth::known_resource;
pub use transport::VaultTransport;
