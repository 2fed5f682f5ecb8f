//! `deploy/sharded-test.yaml` as shipped, run by the real Job controller:
//! the README's recipe (scenario as a ConfigMap, credentials as a Secret,
//! the manifest with only the test's name and start substituted), its
//! shard pods and its merge pod run as surge processes by the node double,
//! their bundles on the claim's folder.

use crate::access::rbac_for;
use crate::*;

#[test]
fn the_shipped_sharded_job_runs_its_shards_as_surge_processes_and_merges_them_exactly() {
    netns::run(|| async {
        let _turn = engine_lock().await;
        let cluster = cluster(ClusterOptions::default()).await;
        let plane = ControlPlane::up();
        let admin = plane.admin().await;
        namespace(&admin, "clinic").await;
        create_all(&admin, &rbac_for("clinic")).await;
        let node_dir = tempfile::tempdir().unwrap();
        let images = node::Images {
            surge: surge_bin(),
            workdir: repo(),
        };
        let node = node::NodeDouble::start(admin.clone(), "clinic", images, node_dir.path()).await;

        // The README's recipe: the scenario as a ConfigMap, the credentials
        // as a Secret, then the manifest with the test's name and start.
        const RATE: u64 = 40;
        const HOLD_S: u64 = 6;
        let load = format!(
            "[load]\nmodel = \"open\"\nmax_users = 40\n\
             [[load.stages]]\nrate = {RATE}\nhold = \"{HOLD_S}s\"\n"
        );
        let scratch = tempfile::tempdir().unwrap();
        let scenario = std::fs::read_to_string(scenario_file(
            scratch.path(),
            "national",
            &fhir_search_scenario(&cluster.url, &load),
        ))
        .unwrap();
        let config_map = serde_json::json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "surge-scenario", "namespace": "clinic"},
            "data": {"scenario.toml": scenario}
        });
        let secret = serde_json::json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "surge-credentials", "namespace": "clinic"},
            "stringData": {"SURGE_PASSWORD": "not-used-by-this-scenario"}
        });
        create_all(&admin, &serde_json::to_string(&config_map).unwrap()).await;
        create_all(&admin, &serde_json::to_string(&secret).unwrap()).await;
        let start_at = k8s_openapi::jiff::Timestamp::now()
            .checked_add(k8s_openapi::jiff::SignedDuration::from_secs(8))
            .unwrap()
            .round(k8s_openapi::jiff::Unit::Second)
            .unwrap()
            .to_string();
        let yaml = std::fs::read_to_string(repo().join("deploy/sharded-test.yaml"))
            .unwrap()
            .replace("${SURGE_TEST}", "t2")
            .replace("${SURGE_START_AT}", &start_at);
        create_all(&admin, &yaml).await;

        // The merge Job completes once the four shards have run.
        let jobs: Api<k8s_openapi::api::batch::v1::Job> = Api::namespaced(admin.clone(), "clinic");
        let mut outcome = (0, 0);
        for _ in 0..600 {
            let merge = jobs.get("surge-merge-t2").await.unwrap();
            let status = merge.status.unwrap_or_default();
            outcome = (status.succeeded.unwrap_or(0), status.failed.unwrap_or(0));
            if outcome != (0, 0) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let pods: Api<Pod> = Api::namespaced(admin.clone(), "clinic");
        let names = pod_names(&pods, "surge/test=t2").await;
        let logs: String = names
            .iter()
            .map(|n| format!("--- {n}\n{}", node.log(n)))
            .collect();
        assert_eq!(outcome, (1, 0), "the merge Job succeeded:\n{logs}");
        let shards = jobs.get("surge-shards-t2").await.unwrap();
        assert_eq!(
            shards.status.and_then(|s| s.succeeded),
            Some(4),
            "four shards completed:\n{logs}"
        );
        cluster.shutdown().await;

        // The merged bundle on the shared volume: every arrival of the one
        // schedule, R·T of them, exactly once.
        let merged = only_bundle(&node_dir.path().join("claims/surge-results/t2/merged"));
        let r = surge::bundle::read_results(&merged).unwrap();
        let planned = RATE * HOLD_S;
        let arrivals = r.totals.arrivals;
        assert!(
            arrivals.abs_diff(planned) as f64 <= 0.005 * planned as f64,
            "{arrivals} arrivals merged for {planned} planned:\n{logs}"
        );
        assert_eq!(r.totals.dropped_arrivals, 0, "{logs}");
        assert_eq!(r.overall.failed, 0, "{logs}");
        let merge = r.merged.as_ref().expect("a merged bundle");
        assert_eq!(merge.shards.len(), 4, "{merge:?}");
        // What `kubectl logs job/surge-merge-t2` shows: the merged summary.
        let merge_pod = names
            .iter()
            .find(|n| n.starts_with("surge-merge-t2"))
            .unwrap();
        eprintln!(
            "{arrivals} arrivals for {planned} planned; the merge said:\n{}",
            node.log(merge_pod)
        );
        assert!(
            node.log(merge_pod).contains("PASS"),
            "{}",
            node.log(merge_pod)
        );
    })
}
