//! Writing a PFX exactly the way Key Vault does, for the store's `cert.pfx`, the local vault and
//! tests.

use cbc::cipher::block_padding::Pkcs7;
use cbc::cipher::{BlockEncryptMut, InnerIvInit, KeyIvInit};
use der::asn1::{ObjectIdentifier, OctetString, SetOfVec};
use der::{Any, Decode, Encode};
use hmac::{Hmac, Mac};
use pkcs12::kdf::Pkcs12KeyType;
use rand::RngCore;
use spki::AlgorithmIdentifierOwned;

use super::asn1::{
    CertBag, ContentInfo, DigestInfo, EncryptedContentInfo, EncryptedData, EncryptedPrivateKeyInfo,
    MacData, PbeParams, Pfx, SafeBag, oid,
};
use super::crypto::{derive_sha1, pbe_key_and_iv};
use crate::error::CertError;

/// The iteration count Key Vault uses for its key and certificate bags.
const KEYVAULT_PBE_ITERATIONS: u32 = 2000;

/// Builds a PFX the way Key Vault does: the PKCS#8 key in a pbeWithSHA1And3-KeyTripleDES-CBC
/// shrouded key bag, the certificates (leaf first) in one pbeWithSHA1And40BitRC2-CBC encrypted
/// bag, both with 2000 iterations, an HMAC-SHA1 MAC whose iteration count is left out (1), and a
/// zero-length password (zero bytes into the KDF, not OpenSSL's two zero bytes).
pub fn encode_keyvault(key_pkcs8_der: &[u8], certs_der: &[Vec<u8>]) -> Result<Vec<u8>, CertError> {
    let encode_err = |what: &str, e: der::Error| CertError::PfxEncode {
        reason: format!("{what}: {e}"),
    };
    pkcs8::PrivateKeyInfo::from_der(key_pkcs8_der).map_err(|e| CertError::PfxEncode {
        reason: format!("the key is not PKCS#8 DER: {e}"),
    })?;
    if certs_der.is_empty() {
        return Err(CertError::PfxEncode {
            reason: "no certificates given".into(),
        });
    }
    let password: &[u8] = &[];
    let local_key_id = local_key_id_attribute().map_err(|e| encode_err("localKeyID", e))?;

    // The key: a shrouded key bag in a plain data SafeContents.
    let (key_alg, key_ciphertext) = {
        let params = random_pbe_params().map_err(|e| encode_err("salt", e))?;
        let (key, iv) = pbe_key_and_iv(password, params.salt.as_bytes(), params.iterations, 24);
        let ciphertext = cbc::Encryptor::<des::TdesEde3>::new_from_slices(&key, &iv)
            .map_err(|e| CertError::PfxEncode {
                reason: format!("3DES key: {e}"),
            })?
            .encrypt_padded_vec_mut::<Pkcs7>(key_pkcs8_der);
        (
            pbe_algorithm(oid::PBE_SHA1_3DES, &params)
                .map_err(|e| encode_err("key algorithm", e))?,
            ciphertext,
        )
    };
    let shrouded = EncryptedPrivateKeyInfo {
        encryption_algorithm: key_alg,
        encrypted_data: OctetString::new(key_ciphertext).map_err(|e| encode_err("key", e))?,
    };
    let key_bag = SafeBag {
        bag_id: oid::SHROUDED_KEY_BAG,
        bag_value: Any::encode_from(&shrouded).map_err(|e| encode_err("key bag", e))?,
        bag_attributes: Some(local_key_id.clone()),
    };
    let key_contents = vec![key_bag]
        .to_der()
        .map_err(|e| encode_err("key SafeContents", e))?;

    // The certificates: cert bags in one RC2-40 encrypted SafeContents, the leaf marked with the
    // key's localKeyID.
    let mut cert_bags = Vec::with_capacity(certs_der.len());
    for (index, cert) in certs_der.iter().enumerate() {
        let bag = CertBag {
            cert_id: oid::X509_CERTIFICATE,
            cert_value: OctetString::new(cert.clone()).map_err(|e| encode_err("certificate", e))?,
        };
        cert_bags.push(SafeBag {
            bag_id: oid::CERT_BAG,
            bag_value: Any::encode_from(&bag).map_err(|e| encode_err("certificate bag", e))?,
            bag_attributes: (index == 0).then(|| local_key_id.clone()),
        });
    }
    let cert_contents = cert_bags
        .to_der()
        .map_err(|e| encode_err("certificate SafeContents", e))?;
    let params = random_pbe_params().map_err(|e| encode_err("salt", e))?;
    let (key, iv) = pbe_key_and_iv(password, params.salt.as_bytes(), params.iterations, 5);
    let cipher = rc2::Rc2::new_with_eff_key_len(&key, 40);
    let cert_ciphertext = cbc::Encryptor::<rc2::Rc2>::inner_iv_slice_init(cipher, &iv)
        .map_err(|e| CertError::PfxEncode {
            reason: format!("RC2 IV: {e}"),
        })?
        .encrypt_padded_vec_mut::<Pkcs7>(&cert_contents);
    let encrypted = EncryptedData {
        version: 0,
        enc_content_info: EncryptedContentInfo {
            content_type: oid::DATA,
            content_enc_alg: pbe_algorithm(oid::PBE_SHA1_RC2_40, &params)
                .map_err(|e| encode_err("certificate algorithm", e))?,
            encrypted_content: Some(
                OctetString::new(cert_ciphertext).map_err(|e| encode_err("certificates", e))?,
            ),
        },
    };

    let auth_safe = vec![
        data_content_info(key_contents).map_err(|e| encode_err("key ContentInfo", e))?,
        ContentInfo {
            content_type: oid::ENCRYPTED_DATA,
            content: Some(
                Any::encode_from(&encrypted).map_err(|e| encode_err("EncryptedData", e))?,
            ),
        },
    ]
    .to_der()
    .map_err(|e| encode_err("AuthenticatedSafe", e))?;

    let mut mac_salt = vec![0u8; 20];
    rand::rng().fill_bytes(&mut mac_salt);
    let mac_key = derive_sha1(password, &mac_salt, Pkcs12KeyType::Mac, 1, 20);
    let mut hmac =
        <Hmac<sha1::Sha1> as Mac>::new_from_slice(&mac_key).map_err(|e| CertError::PfxEncode {
            reason: format!("MAC key: {e}"),
        })?;
    hmac.update(&auth_safe);
    let digest = hmac.finalize().into_bytes().to_vec();

    Pfx {
        version: 3,
        auth_safe: data_content_info(auth_safe).map_err(|e| encode_err("authSafe", e))?,
        mac_data: Some(MacData {
            mac: DigestInfo {
                algorithm: AlgorithmIdentifierOwned {
                    oid: oid::SHA1,
                    parameters: None,
                },
                digest: OctetString::new(digest).map_err(|e| encode_err("MAC", e))?,
            },
            mac_salt: OctetString::new(mac_salt).map_err(|e| encode_err("MAC salt", e))?,
            iterations: None,
        }),
    }
    .to_der()
    .map_err(|e| encode_err("PFX", e))
}

fn random_pbe_params() -> der::Result<PbeParams> {
    let mut salt = vec![0u8; 8];
    rand::rng().fill_bytes(&mut salt);
    Ok(PbeParams {
        salt: OctetString::new(salt)?,
        iterations: KEYVAULT_PBE_ITERATIONS,
    })
}

fn pbe_algorithm(
    oid: ObjectIdentifier,
    params: &PbeParams,
) -> der::Result<AlgorithmIdentifierOwned> {
    Ok(AlgorithmIdentifierOwned {
        oid,
        parameters: Some(Any::encode_from(params)?),
    })
}

fn data_content_info(bytes: Vec<u8>) -> der::Result<ContentInfo> {
    Ok(ContentInfo {
        content_type: oid::DATA,
        content: Some(Any::encode_from(&OctetString::new(bytes)?)?),
    })
}

/// `SET { localKeyID { 01 00 00 00 } }`, the attribute Key Vault puts on the key and the leaf.
fn local_key_id_attribute() -> der::Result<Any> {
    let value = Any::encode_from(&OctetString::new(vec![1u8, 0, 0, 0])?)?;
    let attribute = x509_cert::attr::Attribute {
        oid: oid::LOCAL_KEY_ID,
        values: SetOfVec::try_from(vec![value])?,
    };
    Any::encode_from(&SetOfVec::try_from(vec![attribute])?)
}
