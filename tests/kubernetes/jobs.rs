//! `deploy/sharded-test.yaml` as shipped, run by the real Job controller.

use crate::access::rbac_for;
use crate::*;

#[test]
fn the_job_controller_hands_each_shard_of_the_shipped_job_its_index() {
    netns::run(|| async {
        let _turn = engine_lock().await;
        let plane = ControlPlane::up();
        let admin = plane.admin().await;
        namespace(&admin, "clinic").await;
        create_all(&admin, &rbac_for("clinic")).await;
        let yaml = std::fs::read_to_string(repo().join("deploy/sharded-test.yaml"))
            .unwrap()
            .replace("${SURGE_TEST}", "t1")
            .replace("${SURGE_START_AT}", "2026-12-06T12:00:00Z");
        let created = create_all(&admin, &yaml).await;
        let kinds: Vec<&str> = created
            .iter()
            .map(|o| o.types.as_ref().unwrap().kind.as_str())
            .collect();
        assert_eq!(kinds, ["PersistentVolumeClaim", "Job", "Job"]);

        // The Job controller, not the test, makes the shards' pods.
        let pods: Api<Pod> = Api::namespaced(admin.clone(), "clinic");
        let selector = ListParams::default().labels("surge/role=shard,surge/test=t1");
        let mut shards = Vec::new();
        for _ in 0..150 {
            shards = pods.list(&selector).await.unwrap().items;
            if shards.len() >= 4 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        assert_eq!(shards.len(), 4, "one pod per completion");
        let indexes: BTreeSet<String> = shards
            .iter()
            .map(|p| {
                p.metadata
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get("batch.kubernetes.io/job-completion-index"))
                    .cloned()
                    .expect("the completion index")
            })
            .collect();
        assert_eq!(
            indexes,
            ["0", "1", "2", "3"].map(String::from).into_iter().collect()
        );
        for pod in &shards {
            let container = &pod.spec.as_ref().unwrap().containers[0];
            let env: BTreeMap<&str, String> = container
                .env
                .iter()
                .flatten()
                .map(|e| {
                    let value = e.value.clone().or_else(|| {
                        e.value_from
                            .as_ref()
                            .and_then(|v| v.field_ref.as_ref())
                            .map(|f| format!("fieldRef:{}", f.field_path))
                    });
                    (e.name.as_str(), value.unwrap_or_default())
                })
                .collect();
            // What `surge run --shards` reads: the count, and the index the
            // controller put in JOB_COMPLETION_INDEX.
            assert_eq!(env["SURGE_SHARDS"], "4");
            assert_eq!(env["SURGE_START_AT"], "2026-12-06T12:00:00Z");
            assert!(
                env["JOB_COMPLETION_INDEX"].contains("job-completion-index"),
                "{env:?}"
            );
            assert_eq!(
                container.args.as_deref().unwrap(),
                [
                    "run",
                    "/opt/surge/scenario/scenario.toml",
                    "--no-progress",
                    "--out",
                    "/results/$(SURGE_TEST)/shards"
                ]
            );
        }
    })
}
