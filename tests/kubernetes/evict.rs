//! `evict` against the real disruption controller, both ways.

use crate::access::{rbac_for, ready_pod, service_account_kubeconfig};
use crate::*;

/// Waits until the disruption controller has seen budget `name` at its
/// current generation and allows `allowed` disruptions.
async fn budget_settles(client: &Client, name: &str, allowed: i32) {
    let budgets: Api<k8s_openapi::api::policy::v1::PodDisruptionBudget> =
        Api::namespaced(client.clone(), "clinic");
    for _ in 0..150 {
        let b = budgets.get(name).await.unwrap();
        let generation = b.metadata.generation;
        if let Some(s) = &b.status {
            if s.observed_generation == generation && s.disruptions_allowed == allowed {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the disruption controller did not settle {name} at {allowed} allowed");
}

#[test]
fn an_eviction_the_budget_forbids_is_held_and_one_it_allows_is_done() {
    netns::run(|| async {
        let _turn = engine_lock().await;
        let plane = ControlPlane::up();
        let admin = plane.admin().await;
        namespace(&admin, "clinic").await;
        create_all(&admin, &rbac_for("clinic")).await;
        let kubeconfig = service_account_kubeconfig(&plane, &admin, "clinic").await;
        let pods: Api<Pod> = Api::namespaced(admin.clone(), "clinic");
        for name in ["hapi-0", "hapi-1", "hapi-2"] {
            ready_pod(&pods, name).await;
        }
        // All three must stay: the real disruption controller allows none.
        create_all(
        &admin,
        "apiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata:\n  name: hapi\n  namespace: clinic\n\
         spec:\n  minAvailable: 3\n  selector:\n    matchLabels:\n      app: hapi\n",
    )
    .await;
        budget_settles(&admin, "hapi", 0).await;

        let cluster = cluster(ClusterOptions::default()).await;
        let dir = tempfile::tempdir().unwrap();
        // The shipped smoke scenario, with an eviction a second in and a drain
        // deadline of 6 s (tries at 0, 5 s).
        let text = std::fs::read_to_string(repo().join("scenarios/smoke.toml"))
        .unwrap()
        .replace(
            "name = \"smoke\"",
            &format!(
                "name = \"smoke\"\nfixtures = \"{}\"",
                repo().join("fixtures").display()
            ),
        )
        + "\n[chaos]\nrecover_within = \"6s\"\n[[chaos.actions]]\naction = \"evict\"\nat = \"1s\"\n";
        let scenario = dir.path().join("evict.toml");
        std::fs::write(&scenario, text).unwrap();
        let evict_run = |out: &str| {
            let runs = dir.path().join(out);
            let done = Command::new(surge_bin())
                .args(["run", scenario.to_str().unwrap(), "--target", &cluster.url])
                .args(["--duration", "10s", "--no-progress", "--out"])
                .arg(&runs)
                .args(["--kubeconfig", kubeconfig.to_str().unwrap()])
                .args(["--namespace", "clinic", "--selector", "app=hapi"])
                .args(["--allow-namespace", "clinic"])
                .current_dir(repo())
                .output()
                .unwrap();
            let text = common::text(&done);
            assert!(matches!(done.status.code(), Some(0 | 1)), "{text}");
            let r = surge::bundle::read_results(&only_bundle(&runs)).unwrap();
            (r.chaos.expect("chaos recorded").events.remove(0), text)
        };

        let (held, text) = evict_run("held");
        eprintln!("held: {}", held.answer);
        assert_eq!(held.outcome, surge::bundle::Outcome::Held, "{text}");
        assert!(
            held.answer.contains("held by its disruption budget")
                && held.answer.contains("2 tries"),
            "{text}"
        );
        assert!(text.contains("held by its disruption budget"), "{text}");
        assert_eq!(
            pods.list(&ListParams::default()).await.unwrap().items.len(),
            3
        );

        // One may go: the same eviction is carried out.
        let budgets: Api<k8s_openapi::api::policy::v1::PodDisruptionBudget> =
            Api::namespaced(admin.clone(), "clinic");
        budgets
            .patch(
                "hapi",
                &kube::api::PatchParams::default(),
                &kube::api::Patch::Merge(serde_json::json!({"spec": {"minAvailable": 2}})),
            )
            .await
            .unwrap();
        budget_settles(&admin, "hapi", 1).await;
        let (done, text) = evict_run("allowed");
        assert_eq!(done.outcome, surge::bundle::Outcome::Done, "{text}");
        assert!(done.answer.contains("evicted"), "{text}");
        let left = pods.list(&ListParams::default()).await.unwrap().items;
        assert_eq!(left.len(), 2, "the evicted pod is gone");
        assert!(left
            .iter()
            .all(|p| p.metadata.name.as_deref() != Some(done.target[0].as_str())));
        cluster.shutdown().await;
    })
}
