//! Replay: snippets that run as they are, and re-execution with a diff.

use std::process::Command;

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{Sandbox, TestApp, send, spawn_app};

async fn payments(app: &TestApp) -> Sandbox {
    app.payments_sandbox("spec").await
}

/// The log entry of `request_id`, once written.
async fn logged(app: &TestApp, sandbox: &Sandbox, request_id: &str) -> Value {
    app.drain().await;
    let (status, body) = send(app.admin(
        Method::GET,
        &format!("/sandboxes/{}/logs/{request_id}", sandbox.id),
    ))
    .await;
    assert_eq!(status, 200, "{request_id} is logged: {body}");
    body
}

/// Runs `program args…` with the sandbox key in `$SBX_API_KEY`, off the
/// test's runtime (which serves the request); its stdout.
async fn run(key: &str, program: &str, args: &[&str]) -> String {
    let mut command = Command::new(program);
    command.args(args).env("SBX_API_KEY", key);
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("{program} cannot run ({e}); .ci/run installs it"));
    assert!(
        output.status.success(),
        "{program} {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

fn json(text: &str) -> Value {
    serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("{e}: {text}"))
}

/// `status\nbody` as the Python and JavaScript snippets print them.
fn status_and_body(output: &str) -> (u16, Value) {
    let (status, body) = output.split_once('\n').expect(output);
    (status.trim().parse().expect(output), json(body))
}

#[tokio::test]
async fn every_snippet_runs_and_gives_the_logged_answer() {
    let app = spawn_app().await;
    let sandbox = payments(&app).await;
    let key = format!("Bearer {}", sandbox.api_key);
    let (status, _) = send(
        app.client
            .get(sandbox.url("/accounts?status=active&limit=2"))
            .header("authorization", &key)
            .header("x-request-id", "req-get"),
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = send(
        app.client
            .post(sandbox.url("/payments"))
            .header("authorization", &key)
            .header("x-request-id", "req-post")
            .json(&json!({"amount": "it's ten", "currency": "usd"})),
    )
    .await;
    assert_eq!(status, 400);

    for request_id in ["req-get", "req-post"] {
        let original = logged(&app, &sandbox, request_id).await;
        let expected = (
            u16::try_from(original["status"].as_u64().unwrap()).unwrap(),
            json(original["response_body"].as_str().unwrap()),
        );
        let (status, snippets) = send(app.admin(
            Method::GET,
            &format!("/sandboxes/{}/logs/{request_id}/snippets", sandbox.id),
        ))
        .await;
        assert_eq!(status, 200, "{snippets}");
        let code = |language: &str| snippets[language].as_str().unwrap().to_owned();
        assert!(
            !snippets.to_string().contains(&sandbox.api_key),
            "{snippets}"
        );
        assert!(code("curl").contains("$SBX_API_KEY"), "{}", code("curl"));

        let curl = format!("{} -w '\\n%{{http_code}}'", code("curl"));
        let output = run(&sandbox.api_key, "bash", &["-c", &curl]).await;
        let (body, status) = output.rsplit_once('\n').unwrap();
        assert_eq!(
            (status.parse::<u16>().unwrap(), json(body)),
            expected,
            "curl: {curl}"
        );

        let httpie = code("httpie").replace("--print=b", "--print=hb");
        let output = run(&sandbox.api_key, "bash", &["-c", &httpie]).await;
        let (head, body) = output
            .split_once("\r\n\r\n")
            .or(output.split_once("\n\n"))
            .unwrap();
        let status: u16 = head.split_whitespace().nth(1).unwrap().parse().unwrap();
        assert_eq!((status, json(body)), expected, "httpie: {httpie}");

        let output = run(&sandbox.api_key, "python3", &["-c", &code("python")]).await;
        assert_eq!(status_and_body(&output), expected, "{}", code("python"));

        let output = run(
            &sandbox.api_key,
            "node",
            &["--input-type=module", "-e", &code("javascript")],
        )
        .await;
        assert_eq!(status_and_body(&output), expected, "{}", code("javascript"));
    }
    let (status, _) = send(app.admin(
        Method::GET,
        &format!("/sandboxes/{}/logs/req-nope/snippets", sandbox.id),
    ))
    .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn a_replay_runs_again_and_shows_what_changed() {
    let app = spawn_app().await;
    let sandbox = payments(&app).await;
    let key = format!("Bearer {}", sandbox.api_key);
    let replay = |request_id: &str| {
        app.admin(
            Method::POST,
            &format!("/sandboxes/{}/logs/{request_id}/replay", sandbox.id),
        )
    };

    let (status, _) = send(
        app.client
            .get(sandbox.url("/accounts/acct_demo_gold"))
            .header("authorization", &key)
            .header("x-request-id", "req-same"),
    )
    .await;
    assert_eq!(status, 200);
    logged(&app, &sandbox, "req-same").await;
    let (status, same) = send(replay("req-same")).await;
    assert_eq!(status, 200, "{same}");
    assert_eq!(
        (&same["same"], &same["diff"]),
        (&json!(true), &json!({})),
        "{same:#}"
    );
    assert_eq!(same["replay"]["status"], 200);
    // The replay is in the log under its own id.
    let again = logged(&app, &sandbox, same["request_id"].as_str().unwrap()).await;
    assert_eq!(again["path"], "/v1/accounts/acct_demo_gold");

    // A create answers a new record: the diff names the fields that changed.
    let (status, _) = send(
        app.client
            .post(sandbox.url("/customers"))
            .header("authorization", &key)
            .header("x-request-id", "req-create")
            .json(&json!({"name": "Ada", "email": "ada@example.com"})),
    )
    .await;
    assert_eq!(status, 201);
    logged(&app, &sandbox, "req-create").await;
    let (_, created) = send(replay("req-create")).await;
    assert_eq!(created["same"], false, "{created:#}");
    let changed: Vec<&str> = created["diff"]["body"]
        .as_array()
        .unwrap()
        .iter()
        .map(|op| op["path"].as_str().unwrap())
        .collect();
    assert!(changed.contains(&"/id"), "{created:#}");
    assert!(created["diff"].get("status").is_none(), "{created:#}");

    // A request refused for its key is refused again.
    let (status, _) = send(
        app.client
            .get(sandbox.url("/accounts"))
            .header("authorization", "Bearer sk_test_not_this_sandbox")
            .header("x-request-id", "req-bad-key"),
    )
    .await;
    assert_eq!(status, 401);
    logged(&app, &sandbox, "req-bad-key").await;
    let (_, refused) = send(replay("req-bad-key")).await;
    assert_eq!(
        (&refused["replay"]["status"], &refused["same"]),
        (&json!(401), &json!(true)),
        "{refused:#}"
    );
    let (status, _) = send(replay("req-nope")).await;
    assert_eq!(status, 404);
}
