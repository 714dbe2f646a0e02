//! JSON Web Tokens: the access tokens the emulator signs (RS256) and checks, and the client
//! assertions it verifies against an app's registered certificate (RS256 or PS256).
//!
//! Access tokens carry the claims Key Vault reads: `aud`, `iss`, `tid`, `oid`, `appid`, `nbf`,
//! `exp`. Nothing here logs a token.

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{self, KeyPair, RsaKeyPair, UnparsedPublicKey};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use sha1::Digest;

/// The claims of an access token the emulator issues.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    pub aud: String,
    pub iss: String,
    pub iat: i64,
    pub nbf: i64,
    pub exp: i64,
    pub tid: String,
    pub oid: String,
    pub sub: String,
    pub appid: String,
}

impl AccessClaims {
    /// The claims of a token for `resource`, issued in `tenant_id` (`iss`
    /// `https://sts.windows.net/{tenant_id}/`) to the principal with `object_id` and `client_id`,
    /// valid from `not_before` (also its `iat`) to `expires_on` (Unix seconds).
    pub fn new(
        resource: &str,
        tenant_id: &str,
        object_id: &str,
        client_id: &str,
        not_before: i64,
        expires_on: i64,
    ) -> Self {
        AccessClaims {
            aud: resource.to_owned(),
            iss: format!("https://sts.windows.net/{tenant_id}/"),
            iat: not_before,
            nbf: not_before,
            exp: expires_on,
            tid: tenant_id.to_owned(),
            oid: object_id.to_owned(),
            sub: object_id.to_owned(),
            appid: client_id.to_owned(),
        }
    }
}

/// Why a token was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("the token is not a JWT (three base64url parts separated by dots)")]
    Malformed,
    #[error("the token's signature algorithm {0:?} is not supported")]
    Algorithm(String),
    #[error("the token's signature does not verify")]
    Signature,
    #[error("the token's claims are not valid JSON: {0}")]
    Claims(String),
    #[error("the token expired at {exp} (now {now})")]
    Expired { exp: i64, now: i64 },
    #[error("the token is not valid before {nbf} (now {now})")]
    NotYetValid { nbf: i64, now: i64 },
}

/// A decoded, not yet verified JWT.
pub struct Jwt<'a> {
    pub header: serde_json::Value,
    pub claims: serde_json::Value,
    signed: &'a str,
    signature: Vec<u8>,
}

impl<'a> Jwt<'a> {
    pub fn parse(token: &'a str) -> Result<Self, TokenError> {
        let mut parts = token.split('.');
        let (Some(h), Some(c), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed);
        };
        let decode = |part: &str| {
            URL_SAFE_NO_PAD
                .decode(part)
                .map_err(|_| TokenError::Malformed)
        };
        let header = serde_json::from_slice(&decode(h)?).map_err(|_| TokenError::Malformed)?;
        let claims =
            serde_json::from_slice(&decode(c)?).map_err(|e| TokenError::Claims(e.to_string()))?;
        Ok(Jwt {
            header,
            claims,
            signed: &token[..h.len() + 1 + c.len()],
            signature: decode(s)?,
        })
    }

    pub fn alg(&self) -> &str {
        self.header["alg"].as_str().unwrap_or("")
    }

    /// Verifies the signature with an RSA public key (SubjectPublicKeyInfo DER) for RS256 or PS256.
    pub fn verify_rsa(&self, spki_der: &[u8]) -> Result<(), TokenError> {
        let alg: &'static dyn signature::VerificationAlgorithm = match self.alg() {
            "RS256" => &signature::RSA_PKCS1_2048_8192_SHA256,
            "PS256" => &signature::RSA_PSS_2048_8192_SHA256,
            other => return Err(TokenError::Algorithm(other.to_owned())),
        };
        UnparsedPublicKey::new(alg, spki_der)
            .verify(self.signed.as_bytes(), &self.signature)
            .map_err(|_| TokenError::Signature)
    }
}

/// The emulator's token signing key.
pub struct TokenIssuer {
    key: RsaKeyPair,
    kid: String,
}

impl TokenIssuer {
    pub fn generate() -> anyhow::Result<Self> {
        let key = RsaKeyPair::generate(KeySize::Rsa2048)
            .map_err(|_| anyhow::anyhow!("failed to generate the token signing key"))?;
        Ok(Self::from_key(key))
    }

    pub fn from_pkcs8(der: &[u8]) -> anyhow::Result<Self> {
        let key = RsaKeyPair::from_pkcs8(der)
            .map_err(|e| anyhow::anyhow!("the token signing key is not an RSA PKCS#8 key: {e}"))?;
        Ok(Self::from_key(key))
    }

    fn from_key(key: RsaKeyPair) -> Self {
        let spki = key
            .public_key()
            .as_der()
            .map(|d| d.as_ref().to_vec())
            .unwrap_or_default();
        let kid = URL_SAFE_NO_PAD.encode(&sha1::Sha1::digest(&spki)[..]);
        TokenIssuer { key, kid }
    }

    pub fn pkcs8(&self) -> anyhow::Result<Vec<u8>> {
        let der = self
            .key
            .as_der()
            .map_err(|_| anyhow::anyhow!("failed to serialize the token signing key"))?;
        Ok(der.as_ref().to_vec())
    }

    fn public_spki(&self) -> Vec<u8> {
        self.key
            .public_key()
            .as_der()
            .map(|d| d.as_ref().to_vec())
            .unwrap_or_default()
    }

    /// Signs `claims` as an RS256 JWT.
    pub fn issue(&self, claims: &AccessClaims) -> anyhow::Result<String> {
        let header =
            serde_json::json!({"typ": "JWT", "alg": "RS256", "kid": self.kid, "x5t": self.kid});
        let signed = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header)?),
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims)?)
        );
        let mut sig = vec![0; self.key.public_modulus_len()];
        self.key
            .sign(
                &signature::RSA_PKCS1_SHA256,
                &SystemRandom::new(),
                signed.as_bytes(),
                &mut sig,
            )
            .map_err(|_| anyhow::anyhow!("failed to sign a token"))?;
        Ok(format!("{signed}.{}", URL_SAFE_NO_PAD.encode(sig)))
    }

    /// Checks an access token's signature and lifetime and returns its claims. The audience and
    /// tenant are the caller's to check.
    pub fn verify(&self, token: &str, now: i64) -> Result<AccessClaims, TokenError> {
        let jwt = Jwt::parse(token)?;
        if jwt.alg() != "RS256" {
            return Err(TokenError::Algorithm(jwt.alg().to_owned()));
        }
        jwt.verify_rsa(&self.public_spki())?;
        let claims: AccessClaims =
            serde_json::from_value(jwt.claims).map_err(|e| TokenError::Claims(e.to_string()))?;
        if now >= claims.exp {
            return Err(TokenError::Expired {
                exp: claims.exp,
                now,
            });
        }
        // Five minutes of clock skew, as Entra-issued tokens are accepted by Azure services.
        if now + 300 < claims.nbf {
            return Err(TokenError::NotYetValid {
                nbf: claims.nbf,
                now,
            });
        }
        Ok(claims)
    }
}

pub fn now_unix() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(exp: i64) -> AccessClaims {
        AccessClaims {
            aud: "https://vault.azure.net".into(),
            iss: "https://sts.windows.net/t/".into(),
            iat: 100,
            nbf: 100,
            exp,
            tid: "t".into(),
            oid: "o".into(),
            sub: "o".into(),
            appid: "a".into(),
        }
    }

    #[test]
    fn issued_token_verifies_and_round_trips_claims() {
        let issuer = TokenIssuer::generate().unwrap();
        let token = issuer.issue(&claims(1000)).unwrap();
        assert_eq!(issuer.verify(&token, 500).unwrap(), claims(1000));
        assert_eq!(
            issuer.verify(&token, 1000),
            Err(TokenError::Expired {
                exp: 1000,
                now: 1000
            })
        );
    }

    #[test]
    fn tampered_or_foreign_tokens_are_refused() {
        let issuer = TokenIssuer::generate().unwrap();
        let other =
            TokenIssuer::from_pkcs8(&TokenIssuer::generate().unwrap().pkcs8().unwrap()).unwrap();
        let token = other.issue(&claims(1000)).unwrap();
        assert_eq!(issuer.verify(&token, 500), Err(TokenError::Signature));
        let mut parts: Vec<&str> = token.split('.').collect();
        let forged = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims(5000)).unwrap());
        parts[1] = &forged;
        assert_eq!(
            other.verify(&parts.join("."), 500),
            Err(TokenError::Signature)
        );
        assert_eq!(
            issuer.verify("abc", 500).unwrap_err(),
            TokenError::Malformed
        );
    }
}
