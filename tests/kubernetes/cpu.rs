//! The CPU path most clusters scale on: the real metrics-server (v0.8.0,
//! built by `cluster.sh` from its Go module) scrapes the node double's
//! kubelet endpoint, which reports each pod process's real CPU from
//! `/proc`; the aggregation layer serves it as `metrics.k8s.io` through an
//! APIService; the real HPA controller scales on CPU utilization, and
//! surge's verdict judges the rise at the rate a pod serves at that CPU
//! target, from the run's own readings. Nothing of the test's decides
//! replicas or makes up a CPU figure.

use crate::autoscaling::{hpa_on, load};
use crate::clinic::*;
use crate::*;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use std::net::Ipv4Addr;
use tokio::process::Child;

/// Where metrics-server listens: an address of the test's namespace that
/// no pod gets (the node gives pods .10 and up).
const ADDRESS: Ipv4Addr = Ipv4Addr::new(10, 244, 0, 2);

/// metrics-server as a process (a Deployment's pod on a real cluster),
/// killed when dropped.
pub(crate) struct MetricsServer {
    _child: Child,
    log: PathBuf,
}

impl MetricsServer {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// Starts metrics-server on the clinic's control plane: its process, the
/// selector-less Service and Endpoints in kube-system that lead to it
/// (the pod's own, on a real cluster), and the APIService of
/// `metrics.k8s.io/v1beta1`. Returns once the API server answers pod
/// metrics for clinic's `app=hapi` pods.
pub(crate) async fn metrics_server(clinic: &Clinic) -> MetricsServer {
    let plane = &clinic.plane;
    let binary = PathBuf::from(&plane.env["SURGE_METRICS_SERVER"]);
    let pki = plane.dir.path().join("pki");
    let log = plane.dir.path().join("log").join("metrics-server.log");
    netns::add_address(ADDRESS).unwrap();
    let kubeconfig = plane.kubeconfig().display().to_string();
    let mut command = tokio::process::Command::new(binary);
    netns::dies_with_test(&mut command);
    let child = command
        .arg(format!("--kubeconfig={kubeconfig}"))
        .arg(format!("--authentication-kubeconfig={kubeconfig}"))
        .arg(format!("--authorization-kubeconfig={kubeconfig}"))
        .arg(format!("--bind-address={ADDRESS}"))
        .arg("--secure-port=4443")
        .arg(format!(
            "--tls-cert-file={}",
            pki.join("aggregated.crt").display()
        ))
        .arg(format!(
            "--tls-private-key-file={}",
            pki.join("aggregated.key").display()
        ))
        // The node double's kubelet serves a self-signed certificate.
        .arg("--kubelet-insecure-tls")
        .arg("--kubelet-preferred-address-types=InternalIP")
        .arg("--kubelet-use-node-status-port")
        // The shortest it allows (its default is 60 s; deployments use 15 s).
        .arg("--metric-resolution=10s")
        .arg("--kubelet-request-timeout=5s")
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(std::fs::OpenOptions::new().append(true).open(&log).unwrap())
        .kill_on_drop(true)
        .spawn()
        .expect("metrics-server starts");
    use base64::Engine;
    let ca = base64::engine::general_purpose::STANDARD
        .encode(std::fs::read(pki.join("ca.crt")).unwrap());
    create_all(
        &clinic.admin,
        &format!(
            r#"apiVersion: v1
kind: Service
metadata:
  name: metrics-server
  namespace: kube-system
spec:
  ports:
    - name: https
      port: 443
      targetPort: 4443
---
apiVersion: v1
kind: Endpoints
metadata:
  name: metrics-server
  namespace: kube-system
subsets:
  - addresses:
      - ip: "{ADDRESS}"
    ports:
      - name: https
        port: 4443
---
apiVersion: apiregistration.k8s.io/v1
kind: APIService
metadata:
  name: v1beta1.metrics.k8s.io
spec:
  group: metrics.k8s.io
  version: v1beta1
  groupPriorityMinimum: 100
  versionPriority: 100
  caBundle: {ca}
  service:
    namespace: kube-system
    name: metrics-server
    port: 443
"#
        ),
    )
    .await;
    let server = MetricsServer { _child: child, log };
    // Two scrapes make a rate: the first pod metrics come after about
    // twice the resolution.
    let mut last = String::new();
    for _ in 0..600 {
        match pod_metrics(&clinic.admin).await {
            Ok(answer) if answer["items"].as_array().is_some_and(|i| !i.is_empty()) => {
                return server;
            }
            Ok(answer) => last = answer.to_string(),
            Err(e) => last = e.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "metrics.k8s.io gave no pod metrics in 60 s: {last}\n{}",
        server.log()
    );
}

/// metrics.k8s.io's PodMetricsList for clinic's `app=hapi` pods, through
/// the API server.
async fn pod_metrics(admin: &Client) -> Result<serde_json::Value, kube::Error> {
    let request = axum::http::Request::get(
        "/apis/metrics.k8s.io/v1beta1/namespaces/clinic/pods?labelSelector=app%3Dhapi",
    )
    .body(Vec::new())
    .unwrap();
    admin.request(request).await
}

/// The CPU of clinic's `app=hapi` pods as metrics.k8s.io answers it:
/// (pod, millicores) for each.
async fn pod_cpu(admin: &Client) -> Vec<(String, f64)> {
    let answer = pod_metrics(admin).await.unwrap();
    answer["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|item| {
            let cpu: f64 = item["containers"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|c| c["usage"]["cpu"].as_str())
                .filter_map(surge::chaos::autoscaler::quantity)
                .sum();
            (
                item["metadata"]["name"].as_str().unwrap_or("").to_owned(),
                cpu * 1000.0,
            )
        })
        .collect()
}

/// An HPA on CPU utilization (a share of each pod's 100m request), 1 to
/// `max` replicas, scaling up at once.
fn cpu_hpa(utilization: u32, max: u32) -> String {
    hpa_on(
        &format!(
            "    - type: Resource
      resource:
        name: cpu
        target:
          type: Utilization
          averageUtilization: {utilization}
"
        ),
        max,
    )
}

/// Pods that compute 5 ms per request: a pod's CPU is its load's.
pub(crate) fn computing(replicas: i32) -> Workload {
    Workload {
        sessions: Sessions::PerPod,
        readiness: true,
        start_delay: "2s",
        shutdown_delay: "0s",
        replicas,
        balancing: "round-robin",
        service: r#"--pool, "2", --hold, 100ms, --cpu-per-request, 5ms"#,
    }
}

#[test]
fn the_real_hpa_controller_scales_on_cpu_through_metrics_server() {
    netns::run(|| async {
        let _turn = engine_lock().await;
        let clinic = Clinic::open(&computing(1)).await;
        let server = metrics_server(&clinic).await;

        // The independent truth first: 20 requests a second of 5 ms of CPU
        // each are 100m; metrics-server's figure for the one pod, read
        // through the API server, is that plus the pod's own idle use.
        let (_, code, said) = load(&clinic, 20, 25, "", &[]).await;
        assert_eq!(code, 0, "{said}");
        let measured = pod_cpu(&clinic.admin).await;
        eprintln!("pod CPU after 20/s: {measured:?}");
        assert_eq!(measured.len(), 1, "{measured:?}");
        let millicores = measured[0].1;
        assert!(
            (90.0..=160.0).contains(&millicores),
            "20/s × 5 ms is 100m; metrics-server says {millicores}m\n{}",
            server.log()
        );

        // What a pod serves at 50% of its 100m, by that measurement.
        let truth = 50.0 * 20.0 / millicores;

        // A target of 50% of 100m is 10 requests a second per pod at 5 ms
        // each, fewer with the build's own work (8 at 125m, 6.5 at 154m for
        // 20/s, as two machines measured): 30/s needs four or five pods.
        // The controller scales on CPU alone, up to six. The run lasts long
        // enough for 30 s of settled pods after the last scale-up (about
        // 50 s in).
        create_all(&clinic.admin, &cpu_hpa(50, 6)).await;
        let (r, code, text) =
            load(&clinic, 30, 120, "hapi", &["autoscaling.scale_up_s=<70s"]).await;
        let r = r.expect("a bundle");
        assert_eq!(code, 0, "{text}");
        // The verdict judges a CPU target at the rate this run's own CPU
        // readings give it, which is the rate the measurement above gives.
        let line = text
            .lines()
            .find(|l| l.contains("autoscaler:"))
            .unwrap_or("");
        eprintln!("{line}");
        assert!(r.thresholds[0].passed, "{:?}\n{text}", r.thresholds);
        let serves = surge::verify::autoscaling::serves_per_pod(
            r.autoscaling.as_ref().unwrap(),
            &r.timeline,
            r.elapsed_s as u64,
        )
        .expect("a rate at the CPU target");
        assert!(
            (0.8 * truth..=1.2 * truth).contains(&serves.rate),
            "{serves:?} against {truth} req/s a pod at 50% by metrics-server\n{line}"
        );
        assert!(line.contains("a pod serves "), "{line}");
        assert!(line.contains("load past the ready pods at "), "{line}");
        let hpas: Api<HorizontalPodAutoscaler> = Api::namespaced(clinic.admin.clone(), "clinic");
        let status = hpas.get("hapi").await.unwrap().status.unwrap();
        eprintln!("HPA status: {status:?}");
        assert!(status.desired_replicas >= 3, "{status:?}\n{text}");
        let t = r.autoscaling.as_ref().expect("the autoscaler's timeline");
        assert_eq!(t.metric.as_deref(), Some("resource cpu"));
        assert_eq!(t.target, Some(50.0));
        let s = t.summary().unwrap();
        assert_eq!(s.ready_first, 1, "{t:?}");
        assert!(s.ready_peak >= 3, "{s:?}\n{text}");
        // The utilization the controller read, near its target at the end.
        let last = s.metric_last.expect("a CPU utilization seen");
        assert!((25.0..=90.0).contains(&last), "{last}\n{text}");
        let served = r
            .replicas
            .iter()
            .filter(|s| s.name.starts_with("hapi-"))
            .count();
        assert!(served >= 3, "{text}");
    })
}

/// `surge calibrate` on two computing pods, reading their CPU from
/// metrics.k8s.io at each step: what it fits is the CPU the pods were made
/// to use (5 ms a request, plus the debug build's own few tenths), its CPU
/// target is that fit at its rate target as a share of the pods' 100m
/// request, it picks CPU (which follows the load) and says why, and the
/// CPU HPA it writes is accepted by the real API server as written. A
/// selector with no pods behind it is refused before any load.
#[test]
fn calibrate_recommends_a_cpu_target_from_what_metrics_server_measured() {
    netns::run(|| async {
        let _turn = engine_lock().await;
        let clinic = Clinic::open(&computing(2)).await;
        let _server = metrics_server(&clinic).await;
        let dir = tempfile::tempdir().unwrap();
        let staircase = scenario_file(
            dir.path(),
            "staircase",
            &fhir_search_scenario(
                &clinic.url,
                "[load]\nmodel = \"open\"\nmax_users = 400\n[[load.stages]]\nrate = 10\nhold = \"10s\"\n",
            ),
        );
        let out = dir.path().join("calibration");
        let calibrate = |selector: &str| {
            let mut command = tokio::process::Command::new(surge_bin());
            command
                .current_dir(repo())
                .arg("calibrate")
                .arg(&staircase)
                .args(["--replicas", "2", "--slo-p99", "500ms"])
                // 24 s steps: metrics-server's 10 s windows, at least one a
                // pod wholly inside each step.
                .args([
                    "--start-rate",
                    "8",
                    "--step-rate",
                    "8",
                    "--step-duration",
                    "24s",
                ])
                .args(["--max-steps", "6", "--precision", "0"])
                .args([
                    "--name",
                    "hapi",
                    "--namespace",
                    "clinic",
                    "--selector",
                    selector,
                ])
                .arg("--kubeconfig")
                .arg(clinic.plane.kubeconfig())
                .arg("--out")
                .arg(&out);
            command
        };

        let refused = calibrate("app=billing").output().await.unwrap();
        let said = text(&refused);
        assert_eq!(refused.status.code(), Some(2), "{said}");
        assert!(
            said.contains("--selector app=billing: cannot read the pods' CPU: metrics.k8s.io has no CPU for pods app=billing in clinic"),
            "{said}"
        );
        assert!(!out.exists(), "nothing climbed, nothing written: {said}");

        let done = calibrate("app=hapi").output().await.unwrap();
        let said = text(&done);
        eprintln!("{said}");
        assert_eq!(done.status.code(), Some(0), "{said}");
        assert!(said.contains(", CPU "), "each step says its CPU: {said}");
        let bundle = only_bundle(&out);
        let c: surge::calibrate::Calibration =
            serde_json::from_slice(&std::fs::read(bundle.join("calibration.json")).unwrap())
                .unwrap();
        let cpu = c.cpu.as_ref().expect("a CPU target");
        let target = c.hpa.as_ref().unwrap().target_per_pod;
        assert!(
            (4.5..=7.5).contains(&cpu.millicores_per_request_per_s),
            "5 ms of CPU a request is 5m per request/s: {cpu:?}"
        );
        assert!(cpu.r2 >= 0.9 && cpu.steps >= 3, "{cpu:?}");
        assert_eq!(
            cpu.pick,
            surge::calibrate::cpu::ScalingMetric::Cpu,
            "{}",
            cpu.reason
        );
        assert_eq!(cpu.request_millicores, Some(100.0));
        let expected = cpu.idle_millicores + cpu.millicores_per_request_per_s * target;
        assert_eq!(
            cpu.target_utilization,
            Some(expected.round() as u32),
            "{cpu:?}"
        );
        assert!(said.contains("scale on CPU: it follows the load"), "{said}");

        // The CPU HPA as written: the real API server takes it.
        let yaml = std::fs::read_to_string(bundle.join("recommendations.yaml")).unwrap();
        let cpu_doc = yaml
            .split("\n---\n")
            .find(|d| d.contains("The same scaling on CPU"))
            .unwrap_or_else(|| panic!("a CPU HPA: {yaml}"));
        let created = create_all(&clinic.admin, cpu_doc).await;
        let hpa: HorizontalPodAutoscaler =
            serde_json::from_value(serde_json::to_value(&created[0]).unwrap()).unwrap();
        let metric = &hpa.spec.unwrap().metrics.unwrap()[0];
        assert_eq!(
            metric.resource.as_ref().unwrap().target.average_utilization,
            cpu.target_utilization.map(|u| u as i32)
        );
    })
}
