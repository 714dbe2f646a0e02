//! `loggingSettings`: where the agent's log records go besides stderr. The one documented shape
//! is `{"logger": "fluentd", "endpoint": "tcp://host:port" | "unix:///path", "format":
//! "forward", "servicename": "<tag>"}`; anything else is an error that says what is supported.
//! The records are sent by `akvvm::logship`.

use std::path::PathBuf;

use serde_json::Value;

use super::ctx::Ctx;
use super::keys::LOGGING_KEYS;
use super::model::{DEFAULT_LOG_TAG, LogEndpoint, LoggingSettings};
use super::read::Got;

const EXAMPLE: &str = "{\"logger\": \"fluentd\", \"endpoint\": \"tcp://localhost:24224\", \"format\": \"forward\", \"servicename\": \"akvvm_service\"}";

impl Ctx<'_> {
    pub(super) fn logging(&mut self, v: &Value, path: &str) -> Option<LoggingSettings> {
        let fields = self.fields(v, path, LOGGING_KEYS, EXAMPLE)?;
        let logger_path = fields.path("logger");
        let mut ok = true;
        match self.string(fields.get("logger"), &logger_path, "\"fluentd\"") {
            Got::Value(logger) if logger.eq_ignore_ascii_case("fluentd") => {}
            Got::Value(logger) => {
                self.error(
                    "logging-unknown-logger",
                    &logger_path,
                    format!("logger {logger:?} is not supported: akvvm forwards logs to \"fluentd\" only (its Forward protocol, which Fluent Bit also accepts)"),
                )
                .help("write \"logger\": \"fluentd\", or remove loggingSettings to log to stderr (the systemd journal) only");
                ok = false;
            }
            Got::Absent => {
                self.error("logging-no-logger", path, "loggingSettings has no logger")
                    .help(format!("write the whole object, for example {EXAMPLE}"));
                ok = false;
            }
            Got::Skip => ok = false,
        }
        let format_path = fields.path("format");
        match self.string(fields.get("format"), &format_path, "\"forward\"") {
            Got::Value(format) if !format.eq_ignore_ascii_case("forward") => {
                self.error(
                    "logging-unknown-format",
                    &format_path,
                    format!("format {format:?} is not supported: akvvm speaks Fluentd's \"forward\" protocol only"),
                )
                .help("write \"format\": \"forward\" (or leave it out: it is the default)");
                ok = false;
            }
            Got::Value(_) | Got::Absent => {}
            Got::Skip => ok = false,
        }
        let endpoint_path = fields.path("endpoint");
        let endpoint = match self.string(
            fields.get("endpoint"),
            &endpoint_path,
            "\"tcp://localhost:24224\"",
        ) {
            Got::Value(s) => match parse_endpoint(&s) {
                Ok(endpoint) => Some(endpoint),
                Err((code, message, help)) => {
                    self.error(code, &endpoint_path, format!("endpoint {s:?}: {message}"))
                        .help(help);
                    None
                }
            },
            Got::Absent => {
                self.error(
                    "logging-no-endpoint",
                    path,
                    "loggingSettings has no endpoint",
                )
                .help("add \"endpoint\": \"tcp://localhost:24224\" (or \"unix:///path/to/fluentd.sock\")");
                None
            }
            Got::Skip => None,
        };
        let tag_path = fields.path("servicename");
        let tag = match self.string(fields.get("servicename"), &tag_path, "\"akvvm_service\"") {
            Got::Value(tag) if valid_tag(&tag) => Some(tag),
            Got::Value(tag) => {
                self.error(
                    "logging-bad-servicename",
                    &tag_path,
                    format!("servicename {tag:?} cannot be a Fluentd tag: it must be non-empty, at most 128 characters, of letters, digits, '.', '_' and '-', without empty parts between dots"),
                )
                .help("write for example \"servicename\": \"akvvm_service\"");
                ok = false;
                None
            }
            Got::Absent => Some(DEFAULT_LOG_TAG.to_string()),
            Got::Skip => {
                ok = false;
                None
            }
        };
        match (ok, endpoint, tag) {
            (true, Some(endpoint), Some(tag)) => Some(LoggingSettings { endpoint, tag }),
            _ => None,
        }
    }
}

/// A Fluentd tag akvvm accepts: dot-separated parts of `[A-Za-z0-9_-]`, 1 to 128 characters.
fn valid_tag(tag: &str) -> bool {
    !tag.is_empty()
        && tag.len() <= 128
        && tag.split('.').all(|part| {
            !part.is_empty()
                && part
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        })
}

/// `tcp://host:port` or `unix:///absolute/path`; the error is (code, message, what to do).
pub fn parse_endpoint(s: &str) -> Result<LogEndpoint, (&'static str, String, String)> {
    const HELP: &str = "write \"tcp://<host>:<port>\" (Fluentd's default is \"tcp://localhost:24224\") or \"unix:///<absolute path of the socket>\"";
    let Some((scheme, rest)) = s.split_once("://") else {
        return Err((
            "logging-endpoint-scheme",
            "has no scheme: akvvm supports tcp:// and unix://".into(),
            HELP.into(),
        ));
    };
    match scheme.to_ascii_lowercase().as_str() {
        "tcp" => {
            let rest = rest.strip_suffix('/').unwrap_or(rest);
            if rest.contains(['/', '?', '#', '@']) {
                return Err((
                    "logging-endpoint",
                    "a tcp:// endpoint is a host and a port, nothing else".into(),
                    HELP.into(),
                ));
            }
            let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
                match v6.split_once(']') {
                    Some((host, tail)) => (host, tail.strip_prefix(':')),
                    None => {
                        return Err((
                            "logging-endpoint",
                            "an IPv6 address in brackets has no closing ']'".into(),
                            HELP.into(),
                        ));
                    }
                }
            } else {
                match rest.rsplit_once(':') {
                    Some((host, port)) => (host, Some(port)),
                    None => (rest, None),
                }
            };
            if host.is_empty() {
                return Err(("logging-endpoint", "has no host".into(), HELP.into()));
            }
            let Some(port) = port.filter(|p| !p.is_empty()) else {
                return Err((
                    "logging-endpoint-port",
                    "has no port".into(),
                    format!(
                        "add the port the collector listens on, for example \"tcp://{host}:24224\""
                    ),
                ));
            };
            match port.parse::<u16>() {
                Ok(port) if port != 0 => Ok(LogEndpoint::Tcp {
                    host: host.to_string(),
                    port,
                }),
                _ => Err((
                    "logging-endpoint-port",
                    format!("port {port:?} is not a number from 1 to 65535"),
                    format!("for example \"tcp://{host}:24224\""),
                )),
            }
        }
        "unix" => {
            if !rest.starts_with('/') || rest.len() < 2 {
                return Err((
                    "logging-endpoint",
                    "a unix:// endpoint needs an absolute socket path (three slashes: unix:///run/fluentd.sock)".into(),
                    HELP.into(),
                ));
            }
            Ok(LogEndpoint::Unix(PathBuf::from(rest)))
        }
        other => Err((
            "logging-endpoint-scheme",
            format!("scheme {other:?} is not supported: akvvm supports tcp:// and unix://"),
            HELP.into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints() {
        assert_eq!(
            parse_endpoint("tcp://localhost:24224"),
            Ok(LogEndpoint::Tcp {
                host: "localhost".into(),
                port: 24224
            })
        );
        assert_eq!(
            parse_endpoint("tcp://[::1]:24224/"),
            Ok(LogEndpoint::Tcp {
                host: "::1".into(),
                port: 24224
            })
        );
        assert_eq!(
            parse_endpoint("unix:///var/run/fluent.sock"),
            Ok(LogEndpoint::Unix("/var/run/fluent.sock".into()))
        );
        let code = |s: &str| parse_endpoint(s).unwrap_err().0;
        assert_eq!(code("localhost:24224"), "logging-endpoint-scheme");
        assert_eq!(code("udp://localhost:24224"), "logging-endpoint-scheme");
        assert_eq!(code("tcp://localhost"), "logging-endpoint-port");
        assert_eq!(code("tcp://localhost:"), "logging-endpoint-port");
        assert_eq!(code("tcp://localhost:99999"), "logging-endpoint-port");
        assert_eq!(code("tcp://:24224"), "logging-endpoint");
        assert_eq!(code("unix://relative.sock"), "logging-endpoint");
        assert_eq!(
            parse_endpoint("tcp://[::1]:24224").unwrap().to_string(),
            "tcp://[::1]:24224"
        );
    }

    #[test]
    fn tags() {
        assert!(valid_tag("akvvm_service"));
        assert!(valid_tag("app.akvvm-1"));
        assert!(!valid_tag(""));
        assert!(!valid_tag("a..b"));
        assert!(!valid_tag("a b"));
    }
}
