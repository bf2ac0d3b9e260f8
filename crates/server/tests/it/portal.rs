//! The developer portal over HTTP: its forms post to the same services as
//! the control plane, as the signed-in developer; bad input comes back
//! inline with what was typed; forms without the session's CSRF token and
//! other developers' sandboxes are refused. (`portal_browser.rs` drives the
//! same flows in a real browser.)

use std::time::Duration;

use reqwest::{Client, Method, StatusCode, redirect::Policy};
use serde_json::{Value, json};

use crate::helpers::{TestApp, eventually, send, spawn_app};

/// Pages stay light enough for a phone on a slow network.
const MAX_PAGE_BYTES: usize = 200 * 1024;

/// A browser's view of the portal: its session cookie and the CSRF token
/// its pages carry. Redirects are not followed, so each is checked.
struct Browser {
    url: String,
    client: Client,
    cookie: String,
    csrf: String,
}

/// The value of the first `name="{name}" value="…"` of a page.
fn hidden(page: &str, name: &str) -> Option<String> {
    let marker = format!("name=\"{name}\" value=\"");
    let start = page.find(&marker)? + marker.len();
    let end = page[start..].find('"')?;
    Some(page[start..start + end].to_owned())
}

async fn sign_up(app: &TestApp, email: &str) -> Browser {
    let client = Client::builder().redirect(Policy::none()).build().unwrap();
    let response = client
        .post(at(app, "/portal/signup"))
        .form(&[("email", email), ("password", "correct horse battery")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(response.headers()["location"], "/");
    let cookie = response.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let mut browser = Browser {
        url: app.url.clone(),
        client,
        cookie,
        csrf: String::new(),
    };
    let (status, page) = browser.get("/").await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains(email), "the page names who is signed in");
    browser.csrf = hidden(&page, "csrf").expect("the dashboard's forms carry the CSRF token");
    browser
}

impl Browser {
    async fn get(&self, path: &str) -> (u16, String) {
        let response = self
            .client
            .get(format!("{}{path}", self.url))
            .header("cookie", &self.cookie)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let page = response.text().await.unwrap();
        assert!(page.len() < MAX_PAGE_BYTES, "{path}: {} bytes", page.len());
        (status, page)
    }

    /// Posts a form with the session's CSRF token; the status and either
    /// the page or where it redirects.
    async fn post(&self, path: &str, fields: &[(&str, &str)]) -> (u16, String) {
        let mut form = vec![("csrf", self.csrf.as_str())];
        form.extend_from_slice(fields);
        self.post_raw(path, &form, None).await
    }

    async fn post_raw(
        &self,
        path: &str,
        form: &[(&str, &str)],
        origin: Option<&str>,
    ) -> (u16, String) {
        let mut request = self
            .client
            .post(format!("{}{path}", self.url))
            .header("cookie", &self.cookie)
            .form(form);
        if let Some(origin) = origin {
            request = request.header("origin", origin);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        if let Some(location) = response.headers().get("location") {
            return (status, location.to_str().unwrap().to_owned());
        }
        (status, response.text().await.unwrap())
    }
}

async fn payments(app: &TestApp) {
    let project = crate::scenarios::payments_project("payments");
    let (status, body) = send(app.admin(Method::POST, "/projects").json(&project)).await;
    assert_eq!(status, 201, "{body}");
}

/// The id of the sandbox a sandbox page shows.
fn sandbox_id(page: &str) -> String {
    let start = page.find("<code>sbx-").expect("the page shows the id") + "<code>".len();
    let end = page[start..].find('<').unwrap();
    page[start..start + end].to_owned()
}

fn new_key(page: &str) -> String {
    let start =
        page.find("id=\"new-key\">").expect("the new key is shown") + "id=\"new-key\">".len();
    let end = page[start..].find('<').unwrap();
    page[start..start + end].to_owned()
}

#[tokio::test]
async fn a_developer_creates_a_sandbox_triggers_a_scenario_and_moves_the_clock() {
    let app = spawn_app().await;
    payments(&app).await;
    let ada = sign_up(&app, "ada@example.com").await;

    // A time to live that does not parse comes back beside its field, with
    // everything typed kept, and nothing is made.
    let (status, page) = ada
        .post(
            "/portal/sandboxes",
            &[
                ("project", "payments"),
                ("ttl", "7 weeks"),
                ("label", "checkout tests"),
            ],
        )
        .await;
    assert_eq!(status, 422, "{page}");
    assert!(page.contains("is not a time to live"), "{page}");
    assert!(page.contains("value=\"7 weeks\""), "the bad value is kept");
    assert!(
        page.contains("value=\"checkout tests\""),
        "the other fields are kept"
    );
    assert!(page.contains("aria-invalid=\"true\""));
    let (_, listed) = send(app.admin(Method::GET, "/sandboxes")).await;
    assert_eq!(listed["items"].as_array().unwrap().len(), 0);

    // Over the quota's longest lifetime: the service's own message, inline.
    let (status, page) = ada
        .post(
            "/portal/sandboxes",
            &[("project", "payments"), ("ttl", "9999d")],
        )
        .await;
    assert_eq!(status, 422, "{page}");
    assert!(page.contains("ttl_seconds must be between 1 and"), "{page}");

    let (status, page) = ada
        .post(
            "/portal/sandboxes",
            &[
                ("project", "payments"),
                ("ttl", "2h"),
                ("label", "checkout tests"),
            ],
        )
        .await;
    assert_eq!(status, 201, "{page}");
    assert!(page.contains("TEST ONLY"), "every sandbox page says so");
    let id = sandbox_id(&page);
    let key = new_key(&page);
    assert!(key.starts_with("sk_test_"), "{key}");

    // The key is shown once: the page, loaded again, shows it redacted.
    let (status, page) = ada.get(&format!("/portal/sandboxes/{id}")).await;
    assert_eq!(status, 200);
    assert!(!page.contains(&key));
    assert!(page.contains("checkout tests"));
    assert!(
        page.contains("card_declined"),
        "the scenario launcher lists the pack"
    );

    // The key works, the sandbox is Ada's, and its TTL is the one asked.
    let base = format!("{}/sbx/{id}/v1", app.url);
    let card = json!({"amount": 2000, "currency": "usd",
        "payment_method": {"type": "card", "number": "4242424242424242", "exp_month": 12, "exp_year": 2030}});
    let pay = || {
        app.client
            .post(format!("{base}/payments"))
            .bearer_auth(&key)
            .json(&card)
    };
    let (status, body) = send(pay()).await;
    assert_eq!(status, 201, "{body}");
    let (_, shown) = send(app.admin(Method::GET, &format!("/sandboxes/{id}"))).await;
    let lives = crate::helpers::millis(shown["expires_at"].as_str().unwrap())
        - crate::helpers::millis(shown["created_at"].as_str().unwrap());
    assert_eq!(lives, 2 * 3600 * 1000);

    // A scenario pressed answers every call of its operation that way.
    let (status, to) = ada
        .post(
            &format!("/portal/sandboxes/{id}/scenario"),
            &[("scenario", "card_declined")],
        )
        .await;
    assert_eq!(
        (status, to.as_str()),
        (
            303,
            format!("/portal/sandboxes/{id}?done=scenario-set").as_str()
        )
    );
    let (status, body) = send(pay()).await;
    assert_eq!(status, 402, "{body}");
    let (_, page) = ada
        .get(&format!("/portal/sandboxes/{id}?done=scenario-set"))
        .await;
    assert!(page.contains("Every call now answers as <strong>card_declined</strong>"));
    assert!(page.contains("Scenario set"), "the notice is shown");
    let (status, page) = ada
        .post(
            &format!("/portal/sandboxes/{id}/scenario"),
            &[("scenario", "no_such_thing")],
        )
        .await;
    assert_eq!(status, 422);
    assert!(
        page.contains("no operation of this sandbox declares a scenario"),
        "{page}"
    );
    ada.post(
        &format!("/portal/sandboxes/{id}/scenario"),
        &[("scenario", "")],
    )
    .await;
    assert_eq!(send(pay()).await.0, 201, "cleared");

    // The clock: a duration that does not parse stays in its field.
    let (status, page) = ada
        .post(
            &format!("/portal/sandboxes/{id}/clock"),
            &[("advance", "30 days")],
        )
        .await;
    assert_eq!(status, 422, "{page}");
    assert!(page.contains("value=\"30 days\""));
    let (status, _) = ada
        .post(
            &format!("/portal/sandboxes/{id}/clock"),
            &[("advance", "P30D")],
        )
        .await;
    assert_eq!(status, 303);
    let (_, clock) = send(app.admin(Method::GET, &format!("/sandboxes/{id}/clock"))).await;
    let ahead = clock["offset_ms"].as_i64().unwrap();
    assert!(
        (30 * 86_400_000..31 * 86_400_000).contains(&ahead),
        "{clock}"
    );

    // The time to live, extended from now; a bad one kept beside its field.
    let (status, page) = ada
        .post(&format!("/portal/sandboxes/{id}/ttl"), &[("ttl", "soon")])
        .await;
    assert_eq!(status, 422);
    assert!(page.contains("value=\"soon\""), "{page}");
    let (status, _) = ada
        .post(&format!("/portal/sandboxes/{id}/ttl"), &[("ttl", "3h")])
        .await;
    assert_eq!(status, 303);
    let (_, shown) = send(app.admin(Method::GET, &format!("/sandboxes/{id}"))).await;
    let left = crate::helpers::millis(shown["expires_at"].as_str().unwrap())
        - crate::helpers::millis(shown["created_at"].as_str().unwrap());
    assert!(left > 2 * 3600 * 1000 + 3_000_000, "{shown}");

    // Records seeded from the page; text that is not a JSON object is kept.
    let seed = format!("/portal/sandboxes/{id}/seed");
    let (status, page) = ada.post(&seed, &[("records", "customers: Ada")]).await;
    assert_eq!(status, 422);
    assert!(page.contains("customers: Ada"), "{page}");
    let (status, page) = ada
        .post(
            &seed,
            &[(
                "records",
                r#"{"customers": [{"name": "Ada Lovelace", "email": "ada@example.com"}]}"#,
            )],
        )
        .await;
    assert_eq!(status, 201, "{page}");
    assert!(page.contains("Loaded: customers 1."), "{page}");

    // Chaos that does not parse is refused with the parser's words.
    let (status, page) = ada
        .post(
            &format!("/portal/sandboxes/{id}/chaos"),
            &[("chaos", "latency=fast")],
        )
        .await;
    assert_eq!(status, 422, "{page}");
    assert!(page.contains("value=\"latency=fast\""));

    // The explorer lists every operation with a body to send.
    let (status, page) = ada.get(&format!("/portal/sandboxes/{id}/explorer")).await;
    assert_eq!(status, 200);
    assert!(page.contains("data-operation=\"createPayment\""));
    assert!(page.contains("data-key-in=\"bearer\""));
    assert!(page.contains("&quot;amount&quot;"), "the body is prefilled");

    // The changes are audited as Ada's, in the control plane's words.
    let (_, audit) = send(app.admin(Method::GET, "/audit")).await;
    let actions: Vec<&str> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["detail"] == "from the portal")
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    for action in [
        "POST /api/v1/sandboxes",
        "PUT /api/v1/sandboxes/{id}/scenario",
        "POST /api/v1/sandboxes/{id}/clock",
    ] {
        assert!(actions.contains(&action), "{action} in {actions:?}");
    }

    // Deleting it from the dashboard ends it.
    let (status, to) = ada
        .post(&format!("/portal/sandboxes/{id}/delete"), &[])
        .await;
    assert_eq!((status, to.as_str()), (303, "/?done=deleted"));
    assert_eq!(send(pay()).await.0, 404);
}

#[tokio::test]
async fn forms_without_the_session_token_or_from_elsewhere_change_nothing() {
    let app = spawn_app().await;
    payments(&app).await;
    let ada = sign_up(&app, "ada@example.com").await;
    let create = [("project", "payments")];
    let mut forged = vec![("csrf", "not-the-token")];
    forged.extend_from_slice(&create);
    assert_eq!(
        ada.post_raw("/portal/sandboxes", &forged, None).await.0,
        403
    );
    assert_eq!(
        ada.post_raw("/portal/sandboxes", &create, None).await.0,
        403
    );
    let mut genuine = vec![("csrf", ada.csrf.as_str())];
    genuine.extend_from_slice(&create);
    let (status, _) = ada
        .post_raw("/portal/sandboxes", &genuine, Some("https://evil.example"))
        .await;
    assert_eq!(status, 403);
    let (_, listed) = send(app.admin(Method::GET, "/sandboxes")).await;
    assert_eq!(listed["items"], json!([]));
    // The same form from this server's page works.
    let (status, _) = ada
        .post_raw("/portal/sandboxes", &genuine, Some(&app.url))
        .await;
    assert_eq!(status, 201);
}

#[tokio::test]
async fn a_developer_cannot_see_or_change_another_developers_sandbox() {
    let app = spawn_app().await;
    payments(&app).await;
    let ada = sign_up(&app, "ada@example.com").await;
    let bob = sign_up(&app, "bob@example.com").await;
    let (_, page) = ada
        .post("/portal/sandboxes", &[("project", "payments")])
        .await;
    let id = sandbox_id(&page);

    let (_, dashboard) = bob.get("/").await;
    assert!(!dashboard.contains(&id), "Bob's dashboard lists only his");
    for path in ["", "/explorer"] {
        let (status, page) = bob.get(&format!("/portal/sandboxes/{id}{path}")).await;
        assert_eq!(status, 404, "{path}");
        assert!(page.contains("does not exist"), "{page}");
    }
    for (path, fields) in [
        ("delete", vec![]),
        ("reset", vec![]),
        ("clock", vec![("advance", "P1D")]),
        ("scenario", vec![("scenario", "card_declined")]),
        ("keys", vec![("kind", "secret")]),
    ] {
        let (status, _) = bob
            .post(&format!("/portal/sandboxes/{id}/{path}"), &fields)
            .await;
        assert_eq!(status, 404, "{path}");
    }
    let (status, _) = send(app.admin(Method::GET, &format!("/sandboxes/{id}"))).await;
    assert_eq!(status, 200, "Ada's sandbox is untouched");
    let (_, clock) = send(app.admin(Method::GET, &format!("/sandboxes/{id}/clock"))).await;
    assert!(clock["offset_ms"].as_i64().unwrap() < 60_000, "{clock}");
}

#[tokio::test]
async fn signing_in_and_out_and_what_needs_a_session() {
    let app = spawn_app().await;
    let client = Client::builder().redirect(Policy::none()).build().unwrap();
    // Pages need a session; the sign-in page comes back to where one was.
    let response = client
        .get(at(&app, "/portal/account"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
    assert_eq!(
        response.headers()["location"],
        "/portal/signin?next=%2Fportal%2Faccount"
    );

    let ada = sign_up(&app, "ada@example.com").await;
    // A wrong password keeps the email typed and says only that the pair is wrong.
    let response = client
        .post(at(&app, "/portal/signin"))
        .form(&[
            ("email", "ada@example.com"),
            ("password", "wrong password!"),
            ("next", "/"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let page = response.text().await.unwrap();
    assert!(
        page.contains("The email address or the password is wrong."),
        "{page}"
    );
    assert!(page.contains("value=\"ada@example.com\""));
    // A `next` pointing off the server is not followed.
    let response = client
        .post(at(&app, "/portal/signin"))
        .form(&[
            ("email", "ada@example.com"),
            ("password", "correct horse battery"),
            ("next", "//evil.example/x"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
    assert_eq!(response.headers()["location"], "/");
    // Signing up twice with one address says so, beside the form.
    let response = client
        .post(at(&app, "/portal/signup"))
        .form(&[
            ("email", "ada@example.com"),
            ("password", "another long one"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 409);
    let page = response.text().await.unwrap();
    assert!(page.contains("value=\"ada@example.com\""), "{page}");

    // The account page: quotas, and a token shown once that works on the API.
    let (status, page) = ada.get("/portal/account").await;
    assert_eq!(status, 200);
    assert!(page.contains("Live sandboxes"));
    let (status, page) = ada
        .post(
            "/portal/account/tokens",
            &[("name", "laptop"), ("days", "soon")],
        )
        .await;
    assert_eq!(status, 422);
    assert!(page.contains("value=\"soon\""), "{page}");
    let (status, page) = ada
        .post(
            "/portal/account/tokens",
            &[("name", "laptop"), ("days", "30")],
        )
        .await;
    assert_eq!(status, 201);
    let token = hidden_code(&page, "new-token");
    assert!(token.starts_with("sbx_pat_"), "{token}");
    let (status, me) = send(app.client.get(at(&app, "/api/v1/me")).bearer_auth(&token)).await;
    assert_eq!(
        (status, me["account"]["email"].as_str()),
        (200, Some("ada@example.com"))
    );

    // Signing out ends the session: its cookie opens nothing after.
    let (status, to) = ada.post("/portal/signout", &[]).await;
    assert_eq!((status, to.as_str()), (303, "/portal/signin"));
    let (status, to) = ada.get("/").await;
    assert_eq!(status, 303, "{to}");
}

fn hidden_code(page: &str, id: &str) -> String {
    let marker = format!("id=\"{id}\">");
    let start = page.find(&marker).expect("shown") + marker.len();
    let end = page[start..].find('<').unwrap();
    page[start..start + end].to_owned()
}

#[tokio::test]
async fn the_root_is_the_portal_unless_a_request_names_a_sandbox() {
    let app = spawn_app().await;
    let sandbox = app
        .open_sandbox("root", "openapi: 3.0.3\ninfo: {title: Root, version: '1'}\npaths:\n  /:\n    get:\n      responses:\n        '200':\n          description: ok\n          content:\n            application/json:\n              example: {root: true}\n")
        .await;
    let client = Client::builder().redirect(Policy::none()).build().unwrap();
    // A browser gets the portal…
    let response = client.get(at(&app, "/")).send().await.unwrap();
    assert_eq!(response.status(), 303);
    // …a client with a sandbox's key gets the sandbox's `/`.
    let (status, body) = send(client.get(at(&app, "/")).bearer_auth(&sandbox.api_key)).await;
    assert_eq!((status, body), (200, json!({"root": true})));
    // …and so does the sandbox's host name.
    let response = client
        .get(at(&app, "/"))
        .header("host", format!("{}.sbx.localhost", sandbox.id))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({"root": true})
    );
    // Unknown portal pages are pages too, and assets are served.
    let response = client
        .get(at(&app, "/portal/nowhere"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("There is no page at &#x2f;portal&#x2f;nowhere.")
    );
    for asset in ["portal.css", "portal.js", "explorer.js"] {
        let response = client
            .get(at(&app, &format!("/portal/assets/{asset}")))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{asset}");
    }
    let page = client.get(at(&app, "/portal/signin")).send().await.unwrap();
    let policy = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        policy.contains("frame-ancestors 'none'") && policy.contains("script-src 'self'"),
        "{policy}"
    );
}

fn at(app: &TestApp, path: &str) -> String {
    format!("{}{path}", app.url)
}

/// The flows of `tests/portal/e2e.py` in headless Chromium (Selenium):
/// sign up, create a sandbox, call it from the explorer, press a scenario
/// and see the call declined and explained, advance the clock, sign out;
/// a second developer cannot open the first one's sandbox. axe-core checks
/// every page; pages must not scroll sideways at a phone's width.
/// `SBX_SCREENSHOTS=docs/screenshots` keeps the pictures it takes.
#[tokio::test]
async fn the_portal_in_a_real_browser() {
    let app = spawn_app().await;
    payments(&app).await;
    sign_up_admin(&app, "grace@example.com").await;
    let here = env!("CARGO_MANIFEST_DIR");
    let shots = tempfile::tempdir().unwrap();
    let shots_dir = std::env::var("SBX_SCREENSHOTS").map_or_else(
        |_| shots.path().to_owned(),
        |dir| std::path::Path::new(here).join("../..").join(dir),
    );
    let config = json!({
        "url": app.url,
        "project": "payments",
        "admin": {"email": "grace@example.com", "password": "correct horse battery"},
        "screenshots": shots_dir,
        "axe": format!("{here}/tests/portal/node_modules/axe-core/axe.min.js"),
    });
    let mut command = std::process::Command::new("python3");
    command
        .arg(format!("{here}/tests/portal/e2e.py"))
        .arg(config.to_string());
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .unwrap()
        .expect("python3 runs; .ci/run installs selenium, chromium, chromium-driver and axe-core");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    println!("{report}");
    assert_eq!(
        report["screenshots"].as_array().unwrap().len(),
        20,
        "{report}"
    );
}

#[tokio::test]
async fn webhooks_from_the_portal_reach_the_built_in_receiver_signed() {
    let app = spawn_app().await;
    payments(&app).await;
    let ada = sign_up(&app, "ada@example.com").await;
    let (_, page) = ada
        .post("/portal/sandboxes", &[("project", "payments")])
        .await;
    let id = sandbox_id(&page);
    let webhooks = format!("/portal/sandboxes/{id}/webhooks");

    // Bad URLs come back beside the field, as typed.
    for (url, said) in [
        ("ftp://example.com/hook", "must be http:// or https://"),
        ("http://127.0.0.1:9/hook", "127.0.0.1"),
    ] {
        let (status, page) = ada.post(&webhooks, &[("url", url), ("events", "*")]).await;
        assert_eq!(status, 422, "{url}: {page}");
        assert!(page.contains(&escaped(said)), "{url}: {page}");
        assert!(
            page.contains(&format!("value=\"{}\"", escaped(url))),
            "{url} kept"
        );
    }
    let (status, page) = ada.post(&webhooks, &[("receiver", "yes")]).await;
    assert_eq!(status, 201, "{page}");
    let secret = hidden_code(&page, "new-secret");
    assert!(secret.starts_with("whsec_"), "{secret}");

    let (status, page) = ada
        .post(&format!("{webhooks}/test"), &[("type", "no.such.event")])
        .await;
    assert_eq!(status, 422);
    assert!(page.contains("is not in the event catalog"), "{page}");
    let (status, to) = ada
        .post(
            &format!("{webhooks}/test"),
            &[("type", "payment.succeeded")],
        )
        .await;
    assert_eq!(
        (status, to.as_str()),
        (303, format!("{webhooks}?done=event-sent").as_str())
    );
    app.drain().await;
    let (_, page) = ada.get(&webhooks).await;
    assert!(page.contains("data-testid=\"received\""), "{page}");
    assert!(page.contains("webhook-signature: v1,"), "signed");
    assert!(
        page.contains("&quot;type&quot;:&quot;payment.succeeded&quot;"),
        "{page}"
    );
    assert!(
        page.contains("<strong>delivered</strong>"),
        "the delivery is listed"
    );

    // Editing an endpoint: a bad URL said beside the form, a good one saved.
    let (_, listed) =
        send(app.admin(Method::GET, &format!("/sandboxes/{id}/webhook-endpoints"))).await;
    let endpoint = listed["items"][0]["id"].as_str().unwrap().to_owned();
    let edit = format!("{webhooks}/{endpoint}/edit");
    let (status, page) = ada
        .post(
            &edit,
            &[("url", "gopher://x"), ("events", "payment.succeeded")],
        )
        .await;
    assert_eq!(status, 422, "{page}");
    let (status, _) = ada
        .post(
            &edit,
            &[
                ("url", "https://hooks.example.com/in"),
                ("events", "payment.succeeded, payment.refunded"),
            ],
        )
        .await;
    assert_eq!(status, 303);
    let (_, shown) = send(app.admin(
        Method::GET,
        &format!("/sandboxes/{id}/webhook-endpoints/{endpoint}"),
    ))
    .await;
    assert_eq!(shown["url"], "https://hooks.example.com/in");
    assert_eq!(
        shown["events"],
        json!(["payment.succeeded", "payment.refunded"])
    );

    // Another developer sees none of it.
    let bob = sign_up(&app, "bob@example.com").await;
    assert_eq!(bob.get(&webhooks).await.0, 404);
    assert_eq!(
        bob.post(&edit, &[("url", "https://x.example")]).await.0,
        404
    );
    assert_eq!(
        bob.post(
            &format!("{webhooks}/test"),
            &[("type", "payment.succeeded")]
        )
        .await
        .0,
        404
    );
}

/// `text` as the pages' templates escape it.
fn escaped(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#x27;")
        .replace('/', "&#x2f;")
}

#[tokio::test]
async fn the_request_log_pages_explain_replay_and_filter() {
    let app = spawn_app().await;
    payments(&app).await;
    let ada = sign_up(&app, "ada@example.com").await;
    let (_, page) = ada
        .post("/portal/sandboxes", &[("project", "payments")])
        .await;
    let (id, key) = (sandbox_id(&page), new_key(&page));
    let response = app
        .client
        .get(format!("{}/sbx/{id}/v1/accounts/acct_nobody", app.url))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    let request_id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(response.status(), 404);
    app.drain().await;

    let logs = format!("/portal/sandboxes/{id}/logs");
    let (status, page) = ada.get(&logs).await;
    assert_eq!(status, 200);
    assert!(page.contains(&request_id), "{page}");
    let (status, page) = ada.get(&format!("{logs}?status=2xx")).await;
    assert_eq!(status, 200);
    assert!(!page.contains(&request_id), "filtered out");
    let (status, page) = ada.get(&format!("{logs}?status=teapot")).await;
    assert_eq!(status, 200, "the page, with the filter's error beside it");
    assert!(
        page.contains("is not a status (404) or a class (4xx)"),
        "{page}"
    );

    let (status, page) = ada.get(&format!("{logs}/{request_id}")).await;
    assert_eq!(status, 200);
    assert!(page.contains("data-testid=\"verdict\""));
    assert!(page.contains("curl"), "snippets");
    assert!(!page.contains(&key), "the key never reaches the log");
    let (status, page) = ada.post(&format!("{logs}/{request_id}/replay"), &[]).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("The same answer as the original."), "{page}");

    // The timeline has the request, linked to its page; kinds filter it.
    let timeline = format!("/portal/sandboxes/{id}/timeline");
    let (status, page) = ada.get(&timeline).await;
    assert_eq!(status, 200);
    let link = escaped(&format!("/portal/sandboxes/{id}/logs/{request_id}"));
    assert!(page.contains(&format!("href=\"{link}\"")), "{page}");
    let (_, page) = ada.get(&format!("{timeline}?kind=clock")).await;
    assert!(!page.contains(&request_id), "only clock moves");

    let bob = sign_up(&app, "bob@example.com").await;
    assert_eq!(bob.get(&timeline).await.0, 404);
    assert_eq!(bob.get(&format!("{logs}/{request_id}")).await.0, 404);
    assert_eq!(bob.get(&logs).await.0, 404);
    assert_eq!(
        bob.post(&format!("{logs}/{request_id}/replay"), &[])
            .await
            .0,
        404
    );
}

#[tokio::test]
async fn oauth_clients_are_registered_from_the_sandbox_page() {
    let app = spawn_app().await;
    payments(&app).await;
    let ada = sign_up(&app, "ada@example.com").await;
    let (_, page) = ada
        .post("/portal/sandboxes", &[("project", "payments")])
        .await;
    let id = sandbox_id(&page);
    let clients = format!("/portal/sandboxes/{id}/oauth-clients");
    let (status, page) = ada
        .post(
            &clients,
            &[("client_name", "web"), ("redirect_uris", "not a uri")],
        )
        .await;
    assert_eq!(status, 422, "{page}");
    assert!(page.contains("value=\"not a uri\""), "kept");
    assert!(
        page.contains("id=\"e-redirect_uris\""),
        "said beside its field"
    );
    let (status, page) = ada
        .post(&clients, &[("client_name", "backend"), ("scopes", "")])
        .await;
    assert_eq!(status, 201, "{page}");
    let secret = hidden_code(&page, "client-secret");
    assert!(secret.starts_with("cs_test_"), "{secret}");
    let (_, listed) = send(app.admin(Method::GET, &format!("/sandboxes/{id}/oauth/clients"))).await;
    let client = listed["items"][0]["client_id"].as_str().unwrap().to_owned();
    let (status, page) = ada.get(&format!("/portal/sandboxes/{id}")).await;
    assert_eq!(status, 200);
    assert!(
        page.contains(&client) && !page.contains(&secret),
        "listed, secret not shown again"
    );
    let (status, to) = ada.post(&format!("{clients}/{client}/delete"), &[]).await;
    assert_eq!(
        (status, to.as_str()),
        (
            303,
            format!("/portal/sandboxes/{id}?done=client-deleted").as_str()
        )
    );
    let (_, listed) = send(app.admin(Method::GET, &format!("/sandboxes/{id}/oauth/clients"))).await;
    assert_eq!(listed["items"], json!([]));
}

const PETS: &str = "openapi: 3.0.3\ninfo: {title: Pets, version: '1'}\npaths:\n  /pets:\n    get:\n      responses:\n        '200':\n          description: ok\n          content:\n            application/json:\n              schema: {type: array, items: {type: string}}\n";

#[tokio::test]
async fn admins_publish_projects_and_everyone_reads_their_activity() {
    let app = spawn_app().await;
    let grace = sign_up_admin(&app, "grace@example.com").await;

    // A document that does not compile: its problems listed, the text kept.
    let broken = "openapi: 3.0.3\ninfo: {title: Broken, version: '1'}\npaths:\n  /x:\n    get:\n      responses:\n        '200': {$ref: '#/components/responses/Missing'}\n";
    let (status, page) = grace
        .post("/portal/projects", &[("name", "broken"), ("spec", broken)])
        .await;
    assert_eq!(status, 422, "{page}");
    assert!(page.contains("data-testid=\"problems\""), "{page}");
    assert!(page.contains("Missing"), "the text is kept");
    let (status, page) = grace
        .post("/portal/projects", &[("name", "pets"), ("spec", PETS)])
        .await;
    assert_eq!(status, 201, "{page}");
    assert!(page.contains("Project pets is published (revision 1)."));
    let (status, page) = grace
        .post(
            "/portal/projects/pets",
            &[("spec", &PETS.replace("'1'", "'2'"))],
        )
        .await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("Revision 2 is published."), "{page}");
    let (status, page) = grace.get("/portal/projects").await;
    assert_eq!(status, 200);
    assert!(page.contains("href=\"/portal/projects/pets\""));
    // Revisions compared by the contract a client sees.
    let (status, page) = grace.get("/portal/projects/pets/diff?from=1&to=2").await;
    assert_eq!(status, 200);
    assert!(
        page.contains("The two revisions offer clients the same operations."),
        "{page}"
    );
    let more = PETS.replace("'1'", "'3'").replace(
        "paths:\n",
        "paths:\n  /pets/{id}:\n    get:\n      parameters: [{name: id, in: path, required: true, schema: {type: string}}]\n      responses:\n        '200': {description: ok}\n",
    );
    let (status, page) = grace
        .post("/portal/projects/pets", &[("spec", &more)])
        .await;
    assert_eq!(status, 200, "{page}");
    let (status, page) = grace.get("/portal/projects/pets/diff?from=2&to=3").await;
    assert_eq!(status, 200);
    assert!(page.contains("<td>added</td>"), "{page}");
    assert!(page.contains(&escaped("GET /pets/{id}")), "{page}");

    // The behaviour editor: a script that does not compile is shown with
    // its problem at its line, the revision unchanged; a good one goes live.
    payments(&app).await;
    let (_, page) = grace.get("/portal/projects/payments").await;
    assert!(
        page.contains("<code>behaviours/createPayment</code>"),
        "{page}"
    );
    let file = "/portal/projects/payments/files/behaviours/createPayment";
    let (status, page) = grace.get(file).await;
    assert_eq!(status, 200);
    assert!(page.contains("<textarea"), "{page}");
    let broken = "let amount = req.body.amount;\nlet fee = amount * ;\nrespond(201, #{})\n";
    let (status, page) = grace.post(file, &[("text", broken)]).await;
    assert_eq!(status, 422, "{page}");
    assert!(page.contains("data-testid=\"bad-line\""), "{page}");
    assert!(
        page.contains("href=\"#line-2\""),
        "the problem names line 2: {page}"
    );
    let (_, project) = send(app.admin(Method::GET, "/projects/payments")).await;
    assert_eq!(project["revision"], 1, "nothing published");
    let (status, page) = grace
        .post(
            "/portal/projects/payments/files/templates/hello.txt",
            &[("text", "Hello {{ req.params.name }}")],
        )
        .await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("Saved: revision 2 is live."), "{page}");

    // Data files open as written, comments included; a YAML mistake is
    // shown at its line with nothing published; a good edit goes live.
    let fixture = "/portal/projects/payments/files/fixtures/accounts";
    let (status, page) = grace.get(fixture).await;
    assert_eq!(status, 200);
    assert!(
        page.contains("# Accounts every sandbox starts with"),
        "the comment is kept: {page}"
    );
    let broken = "- id: acct_new\n  status: [active\n";
    let (status, page) = grace.post(fixture, &[("text", broken)]).await;
    assert_eq!(status, 422, "{page}");
    assert!(page.contains("href=\"#line-3\""), "{page}");
    assert!(
        page.contains("<li id=\"line-2\" class=\"bad\""),
        "a mistake at the end marks the last line: {page}"
    );
    let (_, project) = send(app.admin(Method::GET, "/projects/payments")).await;
    assert_eq!(project["revision"], 2, "nothing published");
    let edited = "# One account now.\n- id: acct_portal\n  status: active\n  tier: gold\n  currency: usd\n  balance: 5\n  created_at: now\n";
    let (status, page) = grace.post(fixture, &[("text", edited)]).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("Saved: revision 3 is live."), "{page}");
    assert!(page.contains("# One account now."), "{page}");
    let (_, files) = send(app.admin(Method::GET, "/projects/payments/files")).await;
    assert_eq!(files["fixtures"]["accounts"][0]["id"], "acct_portal");
    // Data sent as JSON values has no text: it opens as YAML.
    let body =
        json!({"spec": PETS, "fixtures": {"pets": {"p1": {"name": "Rex", "tags": ["good"]}}}});
    let (status, answer) = send(app.admin(Method::PUT, "/projects/pets/spec").json(&body)).await;
    assert_eq!(status, 200, "{answer}");
    let (status, page) = grace.get("/portal/projects/pets/files/fixtures/pets").await;
    assert_eq!(status, 200);
    assert!(
        page.contains("p1:\n  name: Rex\n  tags:\n  - good"),
        "{page}"
    );

    // Every revision is listed with its date and who published it.
    let (_, page) = grace.get("/portal/projects/payments").await;
    assert!(page.contains("data-testid=\"revisions\""), "{page}");
    assert!(page.contains("<td>grace@example.com</td>"), "{page}");
    assert!(page.contains("from revision 2"), "{page}");
    let (_, page) = grace
        .get("/portal/projects/payments/diff?from=2&to=3")
        .await;
    assert!(
        page.contains(&format!(
            "<code>{}</code></a> changed",
            escaped("fixtures/accounts")
        )),
        "{page}"
    );
    let (_, page) = grace
        .get("/portal/projects/payments/diff?from=1&to=2")
        .await;
    let added = format!("<code>{}</code></a> added", escaped("templates/hello.txt"));
    assert!(page.contains(&added), "{page}");
    let (status, history) = send(app.admin(Method::GET, "/projects/payments/revisions")).await;
    assert_eq!(status, 200);
    let authors: Vec<&str> = history["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["author"].as_str().unwrap())
        .collect();
    assert_eq!(
        authors,
        ["grace@example.com", "grace@example.com", "admin"],
        "{history}"
    );

    // A developer may not manage projects, and sees only their own activity.
    let ada = sign_up(&app, "ada@example.com").await;
    assert_eq!(ada.get(file).await.0, 403);
    assert_eq!(
        ada.get("/portal/projects/pets/diff?from=1&to=2").await.0,
        403
    );
    let (status, page) = ada.get("/portal/projects").await;
    assert_eq!(status, 403);
    assert!(page.contains("Only admins may manage projects."), "{page}");
    let (status, page) = ada.get("/portal/activity").await;
    assert_eq!(status, 200);
    assert!(
        page.contains("POST &#x2f;api&#x2f;v1&#x2f;accounts"),
        "{page}"
    );
    assert!(
        !page.contains("&#x2f;api&#x2f;v1&#x2f;projects"),
        "not another's"
    );
    let (_, page) = grace.get("/portal/activity?action=projects").await;
    assert!(
        page.contains("PUT &#x2f;api&#x2f;v1&#x2f;projects&#x2f;{name}&#x2f;spec"),
        "{page}"
    );
}

#[tokio::test]
async fn a_project_is_imported_from_a_url_through_the_egress_policy() {
    let spec_server = crate::helpers::serve_router(
        axum::Router::new().route("/openapi.yaml", axum::routing::get(|| async { PETS })),
    )
    .await;
    let url = format!("{spec_server}/openapi.yaml");
    // By default the policy refuses private addresses: said beside the field.
    let app = spawn_app().await;
    let admin = sign_up_admin(&app, "grace@example.com").await;
    let (status, page) = admin
        .post("/portal/projects", &[("name", "pets"), ("url", &url)])
        .await;
    assert_eq!(status, 422, "{page}");
    assert!(page.contains("id=\"e-url\""), "{page}");
    assert!(
        page.contains(&format!("value=\"{}\"", escaped(&url))),
        "kept"
    );

    // Allowed private egress, the document is fetched and imported.
    let app = crate::helpers::spawn_app_with(tempfile::tempdir().unwrap(), |config| {
        config.allow_private_egress = true;
    })
    .await;
    let admin = sign_up_admin(&app, "grace@example.com").await;
    let (status, page) = admin
        .post("/portal/projects", &[("name", "pets"), ("url", &url)])
        .await;
    assert_eq!(status, 201, "{page}");
    let (status, missing) = admin
        .post(
            "/portal/projects",
            &[
                ("name", "gone"),
                ("url", &format!("{spec_server}/nowhere.yaml")),
            ],
        )
        .await;
    assert_eq!(status, 422);
    assert!(missing.contains("answered 404"), "{missing}");
}

/// A browser signed in as an account the admin token made an admin.
async fn sign_up_admin(app: &TestApp, email: &str) -> Browser {
    let browser = sign_up(app, email).await;
    let (_, accounts) = send(app.admin(Method::GET, "/accounts")).await;
    let account = accounts["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["email"] == email)
        .expect("the account");
    let (status, body) = send(
        app.admin(
            Method::PATCH,
            &format!("/accounts/{}", account["id"].as_str().unwrap()),
        )
        .json(&json!({"role": "admin"})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    browser
}

#[tokio::test]
async fn the_code_console_refuses_what_the_api_refuses_and_other_developers() {
    let app = spawn_app().await;
    let ada = sign_up(&app, "ada@example.com").await;
    let bob = sign_up(&app, "bob@example.com").await;
    let (status, page) = ada.post("/portal/sessions", &[("template", "cobol")]).await;
    assert_eq!(status, 422, "{page}");
    assert!(
        page.contains("aria-invalid=\"true\""),
        "the field is marked"
    );
    let (status, to) = ada.post("/portal/sessions", &[("template", "shell")]).await;
    assert_eq!(status, 303, "{to}");
    let id = to
        .strip_prefix("/portal/sessions/")
        .and_then(|rest| rest.split('?').next())
        .unwrap()
        .to_owned();

    // A run: its page shows what it printed once it ended.
    let (status, to) = ada
        .post(
            &format!("/portal/sessions/{id}/run"),
            &[("language", "shell"), ("code", "echo from-the-console")],
        )
        .await;
    assert_eq!(status, 303, "{to}");
    eventually(
        "the run's output on its page",
        Duration::from_secs(10),
        || async {
            let (_, page) = ada.get(&to).await;
            page.contains("data-ended=\"ok\"")
                .then_some(())
                .filter(|()| page.contains("from-the-console"))
        },
    )
    .await;
    let (status, page) = ada
        .post(
            &format!("/portal/sessions/{id}/run"),
            &[("language", "cobol"), ("code", "x")],
        )
        .await;
    assert_eq!(status, 422, "{page}");

    // Bob sees none of it and changes nothing; a forged form changes nothing.
    let (_, list) = bob.get("/portal/sessions").await;
    assert!(!list.contains(&id), "Bob's console lists only his");
    let (status, _) = bob.get(&format!("/portal/sessions/{id}")).await;
    assert_eq!(status, 404);
    for path in ["run", "end"] {
        let (status, _) = bob
            .post(&format!("/portal/sessions/{id}/{path}"), &[("code", "id")])
            .await;
        assert_eq!(status, 404, "{path}");
    }
    let forged = [("csrf", "not-the-token")];
    let (status, _) = ada
        .post_raw(&format!("/portal/sessions/{id}/end"), &forged, None)
        .await;
    assert_eq!(status, 403);
    let (status, view) = send(app.admin(Method::GET, &format!("/sessions/{id}"))).await;
    assert_eq!((status, view["status"].as_str()), (200, Some("running")));

    let (status, to) = ada.post(&format!("/portal/sessions/{id}/end"), &[]).await;
    assert_eq!(
        (status, to.as_str()),
        (303, "/portal/sessions?done=session-ended")
    );
    let (_, view) = send(app.admin(Method::GET, &format!("/sessions/{id}"))).await;
    assert_eq!(view["reason"], "deleted", "{view}");
}
