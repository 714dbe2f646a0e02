//! How a local vault answer is compared with a recorded one: the same field set (recursively, in
//! any order), the same JSON types, the same values where the value is part of the contract
//! ([`EXACT`]: error codes, operation status, content type, flags, tags), and the form of the
//! values a recording abbreviates ([`placeholder`]). Ids, versions, names and times are
//! normalised by comparing their types only.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::Value;

/// The keys whose values are compared as recorded: error codes, the certificate operation's
/// status and flags, content types, `enabled` and `managed`, and the policy members a request
/// leaves to Key Vault's defaults. A tag's value is compared too.
pub const EXACT: &[&str] = &[
    "code",
    "status",
    "contentType",
    "enabled",
    "managed",
    "cancellation_requested",
    "exportable",
    "kty",
    "key_size",
    "reuse_key",
    "validity_months",
    "ca",
    "lifetime_percentage",
    "action_type",
    "name",
];

/// Whether `actual` has the shape of `recorded` at `path` (see the module doc). Each item of a
/// non-empty list is compared with the recorded first item. The difference's path and what
/// differs, otherwise.
pub fn same_shape(recorded: &Value, actual: &Value, path: &str) -> Result<(), String> {
    match (recorded, actual) {
        (Value::Object(r), Value::Object(a)) => {
            fn keys(o: &serde_json::Map<String, Value>) -> Vec<&str> {
                let mut keys: Vec<&str> = o.keys().map(String::as_str).collect();
                keys.sort_unstable();
                keys
            }
            if keys(r) != keys(a) {
                return Err(format!(
                    "{}: fields {:?}, local vault {:?}",
                    or_root(path),
                    keys(r),
                    keys(a)
                ));
            }
            r.iter()
                .try_for_each(|(k, v)| same_shape(v, &a[k], &format!("{path}/{k}")))
        }
        (Value::Array(r), Value::Array(a)) => match r.first() {
            None if a.is_empty() => Ok(()),
            None => Err(format!("{}: [] recorded, {} items", or_root(path), a.len())),
            Some(first) if !a.is_empty() => a
                .iter()
                .enumerate()
                .try_for_each(|(i, item)| same_shape(first, item, &format!("{path}/{i}"))),
            Some(_) => Err(format!("{}: items recorded, [] answered", or_root(path))),
        },
        (Value::String(r), Value::String(a)) if r.starts_with('<') && r.ends_with('>') => {
            placeholder(r, a).map_err(|e| format!("{path}: {e}"))
        }
        (r, a) if exact(path) && r != a => Err(format!("{path}: {r} recorded, {a} answered")),
        (Value::String(_), Value::String(_))
        | (Value::Number(_), Value::Number(_))
        | (Value::Bool(_), Value::Bool(_))
        | (Value::Null, Value::Null) => Ok(()),
        (r, a) => Err(format!("{}: {r} recorded, {a} answered", or_root(path))),
    }
}

/// Whether the value at `path` is compared as recorded ([`EXACT`], or a tag).
fn exact(path: &str) -> bool {
    let mut parts = path.rsplit('/');
    let key = parts.next().unwrap_or_default();
    EXACT.contains(&key) || parts.next() == Some("tags")
}

/// Checks a value a fixture abbreviates to the description of its form: `<base64 DER>` (standard
/// base64 of a DER SEQUENCE: a certificate, a CSR, a PFX), `<base64url SHA-1>` (a thumbprint),
/// `<PEM A, B>` (PEM blocks labelled A then B) or `<backup blob>` (base64url, not empty).
pub fn placeholder(form: &str, actual: &str) -> Result<(), String> {
    let inner = &form[1..form.len() - 1];
    let ok = match inner {
        "base64 DER" => STANDARD
            .decode(actual)
            .is_ok_and(|der| der.first() == Some(&0x30)),
        "base64url SHA-1" => URL_SAFE_NO_PAD
            .decode(actual)
            .is_ok_and(|digest| digest.len() == 20),
        "backup blob" => {
            !actual.is_empty()
                && actual
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        }
        pem if pem.starts_with("PEM ") => {
            let labels: Vec<&str> = actual
                .lines()
                .filter_map(|l| l.strip_prefix("-----BEGIN ")?.strip_suffix("-----"))
                .collect();
            labels == pem["PEM ".len()..].split(", ").collect::<Vec<_>>()
        }
        other => return Err(format!("unknown placeholder <{other}>")),
    };
    if ok {
        Ok(())
    } else {
        Err(format!("not of the form {form}"))
    }
}

fn or_root(path: &str) -> &str {
    if path.is_empty() { "/" } else { path }
}

/// A `WWW-Authenticate` challenge: its scheme and its parameters, in order.
fn challenge_parts(value: &str) -> Option<(&str, Vec<(&str, &str)>)> {
    let (scheme, params) = value.split_once(' ')?;
    let params = params
        .split(", ")
        .map(|p| {
            let (k, v) = p.split_once('=')?;
            Some((k.trim(), v.trim_matches('"')))
        })
        .collect::<Option<Vec<_>>>()?;
    Some((scheme, params))
}

/// Whether the challenge `actual` is the recorded one: the same scheme and parameters in the same
/// order, the same `resource` (or `scope`), and an `authorization` on the same authority host
/// (the tenant, its last segment, is the vault's).
pub fn same_challenge(recorded: &str, actual: &str) -> Result<(), String> {
    let (r_scheme, r) = challenge_parts(recorded).ok_or("recorded challenge unreadable")?;
    let (a_scheme, a) =
        challenge_parts(actual).ok_or_else(|| format!("challenge {actual:?} unreadable"))?;
    fn names<'a>(p: &[(&'a str, &str)]) -> Vec<&'a str> {
        p.iter().map(|(k, _)| *k).collect()
    }
    if r_scheme != a_scheme || names(&r) != names(&a) {
        return Err(format!("challenge {actual:?}, recorded {recorded:?}"));
    }
    for ((k, rv), (_, av)) in r.iter().zip(&a) {
        let same = match *k {
            "authorization" | "authorization_uri" => {
                rv.rsplit_once('/').map(|(host, _)| host) == av.rsplit_once('/').map(|(h, _)| h)
            }
            _ => rv == av,
        };
        if !same {
            return Err(format!("challenge {k}={av:?}, recorded {rv:?}"));
        }
    }
    Ok(())
}
