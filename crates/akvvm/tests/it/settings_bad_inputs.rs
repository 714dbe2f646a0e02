//! Bad settings, one per row: each must produce an error (or, for the documented leniencies and
//! Windows-only values, a warning) with the stated code, JSON path and message.

use akvvm::settings::{Diagnostic, Settings, Severity};
use serde_json::{Value, json};

const URL: &str = "https://myvault.vault.azure.net/secrets/mycert";

/// Settings observing `URL` with `extra` merged into `secretsManagementSettings`.
fn sms(extra: Value) -> Value {
    let mut s = json!({"observedCertificates": [URL]});
    for (k, v) in extra.as_object().unwrap() {
        s[k] = v.clone();
    }
    json!({"secretsManagementSettings": s})
}

/// Settings with one v3 certificate object (`url` plus `fields`).
fn cert(fields: Value) -> Value {
    let mut c = json!({"url": URL});
    for (k, v) in fields.as_object().unwrap() {
        c[k] = v.clone();
    }
    json!({"secretsManagementSettings": {"aclEnabled": true, "observedCertificates": [c]}})
}

/// Settings with the given authenticationSettings.
fn auth(a: Value) -> Value {
    json!({"secretsManagementSettings": {"observedCertificates": [URL]}, "authenticationSettings": a})
}

/// Settings with the given top-level "akvvm" object.
fn agent(a: Value) -> Value {
    json!({"secretsManagementSettings": {"observedCertificates": [URL]}, "akvvm": a})
}

struct Case {
    input: Value,
    severity: Severity,
    code: &'static str,
    path: &'static str,
    message: &'static str,
}

fn err(input: Value, code: &'static str, path: &'static str, message: &'static str) -> Case {
    Case {
        input,
        severity: Severity::Error,
        code,
        path,
        message,
    }
}

fn warn(input: Value, code: &'static str, path: &'static str, message: &'static str) -> Case {
    Case {
        input,
        severity: Severity::Warning,
        code,
        path,
        message,
    }
}

const SMS: &str = "settings.secretsManagementSettings";

fn cases() -> Vec<Case> {
    vec![
        // The settings object itself.
        err(
            json!("{\"secretsManagementSettings\": {\"observedCertificates\": []}}"),
            "settings-is-string",
            "settings",
            "Failed to parse the configuration settings with: not an object: the settings are a JSON string",
        ),
        // What an escaped JSON string holds is checked too, at paths marked "(string)".
        err(
            json!(
                "{\"secretsManagementSettings\": {\"pollingIntervalInSec\": \"60\", \"observedCertificates\": []}}"
            ),
            "unknown-key",
            "settings(string).secretsManagementSettings.pollingIntervalInSec",
            "unknown key \"pollingIntervalInSec\"",
        ),
        err(
            json!(
                "{\"secretsManagementSettings\": {\"observedCertificates\": [\"https://kv.vault.azure.net/certificates/web\"]}}"
            ),
            "url-certificates-path",
            "settings(string).secretsManagementSettings.observedCertificates[0]",
            "use the /secrets/ URL",
        ),
        err(
            json!(
                "{\"secretsManagementSettings\": {\"observedCertificates\": [\"[parameters('certs')]\"]}}"
            ),
            "arm-expression",
            "settings(string).secretsManagementSettings.observedCertificates[0]",
            "is an ARM template expression",
        ),
        err(
            json!("secretsManagementSettings: {observedCertificates: []}"),
            "settings-is-string",
            "settings",
            "not a JSON object; the string is not JSON either (expected value at line 1 column 1)",
        ),
        err(
            json!("3600"),
            "settings-is-string",
            "settings",
            "not a JSON object; the string's JSON is a number, not an object either",
        ),
        err(
            json!([1, 2]),
            "not-an-object",
            "settings",
            "Failed to parse the configuration settings with: not an object: the settings are an array",
        ),
        err(
            json!({}),
            "missing-key",
            "settings.secretsManagementSettings",
            "secretsManagementSettings is missing",
        ),
        err(
            json!({"secretsManagementSettings": {"observedCertificates": [URL]}, "settings": {}}),
            "misplaced-key",
            "settings.settings",
            "unknown key \"settings\"",
        ),
        err(
            json!({"secretsManagementSettings": {"observedCertificates": [URL]}, "loggingSetings": {}}),
            "unknown-key",
            "settings.loggingSetings",
            "unknown key \"loggingSetings\"",
        ),
        err(
            json!({"secretsManagementSettings": {"observedCertificates": [URL]}, "pollingIntervalInS": "60"}),
            "misplaced-key",
            "settings.pollingIntervalInS",
            "unknown key \"pollingIntervalInS\"",
        ),
        // secretsManagementSettings.
        err(
            json!({"secretsManagementSettings": "x"}),
            "wrong-type",
            SMS,
            "expected an object, found a string",
        ),
        err(
            json!({"secretsManagementSettings": {}}),
            "missing-key",
            "settings.secretsManagementSettings.observedCertificates",
            "observedCertificates is missing",
        ),
        err(
            sms(json!({"observedCertificates": []})),
            "no-certificates",
            "settings.secretsManagementSettings.observedCertificates",
            "observedCertificates is empty",
        ),
        err(
            sms(json!({"observedCertificates": URL})),
            "wrong-type",
            "settings.secretsManagementSettings.observedCertificates",
            "observedCertificates must be a list, found a single string",
        ),
        err(
            sms(json!({"observedCertificates": [42]})),
            "wrong-type",
            "settings.secretsManagementSettings.observedCertificates[0]",
            "expected a URL string or a certificate object, found a number",
        ),
        err(
            sms(json!({"pollingIntervalInSec": "60"})),
            "unknown-key",
            "settings.secretsManagementSettings.pollingIntervalInSec",
            "unknown key \"pollingIntervalInSec\"",
        ),
        err(
            sms(json!({"pollingIntervalInS": "1h"})),
            "bad-polling-interval",
            "settings.secretsManagementSettings.pollingIntervalInS",
            "pollingIntervalInS must be a whole number of seconds, found \"1h\"",
        ),
        err(
            sms(json!({"pollingIntervalInS": "0"})),
            "out-of-range",
            "settings.secretsManagementSettings.pollingIntervalInS",
            "pollingIntervalInS is 0",
        ),
        err(
            sms(json!({"pollingIntervalInS": -5})),
            "bad-polling-interval",
            "settings.secretsManagementSettings.pollingIntervalInS",
            "found -5",
        ),
        err(
            sms(json!({"requireInitialSync": "yes"})),
            "wrong-type",
            "settings.secretsManagementSettings.requireInitialSync",
            "expected a boolean, found a string",
        ),
        err(
            sms(json!({"certificateStoreLocation": "certs/kv"})),
            "bad-store-location",
            "settings.secretsManagementSettings.certificateStoreLocation",
            "certificateStoreLocation \"certs/kv\" is not an absolute path",
        ),
        err(
            sms(json!({"certificateStoreLocation": "/etc/../tmp"})),
            "bad-store-location",
            "settings.secretsManagementSettings.certificateStoreLocation",
            "contains '..'",
        ),
        err(
            sms(json!({"certificateStoreLocation": "/etc/ssl/certs"})),
            "system-store-location",
            "settings.secretsManagementSettings.certificateStoreLocation",
            "certificateStoreLocation \"/etc/ssl/certs\" is a directory that other programs read certificates or keys from",
        ),
        err(
            sms(json!({"certificateStoreLocation": "//etc/./ssl//certs/"})),
            "system-store-location",
            "settings.secretsManagementSettings.certificateStoreLocation",
            "akvvm will not take it over",
        ),
        err(
            sms(json!({"certificateStoreLocation": "/"})),
            "system-store-location",
            "settings.secretsManagementSettings.certificateStoreLocation",
            "is the root directory",
        ),
        err(
            sms(json!({"certificateStoreLocation": "/tmp/"})),
            "system-store-location",
            "settings.secretsManagementSettings.certificateStoreLocation",
            "a directory of the operating system or of another package",
        ),
        err(
            cert(json!({"certificateStoreLocation": "/usr/lib64"})),
            "system-store-location",
            "settings.secretsManagementSettings.observedCertificates[0].certificateStoreLocation",
            "certificateStoreLocation \"/usr/lib64\" is a directory of the operating system",
        ),
        err(
            sms(json!({"authenticationSettings": {}})),
            "misplaced-key",
            "settings.secretsManagementSettings.authenticationSettings",
            "unknown key \"authenticationSettings\"",
        ),
        err(
            sms(json!({"customSymbolicLinkName": "web"})),
            "misplaced-key",
            "settings.secretsManagementSettings.customSymbolicLinkName",
            "unknown key \"customSymbolicLinkName\"",
        ),
        err(
            sms(json!({"observedCertificates": [URL, URL]})),
            "duplicate-certificate",
            "settings.secretsManagementSettings.observedCertificates[1]",
            "is observed twice into /var/lib/waagent/Microsoft.Azure.KeyVault.Store (first at settings.secretsManagementSettings.observedCertificates[0])",
        ),
        // Observed URLs.
        err(
            sms(json!({"observedCertificates": ["http://myvault.vault.azure.net/secrets/mycert"]})),
            "url-not-https",
            "settings.secretsManagementSettings.observedCertificates[0]",
            "uses http://; Key Vault is only reached over https",
        ),
        err(
            sms(
                json!({"observedCertificates": ["https://myvault.vault.azure.net/certificates/mycert"]}),
            ),
            "url-certificates-path",
            "settings.secretsManagementSettings.observedCertificates[0]",
            "use the /secrets/ URL (the secret carries the private key): https://myvault.vault.azure.net/secrets/mycert",
        ),
        err(
            sms(json!({"observedCertificates": ["https://myvault.vault.azure.net/keys/mycert"]})),
            "url-keys-path",
            "settings.secretsManagementSettings.observedCertificates[0]",
            "points at /keys/",
        ),
        err(
            sms(
                json!({"observedCertificates": ["https://myvault.vault.azure.net/secrets/my_cert"]}),
            ),
            "url-secret-name",
            "settings.secretsManagementSettings.observedCertificates[0]",
            "secret name \"my_cert\" is not valid",
        ),
        err(
            sms(
                json!({"observedCertificates": ["https://myvault.vault.azure.net/secrets/mycert/latest"]}),
            ),
            "url-version",
            "settings.secretsManagementSettings.observedCertificates[0]",
            "version \"latest\" is not valid",
        ),
        err(
            sms(json!({"observedCertificates": ["https://myvault.vault.azure.net/secrets/"]})),
            "url-path",
            "settings.secretsManagementSettings.observedCertificates[0]",
            "is not a secret URL",
        ),
        err(
            sms(json!({"observedCertificates": ["myvault.vault.azure.net/secrets/mycert"]})),
            "url-syntax",
            "settings.secretsManagementSettings.observedCertificates[0]",
            "is not a URL",
        ),
        err(
            sms(json!({"observedCertificates": ["https://10.1.2.3/secrets/mycert"]})),
            "url-ip-host",
            "settings.secretsManagementSettings.observedCertificates[0]",
            "has an IP address as host",
        ),
        err(
            sms(
                json!({"observedCertificates": ["https://myvault.vault.azure.net/secrets/mycert?api-version=7.4"]}),
            ),
            "url-query",
            "settings.secretsManagementSettings.observedCertificates[0]",
            "has a query or fragment",
        ),
        err(
            sms(json!({"observedCertificates": ["[parameters('certs')]"]})),
            "arm-expression",
            "settings.secretsManagementSettings.observedCertificates[0]",
            "is an ARM template expression",
        ),
        // Certificate objects.
        err(
            cert(json!({"url": null})),
            "wrong-type",
            "settings.secretsManagementSettings.observedCertificates[0].url",
            "expected a string, found null",
        ),
        err(
            json!({"secretsManagementSettings": {"observedCertificates": [{"certificateStoreLocation": "/etc/ssl"}]}}),
            "missing-key",
            "settings.secretsManagementSettings.observedCertificates[0].url",
            "this certificate object has no url",
        ),
        err(
            cert(json!({"customSymbolicLinkName": "../web"})),
            "bad-link-name",
            "settings.secretsManagementSettings.observedCertificates[0].customSymbolicLinkName",
            "customSymbolicLinkName \"../web\" is not a file name",
        ),
        err(
            cert(json!({"customSymbolicLinkNmae": "web"})),
            "unknown-key",
            "settings.secretsManagementSettings.observedCertificates[0].customSymbolicLinkNmae",
            "unknown key \"customSymbolicLinkNmae\"",
        ),
        err(
            cert(json!({"acls": [{"user": "www-data", "group": "ssl cert"}]})),
            "bad-acl",
            "settings.secretsManagementSettings.observedCertificates[0].acls[0].group",
            "\"ssl cert\" is not a valid group name",
        ),
        err(
            cert(json!({"acls": [{}]})),
            "bad-acl",
            "settings.secretsManagementSettings.observedCertificates[0].acls[0]",
            "an acls entry needs a user or a group",
        ),
        err(
            cert(json!({"acls": [{"user": "www data"}]})),
            "bad-acl",
            "settings.secretsManagementSettings.observedCertificates[0].acls[0].user",
            "\"www data\" is not a valid user name",
        ),
        err(
            cert(json!({"acls": [{"users": "www-data"}]})),
            "unknown-key",
            "settings.secretsManagementSettings.observedCertificates[0].acls[0].users",
            "unknown key \"users\"",
        ),
        err(
            cert(json!({"acls": {"user": "www-data"}})),
            "wrong-type",
            "settings.secretsManagementSettings.observedCertificates[0].acls",
            "expected an array, found an object",
        ),
        err(
            cert(json!({"linkOnRenewal": true})),
            "misplaced-key",
            "settings.secretsManagementSettings.observedCertificates[0].linkOnRenewal",
            "unknown key \"linkOnRenewal\"",
        ),
        err(
            json!({"secretsManagementSettings": {"observedCertificates": [
                {"url": URL, "customSymbolicLinkName": "web"},
                {"url": "https://myvault.vault.azure.net/secrets/other", "customSymbolicLinkName": "web"}]}}),
            "duplicate-link",
            "settings.secretsManagementSettings.observedCertificates[1].customSymbolicLinkName",
            "would be created twice",
        ),
        // Authentication.
        err(
            auth(json!({"msiClientId": "c7373ae5-91c2-4165-8ab6-7381d6e75619"})),
            "msi-endpoint-required",
            "settings.authenticationSettings.msiEndpoint",
            "msiEndpoint is required when msiClientId is set",
        ),
        err(
            auth(json!({"msiEndpoint": "http:///169.254.169.254/metadata/identity"})),
            "msi-endpoint-malformed",
            "settings.authenticationSettings.msiEndpoint",
            "is malformed: http:// is followed by another '/', so the host is missing",
        ),
        err(
            auth(json!({"msiEndpoint": "169.254.169.254/metadata/identity"})),
            "msi-endpoint-malformed",
            "settings.authenticationSettings.msiEndpoint",
            "is not a URL",
        ),
        err(
            auth(json!({"msiEndpoint": "ftp://169.254.169.254/metadata/identity"})),
            "msi-endpoint-malformed",
            "settings.authenticationSettings.msiEndpoint",
            "must be an http(s) URL with a host",
        ),
        err(
            auth(
                json!({"clientId": "3f2b8a54-6c1d-4e0f-9a7b-2c4d6e8f0a1b", "clientCertificateSubjectName": "CN=bootstrap.contoso.com"}),
            ),
            "subject-has-cn",
            "settings.authenticationSettings.clientCertificateSubjectName",
            "starts with \"CN=\"",
        ),
        err(
            auth(json!({"clientId": "3f2b8a54-6c1d-4e0f-9a7b-2c4d6e8f0a1b"})),
            "missing-key",
            "settings.authenticationSettings.clientCertificateSubjectName",
            "clientCertificateSubjectName is missing",
        ),
        err(
            auth(json!({"clientCertificateSubjectName": "bootstrap.contoso.com"})),
            "missing-key",
            "settings.authenticationSettings.clientId",
            "clientId is missing",
        ),
        err(
            auth(
                json!({"msiEndpoint": "http://169.254.169.254/metadata/identity", "clientId": "3f2b8a54-6c1d-4e0f-9a7b-2c4d6e8f0a1b"}),
            ),
            "mixed-authentication",
            "settings.authenticationSettings",
            "mixes managed identity",
        ),
        err(
            auth(json!({"msiClientID2": "x"})),
            "unknown-key",
            "settings.authenticationSettings.msiClientID2",
            "unknown key \"msiClientID2\"",
        ),
        err(
            auth(json!({"observedCertificates": [URL]})),
            "misplaced-key",
            "settings.authenticationSettings.observedCertificates",
            "unknown key \"observedCertificates\"",
        ),
        err(
            auth(json!("managed")),
            "wrong-type",
            "settings.authenticationSettings",
            "expected an object, found a string",
        ),
        // akvvm's own options.
        err(
            agent(json!({"keepVersion": 3})),
            "unknown-key",
            "settings.akvvm.keepVersion",
            "unknown key \"keepVersion\"",
        ),
        err(
            agent(json!({"keepVersions": 0})),
            "out-of-range",
            "settings.akvvm.keepVersions",
            "0 is out of range",
        ),
        err(
            agent(json!({"keepVersions": "2"})),
            "wrong-type",
            "settings.akvvm.keepVersions",
            "expected a whole number, found \"2\"",
        ),
        err(
            agent(json!({"stateDirectory": "state"})),
            "bad-path",
            "settings.akvvm.stateDirectory",
            "\"state\" is not an absolute path",
        ),
        err(
            agent(json!({"caCertificates": ["ca.pem"]})),
            "bad-path",
            "settings.akvvm.caCertificates[0]",
            "\"ca.pem\" is not an absolute path",
        ),
        err(
            agent(json!({"resolve": {"myvault.vault.azure.net": "localhost"}})),
            "bad-resolve",
            "settings.akvvm.resolve[\"myvault.vault.azure.net\"]",
            "\"localhost\" is not an IP address or IP:port",
        ),
        err(
            agent(json!({"resolve": {"bad host": "127.0.0.1"}})),
            "bad-resolve",
            "settings.akvvm.resolve[\"bad host\"]",
            "\"bad host\" is not a host name",
        ),
        err(
            agent(json!({"authorityHost": "http://login.microsoftonline.com"})),
            "bad-authority-host",
            "settings.akvvm.authorityHost",
            "is not an https URL",
        ),
        err(
            agent(json!({"webhook": {"address": "eventgrid.contoso.com:443"}})),
            "bad-webhook-address",
            "settings.akvvm.webhook.address",
            "address \"eventgrid.contoso.com:443\" is not an IP address and port",
        ),
        err(
            agent(json!({"webhook": {"path": "/eventgrid"}})),
            "missing-key",
            "settings.akvvm.webhook.address",
            "the webhook needs an address to listen on",
        ),
        err(
            agent(json!({"webhook": {"address": "127.0.0.1:8080", "path": "/eventgrid?key=x"}})),
            "bad-webhook-path",
            "settings.akvvm.webhook.path",
            "path \"/eventgrid?key=x\" is not a URL path",
        ),
        err(
            agent(json!({"webhook": {"address": "127.0.0.1:8080", "secretFile": "secret"}})),
            "bad-path",
            "settings.akvvm.webhook.secretFile",
            "\"secret\" is not an absolute path",
        ),
        err(
            agent(json!({"webhook": {"address": "127.0.0.1:8080", "secret": "x"}})),
            "unknown-key",
            "settings.akvvm.webhook.secret",
            "unknown key",
        ),
        warn(
            agent(json!({"webhook": {"address": "127.0.0.1:8080"}})),
            "webhook-without-secret",
            "settings.akvvm.webhook",
            "the webhook has no secretFile",
        ),
        err(
            agent(
                json!({"webhook": {"address": "0.0.0.0:8443", "secretFile": "/etc/akvvm/webhook-secret"}}),
            ),
            "webhook-without-tls",
            "settings.akvvm.webhook",
            "would serve plain HTTP off loopback",
        ),
        err(
            agent(
                json!({"webhook": {"address": "10.0.0.4:8443", "certificateFile": "/etc/akvvm/hook.pem"}}),
            ),
            "webhook-without-secret",
            "settings.akvvm.webhook",
            "the webhook has no secretFile: anyone who reaches it can make the agent poll Key Vault, and it listens on 10.0.0.4:8443, off loopback",
        ),
        err(
            agent(json!({"webhook": {"address": "[::]:8443"}})),
            "webhook-without-tls",
            "settings.akvvm.webhook",
            "would serve plain HTTP off loopback",
        ),
        err(
            agent(json!({"metricsAddress": "localhost:9464"})),
            "bad-metrics-address",
            "settings.akvvm.metricsAddress",
            "metricsAddress \"localhost:9464\" is not an IP address and port",
        ),
        err(
            agent(json!({"metricsAddress": 9464})),
            "wrong-type",
            "settings.akvvm.metricsAddress",
            "expected a string, found a number",
        ),
        warn(
            agent(json!({"metricsAddress": "0.0.0.0:9464"})),
            "metrics-not-loopback",
            "settings.akvvm.metricsAddress",
            "metrics on 0.0.0.0:9464 are served without authentication",
        ),
        err(
            agent(json!({"concurrencyPerVault": 0})),
            "out-of-range",
            "settings.akvvm.concurrencyPerVault",
            "0 is out of range",
        ),
        err(
            agent(json!({"reload": {"command": "systemctl reload nginx"}})),
            "reload-command-string",
            "settings.akvvm.reload.command",
            "akvvm runs an argument list and never a shell string",
        ),
        err(
            agent(json!({"reload": {"command": []}})),
            "bad-reload-command",
            "settings.akvvm.reload.command",
            "command must be a non-empty list of non-empty strings",
        ),
        err(
            agent(json!({"reload": {"timeoutInS": 5}})),
            "missing-key",
            "settings.akvvm.reload.command",
            "a reload hook needs a command",
        ),
        err(
            agent(json!({"reload": {"command": ["true"], "timeout": 5}})),
            "unknown-key",
            "settings.akvvm.reload.timeout",
            "unknown key \"timeout\"",
        ),
        err(
            cert(json!({"akvvm": {"reloads": {}}})),
            "unknown-key",
            "settings.secretsManagementSettings.observedCertificates[0].akvvm.reloads",
            "unknown key \"reloads\"",
        ),
        err(
            json!({"secretsManagementSettings": {"observedCertificates": [URL]}, "loggingSettings": {"logger": 5}}),
            "wrong-type",
            "settings.loggingSettings.logger",
            "expected a string, found a number",
        ),
        err(
            json!({"secretsManagementSettings": {"observedCertificates": [URL]}, "loggingSettings": {"logger": "fluentd", "endpoint": "udp://localhost:24224"}}),
            "logging-endpoint-scheme",
            "settings.loggingSettings.endpoint",
            "scheme \"udp\" is not supported: akvvm supports tcp:// and unix://",
        ),
        err(
            json!({"secretsManagementSettings": {"observedCertificates": [URL]}, "loggingSettings": {"logger": "fluentd", "endpoint": "localhost:24224"}}),
            "logging-endpoint-scheme",
            "settings.loggingSettings.endpoint",
            "has no scheme",
        ),
        err(
            json!({"secretsManagementSettings": {"observedCertificates": [URL]}, "loggingSettings": {"logger": "fluentd", "endpoint": "tcp://localhost"}}),
            "logging-endpoint-port",
            "settings.loggingSettings.endpoint",
            "has no port",
        ),
        err(
            json!({"secretsManagementSettings": {"observedCertificates": [URL]}, "loggingSettings": {"logger": "fluentd", "endpoint": "unix://fluent.sock"}}),
            "logging-endpoint",
            "settings.loggingSettings.endpoint",
            "needs an absolute socket path",
        ),
        err(
            json!({"secretsManagementSettings": {"observedCertificates": [URL]}, "loggingSettings": {"logger": "syslog", "endpoint": "tcp://localhost:24224"}}),
            "logging-unknown-logger",
            "settings.loggingSettings.logger",
            "akvvm forwards logs to \"fluentd\" only",
        ),
        err(
            json!({"secretsManagementSettings": {"observedCertificates": [URL]}, "loggingSettings": {"logger": "fluentd", "endpoint": "tcp://localhost:24224", "format": "json"}}),
            "logging-unknown-format",
            "settings.loggingSettings.format",
            "speaks Fluentd's \"forward\" protocol only",
        ),
        err(
            json!({"secretsManagementSettings": {"observedCertificates": [URL]}, "loggingSettings": {"logger": "fluentd"}}),
            "logging-no-endpoint",
            "settings.loggingSettings",
            "has no endpoint",
        ),
        err(
            json!({"secretsManagementSettings": {"observedCertificates": [URL]}, "loggingSettings": {"logger": "fluentd", "endpoint": "tcp://h:1", "servicename": "a b"}}),
            "logging-bad-servicename",
            "settings.loggingSettings.servicename",
            "cannot be a Fluentd tag",
        ),
        // Leniencies and Windows-only values: accepted, with a warning.
        warn(
            sms(json!({"pollingIntervalInS": 600})),
            "number-as-string",
            "settings.secretsManagementSettings.pollingIntervalInS",
            "pollingIntervalInS is documented as a string; accepted the number 600",
        ),
        warn(
            sms(json!({"requireInitialSync": "false"})),
            "bool-as-string",
            "settings.secretsManagementSettings.requireInitialSync",
            "\"false\" is a string; accepted as the boolean false",
        ),
        warn(
            sms(json!({"certificateStoreLocation": "CurrentUser"})),
            "windows-only",
            "settings.secretsManagementSettings.certificateStoreLocation",
            "on Linux akvvm uses the default directory /var/lib/waagent/Microsoft.Azure.KeyVault.Store",
        ),
        warn(
            sms(json!({"certificateStoreName": "Root"})),
            "windows-only",
            "settings.secretsManagementSettings.certificateStoreName",
            "on Linux it is recorded only",
        ),
        warn(
            sms(json!({"linkOnRenewal": true})),
            "windows-only",
            "settings.secretsManagementSettings.linkOnRenewal",
            "has no effect on Linux",
        ),
        warn(
            cert(json!({"keyExportable": true})),
            "windows-only",
            "settings.secretsManagementSettings.observedCertificates[0].keyExportable",
            "the private key is always written to the certificate file",
        ),
        warn(
            cert(json!({"accounts": ["Network Service"]})),
            "windows-only",
            "settings.secretsManagementSettings.observedCertificates[0].accounts",
            "akvvm ignores it on Linux",
        ),
        warn(
            sms(json!({"PollingIntervalInS": "60"})),
            "key-case",
            "settings.secretsManagementSettings.PollingIntervalInS",
            "spelt with different case",
        ),
        warn(
            sms(
                json!({"observedCertificates": ["https://kv.internal.contoso.com/secrets/mycert"]}),
            ),
            "private-endpoint-host",
            "settings.secretsManagementSettings.observedCertificates[0]",
            "it is treated as a private endpoint host",
        ),
        warn(
            auth(json!({"msiEndpoint": "http://169.254.169.254/metadata/identity/ouath2/token"})),
            "msi-endpoint-typo",
            "settings.authenticationSettings.msiEndpoint",
            "a typo copied from the documentation",
        ),
        warn(
            auth(
                json!({"msiEndpoint": "http://localhost:40342/metadata/identity", "msiClientId": "3f2b8a54-6c1d-4e0f-9a7b-2c4d6e8f0a1b"}),
            ),
            "arc-user-assigned",
            "settings.authenticationSettings.msiClientId",
            "an Azure Arc server has only its system-assigned identity",
        ),
        warn(
            json!({"secretsManagementSettings": {"observedCertificates": [{"url": URL, "acls": [{"user": "www-data"}]}]}}),
            "acls-without-acl-enabled",
            "settings.secretsManagementSettings.aclEnabled",
            "aclEnabled is not true",
        ),
    ]
}

fn describe(diagnostics: &[Diagnostic]) -> String {
    diagnostics
        .iter()
        .map(|d| format!("  {d}"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn every_bad_input_is_reported_with_its_path_and_message() {
    let cases = cases();
    assert!(cases.len() >= 40, "only {} cases", cases.len());
    let mut failures = Vec::new();
    for case in &cases {
        let diagnostics = match Settings::from_json_value(&case.input) {
            Ok((_, warnings)) => {
                if case.severity == Severity::Error {
                    failures.push(format!(
                        "{}: accepted, expected error {} at {}",
                        case.input, case.code, case.path
                    ));
                    continue;
                }
                warnings
            }
            Err(all) => {
                if case.severity == Severity::Warning {
                    failures.push(format!(
                        "{}: rejected, expected only warning {}:\n{}",
                        case.input,
                        case.code,
                        describe(&all)
                    ));
                    continue;
                }
                all
            }
        };
        let hit = diagnostics.iter().any(|d| {
            d.severity == case.severity
                && d.code == case.code
                && d.path == case.path
                && d.message.contains(case.message)
        });
        if !hit {
            failures.push(format!(
                "{}: expected {} [{}] at {} containing {:?}, got:\n{}",
                case.input,
                case.severity,
                case.code,
                case.path,
                case.message,
                describe(&diagnostics)
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn every_error_and_warning_says_what_to_do() {
    let mut without_advice = Vec::new();
    for case in cases() {
        let diagnostics = match Settings::from_json_value(&case.input) {
            Ok((_, warnings)) => warnings,
            Err(all) => all,
        };
        for d in &diagnostics {
            let says_what_to_do = d.help.is_some()
                || d.message.contains("use ")
                || d.message.contains("write ")
                || d.message.contains("remove");
            if !says_what_to_do {
                without_advice.push(d.to_string());
            }
        }
    }
    assert!(
        without_advice.is_empty(),
        "no advice in:\n{}",
        without_advice.join("\n")
    );
}

#[test]
fn did_you_mean_names_the_close_key() {
    let Err(diagnostics) = Settings::from_json_value(&sms(json!({"pollingIntervalInSec": "60"})))
    else {
        panic!("accepted")
    };
    assert_eq!(
        diagnostics[0].help.as_deref(),
        Some("did you mean \"pollingIntervalInS\"?")
    );
    let Err(diagnostics) = Settings::from_json_value(&sms(json!({"authenticationSettings": {}})))
    else {
        panic!("accepted")
    };
    assert_eq!(
        diagnostics[0].help.as_deref(),
        Some(
            "authenticationSettings belongs beside secretsManagementSettings, in the settings object, not inside it"
        )
    );
    let Err(diagnostics) = Settings::from_json_value(&auth(
        json!({"clientId": "3f2b8a54-6c1d-4e0f-9a7b-2c4d6e8f0a1b", "clientCertificateSubjectName": "CN=bootstrap.contoso.com"}),
    )) else {
        panic!("accepted")
    };
    assert_eq!(
        diagnostics[0].help.as_deref(),
        Some("write \"bootstrap.contoso.com\"")
    );
}

#[test]
fn escaped_string_settings_show_how_to_pass_an_object() {
    let inner = json!({"secretsManagementSettings": {"observedCertificates": [URL]}}).to_string();
    let Err(diagnostics) = Settings::from_json_value(&Value::String(inner)) else {
        panic!("accepted")
    };
    assert_eq!(diagnostics.len(), 1);
    let help = diagnostics[0].help.as_deref().unwrap();
    assert!(
        help.starts_with("the string holds settings JSON: pass that JSON as an object"),
        "{help}"
    );
    assert!(help.contains("HashTable"), "{help}");
}

#[test]
fn escaped_string_settings_report_the_string_first_then_what_it_holds() {
    let inner = json!({
        "secretsManagementSettings": {"pollingIntervalInSec": "3600", "observedCertificates": ["https://kv.vault.azure.net/certificates/web"]}
    })
    .to_string();
    let Err(diagnostics) = Settings::from_json_value(&Value::String(inner)) else {
        panic!("accepted")
    };
    let found: Vec<(&str, &str)> = diagnostics
        .iter()
        .map(|d| (d.code, d.path.as_str()))
        .collect();
    assert_eq!(
        found,
        [
            ("settings-is-string", "settings"),
            (
                "unknown-key",
                "settings(string).secretsManagementSettings.pollingIntervalInSec"
            ),
            (
                "url-certificates-path",
                "settings(string).secretsManagementSettings.observedCertificates[0]"
            ),
        ],
        "{}",
        describe(&diagnostics)
    );
    assert_eq!(
        diagnostics[1].help.as_deref(),
        Some("did you mean \"pollingIntervalInS\"?")
    );

    // Escaped twice: each layer is reported, the innermost at settings(string)(string).
    let twice = Value::String(
        Value::String(
            json!({"secretsManagementSettings": {"observedCertificates": [URL], "linkOnRenewl": true}})
                .to_string(),
        )
        .to_string(),
    );
    let Err(diagnostics) = Settings::from_json_value(&twice) else {
        panic!("accepted")
    };
    let found: Vec<(&str, &str)> = diagnostics
        .iter()
        .map(|d| (d.code, d.path.as_str()))
        .collect();
    assert_eq!(
        found,
        [
            ("settings-is-string", "settings"),
            ("settings-is-string", "settings(string)"),
            (
                "unknown-key",
                "settings(string)(string).secretsManagementSettings.linkOnRenewl"
            ),
        ],
        "{}",
        describe(&diagnostics)
    );
}
