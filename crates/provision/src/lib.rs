//! Namespace-per-sandbox isolation, for heavy tenants: a sandbox gets a
//! Kubernetes namespace of its own, with restricted Pod Security, a
//! default-deny NetworkPolicy, a ResourceQuota and a LimitRange, and its
//! own `sbx` serving only it (single-sandbox mode, `--sandbox-bundle`)
//! behind a Service and an Ingress for `{id}.{base domain}`.
//!
//! [`render`] makes the objects (pure, validated against the Kubernetes
//! schemas in tests); [`Provisioner`] applies them with server-side apply
//! (field manager `smartsandbox`), reads their state back and deletes the
//! namespace. The reconcile loop that drives it lives in the server.

mod provisioner;
mod render;
mod settings;
pub mod validate;

pub use provisioner::{Phase, ProvisionError, Provisioner};
pub use render::{BUNDLE_FILE, Instance, KEYS_FILE, Objects, render};
pub use settings::NamespaceSettings;

/// Labels every object made here carries, so that what this installation
/// made can be listed (and what it no longer needs deleted).
pub const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "smartsandbox");
/// The installation a namespace belongs to ([`NamespaceSettings::install`]).
pub const INSTALL_LABEL: &str = "sbx.dev/install";
/// The sandbox a namespace serves.
pub const SANDBOX_LABEL: &str = "sbx.dev/sandbox";
