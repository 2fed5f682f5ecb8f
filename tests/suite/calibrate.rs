//! Calibration against the reference cluster, whose capacity is known from
//! its pool size and hold time: the measured per-pod capacity must land near
//! the analytic value, and the recommended pool must match an Erlang C
//! computed independently here.

mod remeasure;

use crate::common::*;
use std::process::Command;
use std::time::Duration;
use surge::calibrate::capacity::Slo;
use surge::calibrate::{analyse, Demand};
use surge::run::staircase::{climb, Staircase};
use surge_sim::balancer::Balancing;
use surge_sim::replica::ServiceOptions;
use surge_sim::ClusterOptions;

const POOL: usize = 4;
const HOLD_MS: u64 = 20;

/// Erlang C by its textbook formula with factorials: independent of surge's.
fn erlang_c_textbook(c: u32, a: f64) -> f64 {
    let fact = |n: u32| (1..=n).map(|k| k as f64).product::<f64>();
    let top = a.powi(c as i32) / fact(c) * c as f64 / (c as f64 - a);
    let sum: f64 = (0..c).map(|k| a.powi(k as i32) / fact(k)).sum();
    top / (sum + top)
}

const SLO: Slo = Slo {
    p99_ms: 1000.0,
    error_budget: 0.01,
};

/// A round-robin cluster of `replicas`, each a pool of 4 × 20 ms, with an
/// optional database-wide connection limit.
async fn pool_cluster(replicas: usize, db_limit: Option<usize>) -> surge_sim::Cluster {
    cluster(ClusterOptions {
        replicas,
        balancing: Balancing::RoundRobin,
        service: ServiceOptions {
            pool: POOL,
            hold: Duration::from_millis(HOLD_MS),
            db_limit,
            ..Default::default()
        },
        ..Default::default()
    })
    .await
}

/// Each replica's Prometheus endpoint, for the pool series.
fn pool_metrics(cluster: &surge_sim::Cluster) -> Vec<String> {
    replica_urls(cluster)
        .iter()
        .map(|u| format!("{u}/actuator/prometheus"))
        .collect()
}

/// An operator who knows nothing beyond the defaults: no base or peak
/// demand, no hold time (measured or none), a PostgreSQL-sized budget.
fn demand_unknown() -> Demand {
    Demand {
        base_rate: None,
        peak_rate: None,
        growth_per_s: 0.0,
        metric_window_s: 30.0,
        pod_start_s: 20.0,
        readiness_s: 5.0,
        hold_s: None,
        checkouts_per_request: None,
        wait_probability: 0.05,
        pool_floor: 1,
        connection_budget: 97,
    }
}

/// The FHIR search staircase against `url`.
fn staircase(
    url: &str,
    start_rate: f64,
    step_rate: f64,
    step_duration: Duration,
    max_steps: usize,
    out: &std::path::Path,
) -> Staircase {
    Staircase {
        scenario: repo().join("scenarios/capacity-fhir-search.toml"),
        target: Some(url.to_owned()),
        start_rate,
        step_rate,
        step_duration,
        max_steps,
        // The capacity tests below check the arithmetic against the pool's
        // known rate; evenly spaced arrivals keep their steps steady.
        arrivals: surge::scenario::ArrivalProcess::Uniform,
        out_dir: out.to_path_buf(),
        warm_up: Duration::ZERO,
        // The staircase's own arithmetic is what these tests check;
        // bisection has its own test.
        precision: 0.0,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn measured_capacity_matches_the_sims_pool_and_hold_time() {
    let _engine = engine_lock().await;
    let cluster = pool_cluster(2, None).await;
    let out = tempfile::tempdir().unwrap();
    let slo = SLO;
    let stairs = staircase(
        &cluster.url,
        280.0,
        40.0,
        Duration::from_secs(3),
        6,
        out.path(),
    );
    // Scrape each replica's HikariCP-style pool series during the staircase.
    let metrics = pool_metrics(&cluster);
    let scraper = surge::run::scrape::Scraper::start(metrics, Duration::from_millis(500));
    let steps = climb(&stairs, &SLO, &|| None, None, |_, _, _| {})
        .await
        .expect("the staircase runs")
        .steps;
    let samples = scraper.finish().await;
    let (hold, checkouts) =
        surge::calibrate::pool::hold_time(&samples).expect("checkouts were scraped");
    assert!(checkouts > 1000.0, "{checkouts}");
    assert!(
        (hold * 1000.0 - HOLD_MS as f64).abs() / HOLD_MS as f64 <= 0.10,
        "measured hold {:.2} ms for {HOLD_MS} ms",
        hold * 1000.0
    );
    assert!(
        surge::calibrate::pool::max_pending(&samples) > 0.0,
        "past the knee, threads waited for connections"
    );
    assert!(steps.len() >= 3, "{steps:?}");
    // Stopped by itself past saturation, before running every step.
    assert!(
        steps.len() < 6 || !steps.last().unwrap().keeps_up(),
        "{}",
        surge::report::staircase_table(&steps)
    );

    let demand = Demand {
        base_rate: Some(100.0),
        peak_rate: Some(1000.0),
        growth_per_s: 0.001,
        metric_window_s: 30.0,
        pod_start_s: 20.0,
        readiness_s: 5.0,
        // The hold time as measured from the scraped pool series, not as configured.
        hold_s: Some(hold),
        checkouts_per_request: None,
        wait_probability: 0.05,
        pool_floor: 1,
        connection_budget: 40,
    };
    let c = analyse(steps, 2, slo, &demand);
    let table = surge::report::staircase_table(&c.steps);
    // Shown with --nocapture: the staircase and the reasoning.
    eprintln!("{table}{}", c.reasons.join("\n"));
    let analytic = POOL as f64 / (HOLD_MS as f64 / 1000.0); // 200 req/s per pod
    let measured = c
        .capacity_per_pod
        .unwrap_or_else(|| panic!("no capacity: {table}"));
    assert!(
        (measured - analytic).abs() / analytic <= 0.15,
        "measured {measured:.1} req/s per pod vs analytic {analytic}\n{table}"
    );
    assert!(
        c.knee_step.is_some(),
        "the staircase went past the knee\n{table}"
    );
    // calibration.html: self-contained, the staircase, latency and USL charts, every reason.
    let page = surge::report::calibration_html(&c).unwrap();
    assert_eq!(page.matches("<svg").count(), 3);
    assert!(!page.contains("<script"));
    let escaped = |r: &str| {
        r.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&quot;")
            .replace('\'', "&#39;")
    };
    assert!(c.reasons.iter().all(|r| page.contains(&escaped(r))));

    // The pool: smallest c with C(c, a) ≤ 5% at the per-pod capacity, by the textbook formula.
    let a = measured * HOLD_MS as f64 / 1000.0;
    let independent = ((a.floor() as u32 + 1)..100)
        .find(|&k| erlang_c_textbook(k, a) <= 0.05)
        .unwrap();
    let recommended = c.pool.as_ref().unwrap().size;
    assert!(
        recommended.abs_diff(independent) <= 1,
        "pool {recommended} vs independent Erlang C {independent}"
    );

    // The connection budget (40) binds maxReplicas before the 1000 req/s peak does, and says so.
    let hpa = c.hpa.as_ref().unwrap();
    assert_eq!(hpa.max_bound, surge::calibrate::hpa::MaxBound::Connections);
    assert_eq!(hpa.max_replicas, (40 / recommended).max(hpa.min_replicas));
    assert!(
        c.reasons.iter().any(|r| r.contains("connection budget")),
        "{:?}",
        c.reasons
    );

    // --verify: a replay at the recommended per-pod rate on both replicas holds the SLO.
    let rate = hpa.target_per_pod * 2.0;
    let surge::run::staircase::StepRun::Measured(check, _) =
        surge::run::staircase::run_step(&stairs, rate)
            .await
            .unwrap()
    else {
        panic!("the replay was not interrupted")
    };
    cluster.shutdown().await;
    assert!(
        check.meets(&slo),
        "at the recommended {rate:.0} req/s: {check:?}"
    );
}

#[test]
fn plan_checks_the_seed_arithmetic_from_the_command_line() {
    let plan = |replicas: &str| {
        Command::new(surge_bin())
            .args([
                "plan",
                "--replicas",
                replicas,
                "--pool",
                "5",
                "--pgbouncer-pool",
                "20",
                "--max-connections",
                "30",
            ])
            .output()
            .unwrap()
    };
    let fits = plan("3");
    assert_eq!(fits.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&fits.stdout)
        .contains("3 replicas × 5 connections = 15 fits pgBouncer default_pool_size 20"));
    let breaks = plan("5");
    assert_eq!(breaks.status.code(), Some(1));
    let text = String::from_utf8_lossy(&breaks.stdout);
    assert!(
        text.contains("= 25 exceeds")
            && text.contains("first to break: pgBouncer default_pool_size 20, at 5 replicas"),
        "{text}"
    );
}

/// The cluster's capacity (req/s) at `replicas` replicas of pool 4 × 20 ms,
/// with an optional database-wide connection limit.
async fn cluster_capacity(
    replicas: usize,
    db_limit: Option<usize>,
    start: f64,
    step: f64,
) -> (f64, surge::calibrate::Calibration) {
    let cluster = pool_cluster(replicas, db_limit).await;
    let out = tempfile::tempdir().unwrap();
    let slo = SLO;
    let stairs = staircase(
        &cluster.url,
        start,
        step,
        Duration::from_millis(2500),
        7,
        out.path(),
    );
    let steps = climb(&stairs, &SLO, &|| None, None, |_, _, _| {})
        .await
        .expect("the staircase runs")
        .steps;
    cluster.shutdown().await;
    let demand = Demand {
        base_rate: Some(50.0),
        peak_rate: Some(1000.0),
        growth_per_s: 0.0,
        metric_window_s: 30.0,
        pod_start_s: 20.0,
        readiness_s: 5.0,
        hold_s: Some(HOLD_MS as f64 / 1000.0),
        checkouts_per_request: None,
        wait_probability: 0.05,
        pool_floor: 1,
        // The database's limit, as the operator would give it.
        connection_budget: db_limit.unwrap_or(1000) as u32,
    };
    let c = analyse(steps, replicas as u32, slo, &demand);
    let per_pod = c
        .capacity_per_pod
        .unwrap_or_else(|| panic!("no capacity:\n{}", surge::report::staircase_table(&c.steps)));
    eprintln!(
        "{replicas} replicas, db limit {db_limit:?}:\n{}{}",
        surge::report::staircase_table(&c.steps),
        c.reasons.join("\n")
    );
    (per_pod * replicas as f64, c)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doubling_replicas_doubles_capacity_until_the_database_limit_binds() {
    let _engine = engine_lock().await;
    let (one, _) = cluster_capacity(1, None, 120.0, 20.0).await;
    let (two, _) = cluster_capacity(2, None, 240.0, 40.0).await;
    assert!(
        (two / one - 2.0).abs() <= 0.4,
        "without a database limit: {one:.0} → {two:.0} req/s"
    );
    // A database taking 6 connections at once caps the cluster near 6 / 20 ms = 300 req/s.
    let (limited, c) = cluster_capacity(2, Some(6), 180.0, 30.0).await;
    assert!(
        limited < 0.85 * two,
        "the database limit binds: {limited:.0} vs {two:.0} req/s"
    );
    assert!(
        limited <= 300.0 * 1.05,
        "{limited:.0} req/s is above what 6 connections allow"
    );
    let hpa = c.hpa.unwrap();
    assert_eq!(hpa.max_bound, surge::calibrate::hpa::MaxBound::Connections);
    assert!(
        c.reasons.iter().any(|r| r.contains("connection budget")),
        "the report names the limit: {:?}",
        c.reasons
    );
}

/// Near capacity, bursty arrivals queue where evenly spaced ones do not:
/// one replica whose pool serves 200 requests/s, offered 180/s (90%). With
/// uniform arrivals no request ever waits for a connection; a Poisson
/// process at the same rate makes them wait (an M/D/4 queue at ρ = 0.9:
/// about 20 ms on average, far more at the tail). The bound is generous:
/// half the tail that theory predicts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn near_capacity_poisson_arrivals_queue_where_uniform_ones_do_not() {
    use surge::scenario::{ArrivalProcess, LoadOverride};
    let _engine = engine_lock().await;
    let cluster = pool_cluster(1, None).await;
    let out = tempfile::tempdir().unwrap();
    let mut p99 = Vec::new();
    for arrivals in [
        ArrivalProcess::Uniform,
        ArrivalProcess::Poisson { seed: 11 },
    ] {
        let request = surge::run::RunRequest {
            scenario: repo().join("scenarios/capacity-fhir-search.toml"),
            target: Some(cluster.url.clone()),
            load: LoadOverride {
                rate: Some(180.0),
                duration: Some(Duration::from_secs(8)),
                arrivals: Some(arrivals),
                ..Default::default()
            },
            out_dir: out.path().to_path_buf(),
            ..Default::default()
        };
        let report = surge::run::run(&request).await.expect("the run completes");
        let r = &report.results;
        assert_eq!(r.arrivals.as_deref(), Some(arrivals.describe().as_str()));
        assert_eq!(
            r.overall.failed,
            0,
            "{}",
            surge::report::terminal_summary(r)
        );
        assert!(
            r.overall.count > 1_200,
            "about 1,440 requests: {}",
            r.overall.count
        );
        p99.push(r.overall.latency.p99);
    }
    cluster.shutdown().await;
    let (uniform, poisson) = (p99[0], p99[1]);
    eprintln!("p99 at 90% of capacity: uniform arrivals {uniform:.1} ms, Poisson {poisson:.1} ms");
    assert!(
        poisson > 1.5 * uniform && poisson > uniform + 15.0,
        "p99 with uniform arrivals {uniform:.1} ms, with Poisson arrivals {poisson:.1} ms"
    );
}

/// A persona that logs in before its work: the logins (one per user, not
/// per arrival, and holding no database connection) are counted apart, and
/// capacity is the pooled search's: within 10% of pool ÷ hold. The capacity
/// step always comes before the knee.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logins_are_not_capacity_and_the_pooled_request_sets_it() {
    let _engine = engine_lock().await;
    let cluster = pool_cluster(1, None).await;
    let out = tempfile::tempdir().unwrap();
    let scenario = scenario_file(
        out.path(),
        "login-then-search",
        &format!(
            r#"[target]
base_url = "{}"
replica_header = "X-Served-By"
timeout = "5s"

[auth]
kind = "openmrs-basic"
username = "admin"
password = "Admin123"

[[feeders]]
name = "patient"
file = "patients.csv"
order = "random"

[load]
model = "open"
[[load.stages]]
rate = 10
hold = "2s"

[[personas]]
name = "clinician"
steps = [{{ request = "search" }}]

[requests.search]
path = "/openmrs/ws/rest/v1/patient?q=${{patient.family}}&limit=5"
expect = {{ status = [200] }}
"#,
            cluster.url
        ),
    );
    let stairs = Staircase {
        scenario,
        ..staircase(
            &cluster.url,
            140.0,
            20.0,
            Duration::from_secs(3),
            7,
            out.path(),
        )
    };
    // The pool's true hold time, as its metrics show it (a 20 ms sleep
    // holds a little longer), makes the truth: pool ÷ hold.
    let metrics = pool_metrics(&cluster);
    let scraper = surge::run::scrape::Scraper::start(metrics, Duration::from_millis(500));
    let steps = climb(&stairs, &SLO, &|| None, None, |_, _, _| {})
        .await
        .expect("the staircase runs")
        .steps;
    let (hold, _) =
        surge::calibrate::pool::hold_time(&scraper.finish().await).expect("checkouts were scraped");
    cluster.shutdown().await;
    let table = surge::report::staircase_table(&steps);
    for s in &steps {
        assert!(s.setup_per_s > 0.0, "every step's users logged in\n{table}");
        assert!(
            s.achieved <= 1.05 * s.offered_work(),
            "no more work than was offered: {s:?}"
        );
        assert_eq!(s.by_request.keys().collect::<Vec<_>>(), ["search"]);
    }
    let c = analyse(steps, 1, SLO, &demand_unknown());
    eprintln!("{table}{}", c.reasons.join("\n"));
    let truth = POOL as f64 / hold;
    let measured = c
        .capacity_per_pod
        .unwrap_or_else(|| panic!("no capacity: {table}"));
    assert!(
        (measured - truth).abs() / truth <= 0.10,
        "measured {measured:.1} req/s per pod vs pool ÷ hold {truth:.1} (hold {:.1} ms)\n{table}",
        hold * 1000.0
    );
    assert!(
        c.reasons.iter().any(|r| r.contains("left out of capacity")),
        "{:?}",
        c.reasons
    );
    if let (Some(cap), Some(knee)) = (c.capacity_step, c.knee_step) {
        assert!(
            cap < knee,
            "capacity step {cap} before the knee {knee}\n{table}"
        );
    }
}

/// `surge calibrate` with the pool's metrics: a staircase that uses the
/// pool up names the pool as the bound (and says to measure again after
/// changing it); one that stays well inside the pool does not. The HPA
/// target says which pool it was measured with: the used-up pool of 4 (its
/// ceiling, about 4 ÷ 21 ms ≈ 185 req/s, within 2× of the capacity
/// measured below it) bound the capacity, so the target stays on that
/// capacity beside the larger recommended pool, and asks for a calibration
/// with it; the roomy staircase's target holds at the recommended pool.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_used_up_pool_is_named_as_the_bound_and_a_roomy_one_is_not() {
    use surge::run::calibrate::{calibrate, CalibrateRequest, StepSource};
    let _engine = engine_lock().await;
    let cluster = pool_cluster(1, None).await;
    let out = tempfile::tempdir().unwrap();
    let metrics = pool_metrics(&cluster);
    let mut calibrations = Vec::new();
    for (name, start, steps) in [("roomy", 40.0, 2), ("used-up", 120.0, 3)] {
        let request = CalibrateRequest {
            source: StepSource::Climb(staircase(
                &cluster.url,
                start,
                40.0,
                Duration::from_secs(3),
                steps,
                &out.path().join(name),
            )),
            replicas: 1,
            slo: SLO,
            demand: demand_unknown(),
            pod_start_from: None,
            verify: false,
            metrics_urls: metrics.clone(),
            recommendations: surge::report::Recommendations {
                workload: surge::calibrate::manifest::Workload {
                    kind: "Deployment".into(),
                    name: "fhir".into(),
                    namespace: None,
                    metric: "http_server_requests_per_second".into(),
                },
                keda: None,
            },
            dir: out.path().join(name).join("calibration"),
            ramp: None,
            pod_cpu: None,
        };
        let report = calibrate(&request, &mut |_| {}).await.expect("calibrates");
        eprintln!("{name}:\n{}", report.calibration.reasons.join("\n"));
        calibrations.push(report.calibration);
    }
    cluster.shutdown().await;
    let (roomy, used_up) = (&calibrations[0], &calibrations[1]);
    let (roomy_said, used_up_said) = (roomy.reasons.join("\n"), used_up.reasons.join("\n"));
    assert!(!roomy_said.contains("POOL BOUND"), "{roomy_said}");
    assert!(
        used_up_said.contains("POOL BOUND THE CAPACITY"),
        "{used_up_said}"
    );
    assert!(
        used_up_said.contains("measure capacity again"),
        "{used_up_said}"
    );

    let basis = |c: &surge::calibrate::Calibration| {
        let hpa = c.hpa.as_ref().expect("a recommendation was made");
        (
            hpa.target_per_pod,
            hpa.pool_basis.clone().expect("the target names its pool"),
        )
    };
    let (_, roomy_basis) = basis(roomy);
    assert!(
        roomy_basis.starts_with("target measured with pool 4: ")
            && roomy_basis.contains("(not pool-bound"),
        "{roomy_basis}"
    );
    assert!(roomy_basis.contains("holds at pool"), "{roomy_basis}");

    let (target, used_up_basis) = basis(used_up);
    let measured = used_up.capacity_per_pod.unwrap();
    let recommended = used_up.pool.as_ref().unwrap().size;
    assert!(
        recommended > POOL as u32,
        "pool {recommended} recommended for {measured:.0} req/s"
    );
    assert!(
        used_up_basis.starts_with(&format!("target measured with pool 4: {measured:.1} req/s per pod (pool-bound: pool 4 serves at most ")),
        "{used_up_basis}"
    );
    assert!(
        used_up_basis.contains(&format!(
            "; at the recommended pool {recommended} the pool ceiling is "
        )),
        "{used_up_basis}"
    );
    assert!(
        used_up_basis.contains(&format!(
            "re-calibrate with pool {recommended} to raise the target"
        )),
        "{used_up_basis}"
    );
    // No growth: the target is the measured capacity over the HPA's 10% tolerance.
    assert!(
        (target - measured / 1.1).abs() < 1e-9,
        "target {target} for {measured}"
    );
    let page = surge::report::calibration_html(used_up).unwrap();
    assert!(page.contains("HPA target and pool: target measured with pool 4"));
}

/// Bisection after the climb narrows the capacity from the staircase's
/// step (10% here) to 2%, against the pool's own truth (pool ÷ the hold
/// time measured from the pool's metrics, an independent count).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bisection_narrows_the_capacity_to_two_percent_near_the_pools_truth() {
    let _engine = engine_lock().await;
    let cluster = pool_cluster(1, None).await;
    let out = tempfile::tempdir().unwrap();
    let mut stairs = staircase(
        &cluster.url,
        100.0,
        20.0,
        Duration::from_secs(3),
        8,
        out.path(),
    );
    stairs.precision = 0.02;
    let scraper =
        surge::run::scrape::Scraper::start(pool_metrics(&cluster), Duration::from_millis(500));
    let mut bisections = Vec::new();
    let climbed = climb(&stairs, &SLO, &|| None, None, |step, _, pass| {
        if let surge::run::staircase::Pass::Bisect(_) = pass {
            bisections.push(step.rate);
        }
    })
    .await
    .expect("the staircase runs");
    let (hold, _) =
        surge::calibrate::pool::hold_time(&scraper.finish().await).expect("checkouts were scraped");
    cluster.shutdown().await;
    let truth = POOL as f64 / hold;
    let table = surge::report::staircase_table(&climbed.steps);
    assert!(
        !bisections.is_empty(),
        "bisection ran after the climb\n{table}"
    );
    let rates: Vec<f64> = climbed.steps.iter().map(|s| s.rate).collect();
    assert!(
        rates.windows(2).all(|w| w[0] < w[1]),
        "steps in rate order: {rates:?}"
    );
    let bisected = climbed.steps.iter().filter(|s| s.bisected).count();
    assert_eq!(bisected, bisections.len(), "{table}");
    let c = analyse(climbed.steps, 1, SLO, &demand_unknown());
    let capacity = c
        .capacity_per_pod
        .unwrap_or_else(|| panic!("no capacity\n{table}"));
    eprintln!(
        "{table}\ntruth {truth:.1} req/s (hold {:.2} ms), calibrated {capacity:.1}",
        hold * 1000.0
    );
    let error = capacity / truth - 1.0;
    // WHY 5% below: the capacity is what the highest step inside the knee
    // completed, and near the knee a pool of 4 completes a little less
    // than it is offered; with the machine's other tests running beside
    // this one, the pool's hold time (the truth) wanders too. Measured
    // here: -2.0% to -2.9% with two to four CPU hogs beside it.
    assert!(
        (-0.05..=0.01).contains(&error),
        "calibrated {capacity:.1} vs truth {truth:.1}: {:+.1}%\n{table}",
        error * 100.0
    );
    let note = surge::calibrate::bisection::note(&c.steps, &SLO, 0.02).expect("bisection said");
    assert!(note.contains("within the 2% asked"), "{note}\n{table}");
}
