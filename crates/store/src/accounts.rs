//! Accounts, their tokens and invitations: who may call the control plane.
//! Secrets are never stored: passwords as argon2 hashes, tokens and
//! invitation codes as SHA-256 digests (they are long and random).

use async_trait::async_trait;
use serde::Serialize;

use crate::{StoreError, ids::AccountId, ids::TokenId};

/// What an account may do: an admin publishes projects and sees every
/// tenant; a developer sees only what it owns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Admin,
    Developer,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Developer => "developer",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "admin" => Some(Self::Admin),
            "developer" => Some(Self::Developer),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountRecord {
    pub id: AccountId,
    /// Lowercased; unique.
    pub email: String,
    /// Argon2id, PHC string format.
    pub password_hash: String,
    pub role: Role,
    pub created_at_ms: i64,
    /// A disabled account cannot sign in; its tokens stop working.
    pub disabled_at_ms: Option<i64>,
}

/// A personal access token (for the API and CLI) or a browser session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenKind {
    Personal,
    Session,
}

impl TokenKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Personal => "personal",
            Self::Session => "session",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "personal" => Some(Self::Personal),
            "session" => Some(Self::Session),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRecord {
    pub id: TokenId,
    pub account_id: AccountId,
    pub kind: TokenKind,
    pub name: String,
    /// The token's first characters, shown in lists to tell tokens apart.
    pub prefix: String,
    /// SHA-256 of the token, hex.
    pub token_hash: String,
    pub created_at_ms: i64,
    pub last_used_at_ms: Option<i64>,
    pub expires_at_ms: Option<i64>,
    pub revoked_at_ms: Option<i64>,
}

impl TokenRecord {
    /// Whether it authenticates at `now_ms`.
    pub fn usable_at(&self, now_ms: i64) -> bool {
        self.revoked_at_ms.is_none() && self.expires_at_ms.is_none_or(|at| now_ms < at)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvitationRecord {
    /// SHA-256 of the code, hex.
    pub code_hash: String,
    pub email: String,
    pub role: Role,
    /// The actor who invited (`admin` or an account id).
    pub created_by: String,
    pub created_at_ms: i64,
    pub expires_at_ms: i64,
    pub accepted_at_ms: Option<i64>,
}

#[async_trait]
pub trait Accounts: Send + Sync {
    /// Stores a new account; `Conflict` when its email is taken.
    async fn create_account(&self, account: &AccountRecord) -> Result<(), StoreError>;
    /// Stores a new account and marks the invitation it came with accepted,
    /// in one transaction; false (nothing stored) when the invitation was
    /// taken, expired or is for another email.
    async fn create_invited_account(
        &self,
        account: &AccountRecord,
        code_hash: &str,
    ) -> Result<bool, StoreError>;
    async fn get_account(&self, id: &str) -> Result<Option<AccountRecord>, StoreError>;
    async fn account_by_email(&self, email: &str) -> Result<Option<AccountRecord>, StoreError>;
    async fn list_accounts(&self) -> Result<Vec<AccountRecord>, StoreError>;
    /// Saves role, password and disabled state; false if it does not exist.
    async fn update_account(&self, account: &AccountRecord) -> Result<bool, StoreError>;

    async fn create_token(&self, token: &TokenRecord) -> Result<(), StoreError>;
    /// The token with this hash and its account, usable or not.
    async fn token_by_hash(
        &self,
        hash: &str,
    ) -> Result<Option<(TokenRecord, AccountRecord)>, StoreError>;
    /// An account's tokens of one kind, newest first, revoked ones included.
    async fn list_tokens(
        &self,
        account_id: &str,
        kind: TokenKind,
    ) -> Result<Vec<TokenRecord>, StoreError>;
    /// Revokes one of the account's tokens; false if it has no such token
    /// or it was revoked already.
    async fn revoke_token(
        &self,
        account_id: &str,
        token_id: &str,
        now_ms: i64,
    ) -> Result<bool, StoreError>;
    /// Notes when tokens were last used.
    async fn touch_tokens(&self, used: &[(TokenId, i64)]) -> Result<(), StoreError>;
    /// Forgets sessions and tokens that expired or were revoked before
    /// `before_ms`; how many.
    async fn prune_tokens(&self, before_ms: i64) -> Result<u64, StoreError>;

    async fn create_invitation(&self, invitation: &InvitationRecord) -> Result<(), StoreError>;
    /// An invitation still open at `now_ms`.
    async fn open_invitation(
        &self,
        code_hash: &str,
        now_ms: i64,
    ) -> Result<Option<InvitationRecord>, StoreError>;
}
