//! Sessions as Kubernetes pods (crate `kube`): one pod per session in a
//! namespace of its own choosing, each run an `exec` in it.
//!
//! The pod meets the **restricted** Pod Security Standard (non-root uid,
//! no privilege escalation, every capability dropped, the runtime's
//! seccomp profile, a read-only root), carries no service-account token,
//! and has its CPU, memory and disk limited; a NetworkPolicy selecting
//! only it denies all ingress and egress. Its workspace and `/tmp` are
//! `emptyDir` volumes with size limits.
//!
//! Validated, not run, here: [`manifests`] are checked against the
//! Kubernetes schemas in tests; no cluster is reachable from this machine.
//! What the other runtimes do that this one does not yet: the files API,
//! snapshots, handler mode (its result is a workspace file) and function
//! behaviours work on a workspace on the server's machine, which a pod
//! does not share, and egress allowlists and package templates are bound
//! from it — those are refused, saying so (503 or a failed create).

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use k8s_openapi::{
    api::{
        core::v1::{
            Capabilities, Container, EmptyDirVolumeSource, Pod, PodSecurityContext, PodSpec,
            ResourceRequirements, SeccompProfile, SecurityContext, Volume, VolumeMount,
        },
        networking::v1::{NetworkPolicy, NetworkPolicySpec},
    },
    apimachinery::pkg::{
        api::resource::Quantity,
        apis::meta::v1::{LabelSelector, ObjectMeta},
    },
};
use kube::api::{Api, AttachParams, DeleteParams, ListParams, PostParams};

use super::{
    BoxFuture, BoxSpec, Control, Exit, INSTANCE_LABEL, Process, RunUsage, Runtime, SESSION_LABEL,
    SessionBox, box_name,
};
use crate::{jail, run::Program};

/// The session container's name in its pod.
const CONTAINER: &str = "session";

/// The pod's first process: it waits, and reaps the orphans runs leave.
const INIT: [&str; 3] = [
    "/bin/sh",
    "-c",
    "trap 'exit 0' TERM; while :; do sleep 3600 & wait; done",
];

/// How long a pod may take to be scheduled and start.
const START_TIMEOUT: Duration = Duration::from_secs(120);

/// Where, and from what image, session pods are made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodSettings {
    pub namespace: String,
    /// An image with `sh`, and `python3` and `node` for those templates.
    pub image: String,
    /// The server instance the pods are labelled with.
    pub instance: String,
}

/// A session's pod and the NetworkPolicy that isolates it.
pub fn manifests(spec: &BoxSpec, settings: &PodSettings) -> (Pod, NetworkPolicy) {
    let name = box_name(&settings.instance, &spec.id);
    let labels = BTreeMap::from([
        (INSTANCE_LABEL.to_owned(), settings.instance.clone()),
        (SESSION_LABEL.to_owned(), label_value(&spec.id)),
        (
            "app.kubernetes.io/managed-by".to_owned(),
            "smartsandbox".to_owned(),
        ),
    ]);
    let metadata = ObjectMeta {
        name: Some(name.clone()),
        namespace: Some(settings.namespace.clone()),
        labels: Some(labels.clone()),
        ..ObjectMeta::default()
    };
    let runtime_default = || {
        Some(SeccompProfile {
            type_: "RuntimeDefault".to_owned(),
            localhost_profile: None,
        })
    };
    let uid = i64::from(spec.uid);
    let limits = &spec.limits;
    let quantity = |value: String| Quantity(value);
    let resources = BTreeMap::from([
        (
            "cpu".to_owned(),
            quantity(format!(
                "{}m",
                (spec.group.cpu_cores * 1000.0).ceil() as u64
            )),
        ),
        (
            "memory".to_owned(),
            quantity(spec.group.memory_bytes.to_string()),
        ),
        (
            "ephemeral-storage".to_owned(),
            quantity((limits.file_bytes + limits.tmp_bytes).to_string()),
        ),
    ]);
    let env = jail::environment(false, false, &[])
        .into_iter()
        .map(|(name, value)| k8s_openapi::api::core::v1::EnvVar {
            name,
            value: Some(value),
            value_from: None,
        })
        .collect();
    let pod = Pod {
        metadata: metadata.clone(),
        spec: Some(PodSpec {
            automount_service_account_token: Some(false),
            enable_service_links: Some(false),
            restart_policy: Some("Never".to_owned()),
            termination_grace_period_seconds: Some(0),
            hostname: Some("sandbox".to_owned()),
            security_context: Some(PodSecurityContext {
                run_as_non_root: Some(true),
                run_as_user: Some(uid),
                run_as_group: Some(uid),
                fs_group: Some(uid),
                seccomp_profile: runtime_default(),
                ..PodSecurityContext::default()
            }),
            containers: vec![Container {
                name: CONTAINER.to_owned(),
                image: Some(settings.image.clone()),
                image_pull_policy: Some("IfNotPresent".to_owned()),
                command: Some(INIT.map(str::to_owned).to_vec()),
                working_dir: Some("/workspace".to_owned()),
                env: Some(env),
                security_context: Some(SecurityContext {
                    allow_privilege_escalation: Some(false),
                    privileged: Some(false),
                    read_only_root_filesystem: Some(true),
                    run_as_non_root: Some(true),
                    capabilities: Some(Capabilities {
                        drop: Some(vec!["ALL".to_owned()]),
                        add: None,
                    }),
                    seccomp_profile: runtime_default(),
                    ..SecurityContext::default()
                }),
                resources: Some(ResourceRequirements {
                    limits: Some(resources.clone()),
                    requests: Some(resources),
                    ..ResourceRequirements::default()
                }),
                volume_mounts: Some(vec![
                    VolumeMount {
                        name: "workspace".to_owned(),
                        mount_path: "/workspace".to_owned(),
                        ..VolumeMount::default()
                    },
                    VolumeMount {
                        name: "tmp".to_owned(),
                        mount_path: "/tmp".to_owned(),
                        ..VolumeMount::default()
                    },
                ]),
                ..Container::default()
            }],
            volumes: Some(vec![
                Volume {
                    name: "workspace".to_owned(),
                    empty_dir: Some(EmptyDirVolumeSource {
                        medium: None,
                        size_limit: Some(quantity(limits.file_bytes.to_string())),
                    }),
                    ..Volume::default()
                },
                Volume {
                    name: "tmp".to_owned(),
                    empty_dir: Some(EmptyDirVolumeSource {
                        medium: Some("Memory".to_owned()),
                        size_limit: Some(quantity(limits.tmp_bytes.to_string())),
                    }),
                    ..Volume::default()
                },
            ]),
            ..PodSpec::default()
        }),
        status: None,
    };
    // Naming both directions with no rule lets nothing in or out.
    let policy = NetworkPolicy {
        metadata,
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(LabelSelector {
                match_labels: Some(BTreeMap::from([(
                    SESSION_LABEL.to_owned(),
                    label_value(&spec.id),
                )])),
                match_expressions: None,
            }),
            policy_types: Some(vec!["Ingress".to_owned(), "Egress".to_owned()]),
            ingress: None,
            egress: None,
        }),
    };
    (pod, policy)
}

/// A session id as a label value (letters, digits, `-`, `_`, `.`).
fn label_value(id: &str) -> String {
    id.chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        .take(63)
        .collect()
}

fn api_error(error: kube::Error) -> String {
    format!("the Kubernetes API answered: {error}")
}

/// Sessions as pods of one namespace.
#[derive(Clone)]
pub struct Kubernetes {
    client: kube::Client,
    settings: PodSettings,
}

impl std::fmt::Debug for Kubernetes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kubernetes")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Kubernetes {
    /// Connects as the environment says (in-cluster service account, or
    /// `KUBECONFIG`), failing with what to do when no cluster answers.
    pub async fn connect(settings: PodSettings) -> Result<Self, String> {
        let client = kube::Client::try_default().await.map_err(|e| {
            format!("no Kubernetes cluster is configured ({e}): run in a cluster or set KUBECONFIG")
        })?;
        client
            .apiserver_version()
            .await
            .map_err(|e| format!("the Kubernetes API does not answer: {e}"))?;
        Ok(Self { client, settings })
    }

    fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.client.clone(), &self.settings.namespace)
    }

    fn policies(&self) -> Api<NetworkPolicy> {
        Api::namespaced(self.client.clone(), &self.settings.namespace)
    }

    /// Waits until `name` runs, or fails saying why it does not.
    async fn running(&self, name: &str) -> Result<(), String> {
        let deadline = tokio::time::Instant::now() + START_TIMEOUT;
        loop {
            let pod = self.pods().get(name).await.map_err(api_error)?;
            let phase = pod.status.as_ref().and_then(|s| s.phase.clone());
            match phase.as_deref() {
                Some("Running") => return Ok(()),
                Some("Failed" | "Succeeded") => {
                    return Err(format!("its pod {name} stopped before it ran"));
                }
                _ if tokio::time::Instant::now() >= deadline => {
                    return Err(format!(
                        "its pod {name} did not start in {} s",
                        START_TIMEOUT.as_secs()
                    ));
                }
                _ => tokio::time::sleep(Duration::from_millis(250)).await,
            }
        }
    }

    async fn remove(&self, name: &str) {
        let delete = DeleteParams::default().grace_period(0);
        if let Err(error) = self.pods().delete(name, &delete).await
            && !matches!(&error, kube::Error::Api(status) if status.code == 404)
        {
            tracing::warn!(%error, pod = %name, "removing a session's pod failed");
        }
        let _ = self.policies().delete(name, &delete).await;
    }
}

impl Runtime for Kubernetes {
    fn name(&self) -> &'static str {
        "kubernetes"
    }

    fn open(&self, spec: BoxSpec) -> BoxFuture<'_, Result<Arc<dyn SessionBox>, String>> {
        Box::pin(async move {
            if spec.egress.is_some() || spec.layer.is_some() {
                return Err(
                    "the kubernetes runtime runs sessions without network or package templates; use the bwrap or docker runtime for those"
                        .to_owned(),
                );
            }
            let (pod, policy) = manifests(&spec, &self.settings);
            let name = pod.metadata.name.clone().unwrap_or_default();
            let post = PostParams::default();
            // The policy first: the pod never runs unisolated.
            self.policies()
                .create(&post, &policy)
                .await
                .map_err(api_error)?;
            let started = match self.pods().create(&post, &pod).await {
                Ok(_) => self.running(&name).await,
                Err(error) => Err(api_error(error)),
            };
            if let Err(error) = started {
                self.remove(&name).await;
                return Err(error);
            }
            Ok(Arc::new(PodBox {
                runtime: self.clone(),
                name,
            }) as Arc<dyn SessionBox>)
        })
    }

    fn sweep(&self) -> BoxFuture<'_, usize> {
        Box::pin(async move {
            let selector = format!("{INSTANCE_LABEL}={}", self.settings.instance);
            let list = ListParams::default().labels(&selector);
            let delete = DeleteParams::default().grace_period(0);
            let _ = self.policies().delete_collection(&delete, &list).await;
            match self.pods().delete_collection(&delete, &list).await {
                Ok(either) => either.left().map_or(0, |pods| pods.items.len()),
                Err(_) => 0,
            }
        })
    }
}

/// One session's pod.
#[derive(Debug)]
pub struct PodBox {
    runtime: Kubernetes,
    name: String,
}

impl SessionBox for PodBox {
    fn start(&self, program: Program) -> BoxFuture<'_, Result<Process, String>> {
        Box::pin(async move {
            // The run's shell notes its pid, for a kill from another exec;
            // an exec takes no environment: `env` sets it.
            let pid_file = format!("/tmp/.sbx-run-{}", super::run_token());
            let mut argv: Vec<String> = [
                "sh",
                "-c",
                "echo $$ > \"$0\" && exec \"$@\"",
                &pid_file,
                "env",
            ]
            .map(str::to_owned)
            .to_vec();
            argv.extend(
                program
                    .env
                    .iter()
                    .filter(|(name, _)| jail::valid_env_name(name))
                    .map(|(name, value)| format!("{name}={value}")),
            );
            argv.extend(program.argv);
            let attach = AttachParams::default()
                .container(CONTAINER)
                .stdin(true)
                .stdout(true)
                .stderr(true);
            let mut attached = self
                .runtime
                .pods()
                .exec(&self.name, argv, &attach)
                .await
                .map_err(api_error)?;
            let stdin = attached.stdin().map(|s| Box::pin(s) as _);
            let stdout = attached.stdout().map(|s| Box::pin(s) as _);
            let stderr = attached.stderr().map(|s| Box::pin(s) as _);
            let status = attached.take_status();
            Ok(Process {
                pid: 0,
                stdin,
                stdout,
                stderr,
                control: Box::new(ExecControl {
                    pods: self.runtime.pods(),
                    pod: self.name.clone(),
                    pid_file,
                    attached: Some(attached),
                    status: status.map(|s| Box::pin(s) as _),
                }),
            })
        })
    }

    fn memory_held(&self) -> Option<u64> {
        None
    }

    fn fault(&self) -> BoxFuture<'_, Option<String>> {
        Box::pin(async move {
            match self.runtime.pods().get(&self.name).await {
                Ok(pod) => {
                    let phase = pod.status.and_then(|s| s.phase);
                    (phase.as_deref() != Some("Running"))
                        .then(|| format!("its pod is {}", phase.unwrap_or_default()))
                }
                Err(kube::Error::Api(status)) if status.code == 404 => {
                    Some("its pod was removed from outside the server".to_owned())
                }
                Err(_) => None,
            }
        })
    }

    fn close(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move { self.runtime.remove(&self.name).await })
    }

    fn shares_workspace(&self) -> bool {
        false
    }
}

type StatusFuture = std::pin::Pin<
    Box<
        dyn std::future::Future<
                Output = Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Status>,
            > + Send,
    >,
>;

/// One `exec` in a pod.
struct ExecControl {
    pods: Api<Pod>,
    pod: String,
    /// Where the run's first process wrote its pid.
    pid_file: String,
    attached: Option<kube::api::AttachedProcess>,
    status: Option<StatusFuture>,
}

impl Control for ExecControl {
    fn wait(&mut self) -> BoxFuture<'_, std::io::Result<Exit>> {
        Box::pin(async move {
            let Some(status) = self.status.take() else {
                return Ok(Exit::default());
            };
            let status = status.await;
            // Success, or a failure whose cause names the exit code.
            let code = match status {
                Some(status) if status.status.as_deref() == Some("Success") => Some(0),
                Some(status) => status
                    .details
                    .and_then(|d| d.causes)
                    .into_iter()
                    .flatten()
                    .find(|c| c.reason.as_deref() == Some("ExitCode"))
                    .and_then(|c| c.message)
                    .and_then(|m| m.parse().ok()),
                None => None,
            };
            Ok(Exit { code, signal: None })
        })
    }

    fn kill(&mut self) -> BoxFuture<'_, std::io::Result<Exit>> {
        Box::pin(async move {
            // The API has no call to kill an exec: another exec kills its
            // process group, then its stream is closed.
            let kill = format!(
                "pid=$(cat '{0}') && {{ kill -KILL -- -$pid 2>/dev/null || kill -KILL $pid; }}",
                self.pid_file
            );
            let attach = AttachParams::default().container(CONTAINER).stderr(false);
            if let Ok(killer) = self
                .pods
                .exec(&self.pod, ["sh", "-c", &kill], &attach)
                .await
            {
                let _ = tokio::time::timeout(Duration::from_secs(5), killer.join()).await;
            }
            if let Some(attached) = self.attached.take() {
                attached.abort();
            }
            Ok(Exit {
                code: None,
                signal: Some(9),
            })
        })
    }

    fn finish(mut self: Box<Self>) -> BoxFuture<'static, RunUsage> {
        Box::pin(async move {
            if let Some(attached) = self.attached.take() {
                let _ = attached.join().await;
            }
            RunUsage::default()
        })
    }
}
