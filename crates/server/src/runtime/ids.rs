//! Identifiers and secrets, parsed at the edge and trusted after.

use std::fmt;

use rand::RngExt;
use sha2::{Digest, Sha256};

const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";

pub(crate) fn random_token(length: usize) -> String {
    let mut rng = rand::rng();
    (0..length)
        .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
        .collect()
}

/// `sbx-` and 12 lowercase letters or digits: safe as a DNS label.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SandboxId(String);

impl SandboxId {
    pub const PREFIX: &'static str = "sbx-";

    pub fn generate() -> Self {
        Self(format!("{}{}", Self::PREFIX, random_token(12)))
    }

    /// Accepts any well-formed id (`sbx-` + 1–59 of `[a-z0-9]`).
    pub fn parse(text: &str) -> Option<Self> {
        let rest = text.strip_prefix(Self::PREFIX)?;
        let well_formed = !rest.is_empty()
            && rest.len() <= 59
            && rest
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        well_formed.then(|| Self(text.to_owned()))
    }
}

impl fmt::Display for SandboxId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A fresh sandbox API key (`sk_test_` + 32 characters).
pub fn generate_api_key() -> String {
    format!("{}{}", sbx_engine::API_KEY_PREFIX, random_token(32))
}

/// A fresh admin token.
pub fn generate_admin_token() -> String {
    format!("sbx_admin_{}", random_token(40))
}

/// Keys and tokens are stored and compared as SHA-256 hex digests.
pub fn hash_secret(secret: &str) -> String {
    let digest = Sha256::digest(secret.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Project names appear in URLs and the CLI: 1–64 of `[a-z0-9_.-]`, starting alphanumeric.
pub fn valid_project_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sandbox_ids_are_dns_labels() {
        let id = SandboxId::generate();
        assert!(SandboxId::parse(&id.to_string()).is_some());
        assert_eq!(id.to_string().len(), 16);
        assert!(SandboxId::parse("sbx-ABC").is_none());
        assert!(SandboxId::parse("sbx-").is_none());
        assert!(SandboxId::parse("box-abc").is_none());
    }

    #[test]
    fn project_names() {
        assert!(valid_project_name("payments-v2"));
        assert!(!valid_project_name("-x"));
        assert!(!valid_project_name("Pets"));
        assert!(!valid_project_name("a/b"));
    }
}
