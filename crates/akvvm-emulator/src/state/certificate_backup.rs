//! Certificate backup blobs and their restore: a certificate with every version, its policy and
//! its managed secret, opaque to clients as Key Vault's are (`POST /certificates/{name}/backup`,
//! `POST /certificates/restore`).

use serde::{Deserialize, Serialize};

use super::model::{Certificate, Secret, Vault};
use super::valid_object_name;
use crate::error::AdminError;

/// What a certificate backup blob of the local vault starts with; anything else is malformed.
const BACKUP_MAGIC: &[u8] = b"akvvm-certificate-backup-v1\n";

/// What a certificate backup holds.
#[derive(Serialize, Deserialize)]
struct Backup {
    certificate: Certificate,
    secret: Option<Secret>,
}

/// The certificate `name` of `v` with its managed secret as a backup blob (`BACKUP_MAGIC` then
/// JSON); None when there is no such certificate.
pub fn certificate_backup(v: &Vault, name: &str) -> Option<Vec<u8>> {
    let key = name.to_ascii_lowercase();
    let backup = Backup {
        certificate: v.certificates.get(&key)?.clone(),
        secret: v.secrets.get(&key).cloned(),
    };
    let mut blob = BACKUP_MAGIC.to_vec();
    // Plain data: serializing it cannot fail.
    blob.extend(serde_json::to_vec(&backup).unwrap_or_default());
    Some(blob)
}

/// The current version of the certificate in a backup blob [`certificate_backup`] made (what Key
/// Vault's restore conflict names).
pub fn current_version(blob: &[u8]) -> Option<String> {
    let backup: Backup = serde_json::from_slice(blob.strip_prefix(BACKUP_MAGIC)?).ok()?;
    Some(backup.certificate.versions.last()?.version.clone())
}

/// Restores the certificate of a backup blob (with its managed secret) into `v` under its own
/// name, without its certificate operation: `Ok(None)` for a blob [`certificate_backup`] did not
/// make; refused while a certificate or secret of that name exists or a deleted one is kept.
pub fn restore_certificate_in(
    v: &mut Vault,
    blob: &[u8],
) -> Result<Option<Certificate>, AdminError> {
    let Some(backup) = blob
        .strip_prefix(BACKUP_MAGIC)
        .and_then(|json| serde_json::from_slice::<Backup>(json).ok())
        .filter(|b| valid_object_name(&b.certificate.name) && !b.certificate.versions.is_empty())
    else {
        return Ok(None);
    };
    let name = backup.certificate.name.clone();
    let key = name.to_ascii_lowercase();
    if v.deleted_certificates.contains_key(&key) || v.deleted_secrets.contains_key(&key) {
        return Err(AdminError::Conflict {
            what: "certificate (deleted but recoverable)",
            name,
        });
    }
    if v.certificates.contains_key(&key) || v.secrets.contains_key(&key) {
        return Err(AdminError::Conflict {
            what: "certificate",
            name,
        });
    }
    if let Some(secret) = backup.secret {
        v.secrets.insert(key.clone(), secret);
    }
    // The certificate operation is not restored: Key Vault's restored bundle has no `pending`
    // (azure-sdk-for-python test_certificates_client.pyTestCertificateClienttest_backup_restore[7.3].json).
    let mut certificate = backup.certificate;
    certificate.pending = None;
    v.certificates.insert(key, certificate.clone());
    Ok(Some(certificate))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{AuthorizationModel, Model, State};
    use crate::token::TokenIssuer;

    #[test]
    fn a_certificate_backup_restores_once_with_its_secret_and_nothing_else_restores() {
        let s = State::new(Model::default(), TokenIssuer::generate().unwrap(), None);
        s.create_vault("vault", None, AuthorizationModel::Rbac)
            .unwrap();
        s.create_certificate("vault", "web", &serde_json::Value::Null)
            .unwrap();
        let blob = s.read(|m| certificate_backup(&m.vaults["vault"], "WEB").unwrap());
        assert!(s.read(|m| certificate_backup(&m.vaults["vault"], "other").is_none()));
        for garbage in [&[0u8; 64][..], b"", &blob[1..], &blob[..blob.len() - 1]] {
            assert!(matches!(
                s.with_vault("vault", |v| restore_certificate_in(v, garbage)),
                Ok(None)
            ));
        }
        assert!(matches!(
            s.with_vault("vault", |v| restore_certificate_in(v, &blob)),
            Err(AdminError::Conflict {
                what: "certificate",
                ..
            })
        ));
        let (cert, secret) = s.read(|m| {
            let v = &m.vaults["vault"];
            (v.certificates["web"].clone(), v.secrets["web"].clone())
        });
        s.with_vault("vault", |v| {
            v.certificates.remove("web");
            v.secrets.remove("web");
            Ok(())
        })
        .unwrap();
        let restored = s
            .with_vault("vault", |v| restore_certificate_in(v, &blob))
            .unwrap()
            .unwrap();
        assert_eq!(restored.versions[0].cer, cert.versions[0].cer);
        let back = s.read(|m| m.vaults["vault"].secrets["web"].clone());
        assert_eq!(back.versions[0].version, secret.versions[0].version);
        assert!(back.versions[0].managed);
    }
}
