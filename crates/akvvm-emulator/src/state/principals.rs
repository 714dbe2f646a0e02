//! Who may call: the VM's managed identities (system-assigned and user-assigned, served by IMDS)
//! and Entra app registrations that sign in with a certificate (Entra ID's token endpoint), and
//! how a role assignment's principal name resolves to an object id.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use sha1::Digest;

use super::model::{App, Identity, RegisteredCertificate};
use super::{State, new_id};
use crate::error::{AdminError, not_found};
use crate::redact::Redacted;

/// A new identity; ids not given are generated.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IdentitySpec {
    #[serde(default)]
    pub client_id: Option<String>,
    #[serde(default)]
    pub object_id: Option<String>,
    #[serde(default)]
    pub tenant_id: Option<String>,
    /// For a user-assigned identity: its ARM resource id (`msi_res_id`); a name makes one up.
    #[serde(default)]
    pub resource_id: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
}

impl IdentitySpec {
    fn into_identity(self, default_tenant: &str, user_assigned: bool) -> Identity {
        let resource_id = if user_assigned {
            self.resource_id.or_else(|| {
                Some(format!(
                    "/subscriptions/00000000-0000-0000-0000-000000000000/resourcegroups/akvvm/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{}",
                    self.name.as_deref().unwrap_or("identity")
                ))
            })
        } else {
            None
        };
        Identity {
            client_id: self.client_id.unwrap_or_else(new_id),
            object_id: self.object_id.unwrap_or_else(new_id),
            tenant_id: self.tenant_id.unwrap_or_else(|| default_tenant.to_owned()),
            resource_id,
        }
    }
}

/// A new app registration; ids not given are generated, and so is a certificate when none is given.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AppSpec {
    #[serde(default)]
    pub client_id: Option<String>,
    #[serde(default)]
    pub object_id: Option<String>,
    #[serde(default)]
    pub tenant_id: Option<String>,
    #[serde(default)]
    pub display_name: Option<String>,
    /// The app's certificate (PEM, public part). When absent, one is generated with subject
    /// `CN=<subjectName or displayName>` and its key is returned.
    #[serde(default)]
    pub certificate_pem: Option<String>,
    #[serde(default)]
    pub subject_name: Option<String>,
}

/// What a new app registration needs to sign in. `Debug` never shows the private key.
#[derive(Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AppCredentials {
    pub client_id: String,
    pub object_id: String,
    pub tenant_id: String,
    pub certificate_pem: String,
    /// base64url SHA-1 of the certificate (the `x5t` a client assertion carries).
    pub x5t: String,
    /// Upper-case hex SHA-1 thumbprint.
    pub thumbprint: String,
    /// PKCS#8 PEM of the generated key; absent when the certificate was given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_key_pem: Option<String>,
}

impl std::fmt::Debug for AppCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppCredentials")
            .field("client_id", &self.client_id)
            .field("object_id", &self.object_id)
            .field("tenant_id", &self.tenant_id)
            .field("thumbprint", &self.thumbprint)
            .field(
                "private_key_pem",
                &self.private_key_pem.as_ref().map(|k| Redacted(k.len())),
            )
            .finish_non_exhaustive()
    }
}

/// Reads a registered certificate's thumbprints and public key.
pub fn registered_certificate(der: &[u8]) -> Result<RegisteredCertificate, AdminError> {
    use der::{Decode, Encode};
    let cert = x509_cert::Certificate::from_der(der).map_err(|e| {
        AdminError::Invalid(format!(
            "the app certificate is not an X.509 certificate: {e}"
        ))
    })?;
    let spki = cert
        .tbs_certificate
        .subject_public_key_info
        .to_der()
        .map_err(|e| {
            AdminError::Invalid(format!(
                "the app certificate's public key does not encode: {e}"
            ))
        })?;
    Ok(RegisteredCertificate {
        der: der.to_vec(),
        spki,
        x5t: URL_SAFE_NO_PAD.encode(sha1::Sha1::digest(der)),
        x5t_s256: URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(der)),
    })
}

impl State {
    /// Creates (or replaces) the system-assigned identity.
    pub fn set_system_identity(&self, spec: IdentitySpec) -> Result<Identity, AdminError> {
        self.write(|m| {
            let identity = spec.into_identity(&m.default_tenant, false);
            m.system_identity = Some(identity.clone());
            Ok(identity)
        })
    }

    pub fn add_user_identity(&self, spec: IdentitySpec) -> Result<Identity, AdminError> {
        self.write(|m| {
            let identity = spec.into_identity(&m.default_tenant, true);
            if m.user_identities
                .iter()
                .any(|i| i.client_id == identity.client_id)
            {
                return Err(AdminError::Conflict {
                    what: "user-assigned identity",
                    name: identity.client_id,
                });
            }
            m.user_identities.push(identity.clone());
            Ok(identity)
        })
    }

    pub fn add_app(&self, app: App) -> Result<App, AdminError> {
        self.write(|m| {
            if m.apps.contains_key(&app.client_id) {
                return Err(AdminError::Conflict {
                    what: "app",
                    name: app.client_id.clone(),
                });
            }
            m.apps.insert(app.client_id.clone(), app.clone());
            Ok(app)
        })
    }

    /// Resolves a principal named by object id, client id, `system`, or an app's display name
    /// to its object id.
    pub fn resolve_principal(&self, principal: &str) -> Result<String, AdminError> {
        self.read(|m| {
            if principal.eq_ignore_ascii_case("system") {
                return m
                    .system_identity
                    .as_ref()
                    .map(|i| i.object_id.clone())
                    .ok_or_else(|| not_found("system-assigned identity", principal));
            }
            let ids = m.system_identity.iter().chain(m.user_identities.iter());
            for i in ids {
                if i.object_id.eq_ignore_ascii_case(principal)
                    || i.client_id.eq_ignore_ascii_case(principal)
                    || i.resource_id
                        .as_deref()
                        .is_some_and(|r| r.eq_ignore_ascii_case(principal))
                {
                    return Ok(i.object_id.clone());
                }
            }
            for a in m.apps.values() {
                if a.object_id.eq_ignore_ascii_case(principal)
                    || a.client_id.eq_ignore_ascii_case(principal)
                    || a.display_name == principal
                {
                    return Ok(a.object_id.clone());
                }
            }
            // An unknown principal is allowed (tokens from elsewhere may name it).
            Ok(principal.to_owned())
        })
    }

    /// Registers an app.
    pub fn register_app(&self, spec: AppSpec) -> Result<AppCredentials, AdminError> {
        let display_name = spec
            .display_name
            .clone()
            .unwrap_or_else(|| "akvvm-app".to_owned());
        let (cert_der, certificate_pem, private_key_pem) = match &spec.certificate_pem {
            Some(pem) => {
                let der: rustls::pki_types::CertificateDer<'static> =
                    rustls::pki_types::pem::PemObject::from_pem_slice(pem.as_bytes()).map_err(
                        |e| {
                            AdminError::Invalid(format!(
                                "certificatePem holds no PEM CERTIFICATE: {e:?}"
                            ))
                        },
                    )?;
                (der.to_vec(), pem.clone(), None)
            }
            None => {
                let subject = spec
                    .subject_name
                    .clone()
                    .unwrap_or_else(|| display_name.clone());
                let key = rcgen::KeyPair::generate_rsa_for(
                    &rcgen::PKCS_RSA_SHA256,
                    rcgen::RsaKeySize::_2048,
                )
                .map_err(|e| AdminError::Invalid(format!("failed to generate the app key: {e}")))?;
                let mut params = rcgen::CertificateParams::default();
                params
                    .distinguished_name
                    .push(rcgen::DnType::CommonName, subject);
                params.not_before = time::OffsetDateTime::now_utc() - time::Duration::days(1);
                params.not_after = time::OffsetDateTime::now_utc() + time::Duration::days(365);
                let cert = params.self_signed(&key).map_err(|e| {
                    AdminError::Invalid(format!("failed to create the app certificate: {e}"))
                })?;
                (cert.der().to_vec(), cert.pem(), Some(key.serialize_pem()))
            }
        };
        let registered = registered_certificate(&cert_der)?;
        let thumbprint = hex::encode_upper(sha1::Sha1::digest(&cert_der));
        let x5t = registered.x5t.clone();
        let app = App {
            client_id: spec.client_id.unwrap_or_else(new_id),
            object_id: spec.object_id.unwrap_or_else(new_id),
            tenant_id: spec.tenant_id.unwrap_or_else(|| self.default_tenant()),
            display_name,
            certificates: vec![registered],
        };
        let app = self.add_app(app)?;
        Ok(AppCredentials {
            client_id: app.client_id,
            object_id: app.object_id,
            tenant_id: app.tenant_id,
            certificate_pem,
            x5t,
            thumbprint,
            private_key_pem,
        })
    }
}
