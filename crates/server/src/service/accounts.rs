//! Developer and admin accounts: sign-up, sign-in, browser sessions,
//! personal access tokens and invitations. Passwords are hashed with
//! argon2id off the async workers; tokens are long random strings stored
//! as SHA-256 digests and shown once.

use std::net::IpAddr;

use argon2::{
    Argon2,
    password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString},
};
use sbx_store::{
    AccountId, AccountRecord, InvitationRecord, Role, StoreError, TokenId, TokenKind, TokenRecord,
};

use super::{ServiceError, ServiceResult, caller::Caller};
use crate::{
    app::{AppState, now_ms},
    config::{MAX_PASSWORD_CHARS, SignupMode},
    runtime::ids::{hash_secret, random_token},
};

/// Prefixes that tell a secret's kind at a glance (and to secret scanners).
const PERSONAL_TOKEN_PREFIX: &str = "sbx_pat_";
const SESSION_TOKEN_PREFIX: &str = "sbx_ses_";
const INVITATION_PREFIX: &str = "sbx_inv_";
/// Characters of a token shown in lists, prefix included.
const SHOWN_CHARS: usize = 12;
/// Active personal access tokens per account, at most.
pub const MAX_TOKENS: usize = 50;
const MAX_TOKEN_NAME_CHARS: usize = 100;
/// Longest personal access token lifetime, in days.
pub const MAX_TOKEN_DAYS: u32 = 3650;
/// `last_used_at` is written at most this often per token.
const TOUCH_EVERY_MS: i64 = 60_000;
const DAY_MS: i64 = 24 * 3600 * 1000;

/// What a new account is made of.
pub struct NewAccount {
    pub email: String,
    pub password: String,
    /// An admin's invitation code, where sign-up asks for one.
    pub invitation: Option<String>,
    /// Only an admin may choose; otherwise the invitation's, or developer.
    pub role: Option<Role>,
}

/// A signed-in browser session: its token goes in an HttpOnly cookie, its
/// CSRF token in every state-changing request the page sends.
pub struct Session {
    pub token: String,
    pub csrf_token: String,
    pub account: AccountRecord,
    pub expires_at_ms: i64,
}

fn email_of(text: &str) -> ServiceResult<String> {
    let email = text.trim().to_lowercase();
    if email.len() > 254 || !email_address::EmailAddress::is_valid(&email) {
        return Err(ServiceError::invalid(
            "/email",
            format!("{text:?} is not an email address"),
        ));
    }
    Ok(email)
}

fn check_password(state: &AppState, password: &str, email: &str) -> ServiceResult<()> {
    let min = state.config.accounts.min_password_chars;
    let chars = password.chars().count();
    if chars < min || chars > MAX_PASSWORD_CHARS {
        return Err(ServiceError::invalid(
            "/password",
            format!("the password must be {min} to {MAX_PASSWORD_CHARS} characters long"),
        ));
    }
    if password.eq_ignore_ascii_case(email) {
        return Err(ServiceError::invalid(
            "/password",
            "the password must not be the email address",
        ));
    }
    Ok(())
}

/// Hashes off the async workers: argon2 takes tens of milliseconds by design.
async fn hash_password(password: String) -> ServiceResult<String> {
    hash_password_with(password, Argon2::default()).await
}

/// The demo account's hash: argon2id with 4 MiB rather than 19 (its
/// password is printed at every start anyway), so `serve --demo` does not
/// keep the allocator's 19 MiB for one hash it made at start.
fn demo_hasher() -> ServiceResult<Argon2<'static>> {
    let params = argon2::Params::new(4 * 1024, 3, 1, None)
        .map_err(|e| ServiceError::Internal(anyhow::anyhow!("argon2 parameters: {e}")))?;
    Ok(Argon2::new(
        argon2::Algorithm::Argon2id,
        argon2::Version::V0x13,
        params,
    ))
}

async fn hash_password_with(password: String, hasher: Argon2<'static>) -> ServiceResult<String> {
    tokio::task::spawn_blocking(move || {
        let salt_bytes: [u8; 16] = rand::random();
        let salt = SaltString::encode_b64(&salt_bytes)?;
        hasher
            .hash_password(password.as_bytes(), &salt)
            .map(|hash| hash.to_string())
    })
    .await
    .map_err(|e| ServiceError::Internal(e.into()))?
    .map_err(|e| ServiceError::Internal(anyhow::anyhow!("hashing a password: {e}")))
}

/// Whether `password` matches the stored hash. Without an account, a fixed
/// hash is checked instead, so the answer takes as long either way.
async fn password_matches(stored: Option<String>, password: String) -> bool {
    tokio::task::spawn_blocking(move || {
        let stored = stored.unwrap_or_else(|| UNKNOWN_ACCOUNT_HASH.to_owned());
        PasswordHash::new(&stored).is_ok_and(|hash| {
            Argon2::default()
                .verify_password(password.as_bytes(), &hash)
                .is_ok()
        })
    })
    .await
    .unwrap_or(false)
}

/// The argon2id hash of a random password nobody knows, in the default
/// parameters: what an unknown email is checked against.
const UNKNOWN_ACCOUNT_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c2J4LXVua25vd24tYWNjb3VudA$0pmmzGLSxRqlWJ9KYt4n9mmn4d0sM3LTbYd1LwF+ggA";

fn new_account_id() -> AccountId {
    AccountId::from(format!("usr_{}", random_token(16)))
}

/// Makes an account: by sign-up (as the server's `signup` setting allows)
/// or by an admin (any role, whatever the setting).
pub async fn sign_up(
    state: &AppState,
    caller: Option<&Caller>,
    new: NewAccount,
) -> ServiceResult<AccountRecord> {
    let by_admin = caller.is_some_and(Caller::is_admin);
    let email = email_of(&new.email)?;
    check_password(state, &new.password, &email)?;
    if new.role.is_some() && !by_admin {
        return Err(ServiceError::Forbidden(
            "only admins may choose an account's role".into(),
        ));
    }
    let now = now_ms();
    let invitation = match (&new.invitation, by_admin) {
        (Some(code), false) => Some(
            state
                .store
                .open_invitation(&hash_secret(code), now)
                .await?
                .filter(|i| i.email == email)
                .ok_or_else(|| {
                    ServiceError::Forbidden(
                        "the invitation is not valid: it was used, it expired, or it is for another email address".into(),
                    )
                })?,
        ),
        _ => None,
    };
    if !by_admin && invitation.is_none() {
        match state.config.accounts.signup {
            SignupMode::Open => {}
            SignupMode::Invite => {
                return Err(ServiceError::Forbidden(
                    "sign-up needs an invitation from an admin (send it as `invitation`)".into(),
                ));
            }
            SignupMode::Closed => {
                return Err(ServiceError::Forbidden(
                    "sign-up is closed: an admin creates accounts".into(),
                ));
            }
        }
    }
    let account = AccountRecord {
        id: new_account_id(),
        role: new
            .role
            .or(invitation.as_ref().map(|i| i.role))
            .unwrap_or(Role::Developer),
        email,
        password_hash: hash_password(new.password).await?,
        created_at_ms: now,
        disabled_at_ms: None,
    };
    let stored = match (&new.invitation, &invitation) {
        (Some(code), Some(_)) => state
            .store
            .create_invited_account(&account, &hash_secret(code))
            .await
            .map(|accepted| accepted.then_some(())),
        _ => state.store.create_account(&account).await.map(Some),
    };
    match stored {
        Ok(Some(())) => Ok(account),
        Ok(None) => Err(ServiceError::Forbidden(
            "the invitation was used meanwhile".into(),
        )),
        Err(StoreError::Conflict(_)) => Err(ServiceError::Conflict(format!(
            "an account with email {:?} exists; sign in instead",
            account.email
        ))),
        Err(other) => Err(other.into()),
    }
}

/// The demo's developer account (`sbx serve --demo` prints its sign-in):
/// made if missing, enabled, and given a new random password each time.
pub async fn demo_account(state: &AppState, email: &str) -> ServiceResult<(AccountRecord, String)> {
    let password = random_token(16);
    let password_hash = hash_password_with(password.clone(), demo_hasher()?).await?;
    match state.store.account_by_email(email).await? {
        Some(mut account) => {
            account.password_hash = password_hash;
            account.disabled_at_ms = None;
            state.store.update_account(&account).await?;
            Ok((account, password))
        }
        None => {
            let account = AccountRecord {
                id: new_account_id(),
                email: email_of(email)?,
                password_hash,
                role: Role::Developer,
                created_at_ms: now_ms(),
                disabled_at_ms: None,
            };
            state.store.create_account(&account).await?;
            Ok((account, password))
        }
    }
}

/// Signs in with email and password: a new browser session. Failures say
/// only that the pair is wrong; past the per-account limit they are 429.
pub async fn sign_in(
    state: &AppState,
    email: &str,
    password: String,
    client: IpAddr,
) -> ServiceResult<Session> {
    let email = email.trim().to_lowercase();
    let now = now_ms();
    let too_many = |retry_after: u64| ServiceError::TooManyAttempts {
        detail: format!("too many failed sign-ins to this account; retry in {retry_after} s"),
        retry_after,
    };
    state.failed_sign_ins.check(&email, now).map_err(too_many)?;
    let account = state.store.account_by_email(&email).await?;
    let matches =
        password_matches(account.as_ref().map(|a| a.password_hash.clone()), password).await;
    let account = match account {
        Some(account) if matches => account,
        _ => {
            tracing::info!(%client, "a sign-in failed");
            state.failed_sign_ins.count(email, now).map_err(too_many)?;
            return Err(ServiceError::Unauthenticated(
                "the email address or the password is wrong".into(),
            ));
        }
    };
    if account.disabled_at_ms.is_some() {
        return Err(ServiceError::Unauthenticated(
            "this account is disabled; ask an admin".into(),
        ));
    }
    let hours = i64::from(state.config.accounts.session_hours);
    let expires_at_ms = now + hours * 3600 * 1000;
    let token = issue(
        state,
        &account.id,
        TokenKind::Session,
        "browser session",
        Some(expires_at_ms),
    )
    .await?
    .1;
    Ok(Session {
        csrf_token: csrf_token(&token),
        token,
        account,
        expires_at_ms,
    })
}

/// Ends the session, or revokes the personal access token, that `token`
/// is (`sbx logout`). The admin token is not a stored token: nothing ends.
pub async fn sign_out(state: &AppState, token: &str) -> ServiceResult<()> {
    if let Some((record, _)) = state.store.token_by_hash(&hash_secret(token)).await? {
        state
            .store
            .revoke_token(&record.account_id, &record.id, now_ms())
            .await?;
    }
    Ok(())
}

/// The CSRF token of a session: derived from the session's own secret
/// (which only its HttpOnly cookie carries), so nothing more is stored and
/// a page of another origin cannot compute it.
pub fn csrf_token(session_token: &str) -> String {
    hash_secret(&format!("sbx-csrf:{session_token}"))[..32].to_owned()
}

/// Who `token` identifies: the admin token, or a usable token of an
/// enabled account. `None` for anything else.
pub async fn identify(state: &AppState, token: &str) -> ServiceResult<Option<Caller>> {
    let hash = hash_secret(token);
    if hash == *state.admin_token_hash {
        return Ok(Some(Caller::AdminToken));
    }
    if !(token.starts_with(PERSONAL_TOKEN_PREFIX) || token.starts_with(SESSION_TOKEN_PREFIX)) {
        return Ok(None);
    }
    let Some((record, account)) = state.store.token_by_hash(&hash).await? else {
        return Ok(None);
    };
    let now = now_ms();
    if !record.usable_at(now) || account.disabled_at_ms.is_some() {
        return Ok(None);
    }
    if record
        .last_used_at_ms
        .is_none_or(|at| now - at >= TOUCH_EVERY_MS)
    {
        state
            .store
            .touch_tokens(&[(record.id.clone(), now)])
            .await?;
    }
    Ok(Some(Caller::Account {
        id: account.id,
        role: account.role,
    }))
}

/// Stores a new token of `kind` for `account`; the record and the secret.
async fn issue(
    state: &AppState,
    account: &AccountId,
    kind: TokenKind,
    name: &str,
    expires_at_ms: Option<i64>,
) -> ServiceResult<(TokenRecord, String)> {
    let prefix = match kind {
        TokenKind::Personal => PERSONAL_TOKEN_PREFIX,
        TokenKind::Session => SESSION_TOKEN_PREFIX,
    };
    let secret = format!("{prefix}{}", random_token(40));
    let record = TokenRecord {
        id: TokenId::from(format!("tok_{}", random_token(16))),
        account_id: account.clone(),
        kind,
        name: name.to_owned(),
        prefix: secret[..SHOWN_CHARS].to_owned(),
        token_hash: hash_secret(&secret),
        created_at_ms: now_ms(),
        last_used_at_ms: None,
        expires_at_ms,
        revoked_at_ms: None,
    };
    state.store.create_token(&record).await?;
    Ok((record, secret))
}

/// The account a caller acts as; the admin token has none.
fn account_of(caller: &Caller) -> ServiceResult<&AccountId> {
    caller.owner().ok_or_else(|| {
        ServiceError::Forbidden(
            "the admin token belongs to no account; sign in to an account for this".into(),
        )
    })
}

/// A new personal access token for the caller's account (shown once).
pub async fn create_token(
    state: &AppState,
    caller: &Caller,
    name: &str,
    expires_in_days: Option<u32>,
) -> ServiceResult<(TokenRecord, String)> {
    let account = account_of(caller)?;
    let name = name.trim();
    if name.is_empty() || name.chars().count() > MAX_TOKEN_NAME_CHARS {
        return Err(ServiceError::invalid(
            "/name",
            format!("name must be 1 to {MAX_TOKEN_NAME_CHARS} characters"),
        ));
    }
    if expires_in_days.is_some_and(|days| days == 0 || days > MAX_TOKEN_DAYS) {
        return Err(ServiceError::invalid(
            "/expires_in_days",
            format!("expires_in_days must be 1 to {MAX_TOKEN_DAYS}"),
        ));
    }
    let now = now_ms();
    let active = list_tokens(state, caller)
        .await?
        .iter()
        .filter(|t| t.usable_at(now))
        .count();
    if active >= MAX_TOKENS {
        return Err(ServiceError::Conflict(format!(
            "the account has {active} active tokens, the most allowed; revoke one first"
        )));
    }
    let expires_at_ms = expires_in_days.map(|days| now + i64::from(days) * DAY_MS);
    issue(state, account, TokenKind::Personal, name, expires_at_ms).await
}

/// The caller's personal access tokens, newest first (revoked included).
pub async fn list_tokens(state: &AppState, caller: &Caller) -> ServiceResult<Vec<TokenRecord>> {
    let account = account_of(caller)?;
    Ok(state
        .store
        .list_tokens(account, TokenKind::Personal)
        .await?)
}

/// Revokes one of the caller's personal access tokens.
pub async fn revoke_token(state: &AppState, caller: &Caller, token_id: &str) -> ServiceResult<()> {
    let account = account_of(caller)?;
    let personal = state
        .store
        .list_tokens(account, TokenKind::Personal)
        .await?
        .into_iter()
        .any(|t| t.id == token_id && t.revoked_at_ms.is_none());
    if !personal
        || !state
            .store
            .revoke_token(account, token_id, now_ms())
            .await?
    {
        return Err(ServiceError::NotFound(format!(
            "the account has no active token \"{token_id}\""
        )));
    }
    Ok(())
}

/// An invitation for `email` to sign up with `role` (its code shown once).
pub async fn invite(
    state: &AppState,
    caller: &Caller,
    email: &str,
    role: Role,
) -> ServiceResult<(InvitationRecord, String)> {
    caller.must_be_admin("invite")?;
    let email = email_of(email)?;
    let code = format!("{INVITATION_PREFIX}{}", random_token(32));
    let now = now_ms();
    let invitation = InvitationRecord {
        code_hash: hash_secret(&code),
        email,
        role,
        created_by: caller.actor(),
        created_at_ms: now,
        expires_at_ms: now + i64::from(state.config.accounts.invitation_days) * DAY_MS,
        accepted_at_ms: None,
    };
    state.store.create_invitation(&invitation).await?;
    Ok((invitation, code))
}

/// Every account (admins only).
pub async fn list(state: &AppState, caller: &Caller) -> ServiceResult<Vec<AccountRecord>> {
    caller.must_be_admin("list accounts")?;
    Ok(state.store.list_accounts().await?)
}

/// One account: the caller's own, or any for an admin.
pub async fn get(state: &AppState, caller: &Caller, id: &str) -> ServiceResult<AccountRecord> {
    let visible = caller.is_admin() || caller.owner().is_some_and(|own| own == id);
    let account = if visible {
        state.store.get_account(id).await?
    } else {
        None
    };
    account.ok_or_else(|| ServiceError::NotFound(format!("account \"{id}\" does not exist")))
}

/// What an admin may change of an account.
#[derive(Debug, Default)]
pub struct AccountChange {
    pub role: Option<Role>,
    pub disabled: Option<bool>,
}

/// Changes an account's role or disables it (admins only): a disabled
/// account's sessions and tokens stop working at once.
pub async fn update(
    state: &AppState,
    caller: &Caller,
    id: &str,
    change: AccountChange,
) -> ServiceResult<AccountRecord> {
    caller.must_be_admin("change accounts")?;
    let mut account = get(state, caller, id).await?;
    if let Some(role) = change.role {
        account.role = role;
    }
    if let Some(disabled) = change.disabled {
        account.disabled_at_ms = match (disabled, account.disabled_at_ms) {
            (true, None) => Some(now_ms()),
            (true, at) => at,
            (false, _) => None,
        };
    }
    if !state.store.update_account(&account).await? {
        return Err(ServiceError::NotFound(format!(
            "account \"{id}\" does not exist"
        )));
    }
    Ok(account)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_unknown_account_hash_is_a_valid_argon2id_hash() {
        let hash = PasswordHash::new(UNKNOWN_ACCOUNT_HASH).expect("parses");
        assert_eq!(hash.algorithm.as_str(), "argon2id");
        assert!(Argon2::default().verify_password(b"", &hash).is_err());
    }

    #[test]
    fn csrf_tokens_differ_per_session_and_do_not_reveal_it() {
        let a = csrf_token("sbx_ses_a");
        assert_eq!(a, csrf_token("sbx_ses_a"));
        assert_ne!(a, csrf_token("sbx_ses_b"));
        assert!(!a.contains("sbx_ses"));
    }
}
