//! Authentication against the reference cluster: Keycloak client credentials
//! (shared, refreshed before expiry) and a static bearer token, each shown to
//! work with good credentials and to fail visibly with bad ones.

use crate::common::*;
use std::time::Duration;
use surge::bundle::ErrorClass;
use surge_sim::replica::ServiceOptions;
use surge_sim::ClusterOptions;

fn fhir_with_auth(base_url: &str, auth: &str) -> String {
    let load =
        "[load]\nmodel = \"open\"\nmax_users = 20\n[[load.stages]]\nrate = 20\nhold = \"5s\"\n";
    let body = fhir_search_scenario(base_url, load);
    format!("{auth}\n{body}")
}

async fn run_with(auth: impl Fn(&str) -> String) -> surge::bundle::RunResults {
    run_keeping_bundle(auth).await.0
}

fn token_service() -> ServiceOptions {
    ServiceOptions {
        fhir_auth: true,
        token_ttl: Duration::from_secs(2),
        ..Default::default()
    }
}

/// Runs, and returns the results with every byte of the bundle.
async fn run_keeping_bundle(auth: impl Fn(&str) -> String) -> (surge::bundle::RunResults, Vec<u8>) {
    run_on(token_service(), auth).await
}

/// A reference cluster with `service`, and the FHIR search scenario with
/// `auth` written for it in a folder of its own.
async fn cluster_and_scenario(
    service: ServiceOptions,
    auth: impl Fn(&str) -> String,
) -> (surge_sim::Cluster, tempfile::TempDir, std::path::PathBuf) {
    let cluster = cluster(ClusterOptions {
        service,
        ..Default::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let path = scenario_file(
        dir.path(),
        "auth",
        &fhir_with_auth(&cluster.url, &auth(&cluster.url)),
    );
    (cluster, dir, path)
}

async fn run_on(
    service: ServiceOptions,
    auth: impl Fn(&str) -> String,
) -> (surge::bundle::RunResults, Vec<u8>) {
    let _engine = engine_lock().await;
    let (cluster, dir, path) = cluster_and_scenario(service, auth).await;
    let report = run(path, None, None, &dir.path().join("reports")).await;
    cluster.shutdown().await;
    let mut bytes = Vec::new();
    for dir in [report.bundle.clone(), report.bundle.join("hdr")] {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_file() {
                bytes.extend(std::fs::read(path).unwrap());
            }
        }
    }
    (report.results, bytes)
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

fn keycloak(secret: &str) -> impl Fn(&str) -> String + '_ {
    move |url| {
        format!(
            "[auth]\nkind = \"keycloak\"\ntoken_url = \"{url}/realms/clinic/protocol/openid-connect/token\"\n\
             client_id = \"surge\"\nclient_secret = \"{secret}\"\nrefresh_before = \"1s\"\n"
        )
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keycloak_token_is_shared_and_refreshed_before_it_expires() {
    let (r, bundle) = run_keeping_bundle(keycloak("surge-secret")).await;
    assert!(
        !contains(&bundle, "surge-secret"),
        "the client secret leaked into the bundle"
    );
    assert!(!contains(&bundle, "tok-"), "a token leaked into the bundle");
    let search = r.request("fhir_search").unwrap();
    assert_eq!(search.failed, 0, "{}", surge::report::terminal_summary(&r));
    assert!(search.count >= 95);
    // Tokens live 2 s and are refreshed 1 s early: about one fetch a second
    // for the whole run, not one per request or per user.
    let tokens = r.request("auth.token").unwrap();
    assert_eq!(tokens.failed, 0);
    assert!(
        (3..=12).contains(&tokens.count),
        "{} token fetches",
        tokens.count
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_client_secret_fails_up_front_without_sending_load() {
    let _engine = engine_lock().await;
    let (cluster, dir, path) =
        cluster_and_scenario(token_service(), keycloak("wrong-secret")).await;
    let out = dir.path().join("reports");
    let output = std::process::Command::new(surge_bin())
        .args([
            "run",
            path.to_str().unwrap(),
            "--no-progress",
            "--out",
            out.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    cluster.shutdown().await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("auth does not work, so no load was sent: the token endpoint answered 401 (unauthorized_client)"),
        "{stderr}"
    );
    assert!(!stderr.contains("wrong-secret"), "{stderr}");
    assert!(!out.exists(), "no bundle for a run that never started");
}

/// The identity provider goes down mid-run: the run says so loudly, and every
/// request that went without a token is an `auth` failure, never a success.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_that_went_without_a_token_are_auth_failures() {
    let service = ServiceOptions {
        // Each of the 3 replicas issues one token: the pre-flight's, the
        // run's first and its first refresh; the rest answer 503.
        token_limit: Some(1),
        ..token_service()
    };
    let (r, _) = run_on(service, keycloak("surge-secret")).await;
    let tokens = r.request("auth.token").unwrap();
    assert!(tokens.ok >= 1, "{tokens:?}");
    assert!(tokens.statuses.contains_key(&503), "{tokens:?}");
    let search = r.request("fhir_search").unwrap();
    let auth_failures = search.errors.get(&ErrorClass::Auth).copied().unwrap_or(0);
    assert!(search.ok > 0, "served while the token was good: {search:?}");
    assert!(auth_failures > 0, "{search:?}");
    // Without a token the sim answers 401; not one of those counts as a success
    // or as an ordinary 4xx: they are all `auth`.
    assert_eq!(search.errors.get(&ErrorClass::Http4xx), None, "{search:?}");
    assert_eq!(search.ok + auth_failures, search.count);
    let summary = surge::report::terminal_summary(&r);
    assert!(
        summary.contains(&format!(
            "fhir_search: {auth_failures} failed (auth {auth_failures})"
        )),
        "{summary}"
    );

    // Both ways: with the endpoint up throughout, no request is an auth failure.
    let healthy = run_with(keycloak("surge-secret")).await;
    let search = healthy.request("fhir_search").unwrap();
    assert_eq!(search.errors.get(&ErrorClass::Auth), None, "{search:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_static_bearer_token_is_sent_on_every_request() {
    // A token the sim accepts until the year 2286.
    let token =
        |_: &str| "[auth]\nkind = \"bearer\"\ntoken = \"tok-9999999999999-static\"\n".to_owned();
    let (good, bundle) = run_keeping_bundle(token).await;
    assert!(
        !contains(&bundle, "9999999999999"),
        "the token leaked into the bundle"
    );
    assert_eq!(good.request("fhir_search").unwrap().failed, 0);
    assert!(
        good.request("auth.token").is_none(),
        "a static token is never fetched"
    );
    let expired =
        run_with(|_| "[auth]\nkind = \"bearer\"\ntoken = \"tok-1-expired\"\n".into()).await;
    assert_eq!(expired.request("fhir_search").unwrap().ok, 0);
}
