//! The ASN.1 of PKCS#12 (RFC 7292) and the parts of RFC 5652 it uses, as `der` types, and the
//! object identifiers akvvm reads or writes. Decoding and encoding share these types; add a
//! structure here when a new bag or scheme needs one.

use der::Any;
use der::Sequence;
use der::asn1::{ObjectIdentifier, OctetString};
use spki::AlgorithmIdentifierOwned;

pub(super) mod oid {
    use der::asn1::ObjectIdentifier as Oid;

    pub const DATA: Oid = Oid::new_unwrap("1.2.840.113549.1.7.1");
    pub const ENCRYPTED_DATA: Oid = Oid::new_unwrap("1.2.840.113549.1.7.6");
    pub const ENVELOPED_DATA: Oid = Oid::new_unwrap("1.2.840.113549.1.7.3");
    pub const SIGNED_DATA: Oid = Oid::new_unwrap("1.2.840.113549.1.7.2");

    pub const KEY_BAG: Oid = Oid::new_unwrap("1.2.840.113549.1.12.10.1.1");
    pub const SHROUDED_KEY_BAG: Oid = Oid::new_unwrap("1.2.840.113549.1.12.10.1.2");
    pub const CERT_BAG: Oid = Oid::new_unwrap("1.2.840.113549.1.12.10.1.3");
    pub const SAFE_CONTENTS_BAG: Oid = Oid::new_unwrap("1.2.840.113549.1.12.10.1.6");
    pub const X509_CERTIFICATE: Oid = Oid::new_unwrap("1.2.840.113549.1.9.22.1");
    pub const LOCAL_KEY_ID: Oid = Oid::new_unwrap("1.2.840.113549.1.9.21");

    pub const PBE_SHA1_RC4_128: Oid = Oid::new_unwrap("1.2.840.113549.1.12.1.1");
    pub const PBE_SHA1_RC4_40: Oid = Oid::new_unwrap("1.2.840.113549.1.12.1.2");
    pub const PBE_SHA1_3DES: Oid = Oid::new_unwrap("1.2.840.113549.1.12.1.3");
    pub const PBE_SHA1_2DES: Oid = Oid::new_unwrap("1.2.840.113549.1.12.1.4");
    pub const PBE_SHA1_RC2_128: Oid = Oid::new_unwrap("1.2.840.113549.1.12.1.5");
    pub const PBE_SHA1_RC2_40: Oid = Oid::new_unwrap("1.2.840.113549.1.12.1.6");

    pub const SHA1: Oid = Oid::new_unwrap("1.3.14.3.2.26");
    pub const SHA224: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.2.4");
    pub const SHA256: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.2.1");
    pub const SHA384: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.2.2");
    pub const SHA512: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.2.3");
}

#[derive(Sequence)]
pub(super) struct Pfx {
    pub(super) version: u8,
    pub(super) auth_safe: ContentInfo,
    pub(super) mac_data: Option<MacData>,
}

#[derive(Clone, Sequence)]
pub(super) struct ContentInfo {
    pub(super) content_type: ObjectIdentifier,
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    pub(super) content: Option<Any>,
}

/// `iterations` is `DEFAULT 1`: an `Option` so that both a left-out count (Key Vault, OpenSSL)
/// and an explicit 1 decode, and so that encoding can leave it out.
#[derive(Sequence)]
pub(super) struct MacData {
    pub(super) mac: DigestInfo,
    pub(super) mac_salt: OctetString,
    pub(super) iterations: Option<u32>,
}

impl MacData {
    pub(super) fn iterations(&self) -> u32 {
        self.iterations.unwrap_or(1)
    }
}

#[derive(Sequence)]
pub(super) struct DigestInfo {
    pub(super) algorithm: AlgorithmIdentifierOwned,
    pub(super) digest: OctetString,
}

#[derive(Sequence)]
pub(super) struct EncryptedData {
    pub(super) version: u8,
    pub(super) enc_content_info: EncryptedContentInfo,
}

#[derive(Sequence)]
pub(super) struct EncryptedContentInfo {
    pub(super) content_type: ObjectIdentifier,
    pub(super) content_enc_alg: AlgorithmIdentifierOwned,
    #[asn1(context_specific = "0", tag_mode = "IMPLICIT", optional = "true")]
    pub(super) encrypted_content: Option<OctetString>,
}

#[derive(Sequence)]
pub(super) struct SafeBag {
    pub(super) bag_id: ObjectIdentifier,
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT")]
    pub(super) bag_value: Any,
    pub(super) bag_attributes: Option<Any>,
}

#[derive(Sequence)]
pub(super) struct CertBag {
    pub(super) cert_id: ObjectIdentifier,
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT")]
    pub(super) cert_value: OctetString,
}

#[derive(Sequence)]
pub(super) struct EncryptedPrivateKeyInfo {
    pub(super) encryption_algorithm: AlgorithmIdentifierOwned,
    pub(super) encrypted_data: OctetString,
}

#[derive(Sequence)]
pub(super) struct PbeParams {
    pub(super) salt: OctetString,
    pub(super) iterations: u32,
}

/// `EncryptedData` whose `[0] IMPLICIT OCTET STRING` content is in BER's constructed form.
#[derive(Sequence)]
pub(super) struct EncryptedDataChunked {
    pub(super) version: u8,
    pub(super) enc_content_info: EncryptedContentInfoChunked,
}

#[derive(Sequence)]
pub(super) struct EncryptedContentInfoChunked {
    pub(super) content_type: ObjectIdentifier,
    pub(super) content_enc_alg: AlgorithmIdentifierOwned,
    #[asn1(
        context_specific = "0",
        tag_mode = "IMPLICIT",
        constructed = "true",
        optional = "true"
    )]
    pub(super) encrypted_content: Option<Vec<OctetString>>,
}
