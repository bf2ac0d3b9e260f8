//! A sandbox's namespace objects, validated by a tool nobody here wrote
//! (`kubernetes-validate --strict`, with the Kubernetes 1.33 schemas,
//! which `.ci/run` installs) and held to what isolation promises.

use sbx_provision::{Instance, NamespaceSettings, render};
use serde_json::{Value, json};

fn instance() -> Instance {
    Instance {
        sandbox_id: "sbx-ab12cd34ef56".to_owned(),
        base_domain: "sbx.example.com".to_owned(),
        scheme: "https".to_owned(),
        bundle: r#"{"format":1}"#.to_owned(),
        keys: "[]".to_owned(),
        admin_token: "a-token-of-the-instance-0123456789".to_owned(),
        expires_at: Some("2026-12-31T00:00:00Z".to_owned()),
    }
}

fn validate(documents: &[&Value]) -> (bool, String) {
    let verdict = sbx_provision::validate::validate(documents)
        .expect("kubernetes-validate runs: .ci/run installs it (pip install kubernetes-validate)");
    (verdict.valid, verdict.said)
}

#[test]
fn every_object_is_a_valid_kubernetes_object_and_the_validator_can_refuse() {
    let settings = NamespaceSettings {
        storage_class: Some("fast".to_owned()),
        egress: vec!["0.0.0.0/0".into(), "::/0".into(), "203.0.113.0/24".into()],
        ..NamespaceSettings::with_image("smartsandbox/sbx:0.1.0")
    };
    let mut objects = render(&instance(), &settings);
    objects.owned_by("5f1c2a1e-8d0b-4a8e-9c6e-0e8b3c9f1d2a");
    let all = objects.all();
    let (valid, said) = validate(&all);
    assert!(valid, "{said}");
    assert_eq!(said.matches(" passed for resource ").count(), 11, "{said}");

    let mut broken = objects.deployment.clone();
    broken["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] =
        json!("eighty");
    let (valid, said) = validate(&[&broken]);
    assert!(!valid, "a bad port passed: {said}");
}

#[test]
fn the_namespace_is_restricted_and_denies_by_default() {
    let objects = render(
        &instance(),
        &NamespaceSettings::with_image("smartsandbox/sbx:0.1.0"),
    );
    let labels = &objects.namespace["metadata"]["labels"];
    for mode in ["enforce", "audit", "warn"] {
        assert_eq!(
            labels[format!("pod-security.kubernetes.io/{mode}")],
            "restricted"
        );
    }
    assert_eq!(labels["sbx.dev/sandbox"], "sbx-ab12cd34ef56");
    assert_eq!(labels["sbx.dev/install"], "smartsandbox");
    assert_eq!(
        objects.namespace["metadata"]["annotations"]["sbx.dev/expires-at"],
        "2026-12-31T00:00:00Z"
    );

    // Default deny, both ways, for every pod.
    let deny = &objects.default_deny["spec"];
    assert_eq!(deny["podSelector"], json!({}));
    assert_eq!(deny["policyTypes"], json!(["Ingress", "Egress"]));
    assert!(deny.get("ingress").is_none() && deny.get("egress").is_none());

    // In: the ingress controller and the servers only. Out: DNS, and the
    // internet without private ranges.
    let allow = &objects.allow["spec"];
    let from: Vec<&str> = allow["ingress"][0]["from"]
        .as_array()
        .unwrap()
        .iter()
        .map(|peer| {
            peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
                .as_str()
                .unwrap()
        })
        .collect();
    assert_eq!(from, ["ingress-nginx", "smartsandbox"]);
    let outside = &allow["egress"][1]["to"];
    assert_eq!(outside[0]["ipBlock"]["cidr"], "0.0.0.0/0");
    let except = outside[0]["ipBlock"]["except"].as_array().unwrap();
    for private in ["10.0.0.0/8", "169.254.0.0/16", "192.168.0.0/16"] {
        assert!(except.contains(&json!(private)), "{private} is let out");
    }

    // Quota and limits bound the namespace.
    let hard = &objects.resource_quota["spec"]["hard"];
    assert_eq!(hard["limits.memory"], "512Mi");
    assert_eq!(hard["services.loadbalancers"], "0");
    assert_eq!(hard["services.nodeports"], "0");
    assert_eq!(
        objects.limit_range["spec"]["limits"][0]["max"]["cpu"],
        "500m"
    );
}

#[test]
fn the_sandbox_sbx_meets_the_restricted_pod_security_standard() {
    let objects = render(
        &instance(),
        &NamespaceSettings::with_image("smartsandbox/sbx:0.1.0"),
    );
    let pod = &objects.deployment["spec"]["template"]["spec"];
    assert_eq!(pod["automountServiceAccountToken"], false);
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    let container = &pod["containers"][0];
    let security = &container["securityContext"];
    assert_eq!(security["allowPrivilegeEscalation"], false);
    assert_eq!(security["readOnlyRootFilesystem"], true);
    assert_eq!(security["capabilities"]["drop"], json!(["ALL"]));
    assert!(
        pod["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|v| v.get("hostPath").is_none())
    );
    let env: Vec<(&str, &Value)> = container["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["name"].as_str().unwrap(), e))
        .collect();
    let var = |name: &str| env.iter().find(|(n, _)| *n == name).unwrap().1;
    assert_eq!(var("SBX_SANDBOX_BUNDLE")["value"], "/etc/sbx/sandbox");
    assert_eq!(var("SBX_BASE_DOMAIN")["value"], "sbx.example.com");
    assert_eq!(
        var("SBX_PUBLIC_URL")["value"],
        "https://sbx-ab12cd34ef56.sbx.example.com"
    );
    // The admin token comes from the Secret, never from the manifest.
    assert_eq!(
        var("SBX_ADMIN_TOKEN")["valueFrom"]["secretKeyRef"]["key"],
        "admin-token"
    );
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(objects.deployment["spec"]["strategy"]["type"], "Recreate");
    assert_eq!(
        objects.ingress["spec"]["rules"][0]["host"],
        "sbx-ab12cd34ef56.sbx.example.com"
    );
}

#[test]
fn what_the_deployment_uses_is_owned_by_it() {
    let mut objects = render(
        &instance(),
        &NamespaceSettings::with_image("smartsandbox/sbx:0.1.0"),
    );
    let owned = objects.owned_by("uid-1");
    assert_eq!(owned.len(), 5);
    for object in owned {
        let owner = &object["metadata"]["ownerReferences"][0];
        assert_eq!(
            (
                owner["kind"].as_str(),
                owner["name"].as_str(),
                owner["uid"].as_str()
            ),
            (Some("Deployment"), Some("sbx"), Some("uid-1")),
            "{object}"
        );
    }
    assert!(
        objects.namespace["metadata"]
            .get("ownerReferences")
            .is_none()
    );
}
