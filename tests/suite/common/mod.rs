//! Shared set-up for the end-to-end tests: a reference cluster on loopback and
//! scenario files written for it.
#![allow(dead_code)]

pub mod devtools;
pub mod fake_kube;
pub mod registrations;

use std::path::{Path, PathBuf};
use std::time::Duration;
use surge::run::{RunReport, RunRequest};
use surge::scenario::LoadOverride;
use surge_sim::{Cluster, ClusterOptions};

/// One load at a time in the test process: goose keeps its stop switch in a
/// process-wide static, so in-process runs must not overlap, and a run in a
/// child process (`surge demo`, `surge run`) would skew the timing checks of
/// another test's run on a 2-core machine. (A tokio mutex: it is held across
/// awaits, and does not poison when a test fails while holding it.)
pub static ENGINE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Waits for the engine.
pub async fn engine_lock() -> tokio::sync::MutexGuard<'static, ()> {
    ENGINE.lock().await
}

/// Waits for the engine, from a test that is not async.
pub fn engine_lock_blocking() -> tokio::sync::MutexGuard<'static, ()> {
    ENGINE.blocking_lock()
}

/// Kills a replica process outright (SIGKILL), as a crashed pod dies;
/// whether `kill` succeeded.
pub fn kill_hard(pid: u32) -> bool {
    std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap()
        .success()
}

/// Kills a replica process outright after `delay`, beside the load.
pub fn kill_after(pid: u32, delay: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        tokio::time::sleep(delay).await;
        kill_hard(pid);
    })
}

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn surge_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_surge"))
}

/// The surge binary, run from the repository to its end.
pub fn surge(args: &[&str]) -> std::process::Output {
    std::process::Command::new(surge_bin())
        .args(args)
        .current_dir(repo())
        .output()
        .expect("surge runs")
}

/// What a process printed, its output then its errors.
pub fn text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

pub async fn cluster(options: ClusterOptions) -> Cluster {
    Cluster::start(surge_bin(), ClusterOptions { port: 0, ..options })
        .await
        .expect("reference cluster starts")
}

/// Writes a scenario into `dir`, with fixtures resolved from the repository.
pub fn scenario_file(dir: &Path, name: &str, body: &str) -> PathBuf {
    let text = format!(
        "[scenario]\nname = \"{name}\"\nfixtures = \"{}\"\n\n{body}",
        repo().join("fixtures").display()
    );
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, text).unwrap();
    path
}

/// The one bundle a run wrote under `out`.
pub fn only_bundle(out: &Path) -> PathBuf {
    let bundles: Vec<_> = std::fs::read_dir(out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(bundles.len(), 1, "{bundles:?}");
    bundles[0].clone()
}

/// A FHIR patient search, no auth: the simplest request the sim serves from its database pool.
pub fn fhir_search_scenario(base_url: &str, load: &str) -> String {
    format!(
        r#"[target]
base_url = "{base_url}"
replica_header = "X-Served-By"
timeout = "5s"

[[feeders]]
name = "patient"
file = "patients.csv"

{load}

[[personas]]
name = "searcher"
steps = [{{ request = "fhir_search" }}]

[requests.fhir_search]
path = "/fhir/Patient?name=${{patient.family}}&_count=5"
expect = {{ status = [200], json_equals = {{ "resourceType" = "Bundle" }} }}
"#
    )
}

/// Runs a scenario file (optionally against `target`, for `duration`) and
/// writes its bundle under `out`.
/// A two-step climb (5/s, then 10/s, 2 s each) of FHIR searches against a
/// default reference cluster, stopped after: the open-model bundle under
/// `dir/runs` that `surge calibrate --from-bundle` reads as a staircase.
pub async fn two_step_climb(dir: &Path) -> PathBuf {
    let cluster = cluster(surge_sim::ClusterOptions::default()).await;
    let load = "[load]\nmodel = \"open\"\nmax_users = 20\n\
                [[load.stages]]\nrate = 5\nhold = \"2s\"\n\
                [[load.stages]]\nrate = 10\nhold = \"2s\"\n";
    let path = scenario_file(dir, "climb", &fhir_search_scenario(&cluster.url, load));
    let climbed = run(path, None, None, &dir.join("runs")).await;
    cluster.shutdown().await;
    climbed.bundle
}

pub async fn run(
    scenario: PathBuf,
    target: Option<&str>,
    duration: Option<Duration>,
    out: &Path,
) -> RunReport {
    let request = RunRequest {
        scenario,
        target: target.map(str::to_owned),
        load: LoadOverride {
            duration,
            ..Default::default()
        },
        out_dir: out.to_path_buf(),
        ..Default::default()
    };
    surge::run::run(&request).await.expect("run completes")
}

/// Runs a shipped scenario against `target` for `seconds`, its think times
/// compressed 20× (realistic pauses would take minutes), and checks it ran
/// without an unexpected error.
pub async fn run_shipped(scenario: &Path, target: &str, seconds: u64, out: &Path) -> RunReport {
    let request = RunRequest {
        scenario: scenario.to_path_buf(),
        target: Some(target.to_owned()),
        load: LoadOverride {
            duration: Some(Duration::from_secs(seconds)),
            think_scale: Some(0.05),
            ..Default::default()
        },
        out_dir: out.to_path_buf(),
        ..Default::default()
    };
    let report = surge::run::run(&request).await.expect("run completes");
    assert_eq!(
        report.results.overall.failed,
        0,
        "{}: unexpected errors\n{}",
        scenario.display(),
        surge::report::terminal_summary(&report.results)
    );
    report
}

/// A Debian program a test needs. On CI (`CI` set) its absence fails the
/// test; elsewhere the test is skipped with a note, since `.ci/run` is what
/// installs it.
pub fn program(name: &str) -> Option<PathBuf> {
    let found = ["/usr/sbin", "/usr/bin", "/usr/local/bin", "/sbin", "/bin"]
        .iter()
        .map(|d| Path::new(d).join(name))
        .find(|p| p.exists());
    if found.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "{name} is not installed: .ci/run installs it with apt-get"
        );
        eprintln!("SKIPPED: {name} is not installed (apt-get install it, or run .ci/run)");
    }
    found
}

/// Chromium's flags for a headless run on this closed network: without
/// the background-networking ones its own connections are refused, many
/// at a time, and it looks up Google's hosts at every start.
pub const CHROMIUM_FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
];

/// A free TCP port on loopback (bound, read, released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `count` consecutive free ports, for replicas with fixed ports.
pub fn free_port_run(count: u16) -> u16 {
    // WHY below the kernel's ephemeral range: a fixed port inside it can be
    // taken at any moment as the local end of some outgoing connection (a
    // health check, a keep-alive client), and a replica restarting on it then
    // fails with "address in use" for as long as that connection lives.
    let (low, high) = outside_ephemeral_range();
    let span = high.saturating_sub(low).saturating_sub(count).max(1);
    for _ in 0..50 {
        let base = low + (rand_u16() % span);
        if (0..count).all(|i| std::net::TcpListener::bind(("127.0.0.1", base + i)).is_ok()) {
            return base;
        }
    }
    panic!("no run of {count} free ports found in {low}..{high}");
}

/// A span of ports the kernel never hands out as ephemeral source ports.
fn outside_ephemeral_range() -> (u16, u16) {
    let range = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|text| {
            let mut parts = text.split_whitespace().map(|p| p.parse::<u16>().ok());
            Some((parts.next()??, parts.next()??))
        })
        .unwrap_or((32_768, 60_999));
    if range.0 > 12_000 {
        (10_000, range.0)
    } else {
        (range.1.saturating_add(1), u16::MAX)
    }
}

fn rand_u16() -> u16 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    (nanos ^ std::process::id()) as u16
}

/// A server process the test started, killed when dropped.
pub struct Server {
    child: std::process::Child,
    _dir: tempfile::TempDir,
    /// Its address.
    pub url: String,
}

impl Server {
    /// A file in the server's own folder (its logs).
    pub fn file(&self, name: &str) -> PathBuf {
        self._dir.path().join(name)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn wait_for_port(port: u16) {
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("nothing listens on 127.0.0.1:{port}");
}

/// A throwaway redis-server on loopback (no persistence).
pub async fn redis() -> Option<Server> {
    let bin = program("redis-server")?;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let child = std::process::Command::new(bin)
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .arg("--dir")
        .arg(dir.path())
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("redis-server starts");
    wait_for_port(port).await;
    Some(Server {
        child,
        _dir: dir,
        url: format!("redis://127.0.0.1:{port}"),
    })
}

/// HAProxy in front of replicas on `base..base+count`, round-robin, and
/// sticky by an inserted cookie when `sticky`; health checks mark a dead
/// replica down and redispatch its clients.
pub async fn haproxy(base: u16, count: u16, sticky: bool) -> Option<Server> {
    haproxy_logging(base, count, sticky, false).await
}

/// [`haproxy`], with `logging` its `option httplog` lines written raw (no
/// syslog prefix) to `access.log` in its folder.
pub async fn haproxy_logging(base: u16, count: u16, sticky: bool, logging: bool) -> Option<Server> {
    let bin = program("haproxy")?;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let (global_log, defaults_log) = if logging {
        (
            "  log stdout format raw local0\n",
            "  log global\n  option httplog\n",
        )
    } else {
        ("", "")
    };
    let mut cfg = format!(
        "global\n  maxconn 2000\n{global_log}defaults\n{defaults_log}  mode http\n  timeout connect 2s\n  timeout client 30s\n  timeout server 30s\n  option redispatch\n  retries 1\n\
         frontend fe\n  bind 127.0.0.1:{port}\n  default_backend be\nbackend be\n  balance roundrobin\n"
    );
    if sticky {
        cfg.push_str("  cookie SERVERID insert indirect nocache\n");
    }
    for i in 0..count {
        cfg.push_str(&format!(
            "  server r{n} 127.0.0.1:{p} cookie r{n} check inter 200ms fall 1 rise 2\n",
            n = i + 1,
            p = base + i
        ));
    }
    let path = dir.path().join("haproxy.cfg");
    std::fs::write(&path, cfg).unwrap();
    let stdout = if logging {
        std::process::Stdio::from(std::fs::File::create(dir.path().join("access.log")).unwrap())
    } else {
        std::process::Stdio::null()
    };
    let child = std::process::Command::new(bin)
        .arg("-db")
        .arg("-f")
        .arg(&path)
        .stdout(stdout)
        .spawn()
        .expect("haproxy starts");
    wait_for_port(port).await;
    Some(Server {
        child,
        _dir: dir,
        url: format!("http://127.0.0.1:{port}"),
    })
}

/// Every replica's direct URL (all must be up).
pub fn replica_urls(cluster: &Cluster) -> Vec<String> {
    cluster
        .replicas()
        .into_iter()
        .map(|(_, url, _)| url.expect("replica up"))
        .collect()
}

/// Clinicians log in once (Basic, then JSESSIONID) and search patients.
pub fn clinic(base_url: &str, load: &str) -> String {
    format!(
        r#"[target]
base_url = "{base_url}"
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

{load}

[[personas]]
name = "clinician"
steps = [
  {{ request = "search", think = "20ms" }},
  {{ request = "check_session", think = "20ms" }},
]

[requests.search]
path = "/openmrs/ws/rest/v1/patient?q=${{patient.family}}&limit=5"
expect = {{ status = [200] }}

[requests.check_session]
path = "/openmrs/ws/rest/v1/session"
expect = {{ status = [200], json_equals = {{ authenticated = true }} }}

[session]
preset = "openmrs"
probe = "check_session"

[thresholds]
"session.drops" = "< 1"
"#
    )
}

/// Clinicians upload a fresh document each (sticky, so their own download
/// works), and surge reads every upload back from every replica directly.
pub fn uploads(base_url: &str, replica_urls: &[String], visible_within: &str) -> String {
    let replicas: Vec<String> = replica_urls
        .iter()
        .map(|url| format!("\"{url}\""))
        .collect();
    format!(
        r#"[target]
base_url = "{}"
replica_header = "X-Served-By"
timeout = "5s"

[auth]
kind = "openmrs-basic"
username = "admin"
password = "Admin123"

[load]
model = "closed"
[[load.stages]]
users = 3
hold = "3s"

[[personas]]
name = "clinician"
steps = [{{ request = "upload", think = "200ms" }}]

[requests.upload]
method = "POST"
path = "/openmrs/ws/rest/v1/attachment"
multipart = [
  {{ name = "file", generate = {{ kind = "bin", size = "8KiB" }} }},
  {{ name = "patient", value = "5e1f0000-0000-4000-8000-000000000000" }},
]
expect = {{ status = [201] }}
consistency = {{ id = "uuid", read = "/openmrs/ws/rest/v1/attachment/${{id}}/bytes" }}

[verify]
replicas = [{}]
visible_within = "{visible_within}"
poll = "25ms"

[thresholds]
"attachments.missing" = "< 1"
"attachments.corrupted" = "< 1"
"#,
        base_url,
        replicas.join(", ")
    )
}

/// A real nginx (Debian's) in front of `upstreams` (loopback ports), round
/// robin, naming the upstream that answered as nginx users do:
/// `add_header X-Upstream $upstream_addr` — after a retry it names several.
/// `dead` is an upstream nothing listens on, tried in turn like the others
/// (connection refused, then the next one: a retry on every fourth request).
/// Its `access.log` holds one line per request: the upstreams it tried.
/// One process (`master_process off`), so killing it when the test ends,
/// passed or failed, leaves no worker behind.
pub async fn nginx(upstreams: &[u16], dead: Option<u16>) -> Option<Server> {
    nginx_logging(upstreams, dead, "upstreams '$upstream_addr'").await
}

/// [`nginx`] with its `access.log` in `log_format` (`NAME 'FORMAT'`, or
/// `combined` for nginx's predefined one).
pub async fn nginx_logging(
    upstreams: &[u16],
    dead: Option<u16>,
    log_format: &str,
) -> Option<Server> {
    nginx_serving(upstreams, dead, log_format, None).await
}

/// [`nginx_logging`] that also serves the files of `page` at
/// `/openmrs/spa/` (the single-page application's place in OpenMRS 3).
pub async fn nginx_with_page(upstreams: &[u16], log_format: &str, page: &Path) -> Option<Server> {
    nginx_serving(upstreams, None, log_format, Some(page)).await
}

async fn nginx_serving(
    upstreams: &[u16],
    dead: Option<u16>,
    log_format: &str,
    page: Option<&Path>,
) -> Option<Server> {
    let bin = program("nginx")?;
    let page = page
        .map(|p| format!("    location /openmrs/spa/ {{ alias {}/; }}\n", p.display()))
        .unwrap_or_default();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    let port = free_port();
    let mut servers = String::new();
    if let Some(p) = dead {
        servers += &format!("    server 127.0.0.1:{p} max_fails=0;\n");
    }
    for p in upstreams {
        servers += &format!("    server 127.0.0.1:{p} max_fails=0;\n");
    }
    let name = log_format.split_whitespace().next().unwrap_or("combined");
    let declare = match name {
        "combined" => String::new(),
        _ => format!("log_format {log_format};\n  "),
    };
    let cfg = format!(
        "master_process off;\nworker_processes 1;\nerror_log {d}/error.log warn;\npid {d}/nginx.pid;\n\
         events {{ worker_connections 1024; }}\n\
         http {{\n  {declare}access_log {d}/access.log {name};\n\
           client_body_temp_path {d}/body; proxy_temp_path {d}/proxy; fastcgi_temp_path {d}/fcgi;\n\
           uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;\n\
           client_body_buffer_size 1m; client_max_body_size 10m; proxy_max_temp_file_size 0;\n\
           upstream replicas {{\n{servers}  }}\n\
           server {{\n    listen 127.0.0.1:{port};\n{page}    location / {{\n\
               proxy_pass http://replicas;\n      proxy_http_version 1.1;\n      proxy_set_header Connection \"\";\n\
               proxy_next_upstream error timeout;\n      proxy_connect_timeout 2s;\n\
               add_header X-Upstream $upstream_addr always;\n    }}\n  }}\n}}\n"
    );
    let path = dir.path().join("nginx.conf");
    std::fs::write(&path, cfg).unwrap();
    let child = std::process::Command::new(bin)
        .arg("-p")
        .arg(dir.path())
        .arg("-c")
        .arg(&path)
        .args(["-g", "daemon off;"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("nginx starts");
    wait_for_port(port).await;
    Some(Server {
        child,
        _dir: dir,
        url: format!("http://127.0.0.1:{port}"),
    })
}
