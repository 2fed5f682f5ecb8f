//! The real HPA controller scaling a clinic through the custom metrics
//! path clusters run: Prometheus (Debian's) scrapes each pod's request
//! counter; a custom metrics
//! adapter (`surge sim metrics-adapter`, run as a pod) answers
//! `custom.metrics.k8s.io` from Prometheus, registered by an APIService
//! the aggregation layer forwards to; the HPA surge writes (a Pods metric,
//! `http_server_requests_per_second`) is the kube-controller-manager's to
//! act on. Nothing of the test's decides replicas.

use crate::clinic::*;
use crate::*;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use tokio::process::Child;

/// Prometheus on loopback, scraping clinic's `app=hapi` pods every 2 s;
/// stopped when dropped. Debian's Prometheus is built without Kubernetes
/// service discovery, so the targets come from a file the test keeps from
/// the API server's pod list (what `kubernetes_sd_configs` would do).
pub(crate) struct Prometheus {
    _child: Child,
    url: String,
    discovery: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        // The target list is kept no longer than its folder.
        self.discovery.abort();
    }
}

async fn prometheus(admin: &Client) -> Prometheus {
    let binary = program("prometheus").expect("prometheus (Debian's package) is installed");
    let dir = tempfile::tempdir().unwrap();
    let targets = dir.path().join("targets.json");
    std::fs::write(&targets, "[]").unwrap();
    let config = format!(
        r#"global:
  scrape_interval: 2s
  evaluation_interval: 2s
scrape_configs:
  - job_name: clinic
    metrics_path: /actuator/prometheus
    file_sd_configs:
      - files: [{targets}]
        refresh_interval: 1s
"#,
        targets = targets.display()
    );
    let file = dir.path().join("prometheus.yml");
    std::fs::write(&file, config).unwrap();
    let discovery = tokio::spawn(keep_targets(
        Api::namespaced(admin.clone(), "clinic"),
        targets,
    ));
    let port = free_port();
    let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
    let mut command = tokio::process::Command::new(binary);
    netns::dies_with_test(&mut command);
    let child = command
        .arg(format!("--config.file={}", file.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .expect("prometheus starts");
    let url = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    for _ in 0..100 {
        if http
            .get(format!("{url}/-/ready"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return Prometheus {
                _child: child,
                url,
                discovery,
                _dir: dir,
            };
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "prometheus was not ready in 10 s:\n{}",
        std::fs::read_to_string(dir.path().join("prometheus.log")).unwrap_or_default()
    );
}

/// Every half second, the running `app=hapi` pods as Prometheus file
/// targets (address, and the labels a pod role would give: namespace, pod,
/// the pod's own labels).
async fn keep_targets(pods: Api<Pod>, file: PathBuf) {
    loop {
        if let Ok(list) = pods.list(&ListParams::default().labels("app=hapi")).await {
            let targets: Vec<serde_json::Value> = list
                .items
                .iter()
                .filter_map(|p| {
                    let ip = p.status.as_ref()?.pod_ip.clone()?;
                    // Label names as Prometheus' pod role makes them
                    // (pod-template-hash → pod_template_hash).
                    let mut labels: BTreeMap<String, String> = p
                        .metadata
                        .labels
                        .clone()
                        .unwrap_or_default()
                        .into_iter()
                        .map(|(k, v)| (k.replace(|c: char| !c.is_ascii_alphanumeric(), "_"), v))
                        .collect();
                    labels.insert("namespace".into(), "clinic".into());
                    labels.insert("pod".into(), p.metadata.name.clone()?);
                    Some(serde_json::json!({"targets": [format!("{ip}:8080")], "labels": labels}))
                })
                .collect();
            let next = file.with_extension("new");
            if std::fs::write(&next, serde_json::to_vec(&targets).unwrap()).is_ok() {
                let _ = std::fs::rename(&next, &file);
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The adapter as a pod (its serving certificate from a Secret), its
/// Service, and the APIService that makes the aggregation layer forward
/// `custom.metrics.k8s.io/v1beta2` to it.
fn adapter_manifests(plane: &ControlPlane, prometheus: &str) -> String {
    use base64::Engine;
    let pki = plane.dir.path().join("pki");
    let read = |name: &str| {
        base64::engine::general_purpose::STANDARD.encode(std::fs::read(pki.join(name)).unwrap())
    };
    format!(
        r#"apiVersion: v1
kind: Secret
metadata:
  name: custom-metrics-tls
  namespace: clinic
data:
  tls.crt: {cert}
  tls.key: {key}
---
apiVersion: v1
kind: Service
metadata:
  name: custom-metrics
  namespace: clinic
spec:
  selector:
    app: custom-metrics
  ports:
    - port: 443
      targetPort: 6443
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: custom-metrics
  namespace: clinic
spec:
  replicas: 1
  selector:
    matchLabels:
      app: custom-metrics
  template:
    metadata:
      labels:
        app: custom-metrics
    spec:
      containers:
        - name: adapter
          image: surge:0.1.0
          args: [sim, metrics-adapter, --prometheus, "{prometheus}", --host, $(POD_IP),
                 --port, "6443", --tls-cert, /tls/tls.crt, --tls-key, /tls/tls.key]
          env:
            - name: POD_IP
              valueFrom:
                fieldRef:
                  fieldPath: status.podIP
          volumeMounts:
            - name: tls
              mountPath: /tls
      volumes:
        - name: tls
          secret:
            secretName: custom-metrics-tls
---
apiVersion: apiregistration.k8s.io/v1
kind: APIService
metadata:
  name: v1beta2.custom.metrics.k8s.io
spec:
  group: custom.metrics.k8s.io
  version: v1beta2
  groupPriorityMinimum: 100
  versionPriority: 100
  caBundle: {ca}
  service:
    namespace: clinic
    name: custom-metrics
    port: 443
"#,
        cert = read("aggregated.crt"),
        key = read("aggregated.key"),
        ca = read("ca.crt"),
    )
}

/// Waits until the APIService is Available (the aggregator reached the
/// adapter), then returns the custom metrics API's answer for clinic's
/// `app=hapi` pods, through the API server.
async fn custom_metrics_available(admin: &Client) -> serde_json::Value {
    let services: Api<DynamicObject> = Api::all_with(
        admin.clone(),
        &kube::api::ApiResource {
            group: "apiregistration.k8s.io".into(),
            version: "v1".into(),
            api_version: "apiregistration.k8s.io/v1".into(),
            kind: "APIService".into(),
            plural: "apiservices".into(),
        },
    );
    let mut last = serde_json::Value::Null;
    for _ in 0..300 {
        let service = services.get("v1beta2.custom.metrics.k8s.io").await.unwrap();
        last = service.data["status"].clone();
        let available = last["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["type"] == "Available" && c["status"] == "True");
        if available {
            let request = axum::http::Request::get(
                "/apis/custom.metrics.k8s.io/v1beta2/namespaces/clinic/pods/*/http_server_requests_per_second?labelSelector=app%3Dhapi",
            )
            .body(Vec::new())
            .unwrap();
            if let Ok(answer) = admin.request::<serde_json::Value>(request).await {
                return answer;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the custom metrics APIService was not available in 30 s: {last}");
}

/// A clinic of workload `w` whose request rate per pod an HPA can read:
/// Prometheus scraping its pods, the adapter behind its APIService, and
/// the custom metrics API answering through the API server.
pub(crate) async fn metered(w: &Workload) -> (Clinic, Prometheus) {
    let clinic = Clinic::open(w).await;
    let prometheus = prometheus(&clinic.admin).await;
    create_all(
        &clinic.admin,
        &adapter_manifests(&clinic.plane, &prometheus.url),
    )
    .await;
    let answer = custom_metrics_available(&clinic.admin).await;
    assert_eq!(answer["kind"], "MetricValueList", "{answer}");
    (clinic, prometheus)
}

/// The HPA `surge calibrate` writes, shaped for this clinic: a Pods metric
/// of `target` requests per second per pod, 1 to `max` replicas.
fn hpa(target: u32, max: u32) -> String {
    hpa_on(
        &format!(
            "    - type: Pods
      pods:
        metric:
          name: http_server_requests_per_second
        target:
          type: AverageValue
          averageValue: \"{target}\"
"
        ),
        max,
    )
}

/// HPA `hapi` on Deployment hapi scaling on `metrics` (its YAML list
/// items), 1 to `max` replicas, up at once (no stabilization), down only
/// after a long window.
pub(crate) fn hpa_on(metrics: &str, max: u32) -> String {
    format!(
        r#"apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: hapi
  namespace: clinic
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: hapi
  minReplicas: 1
  maxReplicas: {max}
  metrics:
{metrics}  behavior:
    scaleUp:
      stabilizationWindowSeconds: 0
      policies:
        - type: Percent
          value: 100
          periodSeconds: 15
    scaleDown:
      stabilizationWindowSeconds: 300
"#
    )
}

/// surge's FHIR search at `rate`/s for `seconds` through the balancer,
/// watching HPA `hpa` on Deployment hapi ("": watching none).
pub(crate) async fn load(
    clinic: &Clinic,
    rate: u32,
    seconds: u32,
    hpa: &str,
    thresholds: &[&str],
) -> (Option<surge::bundle::RunResults>, i32, String) {
    let dir = tempfile::tempdir().unwrap();
    let stages = format!(
        "[load]\nmodel = \"open\"\nmax_users = 200\n[[load.stages]]\nrate = {rate}\nhold = \"{seconds}s\"\n"
    );
    let scenario = scenario_file(
        dir.path(),
        "search",
        &fhir_search_scenario(&clinic.url, &stages),
    );
    let runs = dir.path().join("runs");
    let more: Vec<&str> = thresholds.iter().flat_map(|t| ["--threshold", t]).collect();
    let done = clinic.watched_run(&scenario, &runs, hpa, &more).await;
    let text = text(&done);
    let results = runs.is_dir().then(|| {
        let bundle = only_bundle(&runs);
        let r = surge::bundle::read_results(&bundle).unwrap();
        // Whatever the autoscaler did, the page draws it: the load, the
        // ready pods and the latency against the SLO on one time axis.
        let page = std::fs::read_to_string(bundle.join("report.html")).unwrap();
        let watched = r
            .autoscaling
            .as_ref()
            .is_some_and(|t| !t.samples.is_empty());
        assert_eq!(page.contains("id=\"chart-autoscaling\""), watched, "{text}");
        r
    });
    (results, done.status.code().unwrap_or(-1), text)
}

#[test]
fn the_real_hpa_controller_scales_on_request_rate_through_the_custom_metrics_api() {
    netns::run(|| async {
        let _turn = engine_lock().await;
        let (clinic, _prometheus) = metered(&Workload {
            sessions: Sessions::PerPod,
            readiness: true,
            start_delay: "2s",
            shutdown_delay: "0s",
            replicas: 1,
            balancing: "round-robin",
            service: "",
        })
        .await;
        // An HPA to watch that is not there: said before any load (exit 2).
        let (none, code, said) = load(&clinic, 30, 5, "billing", &[]).await;
        assert_eq!(code, 2, "{said}");
        assert!(none.is_none());
        assert!(
            said.contains("autoscaler: hpa clinic/billing is not there"),
            "{said}"
        );

        // The verdict both ways. First a poor HPA, maxReplicas 1: 30/s
        // against 10 per pod needs three, the pods never come, and the
        // verdict fails saying so.
        let verdict = ["autoscaling.scale_up_s=<70s"];
        create_all(&clinic.admin, &hpa(10, 1)).await;
        let (poor, code, said) = load(&clinic, 30, 30, "hapi", &verdict).await;
        let poor = poor.expect("a bundle");
        assert_eq!(code, 1, "{said}");
        let judged = &poor.thresholds[0];
        assert!(!judged.passed, "{judged:?}");
        assert_eq!(judged.measured_text, "not within the run", "{said}");
        assert!(said.contains("needing 3 pods, not ready"), "{said}");

        // Then the HPA as it should be, up to 4: the controller wants 3 pods.
        let hpas: Api<HorizontalPodAutoscaler> = Api::namespaced(clinic.admin.clone(), "clinic");
        hpas.patch(
            "hapi",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(serde_json::json!({"spec": {"maxReplicas": 4}})),
        )
        .await
        .unwrap();
        let (r, code, text) = load(&clinic, 30, 75, "hapi", &verdict).await;
        let r = r.expect("a bundle");
        assert_eq!(code, 0, "pods in time: {text}");
        assert!(r.thresholds[0].passed, "{:?}", r.thresholds);
        let status = hpas.get("hapi").await.unwrap().status.unwrap();
        let deployments: Api<Deployment> = Api::namespaced(clinic.admin.clone(), "clinic");
        let ready = deployments
            .get("hapi")
            .await
            .unwrap()
            .status
            .and_then(|s| s.ready_replicas)
            .unwrap_or(0);
        eprintln!("HPA status: {status:?}\nready: {ready}");
        assert!(
            status.last_scale_time.is_some(),
            "the HPA scaled: {status:?}"
        );
        assert!(status.desired_replicas >= 3, "{status:?}\n{text}");
        assert!(ready >= 3, "{ready} ready: {status:?}");
        // The new pods took traffic: the balancer followed them in.
        let pods_served = r
            .replicas
            .iter()
            .filter(|s| s.name.starts_with("hapi-"))
            .count();
        assert!(pods_served >= 3, "{text}");
        assert_eq!(r.overall.failed, 0, "{text}");

        // surge watched it, every second: one pod, then three, the HPA
        // wanting three, the metric near its target at the end.
        let t = r.autoscaling.as_ref().expect("the autoscaler's timeline");
        eprintln!(
            "{}",
            text.lines()
                .find(|l| l.contains("autoscaler:"))
                .unwrap_or("")
        );
        assert_eq!(t.hpa, "clinic/hapi");
        assert_eq!(t.workload, "deployment/hapi");
        assert_eq!(
            t.metric.as_deref(),
            Some("pods http_server_requests_per_second")
        );
        assert_eq!(t.target, Some(10.0));
        assert!(
            t.samples.len() >= 70 && t.samples.len() <= 77,
            "{}",
            t.samples.len()
        );
        let s = t.summary().unwrap();
        assert_eq!(s.ready_first, 1, "{t:?}");
        assert!(s.ready_peak >= 3 && s.desired_peak >= Some(3), "{s:?}");
        let last = s.metric_last.expect("a metric value seen");
        assert!((5.0..=15.0).contains(&last), "{last}");
        assert!(
            text.contains("autoscaler: hpa clinic/hapi on deployment/hapi"),
            "{text}"
        );
    })
}

/// Nine clinicians (logged in once, sticky to their pod, a request a
/// second each) for `seconds`, watching HPA hapi: the run and its text.
async fn clinicians(clinic: &Clinic, seconds: u32) -> (surge::bundle::RunResults, String) {
    let dir = tempfile::tempdir().unwrap();
    let load = "[load]\nmodel = \"closed\"\n[[load.stages]]\nusers = 9\nhold = \"60s\"\n";
    let body = common::clinic(&clinic.url, load).replace("think = \"20ms\"", "think = \"1s\"");
    let scenario = scenario_file(dir.path(), "clinicians", &body);
    let runs = dir.path().join("runs");
    let seconds = format!("{seconds}s");
    let done = clinic
        .watched_run(&scenario, &runs, "hapi", &["--duration", &seconds])
        .await;
    let said = text(&done);
    assert!(matches!(done.status.code(), Some(0 | 1)), "{said}");
    (
        surge::bundle::read_results(&only_bundle(&runs)).unwrap(),
        said,
    )
}

/// Three pods, nine clinicians on them; 10 s in, the HPA (held at 3 by
/// its minimum until then) may go down to 1, and does at once: the load
/// is far below its target. The run, the pods before and after.
async fn scale_down(
    sessions: Sessions,
) -> (
    surge::bundle::RunResults,
    BTreeSet<String>,
    BTreeSet<String>,
    String,
) {
    let (clinic, _prometheus) = metered(&Workload {
        sessions,
        readiness: true,
        start_delay: "1s",
        shutdown_delay: "0s",
        replicas: 3,
        balancing: "sticky",
        service: "",
    })
    .await;
    let held = hpa(20, 3)
        .replace("minReplicas: 1", "minReplicas: 3")
        .replace(
            "stabilizationWindowSeconds: 300",
            "stabilizationWindowSeconds: 0",
        );
    create_all(&clinic.admin, &held).await;
    let pods: Api<Pod> = Api::namespaced(clinic.admin.clone(), "clinic");
    let before = pod_names(&pods, "app=hapi").await;
    let release = {
        let hpas: Api<HorizontalPodAutoscaler> = Api::namespaced(clinic.admin.clone(), "clinic");
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(10)).await;
            hpas.patch(
                "hapi",
                &kube::api::PatchParams::default(),
                &kube::api::Patch::Merge(serde_json::json!({"spec": {"minReplicas": 1}})),
            )
            .await
            .unwrap();
        })
    };
    let (r, said) = clinicians(&clinic, 50).await;
    release.await.unwrap();
    let after = pod_names(&pods, "app=hapi").await;
    eprintln!(
        "{}",
        said.lines()
            .find(|l| l.contains("autoscaler:"))
            .unwrap_or("")
    );
    (r, before, after, said)
}

#[test]
fn a_scale_down_drops_exactly_the_sessions_on_the_removed_pods_when_sessions_are_per_pod() {
    netns::run(|| async {
        let _turn = engine_lock().await;
        let (r, before, after, said) = scale_down(Sessions::PerPod).await;
        assert_eq!(after.len(), 1, "the HPA went down to one pod: {said}");
        let removed: BTreeSet<&String> = before.difference(&after).collect();
        assert_eq!(removed.len(), 2, "{before:?} → {after:?}");
        // Three sticky users on each removed pod, each dropped once.
        let s = &r.sessions;
        assert_eq!(s.drops, 6, "{said}");
        assert!(
            s.events.iter().all(|d| removed.contains(&d.before)),
            "only the removed pods' users: {:?}",
            s.events
        );
        assert!(said.contains("down from 3 to 1 at"), "{said}");
        assert!(said.contains("6 sessions dropped since"), "{said}");
    })
}

#[test]
fn a_scale_down_drops_no_session_when_sessions_are_shared() {
    netns::run(|| async {
        let _turn = engine_lock().await;
        let (r, _, after, said) = scale_down(Sessions::Shared).await;
        assert_eq!(after.len(), 1, "the HPA went down to one pod: {said}");
        assert_eq!(r.sessions.drops, 0, "{said}");
        assert!(
            r.sessions.switches >= 6,
            "the removed pods' users moved: {said}"
        );
        assert!(said.contains("0 sessions dropped since"), "{said}");
    })
}
