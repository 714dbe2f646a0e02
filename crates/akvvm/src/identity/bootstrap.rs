//! The bootstrap certificate credential (Cloud Services, `KeyVaultForPaaS`): an Entra
//! application authenticating with a certificate installed on the machine.
//!
//! Certificate and key files are decoded by the store's decoder (`akvvm-cert`); only the cheap
//! subject pre-check (is this file's certificate the one named in the settings?) splits PEM here,
//! so that unrelated files' keys are never decoded.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use akvvm_cert::certificate::{KeyType, pem_blocks, subject_common_name};
use azure_core::credentials::{AccessToken, TokenCredential, TokenRequestOptions};
use rsa::RsaPrivateKey;
use rsa::pkcs8::DecodePrivateKey;
use time::OffsetDateTime;
use url::Url;
use zeroize::Zeroizing;

use super::imds::read_token_answer;
use super::{
    AssertionAlgorithm, IdentityError, TenantSlot, TokenCache, build_client_assertion, single_scope,
};
use crate::http::{self, HttpOptions, RetryPolicy};

/// Where the Linux guest agent puts `osProfile.secrets` certificates as `<THUMBPRINT>.crt` and
/// `<THUMBPRINT>.prv`.
pub const DEFAULT_WAAGENT_DIR: &str = "/var/lib/waagent";

/// A place where installed certificates are looked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CertificateSource {
    /// A directory of PEM files each holding certificates and their private key (akvvm's
    /// store layout: leaf, chain, then the key). Symbolic links are skipped (they point at
    /// files that are scanned anyway).
    Store(PathBuf),
    /// A directory of `<THUMBPRINT>.crt` + `<THUMBPRINT>.prv` pairs (the guest agent's layout).
    Pairs(PathBuf),
}

impl CertificateSource {
    /// The certificate store directory and the guest agent's directory.
    pub fn defaults(store: &Path) -> Vec<Self> {
        vec![
            CertificateSource::Store(store.to_owned()),
            CertificateSource::Pairs(PathBuf::from(DEFAULT_WAAGENT_DIR)),
        ]
    }

    fn dir(&self) -> &Path {
        match self {
            CertificateSource::Store(dir) | CertificateSource::Pairs(dir) => dir,
        }
    }
}

/// A certificate with its RSA private key, ready to sign client assertions.
#[derive(Clone)]
pub struct BootstrapCertificate {
    /// The file the certificate came from.
    pub path: PathBuf,
    /// The subject CN.
    pub subject_cn: String,
    /// SHA-1 of the DER certificate, upper-case hex.
    pub thumbprint: String,
    /// Start of validity.
    pub not_before: OffsetDateTime,
    /// End of validity.
    pub not_after: OffsetDateTime,
    certificate_der: Vec<u8>,
    key: RsaPrivateKey,
}

impl std::fmt::Debug for BootstrapCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BootstrapCertificate")
            .field("path", &self.path)
            .field("subject_cn", &self.subject_cn)
            .field("thumbprint", &self.thumbprint)
            .field("not_before", &self.not_before)
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

/// What a file turned out to hold.
enum Candidate {
    Usable(Box<BootstrapCertificate>),
    /// The right subject, but not usable: the reason.
    Rejected(String),
    /// The right subject with a key that is not RSA.
    NonRsa {
        path: String,
        algorithm: String,
    },
    /// Another subject, no key, or not a certificate at all.
    Unrelated,
}

impl BootstrapCertificate {
    /// Decodes a certificate and its key from PEM with the store's decoder
    /// ([`akvvm_cert::certificate::decode_pem`]): `certificates` holds one or more `CERTIFICATE`
    /// blocks, `key` the private key (they may be the same text, as in akvvm's store files).
    /// The certificate the key belongs to is the one used; its key must be RSA. `path` names
    /// the source in errors.
    pub fn from_pem(path: &Path, certificates: &str, key: &str) -> Result<Self, IdentityError> {
        let invalid = |reason: String| IdentityError::InvalidCertificateFile {
            path: path.display().to_string(),
            reason,
        };
        let text = if certificates == key {
            Zeroizing::new(key.to_owned())
        } else {
            Zeroizing::new(format!("{certificates}\n{key}"))
        };
        let bundle =
            akvvm_cert::certificate::decode_pem(&text).map_err(|err| invalid(err.to_string()))?;
        if !matches!(bundle.key.key_type(), KeyType::Rsa { .. }) {
            return Err(IdentityError::NonRsaKey {
                path: path.display().to_string(),
                algorithm: bundle.key.key_type().to_string(),
            });
        }
        let key = RsaPrivateKey::from_pkcs8_der(bundle.key.pkcs8_der())
            .map_err(|err| invalid(format!("bad RSA key: {err}")))?;
        Ok(Self {
            path: path.to_owned(),
            subject_cn: bundle
                .leaf
                .subject_common_name()
                .unwrap_or_default()
                .to_owned(),
            thumbprint: bundle.leaf.thumbprint(),
            not_before: bundle.leaf.not_before,
            not_after: bundle.leaf.not_after,
            certificate_der: bundle.leaf.der().to_vec(),
            key,
        })
    }

    /// The DER certificate.
    pub fn certificate_der(&self) -> &[u8] {
        &self.certificate_der
    }

    /// Whether the certificate is valid at `now`.
    pub fn is_valid_at(&self, now: OffsetDateTime) -> bool {
        self.not_before <= now && now <= self.not_after
    }
}

/// Finds the newest certificate valid at `now` whose subject CN equals `subject` (compared
/// without case; a leading `CN=` is ignored) and whose RSA private key is installed beside it.
pub fn find_bootstrap_certificate(
    subject: &str,
    sources: &[CertificateSource],
    now: OffsetDateTime,
) -> Result<BootstrapCertificate, IdentityError> {
    let wanted = subject.trim();
    let wanted = wanted
        .strip_prefix("CN=")
        .or_else(|| wanted.strip_prefix("cn="))
        .unwrap_or(wanted);
    let mut usable = Vec::new();
    let mut rejected = Vec::new();
    let mut non_rsa = None;
    for source in sources {
        let entries = match std::fs::read_dir(source.dir()) {
            Ok(entries) => entries,
            Err(err) => {
                tracing::debug!(dir = %source.dir().display(), error = %err, "certificate directory not readable");
                continue;
            }
        };
        let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        paths.sort();
        for path in paths {
            let candidate = match source {
                CertificateSource::Store(_) => examine_store_file(&path, wanted, now),
                CertificateSource::Pairs(_) => {
                    if path.extension().and_then(|e| e.to_str()) != Some("crt") {
                        continue;
                    }
                    examine_pair(&path, &path.with_extension("prv"), wanted, now)
                }
            };
            match candidate {
                Candidate::Usable(cert) => usable.push(cert),
                Candidate::Rejected(reason) => rejected.push(reason),
                Candidate::NonRsa { path, algorithm } => {
                    rejected.push(format!("{path}: {algorithm} key"));
                    non_rsa.get_or_insert((path, algorithm));
                }
                Candidate::Unrelated => {}
            }
        }
    }
    usable.sort_by_key(|c| (c.not_before, c.not_after));
    if let Some(best) = usable.pop() {
        tracing::info!(
            path = %best.path.display(),
            thumbprint = %best.thumbprint,
            not_after = %best.not_after,
            "bootstrap certificate selected"
        );
        return Ok(*best);
    }
    if let Some((path, algorithm)) = non_rsa
        && rejected.len() == 1
    {
        return Err(IdentityError::NonRsaKey { path, algorithm });
    }
    Err(IdentityError::CertificateNotFound {
        subject: wanted.to_owned(),
        searched: sources
            .iter()
            .map(|s| s.dir().display().to_string())
            .collect::<Vec<_>>()
            .join(", "),
        rejected,
    })
}

fn examine_store_file(path: &Path, wanted: &str, now: OffsetDateTime) -> Candidate {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_file() => {}
        _ => return Candidate::Unrelated,
    }
    let Ok(text) = std::fs::read(path).map(Zeroizing::new) else {
        return Candidate::Unrelated;
    };
    let Ok(text) = std::str::from_utf8(&text) else {
        return Candidate::Unrelated;
    };
    if !text.contains("-----BEGIN CERTIFICATE-----") {
        return Candidate::Unrelated;
    }
    examine(path, text, text, wanted, now)
}

fn examine_pair(crt: &Path, prv: &Path, wanted: &str, now: OffsetDateTime) -> Candidate {
    let Ok(cert_text) = std::fs::read_to_string(crt) else {
        return Candidate::Unrelated;
    };
    if !leaf_has_subject(&cert_text, wanted) {
        return Candidate::Unrelated;
    }
    let key_text = match std::fs::read_to_string(prv) {
        Ok(text) => Zeroizing::new(text),
        Err(err) => {
            return Candidate::Rejected(format!(
                "{}: no readable key {} ({err})",
                crt.display(),
                prv.display()
            ));
        }
    };
    examine(crt, &cert_text, &key_text, wanted, now)
}

fn examine(path: &Path, certs: &str, key: &str, wanted: &str, now: OffsetDateTime) -> Candidate {
    if !leaf_has_subject(certs, wanted) {
        return Candidate::Unrelated;
    }
    if !key.contains("PRIVATE KEY-----") {
        return Candidate::Rejected(format!("{}: no private key", path.display()));
    }
    match BootstrapCertificate::from_pem(path, certs, key) {
        Ok(cert) if !cert.subject_cn.eq_ignore_ascii_case(wanted) => Candidate::Rejected(format!(
            "{}: the key belongs to CN={}",
            path.display(),
            cert.subject_cn
        )),
        Ok(cert) if cert.is_valid_at(now) => Candidate::Usable(Box::new(cert)),
        Ok(cert) => Candidate::Rejected(format!(
            "{}: valid from {} to {}, not now",
            path.display(),
            cert.not_before,
            cert.not_after
        )),
        Err(IdentityError::NonRsaKey { path, algorithm }) => Candidate::NonRsa { path, algorithm },
        Err(err) => Candidate::Rejected(err.to_string()),
    }
}

/// Whether any certificate in the PEM text has subject CN `wanted`.
fn leaf_has_subject(text: &str, wanted: &str) -> bool {
    let Ok(blocks) = pem_blocks(text) else {
        return false;
    };
    blocks
        .iter()
        .filter(|block| block.label == "CERTIFICATE")
        .filter_map(|block| subject_common_name(&block.der))
        .any(|cn| cn.eq_ignore_ascii_case(wanted))
}

/// Knobs of [`BootstrapCertificateCredential`].
#[derive(Clone, Debug)]
pub struct BootstrapOptions {
    /// The assertion's signature scheme (RS256 with `x5t` by default).
    pub algorithm: AssertionAlgorithm,
    /// How Entra answers are retried.
    pub retry: RetryPolicy,
    /// The tenant, when known in advance; otherwise it comes from Key Vault's challenge.
    pub tenant: Option<String>,
}

impl Default for BootstrapOptions {
    fn default() -> Self {
        Self {
            algorithm: AssertionAlgorithm::Rs256,
            retry: RetryPolicy::entra(),
            tenant: None,
        }
    }
}

/// An Entra application (`clientId`) authenticating with its bootstrap certificate.
#[derive(Debug)]
pub struct BootstrapCertificateCredential {
    client: reqwest::Client,
    authority_host: Url,
    client_id: String,
    certificate: BootstrapCertificate,
    options: BootstrapOptions,
    cache: TokenCache,
}

impl BootstrapCertificateCredential {
    /// A credential for application `client_id` at `authority_host`
    /// (`https://login.microsoftonline.com`, or the settings' authority).
    pub fn new(
        authority_host: &Url,
        client_id: &str,
        certificate: BootstrapCertificate,
        http: &HttpOptions,
        options: BootstrapOptions,
    ) -> Result<Self, IdentityError> {
        let client = http::build_client(http)?;
        Ok(Self::with_client(
            client,
            authority_host,
            client_id,
            certificate,
            options,
        ))
    }

    /// Like [`Self::new`], with an existing HTTP client.
    pub fn with_client(
        client: reqwest::Client,
        authority_host: &Url,
        client_id: &str,
        certificate: BootstrapCertificate,
        options: BootstrapOptions,
    ) -> Self {
        Self {
            client,
            authority_host: authority_host.clone(),
            client_id: client_id.trim().to_owned(),
            certificate,
            options,
            cache: TokenCache::new(),
        }
    }

    /// The application (client) id.
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// The certificate in use.
    pub fn certificate(&self) -> &BootstrapCertificate {
        &self.certificate
    }

    /// Names the identity for messages.
    pub fn describe(&self) -> String {
        format!(
            "the application with client id {} (certificate CN={}, thumbprint {})",
            self.client_id, self.certificate.subject_cn, self.certificate.thumbprint
        )
    }

    /// `{authority_host}/{tenant}/oauth2/v2.0/token`.
    pub fn token_url(&self, tenant: &str) -> Url {
        let mut url = self.authority_host.clone();
        url.set_query(None);
        url.set_fragment(None);
        let base = url.path().trim_end_matches('/').to_owned();
        url.set_path(&format!("{base}/{tenant}/oauth2/v2.0/token"));
        url
    }

    /// A credential that takes its tenant from `slot` (filled from Key Vault's challenge),
    /// falling back to the tenant given in the options.
    pub fn bind_tenant(self: &Arc<Self>, slot: Arc<TenantSlot>) -> TenantBoundCredential {
        TenantBoundCredential {
            inner: self.clone(),
            slot,
        }
    }

    /// Drops every cached token, so the next request fetches a new one.
    pub async fn forget_tokens(&self) {
        self.cache.clear().await;
    }

    /// A token for `scope` in `tenant`, from the cache when fresh.
    pub async fn token_for_tenant(
        &self,
        tenant: &str,
        scope: &str,
    ) -> Result<AccessToken, IdentityError> {
        if !super::is_valid_tenant(tenant) {
            return Err(IdentityError::UnsupportedScope(format!(
                "{tenant:?} is not a tenant id or domain"
            )));
        }
        let key = format!("{tenant} {scope}");
        self.cache
            .get_or_refresh(&key, || self.request_token(tenant, scope))
            .await
    }

    async fn request_token(&self, tenant: &str, scope: &str) -> Result<AccessToken, IdentityError> {
        let token_url = self.token_url(tenant);
        let sign = || {
            build_client_assertion(
                &self.client_id,
                token_url.as_str(),
                self.certificate.certificate_der(),
                &self.certificate.key,
                self.options.algorithm,
                OffsetDateTime::now_utc(),
            )
            .map(|assertion| assertion.jwt)
        };
        // Sign once up front so a signing failure is reported as such; retries sign afresh
        // (new jti and times), reusing the first assertion only if signing fails later.
        let first = sign()?;
        let mut pending = Some(first.clone());
        let response = http::send_with_retry(&self.options.retry, || {
            let jwt = pending
                .take()
                .unwrap_or_else(|| sign().unwrap_or_else(|_| first.clone()));
            let form: Vec<(&str, String)> = vec![
                ("client_id", self.client_id.clone()),
                ("scope", scope.to_owned()),
                (
                    "client_assertion_type",
                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".to_owned(),
                ),
                ("client_assertion", jwt),
                ("grant_type", "client_credentials".to_owned()),
            ];
            self.client.post(token_url.clone()).form(&form)
        })
        .await?;
        read_token_answer(response, &token_url, |status, error, description| {
            IdentityError::Entra {
                endpoint: token_url.to_string(),
                client_id: self.client_id.clone(),
                status,
                error,
                description,
            }
        })
        .await
    }

    async fn get_token_with(
        &self,
        tenant: Option<String>,
        scopes: &[&str],
    ) -> Result<AccessToken, IdentityError> {
        let scope = single_scope(scopes)?;
        let tenant = tenant
            .or_else(|| self.options.tenant.clone())
            .ok_or_else(|| IdentityError::TenantUnknown {
                client_id: self.client_id.clone(),
            })?;
        self.token_for_tenant(&tenant, scope).await
    }
}

#[async_trait::async_trait]
impl TokenCredential for BootstrapCertificateCredential {
    async fn get_token(
        &self,
        scopes: &[&str],
        _options: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        self.get_token_with(None, scopes)
            .await
            .map_err(IdentityError::into_azure)
    }
}

/// A [`BootstrapCertificateCredential`] bound to one vault's [`TenantSlot`].
#[derive(Debug, Clone)]
pub struct TenantBoundCredential {
    inner: Arc<BootstrapCertificateCredential>,
    slot: Arc<TenantSlot>,
}

#[async_trait::async_trait]
impl TokenCredential for TenantBoundCredential {
    async fn get_token(
        &self,
        scopes: &[&str],
        _options: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        self.inner
            .get_token_with(self.slot.get(), scopes)
            .await
            .map_err(IdentityError::into_azure)
    }
}
