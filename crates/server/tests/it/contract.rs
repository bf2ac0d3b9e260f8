//! Both planes against their OpenAPI documents: schemathesis generates
//! requests (valid, invalid and missing values, without credentials) and
//! checks that no answer is a 5xx and that every status, content type,
//! header and body is the one documented.

use std::{path::Path, process::Command};

use crate::helpers::{ADMIN_TOKEN, assert_succeeds, spawn_app};

/// Runs `schemathesis run` from `dir` with `arguments` after the schema;
/// fails the test with its report unless every check passed.
async fn schemathesis(dir: &Path, schema: &str, arguments: &[&str]) {
    let mut command = Command::new("python3");
    command
        .current_dir(dir)
        .args(["-m", "schemathesis.cli", "run", schema])
        .args(arguments)
        .args(["--max-examples", "10", "--seed", "20261124", "--no-color"]);
    assert_succeeds(command).await;
}

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
    schemathesis(
        dir.path(),
        &format!("{}/api/v1/openapi.json", app.url),
        &[
            "--header",
            &format!("Authorization: Bearer {ADMIN_TOKEN}"),
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance",
            // Streams never end; webhook endpoints would send to generated
            // hosts, and tests talk to 127.0.0.1 only.
            "--exclude-path-regex",
            "stream|webhook-endpoints",
        ],
    )
    .await;
}

/// Code generators refuse a document that a strict validator refuses
/// (duplicate `operationId`s, broken references): `openapi-spec-validator`
/// is the reference one.
#[tokio::test]
async fn the_control_planes_document_passes_a_strict_validator() {
    let app = spawn_app().await;
    let document = app
        .client
        .get(format!("{}/api/v1/openapi.json", app.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("openapi.json");
    std::fs::write(&path, &document).unwrap();
    let mut command = Command::new("python3");
    command.args(["-m", "openapi_spec_validator"]).arg(&path);
    assert_succeeds(command).await;
    let parsed: serde_json::Value = serde_json::from_str(&document).unwrap();
    let mut ids: Vec<&str> = parsed["paths"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|item| item.as_object().unwrap().values())
        .filter_map(|operation| operation["operationId"].as_str())
        .collect();
    let count = ids.len();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), count, "operationIds repeat: {ids:?}");
}

#[tokio::test]
async fn a_sandbox_answers_as_its_spec_says() {
    let app = spawn_app().await;
    let sandbox = app.payments_sandbox("spec").await;
    let spec = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/payments/openapi.yaml");
    let dir = tempfile::tempdir().unwrap();
    schemathesis(
        dir.path(),
        spec.to_str().unwrap(),
        &[
            "--url",
            &sandbox.base_url,
            "--header",
            &format!("Authorization: Bearer {}", sandbox.api_key),
            "--checks",
            "all",
            // Generated requests reuse one `Idempotency-Key` with different
            // bodies: the sandbox refuses that, as Stripe does.
            "--exclude-checks",
            "positive_data_acceptance",
        ],
    )
    .await;
}
