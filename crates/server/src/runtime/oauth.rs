//! The OAuth 2 / OpenID Connect test provider's memory: each sandbox's
//! signing keys as loaded from the store (ES256, `kid` per key),
//! authorization codes waiting to be exchanged (single use, a minute),
//! consent pages waiting for an answer, and access tokens already verified
//! — so that a request with a JWT costs a map lookup, not a signature check.

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex, RwLock},
};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD as B64};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use ring::{
    rand::SystemRandom,
    signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair},
};
use sbx_store::{SandboxId, oauth::SigningKeyRecord};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::runtime::ids::random_token;

/// Verified tokens remembered at most (then the expired ones are dropped,
/// or all when none has expired).
const MAX_VERIFIED: usize = 10_000;
/// Codes and consent pages waiting at most, per process.
const MAX_PENDING: usize = 10_000;

/// A sandbox's signing keys: the newest unretired one signs, all verify.
pub struct SigningKeys {
    signer: Option<(String, EncodingKey)>,
    verifiers: Vec<(String, DecodingKey)>,
    /// The JSON Web Key Set the provider publishes.
    pub jwks: Value,
}

impl std::fmt::Debug for SigningKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKeys")
            .field("signer", &self.signer.as_ref().map(|(kid, _)| kid))
            .finish_non_exhaustive()
    }
}

/// A new P-256 key for `sandbox`: its record (private key as PKCS#8).
pub fn generate_key(sandbox: &SandboxId, now_ms: i64) -> SigningKeyRecord {
    let random = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &random)
        .expect("the system's random source");
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &random)
        .expect("a key ring just made");
    // Uncompressed point: 0x04, x, y.
    let point = pair.public_key().as_ref();
    let kid = format!("sbxk_{}", random_token(16));
    let jwk = json!({
        "kty": "EC",
        "crv": "P-256",
        "x": B64.encode(&point[1..33]),
        "y": B64.encode(&point[33..65]),
        "kid": kid,
        "use": "sig",
        "alg": "ES256",
    });
    SigningKeyRecord {
        sandbox_id: sandbox.clone(),
        kid,
        private_key: B64.encode(pkcs8.as_ref()),
        public_jwk: jwk.to_string(),
        created_at_ms: now_ms,
        retired_at_ms: None,
    }
}

impl SigningKeys {
    /// The keys of `records` (oldest first) that still verify at `now_ms`:
    /// unretired ones, and retired ones for `keep_retired_ms`.
    pub fn of(records: &[SigningKeyRecord], now_ms: i64, keep_retired_ms: i64) -> Self {
        let mut signer = None;
        let mut verifiers = Vec::new();
        let mut published = Vec::new();
        for record in records {
            if record
                .retired_at_ms
                .is_some_and(|at| at + keep_retired_ms < now_ms)
            {
                continue;
            }
            let Ok(jwk) = serde_json::from_str::<Value>(&record.public_jwk) else {
                continue;
            };
            let (Some(x), Some(y)) = (jwk["x"].as_str(), jwk["y"].as_str()) else {
                continue;
            };
            let Ok(decoding) = DecodingKey::from_ec_components(x, y) else {
                continue;
            };
            if record.retired_at_ms.is_none()
                && let Ok(der) = B64.decode(&record.private_key)
            {
                signer = Some((record.kid.clone(), EncodingKey::from_ec_der(&der)));
            }
            verifiers.push((record.kid.clone(), decoding));
            published.push(jwk);
        }
        Self {
            signer,
            verifiers,
            jwks: json!({ "keys": published }),
        }
    }

    pub fn can_sign(&self) -> bool {
        self.signer.is_some()
    }

    /// `claims` as a JWT signed by the current key, with header type `typ`.
    pub fn sign(&self, typ: &str, claims: &impl Serialize) -> Option<String> {
        let (kid, key) = self.signer.as_ref()?;
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(kid.clone());
        header.typ = Some(typ.to_owned());
        jsonwebtoken::encode(&header, claims, key).ok()
    }

    /// The claims of an access token this sandbox issued, checked for
    /// signature, issuer, audience and expiry; or why it is not valid.
    pub fn verify(
        &self,
        token: &str,
        issuer: &str,
        audience: &str,
    ) -> Result<AccessClaims, String> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|_| "it is not a well-formed JWT".to_owned())?;
        if header.alg != Algorithm::ES256 {
            return Err(format!(
                "it is signed with {:?}; this sandbox signs with ES256",
                header.alg
            ));
        }
        let kid = header.kid.unwrap_or_default();
        let Some((_, key)) = self.verifiers.iter().find(|(k, _)| *k == kid) else {
            return Err("it was not signed by a key of this sandbox".to_owned());
        };
        let mut validation = Validation::new(Algorithm::ES256);
        validation.leeway = 0;
        validation.set_issuer(&[issuer]);
        validation.set_audience(&[audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        jsonwebtoken::decode::<AccessClaims>(token, key, &validation)
            .map(|data| data.claims)
            .map_err(|e| {
                use jsonwebtoken::errors::ErrorKind;
                match e.kind() {
                    ErrorKind::ExpiredSignature => "it expired".to_owned(),
                    ErrorKind::InvalidAudience => {
                        "its audience is not this sandbox (a token of another sandbox?)".to_owned()
                    }
                    ErrorKind::InvalidIssuer => "its issuer is not this sandbox's".to_owned(),
                    ErrorKind::InvalidSignature => "its signature does not verify".to_owned(),
                    ErrorKind::MissingRequiredClaim(claim) => format!("it has no `{claim}` claim"),
                    _ => format!("it does not verify ({e})"),
                }
            })
    }
}

/// What an access token says (RFC 9068's claims, those we read).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccessClaims {
    pub iss: String,
    pub sub: String,
    pub aud: String,
    pub exp: i64,
    pub iat: i64,
    pub jti: String,
    pub client_id: String,
    #[serde(default)]
    pub scope: String,
}

/// A verified access token, as remembered.
#[derive(Debug, Clone)]
pub struct Verified {
    pub sandbox: SandboxId,
    pub sub: String,
    pub scopes: Vec<String>,
    pub expires_at_s: i64,
    pub jti: String,
}

impl Verified {
    pub fn of(sandbox: &SandboxId, claims: &AccessClaims) -> Self {
        Self {
            sandbox: sandbox.clone(),
            sub: claims.sub.clone(),
            scopes: claims.scope.split_whitespace().map(str::to_owned).collect(),
            expires_at_s: claims.exp,
            jti: claims.jti.clone(),
        }
    }

    pub fn has_scopes(&self, required: &[String]) -> bool {
        required.iter().all(|scope| self.scopes.contains(scope))
    }
}

/// An authorization code waiting for its exchange.
#[derive(Debug, Clone)]
pub struct PendingCode {
    pub sandbox: SandboxId,
    pub client_id: String,
    pub redirect_uri: String,
    pub code_challenge: String,
    pub scope: String,
    pub sub: String,
    pub nonce: Option<String>,
    pub expires_at_ms: i64,
    /// Set once exchanged: a second exchange is a replay, and revokes what
    /// the first one issued (the access token's `jti`, the refresh family).
    pub issued: Option<(String, String)>,
}

/// An authorization request shown as a consent page, waiting for an answer.
#[derive(Debug, Clone)]
pub struct PendingConsent {
    pub sandbox: SandboxId,
    pub client_id: String,
    pub redirect_uri: String,
    pub code_challenge: String,
    pub scope: String,
    pub state: Option<String>,
    pub nonce: Option<String>,
    pub expires_at_ms: i64,
}

#[derive(Default)]
pub struct OAuthRuntime {
    keys: RwLock<HashMap<SandboxId, Arc<SigningKeys>>>,
    /// Held while a sandbox's first key is made, so it is made once.
    pub making_keys: tokio::sync::Mutex<()>,
    verified: RwLock<HashMap<Box<str>, Verified>>,
    /// Access tokens revoked before they expire (`jti`s: a replayed code).
    revoked: Mutex<HashSet<String>>,
    codes: Mutex<HashMap<String, PendingCode>>,
    consents: Mutex<HashMap<String, PendingConsent>>,
}

/// Whether `map` has room for one more: the expired entries go first.
fn has_room<V>(map: &mut HashMap<String, V>, expires: impl Fn(&V) -> i64, now_ms: i64) -> bool {
    if map.len() >= MAX_PENDING {
        map.retain(|_, v| expires(v) > now_ms);
    }
    map.len() < MAX_PENDING
}

impl OAuthRuntime {
    pub fn keys(&self, sandbox: &str) -> Option<Arc<SigningKeys>> {
        self.keys.read().ok()?.get(sandbox).cloned()
    }

    pub fn set_keys(&self, sandbox: &SandboxId, keys: Arc<SigningKeys>) {
        if let Ok(mut all) = self.keys.write() {
            all.insert(sandbox.clone(), keys);
        }
    }

    /// Forgets a deleted sandbox's keys.
    pub fn forget(&self, sandbox: &str) {
        if let Ok(mut all) = self.keys.write() {
            all.remove(sandbox);
        }
    }

    /// A token verified earlier, if it still holds at `now_s`.
    pub fn verified(&self, token: &str, now_s: i64) -> Option<Verified> {
        let verified = self.verified.read().ok()?.get(token).cloned()?;
        (verified.expires_at_s > now_s).then_some(verified)
    }

    pub fn remember(&self, token: &str, verified: Verified, now_s: i64) {
        if self.is_revoked(&verified.jti) {
            return;
        }
        if let Ok(mut cache) = self.verified.write() {
            if cache.len() >= MAX_VERIFIED {
                cache.retain(|_, v| v.expires_at_s > now_s);
                if cache.len() >= MAX_VERIFIED {
                    cache.clear();
                }
            }
            cache.insert(token.into(), verified);
        }
    }

    pub fn is_revoked(&self, jti: &str) -> bool {
        self.revoked
            .lock()
            .map(|revoked| revoked.contains(jti))
            .unwrap_or(false)
    }

    /// Revokes an access token by `jti` (and forgets it as verified).
    pub fn revoke(&self, jti: &str) {
        if let Ok(mut revoked) = self.revoked.lock() {
            revoked.insert(jti.to_owned());
        }
        if let Ok(mut cache) = self.verified.write() {
            cache.retain(|_, v| v.jti != jti);
        }
    }

    /// A new code for `pending`; `None` when too many are waiting.
    pub fn issue_code(&self, pending: PendingCode, now_ms: i64) -> Option<String> {
        let mut codes = self.codes.lock().ok()?;
        if !has_room(&mut codes, |c| c.expires_at_ms, now_ms) {
            return None;
        }
        let code = random_token(43);
        codes.insert(code.clone(), pending);
        Some(code)
    }

    /// The code's grant, marked exchanged; `Err` with the earlier grant's
    /// tokens when it was exchanged before (a replay). Unknown: `Ok(None)`.
    pub fn take_code(
        &self,
        code: &str,
        issued: (String, String),
    ) -> Result<Option<PendingCode>, (String, String)> {
        let mut codes = self.codes.lock().unwrap_or_else(|e| e.into_inner());
        let Some(pending) = codes.get_mut(code) else {
            return Ok(None);
        };
        if let Some(earlier) = &pending.issued {
            return Err(earlier.clone());
        }
        let found = pending.clone();
        pending.issued = Some(issued);
        Ok(Some(found))
    }

    /// A consent page's id for `pending`; `None` when too many are waiting.
    pub fn ask_consent(&self, pending: PendingConsent, now_ms: i64) -> Option<String> {
        let mut consents = self.consents.lock().ok()?;
        if !has_room(&mut consents, |c| c.expires_at_ms, now_ms) {
            return None;
        }
        let id = random_token(32);
        consents.insert(id.clone(), pending);
        Some(id)
    }

    /// The consent request `id`, once.
    pub fn answer_consent(&self, id: &str) -> Option<PendingConsent> {
        self.consents.lock().ok()?.remove(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signed_token_verifies_only_for_its_issuer_audience_and_keys() {
        let sandbox = SandboxId::from("sbx-a".to_owned());
        let record = generate_key(&sandbox, 0);
        let keys = SigningKeys::of(std::slice::from_ref(&record), 0, 0);
        let now = chrono_now();
        let claims = AccessClaims {
            iss: "https://issuer".into(),
            sub: "user".into(),
            aud: "sbx-a".into(),
            exp: now + 60,
            iat: now,
            jti: "j".into(),
            client_id: "c".into(),
            scope: "read write".into(),
        };
        let token = keys.sign("at+jwt", &claims).unwrap();
        let verified = keys.verify(&token, "https://issuer", "sbx-a").unwrap();
        assert_eq!(verified.scope, "read write");
        assert!(keys.verify(&token, "https://other", "sbx-a").is_err());
        assert!(keys.verify(&token, "https://issuer", "sbx-b").is_err());
        let other = SigningKeys::of(&[generate_key(&sandbox, 0)], 0, 0);
        assert!(other.verify(&token, "https://issuer", "sbx-a").is_err());
        let expired = AccessClaims {
            exp: now - 1,
            ..claims
        };
        let token = keys.sign("at+jwt", &expired).unwrap();
        assert_eq!(
            keys.verify(&token, "https://issuer", "sbx-a").unwrap_err(),
            "it expired"
        );
    }

    fn chrono_now() -> i64 {
        crate::app::now_ms() / 1000
    }
}
