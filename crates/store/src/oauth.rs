//! A sandbox's OAuth 2 / OpenID Connect test provider as stored: signing
//! keys (the private key sealed), clients, test users and refresh tokens.

use async_trait::async_trait;
use serde_json::{Map, Value};

use crate::StoreError;

/// A signing key: the newest unretired one signs; retired ones stay in the
/// JWKS so tokens they signed verify until they expire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigningKeyRecord {
    pub sandbox_id: crate::SandboxId,
    pub kid: String,
    /// PKCS#8 DER, base64url; sealed at rest.
    pub private_key: String,
    /// The public key as a JWK (JSON text).
    pub public_jwk: String,
    pub created_at_ms: i64,
    pub retired_at_ms: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientRecord {
    /// The `client_id`.
    pub id: String,
    pub sandbox_id: crate::SandboxId,
    pub name: String,
    /// SHA-256 of the client secret, hex; `None`: a public client (PKCE).
    pub secret_hash: Option<String>,
    pub redirect_uris: Vec<String>,
    /// Scopes it may be granted; empty: any the sandbox's spec declares.
    pub scopes: Vec<String>,
    pub created_at_ms: i64,
}

/// A test user: `sub` and the claims its ID tokens and userinfo carry.
#[derive(Debug, Clone, PartialEq)]
pub struct TestUserRecord {
    pub sandbox_id: crate::SandboxId,
    pub sub: String,
    pub claims: Map<String, Value>,
    pub created_at_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshTokenRecord {
    /// SHA-256 of the token, hex.
    pub token_hash: String,
    pub sandbox_id: crate::SandboxId,
    pub client_id: String,
    pub sub: Option<String>,
    pub scope: String,
    /// Every token rotated from one grant shares it.
    pub family: String,
    pub expires_at_ms: i64,
    pub used_at_ms: Option<i64>,
}

/// What spending a refresh token found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Spent {
    /// Unused until now: here it is, now marked used.
    Fresh(RefreshTokenRecord),
    /// Used before: a replay. Its family was revoked.
    Replayed,
    Unknown,
}

#[async_trait]
pub trait OAuthStore: Send + Sync {
    async fn create_signing_key(&self, key: &SigningKeyRecord) -> Result<(), StoreError>;
    /// Retires every key of the sandbox but `keep`.
    async fn retire_signing_keys(
        &self,
        sandbox_id: &str,
        keep: &str,
        now_ms: i64,
    ) -> Result<(), StoreError>;
    /// Every key of the sandbox, retired ones too, oldest first.
    async fn signing_keys(&self, sandbox_id: &str) -> Result<Vec<SigningKeyRecord>, StoreError>;

    async fn create_client(&self, client: &ClientRecord) -> Result<(), StoreError>;
    async fn list_clients(&self, sandbox_id: &str) -> Result<Vec<ClientRecord>, StoreError>;
    async fn get_client(
        &self,
        sandbox_id: &str,
        id: &str,
    ) -> Result<Option<ClientRecord>, StoreError>;
    async fn delete_client(&self, sandbox_id: &str, id: &str) -> Result<bool, StoreError>;

    /// Creates or replaces a test user.
    async fn put_test_user(&self, user: &TestUserRecord) -> Result<(), StoreError>;
    async fn list_test_users(&self, sandbox_id: &str) -> Result<Vec<TestUserRecord>, StoreError>;
    async fn delete_test_user(&self, sandbox_id: &str, sub: &str) -> Result<bool, StoreError>;

    async fn create_refresh_token(&self, token: &RefreshTokenRecord) -> Result<(), StoreError>;
    /// Marks the token used, once; a second use revokes its whole family.
    async fn spend_refresh_token(
        &self,
        sandbox_id: &str,
        token_hash: &str,
        now_ms: i64,
    ) -> Result<Spent, StoreError>;
    /// Revokes every refresh token of one grant (a replayed code).
    async fn revoke_refresh_family(&self, family: &str) -> Result<(), StoreError>;
    /// Revokes the refresh token with this digest, and its whole grant, if
    /// it is the client's; whether there was one.
    async fn revoke_refresh_token(
        &self,
        sandbox_id: &str,
        client_id: &str,
        token_hash: &str,
    ) -> Result<bool, StoreError>;
    /// Revokes every refresh token of a client (its deletion).
    async fn revoke_client_tokens(
        &self,
        sandbox_id: &str,
        client_id: &str,
    ) -> Result<(), StoreError>;
}
