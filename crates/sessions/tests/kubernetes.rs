//! The Kubernetes runtime's manifests, validated by a tool nobody here
//! wrote (`kubernetes-validate`, with the Kubernetes API's own schemas,
//! which `.ci/run` installs) and held to the restricted Pod Security
//! Standard. No cluster runs here: the runtime's API calls are untested.

use sbx_sessions::{
    BoxSpec, GroupLimits, Limits,
    runtime::kubernetes::{PodSettings, manifests},
};
use serde_json::Value;

fn spec() -> BoxSpec {
    BoxSpec {
        id: "ses_AbC123xyz".to_owned(),
        workspace: "/unused".into(),
        uid: 2_000_017,
        limits: Limits::default(),
        group: GroupLimits {
            memory_bytes: 256 << 20,
            pids: 64,
            cpu_cores: 0.5,
        },
        egress: None,
        layer: None,
    }
}

fn settings() -> PodSettings {
    PodSettings {
        namespace: "sandboxes".to_owned(),
        image: "python:3.12-slim".to_owned(),
        instance: "a1b2c3d4".to_owned(),
    }
}

/// `kubernetes-validate --strict` on each document; its verdicts.
fn validate(documents: &[Value]) -> (bool, String) {
    let documents: Vec<&Value> = documents.iter().collect();
    let verdict = sbx_provision::validate::validate(&documents)
        .expect("kubernetes-validate runs: .ci/run installs it (pip install kubernetes-validate)");
    (verdict.valid, verdict.said)
}

#[test]
fn pods_and_policies_are_valid_kubernetes_objects() {
    let (pod, policy) = manifests(&spec(), &settings());
    let pod = serde_json::to_value(&pod).unwrap();
    let policy = serde_json::to_value(&policy).unwrap();
    assert_eq!(
        (pod["apiVersion"].as_str(), pod["kind"].as_str()),
        (Some("v1"), Some("Pod"))
    );
    assert_eq!(policy["kind"], "NetworkPolicy");
    let (valid, said) = validate(&[pod.clone(), policy]);
    assert!(valid, "{said}");

    // The validator does refuse what is not one.
    let mut broken = pod;
    broken["spec"]["containers"][0]["securityContext"]["runAsNonRoot"] = "yes".into();
    broken["spec"]["restartPolicy"] = Value::Null;
    broken["spec"]["hostnam"] = "typo".into();
    let (valid, said) = validate(&[broken]);
    assert!(!valid, "a broken pod must be refused: {said}");
}

#[test]
fn pods_meet_the_restricted_pod_security_standard() {
    let (pod, policy) = manifests(&spec(), &settings());
    let pod = serde_json::to_value(&pod).unwrap();
    let spec = &pod["spec"];
    // https://kubernetes.io/docs/concepts/security/pod-security-standards/#restricted
    for shared in ["hostNetwork", "hostPID", "hostIPC"] {
        assert!(spec[shared].is_null() || spec[shared] == false, "{shared}");
    }
    assert!(
        spec["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|v| v.get("emptyDir").is_some())
    );
    assert_eq!(spec["securityContext"]["runAsNonRoot"], true);
    assert_eq!(spec["securityContext"]["runAsUser"], 2_000_017);
    assert_eq!(
        spec["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    assert_eq!(spec["automountServiceAccountToken"], false);
    for container in spec["containers"].as_array().unwrap() {
        let context = &container["securityContext"];
        assert_eq!(context["allowPrivilegeEscalation"], false);
        assert_eq!(context["privileged"], false);
        assert_eq!(context["runAsNonRoot"], true);
        assert_eq!(context["readOnlyRootFilesystem"], true);
        assert_eq!(context["capabilities"]["drop"], serde_json::json!(["ALL"]));
        assert!(context["capabilities"]["add"].is_null());
        assert!(container["ports"].is_null());
        let limits = &container["resources"]["limits"];
        assert_eq!(limits["memory"], (256u64 << 20).to_string());
        assert_eq!(limits["cpu"], "500m");
        assert!(limits["ephemeral-storage"].is_string());
    }
    // Default-deny: both directions named, no rule allowing anything, and
    // it selects exactly this session's pod.
    let policy = serde_json::to_value(&policy).unwrap();
    assert_eq!(
        policy["spec"]["policyTypes"],
        serde_json::json!(["Ingress", "Egress"])
    );
    assert!(policy["spec"]["ingress"].is_null() && policy["spec"]["egress"].is_null());
    let selected = &policy["spec"]["podSelector"]["matchLabels"];
    let labels = &pod["metadata"]["labels"];
    for (key, value) in selected.as_object().unwrap() {
        assert_eq!(&labels[key], value);
    }
    // Names Kubernetes accepts (DNS labels).
    let name = pod["metadata"]["name"].as_str().unwrap();
    assert!(
        name.len() <= 63
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
        "{name}"
    );
}
