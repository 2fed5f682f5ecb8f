//! Analysis time must not grow with the number of requests: everything after
//! the load works on histograms, not lists. Records N synthetic requests into
//! the recorder, writes the bundle, reads the staircase back from it and runs
//! the calibration analysis, for N = 10⁵, 10⁶, 10⁷. Run: `cargo bench --bench analysis`.

use std::time::{Duration, Instant};
use surge::calibrate::{analyse, capacity::Slo, Demand};
use surge::measure::{Recorder, RunInfo, Sample};

fn main() {
    println!("| requests | record ns/request | finish + write bundle | read steps + analyse |");
    println!("|---|---|---|---|");
    for n in [100_000u64, 1_000_000, 10_000_000] {
        let stages: Vec<Duration> = (1..=8).map(|k| Duration::from_secs(10 * k)).collect();
        let recorder = Recorder::new(vec!["fhir_search".into()], stages);
        recorder.begin();
        let t0 = recorder.started();
        let replicas = ["r1", "r2", "r3"];
        let started = Instant::now();
        for i in 0..n {
            // Spread over the 80 s plan; latencies between 2 and ~60 ms.
            let at = t0 + Duration::from_nanos(i * 80_000_000_000 / n);
            let service = Duration::from_micros(2_000 + (i * 7919) % 58_000);
            recorder.issue(0);
            recorder.record(Sample {
                request: 0,
                replica: replicas[(i % 3) as usize],
                scheduled: at,
                sent: at,
                done: at + service,
                status: Some(200),
                error: None,
            });
        }
        let record_ns = started.elapsed().as_nanos() as f64 / n as f64;

        let dir = tempfile::tempdir().unwrap();
        let started = Instant::now();
        let m = recorder.finish(RunInfo {
            model: surge::bundle::LoadModel::Open,
            stage_targets: (1..=8).map(|k| 50.0 * k as f64).collect(),
            ..Default::default()
        });
        surge::report::write_bundle(dir.path(), &m).unwrap();
        let write = started.elapsed();

        let started = Instant::now();
        let steps = surge::run::staircase::steps_from_bundle(dir.path()).unwrap();
        let demand = Demand {
            base_rate: None,
            peak_rate: None,
            growth_per_s: 0.001,
            metric_window_s: 30.0,
            pod_start_s: 60.0,
            readiness_s: 15.0,
            hold_s: Some(0.005),
            checkouts_per_request: None,
            wait_probability: 0.05,
            pool_floor: 1,
            connection_budget: 97,
        };
        let c = analyse(
            steps,
            3,
            Slo {
                p99_ms: 100.0,
                error_budget: 0.01,
            },
            &demand,
        );
        let analyse_time = started.elapsed();
        assert_eq!(c.steps.len(), 8);
        println!(
            "| {n} | {record_ns:.0} | {:.0} ms | {:.1} ms |",
            write.as_secs_f64() * 1000.0,
            analyse_time.as_secs_f64() * 1000.0
        );
    }
}
