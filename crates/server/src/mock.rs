//! `sbx mock`: one spec served at the root, no control plane, no token —
//! the one-command path for users of `prism mock`, and the load benchmark's
//! target.

use std::{net::SocketAddr, sync::Arc};

use axum::{Router, extract::Request, middleware as axum_middleware, response::Response};
use sbx_engine::{AuthMode, CompiledRevision, SandboxContext};
use sbx_spec::synth::seed_from;
use tokio::{net::TcpListener, task::JoinHandle};
use tokio_util::sync::CancellationToken;
use tower_http::cors::CorsLayer;

use crate::{config::Limits, data_plane, middleware, registry::compile_spec};

/// The implicit sandbox's id and seed: fixed, so answers are reproducible across runs.
pub const MOCK_SANDBOX_ID: &str = "sbx-mock";

pub struct MockServer {
    pub local_addr: SocketAddr,
    pub revision: Arc<CompiledRevision>,
    shutdown: CancellationToken,
    task: JoinHandle<std::io::Result<()>>,
}

impl MockServer {
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    pub async fn wait(self) -> anyhow::Result<()> {
        Ok(self.task.await??)
    }
}

/// Compiles `spec` and serves it on `listener`. With `auth: AuthMode::Spec`
/// the spec's security schemes are enforced and any `sk_test_` key passes.
pub async fn start_mock(
    spec: String,
    listener: TcpListener,
    auth: AuthMode,
    limits: Limits,
) -> anyhow::Result<MockServer> {
    let revision = compile_spec(spec, &limits)
        .await
        .map_err(|e| anyhow::anyhow!("{}", e.describe()))?;
    let local_addr = listener.local_addr()?;
    let served = revision.clone();
    let seed = seed_from([MOCK_SANDBOX_ID.as_bytes()]);
    let max_body = limits.max_body_bytes;
    let handler = move |request: Request| {
        let revision = served.clone();
        async move {
            let accepts_any_test_key = |key: &str| key.starts_with(sbx_engine::API_KEY_PREFIX);
            let context = SandboxContext {
                id: MOCK_SANDBOX_ID,
                seed,
                auth,
                key_matches: &accepts_any_test_key,
            };
            let path = request.uri().path().to_owned();
            let response: Response =
                data_plane::serve(&revision, &context, request, &path, max_body).await;
            response
        }
    };
    let app = Router::new()
        .fallback(handler)
        .layer(CorsLayer::permissive())
        .layer(axum_middleware::from_fn_with_state(
            limits.max_header_bytes,
            middleware::edge,
        ));
    let shutdown = CancellationToken::new();
    let token = shutdown.clone();
    let task = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(token.cancelled_owned())
            .await
    });
    Ok(MockServer {
        local_addr,
        revision,
        shutdown,
        task,
    })
}
