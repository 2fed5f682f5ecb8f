//! Authentication against the reference cluster: Keycloak client credentials
//! (shared, refreshed before expiry) and a static bearer token, each shown to
//! work with good credentials and to fail visibly with bad ones.

use crate::common::*;
use std::time::Duration;
use surge::measure::ErrorClass;
use surge::sim::replica::ServiceOptions;
use surge::sim::ClusterOptions;

fn fhir_with_auth(base_url: &str, auth: &str) -> String {
    let load =
        "[load]\nmodel = \"open\"\nmax_users = 20\n[[load.stages]]\nrate = 20\nhold = \"5s\"\n";
    let body = fhir_search_scenario(base_url, load);
    format!("{auth}\n{body}")
}

async fn run_with(auth: impl Fn(&str) -> String) -> surge::measure::RunResults {
    run_keeping_bundle(auth).await.0
}

/// Runs, and returns the results with every byte of the bundle.
async fn run_keeping_bundle(
    auth: impl Fn(&str) -> String,
) -> (surge::measure::RunResults, Vec<u8>) {
    let _engine = engine_lock().await;
    let cluster = cluster(ClusterOptions {
        service: ServiceOptions {
            fhir_auth: true,
            token_ttl: Duration::from_secs(2),
            ..Default::default()
        },
        ..Default::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let path = scenario_file(
        dir.path(),
        "auth",
        &fhir_with_auth(&cluster.url, &auth(&cluster.url)),
    );
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
async fn a_wrong_client_secret_shows_as_failed_token_fetches_and_401s() {
    let r = run_with(keycloak("wrong")).await;
    let tokens = r.request("auth.token").unwrap();
    assert_eq!(tokens.ok, 0);
    assert!(tokens.statuses.contains_key(&401));
    let search = r.request("fhir_search").unwrap();
    assert_eq!(search.ok, 0);
    assert_eq!(search.errors.get(&ErrorClass::Http4xx), Some(&search.count));
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
