//! JWT client assertions: how an Entra application proves it holds its certificate's key.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rsa::RsaPrivateKey;
use rsa::signature::{RandomizedSigner, SignatureEncoding, Signer};
use serde_json::json;
use sha1::{Digest, Sha1};
use sha2::Sha256;
use time::OffsetDateTime;

use super::IdentityError;

/// How long an assertion is valid.
pub const ASSERTION_LIFETIME: Duration = Duration::from_secs(10 * 60);

/// The signature scheme of a client assertion.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum AssertionAlgorithm {
    /// RSASSA-PKCS1-v1_5 with SHA-256; the header names the certificate by `x5t` (SHA-1).
    /// What every Entra tenant accepts.
    #[default]
    Rs256,
    /// RSASSA-PSS with SHA-256; the header names the certificate by `x5t#S256` (SHA-256).
    Ps256,
}

impl AssertionAlgorithm {
    /// The JOSE `alg` value.
    pub fn jose_name(self) -> &'static str {
        match self {
            AssertionAlgorithm::Rs256 => "RS256",
            AssertionAlgorithm::Ps256 => "PS256",
        }
    }
}

/// A signed assertion and the claims it carries (for logs and tests; the JWT itself is a
/// credential and is never logged).
#[derive(Clone)]
pub struct ClientAssertion {
    /// The compact JWT.
    pub jwt: String,
    /// The `jti` claim.
    pub jti: String,
    /// The `exp` claim.
    pub expires: OffsetDateTime,
}

impl std::fmt::Debug for ClientAssertion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientAssertion")
            .field("jti", &self.jti)
            .field("expires", &self.expires)
            .finish_non_exhaustive()
    }
}

/// Builds and signs the client assertion for `client_id` at the token endpoint `audience`,
/// with the certificate `certificate_der` whose key is `key`, issued at `now`.
///
/// Header: `alg`, `typ` JWT, and `x5t` (RS256) or `x5t#S256` (PS256): the base64url hash of
/// the DER certificate. Claims: `aud` = the token URL, `iss` = `sub` = the client id, `jti` a
/// random UUID, `nbf` = `iat` = now, `exp` = now + [`ASSERTION_LIFETIME`].
pub fn build_client_assertion(
    client_id: &str,
    audience: &str,
    certificate_der: &[u8],
    key: &RsaPrivateKey,
    algorithm: AssertionAlgorithm,
    now: OffsetDateTime,
) -> Result<ClientAssertion, IdentityError> {
    let mut header = serde_json::Map::new();
    header.insert("alg".into(), json!(algorithm.jose_name()));
    header.insert("typ".into(), json!("JWT"));
    match algorithm {
        AssertionAlgorithm::Rs256 => {
            header.insert(
                "x5t".into(),
                json!(URL_SAFE_NO_PAD.encode(Sha1::digest(certificate_der))),
            );
        }
        AssertionAlgorithm::Ps256 => {
            header.insert(
                "x5t#S256".into(),
                json!(URL_SAFE_NO_PAD.encode(Sha256::digest(certificate_der))),
            );
        }
    }
    let jti = uuid::Uuid::new_v4().to_string();
    let issued = now.unix_timestamp();
    let expires = now + ASSERTION_LIFETIME;
    let claims = json!({
        "aud": audience,
        "iss": client_id,
        "sub": client_id,
        "jti": jti,
        "nbf": issued,
        "iat": issued,
        "exp": expires.unix_timestamp(),
    });
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(serde_json::Value::Object(header).to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let signature = match algorithm {
        AssertionAlgorithm::Rs256 => {
            let signer = rsa::pkcs1v15::SigningKey::<Sha256>::new(key.clone());
            signer
                .try_sign(signing_input.as_bytes())
                .map_err(|err| IdentityError::Signing(err.to_string()))?
                .to_vec()
        }
        AssertionAlgorithm::Ps256 => {
            let signer = rsa::pss::BlindedSigningKey::<Sha256>::new(key.clone());
            signer
                .try_sign_with_rng(&mut rsa::rand_core::OsRng, signing_input.as_bytes())
                .map_err(|err| IdentityError::Signing(err.to_string()))?
                .to_vec()
        }
    };
    Ok(ClientAssertion {
        jwt: format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature)),
        jti,
        expires,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rsa::signature::Verifier;

    fn decode_part(part: &str) -> serde_json::Value {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
    }

    // A small key keeps the test fast; the signing code does not depend on the size.
    fn key() -> RsaPrivateKey {
        RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 1024).unwrap()
    }

    #[test]
    fn rs256_assertion_has_the_header_claims_and_a_valid_signature() {
        let key = key();
        let cert = b"not really a certificate, only hashed";
        let now = OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
        let audience = "https://login.example/tenant/oauth2/v2.0/token";
        let assertion = build_client_assertion(
            "app-id",
            audience,
            cert,
            &key,
            AssertionAlgorithm::Rs256,
            now,
        )
        .unwrap();
        let parts: Vec<&str> = assertion.jwt.split('.').collect();
        assert_eq!(parts.len(), 3);
        let header = decode_part(parts[0]);
        assert_eq!(header["alg"], "RS256");
        assert_eq!(header["typ"], "JWT");
        assert_eq!(header["x5t"], URL_SAFE_NO_PAD.encode(Sha1::digest(cert)));
        let claims = decode_part(parts[1]);
        assert_eq!(claims["aud"], audience);
        assert_eq!(claims["iss"], "app-id");
        assert_eq!(claims["sub"], "app-id");
        assert_eq!(claims["jti"], assertion.jti.as_str());
        assert_eq!(claims["nbf"], 1_700_000_000);
        assert_eq!(claims["exp"], 1_700_000_600);

        let verifier = rsa::pkcs1v15::VerifyingKey::<Sha256>::new(key.to_public_key());
        let signature = rsa::pkcs1v15::Signature::try_from(
            URL_SAFE_NO_PAD.decode(parts[2]).unwrap().as_slice(),
        )
        .unwrap();
        let signed = format!("{}.{}", parts[0], parts[1]);
        verifier.verify(signed.as_bytes(), &signature).unwrap();
        assert!(verifier.verify(b"tampered", &signature).is_err());
        assert!(!format!("{assertion:?}").contains(&assertion.jwt));
    }

    #[test]
    fn ps256_assertion_uses_x5t_s256_and_verifies() {
        let key = key();
        let cert = b"cert";
        let assertion = build_client_assertion(
            "app",
            "aud",
            cert,
            &key,
            AssertionAlgorithm::Ps256,
            OffsetDateTime::now_utc(),
        )
        .unwrap();
        let parts: Vec<&str> = assertion.jwt.split('.').collect();
        let header = decode_part(parts[0]);
        assert_eq!(header["alg"], "PS256");
        assert_eq!(
            header["x5t#S256"],
            URL_SAFE_NO_PAD.encode(Sha256::digest(cert))
        );
        assert!(header.get("x5t").is_none());
        let verifier = rsa::pss::VerifyingKey::<Sha256>::new(key.to_public_key());
        let signature =
            rsa::pss::Signature::try_from(URL_SAFE_NO_PAD.decode(parts[2]).unwrap().as_slice())
                .unwrap();
        verifier
            .verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &signature)
            .unwrap();
    }
}
