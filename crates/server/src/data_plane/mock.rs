//! `sbx mock`: one spec served at the root, no control plane, no token —
//! the one-command path for users of `prism mock`, and the load benchmark's
//! target.

use std::{net::SocketAddr, sync::Arc};

use axum::{extract::Request, http::HeaderValue, response::Response};
use sbx_engine::{AuthMode, CompiledRevision, ProjectFiles, SandboxState, ScriptLimits};
use sbx_spec::synth::seed_from;
use tokio::{net::TcpListener, task::JoinHandle};
use tokio_util::sync::CancellationToken;

use crate::{
    config::Limits,
    data_plane::egress::HttpUpstream,
    data_plane::{self, KeyCheck, Target, idempotency::Idempotency},
    http::front::{Front, SandboxHandler},
    service::projects::compile,
};

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

/// How `sbx mock` serves: the spec's security or none, limits, egress.
pub struct MockOptions {
    pub auth: AuthMode,
    pub limits: Limits,
    pub scripts: ScriptLimits,
    pub allow_private_egress: bool,
}

/// Compiles `spec` with its behaviour files and serves it on `listener`,
/// state in memory. With `auth: AuthMode::Spec` the spec's security
/// schemes are enforced and any `sk_test_` key passes.
pub async fn start_mock(
    spec: String,
    files: ProjectFiles,
    listener: TcpListener,
    options: MockOptions,
) -> anyhow::Result<MockServer> {
    let revision = compile(spec, files, &options.limits, &options.scripts)
        .await
        .map_err(|e| anyhow::anyhow!("{}", e.describe()))?;
    let local_addr = listener.local_addr()?;
    let served = revision.clone();
    let seed = seed_from([MOCK_SANDBOX_ID.as_bytes()]);
    let max_body = options.limits.max_body_bytes;
    let state = Arc::new(SandboxState::load(
        &revision.behaviours.fixtures,
        Vec::new(),
        crate::app::now_ms(),
    ));
    let upstream = HttpUpstream::shared(crate::data_plane::egress::EgressPolicy {
        allow_private: options.allow_private_egress,
        allow: Vec::new(),
    });
    let env = Arc::new(serde_json::Map::new());
    let auth = options.auth;
    let work = crate::workers::user_work::UserWork::new(options.limits.parallel_scripts());
    let idempotency = Arc::new(Idempotency::in_memory());
    let id: Arc<str> = Arc::from(MOCK_SANDBOX_ID);
    let limiters = crate::runtime::rate::Limiters::of(served.behaviours.settings.rate_limits);
    let handler = move |request: Request| {
        let target = Target {
            id: id.clone(),
            id_header: Some(HeaderValue::from_static(MOCK_SANDBOX_ID)),
            seed,
            auth,
            keys: KeyCheck::AnyTestKey,
            compiled: served.clone(),
            state: state.clone(),
            env: env.clone(),
            upstream: Some(upstream.clone()),
            functions: None,
            chaos: None,
            default_scenario: None,
            now_ms: crate::app::now_ms(),
            work: work.clone(),
            limiters: limiters.clone(),
            unlimited: false,
            rate_verdict: std::sync::OnceLock::new(),
        };
        let idempotency = idempotency.clone();
        async move {
            let served =
                data_plane::serve(target, request, None, max_body, Some(&idempotency), false).await;
            // Held until its answer is kept, like the server's commit.
            let (held, answer) = served.idempotent.unzip();
            if let Some(answer) = answer.flatten() {
                idempotency.keep(MOCK_SANDBOX_ID, answer);
            }
            drop(held);
            if let Some(drift) = &served.drift {
                tracing::warn!(operation = %drift.operation, status = drift.status, pointer = %drift.pointer, "response drift: {}", drift.message);
            }
            let response: Response = served.response;
            response
        }
    };
    let handler: SandboxHandler = Arc::new(move |request| Box::pin(handler(request)));
    let app = Front::new(options.limits.max_header_bytes, None, handler);
    let shutdown = CancellationToken::new();
    let token = shutdown.clone();
    let timeouts = crate::http::listener::Timeouts::of(&options.limits);
    let task = tokio::spawn(crate::http::listener::serve(listener, app, timeouts, token));
    Ok(MockServer {
        local_addr,
        revision,
        shutdown,
        task,
    })
}
