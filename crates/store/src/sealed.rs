//! Secrets the server must use again (webhook signing secrets, OAuth
//! signing keys) are stored sealed: envelope encryption with AES-256-GCM.
//! Each value gets its own random data key; the data key is wrapped by the
//! key-encryption key from configuration. Rotating the configured key
//! re-wraps data keys only ([`Sealer::reseal`]); older keys stay listed
//! until every value is re-wrapped.
//!
//! Sealed text: `sealed:v1:{kek id}:{wrapped data key}:{ciphertext}`, the
//! last two base64url (nonce first, tag last).

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD as B64};
use ring::{
    aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey},
    rand::{SecureRandom, SystemRandom},
};
use sha2::{Digest, Sha256};

const PREFIX: &str = "sealed:v1:";
const KEY_BYTES: usize = 32;

/// A key-encryption key and its id (the first 8 hex digits of its SHA-256).
struct Kek {
    id: String,
    key: LessSafeKey,
}

impl Kek {
    fn new(bytes: &[u8; KEY_BYTES]) -> Self {
        let id = hex_prefix(&Sha256::digest(bytes));
        let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, bytes).expect("32-byte key"));
        Self { id, key }
    }
}

fn hex_prefix(digest: &[u8]) -> String {
    digest[..4].iter().map(|b| format!("{b:02x}")).collect()
}

#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("a secrets key must be 32 bytes, base64-encoded (e.g. `openssl rand -base64 32`)")]
    BadKey,
    #[error("sealed under key {0}, which is not configured (list it in previous_keys)")]
    UnknownKey(String),
    #[error("a sealed value does not decrypt: tampered with, or sealed under another key")]
    Corrupt,
}

/// Seals with the current key; opens with it or any previous one.
pub struct Sealer {
    current: Kek,
    previous: Vec<Kek>,
    random: SystemRandom,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealer")
            .field("current", &self.current.id)
            .finish_non_exhaustive()
    }
}

/// Decodes a configured key (standard or URL-safe base64, 32 bytes).
pub fn parse_key(text: &str) -> Result<[u8; KEY_BYTES], SealError> {
    let text = text.trim();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text)
        .or_else(|_| B64.decode(text.trim_end_matches('=')))
        .map_err(|_| SealError::BadKey)?;
    bytes.try_into().map_err(|_| SealError::BadKey)
}

/// A fresh random key, base64 (what `sbx serve` writes when none is configured).
pub fn generate_key() -> String {
    let mut bytes = [0u8; KEY_BYTES];
    SystemRandom::new()
        .fill(&mut bytes)
        .expect("the system's random source");
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

impl Sealer {
    pub fn new(current: &[u8; KEY_BYTES], previous: &[[u8; KEY_BYTES]]) -> Self {
        Self {
            current: Kek::new(current),
            previous: previous.iter().map(Kek::new).collect(),
            random: SystemRandom::new(),
        }
    }

    /// The id of the key new values are sealed under.
    pub fn key_id(&self) -> &str {
        &self.current.id
    }

    fn encrypt(&self, key: &LessSafeKey, plain: &[u8]) -> String {
        let mut nonce = [0u8; NONCE_LEN];
        self.random
            .fill(&mut nonce)
            .expect("the system's random source");
        let mut out = plain.to_vec();
        key.seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::empty(), &mut out)
            .expect("AES-GCM seals any length we store");
        let mut sealed = nonce.to_vec();
        sealed.extend_from_slice(&out);
        B64.encode(sealed)
    }

    fn decrypt(key: &LessSafeKey, text: &str) -> Result<Vec<u8>, SealError> {
        let bytes = B64.decode(text).map_err(|_| SealError::Corrupt)?;
        if bytes.len() < NONCE_LEN {
            return Err(SealError::Corrupt);
        }
        let (nonce, sealed) = bytes.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| SealError::Corrupt)?;
        let mut sealed = sealed.to_vec();
        let plain = key
            .open_in_place(nonce, Aad::empty(), &mut sealed)
            .map_err(|_| SealError::Corrupt)?;
        Ok(plain.to_vec())
    }

    fn data_key(bytes: &[u8]) -> Result<LessSafeKey, SealError> {
        UnboundKey::new(&AES_256_GCM, bytes)
            .map(LessSafeKey::new)
            .map_err(|_| SealError::Corrupt)
    }

    /// `plain` sealed under a new data key wrapped by the current key.
    pub fn seal(&self, plain: &str) -> String {
        let mut data_key = [0u8; KEY_BYTES];
        self.random
            .fill(&mut data_key)
            .expect("the system's random source");
        let wrapped = self.encrypt(&self.current.key, &data_key);
        let key = Self::data_key(&data_key).expect("32-byte key");
        let body = self.encrypt(&key, plain.as_bytes());
        format!("{PREFIX}{}:{wrapped}:{body}", self.current.id)
    }

    fn kek(&self, id: &str) -> Result<&Kek, SealError> {
        std::iter::once(&self.current)
            .chain(&self.previous)
            .find(|kek| kek.id == id)
            .ok_or_else(|| SealError::UnknownKey(id.to_owned()))
    }

    fn parts(text: &str) -> Option<(&str, &str, &str)> {
        let mut parts = text.strip_prefix(PREFIX)?.splitn(3, ':');
        Some((parts.next()?, parts.next()?, parts.next()?))
    }

    /// The plain text of a sealed value; text that was never sealed (stored
    /// before sealing existed) is returned as it is.
    pub fn open(&self, text: &str) -> Result<String, SealError> {
        let Some((id, wrapped, body)) = Self::parts(text) else {
            return Ok(text.to_owned());
        };
        let data_key = Self::decrypt(&self.kek(id)?.key, wrapped)?;
        let plain = Self::decrypt(&Self::data_key(&data_key)?, body)?;
        String::from_utf8(plain).map_err(|_| SealError::Corrupt)
    }

    /// The value re-wrapped under the current key when it is not already
    /// (plain text is sealed; the data and its data key stay as they were);
    /// `None`: nothing to do.
    pub fn reseal(&self, text: &str) -> Result<Option<String>, SealError> {
        let Some((id, wrapped, body)) = Self::parts(text) else {
            return Ok(Some(self.seal(text)));
        };
        if id == self.current.id {
            return Ok(None);
        }
        let data_key = Self::decrypt(&self.kek(id)?.key, wrapped)?;
        let wrapped = self.encrypt(&self.current.key, &data_key);
        Ok(Some(format!(
            "{PREFIX}{}:{wrapped}:{body}",
            self.current.id
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> [u8; KEY_BYTES] {
        [byte; KEY_BYTES]
    }

    #[test]
    fn sealed_text_hides_the_secret_and_opens_again() {
        let sealer = Sealer::new(&key(1), &[]);
        let sealed = sealer.seal("whsec_abc");
        assert!(sealed.starts_with("sealed:v1:") && !sealed.contains("whsec_abc"));
        assert_ne!(
            sealed,
            sealer.seal("whsec_abc"),
            "a new data key and nonce each time"
        );
        assert_eq!(sealer.open(&sealed).unwrap(), "whsec_abc");
        assert_eq!(sealer.open("legacy plain").unwrap(), "legacy plain");
    }

    #[test]
    fn a_rotated_key_rewraps_and_the_old_one_is_needed_until_then() {
        let old = Sealer::new(&key(1), &[]);
        let sealed = old.seal("secret");
        let rotated = Sealer::new(&key(2), &[key(1)]);
        assert_eq!(rotated.open(&sealed).unwrap(), "secret");
        let resealed = rotated.reseal(&sealed).unwrap().expect("re-wrapped");
        assert_eq!(rotated.reseal(&resealed).unwrap(), None);
        let without_old = Sealer::new(&key(2), &[]);
        assert_eq!(without_old.open(&resealed).unwrap(), "secret");
        assert!(matches!(
            without_old.open(&sealed),
            Err(SealError::UnknownKey(_))
        ));
    }

    #[test]
    fn tampered_or_foreign_values_are_refused() {
        let sealer = Sealer::new(&key(1), &[]);
        let sealed = sealer.seal("secret");
        let mut tampered = sealed.clone().into_bytes();
        let last = tampered.len() - 2;
        tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(tampered).unwrap();
        assert!(matches!(sealer.open(&tampered), Err(SealError::Corrupt)));
        let other = Sealer::new(&key(3), &[]);
        let id = other.key_id().to_owned();
        let foreign = sealed.replacen(sealer.key_id(), &id, 1);
        assert!(matches!(other.open(&foreign), Err(SealError::Corrupt)));
        assert!(matches!(parse_key("short"), Err(SealError::BadKey)));
        assert!(parse_key(&generate_key()).is_ok());
    }
}
