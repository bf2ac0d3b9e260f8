//! Session snapshots in an S3-compatible store: a real one (moto's server,
//! which `.ci/run` installs), checked with a client nobody here wrote
//! (boto3).

use std::{
    net::TcpListener,
    process::{Child, Command, Stdio},
    time::Duration,
};

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{send, spawn_app_with};

/// moto's S3 server on a free port, stopped when dropped.
struct Moto {
    child: Child,
    url: String,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn moto() -> Moto {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new("python3")
        .args([
            "-m",
            "moto.server",
            "-H",
            "127.0.0.1",
            "-p",
            &port.to_string(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("python3 runs moto's server; .ci/run installs moto[server]");
    let moto = Moto {
        child,
        url: format!("http://127.0.0.1:{port}"),
    };
    let client = reqwest::Client::new();
    crate::helpers::eventually("moto to listen", Duration::from_secs(20), || {
        let request = client.put(format!("{}/sbx-snapshots", moto.url)).send();
        async move { request.await.ok().filter(|r| r.status().is_success()) }
    })
    .await;
    moto
}

/// The bucket's keys, as boto3 lists them.
async fn keys(moto: &Moto) -> Vec<String> {
    const LIST: &str = "import boto3, json, sys\ns3 = boto3.client('s3', endpoint_url=sys.argv[1], region_name='us-east-1', aws_access_key_id='testing', aws_secret_access_key='testing')\nprint(json.dumps([o['Key'] for o in s3.list_objects_v2(Bucket='sbx-snapshots').get('Contents', [])]))";
    let mut command = Command::new("python3");
    command.args(["-c", LIST, &moto.url]);
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .unwrap()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

#[tokio::test]
async fn a_workspace_is_saved_to_s3_and_a_new_session_starts_from_it() {
    let moto = moto().await;
    let endpoint = moto.url.clone();
    let app = spawn_app_with(tempfile::tempdir().unwrap(), move |config| {
        config.snapshot_store = Some("s3://sbx-snapshots/tenants".into());
        config.snapshot_store_options = [
            ("aws_endpoint", endpoint.as_str()),
            ("aws_allow_http", "true"),
            ("aws_access_key_id", "testing"),
            ("aws_secret_access_key", "testing"),
            ("aws_region", "us-east-1"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .to_vec();
    })
    .await;
    let session = |body: Value| {
        let request = app.admin(Method::POST, "/sessions").json(&body);
        async move { send(request).await }
    };
    let (status, first) = session(json!({"template": "python"})).await;
    assert_eq!(status, 201, "{first}");
    let first = first["id"].as_str().unwrap().to_owned();
    let (status, _) = send(
        app.admin(
            Method::PUT,
            &format!("/sessions/{first}/files?path=data/in.csv"),
        )
        .body("a,b\n1,2\n"),
    )
    .await;
    assert_eq!(status, 201);
    let (_, run) = send(
        app.admin(Method::POST, &format!("/sessions/{first}/executions"))
            .json(&json!({"code": "import os\nopen('model.txt', 'w').write('trained')\nos.symlink('/etc/shadow', 'leak')"})),
    )
    .await;
    assert_eq!(run["status"], "ok", "{run}");
    let (status, saved) = send(
        app.admin(Method::POST, &format!("/sessions/{first}/snapshots"))
            .json(&json!({"name": "project"})),
    )
    .await;
    assert_eq!(status, 201, "{saved}");
    assert_eq!(
        (saved["files"].as_u64(), saved["bytes"].as_u64()),
        (Some(2), Some(15)),
        "two files, the link left out: {saved}"
    );
    assert_eq!(saved["store"], "s3://sbx-snapshots/tenants", "{saved}");
    assert_eq!(keys(&moto).await, ["tenants/admin/project.tar"]);
    let (_, listed) = send(app.admin(Method::GET, "/snapshots")).await;
    assert_eq!(listed["items"][0]["name"], "project", "{listed}");
    let (status, _) = send(app.admin(Method::DELETE, &format!("/sessions/{first}"))).await;
    assert_eq!(status, 204);

    // A new session starts where the first one stopped.
    let (status, second) = session(json!({"template": "python", "snapshot": "project"})).await;
    assert_eq!(status, 201, "{second}");
    let second = second["id"].as_str().unwrap().to_owned();
    let (_, run) = send(
        app.admin(Method::POST, &format!("/sessions/{second}/executions"))
            .json(&json!({"code": "import os\nprint(open('data/in.csv').read().count('\\n'), open('model.txt').read(), os.path.lexists('leak'))\nopen('data/in.csv', 'a').write('3,4\\n')"})),
    )
    .await;
    assert_eq!(run["stdout"], "2 trained False\n", "{run}");

    for (body, status, pointer) in [
        (
            json!({"template": "python", "snapshot": "missing"}),
            404,
            None,
        ),
        (
            json!({"template": "python", "snapshot": "../x"}),
            422,
            Some("/snapshot"),
        ),
    ] {
        let (got, problem) = session(body.clone()).await;
        assert_eq!(got, status, "{body}: {problem}");
        if let Some(pointer) = pointer {
            assert_eq!(problem["errors"][0]["pointer"], pointer, "{problem}");
        }
    }
    let (status, _) = send(app.admin(Method::DELETE, "/snapshots/project")).await;
    assert_eq!(status, 204);
    let (status, _) = send(app.admin(Method::DELETE, "/snapshots/project")).await;
    assert_eq!(status, 404);
    assert_eq!(keys(&moto).await, Vec::<String>::new());
}
