//! Pre-authentication: the first request to a vault carries a token when its cloud is known from
//! the vault's DNS name, instead of first collecting Key Vault's 401 challenge.
//!
//! The official client sends each request without a token until a 401 challenge has told it the
//! resource (and tenant); with 1,000 agents booting together that is one extra request per agent
//! against a vault's throttling limit. Key Vault's resource follows from its DNS suffix in every
//! cloud (`{vault}.vault.azure.net` -> `https://vault.azure.net`, and the sovereign clouds'
//! suffixes below), so for a managed identity (which needs no tenant) the transport asks for
//! `{resource}/.default` and sends the token with the request. The rule of the challenge path
//! holds: a token only goes over https to a host under its resource's host, here by construction.
//!
//! Any 401 to a pre-authenticated request turns pre-authentication off for that vault client and
//! is handed to the official client, which then runs the challenge path as before (the token is
//! dropped from the cache, as for any refused token). A vault on an unknown suffix (a private
//! cloud), an identity that needs the challenge's tenant (the bootstrap certificate), or a token
//! that cannot be had, all use the challenge path.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use azure_core::credentials::TokenCredential;
use azure_core::http::Request;
use azure_core::http::headers::AUTHORIZATION;

use crate::identity::{Identity, TenantSlot};

/// Key Vault's DNS suffixes and their resources: public Azure, Azure China, Azure US Government,
/// Azure Germany (classic).
const KNOWN_SUFFIXES: [&str; 4] = [
    "vault.azure.net",
    "vault.azure.cn",
    "vault.usgovcloudapi.net",
    "vault.microsoftazure.de",
];

/// The Key Vault resource for `host` when its suffix is a known cloud's:
/// `https://vault.azure.net` for `myvault.vault.azure.net`.
pub fn known_resource(host: &str) -> Option<String> {
    let host = host.to_ascii_lowercase();
    KNOWN_SUFFIXES
        .iter()
        .find(|suffix| {
            host.strip_suffix(*suffix)
                .and_then(|name| name.strip_suffix('.'))
                .is_some_and(|name| !name.is_empty() && !name.contains('.'))
        })
        .map(|suffix| format!("https://{suffix}"))
}

/// Adds a token to requests of one vault client while the vault accepts them.
pub(super) struct PreAuth {
    scope: String,
    credential: Arc<dyn TokenCredential>,
    on: AtomicBool,
}

impl std::fmt::Debug for PreAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PreAuth")
            .field("scope", &self.scope)
            .field("on", &self.on)
            .finish_non_exhaustive()
    }
}

impl PreAuth {
    /// Pre-authentication for the vault at `host` (reached over https), when its cloud is known
    /// and `identity` needs no tenant from the challenge.
    pub(super) fn for_vault(host: &str, identity: &Identity) -> Option<Self> {
        if identity.needs_tenant() {
            return None;
        }
        let resource = known_resource(host)?;
        Some(Self {
            scope: format!("{resource}/.default"),
            credential: identity.credential_for(TenantSlot::new()),
            on: AtomicBool::new(true),
        })
    }

    /// `request` with a token, when pre-authentication is on and a token was had; `None` sends
    /// `request` as the official client made it.
    pub(super) async fn authorize(&self, request: &Request) -> Option<Request> {
        if !self.on.load(Ordering::SeqCst)
            || request.url().scheme() != "https"
            || request.headers().get_optional_str(&AUTHORIZATION).is_some()
        {
            return None;
        }
        let token = match self
            .credential
            .get_token(&[self.scope.as_str()], None)
            .await
        {
            Ok(token) => token,
            Err(error) => {
                // The challenge path asks again and reports the failure in its own words.
                tracing::debug!(%error, "no token for pre-authentication; using the challenge");
                return None;
            }
        };
        let mut request = request.clone();
        request.insert_header(AUTHORIZATION, format!("Bearer {}", token.token.secret()));
        Some(request)
    }

    /// A pre-authenticated request got a 401: the challenge path from now on.
    pub(super) fn refused(&self) {
        if self.on.swap(false, Ordering::SeqCst) {
            tracing::info!(scope = %self.scope, "the vault refused a pre-authenticated request; using its challenge");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_resource_follows_from_a_known_suffix_only() {
        assert_eq!(
            known_resource("myvault.vault.azure.net").as_deref(),
            Some("https://vault.azure.net")
        );
        assert_eq!(
            known_resource("MyVault.Vault.Azure.CN").as_deref(),
            Some("https://vault.azure.cn")
        );
        assert_eq!(
            known_resource("v.vault.usgovcloudapi.net").as_deref(),
            Some("https://vault.usgovcloudapi.net")
        );
        for host in [
            "vault.azure.net",
            ".vault.azure.net",
            "a.b.vault.azure.net",
            "myvault.vault.azure.net.evil.example",
            "myvaultvault.azure.net",
            "myvault.vault.example.com",
            "127.0.0.1",
        ] {
            assert_eq!(known_resource(host), None, "{host}");
        }
    }
}
