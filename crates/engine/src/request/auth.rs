//! The spec's security requirements, satisfied by the sandbox's API key.

use std::collections::BTreeMap;

use base64::Engine;
use sbx_spec::{Operation, ParamLocation, SecurityScheme};

use crate::{HeaderSource, request::headers::cookie};

/// What a credential sent is, for one operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyVerdict {
    /// One of the sandbox's keys, allowed this operation.
    Valid,
    /// Not a key of this sandbox (or expired, or revoked).
    Unknown,
    /// The sandbox's key, not allowed this operation: why.
    NotAllowed(String),
}

pub enum AuthOutcome {
    Allowed,
    /// A key of the sandbox that may not call this operation.
    Forbidden(String),
    /// No credential was sent; says where one is expected.
    Missing {
        expected: String,
        challenge: Option<&'static str>,
    },
    /// A credential was sent but is not this sandbox's key.
    Invalid {
        challenge: Option<&'static str>,
    },
}

/// Where the credential for `scheme` is, and whether there is one.
fn credential<'a>(
    scheme: &SecurityScheme,
    headers: &'a dyn HeaderSource,
    query: &'a [(String, String)],
) -> Option<String> {
    match scheme {
        SecurityScheme::ApiKey { name, location } => match location {
            ParamLocation::Header => headers.get(&name.to_ascii_lowercase()).map(str::to_owned),
            ParamLocation::Query => query
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.clone()),
            ParamLocation::Cookie => cookie(headers, name).map(str::to_owned),
            ParamLocation::Path => None,
        },
        SecurityScheme::Bearer => {
            let value = headers.get("authorization")?;
            let (kind, token) = value.trim().split_once(' ')?;
            kind.eq_ignore_ascii_case("bearer")
                .then(|| token.trim().to_owned())
        }
        SecurityScheme::Basic => {
            let value = headers.get("authorization")?;
            let (kind, encoded) = value.trim().split_once(' ')?;
            if !kind.eq_ignore_ascii_case("basic") {
                return None;
            }
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(encoded.trim())
                .ok()?;
            let decoded = String::from_utf8(decoded).ok()?;
            let (user, password) = decoded.split_once(':').unwrap_or((&decoded, ""));
            // The key is the user name (Stripe's convention); a key given as
            // the password is accepted too.
            Some(if user.is_empty() {
                password.to_owned()
            } else {
                user.to_owned()
            })
        }
        SecurityScheme::Unsupported(_) => None,
    }
}

fn describe(name: &str, scheme: &SecurityScheme) -> String {
    match scheme {
        SecurityScheme::ApiKey {
            name: key,
            location,
        } => format!("the API key in {} `{key}`", location.as_str()),
        SecurityScheme::Bearer => "`Authorization: Bearer <sandbox key>`".to_owned(),
        SecurityScheme::Basic => "HTTP basic auth with the sandbox key as user name".to_owned(),
        SecurityScheme::Unsupported(kind) => format!("scheme `{name}` ({kind})"),
    }
}

fn challenge(scheme: &SecurityScheme) -> Option<&'static str> {
    match scheme {
        SecurityScheme::Bearer => Some("Bearer realm=\"sandbox\""),
        SecurityScheme::Basic => Some("Basic realm=\"sandbox\""),
        _ => None,
    }
}

pub fn check(
    operation: &Operation,
    schemes: &BTreeMap<String, SecurityScheme>,
    headers: &dyn HeaderSource,
    query: &[(String, String)],
    key_check: &dyn Fn(&str, &Operation) -> KeyVerdict,
) -> AuthOutcome {
    if operation.security.is_empty() {
        return AuthOutcome::Allowed;
    }
    let mut any_sent = false;
    let mut not_allowed = None;
    for requirement in &operation.security {
        let mut satisfied = true;
        for name in &requirement.schemes {
            let Some(scheme) = schemes.get(name) else {
                continue;
            };
            if matches!(scheme, SecurityScheme::Unsupported(_)) {
                // Nothing a sandbox key can prove (mutual TLS…): not enforced.
                continue;
            }
            match credential(scheme, headers, query).map(|value| key_check(&value, operation)) {
                Some(KeyVerdict::Valid) => {}
                Some(KeyVerdict::Unknown) => {
                    any_sent = true;
                    satisfied = false;
                }
                Some(KeyVerdict::NotAllowed(why)) => {
                    not_allowed.get_or_insert(why);
                    satisfied = false;
                }
                None => satisfied = false,
            }
        }
        if satisfied {
            return AuthOutcome::Allowed;
        }
    }
    let first = operation.security[0]
        .schemes
        .first()
        .and_then(|n| schemes.get(n).map(|s| (n, s)));
    let challenge = first.and_then(|(_, s)| challenge(s));
    if let Some(why) = not_allowed {
        return AuthOutcome::Forbidden(why);
    }
    if any_sent {
        return AuthOutcome::Invalid { challenge };
    }
    let expected = operation
        .security
        .iter()
        .map(|r| {
            r.schemes
                .iter()
                .filter_map(|n| schemes.get(n).map(|s| describe(n, s)))
                .collect::<Vec<_>>()
                .join(" and ")
        })
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(", or ");
    AuthOutcome::Missing {
        expected,
        challenge,
    }
}
