//! `secretsManagementSettings`: the polling interval, the store, and each observed certificate
//! (its URL, store directory, link name and ACLs), with the Windows-only values reported as such
//! and no certificate or link written twice.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use akvvm_cert::store;
use serde_json::Value;

use super::ctx::Ctx;
use super::diagnostic::{join_index, join_key};
use super::keys::{ACL_KEYS, OBSERVED_KEYS, OVERRIDE_KEYS, SECRETS_KEYS};
use super::read::{Got, check_abs_path, compact};
use super::secret_url::{KNOWN_VAULT_SUFFIXES, SecretUrl, VaultHost};
use crate::identity_id::{ManagedIdentityId, MsiIdError};

use super::model::{
    AclEntry, CertificateOptions, DEFAULT_CERTIFICATE_STORE_NAME, DEFAULT_POLLING_INTERVAL,
    DEFAULT_STORE, ObservedCertificate,
};

pub(super) struct PartialSecrets {
    pub(super) polling_interval: Duration,
    pub(super) require_initial_sync: bool,
    pub(super) acl_enabled: bool,
    pub(super) link_on_renewal: bool,
    pub(super) store: PathBuf,
    pub(super) certificate_store_name: String,
    pub(super) observed: Vec<ObservedCertificate>,
    pub(super) any_object: bool,
    /// The JSON paths of the `authenticationOverride` objects given (checked against the
    /// top-level authentication once it is known).
    pub(super) override_paths: Vec<String>,
}

impl Ctx<'_> {
    pub(super) fn secrets_management(&mut self, v: &Value, path: &str) -> Option<PartialSecrets> {
        let fields = self.fields(v, path, SECRETS_KEYS, "{\"observedCertificates\": [...]}")?;
        let polling_interval = if self.is_v4() {
            self.v4_polling_interval(
                fields.get("pollingIntervalInS"),
                &fields.path("pollingIntervalInS"),
            )
        } else {
            self.polling_interval(
                fields.get("pollingIntervalInS"),
                &fields.path("pollingIntervalInS"),
            )
            .or(DEFAULT_POLLING_INTERVAL)
        };
        let certificate_store_name = self
            .store_name(
                fields.get("certificateStoreName"),
                &fields.path("certificateStoreName"),
            )
            .or(DEFAULT_CERTIFICATE_STORE_NAME.to_string());
        let store = self
            .store_location(
                fields.get("certificateStoreLocation"),
                &fields.path("certificateStoreLocation"),
            )
            .or(PathBuf::from(DEFAULT_STORE));
        let link_path = fields.path("linkOnRenewal");
        let link_on_renewal = self.boolean(fields.get("linkOnRenewal"), &link_path);
        if let Got::Value(b) = link_on_renewal {
            self.warn(
                "windows-only",
                &link_path,
                format!("linkOnRenewal ({b}) is a Windows feature (s-channel binding) and has no effect on Linux"),
            )
            .help("akvvm's stable link <vault>.<certificate> always follows renewals; point applications at it");
        }
        let require_initial_sync = self
            .boolean(
                fields.get("requireInitialSync"),
                &fields.path("requireInitialSync"),
            )
            .or(false);
        let acl_enabled = self
            .boolean(fields.get("aclEnabled"), &fields.path("aclEnabled"))
            .or(false);
        // 4.x: no initial-sync switch and ACLs always applied.
        let (require_initial_sync, acl_enabled) = if self.is_v4() {
            self.v4_removed_secrets_keys(&fields);
            (false, true)
        } else {
            (require_initial_sync, acl_enabled)
        };

        let observed_path = fields.path("observedCertificates");
        let mut any_object = false;
        let mut observed = Vec::new();
        match fields.get("observedCertificates") {
            None => self.error(
                "missing-key",
                &observed_path,
                "observedCertificates is missing: there is nothing to observe",
            )
            .help("add \"observedCertificates\": [\"https://myvault.vault.azure.net/secrets/mycert\"]"),
            Some(v) if self.arm_expression(v, &observed_path) => {}
            Some(Value::Array(items)) => {
                if items.is_empty() {
                    self.error(
                        "no-certificates",
                        &observed_path,
                        "observedCertificates is empty: there is nothing to observe",
                    )
                    .help("list at least one URL such as \"https://myvault.vault.azure.net/secrets/mycert\"");
                }
                for (i, item) in items.iter().enumerate() {
                    let item_path = join_index(&observed_path, i);
                    any_object |= item.is_object();
                    if let Some(cert) = self.observed(item, &item_path, &store, &certificate_store_name) {
                        observed.push((item_path, cert));
                    }
                }
            }
            Some(Value::String(s)) if self.is_v4() => self.v4_string_list(s, &observed_path),
            Some(Value::String(s)) => self.error(
                "wrong-type",
                &observed_path,
                "observedCertificates must be a list, found a single string",
            )
            .help(format!("write [{}]", Value::from(s.as_str()))),
            Some(other) => self.wrong_type(other, &observed_path, "an array", "[\"https://myvault.vault.azure.net/secrets/mycert\"]"),
        }
        self.check_unique(&observed);
        let override_paths = observed
            .iter()
            .filter(|(_, o)| o.authentication_override.is_some())
            .map(|(path, _)| join_key(path, "authenticationOverride"))
            .collect();
        if observed.iter().any(|(_, o)| !o.acls.is_empty()) && !acl_enabled {
            self.warn(
                "acls-without-acl-enabled",
                &fields.path("aclEnabled"),
                "some certificates have acls, but aclEnabled is not true: akvvm will not apply them",
            )
            .help("set \"aclEnabled\": true to grant the listed users and groups read access");
        }
        Some(PartialSecrets {
            polling_interval,
            require_initial_sync,
            acl_enabled,
            link_on_renewal: link_on_renewal.or(false),
            store,
            certificate_store_name,
            observed: observed.into_iter().map(|(_, c)| c).collect(),
            any_object,
            override_paths,
        })
    }

    pub(super) fn polling_interval(&mut self, v: Option<&Value>, path: &str) -> Got<Duration> {
        let Some(v) = v else { return Got::Absent };
        if self.arm_expression(v, path) {
            return Got::Skip;
        }
        let seconds = match v {
            Value::String(s) => s.trim().parse::<u64>().ok(),
            Value::Number(n) => {
                let n = n.as_u64();
                if let Some(n) = n {
                    self.warn(
                        "number-as-string",
                        path,
                        format!(
                            "pollingIntervalInS is documented as a string; accepted the number {n}"
                        ),
                    )
                    .help(format!("write \"{n}\""));
                }
                n
            }
            _ => None,
        };
        match seconds {
            Some(0) => {
                self.error(
                    "out-of-range",
                    path,
                    "pollingIntervalInS is 0; the interval must be at least 1 second",
                )
                .help("the default is \"3600\" (one hour)");
                Got::Skip
            }
            Some(s) => Got::Value(Duration::from_secs(s)),
            None => {
                self.error(
                    "bad-polling-interval",
                    path,
                    format!(
                        "pollingIntervalInS must be a whole number of seconds, found {}",
                        compact(v)
                    ),
                )
                .help("write it like \"3600\"");
                Got::Skip
            }
        }
    }

    pub(super) fn store_name(&mut self, v: Option<&Value>, path: &str) -> Got<String> {
        let got = self.string(v, path, "\"MY\"");
        if let Got::Value(name) = &got
            && !name.eq_ignore_ascii_case(DEFAULT_CERTIFICATE_STORE_NAME)
        {
            self.warn(
                "windows-only",
                path,
                format!("certificateStoreName {name:?} names a Windows certificate store; on Linux it is recorded only and does not change where certificates go"),
            )
            .help("use certificateStoreLocation to choose the directory");
        }
        got
    }

    pub(super) fn store_location(&mut self, v: Option<&Value>, path: &str) -> Got<PathBuf> {
        match self.string(
            v,
            path,
            "\"/var/lib/waagent/Microsoft.Azure.KeyVault.Store\"",
        ) {
            Got::Value(s)
                if s.eq_ignore_ascii_case("LocalMachine")
                    || s.eq_ignore_ascii_case("CurrentUser") =>
            {
                self.warn(
                    "windows-only",
                    path,
                    format!("certificateStoreLocation {s:?} is a Windows store location; on Linux akvvm uses the default directory {DEFAULT_STORE}"),
                )
                .help("give an absolute directory to choose another place");
                Got::Value(PathBuf::from(DEFAULT_STORE))
            }
            Got::Value(s) => match check_abs_path(&s) {
                Ok(p) => {
                    let normalized = store::path::normalize(&p).unwrap_or_else(|_| p.clone());
                    if let Some(why) = store::path::system_directory(&normalized) {
                        self.error(
                            "system-store-location",
                            path,
                            format!(
                                "certificateStoreLocation {s:?} is {why}; akvvm will not take it \
                                 over (it would narrow its mode to 0700 and mix certificates \
                                 with the system's)"
                            ),
                        )
                        .help(format!(
                            "use a directory of its own, such as \"{DEFAULT_STORE}\" or a new \
                             directory under it (see docs/configuration.md for the refused list)"
                        ));
                        return Got::Skip;
                    }
                    Got::Value(p)
                }
                Err(why) => {
                    self.error(
                        "bad-store-location",
                        path,
                        format!("certificateStoreLocation {s:?} {why}"),
                    )
                    .help(format!(
                        "use an absolute directory such as \"{DEFAULT_STORE}\""
                    ));
                    Got::Skip
                }
            },
            other => other.skip_unless_absent(),
        }
    }

    pub(super) fn observed(
        &mut self,
        v: &Value,
        path: &str,
        default_store: &Path,
        default_store_name: &str,
    ) -> Option<ObservedCertificate> {
        if self.arm_expression(v, path) {
            return None;
        }
        match v {
            Value::String(s) if self.is_v4() => {
                self.v4_string_certificate(s, path);
                None
            }
            Value::String(s) => {
                let url = self.secret_url(s, path)?;
                Some(ObservedCertificate {
                    url,
                    store_dir: default_store.to_path_buf(),
                    link_name: None,
                    acls: Vec::new(),
                    certificate_store_name: default_store_name.to_string(),
                    options: CertificateOptions::default(),
                    authentication_override: None,
                })
            }
            Value::Object(map) => {
                let fields = self.check_keys(map, path, OBSERVED_KEYS);
                let url_path = fields.path("url");
                let url = match self.string(
                    fields.get("url"),
                    &url_path,
                    "\"https://myvault.vault.azure.net/secrets/mycert\"",
                ) {
                    Got::Value(s) => self.secret_url(&s, &url_path),
                    Got::Absent => {
                        self.error(
                            "missing-key",
                            &url_path,
                            "this certificate object has no url",
                        )
                        .help("add \"url\": \"https://myvault.vault.azure.net/secrets/mycert\"");
                        None
                    }
                    Got::Skip => None,
                };
                let store_name = self
                    .store_name(
                        fields.get("certificateStoreName"),
                        &fields.path("certificateStoreName"),
                    )
                    .or(default_store_name.to_string());
                let store_dir = self
                    .store_location(
                        fields.get("certificateStoreLocation"),
                        &fields.path("certificateStoreLocation"),
                    )
                    .or(default_store.to_path_buf());
                let link_name = if self.is_v4() {
                    self.v4_link_name(
                        fields.get("customSymbolicLinkName"),
                        &fields.path("customSymbolicLinkName"),
                    );
                    Got::Absent
                } else {
                    self.link_name(
                        fields.get("customSymbolicLinkName"),
                        &fields.path("customSymbolicLinkName"),
                    )
                };
                let acls = self.acls(fields.get("acls"), &fields.path("acls"));
                let key_path = fields.path("keyExportable");
                let v4 = self.is_v4();
                if let Got::Value(b) = self.boolean(fields.get("keyExportable"), &key_path) {
                    self.warn(
                        "windows-only",
                        &key_path,
                        if v4 {
                            format!("keyExportable ({b}) is a Windows setting; on Linux the private key is always written to the .keyid file (mode 0600)")
                        } else {
                            format!("keyExportable ({b}) is a Windows setting; on Linux the private key is always written to the certificate file (mode 0600)")
                        },
                    )
                    .help(if v4 {
                        "control who may read it with acls (always applied in 4.x)"
                    } else {
                        "control who may read it with acls and aclEnabled"
                    });
                }
                let accounts_path = fields.path("accounts");
                if let Some(accounts) = fields.get("accounts")
                    && !self.arm_expression(accounts, &accounts_path)
                {
                    match accounts {
                            Value::Array(items) if items.iter().all(Value::is_string) => self.warn(
                                "windows-only",
                                &accounts_path,
                                "accounts names Windows accounts that get access to the private key; akvvm ignores it on Linux",
                            )
                            .help(if v4 {
                                "grant Linux users or groups read access with \"acls\": [{\"user\": \"www-data\"}] (always applied in 4.x)"
                            } else {
                                "grant Linux users or groups read access with \"acls\": [{\"user\": \"www-data\"}] and \"aclEnabled\": true"
                            }),
                            other => self.wrong_type(other, &accounts_path, "an array of account names", "[\"Network Service\"]"),
                        }
                }
                let options = match fields.get("akvvm") {
                    None => CertificateOptions::default(),
                    Some(o) => self.certificate_options(o, &fields.path("akvvm")),
                };
                let authentication_override = match fields.get("authenticationOverride") {
                    None => None,
                    Some(o) => {
                        self.authentication_override(o, &fields.path("authenticationOverride"))
                    }
                };
                Some(ObservedCertificate {
                    url: url?,
                    store_dir,
                    link_name: link_name.value(),
                    acls,
                    certificate_store_name: store_name,
                    options,
                    authentication_override,
                })
            }
            other => {
                self.wrong_type(
                    other,
                    path,
                    "a URL string or a certificate object",
                    "\"https://myvault.vault.azure.net/secrets/mycert\" or {\"url\": \"...\"}",
                );
                None
            }
        }
    }

    /// `authenticationOverride`: `{"msiClientId": "..."}`, in any of the forms the top-level
    /// `msiClientId` takes (client id, `object_id:<GUID>`, resource id). `None` when absent
    /// or wrong (reported).
    pub(super) fn authentication_override(
        &mut self,
        v: &Value,
        path: &str,
    ) -> Option<ManagedIdentityId> {
        const EXAMPLE: &str = "{\"msiClientId\": \"c7373ae5-91c2-4165-8ab6-7381d6e75619\"}";
        let fields = self.fields(v, path, OVERRIDE_KEYS, EXAMPLE)?;
        let id_path = fields.path("msiClientId");
        match self.string(
            fields.get("msiClientId"),
            &id_path,
            "\"c7373ae5-91c2-4165-8ab6-7381d6e75619\"",
        ) {
            Got::Absent => {
                self.error(
                    "missing-key",
                    &id_path,
                    "authenticationOverride has no msiClientId: it names no identity",
                )
                .help(format!(
                    "write \"authenticationOverride\": {EXAMPLE}, or remove authenticationOverride to use the identity of authenticationSettings"
                ));
                None
            }
            Got::Skip => None,
            Got::Value(id) if id.trim().is_empty() => {
                self.error(
                    "empty-client-id",
                    &id_path,
                    "authenticationOverride.msiClientId is empty: it names no identity",
                )
                .help("give the user-assigned identity's client id, or remove authenticationOverride to use the identity of authenticationSettings");
                None
            }
            Got::Value(id) => match ManagedIdentityId::parse(&id) {
                Ok(identity) => Some(identity),
                Err(MsiIdError::Placeholder) => {
                    self.warn(
                        "client-id-placeholder",
                        &id_path,
                        format!("msiClientId {id:?} is the documentation's placeholder: IMDS will refuse it"),
                    )
                    .help("put the user-assigned identity's client id (a GUID), \"object_id:<GUID>\" (its object id) or its resource id here");
                    Some(ManagedIdentityId::parse_lenient(&id))
                }
                Err(MsiIdError::Unrecognised(why)) => {
                    self.error(
                        "bad-client-id",
                        &id_path,
                        format!("msiClientId {id:?} {why}"),
                    )
                    .help("give the user-assigned identity's client id (a GUID such as c7373ae5-91c2-4165-8ab6-7381d6e75619), its object id as \"object_id:<GUID>\", or its resource id \"/subscriptions/<subscription>/resourceGroups/<group>/providers/Microsoft.ManagedIdentity/userAssignedIdentities/<name>\"");
                    None
                }
            },
        }
    }

    pub(super) fn secret_url(&mut self, s: &str, path: &str) -> Option<SecretUrl> {
        match SecretUrl::parse(s.trim()) {
            Ok(url) => {
                if self.is_v4() && self.v4_versioned_url(&url, path) {
                    return None;
                }
                if s.trim() != s {
                    self.warn(
                        "whitespace",
                        path,
                        format!("{s:?} has spaces around the URL; they are ignored"),
                    )
                    .help("remove them");
                }
                if url.vault_host() == VaultHost::PrivateEndpoint {
                    let suffixes: Vec<&str> =
                        KNOWN_VAULT_SUFFIXES.iter().map(|(s, _)| *s).collect();
                    self.warn(
                        "private-endpoint-host",
                        path,
                        format!("{} is not under a known Key Vault DNS suffix ({}); it is treated as a private endpoint host", url.host, suffixes.join(", ")),
                    )
                    .help("if this is a typo, use <vault>.vault.azure.net; a private endpoint normally keeps the vault.azure.net name");
                }
                Some(url)
            }
            Err(e) => {
                self.error(
                    e.code(),
                    path,
                    e.to_string(),
                )
                .help("an observed certificate is https://<vault>.vault.azure.net/secrets/<name>, or .../secrets/<name>/<version> to pin a version (copy the certificate's Secret Identifier)");
                None
            }
        }
    }

    pub(super) fn link_name(&mut self, v: Option<&Value>, path: &str) -> Got<String> {
        match self.string(v, path, "\"web\"") {
            Got::Value(name) => {
                let bad = name.is_empty()
                    || name == "."
                    || name == ".."
                    || name.contains('/')
                    || name.contains('\0')
                    || name.len() > 255;
                if bad {
                    self.error(
                        "bad-link-name",
                        path,
                        format!("customSymbolicLinkName {name:?} is not a file name"),
                    )
                    .help("use a plain name (no '/', not '.' or '..', at most 255 bytes); the link is created in the certificate's store directory");
                    Got::Skip
                } else {
                    Got::Value(name)
                }
            }
            other => other,
        }
    }

    pub(super) fn acls(&mut self, v: Option<&Value>, path: &str) -> Vec<AclEntry> {
        let Some(v) = v else { return Vec::new() };
        if self.arm_expression(v, path) {
            return Vec::new();
        }
        let Value::Array(items) = v else {
            self.wrong_type(
                v,
                path,
                "an array",
                "[{\"user\": \"www-data\"}, {\"group\": \"ssl-cert\"}]",
            );
            return Vec::new();
        };
        let mut out = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let item_path = join_index(path, i);
            let Some(fields) = self.fields(item, &item_path, ACL_KEYS, "{\"user\": \"www-data\"}")
            else {
                continue;
            };
            let user = self.string(fields.get("user"), &fields.path("user"), "\"www-data\"");
            let group = self.string(fields.get("group"), &fields.path("group"), "\"ssl-cert\"");
            // The documented v3 example names a user *and* a group in one entry
            // (`{"user": "app1", "group": "appGroup1"}`): each named principal gets read access.
            let named: Vec<(AclEntry, &str, String)> = match (user, group) {
                (Got::Value(u), Got::Absent) => vec![(AclEntry::User(u.clone()), "user", u)],
                (Got::Absent, Got::Value(g)) => vec![(AclEntry::Group(g.clone()), "group", g)],
                (Got::Value(u), Got::Value(g)) => vec![
                    (AclEntry::User(u.clone()), "user", u),
                    (AclEntry::Group(g.clone()), "group", g),
                ],
                (Got::Absent, Got::Absent) => {
                    self.error(
                        "bad-acl",
                        &item_path,
                        "an acls entry needs a user or a group",
                    )
                    .help("write {\"user\": \"www-data\"}, {\"group\": \"ssl-cert\"} or both in one entry");
                    continue;
                }
                // A value already reported as wrong, or an unresolved ARM expression.
                _ => continue,
            };
            for (entry, kind, name) in named {
                if !is_valid_account_name(&name) {
                    self.error(
                        "bad-acl",
                        &join_key(&item_path, kind),
                        format!("{name:?} is not a valid {kind} name"),
                    )
                    .help(
                        "use a Linux user or group name (or a numeric id) without spaces, ':' or ','",
                    );
                    continue;
                }
                if !out.contains(&entry) {
                    out.push(entry);
                }
            }
        }
        out
    }

    /// No secret observed twice into the same directory, and no two links with the same path.
    pub(super) fn check_unique(&mut self, observed: &[(String, ObservedCertificate)]) {
        let mut links: BTreeMap<PathBuf, String> = BTreeMap::new();
        // (vault URL, lower-case name, store) -> the first path: `same_secret` as a key, so that
        // 10,000 certificates cost 10,000 lookups rather than 50 million comparisons.
        let mut secrets: std::collections::HashMap<(&str, String, &PathBuf), &str> =
            std::collections::HashMap::new();
        for (path, cert) in observed {
            let key = (
                cert.url.vault_url.as_str(),
                cert.url.name.to_ascii_lowercase(),
                &cert.store_dir,
            );
            if let Some(first) = secrets.get(&key) {
                self.error(
                    "duplicate-certificate",
                    path,
                    format!("{} is observed twice into {} (first at {first})", cert.url.latest_url(), cert.store_dir.display()),
                )
                .help("remove one of them, or give them different certificateStoreLocation directories");
                continue;
            }
            secrets.insert(key, path);
            let mut names = vec![(cert.stable_link(), path.clone())];
            if let Some(link) = &cert.link_name {
                names.push((
                    cert.store_dir.join(link),
                    join_key(path, "customSymbolicLinkName"),
                ));
            }
            for (link, link_path) in names {
                if let Some(first) = links.get(&link) {
                    self.error(
                        "duplicate-link",
                        &link_path,
                        format!(
                            "{} would be created twice (also by {first})",
                            link.display()
                        ),
                    )
                    .help("choose a different customSymbolicLinkName");
                } else {
                    links.insert(link, link_path);
                }
            }
        }
    }
}

pub(super) fn is_valid_account_name(name: &str) -> bool {
    (1..=256).contains(&name.len())
        && !name.starts_with('-')
        && name
            .chars()
            .all(|c| !c.is_whitespace() && !c.is_control() && !matches!(c, ':' | ',' | '/'))
}
