//! Name resolution for the HTTP client: the system resolver (`getaddrinfo`, as reqwest's
//! default), except for names RFC 6761 reserves never to resolve. A host under `.invalid` fails
//! at once without a query leaving the machine, as RFC 6761 §6.4 asks of resolver libraries;
//! `akvvm.resolve` overrides still come first (reqwest applies them in front of this resolver).

use std::net::SocketAddr;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// The reserved top-level name that never resolves (RFC 6761 §6.4).
const INVALID_TLD: &str = "invalid";

/// Whether `host` is `invalid` or a name under it (a trailing dot and case ignored).
pub fn is_reserved_invalid(host: &str) -> bool {
    let host = host.trim_end_matches('.');
    let last = host.rsplit('.').next().unwrap_or(host);
    last.eq_ignore_ascii_case(INVALID_TLD)
}

/// A host name that is reserved never to resolve.
#[derive(Debug, thiserror::Error)]
#[error(
    "the host name {host:?} is under .invalid, which never resolves (RFC 6761); no DNS query \
     was sent; correct the vault URL or map the name with akvvm.resolve"
)]
pub struct ReservedName {
    host: String,
}

/// The system resolver, refusing `.invalid` names without a query.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemResolver;

impl Resolve for SystemResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            if is_reserved_invalid(&host) {
                return Err(Box::new(ReservedName { host }) as _);
            }
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_names_under_invalid_are_reserved() {
        for host in [
            "invalid",
            "contoso.vault.invalid",
            "x.INVALID.",
            "a.b.invalid",
        ] {
            assert!(is_reserved_invalid(host), "{host}");
        }
        for host in [
            "contoso.vault.azure.net",
            "invalid.example.com",
            "localhost",
            "",
        ] {
            assert!(!is_reserved_invalid(host), "{host}");
        }
    }

    #[tokio::test]
    async fn an_invalid_name_fails_at_once_and_says_why() {
        let name: Name = "contoso.vault.invalid".parse().unwrap();
        let err = match SystemResolver.resolve(name).await {
            Ok(_) => panic!("a .invalid name resolved"),
            Err(err) => err,
        };
        let text = err.to_string();
        assert!(text.contains("contoso.vault.invalid"), "{text}");
        assert!(text.contains("RFC 6761"), "{text}");
    }

    #[tokio::test]
    async fn other_names_go_to_the_system_resolver() {
        let name: Name = "localhost".parse().unwrap();
        let addrs: Vec<SocketAddr> = SystemResolver.resolve(name).await.unwrap().collect();
        assert!(addrs.iter().all(|a| a.ip().is_loopback()), "{addrs:?}");
        assert!(!addrs.is_empty());
    }
}
