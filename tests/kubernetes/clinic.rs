//! A clinic on the real control plane: Deployment `hapi` of reference-cluster
//! replicas run as pods by the node double (each listening on its pod
//! address), Service `hapi` in front, and the reference balancer following
//! the Service's EndpointSlices as an ingress controller does; surge runs
//! against it.

use crate::*;
use node::{Images, NodeDouble};
use surge::bundle::RunResults as Results;

/// Where the pods keep their users' sessions.
#[derive(Clone, Copy, PartialEq)]
pub enum Sessions {
    /// Each pod in its own memory (OpenMRS's default).
    PerPod,
    /// In a folder every pod mounts (a shared volume).
    Shared,
}

/// The Deployment's pods.
pub struct Workload {
    pub sessions: Sessions,
    /// A readiness probe on /healthz every second (else a pod is Ready as
    /// soon as its process starts, listening or not).
    pub readiness: bool,
    /// How long each replica takes to start listening.
    pub start_delay: &'static str,
    /// How long it keeps answering after SIGTERM.
    pub shutdown_delay: &'static str,
    /// Pods at the start.
    pub replicas: i32,
    /// How the balancer spreads new clients (`sticky` or `round-robin`).
    pub balancing: &'static str,
    /// More replica flags, as YAML list items (`--pool, "2", --hold, 100ms`:
    /// a pod that completes 20 requests a second at most); empty for the
    /// replica's defaults.
    pub service: &'static str,
}

/// Service `hapi` (port `http`) and Deployment `hapi` in clinic, each pod
/// requesting 100m of CPU (what an HPA's CPU utilization is a share of).
pub fn manifests(w: &Workload) -> String {
    let (sessions, mount, volume) = match w.sessions {
        Sessions::PerPod => ("per-replica", "", ""),
        Sessions::Shared => (
            "shared, --sessions-dir, /sessions",
            "\n            - name: sessions\n              mountPath: /sessions",
            "\n        - name: sessions\n          persistentVolumeClaim:\n            claimName: sessions",
        ),
    };
    let probe = if w.readiness {
        "\n          readinessProbe:\n            httpGet:\n              path: /healthz\n              port: 8080\n            periodSeconds: 1"
    } else {
        ""
    };
    format!(
        r#"apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: sessions
  namespace: clinic
spec:
  accessModes: ["ReadWriteMany"]
  resources:
    requests:
      storage: 1Gi
---
apiVersion: v1
kind: Service
metadata:
  name: hapi
  namespace: clinic
spec:
  selector:
    app: hapi
  ports:
    - name: http
      port: 80
      targetPort: 8080
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: hapi
  namespace: clinic
spec:
  replicas: {replicas}
  selector:
    matchLabels:
      app: hapi
  template:
    metadata:
      labels:
        app: hapi
    spec:
      terminationGracePeriodSeconds: 10
      containers:
        - name: hapi
          image: surge:0.1.0
          ports:
            - name: http
              containerPort: 8080
          resources:
            requests:
              cpu: 100m
          args: [sim, replica, --name, $(POD_NAME), --host, $(POD_IP), --port, "8080",
                 --start-delay, {start}, --shutdown-delay, {stop},
                 --attachments-dir, /data/attachments, --sessions, {sessions}{service}]
          env:
            - name: POD_NAME
              valueFrom:
                fieldRef:
                  fieldPath: metadata.name
            - name: POD_IP
              valueFrom:
                fieldRef:
                  fieldPath: status.podIP{probe}
          volumeMounts:
            - name: data
              mountPath: /data{mount}
      volumes:
        - name: data
          emptyDir: {{}}{volume}
"#,
        start = w.start_delay,
        replicas = w.replicas,
        stop = w.shutdown_delay,
        service = match w.service {
            "" => String::new(),
            more => format!(", {more}"),
        },
    )
}

/// A clinic: the node double, the workload Ready, the balancer in front.
pub struct Clinic {
    pub plane: ControlPlane,
    pub admin: Client,
    pub node: NodeDouble,
    balancer: tokio::process::Child,
    pub url: String,
    _dir: tempfile::TempDir,
}

impl Clinic {
    pub async fn open(w: &Workload) -> Clinic {
        let plane = ControlPlane::up();
        let admin = plane.admin().await;
        namespace(&admin, "clinic").await;
        let dir = tempfile::tempdir().unwrap();
        let images = Images {
            surge: surge_bin(),
            workdir: repo(),
        };
        let node = NodeDouble::start(admin.clone(), "clinic", images, dir.path()).await;
        create_all(&admin, &manifests(w)).await;
        let (balancer, url) = balancer(&plane, w.balancing).await;
        let clinic = Clinic {
            plane,
            admin,
            node,
            balancer,
            url,
            _dir: dir,
        };
        clinic.ready(w.replicas).await;
        clinic
    }

    /// `surge run scenario` through the balancer, its bundle under `runs`,
    /// watching HPA `hpa` on Deployment hapi ("": no HPA, nothing
    /// watched), with `more` flags after.
    pub async fn watched_run(
        &self,
        scenario: &Path,
        runs: &Path,
        hpa: &str,
        more: &[&str],
    ) -> std::process::Output {
        tokio::process::Command::new(surge_bin())
            .current_dir(repo())
            .arg("run")
            .arg(scenario)
            .args(["--no-progress", "--out"])
            .arg(runs)
            .args(match hpa {
                "" => vec![],
                hpa => vec![
                    "--namespace".into(),
                    "clinic".into(),
                    "--workload".into(),
                    "deployment/hapi".into(),
                    "--hpa".into(),
                    hpa.into(),
                    "--kubeconfig".into(),
                    self.plane.kubeconfig().as_os_str().to_owned(),
                ],
            })
            .args(more)
            .output()
            .await
            .expect("surge runs")
    }

    /// Waits (up to a minute: pods that start in 20 s, after an HPA's
    /// sync) until the Deployment has `n` Ready pods and the balancer
    /// forwards to them.
    pub async fn ready(&self, n: i32) {
        let deployments: Api<k8s_openapi::api::apps::v1::Deployment> =
            Api::namespaced(self.admin.clone(), "clinic");
        let http = reqwest::Client::builder().no_proxy().build().unwrap();
        for _ in 0..600 {
            let d = deployments.get("hapi").await.unwrap();
            let ready = d.status.and_then(|s| s.ready_replicas).unwrap_or(0);
            let through = http
                .get(format!("{}/healthz", self.url))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if ready == n && through {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let pods = self
            .pods()
            .list(&ListParams::default())
            .await
            .unwrap()
            .items;
        let logs: Vec<String> = pods
            .iter()
            .take(5)
            .map(|p| {
                let name = p.metadata.name.clone().unwrap_or_default();
                let status = p
                    .status
                    .as_ref()
                    .map(|s| (s.phase.clone(), s.message.clone()));
                format!("{name} {status:?}: {}", self.node.log(&name))
            })
            .collect();
        panic!(
            "the Deployment did not get {n} Ready pods behind the balancer in 30 s\n{}",
            logs.join("\n")
        );
    }

    pub fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.admin.clone(), "clinic")
    }

    /// Clinicians (9, logged in once each, sticky to their pod) for
    /// `duration`, with chaos `action` on Deployment hapi through the
    /// admin's kubeconfig: the bundle's results and what surge printed.
    pub async fn chaos_run(&self, action: &str, duration: &str) -> (Results, String) {
        self.chaos_run_with(action, duration, &[]).await
    }

    /// [`Clinic::chaos_run`] with more of surge's flags.
    pub async fn chaos_run_with(
        &self,
        action: &str,
        duration: &str,
        extra: &[&str],
    ) -> (Results, String) {
        let dir = tempfile::tempdir().unwrap();
        let load = "[load]\nmodel = \"closed\"\n[[load.stages]]\nusers = 9\nhold = \"60s\"\n";
        let scenario = scenario_file(dir.path(), "clinic", &clinic(&self.url, load));
        let runs = dir.path().join("runs");
        let done = tokio::process::Command::new(surge_bin())
            .current_dir(repo())
            .args([
                "run",
                scenario.to_str().unwrap(),
                "--duration",
                duration,
                "--no-progress",
                "--out",
                runs.to_str().unwrap(),
                "--chaos",
                action,
                "--kubeconfig",
                self.plane.kubeconfig().to_str().unwrap(),
                "--namespace",
                "clinic",
                "--selector",
                "app=hapi",
                "--workload",
                "deployment/hapi",
                "--allow-namespace",
                "clinic",
            ])
            .args(extra)
            .output()
            .await
            .expect("surge runs");
        let text = text(&done);
        eprintln!("{text}");
        assert!(matches!(done.status.code(), Some(0 | 1)), "{text}");
        (
            surge::bundle::read_results(&only_bundle(&runs)).unwrap(),
            text,
        )
    }
}

impl Drop for Clinic {
    fn drop(&mut self) {
        let _ = self.balancer.start_kill();
    }
}

/// `surge sim balance` in front of Service hapi, on loopback: the process
/// and its URL.
async fn balancer(plane: &ControlPlane, balancing: &str) -> (tokio::process::Child, String) {
    use tokio::io::AsyncBufReadExt;
    let mut command = tokio::process::Command::new(surge_bin());
    netns::dies_with_test(&mut command);
    let mut child = command
        .args([
            "sim",
            "balance",
            "--namespace",
            "clinic",
            "--service",
            "hapi",
        ])
        .args([
            "--port-name",
            "http",
            "--balancing",
            balancing,
            "--kubeconfig",
        ])
        .arg(plane.kubeconfig())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("the balancer starts");
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let first = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
        .await
        .expect("the balancer says where it listens")
        .unwrap()
        .unwrap_or_default();
    let port = first
        .strip_prefix("LISTENING ")
        .expect(&first)
        .trim()
        .to_owned();
    (child, format!("http://127.0.0.1:{port}"))
}
