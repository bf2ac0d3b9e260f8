//! Developer accounts: sign-up, sign-in, browser sessions with CSRF,
//! personal access tokens, invitations, roles — and no secret stored or
//! answered in clear.

use reqwest::{Method, StatusCode, header};
use serde_json::{Value, json};

use crate::helpers::{TestApp, send, spawn_app, spawn_app_with};

pub const PASSWORD: &str = "correct horse battery";

/// A signed-up developer with a personal access token.
pub struct Developer {
    pub id: String,
    pub email: String,
    pub token: String,
    pub token_id: String,
}

/// A browser session: its cookie and CSRF token.
pub struct Browser {
    pub cookie: String,
    pub csrf: String,
}

impl TestApp {
    pub fn api(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, format!("{}/api/v1{path}", self.url))
    }

    pub fn as_developer(
        &self,
        developer: &Developer,
        method: Method,
        path: &str,
    ) -> reqwest::RequestBuilder {
        self.api(method, path).bearer_auth(&developer.token)
    }

    pub async fn sign_in(
        &self,
        email: &str,
        password: &str,
    ) -> (StatusCode, Option<Browser>, Value) {
        let response = self
            .api(Method::POST, "/auth/login")
            .json(&json!({"email": email, "password": password}))
            .send()
            .await
            .unwrap();
        let status = response.status();
        let cookie = response
            .headers()
            .get(header::SET_COOKIE)
            .map(|v| v.to_str().unwrap().to_owned());
        let body: Value = response.json().await.unwrap();
        let browser = cookie.map(|cookie| Browser {
            cookie: cookie.split(';').next().unwrap().to_owned(),
            csrf: body["csrf_token"].as_str().unwrap_or_default().to_owned(),
        });
        (status, browser, body)
    }

    /// Signs `email` up, signs in, and makes a personal access token with
    /// the session (as the portal and `sbx login` do).
    pub async fn developer(&self, email: &str) -> Developer {
        let (status, account) = send(
            self.api(Method::POST, "/accounts")
                .json(&json!({"email": email, "password": PASSWORD})),
        )
        .await;
        assert_eq!(status, 201, "{account}");
        let (status, browser, body) = self.sign_in(email, PASSWORD).await;
        assert_eq!(status, 200, "{body}");
        let browser = browser.expect("a session cookie");
        let (status, made) = send(
            self.api(Method::POST, "/me/tokens")
                .header(header::COOKIE, &browser.cookie)
                .header("x-csrf-token", &browser.csrf)
                .json(&json!({"name": "tests"})),
        )
        .await;
        assert_eq!(status, 201, "{made}");
        Developer {
            id: account["id"].as_str().unwrap().to_owned(),
            email: email.to_owned(),
            token: made["token"].as_str().unwrap().to_owned(),
            token_id: made["id"].as_str().unwrap().to_owned(),
        }
    }
}

/// Every file of the data dir, read as bytes and searched for `secret`.
fn stored_anywhere(app: &TestApp, secret: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(app.data_dir.path()).unwrap() {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap_or_default();
        if bytes
            .windows(secret.len())
            .any(|window| window == secret.as_bytes())
        {
            found.push(path.display().to_string());
        }
    }
    found
}

#[tokio::test]
async fn a_developer_signs_up_signs_in_and_works_with_a_session_and_a_token() {
    let app = spawn_app().await;
    let (status, account) = send(
        app.api(Method::POST, "/accounts")
            .json(&json!({"email": " Ada@Example.com ", "password": PASSWORD})),
    )
    .await;
    assert_eq!(status, 201, "{account}");
    assert_eq!(account["email"], "ada@example.com");
    assert_eq!(account["role"], "developer");
    assert!(account.get("password").is_none() && account.get("password_hash").is_none());

    // Bad input: each refused with the member named, nothing made.
    for (body, pointer) in [
        (
            json!({"email": "not an email", "password": PASSWORD}),
            "/email",
        ),
        (
            json!({"email": "b@example.com", "password": "short"}),
            "/password",
        ),
        (
            json!({"email": "b@example.com", "password": "b@example.com"}),
            "/password",
        ),
        (
            json!({"email": "b@example.com", "password": "x".repeat(257)}),
            "/password",
        ),
    ] {
        let (status, problem) = send(app.api(Method::POST, "/accounts").json(&body)).await;
        assert_eq!(status, 422, "{problem}");
        assert_eq!(problem["errors"][0]["pointer"], pointer);
    }
    let (status, problem) = send(
        app.api(Method::POST, "/accounts")
            .json(&json!({"email": "ada@example.com", "password": PASSWORD, "role": "admin"})),
    )
    .await;
    assert_eq!(status, 403, "a developer cannot choose a role: {problem}");
    let (status, problem) = send(
        app.api(Method::POST, "/accounts")
            .json(&json!({"email": "ADA@example.com", "password": PASSWORD})),
    )
    .await;
    assert_eq!(status, 409, "{problem}");

    let (status, _, problem) = app.sign_in("ada@example.com", "wrong password").await;
    assert_eq!(status, 401);
    assert_eq!(problem["type"], "urn:sbx:problem:unauthorized");
    let (status, unknown_email, _) = app.sign_in("nobody@example.com", PASSWORD).await;
    assert_eq!(status, 401);
    assert!(unknown_email.is_none());

    let response = app
        .api(Method::POST, "/auth/login")
        .json(&json!({"email": "ada@example.com", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let set_cookie = response.headers()[header::SET_COOKIE]
        .to_str()
        .unwrap()
        .to_owned();
    for attribute in ["HttpOnly", "SameSite=Lax", "Path=/", "Max-Age=43200"] {
        assert!(set_cookie.contains(attribute), "{set_cookie}");
    }
    let signed_in: Value = response.json().await.unwrap();
    let cookie = set_cookie.split(';').next().unwrap().to_owned();
    let session_token = cookie.split_once('=').unwrap().1.to_owned();
    let csrf = signed_in["csrf_token"].as_str().unwrap().to_owned();
    assert!(!signed_in.to_string().contains(&session_token));

    let (status, me) = send(app.api(Method::GET, "/me").header(header::COOKIE, &cookie)).await;
    assert_eq!(status, 200);
    assert_eq!(me["account"]["email"], "ada@example.com");
    assert_eq!(me["role"], "developer");

    // A change by cookie needs the CSRF token, from no other origin.
    let token_request = || {
        app.api(Method::POST, "/me/tokens")
            .header(header::COOKIE, &cookie)
            .json(&json!({"name": "laptop", "expires_in_days": 30}))
    };
    let (status, problem) = send(token_request()).await;
    assert_eq!(status, 403);
    assert_eq!(problem["type"], "urn:sbx:problem:csrf");
    let (status, _) = send(token_request().header("x-csrf-token", "0".repeat(32))).await;
    assert_eq!(status, 403);
    let (status, _) = send(
        token_request()
            .header("x-csrf-token", &csrf)
            .header(header::ORIGIN, "https://evil.example"),
    )
    .await;
    assert_eq!(status, 403);
    let (status, made) = send(token_request().header("x-csrf-token", &csrf)).await;
    assert_eq!(status, 201, "{made}");
    let token = made["token"].as_str().unwrap().to_owned();
    assert!(token.starts_with("sbx_pat_") && token.len() > 40);
    assert!(made["expires_at"].is_string());

    // The token works as a bearer token and is listed by prefix only.
    let (status, listed) = send(app.api(Method::GET, "/me/tokens").bearer_auth(&token)).await;
    assert_eq!(status, 200);
    let item = &listed["items"][0];
    assert_eq!(item["name"], "laptop");
    assert!(token.starts_with(item["prefix"].as_str().unwrap()));
    assert!(item.get("token").is_none());
    assert!(!listed.to_string().contains(&token));
    assert!(item["last_used_at"].is_string(), "{item}");

    // Nothing secret is stored in clear.
    for secret in [PASSWORD, token.as_str(), session_token.as_str()] {
        assert_eq!(stored_anywhere(&app, secret), Vec::<String>::new());
    }

    // Revoked, the token stops at once; signed out, the session does.
    let revoke = || {
        app.api(
            Method::DELETE,
            &format!("/me/tokens/{}", made["id"].as_str().unwrap()),
        )
        .header(header::COOKIE, &cookie)
        .header("x-csrf-token", &csrf)
    };
    assert_eq!(send(revoke()).await.0, 204);
    let (status, problem) = send(app.api(Method::GET, "/me").bearer_auth(&token)).await;
    assert_eq!(status, 401, "{problem}");
    assert_eq!(send(revoke()).await.0, 404, "revoked already");
    let response = app
        .api(Method::POST, "/auth/logout")
        .header(header::COOKIE, &cookie)
        .header("x-csrf-token", &csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    assert!(
        response.headers()[header::SET_COOKIE]
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
    let (status, problem) = send(app.api(Method::GET, "/me").header(header::COOKIE, &cookie)).await;
    assert_eq!(status, 401, "{problem}");
}

#[tokio::test]
async fn failed_sign_ins_to_an_account_are_limited() {
    let app = spawn_app().await;
    app.developer("grace@example.com").await;
    let mut statuses = Vec::new();
    for _ in 0..7 {
        statuses.push(
            app.sign_in("grace@example.com", "wrong password")
                .await
                .0
                .as_u16(),
        );
    }
    assert_eq!(statuses, [401, 401, 401, 401, 401, 429, 429]);
    let response = app
        .api(Method::POST, "/auth/login")
        .json(&json!({"email": "grace@example.com", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 429, "the right password waits too");
    let retry_after = crate::helpers::retry_after(&response);
    assert!((1..=60).contains(&retry_after));
    let (status, _, _) = app.sign_in("other@example.com", "wrong password").await;
    assert_eq!(status, 401, "other accounts are not affected");
}

#[tokio::test]
async fn sign_up_by_invitation_and_closed_sign_up() {
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_app_with(dir, |config| {
        config.accounts.signup = sbx_server::SignupMode::Invite;
    })
    .await;
    let (status, problem) = send(
        app.api(Method::POST, "/accounts")
            .json(&json!({"email": "lin@example.com", "password": PASSWORD})),
    )
    .await;
    assert_eq!(status, 403, "{problem}");
    assert!(problem["detail"].as_str().unwrap().contains("invitation"));
    let (status, invitation) = send(
        app.admin(Method::POST, "/invitations")
            .json(&json!({"email": "Lin@example.com", "role": "admin"})),
    )
    .await;
    assert_eq!(status, 201, "{invitation}");
    let code = invitation["code"].as_str().unwrap().to_owned();
    let (status, _) =
        send(app.api(Method::POST, "/accounts").json(
            &json!({"email": "someone@example.com", "password": PASSWORD, "invitation": code}),
        ))
        .await;
    assert_eq!(status, 403, "an invitation is for its email only");
    let (status, account) = send(
        app.api(Method::POST, "/accounts")
            .json(&json!({"email": "lin@example.com", "password": PASSWORD, "invitation": code})),
    )
    .await;
    assert_eq!(status, 201, "{account}");
    assert_eq!(account["role"], "admin", "the invitation's role");
    let (status, _) = send(
        app.api(Method::POST, "/accounts")
            .json(&json!({"email": "lin@example.com", "password": PASSWORD, "invitation": code})),
    )
    .await;
    assert_eq!(status, 403, "an invitation is used once");
    assert!(stored_anywhere(&app, &code).is_empty());

    let dir = tempfile::tempdir().unwrap();
    let closed = spawn_app_with(dir, |config| {
        config.accounts.signup = sbx_server::SignupMode::Closed;
    })
    .await;
    let (status, _) = send(
        closed
            .api(Method::POST, "/accounts")
            .json(&json!({"email": "mo@example.com", "password": PASSWORD})),
    )
    .await;
    assert_eq!(status, 403);
    let (status, account) = send(
        closed
            .admin(Method::POST, "/accounts")
            .json(&json!({"email": "mo@example.com", "password": PASSWORD, "role": "developer"})),
    )
    .await;
    assert_eq!(status, 201, "admins create accounts: {account}");
}

#[tokio::test]
async fn admins_manage_accounts_and_a_disabled_account_stops_at_once() {
    let app = spawn_app().await;
    let dev = app.developer("kay@example.com").await;
    for (method, path, body) in [
        (Method::GET, "/accounts".to_owned(), json!({})),
        (
            Method::PATCH,
            format!("/accounts/{}", dev.id),
            json!({"role": "admin"}),
        ),
        (
            Method::POST,
            "/invitations".to_owned(),
            json!({"email": "x@example.com"}),
        ),
        (
            Method::POST,
            "/projects".to_owned(),
            json!({"name": "x", "spec": crate::helpers::PETSTORE}),
        ),
        (Method::GET, "/projects/none/files".to_owned(), json!({})),
    ] {
        let (status, problem) =
            send(app.as_developer(&dev, method.clone(), &path).json(&body)).await;
        assert_eq!(status, 403, "{method} {path}: {problem}");
        assert_eq!(problem["type"], "urn:sbx:problem:forbidden");
    }
    let (status, listed) = send(app.admin(Method::GET, "/accounts")).await;
    assert_eq!(status, 200);
    assert_eq!(listed["items"][0]["email"], "kay@example.com");
    let (status, own) =
        send(app.as_developer(&dev, Method::GET, &format!("/accounts/{}", dev.id))).await;
    assert_eq!(
        (status, own["email"].clone()),
        (200, json!("kay@example.com"))
    );

    let (status, changed) = send(
        app.admin(Method::PATCH, &format!("/accounts/{}", dev.id))
            .json(&json!({"disabled": true})),
    )
    .await;
    assert_eq!(status, 200, "{changed}");
    assert!(changed["disabled_at"].is_string());
    let (status, _) = send(app.as_developer(&dev, Method::GET, "/me")).await;
    assert_eq!(status, 401, "its token stops");
    let (status, _, problem) = app.sign_in(&dev.email, PASSWORD).await;
    assert_eq!(status, 401);
    assert!(problem["detail"].as_str().unwrap().contains("disabled"));

    let (status, _) = send(
        app.admin(Method::PATCH, &format!("/accounts/{}", dev.id))
            .json(&json!({"disabled": false, "role": "admin"})),
    )
    .await;
    assert_eq!(status, 200);
    let (status, listed) = send(app.as_developer(&dev, Method::GET, "/accounts")).await;
    assert_eq!(status, 200, "an admin now: {listed}");
}
