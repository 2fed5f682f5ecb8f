//! A step that broke the SLO below a step that met it, against a target
//! the test makes slow or fast between the climb's measurements: the climb
//! re-measures it once, and the analysis takes the re-measure as warm-up
//! when it meets the SLO, or stops capacity below the step when it breaks
//! the SLO again.

use super::{demand_unknown, staircase};
use crate::common::*;
use std::time::Duration;
use surge::calibrate::capacity::Slo;
use surge::run::staircase::{climb, Staircase};

/// A target that answers in 20 ms, or in 400 ms while `slow` is set: the
/// test sets it between the climb's measurements, so a low step breaks the
/// SLO and the step above meets it, and the re-measure of the low step
/// meets it (warm-up) or breaks it again (a break that stands).
async fn switchable_target(slow: std::sync::Arc<std::sync::atomic::AtomicBool>) -> String {
    use std::sync::atomic::Ordering;
    let app = axum::Router::new().route(
        "/work",
        axum::routing::get(move || {
            let slow = slow.load(Ordering::SeqCst);
            async move {
                let ms = if slow { 400 } else { 20 };
                tokio::time::sleep(Duration::from_millis(ms)).await;
                "{}"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

/// Climbs 5, 10, 15, 20/s (2 s steps, SLO p99 ≤ 300 ms) against the
/// switchable target, slow for the measurements `slow_at` names (in the
/// order they are made, re-measures included), and analyses the climb.
async fn climb_with_a_slow_step(
    slow_at: &[usize],
) -> (surge::run::staircase::Climb, surge::calibrate::Calibration) {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let slow = Arc::new(AtomicBool::new(slow_at.contains(&0)));
    let url = switchable_target(slow.clone()).await;
    let out = tempfile::tempdir().unwrap();
    let scenario = scenario_file(
        out.path(),
        "switchable",
        &format!(
            r#"[target]
base_url = "{url}"
timeout = "5s"

[load]
model = "open"
[[load.stages]]
rate = 5
hold = "2s"

[[personas]]
name = "worker"
steps = [{{ request = "work" }}]

[requests.work]
path = "/work"
expect = {{ status = [200] }}
"#
        ),
    );
    let slo = Slo {
        p99_ms: 300.0,
        error_budget: 0.01,
    };
    let stairs = Staircase {
        scenario,
        ..staircase(&url, 5.0, 5.0, Duration::from_secs(2), 4, out.path())
    };
    let mut made = 0;
    let climbed = climb(&stairs, &slo, &|| None, None, |_, _, _| {
        made += 1;
        slow.store(slow_at.contains(&made), Ordering::SeqCst);
    })
    .await
    .expect("the staircase runs");
    let c = surge::calibrate::analyse_measurements(
        surge::calibrate::Measurements {
            steps: climbed.steps.clone(),
            remeasures: climbed.remeasures.clone(),
            pool_samples: Vec::new(),
        },
        1,
        slo,
        &demand_unknown(),
    );
    eprintln!(
        "{}{}",
        surge::report::staircase_table(&c.steps),
        c.reasons.join("\n")
    );
    (climbed, c)
}

/// Step 2 at 10/s broke the SLO and step 3 met it. Both ways: re-measured
/// fast, the first measurement was warm-up, the report says so and capacity
/// comes from the top step; re-measured slow again, the break stands, the
/// climb stops, and capacity comes from step 1 with step 3 named as not
/// taken.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_that_broke_the_slo_below_one_that_met_is_remeasured() {
    let _engine = engine_lock().await;
    // Measurements: step 1, step 2 (slow), step 3, re-measure of step 2, step 4.
    let (climbed, c) = climb_with_a_slow_step(&[1]).await;
    assert_eq!(climbed.steps.len(), 4, "the climb went on");
    assert_eq!(climbed.remeasures.len(), 1);
    let r = &climbed.remeasures[0];
    assert_eq!(r.step, 1);
    assert!(!r.first.meets(&c.slo) && r.again.meets(&c.slo), "{r:?}");
    assert_eq!(c.capacity_step, Some(3), "the top step, the break refuted");
    let warm_up = c
        .reasons
        .iter()
        .find(|r| r.starts_with("step 2 at 10/s broke the SLO (p99 "))
        .unwrap_or_else(|| panic!("{:?}", c.reasons));
    assert!(warm_up.contains("taken as warm-up/noise"), "{warm_up}");

    // Measurements: step 1, step 2 (slow), step 3, re-measure of step 2 (slow).
    let (climbed, c) = climb_with_a_slow_step(&[1, 3]).await;
    assert_eq!(
        climbed.steps.len(),
        3,
        "nothing above a standing break can be capacity: the climb stops"
    );
    assert_eq!(climbed.remeasures.len(), 1);
    assert_eq!(c.capacity_step, Some(0));
    let said = c.reasons.join("\n");
    assert!(
        said.contains("step 2 at 10/s broke the SLO twice"),
        "{said}"
    );
    assert!(
        said.contains("capacity stops below step 2 at 10/s, which broke it twice: step 3 at 15/s"),
        "{said}"
    );
}
