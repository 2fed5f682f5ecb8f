//! The prediction against the controller's rules, one rule at a time.

use super::*;
use crate::scenario::Dur;
use std::time::Duration;

/// Clients that wait an hour: every backlog is served, none given up.
const PATIENT: Duration = Duration::from_secs(3600);

fn stage(rate: f64, ramp: u64, hold: u64) -> OpenStage {
    OpenStage {
        rate,
        ramp: Dur(Duration::from_secs(ramp)),
        hold: Dur(Duration::from_secs(hold)),
    }
}

/// An HPA with Kubernetes' default behaviour, targeting 10/s per pod.
fn hpa(min: u32, max: u32) -> Autoscaler {
    Autoscaler::from_manifest(&hpa_manifest(min, max), 30.0, 0.0).unwrap()
}

fn hpa_manifest(min: u32, max: u32) -> k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler {
    let manifest = format!(
        "apiVersion: autoscaling/v2\nkind: HorizontalPodAutoscaler\nmetadata: {{name: hapi}}\n\
         spec:\n  scaleTargetRef: {{apiVersion: apps/v1, kind: Deployment, name: hapi}}\n  \
         minReplicas: {min}\n  maxReplicas: {max}\n  metrics:\n  - type: Pods\n    pods:\n      \
         metric: {{name: http_server_requests_per_second}}\n      \
         target: {{type: AverageValue, averageValue: \"10\"}}\n"
    );
    serde_saphyr::from_str(&manifest).unwrap()
}

fn pods(start_s: f64) -> Pods {
    Pods {
        capacity: 12.0,
        saturation: 14.0,
        start_s,
        latency: None,
    }
}

#[test]
fn a_ramp_is_the_stages_rate_from_zero() {
    let ramp = Ramp::of_stages(&[stage(10.0, 0, 60), stage(30.0, 20, 40)], PATIENT);
    assert_eq!(ramp.duration_s(), 120.0);
    assert_eq!(ramp.peak(), 30.0);
    assert_eq!(ramp.rate_at(0.0), 10.0, "no ramp: the rate at once");
    assert_eq!(ramp.rate_at(70.0), 20.0, "half-way up");
    assert_eq!(ramp.rate_at(100.0), 30.0);
    assert_eq!(ramp.rate_at(120.0), 0.0, "past the end");
}

#[test]
fn the_manifest_reads_as_written_with_kubernetes_defaults() {
    let a = hpa(2, 6);
    assert_eq!(
        (a.target_per_pod, a.min_replicas, a.max_replicas),
        (10.0, 2, 6)
    );
    assert_eq!(a.up.policies.len(), 2, "100% or 4 pods per 15 s");
    assert_eq!(a.down.stabilization_s, 300.0);
    // What calibrate writes reads back as it wrote it.
    let plan = crate::calibrate::hpa::plan(&crate::calibrate::hpa::HpaInputs {
        capacity_per_pod: 20.0,
        metric_window_s: 30.0,
        pod_start_s: 30.0,
        readiness_s: 0.0,
        growth_per_s: 0.0,
        base_rate: 20.0,
        peak_rate: 100.0,
        pool_per_replica: 10,
        connection_budget: 97,
    });
    let workload = crate::calibrate::manifest::Workload {
        kind: "Deployment".into(),
        name: "hapi".into(),
        namespace: Some("clinic".into()),
        metric: "http_server_requests_per_second".into(),
    };
    let written = crate::calibrate::manifest::hpa(&workload, &plan);
    let read = Autoscaler::from_manifest(&written, 30.0, 0.0).unwrap();
    assert_eq!(read.max_replicas, plan.max_replicas);
    assert_eq!(read.down.policies[0].kind, PolicyKind::Pods);
    assert!((read.target_per_pod - plan.target_per_pod).abs() < 0.01);
}

#[test]
fn a_load_the_pods_serve_is_never_over_the_slo_and_scales_nothing() {
    let ramp = Ramp::of_stages(&[stage(20.0, 0, 300)], PATIENT);
    let p = predict(&ramp, &hpa(2, 6), &pods(30.0), 2);
    assert_eq!(p.courses.len(), 15, "one course per sync phase");
    assert_eq!(p.over_slo_s(), (0, 0));
    assert_eq!(p.peak_ready(), (2, 2));
    assert!(p.kept());
}

#[test]
fn a_step_past_the_pods_is_over_the_slo_until_new_pods_are_ready() {
    // 10/s on one pod, then 30/s: three pods at the target. One pod
    // completes 14/s at most, so the HPA first sees 14/s and asks for
    // two; only when two are busy does it ask for three, and then the
    // backlog has to drain.
    let ramp = Ramp::of_stages(&[stage(10.0, 0, 60), stage(30.0, 0, 240)], PATIENT);
    let slow = predict(&ramp, &hpa(1, 4), &pods(30.0), 1);
    let fast = predict(&ramp, &hpa(1, 4), &pods(5.0), 1);
    let (least, most) = slow.over_slo_s();
    assert!(least >= 2 * 30, "two pod starts at least: {least}..{most}");
    assert!(
        most - least <= 2 * 15,
        "a sync's phase each time: {least}..{most}"
    );
    assert!(
        fast.over_slo_s().1 < least,
        "faster pods, shorter: {:?}",
        fast.over_slo_s()
    );
    // Draining the backlog, three pods complete 42/s: the HPA asks for
    // a fourth it would not need for the load alone.
    assert_eq!(slow.peak_ready(), (4, 4));
    // Capped at 2 pods, it never catches up: over the SLO to the end.
    let capped = predict(&ramp, &hpa(1, 2), &pods(5.0), 1);
    assert!(capped.over_slo_s().0 >= 235, "{:?}", capped.over_slo_s());
    assert_eq!(capped.peak_ready(), (2, 2));
    // Enough pods from the start: inside the SLO.
    let ready = predict(&ramp, &hpa(3, 4), &pods(30.0), 3);
    assert!(ready.kept(), "{:?}", ready.over_slo_s());
}

#[test]
fn policies_bound_each_period_and_stabilization_holds_the_way_down() {
    // One pod policy: +1 pod per 60 s; 50/s needs 5 pods.
    let mut slow = hpa(1, 10);
    slow.up.policies = vec![Policy {
        kind: PolicyKind::Pods,
        value: 1,
        period_s: 60.0,
    }];
    let ramp = Ramp::of_stages(&[stage(50.0, 0, 300)], PATIENT);
    let p = predict(&ramp, &slow, &pods(5.0), 1);
    let fast = predict(&ramp, &hpa(1, 10), &pods(5.0), 1);
    assert!(
        p.over_slo_s().0 > fast.over_slo_s().1 + 120,
        "{:?} vs {:?}",
        p.over_slo_s(),
        fast.over_slo_s()
    );
    // Disabled up: never more than it started with.
    let mut off = hpa(1, 10);
    off.up.select = Select::Disabled;
    assert_eq!(predict(&ramp, &off, &pods(5.0), 1).peak_ready(), (1, 1));
    // Down: 30/s for 60 s on three pods, then 5/s: the default 300 s
    // window keeps the pods through a 200 s tail, a 0 s window lets
    // two go.
    let fall = Ramp::of_stages(&[stage(30.0, 0, 60), stage(5.0, 0, 200)], PATIENT);
    let kept = course(&fall, &hpa(1, 4), &pods(5.0), 3, 0);
    assert_eq!((kept.peak_ready, kept.ready_at_end), (3, 3));
    let mut quick = hpa(1, 4);
    quick.down.stabilization_s = 0.0;
    let gone = course(&fall, &quick, &pods(5.0), 3, 0);
    assert_eq!((gone.peak_ready, gone.ready_at_end), (3, 1));
    // One pod per minute down: only one has gone 45 s after the fall.
    quick.down.policies = vec![Policy {
        kind: PolicyKind::Pods,
        value: 1,
        period_s: 60.0,
    }];
    let short = Ramp::of_stages(&[stage(30.0, 0, 60), stage(5.0, 0, 45)], PATIENT);
    assert_eq!(course(&short, &quick, &pods(5.0), 3, 0).ready_at_end, 2);
}

#[test]
fn a_backlog_keeps_the_slo_broken_after_the_pods_come() {
    // Past saturation, what waits is served only once pods are spare.
    let ramp = Ramp::of_stages(&[stage(40.0, 0, 30), stage(10.0, 0, 60)], PATIENT);
    let p = predict(&ramp, &hpa(1, 1), &pods(5.0), 1);
    // 30 s at 40/s on one pod (14/s): 780 requests wait, drained at 4/s
    // once the load falls to 10/s — far beyond the ramp's end.
    assert_eq!(p.over_slo_s(), (90, 90));
    // Clients that give up after 5 s: at most 70 requests (5 s of what the
    // pod completes) wait; the rest fail. Drained at 4/s once the load
    // falls, within 18 s.
    let impatient = Ramp::of_stages(
        &[stage(40.0, 0, 30), stage(10.0, 0, 60)],
        Duration::from_secs(5),
    );
    assert_eq!(
        predict(&impatient, &hpa(1, 1), &pods(5.0), 1).over_slo_s(),
        (47, 47)
    );
}

#[test]
fn a_manifest_that_cannot_be_predicted_says_why() {
    let no_pods: k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler = serde_saphyr::from_str(
        "apiVersion: autoscaling/v2\nkind: HorizontalPodAutoscaler\nmetadata: {name: x}\nspec:\n  scaleTargetRef: {kind: Deployment, name: x}\n  maxReplicas: 3\n  metrics:\n  - type: Resource\n    resource: {name: cpu, target: {type: Utilization, averageUtilization: 60}}\n",
    )
    .unwrap();
    assert_eq!(
        Autoscaler::from_manifest(&no_pods, 30.0, 0.0),
        Err(ManifestError::NoPodsTarget)
    );
    let mut inverted = no_pods.clone();
    let spec = inverted.spec.as_mut().unwrap();
    spec.min_replicas = Some(4);
    spec.metrics = hpa_manifest(1, 3).spec.unwrap().metrics;
    assert_eq!(
        Autoscaler::from_manifest(&inverted, 30.0, 0.0),
        Err(ManifestError::Bounds { min: 4, max: 3 })
    );
}

#[test]
fn the_measured_p99_curve_decides_the_seconds_over_the_slo() {
    // p99 against the load per pod, as a climb measured it (noise that
    // dips at a higher rate evened out), the SLO 500 ms.
    let curve = LatencyCurve::new(
        vec![
            (5.0, 100.0),
            (10.0, 150.0),
            (15.0, 140.0),
            (17.0, 400.0),
            (19.0, 1200.0),
        ],
        500.0,
    )
    .unwrap();
    assert_eq!(curve.p99_at(2.0), 100.0, "below the first step: its p99");
    assert_eq!(curve.p99_at(15.0), 150.0, "never faster for more load");
    assert_eq!(curve.p99_at(18.0), 800.0);
    assert_eq!(
        curve.p99_at(20.0),
        1600.0,
        "beyond the last step: its slope"
    );
    assert!(LatencyCurve::new(vec![(5.0, 100.0)], 500.0).is_none());
    // 35/s on two pods: 17.5 per pod, p99 600 ms — over; with the capacity
    // alone (12 per pod) it would be over too, but 30/s (15 per pod, p99
    // 150 ms) is within by the curve and over by the capacity.
    let with_curve = Pods {
        latency: Some(curve),
        saturation: 20.0,
        ..pods(5.0)
    };
    let hold = |rate| Ramp::of_stages(&[stage(rate, 0, 30)], PATIENT);
    let fixed = Autoscaler {
        up: Rules {
            select: Select::Disabled,
            ..hpa(2, 2).up
        },
        ..hpa(2, 2)
    };
    assert_eq!(
        predict(&hold(35.0), &fixed, &with_curve, 2).over_slo_s(),
        (30, 30)
    );
    assert_eq!(
        predict(&hold(30.0), &fixed, &with_curve, 2).over_slo_s(),
        (0, 0)
    );
    assert_eq!(
        predict(&hold(30.0), &fixed, &pods(5.0), 2).over_slo_s(),
        (30, 30)
    );
}
