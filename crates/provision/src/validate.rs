//! Kubernetes objects checked without a cluster: `kubernetes-validate`
//! (PyPI) with the Kubernetes API's own schemas, strictly (unknown fields
//! refused). What the tests of every manifest here run, and what an
//! operator can run on what they change.

use std::process::Command;

use serde_json::Value;

/// The Kubernetes version whose schemas objects are checked against.
pub const KUBERNETES_VERSION: &str = "1.33.0";

/// The validator's verdict on a set of objects.
#[derive(Debug)]
pub struct Verdict {
    pub valid: bool,
    /// What it said about each object.
    pub said: String,
}

/// Runs `kubernetes-validate --strict` on `objects`; an error when it
/// cannot run (not installed: `pip install kubernetes-validate`).
pub fn validate(objects: &[&Value]) -> std::io::Result<Verdict> {
    let dir = tempfile::tempdir()?;
    let mut paths = Vec::with_capacity(objects.len());
    for (i, object) in objects.iter().enumerate() {
        let path = dir.path().join(format!("{i}.json"));
        std::fs::write(&path, serde_json::to_vec(object)?)?;
        paths.push(path);
    }
    let output = Command::new("kubernetes-validate")
        .args(["-k", KUBERNETES_VERSION, "--strict"])
        .args(&paths)
        .output()?;
    Ok(Verdict {
        valid: output.status.success(),
        said: format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
    })
}
