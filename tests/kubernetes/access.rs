//! `deploy/rbac.yaml` as shipped: surge's chaos reaches its namespace and
//! is refused outside it.

use crate::*;

/// Creates pod `name` (label app=hapi) and writes its status Running and
/// Ready, as the kubelet of a node would.
pub async fn ready_pod(pods: &Api<Pod>, name: &str) {
    let pod: Pod = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": "hapi"}},
        "spec": {"containers": [{"name": "hapi", "image": "hapiproject/hapi:v8.8.0"}]}
    }))
    .unwrap();
    pods.create(&PostParams::default(), &pod).await.unwrap();
    let status = serde_json::json!({"status": {
        "phase": "Running",
        "podIP": "10.244.0.10",
        "startTime": "2026-12-06T12:00:00Z",
        "conditions": [{"type": "Ready", "status": "True"}]
    }});
    pods.patch_status(
        name,
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(&status),
    )
    .await
    .unwrap();
}

/// `deploy/rbac.yaml` for namespace `ns`, as its header says to make it.
pub fn rbac_for(ns: &str) -> String {
    std::fs::read_to_string(repo().join("deploy/rbac.yaml"))
        .unwrap()
        .replace("namespace: clinic", &format!("namespace: {ns}"))
}

/// A kubeconfig holding a token of ServiceAccount `surge` in `ns`, from the
/// real TokenRequest API.
pub async fn service_account_kubeconfig(plane: &ControlPlane, admin: &Client, ns: &str) -> PathBuf {
    let request = serde_json::json!({
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenRequest",
        "spec": { "expirationSeconds": 3600 }
    });
    let api: Api<k8s_openapi::api::core::v1::ServiceAccount> = Api::namespaced(admin.clone(), ns);
    let answer: k8s_openapi::api::authentication::v1::TokenRequest = api
        .create_subresource("token", "surge", &PostParams::default(), &request)
        .await
        .unwrap();
    let token = answer.status.expect("a token").token;
    let path = plane.dir.path().join(format!("surge-{ns}.kubeconfig"));
    std::fs::write(
        &path,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: t\n  cluster:\n    server: {}\n    certificate-authority: {}\n\
             users:\n- name: surge\n  user:\n    token: {token}\ncontexts:\n- name: t\n  context:\n    cluster: t\n    user: surge\n\
             current-context: t\n",
            plane.env["SURGE_KUBE_SERVER"], plane.env["SURGE_KUBE_CA"]
        ),
    )
    .unwrap();
    path
}

#[test]
fn the_shipped_role_reaches_its_namespace_and_is_refused_outside_it() {
    netns::run(|| async {
        let _turn = engine_lock().await;
        let plane = ControlPlane::up();
        let admin = plane.admin().await;
        namespace(&admin, "clinic").await;
        namespace(&admin, "billing").await;
        create_all(&admin, &rbac_for("clinic")).await;
        let kubeconfig = service_account_kubeconfig(&plane, &admin, "clinic").await;
        let as_surge = client_from(&kubeconfig).await;

        // The API server itself: pods of clinic listed, of billing refused.
        let clinic: Api<Pod> = Api::namespaced(as_surge.clone(), "clinic");
        assert!(clinic.list(&ListParams::default()).await.is_ok());
        let billing: Api<Pod> = Api::namespaced(as_surge.clone(), "billing");
        match billing.list(&ListParams::default()).await {
            Err(kube::Error::Api(status)) => assert_eq!(status.code, 403, "{status:?}"),
            other => panic!("expected 403, got {other:?}"),
        }

        // surge with that token: a chaos run in billing is refused before any
        // load, in one line naming the refusal; in clinic it kills its pod. (No
        // node runs pods here: the test writes the pod's status Ready, as a
        // kubelet would.)
        let cluster = cluster(ClusterOptions::default()).await;
        let dir = tempfile::tempdir().unwrap();
        let runs = dir.path().join("runs");
        let chaos_run = |ns: &str| {
            surge(&[
                "run",
                "scenarios/smoke.toml",
                "--target",
                &cluster.url,
                "--duration",
                "3s",
                "--no-progress",
                "--out",
                runs.to_str().unwrap(),
                "--chaos",
                "kill-pod@1s",
                "--chaos-backend",
                "kubernetes",
                "--kubeconfig",
                kubeconfig.to_str().unwrap(),
                "--namespace",
                ns,
                "--selector",
                "app=hapi",
                "--allow-namespace",
                ns,
            ])
        };
        let refused = chaos_run("billing");
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert_eq!(refused.status.code(), Some(2), "{stderr}");
        let said: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
        assert_eq!(said.len(), 1, "{stderr}");
        assert!(
            said[0].contains("chaos:") && said[0].contains("403"),
            "{stderr}"
        );
        eprintln!("refused outside its namespace: {}", said[0]);
        assert!(!runs.exists(), "no load, no bundle: {stderr}");

        let pods: Api<Pod> = Api::namespaced(admin.clone(), "clinic");
        ready_pod(&pods, "hapi-0").await;
        let allowed = chaos_run("clinic");
        let stdout = String::from_utf8_lossy(&allowed.stdout);
        let stderr = String::from_utf8_lossy(&allowed.stderr);
        assert!(
            matches!(allowed.status.code(), Some(0 | 1)),
            "{stdout}\n{stderr}"
        );
        let r = surge::bundle::read_results(&only_bundle(&runs)).unwrap();
        let chaos = r.chaos.expect("chaos recorded");
        assert_eq!(chaos.events.len(), 1, "{stdout}");
        assert_eq!(
            chaos.events[0].outcome,
            surge::bundle::Outcome::Done,
            "{stdout}"
        );
        assert_eq!(chaos.events[0].target, ["hapi-0"]);
        assert!(pods.get_opt("hapi-0").await.unwrap().is_none(), "deleted");
        cluster.shutdown().await;
    })
}
