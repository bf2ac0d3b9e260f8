//! Each sandbox's OAuth 2 / OpenID Connect test provider, driven by
//! libraries nobody here wrote (authlib as the client, PyJWT verifying
//! against the published JWKS, `tests/oauth/flows.py`), and the data
//! plane enforcing its tokens: signature, issuer, audience, expiry and
//! scopes, with RFC 6750 challenges.

use reqwest::{Method, redirect::Policy};
use serde_json::{Value, json};

use crate::helpers::{Sandbox, TestApp, send, spawn_app};

const STORE: &str = r#"
openapi: 3.0.3
info: {title: Store, version: "1"}
servers: [{url: /v1}]
components:
  securitySchemes:
    oauth:
      type: oauth2
      flows:
        clientCredentials:
          tokenUrl: /oauth/token
          scopes: {"things:read": read, "things:write": write}
        authorizationCode:
          authorizationUrl: /oauth/authorize
          tokenUrl: /oauth/token
          scopes: {"things:read": read, "things:write": write}
paths:
  /things:
    get:
      operationId: listThings
      security: [{oauth: ["things:read"]}]
      responses: {"200": {description: ok, content: {application/json: {schema: {type: array, items: {type: string}}}}}}
    post:
      operationId: createThing
      security: [{oauth: ["things:write"]}]
      responses: {"201": {description: made, content: {application/json: {schema: {type: object}}}}}
"#;

const REDIRECT: &str = "http://127.0.0.1:9/callback";

async fn store(app: &TestApp) -> (Sandbox, Sandbox) {
    app.import_ok("store", STORE).await;
    let a = app.create_sandbox(json!({"project": "store"})).await;
    let b = app.create_sandbox(json!({"project": "store"})).await;
    (a, b)
}

fn issuer(app: &TestApp, sandbox: &Sandbox) -> String {
    format!("{}/sbx/{}/__sbx/oauth", app.url, sandbox.id)
}

async fn client(app: &TestApp, sandbox: &Sandbox, body: Value) -> Value {
    let (status, made) = send(
        app.admin(
            Method::POST,
            &format!("/sandboxes/{}/oauth/clients", sandbox.id),
        )
        .json(&body),
    )
    .await;
    assert_eq!(status, 201, "{made}");
    made
}

async fn client_credentials(
    app: &TestApp,
    sandbox: &Sandbox,
    client: &Value,
    scope: &str,
) -> String {
    let (status, tokens) = send(
        app.client
            .post(format!("{}/token", issuer(app, sandbox)))
            .basic_auth(
                client["client_id"].as_str().unwrap(),
                client["client_secret"].as_str(),
            )
            .form(&[("grant_type", "client_credentials"), ("scope", scope)]),
    )
    .await;
    assert_eq!(status, 200, "{tokens}");
    tokens["access_token"].as_str().unwrap().to_owned()
}

/// The status and `WWW-Authenticate` of GET /things with `token`.
async fn read_with(app: &TestApp, sandbox: &Sandbox, token: &str) -> (u16, String) {
    let response = app
        .client
        .get(sandbox.url("/things"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let challenge = response
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (response.status().as_u16(), challenge)
}

#[tokio::test]
async fn authlib_completes_both_grants_and_pyjwt_verifies_the_tokens() {
    let app = spawn_app().await;
    let (a, b) = store(&app).await;
    assert_eq!(a.body["oauth_issuer"], issuer(&app, &a));
    let confidential = client(
        &app,
        &a,
        json!({"name": "backend", "scopes": ["things:read", "things:write"]}),
    )
    .await;
    assert!(
        confidential["client_secret"]
            .as_str()
            .unwrap()
            .starts_with("cs_test_")
    );
    let public = client(
        &app,
        &a,
        json!({"name": "spa", "kind": "public", "redirect_uris": [REDIRECT]}),
    )
    .await;
    assert!(public.get("client_secret").is_none(), "{public}");
    let config = json!({
        "issuer": issuer(&app, &a),
        "sandbox": a.id,
        "api": a.base_url,
        "confidential": confidential,
        "public": public,
        "redirect": REDIRECT,
    });
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/oauth/flows.py");
    let mut command = std::process::Command::new("python3");
    command.arg(script).arg(config.to_string());
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .unwrap()
        .expect("python3 runs; .ci/run installs authlib and PyJWT");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let tokens: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    let user_token = tokens["user_token"].as_str().unwrap();

    // A token of sandbox A never works in sandbox B.
    let (status, challenge) = read_with(&app, &b, user_token).await;
    assert_eq!(status, 401, "{challenge}");
    assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");

    // The list endpoint of the client API never shows a secret.
    let (_, listed) =
        send(app.admin(Method::GET, &format!("/sandboxes/{}/oauth/clients", a.id))).await;
    assert!(!listed.to_string().contains("cs_test_"), "{listed}");
}

#[tokio::test]
async fn forged_expired_and_foreign_tokens_get_rfc_6750_challenges() {
    let app = spawn_app().await;
    let (a, _) = store(&app).await;
    let backend = client(&app, &a, json!({"name": "backend"})).await;
    let token = client_credentials(&app, &a, &backend, "things:read").await;
    assert_eq!(read_with(&app, &a, &token).await.0, 200);

    // A tampered signature.
    let mut forged = token.clone();
    let last = forged.pop().unwrap();
    forged.push(if last == 'A' { 'B' } else { 'A' });
    let (status, challenge) = read_with(&app, &a, &forged).await;
    assert_eq!(status, 401);
    assert!(challenge.contains("invalid_token"), "{challenge}");

    // alg "none" with the same claims.
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let claims = token.split('.').nth(1).unwrap();
    let none = format!(
        "{}.{claims}.",
        b64.encode(br#"{"alg":"none","typ":"at+jwt"}"#)
    );
    let (status, challenge) = read_with(&app, &a, &none).await;
    assert_eq!(status, 401, "{challenge}");

    // A sandbox key is not an access token.
    let (status, challenge) = read_with(&app, &a, &a.api_key).await;
    assert_eq!(status, 401, "{challenge}");
    assert!(challenge.contains("invalid_token"), "{challenge}");

    // No token at all: a plain challenge.
    let response = app.client.get(a.url("/things")).send().await.unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(
        response.headers()["www-authenticate"],
        "Bearer realm=\"sandbox\""
    );

    // Scopes: reading only.
    let response = app
        .client
        .post(a.url("/things"))
        .bearer_auth(&token)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    let challenge = response.headers()["www-authenticate"].to_str().unwrap();
    assert!(
        challenge.contains("error=\"insufficient_scope\"")
            && challenge.contains("scope=\"things:write\""),
        "{challenge}"
    );

    // Rotation: the old key still verifies its tokens; new ones use the new key.
    let (status, rotated) = send(app.admin(
        Method::POST,
        &format!("/sandboxes/{}/oauth/keys/rotate", a.id),
    ))
    .await;
    assert_eq!(status, 201, "{rotated}");
    let jwks: Value = app
        .client
        .get(format!("{}/jwks.json", issuer(&app, &a)))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 2, "{jwks}");
    assert_eq!(
        read_with(&app, &a, &token).await.0,
        200,
        "signed by the retired key"
    );
    let fresh = client_credentials(&app, &a, &backend, "things:read").await;
    let header: Value =
        serde_json::from_slice(&b64.decode(fresh.split('.').next().unwrap()).unwrap()).unwrap();
    assert_eq!(header["kid"], rotated["kid"]);
    assert_eq!(read_with(&app, &a, &fresh).await.0, 200);

    // Wrong client secret: invalid_client, 401.
    let (status, error) = send(
        app.client
            .post(format!("{}/token", issuer(&app, &a)))
            .basic_auth(
                backend["client_id"].as_str().unwrap(),
                Some("cs_test_wrong"),
            )
            .form(&[("grant_type", "client_credentials")]),
    )
    .await;
    assert_eq!(
        (status, error["error"].as_str()),
        (401, Some("invalid_client"))
    );
    // A scope it may not have.
    let limited = client(
        &app,
        &a,
        json!({"name": "limited", "scopes": ["things:read"]}),
    )
    .await;
    let (status, error) = send(
        app.client
            .post(format!("{}/token", issuer(&app, &a)))
            .basic_auth(
                limited["client_id"].as_str().unwrap(),
                limited["client_secret"].as_str(),
            )
            .form(&[
                ("grant_type", "client_credentials"),
                ("scope", "things:write"),
            ]),
    )
    .await;
    assert_eq!(
        (status, error["error"].as_str()),
        (400, Some("invalid_scope"))
    );
}

#[tokio::test]
async fn the_authorization_endpoint_refuses_what_rfc_6749_and_7636_refuse() {
    let app = spawn_app().await;
    let (a, _) = store(&app).await;
    let spa = client(
        &app,
        &a,
        json!({"name": "spa", "kind": "public", "redirect_uris": [REDIRECT]}),
    )
    .await;
    let no_redirects = reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .unwrap();
    let authorize = |params: Vec<(&str, &str)>| {
        let mut all = vec![
            ("response_type", "code"),
            ("client_id", spa["client_id"].as_str().unwrap()),
            ("redirect_uri", REDIRECT),
            ("state", "xyz"),
            (
                "code_challenge",
                "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
            ),
            ("code_challenge_method", "S256"),
        ];
        for (name, value) in params {
            all.retain(|(n, _)| *n != name);
            if !value.is_empty() {
                all.push((name, value));
            }
        }
        no_redirects
            .get(format!("{}/authorize", issuer(&app, &a)))
            .query(&all)
    };
    let location =
        |response: &reqwest::Response| response.headers()["location"].to_str().unwrap().to_owned();

    let ok = authorize(vec![]).send().await.unwrap();
    assert_eq!(ok.status(), 302);
    assert!(
        location(&ok).starts_with(&format!("{REDIRECT}?code="))
            && location(&ok).ends_with("state=xyz")
    );

    let plain = authorize(vec![("code_challenge_method", "plain")])
        .send()
        .await
        .unwrap();
    assert!(
        location(&plain).contains("error=invalid_request"),
        "{}",
        location(&plain)
    );
    let missing = authorize(vec![("code_challenge", "")])
        .send()
        .await
        .unwrap();
    assert!(location(&missing).contains("error=invalid_request"));

    // An unregistered redirect URI is never redirected to.
    let elsewhere = authorize(vec![("redirect_uri", "https://evil.example/cb")])
        .send()
        .await
        .unwrap();
    assert_eq!(elsewhere.status(), 400);
    assert!(elsewhere.headers().get("location").is_none());
    let unknown = authorize(vec![("client_id", "cli_nobody")])
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 400);

    // Scripted: the user denies consent.
    let denied = authorize(vec![("sandbox_scenario", "oauth.consent_denied")])
        .send()
        .await
        .unwrap();
    assert!(
        location(&denied).contains("error=access_denied")
            && location(&denied).contains("state=xyz")
    );

    // The consent page, then the user's answer.
    let page = authorize(vec![("prompt", "consent")]).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert_eq!(page.headers()["x-frame-options"], "DENY");
    let html = page.text().await.unwrap();
    assert!(
        html.contains("TEST ONLY") && html.contains("user_test"),
        "{html}"
    );
    let consent = html
        .split("name=\"consent\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap()
        .to_owned();
    let answer = |decision: &'static str, consent: String| {
        no_redirects
            .post(format!("{}/authorize", issuer(&app, &a)))
            .form(&[
                ("consent", consent),
                ("decision", decision.to_owned()),
                ("sub", "user_test".to_owned()),
            ])
    };
    let approved = answer("approve", consent.clone()).send().await.unwrap();
    assert_eq!(approved.status(), 302);
    assert!(
        location(&approved).contains("code="),
        "{}",
        location(&approved)
    );
    let again = answer("approve", consent).send().await.unwrap();
    assert_eq!(again.status(), 400, "a consent is answered once");

    // Scripted: an expired code at the token endpoint.
    let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    let code = location(&ok)
        .split("code=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap()
        .to_owned();
    let (status, error) = send(
        app.client
            .post(format!("{}/token", issuer(&app, &a)))
            .header("X-Sandbox-Scenario", "oauth.code_expired")
            .form(&[
                ("grant_type", "authorization_code"),
                ("client_id", spa["client_id"].as_str().unwrap()),
                ("code", &code),
                ("redirect_uri", REDIRECT),
                ("code_verifier", verifier),
            ]),
    )
    .await;
    assert_eq!(
        (status, error["error"].as_str()),
        (400, Some("invalid_grant")),
        "{error}"
    );
    assert!(
        error["error_description"]
            .as_str()
            .unwrap()
            .contains("expired")
    );
}
