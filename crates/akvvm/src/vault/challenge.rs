//! Key Vault's 401 challenge (`WWW-Authenticate: Bearer authorization=…, resource=…`): the
//! tenant it names, and whether a token for it may go to a request's host.

use url::Url;

use crate::identity::is_valid_tenant;

/// The Key Vault challenge's parameters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Challenge {
    /// `authorization` (or `authorization_uri`): `https://login.windows.net/{tenant}`.
    pub authorization: Option<String>,
    /// `resource`, or `scope` without `/.default`: `https://vault.azure.net`.
    pub resource: Option<String>,
}

impl Challenge {
    /// Parses a `WWW-Authenticate: Bearer k="v", …` value.
    pub fn parse(header: &str) -> Option<Self> {
        let rest = header.trim();
        let rest = rest
            .strip_prefix("Bearer")
            .or_else(|| rest.strip_prefix("bearer"))?;
        let mut authorization = None;
        let mut resource = None;
        let mut scope = None;
        let mut remaining = rest;
        while let Some(eq) = remaining.find("=\"") {
            let key = remaining[..eq]
                .trim()
                .trim_start_matches(',')
                .trim()
                .to_ascii_lowercase();
            let after = &remaining[eq + 2..];
            let end = after.find('"')?;
            let value = after[..end].to_owned();
            match key.as_str() {
                "authorization" | "authorization_uri" => authorization = Some(value),
                "resource" => resource = Some(value),
                "scope" => scope = Some(value),
                _ => {}
            }
            remaining = &after[end + 1..];
        }
        let resource = resource
            .or_else(|| scope.map(|s| s.strip_suffix("/.default").unwrap_or(&s).to_owned()));
        Some(Self {
            authorization,
            resource,
        })
    }

    /// The tenant: the first path segment of `authorization`, when it looks like one.
    pub fn tenant(&self) -> Option<String> {
        let url = Url::parse(self.authorization.as_deref()?).ok()?;
        let tenant = url.path_segments()?.find(|s| !s.is_empty())?.to_owned();
        is_valid_tenant(&tenant).then_some(tenant)
    }

    /// Whether a token for this challenge may go to `request`: https, and the request host ends
    /// with `.{resource host}`.
    pub fn covers(&self, request: &Url) -> bool {
        let Some(resource_host) = self
            .resource
            .as_deref()
            .and_then(|r| Url::parse(r).ok())
            .and_then(|u| u.host_str().map(str::to_ascii_lowercase))
        else {
            return false;
        };
        let Some(host) = request.host_str().map(str::to_ascii_lowercase) else {
            return false;
        };
        request.scheme() == "https" && host.ends_with(&format!(".{resource_host}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenge_parsing_resource_and_scope_forms() {
        let c = Challenge::parse(
            r#"Bearer authorization="https://login.windows.net/72f988bf-86f1-41af-91ab-2d7cd011db47", resource="https://vault.azure.net""#,
        )
        .unwrap();
        assert_eq!(c.resource.as_deref(), Some("https://vault.azure.net"));
        assert_eq!(
            c.tenant().as_deref(),
            Some("72f988bf-86f1-41af-91ab-2d7cd011db47")
        );
        let s = Challenge::parse(
            r#"Bearer scope="https://vault.azure.net/.default", authorization="https://login.microsoftonline.com/contoso.onmicrosoft.com""#,
        )
        .unwrap();
        assert_eq!(s.resource.as_deref(), Some("https://vault.azure.net"));
        assert_eq!(s.tenant().as_deref(), Some("contoso.onmicrosoft.com"));
        assert!(Challenge::parse("Basic realm=\"x\"").is_none());
    }

    #[test]
    fn challenge_covers_only_https_subdomains_of_the_resource() {
        let c = Challenge {
            authorization: None,
            resource: Some("https://vault.azure.net".into()),
        };
        let url = |s: &str| Url::parse(s).unwrap();
        assert!(c.covers(&url("https://myvault.vault.azure.net/secrets/x")));
        assert!(!c.covers(&url("http://myvault.vault.azure.net/secrets/x")));
        assert!(!c.covers(&url("https://vault.azure.net.evil.com/secrets/x")));
        assert!(!c.covers(&url("https://myvaultvault.azure.net/secrets/x")));
        assert!(!c.covers(&url("https://vault.azure.net/secrets/x")));
    }

    #[test]
    fn tenant_must_look_like_a_tenant() {
        let c = Challenge {
            authorization: Some("https://login.windows.net/a%2Fb".into()),
            resource: None,
        };
        assert_eq!(c.tenant(), None);
    }
}
