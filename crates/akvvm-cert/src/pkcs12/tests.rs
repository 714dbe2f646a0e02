//! Unit tests of the codec's internals: the two empty-password encodings, BER input, iteration
//! limits.

use akvvm_testkit::fixtures;
use der::{Any, Decode, Encode};

use super::asn1::{ContentInfo, Pfx, SafeBag};
use super::ber;
use super::crypto::{MAX_ITERATIONS, Passwords, check_iterations, mac_verifies};
use super::decode::{data_content, decode_within};
use super::{decode, encode_keyvault};

fn sample() -> (Vec<u8>, Vec<Vec<u8>>) {
    let key = p256::SecretKey::from_slice(&[7u8; 32]).expect("a P-256 scalar");
    let key_der = pkcs8::EncodePrivateKey::to_pkcs8_der(&key).expect("PKCS#8");
    // encode_keyvault does not parse certificates; any DER SEQUENCE will do here.
    (
        key_der.as_bytes().to_vec(),
        vec![vec![0x30, 0x03, 0x02, 0x01, 0x05]],
    )
}

/// Key Vault's empty password is zero bytes into the KDF; OpenSSL's is two zero bytes. The
/// two give different MAC keys, so a decoder must try both.
#[test]
fn keyvault_empty_password_is_zero_length_not_two_zero_bytes() {
    let (key, certs) = sample();
    let der = encode_keyvault(&key, &certs).expect("encode");
    let pfx = Pfx::from_der(&der).expect("PFX");
    let mac = pfx.mac_data.as_ref().expect("MAC");
    let data = data_content(&pfx.auth_safe, "authSafe").expect("data");
    assert!(mac_verifies(mac, data.as_bytes(), &[]).expect("MAC"));
    assert!(!mac_verifies(mac, data.as_bytes(), &[0, 0]).expect("MAC"));
    assert_eq!(mac.iterations, None, "the iteration count is left out");
    let passwords = Passwords::new("");
    assert_eq!(passwords.bmp.len(), 2);
    assert_eq!(passwords.bmp[0].as_slice(), &[] as &[u8]);
    assert_eq!(passwords.bmp[1].as_slice(), &[0, 0]);
}

#[test]
fn a_password_is_nul_terminated_big_endian_utf16() {
    let passwords = Passwords::new("aé");
    assert_eq!(passwords.bmp.len(), 1);
    assert_eq!(passwords.bmp[0].as_slice(), &[0, b'a', 0, 0xe9, 0, 0]);
    assert_eq!(passwords.utf8.as_slice(), "aé".as_bytes());
}

/// Re-encodes DER the way BER writers (NSS, old Java) do: indefinite lengths everywhere,
/// OCTET STRINGs in 8-byte chunks, and `[0] IMPLICIT OCTET STRING` in constructed form.
/// With `deep`, also inside OCTET STRINGs that hold an AuthenticatedSafe or SafeContents
/// (which changes the MAC'd bytes, so only for files without a MAC).
fn to_ber(der: &[u8], deep: bool) -> Vec<u8> {
    let mut out = Vec::new();
    let mut reader = der::SliceReader::new(der).expect("reader");
    while !der::Reader::is_finished(&reader) {
        let any: Any = der::Reader::decode(&mut reader).expect("DER");
        ber_element(&any, deep, &mut out);
    }
    out
}

fn chunks(out: &mut Vec<u8>, tag: u8, content: &[u8]) {
    out.extend_from_slice(&[tag, 0x80]);
    for chunk in content.chunks(8) {
        out.push(0x04);
        out.push(chunk.len() as u8);
        out.extend_from_slice(chunk);
    }
    out.extend_from_slice(&[0, 0]);
}

fn ber_element(any: &Any, deep: bool, out: &mut Vec<u8>) {
    let tag = u8::from(der::Tagged::tag(any));
    let content = any.value();
    if tag & 0x20 != 0 {
        out.extend_from_slice(&[tag, 0x80]);
        out.extend(to_ber(content, deep));
        out.extend_from_slice(&[0, 0]);
    } else if tag == 0x04 && content.len() > 8 {
        let nested = deep
            && (Vec::<ContentInfo>::from_der(content).is_ok()
                || Vec::<SafeBag>::from_der(content).is_ok());
        if nested {
            chunks(out, 0x24, &to_ber(content, deep));
        } else {
            chunks(out, 0x24, content);
        }
    } else if tag == 0x80 {
        chunks(out, 0xA0, content);
    } else {
        out.extend(any.to_der().expect("DER"));
    }
}

#[test]
fn ber_encoded_pfx_files_open() {
    use base64::Engine as _;
    let kv_text = fixtures::text("pkcs12/kv-rsa2048-rc2-2020.pfx.b64");
    let kv = base64::engine::general_purpose::STANDARD
        .decode(kv_text.trim())
        .expect("base64");
    let cases = [
        (kv, "", false),
        (
            fixtures::bytes("pkcs12/openssl3-aes-rsa2048.pfx"),
            "correct horse",
            false,
        ),
        (
            fixtures::bytes("pkcs12/openssl3-nomac-rsa2048.pfx"),
            "correct horse",
            true,
        ),
        (
            fixtures::bytes("pkcs12/openssl3-unencrypted-ecp384.pfx"),
            "",
            true,
        ),
    ];
    for (der, password, deep) in cases {
        let expected = decode(&der, password).expect("DER original");
        let ber = to_ber(&der, deep);
        assert!(
            ber != der,
            "the BER form came out identical to the DER original"
        );
        assert!(Pfx::from_der(&ber).is_err(), "the BER form is not DER");
        let opened = decode(&ber, password).expect("BER form");
        assert_eq!(opened.certs, expected.certs);
        assert_eq!(opened.keys.len(), expected.keys.len());
        assert!(
            opened.keys[0].as_slice() == expected.keys[0].as_slice(),
            "the key opened from the BER form differs (not shown)"
        );
    }
}

#[test]
fn ber_normaliser_refuses_what_it_cannot_map() {
    // Indefinite length on a primitive, a truncated end-of-contents, a bad chunk.
    assert_eq!(ber::to_der(&[0x04, 0x80, 0x00, 0x00]), None);
    assert_eq!(ber::to_der(&[0x30, 0x80, 0x02, 0x01, 0x01]), None);
    assert_eq!(
        ber::to_der(&[0x24, 0x80, 0x02, 0x01, 0x01, 0x00, 0x00]),
        None
    );
    assert_eq!(
        ber::to_der(&[
            0x30, 0x80, 0x24, 0x80, 0x04, 0x01, 0xAA, 0x04, 0x01, 0xBB, 0, 0, 0, 0
        ])
        .as_deref()
        .map(Vec::as_slice),
        Some(&[0x30, 0x04, 0x04, 0x02, 0xAA, 0xBB][..])
    );
}

#[test]
fn absurd_iteration_counts_are_refused() {
    assert!(check_iterations(0).is_err());
    assert!(check_iterations(MAX_ITERATIONS + 1).is_err());
    assert!(check_iterations(2048).is_ok());
}

/// The work one PFX may cost is bounded in all, not only per derivation: Key Vault's own file
/// (a MAC, a shrouded key bag and an encrypted certificate bag of 2000 iterations each, with
/// two encodings of the empty password to try) fits easily, and the same file is refused when
/// the budget is smaller than what it needs, before the work is done.
#[test]
fn the_total_key_derivation_work_is_bounded() {
    let (key, certs) = sample();
    let der = encode_keyvault(&key, &certs).expect("encode");
    let opened = decode(&der, "").expect("within the default budget");
    assert_eq!(opened.keys.len(), 1);
    // MAC (1 iteration) + key bag (2 x 2000) + certificate bag (2 x 2000).
    assert!(decode_within(&der, "", 8_001).is_ok());
    let err = decode_within(&der, "", 8_000).expect_err("over budget");
    assert_eq!(err.code(), "cert.pfx_corrupt");
    assert!(
        err.to_string()
            .contains("more than 8000 key-derivation iterations"),
        "{err}"
    );
    const { assert!(super::crypto::MAX_WORK >= 100 * 8_001) };
}

/// The copies decoding makes of a PFX (the DER of a base64 secret value, the DER form of BER
/// content, which may be decrypted) are wiped from memory when dropped.
#[test]
fn decoded_copies_are_wiped_when_dropped() {
    fn wiped<T: zeroize::ZeroizeOnDrop>(_: &T) {}
    use base64::Engine as _;
    let (key, certs) = sample();
    let pfx = encode_keyvault(&key, &certs).expect("encode");
    let value = base64::engine::general_purpose::STANDARD.encode(&pfx);
    let der = crate::certificate::pfx_base64(&value).expect("base64");
    wiped(&der);
    assert_eq!(der.as_slice(), pfx.as_slice());
    let normalised = ber::to_der(&[0x30, 0x80, 0x04, 0x01, 0xAA, 0, 0]).expect("BER");
    wiped(&normalised);
}
