//! akvvm's own options: the top-level `"akvvm"` object (state directory, versions kept, CA
//! roots, `resolve`, the authority, metrics, the webhook, the reload hook) and each
//! certificate's `"akvvm"` object (its reload hook and certbot layout).

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::num::{NonZeroU32, NonZeroUsize};
use std::time::Duration;

use akvvm_cert::store::{Acl, FileAccess};
use serde_json::Value;
use url::Url;

use super::ctx::Ctx;
use super::diagnostic::join_key;
use super::keys::{AGENT_KEYS, CERT_OPTION_KEYS, RELOAD_KEYS, WEBHOOK_KEYS};
use super::model::{
    AgentOptions, CertificateOptions, DEFAULT_RELOAD_TIMEOUT, DEFAULT_WEBHOOK_PATH, ReloadHook,
    ResolveTarget, WebhookSettings,
};
use super::read::{Got, compact};

impl Ctx<'_> {
    pub(super) fn agent_options(&mut self, v: &Value, path: &str) -> AgentOptions {
        let defaults = AgentOptions::default();
        let Some(fields) = self.fields(v, path, AGENT_KEYS, "{\"keepVersions\": 2}") else {
            return defaults;
        };
        let state_directory = self
            .abs_path(fields.get("stateDirectory"), &fields.path("stateDirectory"))
            .or(defaults.state_directory);
        let keep_versions = self
            .integer(
                fields.get("keepVersions"),
                &fields.path("keepVersions"),
                1,
                u64::from(u32::MAX),
            )
            .value()
            .and_then(|n| NonZeroU32::new(u32::try_from(n).ok()?))
            .unwrap_or(defaults.keep_versions);
        let initial_sync_retries = self
            .integer(
                fields.get("initialSyncRetries"),
                &fields.path("initialSyncRetries"),
                0,
                u64::from(u32::MAX),
            )
            .value()
            .and_then(|n| u32::try_from(n).ok())
            .unwrap_or(defaults.initial_sync_retries);
        let ca_certificates = self
            .abs_paths(fields.get("caCertificates"), &fields.path("caCertificates"))
            .or(defaults.ca_certificates);
        let resolve = self.resolve(fields.get("resolve"), &fields.path("resolve"));
        let authority_host = self
            .authority_host(fields.get("authorityHost"), &fields.path("authorityHost"))
            .or(defaults.authority_host);
        let bootstrap_certificate_directories = self
            .abs_paths(
                fields.get("bootstrapCertificateDirectories"),
                &fields.path("bootstrapCertificateDirectories"),
            )
            .or(defaults.bootstrap_certificate_directories);
        let concurrency_per_vault = self
            .integer(
                fields.get("concurrencyPerVault"),
                &fields.path("concurrencyPerVault"),
                1,
                1024,
            )
            .value()
            .and_then(|n| NonZeroUsize::new(usize::try_from(n).ok()?))
            .unwrap_or(defaults.concurrency_per_vault);
        let startup_jitter = self
            .integer(
                fields.get("startupJitterInS"),
                &fields.path("startupJitterInS"),
                0,
                3600,
            )
            .value()
            .map(Duration::from_secs);
        let request_timeout = self
            .integer(
                fields.get("requestTimeoutInS"),
                &fields.path("requestTimeoutInS"),
                1,
                600,
            )
            .value()
            .map(Duration::from_secs)
            .unwrap_or(defaults.request_timeout);
        let full_check_interval = self
            .integer(
                fields.get("fullCheckIntervalInS"),
                &fields.path("fullCheckIntervalInS"),
                0,
                31_536_000,
            )
            .value()
            .map(Duration::from_secs)
            .unwrap_or(defaults.full_check_interval);
        let expiry_warning_days = self
            .integer(
                fields.get("expiryWarningDays"),
                &fields.path("expiryWarningDays"),
                0,
                3650,
            )
            .value()
            .and_then(|n| u32::try_from(n).ok())
            .unwrap_or(defaults.expiry_warning_days);
        let reload = fields
            .get("reload")
            .and_then(|r| self.reload(r, &fields.path("reload")));
        let certbot_layout = self
            .boolean(fields.get("certbotLayout"), &fields.path("certbotLayout"))
            .or(defaults.certbot_layout);
        let metrics_address = self
            .metrics_address(fields.get("metricsAddress"), &fields.path("metricsAddress"))
            .value()
            .or(defaults.metrics_address);
        let webhook = fields
            .get("webhook")
            .and_then(|w| self.webhook(w, &fields.path("webhook")));
        let prune_removed_certificates = self
            .boolean(
                fields.get("pruneRemovedCertificates"),
                &fields.path("pruneRemovedCertificates"),
            )
            .or(defaults.prune_removed_certificates);
        let batch_reload = fields
            .get("batchReload")
            .and_then(|r| self.reload(r, &fields.path("batchReload")));
        let waagent_config = self
            .abs_path(fields.get("waagentConfig"), &fields.path("waagentConfig"))
            .or(defaults.waagent_config);
        AgentOptions {
            waagent_config,
            batch_reload,
            state_directory,
            keep_versions,
            initial_sync_retries,
            ca_certificates,
            resolve,
            authority_host,
            bootstrap_certificate_directories,
            concurrency_per_vault,
            startup_jitter,
            request_timeout,
            full_check_interval,
            expiry_warning_days,
            reload,
            certbot_layout,
            metrics_address,
            webhook,
            prune_removed_certificates,
        }
    }

    /// `webhook`: where Event Grid delivers Key Vault's new-version events.
    pub(super) fn webhook(&mut self, v: &Value, path: &str) -> Option<WebhookSettings> {
        let example = "{\"address\": \"0.0.0.0:8443\", \"certificateFile\": \"/var/lib/waagent/Microsoft.Azure.KeyVault.Store/myvault.webhook\", \"secretFile\": \"/etc/akvvm/webhook-secret\"}";
        let fields = self.fields(v, path, WEBHOOK_KEYS, example)?;
        let address_path = fields.path("address");
        let address = match self.string(fields.get("address"), &address_path, "\"0.0.0.0:8443\"") {
            Got::Value(s) => match s.parse::<SocketAddr>() {
                Ok(address) => Some(address),
                Err(_) => {
                    self.error(
                        "bad-webhook-address",
                        &address_path,
                        format!("address {s:?} is not an IP address and port"),
                    )
                    .help("write \"0.0.0.0:8443\" (every interface) or \"127.0.0.1:8080\" (behind a local proxy)");
                    None
                }
            },
            Got::Absent => {
                self.error(
                    "missing-key",
                    &address_path,
                    "the webhook needs an address to listen on",
                )
                .help(format!("write {example}"));
                None
            }
            Got::Skip => None,
        };
        let route_path = fields.path("path");
        let route = match self.string(fields.get("path"), &route_path, "\"/eventgrid\"") {
            Got::Value(p)
                if p.starts_with('/')
                    && p.len() > 1
                    && !p.contains(['?', '#', ' ', '{', '}', '*']) =>
            {
                Some(p)
            }
            Got::Value(p) => {
                self.error(
                    "bad-webhook-path",
                    &route_path,
                    format!("path {p:?} is not a URL path"),
                )
                .help("write a path such as \"/eventgrid\" (no query string: the secret goes in ?key=)");
                None
            }
            Got::Absent => Some(DEFAULT_WEBHOOK_PATH.to_string()),
            Got::Skip => None,
        };
        let certificate_file = self
            .abs_path(
                fields.get("certificateFile"),
                &fields.path("certificateFile"),
            )
            .value();
        let secret_file = self
            .abs_path(fields.get("secretFile"), &fields.path("secretFile"))
            .value();
        let (address, route) = (address?, route?);
        let loopback = address.ip().is_loopback();
        if fields.get("secretFile").is_none() {
            let message = "the webhook has no secretFile: anyone who reaches it can make the \
                           agent poll Key Vault";
            let help = "write a random secret in a file readable by root only, name it in \
                        secretFile, and add ?key=<secret> to the Event Grid subscription's \
                        endpoint URL";
            if loopback {
                self.warn("webhook-without-secret", path, message)
                    .help(help);
            } else {
                // Off loopback, anyone on the network could reach it.
                self.error(
                    "webhook-without-secret",
                    path,
                    format!("{message}, and it listens on {address}, off loopback"),
                )
                .help(help);
            }
        }
        if fields.get("certificateFile").is_none() && !loopback {
            self.error(
                "webhook-without-tls",
                path,
                format!(
                    "the webhook on {address} would serve plain HTTP off loopback: the secret \
                     would cross the network in clear, and Event Grid delivers only to HTTPS \
                     endpoints"
                ),
            )
            .help(
                "name a PEM with the chain and its key in certificateFile (an observed \
                     certificate's stable link will do), or listen on 127.0.0.1 behind a \
                     TLS-terminating proxy",
            );
        }
        Some(WebhookSettings {
            address,
            path: route,
            certificate_file,
            secret_file,
        })
    }

    /// `metricsAddress`: an `IP:port` to serve Prometheus metrics on.
    pub(super) fn metrics_address(&mut self, v: Option<&Value>, path: &str) -> Got<SocketAddr> {
        match self.string(v, path, "\"127.0.0.1:9464\"") {
            Got::Value(s) => match s.parse::<SocketAddr>() {
                Ok(address) => {
                    if !address.ip().is_loopback() {
                        self.warn(
                            "metrics-not-loopback",
                            path,
                            format!(
                                "metrics on {address} are served without authentication to \
                                 anyone who can reach that address (certificate names, versions, \
                                 expiry and errors)"
                            ),
                        )
                        .help(
                            "prefer a loopback address such as \"127.0.0.1:9464\" and let a \
                                 local Prometheus agent scrape it",
                        );
                    }
                    Got::Value(address)
                }
                Err(_) => {
                    self.error(
                        "bad-metrics-address",
                        path,
                        format!("metricsAddress {s:?} is not an IP address and port"),
                    )
                    .help(
                        "write \"127.0.0.1:9464\" or \"[::1]:9464\" (no host names, no \
                             scheme or path: metrics are served at /metrics)",
                    );
                    Got::Skip
                }
            },
            other => other.skip_unless_absent(),
        }
    }

    pub(super) fn resolve(
        &mut self,
        v: Option<&Value>,
        path: &str,
    ) -> BTreeMap<String, ResolveTarget> {
        let mut out = BTreeMap::new();
        let Some(v) = v else { return out };
        if self.arm_expression(v, path) {
            return out;
        }
        let Value::Object(map) = v else {
            self.wrong_type(
                v,
                path,
                "an object mapping host names to addresses",
                "{\"myvault.vault.azure.net\": \"127.0.0.1:8443\"}",
            );
            return out;
        };
        for (host, target) in map {
            let entry_path = join_key(path, host);
            let host_ok = !host.is_empty()
                && host.len() <= 253
                && host.split('.').all(|l| {
                    !l.is_empty()
                        && l.len() <= 63
                        && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                });
            if !host_ok {
                self.error(
                    "bad-resolve",
                    &entry_path,
                    format!("{host:?} is not a host name"),
                )
                .help("use a DNS name such as \"myvault.vault.azure.net\"");
                continue;
            }
            let Got::Value(s) = self.string(Some(target), &entry_path, "\"127.0.0.1:8443\"") else {
                continue;
            };
            let parsed = s
                .parse::<SocketAddr>()
                .map(ResolveTarget::Socket)
                .or_else(|_| s.parse::<IpAddr>().map(ResolveTarget::Ip));
            match parsed {
                Ok(t) => {
                    out.insert(host.to_ascii_lowercase(), t);
                }
                Err(_) => self
                    .error(
                        "bad-resolve",
                        &entry_path,
                        format!("{s:?} is not an IP address or IP:port"),
                    )
                    .help("write \"10.0.0.5\", \"127.0.0.1:8443\" or \"[::1]:8443\""),
            }
        }
        out
    }

    pub(super) fn authority_host(&mut self, v: Option<&Value>, path: &str) -> Got<Url> {
        match self.string(v, path, "\"https://login.microsoftonline.com\"") {
            Got::Value(s) => {
                match Url::parse(&s) {
                    Ok(url)
                        if url.scheme() == "https"
                            && url.host_str().is_some_and(|h| !h.is_empty())
                            && url.query().is_none() =>
                    {
                        Got::Value(url)
                    }
                    _ => {
                        self.error(
                        "bad-authority-host",
                        path,
                        format!("authorityHost {s:?} is not an https URL"),
                    )
                    .help("write \"https://login.microsoftonline.com\" (or your cloud's authority)");
                        Got::Skip
                    }
                }
            }
            other => other.skip_unless_absent(),
        }
    }

    pub(super) fn certificate_options(&mut self, v: &Value, path: &str) -> CertificateOptions {
        let Some(fields) = self.fields(
            v,
            path,
            CERT_OPTION_KEYS,
            "{\"reload\": {\"command\": [\"systemctl\", \"reload\", \"nginx\"]}}",
        ) else {
            return CertificateOptions::default();
        };
        let files = FileAccess {
            owner: self.file_account(fields.get("owner"), &fields.path("owner"), false),
            group: self.file_account(fields.get("group"), &fields.path("group"), true),
            mode: self.file_mode(fields.get("mode"), &fields.path("mode")),
        };
        CertificateOptions {
            reload: fields
                .get("reload")
                .and_then(|r| self.reload(r, &fields.path("reload"))),
            certbot_layout: self
                .boolean(fields.get("certbotLayout"), &fields.path("certbotLayout"))
                .value(),
            files,
        }
    }

    /// A certificate's `owner` or `group`: a valid name that exists on this machine (an error
    /// when the settings are this machine's, a warning when checking an ARM document, which is
    /// deployed elsewhere).
    fn file_account(&mut self, v: Option<&Value>, path: &str, group: bool) -> Option<String> {
        let kind = if group { "group" } else { "user" };
        let example = "\"postgres\"";
        let Got::Value(name) = self.string(v, path, example) else {
            return None;
        };
        if !super::secrets::is_valid_account_name(&name) {
            self.error(
                "bad-file-owner",
                path,
                format!("{name:?} is not a valid {kind} name"),
            )
            .help("use a Linux user or group name (or a numeric id) without spaces, ':' or ','");
            return None;
        }
        let account = if group {
            Acl::Group(name.clone())
        } else {
            Acl::User(name.clone())
        };
        if account.resolve().is_err() {
            // A warning, not an error: the agent keeps installing the other certificates, and
            // this one fails (`store.unknown_user`/`store.unknown_group`) until the account
            // exists, as a service's package often creates it after the extension starts.
            let message = format!("no {kind} named {name:?} exists on this machine");
            let message = if self.options.arm_expressions {
                format!("{message}; it must exist on the machine this is deployed to")
            } else {
                format!(
                    "{message}; this certificate is not installed until it exists (the others are)"
                )
            };
            self.warn("unknown-file-owner", path, message).help(format!(
                "create the {kind} first (the service's package usually does), or fix the name"
            ));
        }
        Some(name)
    }

    /// A certificate's `mode`: an octal string granting at most `0640`, the owner reading.
    fn file_mode(&mut self, v: Option<&Value>, path: &str) -> Option<u32> {
        let Got::Value(text) = self.string(v, path, "\"0640\"") else {
            return None;
        };
        let help = "write \"0600\" (the default), \"0640\" (the group reads; set \"group\"), \"0400\" or \"0440\"";
        let Some(mode) = u32::from_str_radix(text.trim(), 8)
            .ok()
            .filter(|_| !text.trim().is_empty() && text.trim().len() <= 4)
        else {
            self.error(
                "bad-file-mode",
                path,
                format!("mode {text:?} is not an octal mode such as \"0640\""),
            )
            .help(help);
            return None;
        };
        if mode & 0o007 != 0 {
            self.error(
                "bad-file-mode",
                path,
                format!("mode {text:?} lets others read the certificate file, which holds the private key"),
            )
            .help(help);
            return None;
        }
        if mode & !0o640 != 0 || mode & 0o400 == 0 {
            self.error(
                "bad-file-mode",
                path,
                format!("mode {text:?} is not allowed: the owner must read, and the group may at most read"),
            )
            .help(help);
            return None;
        }
        Some(mode)
    }

    pub(super) fn reload(&mut self, v: &Value, path: &str) -> Option<ReloadHook> {
        let example = "{\"command\": [\"systemctl\", \"reload\", \"nginx\"], \"timeoutInS\": 30}";
        let fields = self.fields(v, path, RELOAD_KEYS, example)?;
        let command_path = fields.path("command");
        let timeout = self
            .integer(
                fields.get("timeoutInS"),
                &fields.path("timeoutInS"),
                1,
                86_400,
            )
            .value()
            .map_or(DEFAULT_RELOAD_TIMEOUT, Duration::from_secs);
        let command = match fields.get("command") {
            None => {
                self.error(
                    "missing-key",
                    &command_path,
                    "a reload hook needs a command",
                )
                .help(format!("write {example}"));
                return None;
            }
            Some(c) if self.arm_expression(c, &command_path) => return None,
            Some(Value::String(s)) => {
                self.error(
                    "reload-command-string",
                    &command_path,
                    format!("command {s:?} is a string; akvvm runs an argument list and never a shell string"),
                )
                .help(format!("write [{}]", s.split_whitespace().map(|w| Value::from(w).to_string()).collect::<Vec<_>>().join(", ")));
                return None;
            }
            Some(Value::Array(items))
                if !items.is_empty()
                    && items
                        .iter()
                        .all(|i| i.as_str().is_some_and(|s| !s.is_empty())) =>
            {
                items
                    .iter()
                    .filter_map(|i| i.as_str().map(str::to_string))
                    .collect()
            }
            Some(other) => {
                self.error(
                    "bad-reload-command",
                    &command_path,
                    format!(
                        "command must be a non-empty list of non-empty strings, found {}",
                        compact(other)
                    ),
                )
                .help(format!("write {example}"));
                return None;
            }
        };
        Some(ReloadHook { command, timeout })
    }
}
