//! `[namespaces]` in the server's config file.

use std::path::PathBuf;

use serde::Deserialize;

/// Where and how sandboxes with `isolation: namespace` are provisioned.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NamespaceSettings {
    /// The `sbx` image each namespace runs (the one `deploy/Dockerfile` builds).
    pub image: String,
    /// A kubeconfig file naming the cluster; by default the environment's
    /// (in-cluster service account, or `KUBECONFIG`).
    #[serde(default)]
    pub kubeconfig: Option<PathBuf>,
    /// Names this installation's namespaces, so that two installations can
    /// share a cluster.
    #[serde(default = "default_install")]
    pub install: String,
    /// The Ingress class of the sandboxes' Ingresses.
    #[serde(default = "default_ingress_class")]
    pub ingress_class: String,
    /// The namespace of the ingress controller, let in by the NetworkPolicy.
    #[serde(default = "default_ingress_namespace")]
    pub ingress_namespace: String,
    /// The namespace the SmartSandbox servers run in, let in to forward the
    /// sandbox's requests.
    #[serde(default = "default_server_namespace")]
    pub server_namespace: String,
    /// How the servers reach a sandbox's `sbx`: `{namespace}` is replaced
    /// (without it, one address for all, e.g. a proxy routing by `Host`).
    #[serde(default = "default_service_url")]
    pub service_url: String,
    /// Where a sandbox's `sbx` may connect (CIDRs), besides the cluster's
    /// DNS: its webhook deliveries and forwarding. `0.0.0.0/0` and `::/0`
    /// leave out private, loopback and link-local ranges.
    #[serde(default = "default_egress")]
    pub egress: Vec<String>,
    /// CPU of a sandbox's `sbx`: its request, limit and the namespace's quota.
    #[serde(default = "default_cpu")]
    pub cpu: String,
    /// Memory, likewise.
    #[serde(default = "default_memory")]
    pub memory: String,
    /// The size of its data volume.
    #[serde(default = "default_storage")]
    pub storage: String,
    /// The StorageClass of that volume; the cluster's default without.
    #[serde(default)]
    pub storage_class: Option<String>,
}

fn default_install() -> String {
    "smartsandbox".to_owned()
}
fn default_ingress_class() -> String {
    "nginx".to_owned()
}
fn default_ingress_namespace() -> String {
    "ingress-nginx".to_owned()
}
fn default_server_namespace() -> String {
    "smartsandbox".to_owned()
}
fn default_service_url() -> String {
    "http://sbx.{namespace}.svc.cluster.local".to_owned()
}
fn default_egress() -> Vec<String> {
    vec!["0.0.0.0/0".to_owned(), "::/0".to_owned()]
}
fn default_cpu() -> String {
    "500m".to_owned()
}
fn default_memory() -> String {
    "512Mi".to_owned()
}
fn default_storage() -> String {
    "1Gi".to_owned()
}

impl NamespaceSettings {
    /// Settings with every default, for `image`.
    pub fn with_image(image: &str) -> Self {
        Self {
            image: image.to_owned(),
            kubeconfig: None,
            install: default_install(),
            ingress_class: default_ingress_class(),
            ingress_namespace: default_ingress_namespace(),
            server_namespace: default_server_namespace(),
            service_url: default_service_url(),
            egress: default_egress(),
            cpu: default_cpu(),
            memory: default_memory(),
            storage: default_storage(),
            storage_class: None,
        }
    }

    /// What is wrong with them, in the config file's words.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.image.trim().is_empty() {
            problems.push("namespaces.image: name the sbx image namespaces run".to_owned());
        }
        if !self.service_url.starts_with("http://") {
            problems.push(format!(
                "namespaces.service_url {:?} must start with http:// (the servers reach sandboxes' own servers inside the cluster)",
                self.service_url
            ));
        }
        if !is_label_value(&self.install) {
            problems.push(format!(
                "namespaces.install {:?} must be a Kubernetes label value (letters, digits, '-', '_', '.'; at most 63)",
                self.install
            ));
        }
        for cidr in &self.egress {
            if cidr.parse::<ipnet::IpNet>().is_err() {
                problems.push(format!("namespaces.egress: {cidr:?} is not a CIDR"));
            }
        }
        for (name, value) in [
            ("cpu", &self.cpu),
            ("memory", &self.memory),
            ("storage", &self.storage),
        ] {
            if !is_quantity(value) {
                problems.push(format!(
                    "namespaces.{name} {value:?} is not a Kubernetes quantity (e.g. 500m, 512Mi, 1Gi)"
                ));
            }
        }
        problems
    }
}

fn is_label_value(text: &str) -> bool {
    text.len() <= 63
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        && text
            .bytes()
            .next()
            .is_none_or(|b| b.is_ascii_alphanumeric())
        && text
            .bytes()
            .last()
            .is_none_or(|b| b.is_ascii_alphanumeric())
}

/// A decimal number with at most one of Kubernetes' suffixes.
fn is_quantity(text: &str) -> bool {
    let digits = text.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let suffix = &text[digits.len()..];
    !digits.is_empty()
        && digits.parse::<f64>().is_ok_and(|n| n > 0.0)
        && [
            "", "m", "k", "M", "G", "T", "P", "E", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei",
        ]
        .contains(&suffix)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_sound_and_mistakes_are_named() {
        assert!(NamespaceSettings::with_image("sbx:1").problems().is_empty());
        let mut bad = NamespaceSettings::with_image(" ");
        bad.service_url = "sbx.svc".to_owned();
        bad.egress = vec!["10.0.0.0/33".to_owned()];
        bad.memory = "lots".to_owned();
        bad.install = "-x".to_owned();
        let problems = bad.problems().join("\n");
        for part in ["image", "service_url", "egress", "memory", "install"] {
            assert!(
                problems.contains(&format!("namespaces.{part}")),
                "{problems}"
            );
        }
    }
}
