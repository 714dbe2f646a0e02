//! Server-authentication certificate chains for the chain-validation tests: CAs (valid, expired,
//! not a CA, with a restricted EKU) and serverAuth leaves (self-signed, not yet valid, pointing
//! at their issuer with a caIssuers URL), made with rcgen. Each gives its DER and PEM; a leaf
//! also its key, so that a secret's PEM (key, leaf, chain) can be put together.

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, CustomExtension, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose,
};
use time::{Duration, OffsetDateTime};

/// A CA that can sign.
pub struct TestCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl TestCa {
    pub fn der(&self) -> Vec<u8> {
        self.issuer.der().to_vec()
    }

    pub fn pem(&self) -> String {
        self.issuer.pem()
    }
}

/// How a CA is made; the default is a valid CA for any purpose.
#[derive(Debug, Clone, Default)]
pub struct CaOptions {
    /// Expired yesterday.
    pub expired: bool,
    /// Without basicConstraints cA=true.
    pub not_a_ca: bool,
    /// An EKU extension with these purposes only.
    pub eku: Option<Vec<ExtendedKeyUsagePurpose>>,
}

fn ca_params(cn: &str, options: &CaOptions) -> CertificateParams {
    let now = OffsetDateTime::now_utc();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(DnType::CommonName, cn);
    if !options.not_a_ca {
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    }
    if let Some(eku) = &options.eku {
        params.extended_key_usages = eku.clone();
    }
    params.not_before = now - Duration::days(30);
    params.not_after = if options.expired {
        now - Duration::days(1)
    } else {
        now + Duration::days(3650)
    };
    params
}

/// A self-signed root CA.
pub fn root_ca(cn: &str) -> TestCa {
    TestCa {
        issuer: CertifiedIssuer::self_signed(
            ca_params(cn, &CaOptions::default()),
            KeyPair::generate().unwrap(),
        )
        .unwrap(),
    }
}

/// A CA issued by `parent`.
pub fn intermediate_ca(cn: &str, parent: &TestCa, options: &CaOptions) -> TestCa {
    TestCa {
        issuer: CertifiedIssuer::signed_by(
            ca_params(cn, options),
            KeyPair::generate().unwrap(),
            &parent.issuer,
        )
        .unwrap(),
    }
}

/// A leaf certificate and its key.
pub struct TestLeaf {
    pub der: Vec<u8>,
    pub pem: String,
    /// PKCS#8 PEM.
    pub key_pem: String,
}

impl TestLeaf {
    /// A secret's PEM value: the key, the leaf, then `chain` (PEM certificates).
    pub fn secret_pem(&self, chain: &[String]) -> String {
        let mut out = format!("{}{}", self.key_pem, self.pem);
        for pem in chain {
            out.push_str(pem);
        }
        out
    }
}

/// How a leaf is made; the default is a serverAuth leaf valid now.
#[derive(Debug, Clone, Default)]
pub struct LeafOptions {
    /// Valid from tomorrow.
    pub not_yet_valid: bool,
    /// Without the serverAuth EKU (clientAuth only).
    pub client_auth_only: bool,
    /// An Authority Information Access extension with this caIssuers URL.
    pub ca_issuers: Option<String>,
}

fn leaf_params(host: &str, options: &LeafOptions) -> CertificateParams {
    let now = OffsetDateTime::now_utc();
    let mut params = CertificateParams::new(vec![host.to_owned()]).unwrap();
    params.distinguished_name.push(DnType::CommonName, host);
    params.extended_key_usages = if options.client_auth_only {
        vec![ExtendedKeyUsagePurpose::ClientAuth]
    } else {
        vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ]
    };
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    if options.not_yet_valid {
        params.not_before = now + Duration::days(1);
    } else {
        params.not_before = now - Duration::days(1);
    }
    params.not_after = now + Duration::days(90);
    if let Some(url) = &options.ca_issuers {
        params.custom_extensions.push(aia_extension(url));
    }
    params
}

/// A leaf issued by `issuer` (without an authority key identifier, as many CAs issue them: its
/// issuer is found by name).
pub fn server_leaf(host: &str, issuer: &TestCa, options: &LeafOptions) -> TestLeaf {
    let key = KeyPair::generate().unwrap();
    let cert = leaf_params(host, options)
        .signed_by(&key, &issuer.issuer)
        .unwrap();
    TestLeaf {
        der: cert.der().to_vec(),
        pem: cert.pem(),
        key_pem: key.serialize_pem(),
    }
}

/// A self-signed serverAuth leaf (as Key Vault's self-signed certificates are).
pub fn self_signed_server(host: &str) -> TestLeaf {
    let key = KeyPair::generate().unwrap();
    let cert = leaf_params(host, &LeafOptions::default())
        .self_signed(&key)
        .unwrap();
    TestLeaf {
        der: cert.der().to_vec(),
        pem: cert.pem(),
        key_pem: key.serialize_pem(),
    }
}

/// `authorityInfoAccess` with one caIssuers URI.
fn aia_extension(url: &str) -> CustomExtension {
    fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        match content.len() {
            n if n < 0x80 => out.push(n as u8),
            n if n < 0x100 => out.extend([0x81, n as u8]),
            n => out.extend([0x82, (n >> 8) as u8, n as u8]),
        }
        out.extend_from_slice(content);
        out
    }
    // id-ad-caIssuers 1.3.6.1.5.5.7.48.2
    let method = tlv(0x06, &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x30, 0x02]);
    let location = tlv(0x86, url.as_bytes());
    let description = tlv(0x30, &[method, location].concat());
    CustomExtension::from_oid_content(&[1, 3, 6, 1, 5, 5, 7, 1, 1], tlv(0x30, &description))
}
