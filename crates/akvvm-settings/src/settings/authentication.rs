//! `authenticationSettings`: a managed identity (`msiEndpoint`, `msiClientId`), or for
//! `KeyVaultForPaaS` an Entra application with a bootstrap certificate (`clientId`,
//! `clientCertificateSubjectName`); never both.

use serde_json::Value;
use url::Url;

use super::ctx::Ctx;
use super::keys::AUTH_KEYS;
use super::model::{Authentication, DEFAULT_MSI_ENDPOINT, MsiEndpoint};
use super::read::{Fields, Got};
use crate::identity_id::{ManagedIdentityId, MsiIdError};

impl Ctx<'_> {
    pub(super) fn authentication(&mut self, v: &Value, path: &str) -> Option<Authentication> {
        let fields = self.fields(v, path, AUTH_KEYS, "{\"msiEndpoint\": \"http://169.254.169.254/metadata/identity\", \"msiClientId\": \"<client id>\"}")?;
        let msi_endpoint = self.string(
            fields.get("msiEndpoint"),
            &fields.path("msiEndpoint"),
            "\"http://169.254.169.254/metadata/identity\"",
        );
        let msi_client_id = self.string(
            fields.get("msiClientId"),
            &fields.path("msiClientId"),
            "\"c7373ae5-91c2-4165-8ab6-7381d6e75619\"",
        );
        let client_id = self.string(
            fields.get("clientId"),
            &fields.path("clientId"),
            "\"<Entra application id>\"",
        );
        let subject = self.string(
            fields.get("clientCertificateSubjectName"),
            &fields.path("clientCertificateSubjectName"),
            "\"bootstrap.example.com\"",
        );

        let uses_msi = msi_endpoint.is_present() || msi_client_id.is_present();
        let uses_app = client_id.is_present() || subject.is_present();
        if uses_msi && uses_app {
            self.error(
                "mixed-authentication",
                path,
                "authenticationSettings mixes managed identity (msiEndpoint, msiClientId) with bootstrap-certificate authentication (clientId, clientCertificateSubjectName)",
            )
            .help("keep msiEndpoint/msiClientId for a VM or scale set, or clientId/clientCertificateSubjectName for KeyVaultForPaaS");
            return None;
        }
        if uses_app {
            return self.bootstrap(client_id, subject, &fields);
        }
        let client_id_path = fields.path("msiClientId");
        let client_id_given = matches!(&msi_client_id, Got::Value(id) if !id.trim().is_empty())
            || matches!(msi_client_id, Got::Skip);
        let client_id = match msi_client_id {
            Got::Value(id) if id.trim().is_empty() => {
                self.warn(
                    "empty-client-id",
                    &client_id_path,
                    "msiClientId is empty: the system-assigned identity is used",
                )
                .help("remove msiClientId, or give the user-assigned identity's client id");
                None
            }
            Got::Value(id) => match ManagedIdentityId::parse(&id) {
                Ok(parsed) => Some(parsed),
                Err(MsiIdError::Placeholder) => {
                    self.warn(
                        "client-id-placeholder",
                        &client_id_path,
                        format!("msiClientId {id:?} is the documentation's placeholder: IMDS will refuse it"),
                    )
                    .help("put your user-assigned identity's client id (a GUID), \"object_id:<GUID>\" (its object id) or its resource id here");
                    Some(ManagedIdentityId::parse_lenient(&id))
                }
                Err(MsiIdError::Unrecognised(why)) => {
                    self.error(
                        "bad-client-id",
                        &client_id_path,
                        format!("msiClientId {id:?} {why}"),
                    )
                    .help("give the user-assigned identity's client id (a GUID such as c7373ae5-91c2-4165-8ab6-7381d6e75619), its object id as \"object_id:<GUID>\", or its resource id \"/subscriptions/<subscription>/resourceGroups/<group>/providers/Microsoft.ManagedIdentity/userAssignedIdentities/<name>\"");
                    return None;
                }
            },
            Got::Absent | Got::Skip => None,
        };
        let endpoint_path = fields.path("msiEndpoint");
        let endpoint = match msi_endpoint {
            Got::Value(e) => self.msi_endpoint(&e, &endpoint_path)?,
            Got::Absent => {
                if client_id_given {
                    self.error(
                        "msi-endpoint-required",
                        &endpoint_path,
                        "msiEndpoint is required when msiClientId is set",
                    )
                    .help(format!("add \"msiEndpoint\": \"{DEFAULT_MSI_ENDPOINT}\""));
                    return None;
                }
                MsiEndpoint::default()
            }
            Got::Skip => return None,
        };
        if client_id.is_some() && endpoint.is_arc() {
            self.warn(
                "arc-user-assigned",
                &client_id_path,
                "this is the Azure Arc identity endpoint, and an Azure Arc server has only its \
                 system-assigned identity: msiClientId names an identity it does not have",
            )
            .help(
                "remove msiClientId and grant the server's own identity (the Arc machine \
                     resource) the \"Key Vault Secrets User\" role",
            );
        }
        Some(Authentication::ManagedIdentity {
            endpoint,
            client_id,
        })
    }

    pub(super) fn bootstrap(
        &mut self,
        client_id: Got<String>,
        subject: Got<String>,
        fields: &Fields<'_>,
    ) -> Option<Authentication> {
        let client_path = fields.path("clientId");
        let subject_path = fields.path("clientCertificateSubjectName");
        let client_id = match client_id {
            Got::Value(id) if id.trim().is_empty() => {
                self.error(
                    "missing-key",
                    &client_path,
                    "clientId is empty",
                )
                .help("give the Entra application (client) id of the app that holds the bootstrap certificate");
                None
            }
            Got::Value(id) => {
                if !is_guid(&id) {
                    self.warn(
                        "client-id-not-guid",
                        &client_path,
                        format!("clientId {id:?} is not a GUID; Entra application ids look like c7373ae5-91c2-4165-8ab6-7381d6e75619"),
                    )
                    .help("use the app registration's Application (client) ID");
                }
                Some(id)
            }
            Got::Absent => {
                self.error(
                    "missing-key",
                    &client_path,
                    "clientId is missing (required with clientCertificateSubjectName)",
                )
                .help("add \"clientId\": \"<Entra application id>\"");
                None
            }
            Got::Skip => None,
        };
        let subject = match subject {
            Got::Value(s) => {
                let trimmed = s.trim();
                if trimmed
                    .get(..3)
                    .is_some_and(|p| p.eq_ignore_ascii_case("CN="))
                {
                    self.error(
                        "subject-has-cn",
                        &subject_path,
                        format!("clientCertificateSubjectName {s:?} starts with \"CN=\"; the extension matches the subject name without it and would find no certificate"),
                    )
                    .help(format!("write {:?}", trimmed[3..].trim()));
                    None
                } else if trimmed.is_empty() {
                    self.error(
                        "missing-key",
                        &subject_path,
                        "clientCertificateSubjectName is empty",
                    )
                    .help("give the bootstrap certificate's subject name, without CN=");
                    None
                } else {
                    Some(s)
                }
            }
            Got::Absent => {
                self.error(
                    "missing-key",
                    &subject_path,
                    "clientCertificateSubjectName is missing (required with clientId)",
                )
                .help("add \"clientCertificateSubjectName\": \"<bootstrap certificate subject, without CN=>\"");
                None
            }
            Got::Skip => None,
        };
        Some(Authentication::BootstrapCertificate {
            client_id: client_id?,
            subject_name: subject?,
        })
    }

    /// `msiEndpoint`, with or without `/oauth2/token`; normalised without it.
    pub(super) fn msi_endpoint(&mut self, s: &str, path: &str) -> Option<MsiEndpoint> {
        let example = format!("write \"{DEFAULT_MSI_ENDPOINT}\"");
        if let Some((scheme, rest)) = s.split_once("://")
            && rest.starts_with('/')
        {
            self.error(
                "msi-endpoint-malformed",
                path,
                format!("msiEndpoint {s:?} is malformed: {scheme}:// is followed by another '/', so the host is missing"),
            )
            .help(example);
            return None;
        }
        let url = match Url::parse(s) {
            Ok(url) => url,
            Err(e) => {
                self.error(
                    "msi-endpoint-malformed",
                    path,
                    format!("msiEndpoint {s:?} is not a URL ({e})"),
                )
                .help(example);
                return None;
            }
        };
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none_or(str::is_empty) {
            self.error(
                "msi-endpoint-malformed",
                path,
                format!("msiEndpoint {s:?} must be an http(s) URL with a host"),
            )
            .help(example);
            return None;
        }
        if url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() {
            self.error(
                "msi-endpoint-malformed",
                path,
                format!("msiEndpoint {s:?} must not carry a query, fragment or user name; akvvm adds the query itself"),
            )
            .help(example);
            return None;
        }
        let mut url = url;
        let typo = url
            .path()
            .trim_end_matches('/')
            .strip_suffix("/ouath2/token")
            .map(str::to_string);
        if let Some(stripped) = typo {
            self.warn(
                "msi-endpoint-typo",
                path,
                format!("msiEndpoint {s:?} ends with \"/ouath2/token\" (a typo copied from the documentation); accepted as /oauth2/token"),
            )
            .help(example.clone());
            url.set_path(&stripped);
        }
        Some(MsiEndpoint::new(&url))
    }
}

fn is_guid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, n)| g.len() == n && g.bytes().all(|b| b.is_ascii_hexdigit()))
}
