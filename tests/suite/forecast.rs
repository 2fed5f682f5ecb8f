//! `surge calibrate --ramp` as a user runs it: a calibration from an
//! earlier bundle forecasts the library's morning surge under the HPA it
//! recommends, or under an HPA manifest given; a ramp or a manifest that
//! cannot be forecast is refused before anything is calibrated, naming the
//! file and what was expected.

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calibrate_forecasts_a_morning_surge_or_says_why_it_cannot() {
    let _engine = engine_lock().await;
    let dir = tempfile::tempdir().unwrap();
    let staircase = two_step_climb(dir.path()).await;
    let bundle = staircase.to_str().unwrap().to_owned();
    let out = dir.path().join("calibrations");
    let calibrate = |extra: &[&str]| {
        let mut args = vec![
            "calibrate",
            "--from-bundle",
            &bundle,
            "--replicas",
            "3",
            "--slo-p99",
            "2s",
            "--pod-start",
            "30s",
            "--readiness",
            "0s",
            "--out",
            out.to_str().unwrap(),
        ];
        args.extend(extra);
        surge(&args)
    };

    // The recommended HPA under the morning surge compressed to 13 min.
    let done = calibrate(&[
        "--ramp",
        "scenarios/morning-surge-fhir.toml",
        "--ramp-duration",
        "13m",
    ]);
    let said = text(&done);
    assert_eq!(done.status.code(), Some(0), "{said}");
    assert!(
        said.contains("ramp morning-surge-fhir over 780 s, peak 60/s: with the HPA as recommended"),
        "{said}"
    );
    let written = only_bundle(&out);
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(written.join("calibration.json")).unwrap()).unwrap();
    let capacity = json["capacity_per_pod"].as_f64().expect("a capacity");
    let f = &json["ramp_forecast"];
    assert_eq!(f["hpa"], "as recommended", "{f}");
    assert_eq!(
        f["peak_needs"].as_u64(),
        Some((60.0 / capacity).ceil() as u64),
        "the peak over the capacity: {f}"
    );
    let (least, most) = (
        f["over_slo_s"][0].as_u64().unwrap(),
        f["over_slo_s"][1].as_u64().unwrap(),
    );
    assert!(least <= most, "{f}");
    let page = std::fs::read_to_string(written.join("calibration.html")).unwrap();
    assert!(
        page.contains("ramp morning-surge-fhir over 780 s"),
        "every format says it"
    );
    // A run compared with it must watch the HPA the forecast is about.
    let unwatched = surge(&[
        "run",
        "scenarios/morning-surge-fhir.toml",
        "--forecast",
        written.to_str().unwrap(),
    ]);
    let said = text(&unwatched);
    assert_eq!(unwatched.status.code(), Some(2), "{said}");
    assert!(
        said.contains(
            "the forecast is of the autoscaler's course: it goes with the HPA to watch (--hpa)"
        ),
        "{said}"
    );
    std::fs::remove_dir_all(&written).unwrap();

    // An HPA given instead: too few pods for the peak, and it says so.
    let hpa = dir.path().join("hpa.yaml");
    std::fs::write(
        &hpa,
        "apiVersion: autoscaling/v2\nkind: HorizontalPodAutoscaler\nmetadata: {name: hapi}\n\
         spec:\n  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: hapi}\n  \
         minReplicas: 1\n  maxReplicas: 2\n  metrics:\n  - type: Pods\n    pods:\n      \
         metric: {name: http_server_requests_per_second}\n      \
         target: {type: AverageValue, averageValue: \"3\"}\n",
    )
    .unwrap();
    let hpa_arg = hpa.to_str().unwrap();
    let capped = calibrate(&[
        "--ramp",
        "scenarios/morning-surge-fhir.toml",
        "--ramp-duration",
        "13m",
        "--ramp-hpa",
        hpa_arg,
    ]);
    let said = text(&capped);
    assert_eq!(capped.status.code(), Some(0), "{said}");
    assert!(
        said.contains(&format!(
            "with the HPA {hpa_arg} (target 3/s per pod, 1–2 replicas)"
        )),
        "{said}"
    );
    assert!(
        said.contains("no minReplicas keeps it: the peak of 60/s needs"),
        "{said}"
    );
    assert!(said.contains("and maxReplicas is 2"), "{said}");
    std::fs::remove_dir_all(only_bundle(&out)).unwrap();

    // Refused before anything is calibrated: a closed-model ramp, a file
    // that is no HPA, an HPA on CPU (what a calibration measures is a rate).
    let closed = calibrate(&["--ramp", "scenarios/openmrs-clinic.toml"]);
    let said = text(&closed);
    assert_eq!(closed.status.code(), Some(2), "{said}");
    assert!(
        said.contains(
            "--ramp scenarios/openmrs-clinic.toml: a ramp is an open model's arrival rate"
        ),
        "{said}"
    );
    std::fs::write(&hpa, "kind: [not, an, hpa\n").unwrap();
    let broken = calibrate(&[
        "--ramp",
        "scenarios/morning-surge-fhir.toml",
        "--ramp-hpa",
        hpa_arg,
    ]);
    let said = text(&broken);
    assert_eq!(broken.status.code(), Some(2), "{said}");
    assert!(
        said.contains(&format!(
            "--ramp-hpa {hpa_arg}: not a HorizontalPodAutoscaler"
        )),
        "{said}"
    );
    assert!(
        !out.exists() || std::fs::read_dir(&out).unwrap().next().is_none(),
        "nothing written"
    );
    std::fs::write(
        &hpa,
        "apiVersion: autoscaling/v2\nkind: HorizontalPodAutoscaler\nmetadata: {name: hapi}\n\
         spec:\n  scaleTargetRef: {kind: Deployment, name: hapi}\n  maxReplicas: 4\n  metrics:\n  \
         - type: Resource\n    resource: {name: cpu, target: {type: Utilization, averageUtilization: 60}}\n",
    )
    .unwrap();
    let cpu = calibrate(&[
        "--ramp",
        "scenarios/morning-surge-fhir.toml",
        "--ramp-hpa",
        hpa_arg,
    ]);
    let said = text(&cpu);
    assert_eq!(cpu.status.code(), Some(2), "{said}");
    assert!(
        said.contains(&format!(
            "--ramp-hpa {hpa_arg}: cannot be forecast: the HPA scales on no Pods metric"
        )),
        "{said}"
    );

    // Numbers out of range are named before anything runs: a metric an
    // hour late, and a bisection goal of 80% (checked before a climb sends
    // anything: the target here answers nothing).
    let late = calibrate(&[
        "--ramp",
        "scenarios/morning-surge-fhir.toml",
        "--metric-delay",
        "1h",
    ]);
    let said = text(&late);
    assert_eq!(late.status.code(), Some(2), "{said}");
    assert!(said.contains("--metric-delay 1h: at most 10m"), "{said}");
    let coarse = surge(&[
        "calibrate",
        "scenarios/capacity-fhir-search.toml",
        "--target",
        "http://127.0.0.1:9",
        "--replicas",
        "1",
        "--slo-p99",
        "1s",
        "--precision",
        "80",
    ]);
    let said = text(&coarse);
    assert_eq!(coarse.status.code(), Some(2), "{said}");
    assert!(
        said.contains("--precision (%) 80 is out of range: expected 0 to 50"),
        "{said}"
    );
}
