//! Applies a sandbox's objects to the cluster and reads back how they do.

use k8s_openapi::api::{
    apps::v1::Deployment,
    core::v1::{
        ConfigMap, LimitRange, Namespace, PersistentVolumeClaim, ResourceQuota, Secret, Service,
    },
    networking::v1::{Ingress, NetworkPolicy},
};
use kube::{
    Client,
    api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams},
    config::{KubeConfigOptions, Kubeconfig},
    discovery::ApiResource,
};
use serde_json::Value;

use crate::{INSTALL_LABEL, Instance, MANAGED_BY, NamespaceSettings, SANDBOX_LABEL, render};

/// The field manager of every server-side apply.
const FIELD_MANAGER: &str = "smartsandbox";

#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    #[error("the Kubernetes cluster could not be reached: {0}")]
    Connect(String),
    #[error("the Kubernetes API refused to {action}: {message}")]
    Refused { action: String, message: String },
}

/// How a sandbox's namespace is doing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Phase {
    /// Its `sbx` answers.
    Ready,
    /// Made, its `sbx` not available yet: why.
    Starting(String),
    /// It will not become available without help: why.
    Failed(String),
    /// Being deleted.
    Terminating,
    /// No such namespace.
    Missing,
}

/// Applies, watches and deletes sandbox namespaces in one cluster.
#[derive(Clone)]
pub struct Provisioner {
    client: Client,
    settings: NamespaceSettings,
}

impl std::fmt::Debug for Provisioner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Provisioner")
            .field("install", &self.settings.install)
            .finish_non_exhaustive()
    }
}

impl Provisioner {
    /// A client of the cluster the settings' kubeconfig names, or the
    /// environment's (in-cluster, or `KUBECONFIG`).
    pub async fn connect(settings: NamespaceSettings) -> Result<Self, ProvisionError> {
        let connect = |e: &dyn std::fmt::Display| ProvisionError::Connect(e.to_string());
        let config = match &settings.kubeconfig {
            Some(path) => {
                let kubeconfig = Kubeconfig::read_from(path).map_err(|e| connect(&e))?;
                kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
                    .await
                    .map_err(|e| connect(&e))?
            }
            None => kube::Config::infer().await.map_err(|e| connect(&e))?,
        };
        let client = Client::try_from(config).map_err(|e| connect(&e))?;
        Ok(Self { client, settings })
    }

    pub fn settings(&self) -> &NamespaceSettings {
        &self.settings
    }

    /// Where the servers reach the sandbox's `sbx`.
    pub fn service_url(&self, sandbox_id: &str) -> String {
        self.settings
            .service_url
            .replace("{namespace}", sandbox_id)
            .trim_end_matches('/')
            .to_owned()
    }

    /// Makes the namespace and everything in it as [`render`] says, or
    /// brings them back to it (server-side apply: applying again changes
    /// only what differs).
    pub async fn apply(&self, instance: &Instance) -> Result<(), ProvisionError> {
        let mut objects = render(instance, &self.settings);
        for object in objects.guards() {
            self.apply_one(object).await?;
        }
        let deployment = self.apply_one(&objects.deployment).await?;
        let uid = deployment
            .metadata
            .uid
            .ok_or_else(|| ProvisionError::Refused {
                action: format!("create the Deployment in {}", instance.sandbox_id),
                message: "it came back without a uid".to_owned(),
            })?;
        for object in objects.owned_by(&uid) {
            self.apply_one(object).await?;
        }
        Ok(())
    }

    async fn apply_one(&self, object: &Value) -> Result<DynamicObject, ProvisionError> {
        let kind = object["kind"].as_str().unwrap_or_default();
        let name = object["metadata"]["name"].as_str().unwrap_or_default();
        let resource = api_resource(kind);
        let api: Api<DynamicObject> = match object["metadata"]["namespace"].as_str() {
            Some(namespace) => Api::namespaced_with(self.client.clone(), namespace, &resource),
            None => Api::all_with(self.client.clone(), &resource),
        };
        api.patch(
            name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(object),
        )
        .await
        .map_err(|e| refused(format!("apply {kind} {name}"), e))
    }

    /// How the sandbox's namespace and `sbx` are doing.
    pub async fn phase(&self, sandbox_id: &str) -> Result<Phase, ProvisionError> {
        let namespaces: Api<Namespace> = Api::all(self.client.clone());
        let Some(namespace) = namespaces
            .get_opt(sandbox_id)
            .await
            .map_err(|e| refused(format!("read namespace {sandbox_id}"), e))?
        else {
            return Ok(Phase::Missing);
        };
        if namespace.metadata.deletion_timestamp.is_some()
            || namespace.status.and_then(|s| s.phase).as_deref() == Some("Terminating")
        {
            return Ok(Phase::Terminating);
        }
        let deployments: Api<Deployment> = Api::namespaced(self.client.clone(), sandbox_id);
        let Some(deployment) = deployments
            .get_opt("sbx")
            .await
            .map_err(|e| refused(format!("read the Deployment in {sandbox_id}"), e))?
        else {
            return Ok(Phase::Starting("its Deployment is not made yet".to_owned()));
        };
        let status = deployment.status.unwrap_or_default();
        if status.available_replicas.unwrap_or(0) >= 1 {
            return Ok(Phase::Ready);
        }
        let conditions = status.conditions.unwrap_or_default();
        if let Some(stuck) = conditions.iter().find(|c| {
            c.type_ == "Progressing"
                && c.status == "False"
                && c.reason.as_deref() == Some("ProgressDeadlineExceeded")
        }) {
            return Ok(Phase::Failed(format!(
                "its sbx did not start: {}",
                stuck
                    .message
                    .as_deref()
                    .unwrap_or("progress deadline exceeded")
            )));
        }
        let why = conditions
            .iter()
            .find(|c| c.status == "False")
            .and_then(|c| c.message.clone())
            .unwrap_or_else(|| "waiting for its sbx to be ready".to_owned());
        Ok(Phase::Starting(why))
    }

    /// Deletes the sandbox's namespace, and with it everything in it.
    /// Deleting one that is gone is no error.
    pub async fn delete(&self, sandbox_id: &str) -> Result<(), ProvisionError> {
        let namespaces: Api<Namespace> = Api::all(self.client.clone());
        match namespaces
            .delete(sandbox_id, &DeleteParams::background())
            .await
        {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
            Err(e) => Err(refused(format!("delete namespace {sandbox_id}"), e)),
        }
    }

    /// The sandboxes this installation has namespaces for (being deleted
    /// or not).
    pub async fn namespaced_sandboxes(&self) -> Result<Vec<String>, ProvisionError> {
        let namespaces: Api<Namespace> = Api::all(self.client.clone());
        let selector = format!(
            "{}={},{INSTALL_LABEL}={}",
            MANAGED_BY.0, MANAGED_BY.1, self.settings.install
        );
        let listed = namespaces
            .list(&ListParams::default().labels(&selector))
            .await
            .map_err(|e| refused("list namespaces".to_owned(), e))?;
        Ok(listed
            .items
            .into_iter()
            .filter_map(|namespace| namespace.metadata.labels?.remove(SANDBOX_LABEL))
            .collect())
    }
}

fn refused(action: String, error: kube::Error) -> ProvisionError {
    let message = match error {
        kube::Error::Api(status) => format!("{} ({})", status.message, status.code),
        other => other.to_string(),
    };
    ProvisionError::Refused { action, message }
}

/// The API resource of each kind [`render`] makes.
fn api_resource(kind: &str) -> ApiResource {
    match kind {
        "Namespace" => ApiResource::erase::<Namespace>(&()),
        "ResourceQuota" => ApiResource::erase::<ResourceQuota>(&()),
        "LimitRange" => ApiResource::erase::<LimitRange>(&()),
        "NetworkPolicy" => ApiResource::erase::<NetworkPolicy>(&()),
        "Deployment" => ApiResource::erase::<Deployment>(&()),
        "ConfigMap" => ApiResource::erase::<ConfigMap>(&()),
        "Secret" => ApiResource::erase::<Secret>(&()),
        "PersistentVolumeClaim" => ApiResource::erase::<PersistentVolumeClaim>(&()),
        "Service" => ApiResource::erase::<Service>(&()),
        "Ingress" => ApiResource::erase::<Ingress>(&()),
        other => unreachable!("render makes no {other}"),
    }
}
