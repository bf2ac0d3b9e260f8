//! A sandbox's namespace and everything in it, as Kubernetes objects.

use serde_json::{Value, json};

use crate::{INSTALL_LABEL, MANAGED_BY, NamespaceSettings, SANDBOX_LABEL};

/// The sandbox's project revision and settings, in the ConfigMap.
pub const BUNDLE_FILE: &str = "sandbox.json";
/// Its API keys (hashes), in the Secret.
pub const KEYS_FILE: &str = "keys.json";
/// Where both are mounted in the pod (`--sandbox-bundle`).
const BUNDLE_DIR: &str = "/etc/sbx/sandbox";
/// Every object in the namespace is named so.
const NAME: &str = "sbx";
/// The `sbx` container's port.
const PORT: u16 = 8080;
/// The non-root user of the image (distroless `nonroot`).
const UID: u32 = 65532;
/// Ranges `0.0.0.0/0` and `::/0` leave out: nothing inside the cluster or
/// the node, nor cloud metadata.
const PRIVATE_V4: [&str; 6] = [
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "169.254.0.0/16",
    "100.64.0.0/10",
    "127.0.0.0/8",
];
const PRIVATE_V6: [&str; 3] = ["fc00::/7", "fe80::/10", "::1/128"];

/// One sandbox, as its namespace serves it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    /// The sandbox's id, which is also its namespace's name (`sbx-…`, a
    /// DNS label).
    pub sandbox_id: String,
    /// The domain sandboxes answer under: the Ingress serves
    /// `{id}.{base_domain}`.
    pub base_domain: String,
    /// The scheme clients reach it with (`https` behind a TLS-terminating
    /// ingress): its server's public URL is `{scheme}://{host}`.
    pub scheme: String,
    /// The single-sandbox bundle ([`BUNDLE_FILE`]): JSON text.
    pub bundle: String,
    /// The sandbox's keys ([`KEYS_FILE`]): JSON text.
    pub keys: String,
    /// The admin token of its `sbx`, which only the servers know.
    pub admin_token: String,
    /// When the sandbox expires (RFC 3339), noted on the namespace.
    pub expires_at: Option<String>,
}

impl Instance {
    /// The host its Ingress serves.
    pub fn host(&self) -> String {
        format!("{}.{}", self.sandbox_id, self.base_domain)
    }
}

/// Everything [`render`] makes, in the order it is applied: the namespace
/// and its guards first, then the Deployment, then what the Deployment
/// owns (owner references need its uid: see [`Objects::owned_by`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Objects {
    pub namespace: Value,
    pub resource_quota: Value,
    pub limit_range: Value,
    pub default_deny: Value,
    pub allow: Value,
    pub deployment: Value,
    pub config_map: Value,
    pub secret: Value,
    pub claim: Value,
    pub service: Value,
    pub ingress: Value,
}

impl Objects {
    /// The namespace and what guards it: applied first.
    pub fn guards(&self) -> [&Value; 5] {
        [
            &self.namespace,
            &self.resource_quota,
            &self.limit_range,
            &self.default_deny,
            &self.allow,
        ]
    }

    /// What the Deployment uses, and owns once [`Self::owned_by`] says so.
    pub fn owned(&self) -> [&Value; 5] {
        [
            &self.config_map,
            &self.secret,
            &self.claim,
            &self.service,
            &self.ingress,
        ]
    }

    /// Every object, in order.
    pub fn all(&self) -> Vec<&Value> {
        let mut all = self.guards().to_vec();
        all.push(&self.deployment);
        all.extend(self.owned());
        all
    }

    /// Gives each object the Deployment uses an owner reference to it
    /// (`uid`): deleting the sandbox's `sbx` takes them along.
    pub fn owned_by(&mut self, deployment_uid: &str) -> [&Value; 5] {
        let owner = json!([{
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "name": NAME,
            "uid": deployment_uid,
            "blockOwnerDeletion": true,
        }]);
        for object in [
            &mut self.config_map,
            &mut self.secret,
            &mut self.claim,
            &mut self.service,
            &mut self.ingress,
        ] {
            object["metadata"]["ownerReferences"] = owner.clone();
        }
        self.owned()
    }
}

/// The objects that isolate and serve `instance`.
pub fn render(instance: &Instance, settings: &NamespaceSettings) -> Objects {
    let namespace = instance.sandbox_id.as_str();
    let labels = json!({
        MANAGED_BY.0: MANAGED_BY.1,
        INSTALL_LABEL: settings.install,
        SANDBOX_LABEL: namespace,
    });
    let pod_labels = json!({
        "app.kubernetes.io/name": NAME,
        "app.kubernetes.io/instance": namespace,
    });
    let metadata = |kind_name: &str| json!({"name": kind_name, "namespace": namespace, "labels": labels.clone()});
    let mut namespace_labels = labels.clone();
    for mode in ["enforce", "audit", "warn"] {
        namespace_labels[format!("pod-security.kubernetes.io/{mode}")] = json!("restricted");
        namespace_labels[format!("pod-security.kubernetes.io/{mode}-version")] = json!("latest");
    }
    let mut namespace_metadata = json!({"name": namespace, "labels": namespace_labels});
    if let Some(at) = &instance.expires_at {
        namespace_metadata["annotations"] = json!({"sbx.dev/expires-at": at});
    }
    let compute = json!({"cpu": settings.cpu, "memory": settings.memory});
    Objects {
        namespace: json!({
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": namespace_metadata,
        }),
        resource_quota: json!({
            "apiVersion": "v1",
            "kind": "ResourceQuota",
            "metadata": metadata(NAME),
            "spec": {"hard": {
                // Two pods: the running one and its replacement while it stops.
                "pods": "2",
                "requests.cpu": settings.cpu,
                "limits.cpu": settings.cpu,
                "requests.memory": settings.memory,
                "limits.memory": settings.memory,
                "requests.storage": settings.storage,
                "persistentvolumeclaims": "1",
                "services": "1",
                "services.loadbalancers": "0",
                "services.nodeports": "0",
            }},
        }),
        limit_range: json!({
            "apiVersion": "v1",
            "kind": "LimitRange",
            "metadata": metadata(NAME),
            "spec": {"limits": [{
                "type": "Container",
                "default": compute,
                "defaultRequest": compute,
                "max": compute,
            }]},
        }),
        default_deny: json!({
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": metadata("default-deny"),
            "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]},
        }),
        allow: allow_policy(metadata(NAME), &pod_labels, settings),
        deployment: deployment(instance, settings, metadata(NAME), &pod_labels),
        config_map: json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": metadata(NAME),
            "data": {BUNDLE_FILE: instance.bundle},
        }),
        secret: json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": metadata(NAME),
            "type": "Opaque",
            "stringData": {KEYS_FILE: instance.keys, "admin-token": instance.admin_token},
        }),
        claim: claim(metadata(NAME), settings),
        service: json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": metadata(NAME),
            "spec": {
                "type": "ClusterIP",
                "selector": pod_labels,
                "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}],
            },
        }),
        ingress: ingress(instance, settings, metadata(NAME)),
    }
}

/// In: the ingress controller and the servers, to `sbx`'s port. Out: the
/// cluster's DNS and the configured ranges. Everything else stays denied.
fn allow_policy(metadata: Value, pod_labels: &Value, settings: &NamespaceSettings) -> Value {
    let from_namespace = |name: &str| json!({"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": name}}});
    let outside: Vec<Value> = settings
        .egress
        .iter()
        .map(|cidr| {
            let except: &[&str] = match cidr.as_str() {
                "0.0.0.0/0" => &PRIVATE_V4,
                "::/0" => &PRIVATE_V6,
                _ => &[],
            };
            if except.is_empty() {
                json!({"ipBlock": {"cidr": cidr}})
            } else {
                json!({"ipBlock": {"cidr": cidr, "except": except}})
            }
        })
        .collect();
    let mut egress = vec![json!({
        "to": [{
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
            "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
        }],
        "ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}],
    })];
    if !outside.is_empty() {
        egress.push(json!({"to": outside}));
    }
    json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": metadata,
        "spec": {
            "podSelector": {"matchLabels": pod_labels},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [{
                "from": [
                    from_namespace(&settings.ingress_namespace),
                    from_namespace(&settings.server_namespace),
                ],
                "ports": [{"port": PORT, "protocol": "TCP"}],
            }],
            "egress": egress,
        },
    })
}

/// `sbx serve --sandbox-bundle`: one pod at a time (its SQLite database
/// is on a ReadWriteOnce volume), meeting the restricted Pod Security
/// Standard, probed on its own health endpoints.
fn deployment(
    instance: &Instance,
    settings: &NamespaceSettings,
    metadata: Value,
    pod_labels: &Value,
) -> Value {
    let probe = |path: &str, period: u32| json!({"httpGet": {"path": path, "port": "http"}, "periodSeconds": period, "timeoutSeconds": 2});
    let env = json!([
        {"name": "SBX_LISTEN", "value": format!("0.0.0.0:{PORT}")},
        {"name": "SBX_DATA_DIR", "value": "/var/lib/sbx"},
        {"name": "SBX_BASE_DOMAIN", "value": instance.base_domain},
        {"name": "SBX_PUBLIC_URL", "value": format!("{}://{}", instance.scheme, instance.host())},
        {"name": "SBX_SANDBOX_BUNDLE", "value": BUNDLE_DIR},
        {"name": "SBX_ADMIN_TOKEN", "valueFrom": {"secretKeyRef": {"name": NAME, "key": "admin-token"}}},
        {"name": "SBX_LOG", "value": "info"},
    ]);
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata,
        "spec": {
            "replicas": 1,
            "revisionHistoryLimit": 2,
            "selector": {"matchLabels": pod_labels},
            "strategy": {"type": "Recreate"},
            "template": {
                "metadata": {"labels": pod_labels},
                "spec": {
                    "automountServiceAccountToken": false,
                    "enableServiceLinks": false,
                    "terminationGracePeriodSeconds": 30,
                    "securityContext": {
                        "runAsNonRoot": true,
                        "runAsUser": UID,
                        "runAsGroup": UID,
                        "fsGroup": UID,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "containers": [{
                        "name": NAME,
                        "image": settings.image,
                        "imagePullPolicy": "IfNotPresent",
                        "args": ["serve"],
                        "env": env,
                        "ports": [{"name": "http", "containerPort": PORT, "protocol": "TCP"}],
                        "startupProbe": {
                            "httpGet": {"path": "/healthz", "port": "http"},
                            "periodSeconds": 2,
                            "failureThreshold": 60,
                        },
                        "livenessProbe": probe("/healthz", 10),
                        "readinessProbe": probe("/readyz", 5),
                        "resources": {
                            "requests": {"cpu": settings.cpu, "memory": settings.memory},
                            "limits": {"cpu": settings.cpu, "memory": settings.memory},
                        },
                        "securityContext": {
                            "allowPrivilegeEscalation": false,
                            "privileged": false,
                            "readOnlyRootFilesystem": true,
                            "runAsNonRoot": true,
                            "capabilities": {"drop": ["ALL"]},
                        },
                        "volumeMounts": [
                            {"name": "bundle", "mountPath": BUNDLE_DIR, "readOnly": true},
                            {"name": "data", "mountPath": "/var/lib/sbx"},
                            {"name": "tmp", "mountPath": "/tmp"},
                        ],
                    }],
                    "volumes": [
                        {"name": "bundle", "projected": {"sources": [
                            {"configMap": {"name": NAME, "items": [{"key": BUNDLE_FILE, "path": BUNDLE_FILE}]}},
                            {"secret": {"name": NAME, "items": [{"key": KEYS_FILE, "path": KEYS_FILE}]}},
                        ]}},
                        {"name": "data", "persistentVolumeClaim": {"claimName": NAME}},
                        {"name": "tmp", "emptyDir": {"sizeLimit": "256Mi"}},
                    ],
                },
            },
        },
    })
}

fn claim(metadata: Value, settings: &NamespaceSettings) -> Value {
    let mut spec = json!({
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": settings.storage}},
    });
    if let Some(class) = &settings.storage_class {
        spec["storageClassName"] = json!(class);
    }
    json!({
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": metadata,
        "spec": spec,
    })
}

fn ingress(instance: &Instance, settings: &NamespaceSettings, metadata: Value) -> Value {
    let host = instance.host();
    let spec = json!({
        "ingressClassName": settings.ingress_class,
        "rules": [{"host": host, "http": {"paths": [{
            "path": "/",
            "pathType": "Prefix",
            "backend": {"service": {"name": NAME, "port": {"name": "http"}}},
        }]}}],
    });
    json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": metadata,
        "spec": spec,
    })
}
