//! The node's kubelet endpoint, the part metrics-server reads: HTTPS on the
//! node's address, port 10250, `GET /metrics/resource` in the Prometheus
//! text format a kubelet writes there. Each figure is the pod process's
//! real use, read from `/proc` when asked (the kubelet reads its cgroups):
//! cumulative CPU seconds (user + system, the process's threads and the
//! children it waited for), the resident set as the working set, and the
//! container's start time; the node's own CPU and memory from
//! `/proc/stat` and `/proc/meminfo`. No client certificate is checked (a
//! kubelet's authorization webhook is not part of this double): the
//! metrics-server the tests start skips verifying the node's certificate
//! (`--kubelet-insecure-tls`), as on clusters whose kubelets serve
//! self-signed ones.

use axum::routing::get;
use axum::Router;
use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::Path;
use std::sync::{Arc, Mutex};

/// The node's address (its `InternalIP`) and the kubelet's port.
pub const ADDRESS: Ipv4Addr = Ipv4Addr::new(10, 244, 0, 1);
pub const PORT: u16 = 10250;

/// A pod's process, as the endpoint reports it.
#[derive(Debug, Clone)]
pub struct Resident {
    pub namespace: String,
    pub pod: String,
    pub container: String,
    pub pid: u32,
    /// When the process started, seconds since the epoch.
    pub started_unix: f64,
}

/// The pods' processes now, by pod uid; the node keeps it current.
pub type Residents = Arc<Mutex<BTreeMap<String, Resident>>>;

/// Serves the endpoint on [`ADDRESS`]:[`PORT`] until the returned task is
/// aborted, with a self-signed certificate made under `dir`.
pub async fn serve(
    residents: Residents,
    dir: &Path,
) -> Result<tokio::task::JoinHandle<()>, String> {
    let (cert, key) = (dir.join("kubelet.crt"), dir.join("kubelet.key"));
    let made = std::process::Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args(["-subj", "/CN=surge-node-0", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .map_err(|e| format!("cannot run openssl: {e}"))?;
    if !made.status.success() {
        return Err(format!(
            "openssl: {}",
            String::from_utf8_lossy(&made.stderr).trim()
        ));
    }
    crate::netns::add_address(ADDRESS)?;
    let listener = tokio::net::TcpListener::bind((ADDRESS, PORT))
        .await
        .map_err(|e| format!("the kubelet endpoint cannot listen on {ADDRESS}:{PORT}: {e}"))?;
    let app = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/metrics/resource",
            get(move || {
                let residents = residents.clone();
                async move {
                    let now: Vec<Resident> = residents.lock().unwrap().values().cloned().collect();
                    resource_metrics(&now)
                }
            }),
        );
    Ok(tokio::spawn(async move {
        let _ = surge_sim::tls::serve(app, &cert, &key, listener).await;
    }))
}

/// The exposition text for the node and `residents` (a process that has
/// gone between the list and the read is left out, as a kubelet leaves out
/// a container it cannot read).
fn resource_metrics(residents: &[Resident]) -> String {
    let mut out = String::new();
    let at_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis();
    out.push_str("# HELP node_cpu_usage_seconds_total Cumulative cpu time consumed by the node in core-seconds\n# TYPE node_cpu_usage_seconds_total counter\n");
    if let Some(cpu) = node_cpu_seconds() {
        out.push_str(&format!("node_cpu_usage_seconds_total {cpu} {at_ms}\n"));
    }
    out.push_str("# HELP node_memory_working_set_bytes Current working set of the node in bytes\n# TYPE node_memory_working_set_bytes gauge\n");
    if let Some(bytes) = node_memory_bytes() {
        out.push_str(&format!("node_memory_working_set_bytes {bytes} {at_ms}\n"));
    }
    let measured: Vec<(&Resident, f64, u64)> = residents
        .iter()
        .filter_map(|r| Some((r, process_cpu_seconds(r.pid)?, process_rss_bytes(r.pid)?)))
        .collect();
    let labels = |r: &Resident| {
        format!(
            "container=\"{}\",namespace=\"{}\",pod=\"{}\"",
            r.container, r.namespace, r.pod
        )
    };
    out.push_str("# HELP container_cpu_usage_seconds_total Cumulative cpu time consumed by the container in core-seconds\n# TYPE container_cpu_usage_seconds_total counter\n");
    for (r, cpu, _) in &measured {
        out.push_str(&format!(
            "container_cpu_usage_seconds_total{{{}}} {cpu} {at_ms}\n",
            labels(r)
        ));
    }
    out.push_str("# HELP container_memory_working_set_bytes Current working set of the container in bytes\n# TYPE container_memory_working_set_bytes gauge\n");
    for (r, _, rss) in &measured {
        out.push_str(&format!(
            "container_memory_working_set_bytes{{{}}} {rss} {at_ms}\n",
            labels(r)
        ));
    }
    out.push_str("# HELP container_start_time_seconds Start time of the container since unix epoch in seconds\n# TYPE container_start_time_seconds gauge\n");
    for (r, _, _) in &measured {
        out.push_str(&format!(
            "container_start_time_seconds{{{}}} {} {at_ms}\n",
            labels(r),
            r.started_unix
        ));
    }
    out
}

fn ticks_per_second() -> f64 {
    // SAFETY: sysconf reads a constant of the system.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 {
        ticks as f64
    } else {
        100.0
    }
}

/// utime + stime + cutime + cstime of `/proc/PID/stat`, in seconds.
fn process_cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The fields after the command name (which may hold spaces), from
    // field 3 (state): utime is field 14, so index 11 here.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields
        .get(11..15)?
        .iter()
        .map(|f| f.parse::<f64>().ok())
        .sum::<Option<f64>>()?;
    Some(ticks / ticks_per_second())
}

/// VmRSS of `/proc/PID/status`, in bytes.
fn process_rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb * 1024)
}

/// The machine's busy CPU seconds (every state but idle and iowait).
fn node_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let ticks: Vec<f64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    let busy: f64 = ticks
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 3 && *i != 4)
        .map(|(_, t)| t)
        .sum();
    Some(busy / ticks_per_second())
}

/// MemTotal − MemAvailable, in bytes.
fn node_memory_bytes() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let field = |name: &str| -> Option<u64> {
        info.lines()
            .find_map(|l| l.strip_prefix(name))?
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()
    };
    Some((field("MemTotal:")? - field("MemAvailable:")?) * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// This test's own process, reported as a pod: its CPU and memory are
    /// there and grow with real work; a pid that is gone is left out.
    #[test]
    fn the_endpoint_reports_a_process_real_cpu_and_memory() {
        let me = Resident {
            namespace: "clinic".into(),
            pod: "hapi-1".into(),
            container: "hapi".into(),
            pid: std::process::id(),
            started_unix: 1.5e9,
        };
        let before = process_cpu_seconds(me.pid).unwrap();
        let until = std::time::Instant::now() + std::time::Duration::from_millis(300);
        let mut x = 1u64;
        while std::time::Instant::now() < until {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
        }
        let after = process_cpu_seconds(me.pid).unwrap();
        assert!(after - before >= 0.1, "{before} → {after}");
        let gone = Resident {
            pid: u32::MAX - 1,
            pod: "gone".into(),
            ..me.clone()
        };
        let text = resource_metrics(&[me, gone]);
        let line = |name: &str| {
            text.lines()
                .find(|l| l.starts_with(name))
                .unwrap_or_else(|| panic!("{name} in {text}"))
                .to_owned()
        };
        let cpu = line("container_cpu_usage_seconds_total{container=\"hapi\",namespace=\"clinic\",pod=\"hapi-1\"}");
        let value: f64 = cpu.split_whitespace().nth(1).unwrap().parse().unwrap();
        assert!(value >= after, "{cpu}");
        let rss = line("container_memory_working_set_bytes{");
        assert!(
            rss.split_whitespace()
                .nth(1)
                .unwrap()
                .parse::<u64>()
                .unwrap()
                > 1 << 20
        );
        line("container_start_time_seconds{container=\"hapi\",namespace=\"clinic\",pod=\"hapi-1\"} 1500000000");
        assert!(
            line("node_cpu_usage_seconds_total")
                .split_whitespace()
                .nth(1)
                .unwrap()
                .parse::<f64>()
                .unwrap()
                > 0.0
        );
        line("node_memory_working_set_bytes");
        assert!(!text.contains("pod=\"gone\""), "{text}");
    }
}
