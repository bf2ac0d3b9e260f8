//! The control plane against its own OpenAPI document: schemathesis
//! generates requests from `/api/v1/openapi.json` (valid, invalid and
//! missing values, without the token) and checks that no answer is a 5xx
//! and that every status, content type and body is the one documented.

use std::process::Command;

use crate::helpers::{ADMIN_TOKEN, spawn_app};

#[tokio::test]
async fn the_control_plane_answers_as_its_openapi_document_says() {
    let app = spawn_app().await;
    let sandbox = app.payments_sandbox("spec").await;
    // Requests to log, so that the log's operations have entries to read.
    for path in ["/accounts/acct_demo_gold", "/custmers"] {
        app.client
            .get(sandbox.url(path))
            .bearer_auth(&sandbox.api_key)
            .send()
            .await
            .unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("schemathesis.toml"),
        format!("[parameters]\nid = \"{}\"\n", sandbox.id),
    )
    .unwrap();
    let mut command = Command::new("python3");
    command.current_dir(dir.path()).args([
        "-m",
        "schemathesis.cli",
        "run",
        &format!("{}/api/v1/openapi.json", app.url),
        "--header",
        &format!("Authorization: Bearer {ADMIN_TOKEN}"),
        "--checks",
        "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance",
        "--max-examples",
        "10",
        "--seed",
        "20261124",
        // Streams never end; webhook endpoints would send to generated
        // hosts, and tests talk to 127.0.0.1 only.
        "--exclude-path-regex",
        "stream|webhook-endpoints",
        "--no-color",
    ]);
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("python3 cannot run ({e}); .ci/run installs it"));
    assert!(
        output.status.success(),
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
