//! The spec's security requirements, satisfied by the sandbox's API keys,
//! or for OAuth 2 / OpenID Connect schemes by access tokens its own
//! authorization server issued (challenges per RFC 6750).

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
    /// An access token that does not verify here (signature, issuer,
    /// audience, expiry): why.
    InvalidToken(String),
    /// A valid access token without every scope the operation requires.
    InsufficientScope,
}

/// A credential sent, as the operation's scheme asks for it.
#[derive(Debug, Clone, Copy)]
pub enum Credential<'a> {
    /// An API key (header, query, cookie, bearer or basic).
    Key(&'a str),
    /// An OAuth 2 access token, which must carry `scopes`.
    Token {
        token: &'a str,
        scopes: &'a [String],
    },
}

impl<'a> Credential<'a> {
    /// The text sent.
    pub fn text(&self) -> &'a str {
        match self {
            Self::Key(key) => key,
            Self::Token { token, .. } => token,
        }
    }
}

pub enum AuthOutcome {
    Allowed,
    /// A credential of the sandbox that may not call this operation; the
    /// challenge to send with the 403 (insufficient scope).
    Forbidden {
        why: String,
        challenge: Option<String>,
    },
    /// No credential was sent; says where one is expected.
    Missing {
        expected: String,
        challenge: Option<String>,
    },
    /// A credential was sent but is not this sandbox's (why, for tokens).
    Invalid {
        why: Option<String>,
        challenge: Option<String>,
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
        SecurityScheme::Bearer | SecurityScheme::OAuth2 => {
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
        SecurityScheme::OAuth2 => format!(
            "`Authorization: Bearer <access token>` for scheme `{name}`, from the sandbox's authorization server (/__sbx/oauth/token, or `sbx token`)"
        ),
        SecurityScheme::Basic => "HTTP basic auth with the sandbox key as user name".to_owned(),
        SecurityScheme::Unsupported(kind) => format!("scheme `{name}` ({kind})"),
    }
}

fn challenge(scheme: &SecurityScheme) -> Option<String> {
    match scheme {
        SecurityScheme::Bearer | SecurityScheme::OAuth2 => Some(BEARER.to_owned()),
        SecurityScheme::Basic => Some("Basic realm=\"sandbox\"".to_owned()),
        _ => None,
    }
}

const BEARER: &str = "Bearer realm=\"sandbox\"";

/// An RFC 6750 challenge with an error code (quoted strings kept plain).
pub fn bearer_error(error: &str, description: &str, scope: Option<&[String]>) -> String {
    let plain = |text: &str| text.replace(['"', '\\'], "'");
    let mut challenge = format!(
        "{BEARER}, error=\"{error}\", error_description=\"{}\"",
        plain(description)
    );
    if let Some(scope) = scope {
        challenge.push_str(&format!(", scope=\"{}\"", plain(&scope.join(" "))));
    }
    challenge
}

pub fn check(
    operation: &Operation,
    schemes: &BTreeMap<String, SecurityScheme>,
    headers: &dyn HeaderSource,
    query: &[(String, String)],
    key_check: &dyn Fn(Credential<'_>, &Operation) -> KeyVerdict,
) -> AuthOutcome {
    if operation.security.is_empty() {
        return AuthOutcome::Allowed;
    }
    let mut any_sent = false;
    let mut not_allowed = None;
    let mut bad_token = None;
    let mut missing_scopes: Option<&[String]> = None;
    for requirement in &operation.security {
        let mut satisfied = true;
        for (index, name) in requirement.schemes.iter().enumerate() {
            let Some(scheme) = schemes.get(name) else {
                continue;
            };
            if matches!(scheme, SecurityScheme::Unsupported(_)) {
                // Nothing a sandbox key can prove (mutual TLS…): not enforced.
                continue;
            }
            let scopes = requirement.scopes.get(index).map_or(&[][..], Vec::as_slice);
            let Some(value) = credential(scheme, headers, query) else {
                satisfied = false;
                continue;
            };
            let sent = match scheme {
                SecurityScheme::OAuth2 => Credential::Token {
                    token: &value,
                    scopes,
                },
                _ => Credential::Key(&value),
            };
            match key_check(sent, operation) {
                KeyVerdict::Valid => {}
                KeyVerdict::Unknown => {
                    any_sent = true;
                    satisfied = false;
                }
                KeyVerdict::InvalidToken(why) => {
                    any_sent = true;
                    bad_token.get_or_insert(why);
                    satisfied = false;
                }
                KeyVerdict::InsufficientScope => {
                    missing_scopes.get_or_insert(scopes);
                    satisfied = false;
                }
                KeyVerdict::NotAllowed(why) => {
                    not_allowed.get_or_insert(why);
                    satisfied = false;
                }
            }
        }
        if satisfied {
            return AuthOutcome::Allowed;
        }
    }
    if let Some(scopes) = missing_scopes {
        let why = format!(
            "the access token lacks a scope this operation requires: {}",
            scopes.join(", ")
        );
        let challenge = bearer_error("insufficient_scope", &why, Some(scopes));
        return AuthOutcome::Forbidden {
            why,
            challenge: Some(challenge),
        };
    }
    let first = operation.security[0]
        .schemes
        .first()
        .and_then(|n| schemes.get(n).map(|s| (n, s)));
    let challenge = first.and_then(|(_, s)| challenge(s));
    if let Some(why) = not_allowed {
        return AuthOutcome::Forbidden {
            why,
            challenge: None,
        };
    }
    if let Some(why) = bad_token {
        let challenge = bearer_error("invalid_token", &why, None);
        return AuthOutcome::Invalid {
            why: Some(why),
            challenge: Some(challenge),
        };
    }
    if any_sent {
        return AuthOutcome::Invalid {
            why: None,
            challenge,
        };
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
