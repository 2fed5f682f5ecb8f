//! Every manifest surge writes, accepted by the real API server.

use crate::*;

/// `surge calibrate` from a real staircase on the reference cluster: the
/// recommendations file as an operator gets it.
async fn recommendations(dir: &Path) -> String {
    let cluster = cluster(ClusterOptions::default()).await;
    let load = "[load]\nmodel = \"open\"\nmax_users = 20\n\
                [[load.stages]]\nrate = 5\nhold = \"2s\"\n\
                [[load.stages]]\nrate = 10\nhold = \"2s\"\n";
    let path = scenario_file(dir, "climb", &fhir_search_scenario(&cluster.url, load));
    let staircase = run(path, None, None, &dir.join("runs")).await;
    cluster.shutdown().await;
    let out = dir.join("calibrations");
    let done = surge(&[
        "calibrate",
        "--from-bundle",
        staircase.bundle.to_str().unwrap(),
        "--replicas",
        "3",
        "--slo-p99",
        "2s",
        "--kind",
        "Deployment",
        "--name",
        "hapi",
        "--namespace",
        "clinic",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(done.status.code(), Some(0), "{}", text(&done));
    std::fs::read_to_string(only_bundle(&out).join("recommendations.yaml")).unwrap()
}

#[test]
fn every_manifest_surge_writes_is_accepted_by_the_real_api_server() {
    netns::run(|| async {
        let _turn = engine_lock().await;
        let dir = tempfile::tempdir().unwrap();
        let yaml = recommendations(dir.path()).await;
        let plane = ControlPlane::up();
        let client = plane.admin().await;
        namespace(&client, "clinic").await;

        // The HPA is the Kubernetes object; the other document is the pool
        // settings (no object). KEDA's ScaledObject, written with
        // --keda-prometheus, is a custom resource this control plane has no
        // definition for, so it is not checked here.
        let docs = documents(&yaml);
        let hpa = docs
            .iter()
            .find(|d| d.contains("kind: HorizontalPodAutoscaler"))
            .expect("an HPA");
        let created = create_all(&client, hpa).await;
        assert_eq!(created.len(), 1);
        let written: serde_json::Value =
            serde_json::to_value(serde_saphyr::from_str::<DynamicObject>(hpa).unwrap()).unwrap();
        let api: Api<k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler> =
            Api::namespaced(client.clone(), "clinic");
        let read = serde_json::to_value(api.get("hapi").await.unwrap()).unwrap();
        // Read back as written: the spec field by field, and the reasoning.
        assert_eq!(read["spec"], written["spec"], "{read:#}\nwritten:\n{hpa}");
        assert_eq!(
            read["metadata"]["annotations"]["surge/reasoning"],
            written["metadata"]["annotations"]["surge/reasoning"]
        );
    })
}
