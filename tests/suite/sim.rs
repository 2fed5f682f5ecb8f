//! The reference cluster behaves like the real systems it stands in for
//! (../shared/TARGETS.md), and like a ReplicaSet when a replica dies.

use crate::common::*;
use reqwest::StatusCode;
use std::time::{Duration, Instant};
use surge_sim::{AttachmentStore, ClusterOptions};

const REST: &str = "/openmrs/ws/rest/v1";

fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

async fn login(c: &reqwest::Client, base: &str) -> String {
    let r = c
        .get(format!("{base}{REST}/session"))
        .basic_auth("admin", Some("Admin123"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let cookie = r
        .headers()
        .get("set-cookie")
        .expect("a session cookie")
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["authenticated"], true);
    assert!(
        body.get("sessionId").is_none(),
        "no sessionId since REST 2.38"
    );
    cookie
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openmrs_sessions_behave_as_in_openmrs() {
    let cluster = cluster(ClusterOptions::default()).await;
    let urls = replica_urls(&cluster);
    let c = client();
    let cookie = login(&c, &urls[0]).await;

    // A wrong password is 200 with authenticated=false; a malformed header is 400.
    let wrong = c
        .get(format!("{}{REST}/session", urls[0]))
        .basic_auth("admin", Some("nope"))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::OK);
    assert_eq!(
        wrong.json::<serde_json::Value>().await.unwrap()["authenticated"],
        false
    );
    let malformed = c
        .get(format!("{}{REST}/session", urls[0]))
        .header("authorization", "Basic !!!")
        .send()
        .await
        .unwrap();
    assert_eq!(malformed.status(), StatusCode::BAD_REQUEST);

    // The session works on its own replica ...
    let ok = c
        .get(format!("{}{REST}/patient?q=Ayesha&limit=5", urls[0]))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
    assert_eq!(ok.headers()["x-served-by"], "r1");
    // ... and is unknown to another: 401 "Session timed out", even with Basic credentials.
    let other = c
        .get(format!("{}{REST}/patient?q=Ayesha", urls[1]))
        .header("cookie", &cookie)
        .basic_auth("admin", Some("Admin123"))
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(other.text().await.unwrap(), "Session timed out");

    // Logout ends it.
    let out = c
        .delete(format!("{}{REST}/session", urls[0]))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), StatusCode::NO_CONTENT);
    let after = c
        .get(format!("{}{REST}/patient?q=Ayesha", urls[0]))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(after.status(), StatusCode::UNAUTHORIZED);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patient_search_pages_with_next_links_and_total_count() {
    let cluster = cluster(ClusterOptions {
        replicas: 1,
        ..Default::default()
    })
    .await;
    let base = &replica_urls(&cluster)[0];
    let c = client();
    let cookie = login(&c, base).await;
    let page: serde_json::Value = c
        .get(format!(
            "{base}{REST}/patient?q=Rahman&v=default&limit=10&totalCount=true"
        ))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let total = page["totalCount"].as_u64().unwrap();
    assert!(total > 10, "{page}");
    assert_eq!(page["results"].as_array().unwrap().len(), 10);
    let next = page["links"][0]["uri"].as_str().unwrap();
    assert_eq!(page["links"][0]["rel"], "next");
    let second: serde_json::Value = c
        .get(format!("{base}{next}"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_ne!(second["results"][0]["uuid"], page["results"][0]["uuid"]);
    cluster.shutdown().await;
}

async fn upload_then_read_elsewhere(store: AttachmentStore) -> StatusCode {
    let cluster = cluster(ClusterOptions {
        replicas: 2,
        attachments: store,
        ..Default::default()
    })
    .await;
    let urls = replica_urls(&cluster);
    let c = client();
    let on_a = login(&c, &urls[0]).await;
    let on_b = login(&c, &urls[1]).await;
    let pdf = std::fs::read(repo().join("fixtures/docs/discharge-summary.pdf")).unwrap();
    let form = reqwest::multipart::Form::new()
        .part(
            "file",
            reqwest::multipart::Part::bytes(pdf.clone())
                .file_name("d.pdf")
                .mime_str("application/pdf")
                .unwrap(),
        )
        .text("patient", "5e1f0000-0000-4000-8000-000000000000");
    let created = c
        .post(format!("{}{REST}/attachment", urls[0]))
        .header("cookie", &on_a)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    let uuid = created.json::<serde_json::Value>().await.unwrap()["uuid"]
        .as_str()
        .unwrap()
        .to_owned();
    let same = c
        .get(format!("{}{REST}/attachment/{uuid}/bytes", urls[0]))
        .header("cookie", &on_a)
        .send()
        .await
        .unwrap();
    assert_eq!(same.status(), StatusCode::OK);
    assert_eq!(same.bytes().await.unwrap().as_ref(), pdf.as_slice());
    let other = c
        .get(format!("{}{REST}/attachment/{uuid}/bytes", urls[1]))
        .header("cookie", &on_b)
        .send()
        .await
        .unwrap();
    let status = other.status();
    if status == StatusCode::OK {
        assert_eq!(other.bytes().await.unwrap().as_ref(), pdf.as_slice());
    }
    cluster.shutdown().await;
    status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attachments_on_a_replica_disk_are_missing_elsewhere_and_shared_ones_are_not() {
    assert_eq!(
        upload_then_read_elsewhere(AttachmentStore::PerReplica).await,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        upload_then_read_elsewhere(AttachmentStore::Shared).await,
        StatusCode::OK
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fhir_validate_answers_like_hapi_200_with_errors_or_400() {
    let cluster = cluster(ClusterOptions {
        replicas: 1,
        ..Default::default()
    })
    .await;
    let base = &replica_urls(&cluster)[0];
    let c = client();
    let validate = |body: Vec<u8>| {
        c.post(format!("{base}/fhir/Patient/$validate"))
            .header("content-type", "application/fhir+json")
            .body(body)
            .send()
    };
    let valid = validate(std::fs::read(repo().join("fixtures/fhir/patient-valid.json")).unwrap())
        .await
        .unwrap();
    assert_eq!(valid.status(), StatusCode::OK);
    let invalid =
        validate(std::fs::read(repo().join("fixtures/fhir/patient-invalid.json")).unwrap())
            .await
            .unwrap();
    // HAPI FHIR 8 (measured on targets/hapi-fhir) answers 200 and puts the
    // errors in the OperationOutcome.
    assert_eq!(invalid.status(), StatusCode::OK);
    let outcome: serde_json::Value = invalid.json().await.unwrap();
    assert_eq!(outcome["resourceType"], "OperationOutcome");
    assert_eq!(outcome["issue"][0]["severity"], "error");
    assert_eq!(
        validate(Vec::new()).await.unwrap().status(),
        StatusCode::BAD_REQUEST
    );
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fhir_binary_create_answers_in_the_representation_asked_for_like_hapi() {
    let cluster = cluster(ClusterOptions {
        replicas: 1,
        ..Default::default()
    })
    .await;
    let base = &replica_urls(&cluster)[0];
    let c = client();
    let upload = |accept: Option<&'static str>| {
        let mut req = c
            .post(format!("{base}/fhir/Binary"))
            .header("content-type", "application/pdf")
            .body(b"%PDF-1.4 surge".to_vec());
        if let Some(accept) = accept {
            req = req.header("accept", accept);
        }
        req.send()
    };
    // As HAPI FHIR 8 answers (measured on targets/hapi-fhir): the bytes back
    // in their own type, or the Binary as FHIR JSON when asked.
    let raw = upload(None).await.unwrap();
    assert_eq!(raw.status(), StatusCode::CREATED);
    assert_eq!(raw.headers()["content-type"], "application/pdf");
    let location = raw.headers()["location"].to_str().unwrap().to_owned();
    assert!(
        location.starts_with("/fhir/Binary/") && location.ends_with("/_history/1"),
        "{location}"
    );
    assert_eq!(raw.bytes().await.unwrap().as_ref(), b"%PDF-1.4 surge");
    let fhir = upload(Some("application/fhir+json")).await.unwrap();
    assert_eq!(fhir.status(), StatusCode::CREATED);
    let binary: serde_json::Value = fhir.json().await.unwrap();
    assert_eq!(binary["resourceType"], "Binary");
    let id = binary["id"].as_str().unwrap();
    let back = c
        .get(format!("{base}/fhir/Binary/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(back.bytes().await.unwrap().as_ref(), b"%PDF-1.4 surge");
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_replica_is_restarted_after_its_start_up_delay() {
    let _engine = engine_lock().await;
    let cluster = cluster(ClusterOptions {
        replicas: 2,
        restart_delay: Duration::from_millis(500),
        ..Default::default()
    })
    .await;
    let (name, _, pid) = cluster.replicas()[0].clone();
    let pid = pid.unwrap();
    assert!(kill_hard(pid));
    let started = Instant::now();
    let mut saw_down = false;
    let new_pid = loop {
        let (_, url, now_pid) = cluster
            .replicas()
            .into_iter()
            .find(|r| r.0 == name)
            .unwrap();
        match (url, now_pid) {
            (None, _) => saw_down = true,
            (Some(url), Some(p)) if p != pid => {
                let health = client().get(format!("{url}/healthz")).send().await.unwrap();
                assert_eq!(health.status(), StatusCode::OK);
                break p;
            }
            _ => {}
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "replica {name} did not come back"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(
        saw_down,
        "the supervisor marked the replica down while it was dead"
    );
    assert!(
        started.elapsed() >= Duration::from_millis(500),
        "restarted before its start-up delay"
    );
    assert_ne!(new_pid, pid);
    // Meanwhile the balancer kept serving from the other replica.
    let through_lb = client()
        .get(format!("{}/healthz", cluster.url))
        .send()
        .await
        .unwrap();
    assert_eq!(through_lb.status(), StatusCode::OK);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_balancer_is_sticky_by_cookie_or_round_robin() {
    let sticky = cluster(ClusterOptions::default()).await;
    let c = reqwest::Client::builder()
        .no_proxy()
        .cookie_store(true)
        .build()
        .unwrap();
    let mut served = std::collections::BTreeSet::new();
    for _ in 0..6 {
        let r = c
            .get(format!("{}/healthz", sticky.url))
            .send()
            .await
            .unwrap();
        served.insert(r.headers()["x-served-by"].to_str().unwrap().to_owned());
    }
    assert_eq!(
        served.len(),
        1,
        "a client with the sticky cookie stays on one replica: {served:?}"
    );
    sticky.shutdown().await;

    let rr = cluster(ClusterOptions {
        balancing: surge_sim::balancer::Balancing::RoundRobin,
        ..Default::default()
    })
    .await;
    let mut served = std::collections::BTreeSet::new();
    for _ in 0..6 {
        let r = c.get(format!("{}/healthz", rr.url)).send().await.unwrap();
        served.insert(r.headers()["x-served-by"].to_str().unwrap().to_owned());
    }
    assert_eq!(
        served.len(),
        3,
        "round-robin reaches every replica: {served:?}"
    );
    rr.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fhir_search_pages_through_next_links_on_any_replica() {
    let cluster = cluster(ClusterOptions {
        replicas: 2,
        ..Default::default()
    })
    .await;
    let urls = replica_urls(&cluster);
    let c = client();
    let first: serde_json::Value = c
        .get(format!("{}/fhir/Patient?name=Rahman&_count=10", urls[0]))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let total = first["total"].as_u64().unwrap();
    let next = first["link"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["relation"] == "next")
        .expect("a next link")["url"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(next.contains("_getpages="), "{next}");
    // Search state lives in the database: the other replica serves the next page.
    let second: serde_json::Value = c
        .get(format!("{}{next}", urls[1]))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(second["resourceType"], "Bundle");
    assert_eq!(second["total"].as_u64(), Some(total));
    assert_ne!(
        second["entry"][0]["resource"]["id"],
        first["entry"][0]["resource"]["id"]
    );
    cluster.shutdown().await;
}
