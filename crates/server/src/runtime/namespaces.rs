//! Sandboxes in namespaces of their own: the cluster they are provisioned
//! in, and their requests passed on to their own server there.

use axum::{
    extract::Request,
    http::{HeaderValue, header},
    response::Response,
};
use sbx_engine::ProblemType;
use sbx_provision::{NamespaceSettings, Provisioner};
use sbx_store::{Isolation, IsolationState};
use tokio::sync::Notify;

use crate::{app::AppState, runtime::registry::LiveSandbox};

/// The cluster and what reaches into it.
pub struct Namespaces {
    pub provisioner: Provisioner,
    /// Wakes the reconcile loop: a sandbox was made or deleted.
    pub kick: Notify,
    /// Sandboxes whose namespaces are to be applied again (what they are
    /// made of changed).
    changed: std::sync::Mutex<Vec<String>>,
    client: crate::http::proxy::Client,
}

impl Namespaces {
    pub async fn connect(settings: NamespaceSettings) -> anyhow::Result<Self> {
        Ok(Self {
            provisioner: Provisioner::connect(settings).await?,
            kick: Notify::new(),
            changed: Default::default(),
            client: crate::http::proxy::client(),
        })
    }

    /// Has the sandbox's namespace applied again, soon.
    pub fn reapply(&self, sandbox_id: &str) {
        self.changed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(sandbox_id.to_owned());
        self.kick.notify_one();
    }

    /// The sandboxes [`Self::reapply`] named since the last call.
    pub fn take_changed(&self) -> Vec<String> {
        std::mem::take(&mut *self.changed.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// 503 `sandbox-provisioning`, saying why.
fn unavailable(detail: &str) -> Response {
    crate::data_plane::to_axum(ProblemType::SandboxProvisioning.response(detail))
}

/// Passes a request for `sandbox` to its own server and its answer back.
/// `as_admin`: a control-plane call, which the servers have authorized and
/// which is sent with the admin token of the sandbox's server instead of
/// the caller's credentials.
pub async fn pass_on(
    state: &AppState,
    sandbox: &LiveSandbox,
    isolation: &Isolation,
    request: Request,
    as_admin: bool,
) -> Response {
    let id = &sandbox.id;
    match isolation.state {
        IsolationState::Ready => {}
        IsolationState::Provisioning => {
            return unavailable(&format!(
                "sandbox \"{id}\" is getting a namespace of its own: {}",
                isolation
                    .message
                    .as_deref()
                    .unwrap_or("its server is starting")
            ));
        }
        IsolationState::Failed => {
            return unavailable(&format!(
                "sandbox \"{id}\"'s namespace failed: {}",
                isolation.message.as_deref().unwrap_or("no reason given")
            ));
        }
    }
    let Some(namespaces) = &state.namespaces else {
        return unavailable(&format!(
            "sandbox \"{id}\" has a namespace of its own, and this server has no [namespaces] settings to reach it"
        ));
    };
    let (parts, body) = request.into_parts();
    let mut headers = parts.headers.clone();
    if as_admin {
        headers.remove(header::COOKIE);
        match HeaderValue::from_str(&format!("Bearer {}", isolation.instance_token)) {
            Ok(token) => headers.insert(header::AUTHORIZATION, token),
            Err(_) => return unavailable(&format!("sandbox \"{id}\"'s server token is unusable")),
        };
    }
    let base = namespaces.provisioner.service_url(id);
    match crate::http::proxy::send(&namespaces.client, &base, &parts, headers, body).await {
        Ok(answer) => crate::http::proxy::answer(answer),
        Err(error) => {
            tracing::warn!(%error, sandbox = %id, "the sandbox's own server does not answer");
            unavailable(&format!(
                "sandbox \"{id}\"'s own server does not answer at {base}"
            ))
        }
    }
}
