//! The emulator's certificate authority and HTTPS server certificate.
//!
//! On first start a CA (ECDSA P-256) is generated; with a data directory its key and certificate
//! are kept there (`ca.key.pem`, `ca.pem`) so clients configured once keep trusting it. Every start
//! issues a fresh server certificate from that CA for the names in [`SERVER_NAMES`].

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// The names the server certificate covers: real vault URLs (every cloud's suffix in
/// [`crate::keyvault::VAULT_SUFFIXES`]), `*.vault.localhost`, loopback, and
/// the Entra authority host so clients may keep `https://login.microsoftonline.com` too.
pub const SERVER_NAMES: &[&str] = &[
    "*.vault.azure.net",
    "*.vault.localhost",
    "*.vault.azure.cn",
    "*.vault.usgovcloudapi.net",
    "*.vault.microsoftazure.de",
    "localhost",
    "127.0.0.1",
    "login.microsoftonline.com",
];

const CA_NAME: &str = "akvvm local vault CA";

/// The CA and the server certificate it issued.
pub struct Authority {
    pub ca_pem: String,
    server_chain: Vec<CertificateDer<'static>>,
    server_key: Vec<u8>,
}

/// Which server names get the impostor certificate (the fault `untrustedCertificate`).
pub type Untrusted = Arc<dyn Fn(&str) -> bool + Send + Sync>;

/// Picks the server certificate per handshake: the one the CA issued, or, for the names
/// `untrusted` selects, an impostor for the same names that no client trusts (self-signed, not
/// issued by the CA), as a TLS-intercepting middlebox or a hijacked address would present.
struct PickCertificate {
    genuine: Arc<rustls::sign::CertifiedKey>,
    impostor: Arc<rustls::sign::CertifiedKey>,
    untrusted: Untrusted,
}

impl std::fmt::Debug for PickCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PickCertificate")
    }
}

impl rustls::server::ResolvesServerCert for PickCertificate {
    fn resolve(
        &self,
        client_hello: rustls::server::ClientHello<'_>,
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        let impostor = client_hello
            .server_name()
            .is_some_and(|name| (self.untrusted)(name));
        Some(if impostor {
            self.impostor.clone()
        } else {
            self.genuine.clone()
        })
    }
}

/// A certified key from a DER chain and a PKCS#8 key.
fn certified_key(
    provider: &rustls::crypto::CryptoProvider,
    chain: Vec<CertificateDer<'static>>,
    key: Vec<u8>,
) -> anyhow::Result<Arc<rustls::sign::CertifiedKey>> {
    let key = provider
        .key_provider
        .load_private_key(PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key)))
        .context("failed to load the server key")?;
    Ok(Arc::new(rustls::sign::CertifiedKey::new(chain, key)))
}

/// A self-signed certificate for [`SERVER_NAMES`] that the CA did not issue.
fn impostor() -> anyhow::Result<(Vec<CertificateDer<'static>>, Vec<u8>)> {
    let names: Vec<String> = SERVER_NAMES.iter().map(|s| (*s).to_owned()).collect();
    let mut params = CertificateParams::new(names).context("invalid server names")?;
    params
        .distinguished_name
        .push(DnType::CommonName, "akvvm local vault (impostor)");
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let key = KeyPair::generate().context("failed to generate the impostor key")?;
    let cert = params
        .self_signed(&key)
        .context("failed to create the impostor certificate")?;
    Ok((vec![cert.der().clone()], key.serialize_der()))
}

fn ca_params() -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name.push(DnType::CommonName, CA_NAME);
    params
        .distinguished_name
        .push(DnType::OrganizationName, "akvvm");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.not_before = time::OffsetDateTime::now_utc() - time::Duration::days(1);
    params.not_after = time::OffsetDateTime::now_utc() + time::Duration::days(3650);
    params
}

impl Authority {
    /// Loads the CA from `data_dir` (creating it there on first start), or generates one in
    /// memory when there is no data directory, then issues the server certificate.
    pub fn load_or_create(data_dir: Option<&Path>) -> anyhow::Result<Self> {
        let (ca_key, ca_pem) = match data_dir {
            Some(dir) => {
                let key_path = dir.join("ca.key.pem");
                let pem_path = dir.join("ca.pem");
                if key_path.exists() && pem_path.exists() {
                    let key_pem = std::fs::read_to_string(&key_path)
                        .with_context(|| format!("failed to read {}", key_path.display()))?;
                    let key = KeyPair::from_pem(&key_pem).with_context(|| {
                        format!(
                            "{} is not a PEM private key; delete it and ca.pem to start over",
                            key_path.display()
                        )
                    })?;
                    let pem = std::fs::read_to_string(&pem_path)
                        .with_context(|| format!("failed to read {}", pem_path.display()))?;
                    (key, pem)
                } else {
                    let key = KeyPair::generate().context("failed to generate the CA key")?;
                    let pem = ca_params()
                        .self_signed(&key)
                        .context("failed to create the CA")?
                        .pem();
                    std::fs::create_dir_all(dir)
                        .with_context(|| format!("failed to create {}", dir.display()))?;
                    write_private(&key_path, key.serialize_pem().as_bytes())?;
                    std::fs::write(&pem_path, &pem)
                        .with_context(|| format!("failed to write {}", pem_path.display()))?;
                    (key, pem)
                }
            }
            None => {
                let key = KeyPair::generate().context("failed to generate the CA key")?;
                let pem = ca_params()
                    .self_signed(&key)
                    .context("failed to create the CA")?
                    .pem();
                (key, pem)
            }
        };
        let issuer = Issuer::new(ca_params(), ca_key);
        let names: Vec<String> = SERVER_NAMES.iter().map(|s| (*s).to_owned()).collect();
        let mut params = CertificateParams::new(names).context("invalid server names")?;
        params
            .distinguished_name
            .push(DnType::CommonName, "akvvm local vault");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.not_before = time::OffsetDateTime::now_utc() - time::Duration::days(1);
        params.not_after = time::OffsetDateTime::now_utc() + time::Duration::days(365);
        let server_key = KeyPair::generate().context("failed to generate the server key")?;
        let server = params
            .signed_by(&server_key, &issuer)
            .context("failed to issue the server certificate")?;
        let ca_der = rustls::pki_types::pem::PemObject::from_pem_slice(ca_pem.as_bytes())
            .map_err(|e| anyhow::anyhow!("the CA certificate PEM does not parse: {e:?}"))?;
        Ok(Authority {
            ca_pem,
            server_chain: vec![server.der().clone(), ca_der],
            server_key: server_key.serialize_der(),
        })
    }

    /// The server's TLS configuration; the names `untrusted` selects get an impostor
    /// certificate instead of the CA's.
    pub fn server_config(&self, untrusted: Untrusted) -> anyhow::Result<Arc<rustls::ServerConfig>> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let genuine = certified_key(
            &provider,
            self.server_chain.clone(),
            self.server_key.clone(),
        )?;
        let (impostor_chain, impostor_key) = impostor()?;
        let impostor = certified_key(&provider, impostor_chain, impostor_key)?;
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .context("failed to select TLS versions")?
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(PickCertificate {
                genuine,
                impostor,
                untrusted,
            }));
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

/// Writes a file readable by its owner only.
pub fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("failed to create {}", path.display()))?;
    file.write_all(bytes)
        .with_context(|| format!("failed to write {}", path.display()))?;
    Ok(())
}
