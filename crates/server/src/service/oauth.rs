//! Each sandbox's OAuth 2 / OpenID Connect test provider: its issuer
//! (`{public_url}/sbx/{id}/__sbx/oauth`), signing keys with rotation,
//! clients, test users, and the grants (client credentials, authorization
//! code with PKCE S256, refresh tokens with rotation and reuse detection).
//! Access tokens are ES256 JWTs for the sandbox alone (`aud` = its id).
//! Errors are RFC 6749's; built-in scenarios script the failures.

use std::sync::Arc;

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD as B64};
use sbx_store::{
    SandboxId,
    oauth::{ClientRecord, RefreshTokenRecord, Spent, TestUserRecord},
};
use serde::Serialize;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::{ServiceError, ServiceResult, caller::Caller, sandboxes::live};
use crate::{
    app::{AppState, now_ms},
    runtime::{
        ids::{hash_secret, random_token},
        oauth::{AccessClaims, PendingCode, PendingConsent, SigningKeys, Verified, generate_key},
        registry::LiveSandbox,
    },
};

/// Scenarios the provider answers (by `X-Sandbox-Scenario`, the
/// `sandbox_scenario` query parameter of `/authorize`, or the sandbox's
/// default scenario).
pub const SCENARIOS: [&str; 3] = [
    "oauth.consent_denied",
    "oauth.code_expired",
    "oauth.invalid_grant",
];
pub const ACCESS_TOKEN_SECONDS: i64 = 3600;
const CODE_MS: i64 = 60_000;
const CONSENT_MS: i64 = 10 * 60_000;
const REFRESH_MS: i64 = 30 * 24 * 3600 * 1000;
/// Retired signing keys stay published this long (tokens they signed live
/// at most an hour).
const RETIRED_KEY_MS: i64 = 24 * 3600 * 1000;
pub const MAX_CLIENTS: usize = 20;
pub const MAX_USERS: usize = 100;
const MAX_REDIRECT_URIS: usize = 10;
const MAX_NAME_CHARS: usize = 100;

/// The subject of the user a sandbox has when none is defined.
pub const DEFAULT_USER: &str = "user_test";

/// The issuer URL of sandbox `id`.
pub fn issuer(state: &AppState, id: &str) -> String {
    format!("{}/sbx/{id}/__sbx/oauth", state.public_url)
}

/// The provider's metadata (OpenID Connect Discovery, RFC 8414).
pub fn discovery(state: &AppState, id: &str) -> Value {
    let issuer = issuer(state, id);
    json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/authorize"),
        "token_endpoint": format!("{issuer}/token"),
        "jwks_uri": format!("{issuer}/jwks.json"),
        "userinfo_endpoint": format!("{issuer}/userinfo"),
        "revocation_endpoint": format!("{issuer}/revoke"),
        "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "response_types_supported": ["code"],
        "grant_types_supported": ["authorization_code", "client_credentials", "refresh_token"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["ES256"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "claims_supported": ["sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "email", "name"],
        "prompt_values_supported": ["none", "consent", "login"],
    })
}

/// A sandbox's signing keys, its first made on first use.
pub async fn signing_keys(state: &AppState, id: &SandboxId) -> ServiceResult<Arc<SigningKeys>> {
    if let Some(keys) = state.oauth.keys(id).filter(|k| k.can_sign()) {
        return Ok(keys);
    }
    let _making = state.oauth.making_keys.lock().await;
    if let Some(keys) = state.oauth.keys(id).filter(|k| k.can_sign()) {
        return Ok(keys);
    }
    let now = now_ms();
    let mut records = state.store.signing_keys(id).await?;
    if !records.iter().any(|k| k.retired_at_ms.is_none()) {
        let record = generate_key(id, now);
        state.store.create_signing_key(&record).await?;
        records.push(record);
    }
    let keys = Arc::new(SigningKeys::of(&records, now, RETIRED_KEY_MS));
    state.oauth.set_keys(id, keys.clone());
    Ok(keys)
}

/// A sandbox's keys for verifying, as stored: none are made here, so a
/// stray JWT sent to a sandbox that never used OAuth writes nothing.
async fn verifying_keys(state: &AppState, id: &SandboxId) -> ServiceResult<Arc<SigningKeys>> {
    if let Some(keys) = state.oauth.keys(id) {
        return Ok(keys);
    }
    let records = state.store.signing_keys(id).await?;
    let keys = Arc::new(SigningKeys::of(&records, now_ms(), RETIRED_KEY_MS));
    state.oauth.set_keys(id, keys.clone());
    Ok(keys)
}

/// A new signing key for the sandbox; the others are retired but stay in
/// the JWKS for a day. Returns the new key's id.
pub async fn rotate_keys(state: &AppState, caller: &Caller, id: &str) -> ServiceResult<String> {
    let sandbox = live(state, caller, id)?;
    let now = now_ms();
    let record = generate_key(&sandbox.id, now);
    let _making = state.oauth.making_keys.lock().await;
    state.store.create_signing_key(&record).await?;
    state
        .store
        .retire_signing_keys(&sandbox.id, &record.kid, now)
        .await?;
    let records = state.store.signing_keys(&sandbox.id).await?;
    state.oauth.set_keys(
        &sandbox.id,
        Arc::new(SigningKeys::of(&records, now, RETIRED_KEY_MS)),
    );
    Ok(record.kid)
}

/// What a new client is.
pub struct NewClient {
    pub name: String,
    pub redirect_uris: Vec<String>,
    pub scopes: Vec<String>,
    /// A public client (a browser or native app) has no secret and must
    /// use PKCE.
    pub public: bool,
}

fn valid_scope(scope: &str) -> bool {
    !scope.is_empty()
        && scope.len() <= 100
        && scope
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\')
}

fn check_client(new: &NewClient) -> ServiceResult<()> {
    let name_chars = new.name.chars().count();
    if name_chars == 0 || name_chars > MAX_NAME_CHARS {
        return Err(ServiceError::invalid(
            "/name",
            format!("name must be 1 to {MAX_NAME_CHARS} characters"),
        ));
    }
    if new.redirect_uris.len() > MAX_REDIRECT_URIS {
        return Err(ServiceError::invalid(
            "/redirect_uris",
            format!("at most {MAX_REDIRECT_URIS} redirect URIs"),
        ));
    }
    for (index, uri) in new.redirect_uris.iter().enumerate() {
        let parsed = reqwest::Url::parse(uri);
        let fine = parsed
            .as_ref()
            .is_ok_and(|url| url.fragment().is_none() && uri.len() <= 2000);
        if !fine {
            return Err(ServiceError::invalid(
                &format!("/redirect_uris/{index}"),
                format!("{uri:?} is not an absolute URI without a fragment"),
            ));
        }
    }
    if let Some((index, scope)) = new.scopes.iter().enumerate().find(|(_, s)| !valid_scope(s)) {
        return Err(ServiceError::invalid(
            &format!("/scopes/{index}"),
            format!("{scope:?} is not a scope (printable ASCII, no spaces or quotes)"),
        ));
    }
    if new.public && new.redirect_uris.is_empty() {
        return Err(ServiceError::invalid(
            "/redirect_uris",
            "a public client signs users in, so it needs a redirect URI",
        ));
    }
    Ok(())
}

/// Registers a client; returns it and its secret (shown once; stored hashed).
pub async fn create_client(
    state: &AppState,
    caller: &Caller,
    id: &str,
    new: NewClient,
) -> ServiceResult<(ClientRecord, Option<String>)> {
    let sandbox = live(state, caller, id)?;
    check_client(&new)?;
    if state.store.list_clients(&sandbox.id).await?.len() >= MAX_CLIENTS {
        return Err(ServiceError::Conflict(format!(
            "sandbox {id} has {MAX_CLIENTS} OAuth clients, the most allowed; delete one first"
        )));
    }
    let secret = (!new.public).then(|| format!("cs_test_{}", random_token(40)));
    let record = ClientRecord {
        id: format!("cli_{}", random_token(20)),
        sandbox_id: sandbox.id.clone(),
        name: new.name,
        secret_hash: secret.as_deref().map(hash_secret),
        redirect_uris: new.redirect_uris,
        scopes: new.scopes,
        created_at_ms: now_ms(),
    };
    state.store.create_client(&record).await?;
    Ok((record, secret))
}

pub async fn list_clients(
    state: &AppState,
    caller: &Caller,
    id: &str,
) -> ServiceResult<Vec<ClientRecord>> {
    let sandbox = live(state, caller, id)?;
    Ok(state.store.list_clients(&sandbox.id).await?)
}

/// Deletes a client and revokes its refresh tokens.
pub async fn delete_client(
    state: &AppState,
    caller: &Caller,
    id: &str,
    client_id: &str,
) -> ServiceResult<()> {
    let sandbox = live(state, caller, id)?;
    if !state.store.delete_client(&sandbox.id, client_id).await? {
        return Err(ServiceError::NotFound(format!(
            "OAuth client \"{client_id}\" does not exist in sandbox {id}"
        )));
    }
    state
        .store
        .revoke_client_tokens(&sandbox.id, client_id)
        .await?;
    Ok(())
}

/// The sandbox's test users: the project's, then those added through the
/// API (which replace a project's user of the same `sub`); the default
/// user when there are none.
pub async fn users(state: &AppState, sandbox: &LiveSandbox) -> ServiceResult<Vec<TestUserRecord>> {
    let mut users: Vec<TestUserRecord> = sandbox
        .serving()
        .compiled
        .behaviours
        .settings
        .oauth
        .users
        .iter()
        .map(|user| TestUserRecord {
            sandbox_id: sandbox.id.clone(),
            sub: user.sub.clone(),
            claims: user.claims.clone(),
            created_at_ms: sandbox.created_at_ms,
        })
        .collect();
    for stored in state.store.list_test_users(&sandbox.id).await? {
        users.retain(|u| u.sub != stored.sub);
        users.push(stored);
    }
    if users.is_empty() {
        let mut claims = Map::new();
        claims.insert("name".into(), "Test User".into());
        claims.insert("email".into(), "test.user@example.com".into());
        claims.insert("email_verified".into(), true.into());
        users.push(TestUserRecord {
            sandbox_id: sandbox.id.clone(),
            sub: DEFAULT_USER.to_owned(),
            claims,
            created_at_ms: sandbox.created_at_ms,
        });
    }
    Ok(users)
}

pub async fn list_users(
    state: &AppState,
    caller: &Caller,
    id: &str,
) -> ServiceResult<Vec<TestUserRecord>> {
    let sandbox = live(state, caller, id)?;
    users(state, &sandbox).await
}

/// Claims a test user may not set: the token's own.
const RESERVED_CLAIMS: [&str; 9] = [
    "iss",
    "sub",
    "aud",
    "exp",
    "iat",
    "nbf",
    "jti",
    "nonce",
    "auth_time",
];

/// Adds or replaces a test user.
pub async fn put_user(
    state: &AppState,
    caller: &Caller,
    id: &str,
    sub: &str,
    claims: Map<String, Value>,
) -> ServiceResult<TestUserRecord> {
    let sandbox = live(state, caller, id)?;
    if sub.is_empty() || sub.len() > 255 || sub.chars().any(char::is_control) {
        return Err(ServiceError::invalid(
            "/sub",
            "sub must be 1 to 255 bytes without control characters",
        ));
    }
    if let Some(reserved) = claims
        .keys()
        .find(|k| RESERVED_CLAIMS.contains(&k.as_str()))
    {
        return Err(ServiceError::invalid(
            &format!("/claims/{reserved}"),
            format!("`{reserved}` is set by the provider, not by a test user"),
        ));
    }
    if serde_json::to_string(&claims).map_or(0, |t| t.len()) > 16 * 1024 {
        return Err(ServiceError::invalid(
            "/claims",
            "claims must be under 16 KiB",
        ));
    }
    let stored = state.store.list_test_users(&sandbox.id).await?;
    if stored.len() >= MAX_USERS && !stored.iter().any(|u| u.sub == sub) {
        return Err(ServiceError::Conflict(format!(
            "sandbox {id} has {MAX_USERS} test users, the most allowed"
        )));
    }
    let user = TestUserRecord {
        sandbox_id: sandbox.id.clone(),
        sub: sub.to_owned(),
        claims,
        created_at_ms: now_ms(),
    };
    state.store.put_test_user(&user).await?;
    Ok(user)
}

pub async fn delete_user(
    state: &AppState,
    caller: &Caller,
    id: &str,
    sub: &str,
) -> ServiceResult<()> {
    let sandbox = live(state, caller, id)?;
    if state.store.delete_test_user(&sandbox.id, sub).await? {
        Ok(())
    } else {
        Err(ServiceError::NotFound(format!(
            "test user \"{sub}\" does not exist in sandbox {id} (users from the project cannot be deleted)"
        )))
    }
}

/// An RFC 6749 error: its HTTP status, code and description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthError {
    pub status: u16,
    pub error: &'static str,
    pub description: String,
}

impl OAuthError {
    fn new(error: &'static str, description: impl Into<String>) -> Self {
        let status = if error == "invalid_client" { 401 } else { 400 };
        Self {
            status,
            error,
            description: description.into(),
        }
    }

    fn server(error: ServiceError) -> Self {
        tracing::error!(%error, "OAuth provider failed");
        Self {
            status: 500,
            error: "server_error",
            description: "the provider failed; try again".to_owned(),
        }
    }
}

type OAuthResult<T> = Result<T, OAuthError>;

/// RFC 6749's answer to a code or refresh token that cannot be used.
fn invalid_grant(description: impl Into<String>) -> OAuthError {
    OAuthError::new("invalid_grant", description)
}

/// How a client authenticated at the token endpoint.
pub struct ClientAuth {
    pub client_id: String,
    pub secret: Option<String>,
}

/// A token request (RFC 6749 §4).
pub enum Grant {
    ClientCredentials {
        scope: Option<String>,
    },
    AuthorizationCode {
        code: String,
        redirect_uri: Option<String>,
        code_verifier: Option<String>,
    },
    RefreshToken {
        refresh_token: String,
        scope: Option<String>,
    },
}

/// A token response (RFC 6749 §5.1).
#[derive(Debug, Serialize)]
pub struct Tokens {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: i64,
    pub scope: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
}

async fn authenticate_client(
    state: &AppState,
    sandbox: &LiveSandbox,
    auth: &ClientAuth,
) -> OAuthResult<ClientRecord> {
    let client = state
        .store
        .get_client(&sandbox.id, &auth.client_id)
        .await
        .map_err(|e| OAuthError::server(e.into()))?
        .ok_or_else(|| OAuthError::new("invalid_client", "unknown client"))?;
    match (&client.secret_hash, &auth.secret) {
        (Some(hash), Some(secret)) if *hash == hash_secret(secret) => Ok(client),
        (Some(_), _) => Err(OAuthError::new(
            "invalid_client",
            "client authentication failed",
        )),
        (None, None) => Ok(client),
        (None, Some(_)) => Err(OAuthError::new(
            "invalid_client",
            "a public client has no secret",
        )),
    }
}

/// The scopes granted for `requested` (space-separated) to `client`: what
/// it asked for, when it may have them; its registered scopes when it
/// asked for none.
fn granted_scopes(client: &ClientRecord, requested: Option<&str>) -> OAuthResult<String> {
    let requested: Vec<&str> = requested.unwrap_or("").split_whitespace().collect();
    if requested.is_empty() {
        return Ok(client.scopes.join(" "));
    }
    if let Some(bad) = requested.iter().find(|s| !valid_scope(s)) {
        return Err(OAuthError::new(
            "invalid_scope",
            format!("{bad:?} is not a scope"),
        ));
    }
    let always = ["openid", "profile", "email", "offline_access"];
    if !client.scopes.is_empty()
        && let Some(refused) = requested
            .iter()
            .find(|s| !client.scopes.iter().any(|c| c == *s) && !always.contains(s))
    {
        return Err(OAuthError::new(
            "invalid_scope",
            format!("this client may not be granted {refused:?}"),
        ));
    }
    Ok(requested.join(" "))
}

fn now_s() -> i64 {
    now_ms() / 1000
}

/// The tokens for a grant: an access token, maybe a refresh token (a
/// grant with a family) and an ID token (the `openid` scope).
async fn issue(
    state: &AppState,
    sandbox: &LiveSandbox,
    client: &ClientRecord,
    grant: Granted,
    jti: String,
) -> OAuthResult<Tokens> {
    let keys = signing_keys(state, &sandbox.id)
        .await
        .map_err(OAuthError::server)?;
    let now = now_s();
    let iss = issuer(state, &sandbox.id);
    let claims = AccessClaims {
        iss: iss.clone(),
        sub: grant.sub.clone(),
        aud: sandbox.id.to_string(),
        exp: now + ACCESS_TOKEN_SECONDS,
        iat: now,
        jti,
        client_id: client.id.clone(),
        scope: grant.scope.clone(),
    };
    let access_token = keys.sign("at+jwt", &claims).ok_or_else(|| {
        OAuthError::server(ServiceError::Internal(anyhow::anyhow!("no signing key")))
    })?;
    let scopes: Vec<&str> = grant.scope.split_whitespace().collect();
    let id_token = if scopes.contains(&"openid") {
        let user = users(state, sandbox)
            .await
            .map_err(OAuthError::server)?
            .into_iter()
            .find(|u| u.sub == grant.sub);
        let mut id_claims = user.map(|u| u.claims).unwrap_or_default();
        id_claims.insert("iss".into(), iss.into());
        id_claims.insert("sub".into(), grant.sub.clone().into());
        id_claims.insert("aud".into(), client.id.clone().into());
        id_claims.insert("exp".into(), (now + ACCESS_TOKEN_SECONDS).into());
        id_claims.insert("iat".into(), now.into());
        id_claims.insert("auth_time".into(), now.into());
        if let Some(nonce) = &grant.nonce {
            id_claims.insert("nonce".into(), nonce.clone().into());
        }
        keys.sign("JWT", &id_claims)
    } else {
        None
    };
    let refresh_token = match grant.family {
        Some(family) => {
            let token = format!("rt_test_{}", random_token(43));
            let record = RefreshTokenRecord {
                token_hash: hash_secret(&token),
                sandbox_id: sandbox.id.clone(),
                client_id: client.id.clone(),
                sub: Some(grant.sub.clone()),
                scope: grant.scope.clone(),
                family,
                expires_at_ms: now_ms() + REFRESH_MS,
                used_at_ms: None,
            };
            state
                .store
                .create_refresh_token(&record)
                .await
                .map_err(|e| OAuthError::server(e.into()))?;
            Some(token)
        }
        None => None,
    };
    Ok(Tokens {
        access_token,
        token_type: "Bearer",
        expires_in: ACCESS_TOKEN_SECONDS,
        scope: grant.scope,
        refresh_token,
        id_token,
    })
}

fn pkce_matches(verifier: &str, challenge: &str) -> bool {
    let well_formed = (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b));
    well_formed && B64.encode(Sha256::digest(verifier.as_bytes())) == challenge
}

/// What a grant gives, before the tokens are made.
struct Granted {
    sub: String,
    scope: String,
    /// A refresh token of this family is issued (none for client credentials).
    family: Option<String>,
    nonce: Option<String>,
}

/// The token endpoint: a grant exchanged for tokens, or an RFC 6749 error.
pub async fn token(
    state: &AppState,
    sandbox: &LiveSandbox,
    auth: ClientAuth,
    grant: Grant,
    scenario: Option<&str>,
) -> OAuthResult<Tokens> {
    let client = authenticate_client(state, sandbox, &auth).await?;
    let jti = random_token(24);
    let granted = match grant {
        Grant::ClientCredentials { scope } => client_credentials(&client, scope.as_deref())?,
        Grant::AuthorizationCode {
            code,
            redirect_uri,
            code_verifier,
        } => {
            let exchange = CodeExchange {
                code,
                redirect_uri,
                code_verifier,
            };
            exchange_code(state, sandbox, &client, exchange, scenario, &jti).await?
        }
        Grant::RefreshToken {
            refresh_token,
            scope,
        } => refresh(state, sandbox, &client, &refresh_token, scope, scenario).await?,
    };
    issue(state, sandbox, &client, granted, jti).await
}

fn client_credentials(client: &ClientRecord, scope: Option<&str>) -> OAuthResult<Granted> {
    if client.secret_hash.is_none() {
        return Err(OAuthError::new(
            "unauthorized_client",
            "a public client cannot use the client credentials grant",
        ));
    }
    Ok(Granted {
        sub: client.id.clone(),
        scope: granted_scopes(client, scope)?,
        family: None,
        nonce: None,
    })
}

struct CodeExchange {
    code: String,
    redirect_uri: Option<String>,
    code_verifier: Option<String>,
}

async fn exchange_code(
    state: &AppState,
    sandbox: &LiveSandbox,
    client: &ClientRecord,
    exchange: CodeExchange,
    scenario: Option<&str>,
    jti: &str,
) -> OAuthResult<Granted> {
    let family = random_token(24);
    let pending = match state
        .oauth
        .take_code(&exchange.code, (jti.to_owned(), family.clone()))
    {
        Ok(Some(pending)) if pending.sandbox == sandbox.id => pending,
        Ok(_) => return Err(invalid_grant("the authorization code is not valid")),
        Err((earlier_jti, earlier_family)) => {
            state.oauth.revoke(&earlier_jti);
            let _ = state.store.revoke_refresh_family(&earlier_family).await;
            return Err(invalid_grant(
                "the authorization code was already used; the tokens it gave were revoked",
            ));
        }
    };
    if scenario == Some("oauth.invalid_grant") {
        return Err(invalid_grant("refused by the scenario oauth.invalid_grant"));
    }
    if pending.expires_at_ms <= now_ms() || scenario == Some("oauth.code_expired") {
        return Err(invalid_grant("the authorization code expired"));
    }
    if pending.client_id != client.id {
        return Err(invalid_grant(
            "the authorization code was issued to another client",
        ));
    }
    if exchange.redirect_uri.as_deref() != Some(pending.redirect_uri.as_str()) {
        return Err(invalid_grant(
            "redirect_uri does not match the authorization request's",
        ));
    }
    let Some(verifier) = exchange.code_verifier else {
        return Err(OAuthError::new(
            "invalid_request",
            "code_verifier is required (PKCE)",
        ));
    };
    if !pkce_matches(&verifier, &pending.code_challenge) {
        return Err(invalid_grant(
            "code_verifier does not match the code_challenge",
        ));
    }
    Ok(Granted {
        sub: pending.sub,
        scope: pending.scope,
        family: Some(family),
        nonce: pending.nonce,
    })
}

async fn refresh(
    state: &AppState,
    sandbox: &LiveSandbox,
    client: &ClientRecord,
    refresh_token: &str,
    scope: Option<String>,
    scenario: Option<&str>,
) -> OAuthResult<Granted> {
    if scenario == Some("oauth.invalid_grant") {
        return Err(invalid_grant("refused by the scenario oauth.invalid_grant"));
    }
    let spent = state
        .store
        .spend_refresh_token(&sandbox.id, &hash_secret(refresh_token), now_ms())
        .await
        .map_err(|e| OAuthError::server(e.into()))?;
    let record = match spent {
        Spent::Fresh(record) => record,
        Spent::Replayed => {
            return Err(invalid_grant(
                "the refresh token was already used; every token of its grant was revoked",
            ));
        }
        Spent::Unknown => return Err(invalid_grant("the refresh token is not valid")),
    };
    if record.client_id != client.id {
        return Err(invalid_grant(
            "the refresh token was issued to another client",
        ));
    }
    if record.expires_at_ms <= now_ms() {
        return Err(invalid_grant("the refresh token expired"));
    }
    let granted: Vec<&str> = record.scope.split_whitespace().collect();
    let scope = match scope {
        Some(asked) => {
            if let Some(wider) = asked.split_whitespace().find(|s| !granted.contains(s)) {
                return Err(OAuthError::new(
                    "invalid_scope",
                    format!("{wider:?} was not granted to the refresh token"),
                ));
            }
            asked.split_whitespace().collect::<Vec<_>>().join(" ")
        }
        None => record.scope.clone(),
    };
    Ok(Granted {
        sub: record.sub.unwrap_or_else(|| client.id.clone()),
        scope,
        family: Some(record.family),
        nonce: None,
    })
}

/// An authorization request (RFC 6749 §4.1.1, RFC 7636, OIDC).
#[derive(Debug, Default, Clone)]
pub struct AuthorizeRequest {
    pub response_type: Option<String>,
    pub client_id: Option<String>,
    pub redirect_uri: Option<String>,
    pub scope: Option<String>,
    pub state: Option<String>,
    pub code_challenge: Option<String>,
    pub code_challenge_method: Option<String>,
    pub nonce: Option<String>,
    pub prompt: Option<String>,
    pub login_hint: Option<String>,
}

/// What the authorization endpoint answers.
pub enum Authorized {
    /// Back to the client (with a code, or an error).
    Redirect(String),
    /// The consent page for request `id`.
    Consent {
        id: String,
        client_name: String,
        scope: String,
        users: Vec<TestUserRecord>,
    },
    /// Nowhere safe to redirect to: shown to the user (400).
    Refused(String),
}

fn redirect(uri: &str, params: &[(&str, &str)]) -> Authorized {
    let mut url = match reqwest::Url::parse(uri) {
        Ok(url) => url,
        Err(_) => return Authorized::Refused("the redirect URI is not a URL".to_owned()),
    };
    {
        let mut query = url.query_pairs_mut();
        for (name, value) in params {
            query.append_pair(name, value);
        }
    }
    Authorized::Redirect(url.to_string())
}

fn redirect_error(uri: &str, state: Option<&str>, error: &str, description: &str) -> Authorized {
    let mut params = vec![("error", error), ("error_description", description)];
    if let Some(state) = state {
        params.push(("state", state));
    }
    redirect(uri, &params)
}

/// The authorization endpoint: validates the request, then either asks
/// for consent (`prompt=consent` or `login`) or consents at once for the
/// `login_hint` user (else the first).
pub async fn authorize(
    state: &AppState,
    sandbox: &LiveSandbox,
    request: AuthorizeRequest,
    scenario: Option<&str>,
) -> ServiceResult<Authorized> {
    let Some(client_id) = request.client_id.as_deref() else {
        return Ok(Authorized::Refused("client_id is required".to_owned()));
    };
    let Some(client) = state.store.get_client(&sandbox.id, client_id).await? else {
        return Ok(Authorized::Refused(format!(
            "client {client_id:?} is not registered in this sandbox"
        )));
    };
    let redirect_uri = match request.redirect_uri.as_deref() {
        Some(uri) if client.redirect_uris.iter().any(|r| r == uri) => uri.to_owned(),
        Some(uri) => {
            return Ok(Authorized::Refused(format!(
                "redirect_uri {uri:?} is not registered for this client"
            )));
        }
        None if client.redirect_uris.len() == 1 => client.redirect_uris[0].clone(),
        None => {
            return Ok(Authorized::Refused(
                "redirect_uri is required (the client registered several, or none)".to_owned(),
            ));
        }
    };
    let back = request.state.as_deref();
    let fail = |error: &str, description: &str| {
        Ok(redirect_error(&redirect_uri, back, error, description))
    };
    if request.response_type.as_deref() != Some("code") {
        return fail(
            "unsupported_response_type",
            "only response_type=code is supported",
        );
    }
    match (
        request.code_challenge.as_deref(),
        request.code_challenge_method.as_deref(),
    ) {
        (None, _) => return fail("invalid_request", "code_challenge is required (PKCE)"),
        (Some(_), Some("S256")) => {}
        (Some(_), Some("plain") | None) => {
            return fail(
                "invalid_request",
                "code_challenge_method must be S256; plain is refused",
            );
        }
        (Some(_), Some(_)) => {
            return fail("invalid_request", "code_challenge_method must be S256");
        }
    }
    let challenge = request.code_challenge.clone().unwrap_or_default();
    if challenge.len() != 43 || B64.decode(&challenge).is_err() {
        return fail(
            "invalid_request",
            "code_challenge must be a base64url SHA-256 digest (43 characters)",
        );
    }
    let scope = match granted_scopes(&client, request.scope.as_deref()) {
        Ok(scope) => scope,
        Err(error) => return fail(error.error, &error.description),
    };
    if scenario == Some("oauth.consent_denied") {
        return fail(
            "access_denied",
            "the user denied consent (scenario oauth.consent_denied)",
        );
    }
    let pending = PendingConsent {
        sandbox: sandbox.id.clone(),
        client_id: client.id.clone(),
        redirect_uri: redirect_uri.clone(),
        code_challenge: challenge,
        scope: scope.clone(),
        state: request.state.clone(),
        nonce: request.nonce.clone(),
        expires_at_ms: now_ms() + CONSENT_MS,
    };
    let users = users(state, sandbox).await?;
    let prompt = request.prompt.as_deref().unwrap_or("");
    let asks = prompt
        .split_whitespace()
        .any(|p| p == "consent" || p == "login" || p == "select_account");
    if asks {
        let Some(id) = state.oauth.ask_consent(pending, now_ms()) else {
            return fail("temporarily_unavailable", BUSY);
        };
        return Ok(Authorized::Consent {
            id,
            client_name: client.name,
            scope,
            users,
        });
    }
    let user = match request.login_hint.as_deref() {
        Some(hint) => users
            .iter()
            .find(|u| u.sub == hint || u.claims.get("email").and_then(Value::as_str) == Some(hint)),
        None => users.first(),
    };
    let Some(user) = user else {
        return fail(
            "login_required",
            "login_hint names no test user of this sandbox",
        );
    };
    Ok(grant_code(state, pending, &user.sub))
}

/// Why an authorization request is turned away when memory is full.
const BUSY: &str = "too many authorization requests are waiting; try again in a minute";

fn grant_code(state: &AppState, pending: PendingConsent, sub: &str) -> Authorized {
    let now = now_ms();
    let issued = state.oauth.issue_code(
        PendingCode {
            sandbox: pending.sandbox,
            client_id: pending.client_id,
            redirect_uri: pending.redirect_uri.clone(),
            code_challenge: pending.code_challenge,
            scope: pending.scope,
            sub: sub.to_owned(),
            nonce: pending.nonce,
            expires_at_ms: now + CODE_MS,
            issued: None,
        },
        now,
    );
    let Some(code) = issued else {
        return redirect_error(
            &pending.redirect_uri,
            pending.state.as_deref(),
            "temporarily_unavailable",
            BUSY,
        );
    };
    let mut params = vec![("code", code.as_str())];
    if let Some(state) = pending.state.as_deref() {
        params.push(("state", state));
    }
    redirect(&pending.redirect_uri, &params)
}

/// The consent page's answer: approved for `sub`, or denied.
pub async fn consent(
    state: &AppState,
    sandbox: &LiveSandbox,
    id: &str,
    approved_for: Option<&str>,
) -> ServiceResult<Authorized> {
    let Some(pending) = state
        .oauth
        .answer_consent(id)
        .filter(|p| p.sandbox == sandbox.id && p.expires_at_ms > now_ms())
    else {
        return Ok(Authorized::Refused(
            "this consent request expired or was already answered; start again from the app"
                .to_owned(),
        ));
    };
    let Some(sub) = approved_for else {
        return Ok(redirect_error(
            &pending.redirect_uri,
            pending.state.as_deref(),
            "access_denied",
            "the user denied consent",
        ));
    };
    let known = users(state, sandbox).await?.iter().any(|u| u.sub == sub);
    if !known {
        return Ok(redirect_error(
            &pending.redirect_uri,
            pending.state.as_deref(),
            "access_denied",
            "no such test user",
        ));
    }
    Ok(grant_code(state, pending, sub))
}

/// Revocation (RFC 7009): a refresh token ends with its whole grant; an
/// access token of this sandbox and client stops verifying. Tokens that
/// are unknown, or another client's, are left alone: the answer is the
/// same either way.
pub async fn revoke(
    state: &AppState,
    sandbox: &LiveSandbox,
    auth: ClientAuth,
    token: &str,
) -> OAuthResult<()> {
    let client = authenticate_client(state, sandbox, &auth).await?;
    let revoked = state
        .store
        .revoke_refresh_token(&sandbox.id, &client.id, &hash_secret(token))
        .await
        .map_err(|e| OAuthError::server(e.into()))?;
    if revoked {
        return Ok(());
    }
    let keys = verifying_keys(state, &sandbox.id)
        .await
        .map_err(OAuthError::server)?;
    if let Ok(claims) = keys.verify(token, &issuer(state, &sandbox.id), &sandbox.id)
        && claims.client_id == client.id
    {
        state.oauth.revoke(&claims.jti);
    }
    Ok(())
}

/// The verdict on an access token sent to sandbox `sandbox`.
pub async fn verify(
    state: &AppState,
    sandbox: &LiveSandbox,
    token: &str,
) -> Result<Verified, String> {
    let now = now_s();
    if let Some(verified) = state.oauth.verified(token, now) {
        return if verified.sandbox == sandbox.id {
            Ok(verified)
        } else {
            Err("its audience is not this sandbox (a token of another sandbox?)".to_owned())
        };
    }
    let keys = verifying_keys(state, &sandbox.id)
        .await
        .map_err(|_| "the sandbox's keys could not be loaded".to_owned())?;
    let claims = keys.verify(token, &issuer(state, &sandbox.id), &sandbox.id)?;
    if state.oauth.is_revoked(&claims.jti) {
        return Err("it was revoked".to_owned());
    }
    let verified = Verified::of(&sandbox.id, &claims);
    state.oauth.remember(token, verified.clone(), now);
    Ok(verified)
}

/// The userinfo endpoint's claims for an access token with `openid`.
pub async fn userinfo(
    state: &AppState,
    sandbox: &LiveSandbox,
    token: &str,
) -> Result<Map<String, Value>, String> {
    let verified = verify(state, sandbox, token).await?;
    if !verified.scopes.iter().any(|s| s == "openid") {
        return Err("insufficient_scope".to_owned());
    }
    let user = users(state, sandbox)
        .await
        .map_err(|e| e.to_string())?
        .into_iter()
        .find(|u| u.sub == verified.sub);
    let mut out = user.map(|u| u.claims).unwrap_or_default();
    out.insert("sub".into(), verified.sub.into());
    Ok(out)
}
