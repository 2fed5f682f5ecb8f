//! Writes synthetic shard bundles for the merge benchmark (bench/merge.sh):
//! `shard_bundles OUT SHARDS REQUESTS_PER_SHARD`. Each shard's requests go
//! through surge's own recorder (three request kinds on three replicas over
//! 60 seconds of timeline, latencies spread over 1-500 ms, one in fifty
//! failing), so the bundle is what a run of that many requests writes.

use std::time::Duration;
use surge::bundle::{ErrorClass, Expectations, ShardInfo};
use surge::measure::{Recorder, RunInfo, Sample};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, out, shards, requests] = args.as_slice() else {
        eprintln!("usage: shard_bundles OUT SHARDS REQUESTS_PER_SHARD");
        std::process::exit(2);
    };
    let out = std::path::Path::new(out);
    let shards: u32 = shards.parse().expect("SHARDS is a number");
    let requests: u64 = requests.parse().expect("REQUESTS_PER_SHARD is a number");
    let names = ["search", "read", "upload"];
    for index in 0..shards {
        let recorder = Recorder::new(
            names.iter().map(|n| n.to_string()).collect(),
            vec![Duration::from_secs(60)],
        );
        recorder.begin();
        let t0 = recorder.started();
        // A cheap deterministic spread (no RNG dependency): latencies
        // 1..500 ms, 60 s of timeline.
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15 ^ u64::from(index);
        for k in 0..requests {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let scheduled = t0 + Duration::from_micros(k * 60_000_000 / requests.max(1));
            let latency = Duration::from_micros(1_000 + x % 499_000);
            let failed = x.is_multiple_of(50);
            recorder.arrival(scheduled, false);
            recorder.issue((k % 3) as usize);
            recorder.record(Sample {
                request: (k % 3) as usize,
                replica: ["r0", "r1", "r2"][(x % 3) as usize],
                scheduled,
                sent: scheduled,
                done: scheduled + latency,
                status: Some(if failed { 503 } else { 200 }),
                error: failed.then_some(ErrorClass::Http5xx),
            });
        }
        let mut m = recorder.finish(RunInfo {
            run_id: format!("bench-shard{index}"),
            scenario: "bench".into(),
            model: surge::bundle::LoadModel::Open,
            stage_targets: vec![requests as f64 / 60.0 * f64::from(shards)],
            ..Default::default()
        });
        // A 60 s run, as its timeline says (the recorder counts from now).
        m.results.elapsed_s = 60.0;
        m.results.busy_s = 60.0;
        m.results.planned_s = 60.0;
        m.results.shard = Some(ShardInfo {
            index,
            count: shards,
            fingerprint: "bench".repeat(8),
            host: "bench".into(),
            began_unix_ms: 1_796_000_000_000,
            expectations: Expectations {
                scenario_requests: names.iter().map(|n| n.to_string()).collect(),
                requests: names.iter().map(|n| n.to_string()).collect(),
                uploads: false,
            },
            ..Default::default()
        });
        let dir = out.join(format!("shard{index}"));
        surge::report::write_evidence(&dir, &m).expect("the bundle is written");
    }
}
