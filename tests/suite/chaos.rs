//! Chaos through the real kube-rs client against a fake Kubernetes API
//! server whose pods are reference-cluster replicas: a pod delete is a real
//! `kill -9`, and the sim restarts the replica after its start-up delay.
//! Each verdict is shown both ways (sessions lost with the pod, or not).

use crate::common::fake_kube::{FakeKube, Refuse, NAMESPACE, SELECTOR, WORKLOAD};
use crate::common::*;
use std::time::Duration;
use surge::bundle::{ChaosReport, Outcome};
use surge::run::{RunError, RunReport, RunRequest};
use surge::scenario::LoadOverride;
use surge_sim::balancer::Balancing;
use surge_sim::replica::ServiceOptions;
use surge_sim::sessions::SessionStoreKind;
use surge_sim::ClusterOptions;

const RESTART_DELAY: Duration = Duration::from_secs(2);

fn kubernetes_section() -> String {
    format!(
        "[kubernetes]\nnamespace = \"{NAMESPACE}\"\nselector = \"{SELECTOR}\"\n\
         workload = \"deployment/{WORKLOAD}\"\nhpa = \"{WORKLOAD}\"\n"
    )
}

/// The clinic scenario (login, search, session probe) with a Kubernetes target and `chaos`.
fn chaos_scenario(
    dir: &std::path::Path,
    base_url: &str,
    users: usize,
    hold: &str,
    chaos: &str,
) -> std::path::PathBuf {
    let load = format!(
        "[load]\nmodel = \"closed\"\n[[load.stages]]\nusers = {users}\nhold = \"{hold}\"\n"
    );
    let body = format!(
        "{}\n{}\n{chaos}\n",
        clinic(base_url, &load),
        kubernetes_section()
    );
    scenario_file(dir, "chaos", &body)
}

fn request(scenario: std::path::PathBuf, fake: &FakeKube, out: &std::path::Path) -> RunRequest {
    RunRequest {
        scenario,
        out_dir: out.to_path_buf(),
        load: LoadOverride::default(),
        chaos: surge::chaos::setup::ChaosRequest {
            kubeconfig: Some(fake.kubeconfig.clone()),
            allow_namespaces: vec![NAMESPACE.to_owned()],
            ..Default::default()
        },
        ..Default::default()
    }
}

async fn sticky_cluster(sessions: SessionStoreKind) -> surge_sim::Cluster {
    cluster(ClusterOptions {
        balancing: Balancing::Sticky,
        restart_delay: RESTART_DELAY,
        service: ServiceOptions {
            sessions,
            ..Default::default()
        },
        ..Default::default()
    })
    .await
}

/// Every call the fake received is allowed by the shipped least-privilege Role.
fn assert_rbac_allows(calls: &[crate::common::fake_kube::Call]) {
    let text = std::fs::read_to_string(repo().join("deploy/rbac.yaml")).unwrap();
    let role_doc = text
        .split("\n---\n")
        .find(|d| d.contains("kind: Role\n"))
        .expect("a Role in deploy/rbac.yaml");
    let role: k8s_openapi::api::rbac::v1::Role = serde_saphyr::from_str(role_doc).unwrap();
    let rules = role.rules.unwrap_or_default();
    for call in calls {
        let parts: Vec<&str> = call.path.trim_matches('/').split('/').collect();
        let (group, rest) = match parts.as_slice() {
            ["api", "v1", "namespaces", _, rest @ ..] => ("", rest),
            ["apis", group, _, "namespaces", _, rest @ ..] => (*group, rest),
            _ => panic!("unexpected call {call:?}"),
        };
        let verb = match (call.method.as_str(), rest.len()) {
            ("GET", 1) if call.query.contains("watch=true") => "watch",
            ("GET", 1) => "list",
            ("GET", _) => "get",
            ("DELETE", _) => "delete",
            ("PATCH", _) => "patch",
            other => panic!("unexpected method {other:?}"),
        };
        let allowed = rules.iter().any(|r| {
            r.api_groups.iter().flatten().any(|g| g == group)
                && r.resources.iter().flatten().any(|x| x == rest[0])
                && r.verbs.iter().any(|v| v == verb)
        });
        assert!(
            allowed,
            "deploy/rbac.yaml does not allow {verb} {group}/{}",
            rest[0]
        );
    }
}

/// A sticky cluster with `sessions`, a fake API server over it (refusing
/// what `refuse` says), and a run of the clinic
/// scenario with `users` for `hold`, with `chaos`. The folder holds the bundle.
async fn chaos_run(
    sessions: SessionStoreKind,
    refuse: Refuse,
    users: usize,
    hold: &str,
    chaos: &str,
) -> (FakeKube, RunReport, tempfile::TempDir) {
    let cluster = sticky_cluster(sessions).await;
    let fake = FakeKube::start(cluster.backends(), refuse).await;
    let dir = tempfile::tempdir().unwrap();
    let scenario = chaos_scenario(dir.path(), &cluster.url, users, hold, chaos);
    let report = surge::run::run(&request(scenario, &fake, &dir.path().join("reports")))
        .await
        .expect("run completes");
    cluster.shutdown().await;
    (fake, report, dir)
}

/// How many times the pods were watched and listed.
fn pod_watches_and_lists(fake: &FakeKube) -> (usize, usize) {
    let path = format!("/api/v1/namespaces/{NAMESPACE}/pods");
    let gets: Vec<_> = fake
        .calls_of("GET")
        .into_iter()
        .filter(|c| c.path == path)
        .collect();
    let watches = gets
        .iter()
        .filter(|c| c.query.contains("watch=true"))
        .count();
    (watches, gets.len() - watches)
}

fn chaos_of(r: &surge::bundle::RunResults) -> &ChaosReport {
    r.chaos.as_ref().expect("the run has a chaos report")
}

/// Kill at 3 s, a second kill at 7 s that the cap of one kill refuses.
const KILL_ONCE: &str = "[chaos]\ngrace_period = \"0s\"\nmax_kills = 1\n\
    [[chaos.actions]]\naction = \"kill-pod\"\npick = \"most-sessions\"\nat = \"3s\"\n\
    [[chaos.actions]]\naction = \"kill-pod\"\nat = \"7s\"\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_a_pod_drops_only_its_users_and_recovery_matches_the_start_up_delay() {
    let _engine = engine_lock().await;
    let (fake, report, _dir) = chaos_run(
        SessionStoreKind::PerReplica,
        Refuse::default(),
        6,
        "10s",
        KILL_ONCE,
    )
    .await;
    let r = &report.results;
    let chaos = chaos_of(r);

    // The calls surge made: pods by selector in the namespace, one delete
    // with grace period 0, the workload watched, the HPA read.
    let lists = fake.calls_of("GET");
    assert!(lists
        .iter()
        .any(|c| c.path == format!("/api/v1/namespaces/{NAMESPACE}/pods")
            && c.query.contains("labelSelector=app%3Dclinic")));
    assert!(
        lists
            .iter()
            .all(|c| c.path.contains(&format!("/namespaces/{NAMESPACE}/"))),
        "{lists:?}"
    );
    let deletes = fake.calls_of("DELETE");
    assert_eq!(deletes.len(), 1, "the cap allows one kill: {deletes:?}");
    let victim = &chaos.events[0].target[0];
    assert_eq!(
        deletes[0].path,
        format!("/api/v1/namespaces/{NAMESPACE}/pods/{victim}")
    );
    assert!(
        deletes[0].body.contains("\"gracePeriodSeconds\":0"),
        "{}",
        deletes[0].body
    );
    assert!(
        lists.iter().any(|c| c.query.contains("watch=true")),
        "the workload is watched"
    );
    assert!(lists.iter().any(|c| c
        .path
        .ends_with(&format!("horizontalpodautoscalers/{WORKLOAD}"))));
    assert_rbac_allows(&fake.calls());
    // The pods are watched, not polled: listed up front and by the watch's
    // first list (polling every 200 ms until recovery lists them 10+ times).
    let (watches, pod_lists) = pod_watches_and_lists(&fake);
    assert!(
        watches >= 1 && pod_lists <= 3,
        "{watches} watches, {pod_lists} lists"
    );

    // The events: the kill, then the refusal by the cap.
    assert_eq!(chaos.events.len(), 2, "{:?}", chaos.events);
    let kill = &chaos.events[0];
    assert_eq!(kill.outcome, Outcome::Done);
    assert!((kill.at_s - 3.0).abs() < 0.5, "at {}", kill.at_s);
    assert_eq!(kill.ready_before, Some(3));
    assert_eq!(chaos.events[1].outcome, Outcome::Skipped);
    assert!(
        chaos.events[1].answer.contains("max_kills"),
        "{}",
        chaos.events[1].answer
    );

    // Recovery matches the sim's start-up delay within 25%.
    let ready = kill.ready_after_s.expect("the replica came back");
    let delay = RESTART_DELAY.as_secs_f64();
    assert!(
        (ready - delay).abs() <= 0.25 * delay,
        "ready after {ready:.2} s, delay {delay} s"
    );
    assert_eq!(chaos.pod_startup_s, vec![ready]);
    // What `surge calibrate --pod-start-from BUNDLE` takes as the pod start-up time.
    let (startup, why) = surge::bundle::startup_from_bundle(&report.bundle).unwrap();
    assert!(
        (startup - ready).abs() < 1e-6 && why.contains("median of 1"),
        "{why}"
    );
    // The replica counts dipped and came back, with the HPA's view.
    let readies: Vec<u32> = chaos.replica_counts.iter().map(|c| c.ready).collect();
    assert!(
        readies.contains(&2) && readies.last() == Some(&3),
        "{readies:?}"
    );
    assert!(chaos
        .replica_counts
        .iter()
        .any(|c| c.hpa_current == Some(3)));

    // Drops: only the victim's users, all attributed to the event.
    let s = &r.sessions;
    assert!(s.drops > 0, "sessions kept per replica die with it");
    assert!(
        s.events.iter().all(|d| &d.before == victim),
        "{:?}",
        s.events
    );
    assert_eq!(s.drops_during_chaos, s.drops);
    let impact = kill.impact.as_ref().expect("impact");
    assert_eq!(impact.session_drops, s.drops);
    assert_eq!(impact.ready_after_s, Some(ready));
    assert!(impact.p99_before_ms.is_some() && impact.p99_after_ms.is_some());
    assert!(!r.thresholds_passed(), "session.drops < 1 fails");

    // The bundle carries the events, in every report.
    let read = |f: &str| std::fs::read_to_string(report.bundle.join(f)).unwrap();
    assert!(read("summary.json").contains("\"kill-pod most-sessions\""));
    let html = read("report.html");
    assert!(html.contains("<h2>Chaos</h2>") && html.contains("id=\"chart-ready-replicas\""));
    assert!(report.bundle.join("charts/ready-replicas.png").exists());
    assert!(read("summary.md").contains("**Chaos:**"));
    let junit = read("junit.xml");
    let case = junit.find("name=\"chaos recovery\"").expect("a chaos case");
    assert!(
        !junit[case..]
            .split("</testcase>")
            .next()
            .unwrap()
            .contains("<failure"),
        "recovered: {junit}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_shared_sessions_a_kill_costs_only_in_flight_requests() {
    let _engine = engine_lock().await;
    // A Role without `watch` on pods: surge lists them instead, and the
    // recovery time is as good.
    let refuse = Refuse {
        pod_watch: true,
        ..Default::default()
    };
    let (fake, report, _dir) =
        chaos_run(SessionStoreKind::Shared, refuse, 6, "8s", KILL_ONCE).await;
    let r = &report.results;
    let kill = &chaos_of(r).events[0];
    assert_eq!(kill.outcome, Outcome::Done);
    assert_eq!(r.sessions.drops, 0, "{:?}", r.sessions.events);
    // At most one request per user was in flight at the kill.
    assert!(
        r.overall.failed <= 6,
        "failed {} ({:?})",
        r.overall.failed,
        r.overall.errors
    );
    let impact = kill.impact.as_ref().unwrap();
    assert_eq!(impact.session_drops, 0);
    assert_eq!(impact.burst_errors, r.overall.failed);
    let ready = kill.ready_after_s.expect("the replica came back");
    assert!((ready - 2.0).abs() <= 0.5, "ready after {ready:.2} s");
    assert!(r.thresholds_passed(), "{:?}", r.thresholds);
    let (watches, pod_lists) = pod_watches_and_lists(&fake);
    assert!(
        watches >= 1 && pod_lists >= 8,
        "{watches} watches, {pod_lists} lists"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_error_stops_the_chaos_but_not_the_load() {
    let _engine = engine_lock().await;
    let chaos = "[chaos]\n[[chaos.actions]]\naction = \"kill-pod\"\nevery = \"1s\"\n";
    let (fake, report, _dir) = chaos_run(
        SessionStoreKind::Shared,
        Refuse {
            deletes: Some(403),
            ..Default::default()
        },
        2,
        "4s",
        chaos,
    )
    .await;
    let r = &report.results;
    let chaos = chaos_of(r);
    assert_eq!(
        fake.calls_of("DELETE").len(),
        1,
        "no action after the refusal"
    );
    assert_eq!(chaos.events.len(), 1);
    assert_eq!(chaos.events[0].outcome, Outcome::Aborted);
    assert!(
        chaos.events[0].answer.contains("403"),
        "{}",
        chaos.events[0].answer
    );
    assert!(chaos
        .aborted
        .as_deref()
        .unwrap()
        .contains("the load goes on"));
    assert!(r.interrupted.is_none());
    assert!(r.busy_s > 3.0, "the load ran to its end: {}", r.busy_s);
    assert_eq!(r.overall.failed, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workload_actions_patch_as_kubectl_does() {
    let _engine = engine_lock().await;
    let chaos = "[chaos]\nrecover_within = \"1s\"\nmax_actions = 3\n\
        [[chaos.actions]]\naction = \"rollout-restart\"\nat = \"1s\"\n\
        [[chaos.actions]]\naction = \"scale\"\nreplicas = 3\nat = \"2s\"\n\
        [[chaos.actions]]\naction = \"exec\"\ncommand = \"exit 3\"\nat = \"3s\"\n\
        [[chaos.actions]]\naction = \"exec\"\ncommand = \"exit 4\"\nat = \"3.5s\"\n";
    let (fake, report, _dir) =
        chaos_run(SessionStoreKind::Shared, Refuse::default(), 1, "4s", chaos).await;
    let patches = fake.calls_of("PATCH");
    assert_eq!(patches.len(), 2, "{patches:?}");
    let path = format!("/apis/apps/v1/namespaces/{NAMESPACE}/deployments/{WORKLOAD}");
    assert!(patches.iter().all(|p| p.path == path));
    assert!(
        patches[0]
            .body
            .contains("kubectl.kubernetes.io/restartedAt"),
        "{}",
        patches[0].body
    );
    assert!(
        patches[1].body.contains("\"replicas\":3"),
        "{}",
        patches[1].body
    );
    let events = &chaos_of(&report.results).events;
    let outcomes: Vec<(&str, Outcome)> = events
        .iter()
        .map(|e| (e.action.as_str(), e.outcome))
        .collect();
    assert_eq!(
        outcomes,
        [
            ("rollout-restart", Outcome::Done),
            ("scale to 3", Outcome::Done),
            ("exec", Outcome::Done),
            ("exec", Outcome::Skipped)
        ]
    );
    assert_eq!(events[2].answer, "exit 3");
    assert!(
        events[3].answer.contains("max_actions"),
        "{}",
        events[3].answer
    );
    assert_eq!(events[0].target, [format!("deployment/{WORKLOAD}")]);
    // Nothing was really restarted: the rollout never completes, and the report says so.
    assert_eq!(events[0].ready_after_s, None);
    let junit = std::fs::read_to_string(report.bundle.join("junit.xml")).unwrap();
    assert!(
        junit.contains("replicas not back within the limit after: rollout-restart"),
        "{junit}"
    );
    assert!(fake.calls_of("DELETE").is_empty());
    assert_rbac_allows(&fake.calls());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsafe_plans_are_refused_before_any_call() {
    let cluster = sticky_cluster(SessionStoreKind::Shared).await;
    let fake = FakeKube::start(cluster.backends(), Refuse::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let kill = "[chaos]\n[[chaos.actions]]\naction = \"kill-pod\"\nat = \"1s\"\n";
    let scenario = chaos_scenario(dir.path(), &cluster.url, 1, "2s", kill);
    let refused = |change: &dyn Fn(&mut RunRequest)| {
        let mut req = request(scenario.clone(), &fake, dir.path());
        change(&mut req);
        let rt = tokio::runtime::Handle::current();
        let outcome = tokio::task::block_in_place(|| rt.block_on(surge::run::run(&req)));
        match outcome {
            Err(RunError::Chaos(e)) => e,
            other => panic!("expected a refusal, got {other:?}"),
        }
    };
    let e = refused(&|r| r.chaos.selector = Some(String::new()));
    assert!(e.contains("no label selector"), "{e}");
    let e = refused(&|r| {
        r.chaos.namespace = Some("kube-system".into());
        r.chaos.allow_namespaces.push("kube-system".into());
    });
    assert!(e.contains("refused"), "{e}");
    let e = refused(&|r| r.chaos.allow_namespaces.clear());
    assert!(e.contains("--allow-namespace clinic"), "{e}");
    let e = refused(&|r| r.chaos.namespace = Some(String::new()));
    assert!(e.contains("no namespace"), "{e}");
    assert!(
        fake.calls().is_empty(),
        "refused before any call: {:?}",
        fake.calls()
    );

    // --dry-run prints the plan and touches nothing.
    let out = std::process::Command::new(surge_bin())
        .arg("run")
        .arg(&scenario)
        .args(["--dry-run", "--allow-namespace", NAMESPACE, "--kubeconfig"])
        .arg(&fake.kubeconfig)
        .args(["--chaos", "kill-pod:oldest@every:2s", "--duration", "5s"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("namespace clinic, selector app=clinic"),
        "{stdout}"
    );
    assert_eq!(stdout.matches("kill-pod oldest").count(), 2, "{stdout}");
    assert!(
        fake.calls().is_empty(),
        "dry run made calls: {:?}",
        fake.calls()
    );
    assert!(!dir.path().join("reports").exists());
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_are_read_back_from_the_pods_behind_the_selector() {
    let _engine = engine_lock().await;
    // Attachments on each replica's own disk: a pod that did not take the
    // upload must be reported missing — which it can only be if surge found
    // the pods through the API (no static list, no reads through the balancer).
    let cluster = cluster(ClusterOptions {
        attachments: surge_sim::AttachmentStore::PerReplica,
        ..Default::default()
    })
    .await;
    let fake = FakeKube::start(cluster.backends(), Refuse::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let body = uploads(&cluster.url, &[], "1s").replace(
        "poll = \"25ms\"",
        "poll = \"25ms\"\nthrough_balancer = false",
    );
    let body = format!(
        "{body}\n[kubernetes]\nnamespace = \"{NAMESPACE}\"\nselector = \"{SELECTOR}\"\ndiscover_replicas = true\n"
    );
    let scenario = scenario_file(dir.path(), "discovery", &body);
    let report = surge::run::run(&request(scenario, &fake, &dir.path().join("reports")))
        .await
        .expect("run completes");
    cluster.shutdown().await;
    let c = &report.results.consistency;
    use surge::bundle::Verdict;
    assert!(c.uploads > 3, "{c:?}");
    assert_eq!(c.replicas.len(), 3, "every pod read: {:?}", c.replicas);
    assert_eq!(c.count(Verdict::Ok), c.uploads);
    assert_eq!(c.count(Verdict::Missing), 2 * c.uploads);
    assert!(fake.calls_of("DELETE").is_empty(), "discovery only reads");
    assert!(report.results.chaos.as_ref().unwrap().events.is_empty());
    let e = surge::bundle::startup_from_bundle(&report.bundle).unwrap_err();
    assert!(e.to_string().contains("no pod kill that recovered"), "{e}");
}

#[test]
fn the_demo_kills_a_real_replica_process_and_reports_it() {
    let _engine = engine_lock_blocking();
    let out_dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(surge_bin())
        .current_dir(repo())
        .args([
            "demo",
            "--duration",
            "8s",
            "--chaos",
            "kill-pod:oldest@3s",
            "--out",
        ])
        .arg(out_dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains("chaos (local, reference cluster replicas): 1 events"),
        "{stdout}"
    );
    assert!(stdout.contains("killed with SIGKILL"), "{stdout}");
    assert!(
        stdout.contains("replicas ready again after 2."),
        "the sim restarts after 2 s: {stdout}"
    );
}
