//! Identifiers and secrets, parsed at the edge and trusted after.

use rand::RngExt;
use sbx_store::SandboxId;
use sha2::{Digest, Sha256};

const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";

pub(crate) fn random_token(length: usize) -> String {
    let mut rng = rand::rng();
    (0..length)
        .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
        .collect()
}

/// A random (version 4) UUID, as Lambda's request ids are.
pub(crate) fn random_uuid() -> String {
    let mut bytes: [u8; 16] = rand::rng().random();
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex = hex::encode(bytes);
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// What every sandbox id starts with.
const SANDBOX_PREFIX: &str = "sbx-";

/// A new sandbox id: `sbx-` and 12 lowercase letters or digits, safe as a
/// DNS label.
pub fn new_sandbox_id() -> SandboxId {
    SandboxId::from(format!("{SANDBOX_PREFIX}{}", random_token(12)))
}

/// A well-formed sandbox id (`sbx-` + 1–59 of `[a-z0-9]`), or `None`.
pub fn parse_sandbox_id(text: &str) -> Option<SandboxId> {
    let rest = text.strip_prefix(SANDBOX_PREFIX)?;
    let well_formed = !rest.is_empty()
        && rest.len() <= 59
        && rest
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    well_formed.then(|| SandboxId::from(text))
}

/// A fresh admin token.
pub fn generate_admin_token() -> String {
    format!("sbx_admin_{}", random_token(40))
}

/// Keys and tokens are stored and compared as SHA-256 hex digests.
pub fn hash_secret(secret: &str) -> String {
    KeyHash::of(secret).to_hex()
}

/// A sandbox key's SHA-256 digest as held in memory: 32 bytes where the
/// store keeps 64 hex digits, compared without encoding on every request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct KeyHash([u8; 32]);

impl KeyHash {
    pub fn of(secret: &str) -> Self {
        Self(Sha256::digest(secret.as_bytes()).into())
    }

    /// A stored digest; one that is not 64 hex digits (never written by
    /// this server) reads as all zeros, which no key hashes to.
    pub fn from_hex(hex_digits: &str) -> Self {
        let mut bytes = [0; 32];
        match hex::decode_to_slice(hex_digits, &mut bytes) {
            Ok(()) => Self(bytes),
            Err(_) => Self::default(),
        }
    }

    pub fn to_hex(self) -> String {
        hex::encode(self.0)
    }

    /// 64 of its bits, to key a map by.
    pub fn low_bits(&self) -> u64 {
        let mut bytes = [0; 8];
        bytes.copy_from_slice(&self.0[..8]);
        u64::from_le_bytes(bytes)
    }
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
    fn key_hashes_read_back_from_their_stored_hex_and_malformed_ones_match_nothing() {
        // SHA-256("abc"), the FIPS 180-2 test vector.
        let stored = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        assert_eq!(hash_secret("abc"), stored);
        assert_eq!(KeyHash::from_hex(stored), KeyHash::of("abc"));
        assert_eq!(KeyHash::of("abc").to_hex(), stored);
        for malformed in ["", "zz", &stored[..62]] {
            assert_eq!(KeyHash::from_hex(malformed), KeyHash::default());
            assert_ne!(KeyHash::from_hex(malformed), KeyHash::of(""));
        }
    }

    #[test]
    fn sandbox_ids_are_dns_labels() {
        let id = new_sandbox_id();
        assert!(parse_sandbox_id(&id).is_some());
        assert_eq!(id.to_string().len(), 16);
        assert!(parse_sandbox_id("sbx-ABC").is_none());
        assert!(parse_sandbox_id("sbx-").is_none());
        assert!(parse_sandbox_id("box-abc").is_none());
    }

    #[test]
    fn project_names() {
        assert!(valid_project_name("payments-v2"));
        assert!(!valid_project_name("-x"));
        assert!(!valid_project_name("Pets"));
        assert!(!valid_project_name("a/b"));
    }
}
