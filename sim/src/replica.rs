//! One replica of the reference cluster: an OpenMRS-like REST API and a
//! HAPI-FHIR-like API, with a database connection pool of known size and
//! hold time, so its capacity is known (pool ÷ hold per second).
//!
//! Like the real systems (OpenMRS keeps its servlet sessions in memory;
//! its default attachment store is a local folder): sessions live in this
//! process only (a `JSESSIONID` this replica does not know gets 401 "Session
//! timed out", even with Basic credentials); attachments are written to this
//! replica's own folder unless the cluster shares one.

use axum::extract::{Multipart, Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine as _;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

use super::data::{self, Patient};
use super::sessions::{SessionStore, SessionStoreKind};

mod options;

use attachments::*;
use fhir::*;
pub use options::{ReplicaOptions, ServiceOptions};

struct Replica {
    options: ReplicaOptions,
    sessions: SessionStore,
    pool: Semaphore,
    database: Option<super::database::Database>,
    metrics: PoolMetrics,
    patients: Vec<Patient>,
    /// Where FHIR resources are stored (shared by all replicas).
    store: store::Store,
    /// The database's failover, when its primary dies.
    failover: crate::failover::Failover,
    /// idgen's sequence.
    next_identifier: AtomicU64,
    /// openFHIR template cache.
    openfhir: openfhir::Cache,
    /// `--capture-file`, open for appending.
    capture: Option<std::sync::Mutex<std::fs::File>>,
    /// Tokens issued so far (for `--token-limit`).
    tokens_issued: AtomicU64,
}

type Shared = Arc<Replica>;

const REST: &str = "/openmrs/ws/rest/v1";

/// The replica's routes.
pub async fn router(options: ReplicaOptions) -> anyhow::Result<Router> {
    std::fs::create_dir_all(&options.attachments_dir)?;
    let shared_dir = options
        .shared_dir
        .clone()
        .unwrap_or_else(|| options.attachments_dir.join("shared"));
    let name = HeaderValue::from_str(&options.name).unwrap_or(HeaderValue::from_static("replica"));
    let sessions = SessionStore::open(
        options.service.sessions,
        options.sessions_dir.clone(),
        options.service.redis_url.as_deref(),
    )
    .await?;
    let state = Arc::new(Replica {
        pool: Semaphore::new(options.service.pool),
        database: match (options.service.db_limit, &options.db_dir) {
            (Some(limit), Some(dir)) => Some(super::database::Database::open(dir, limit)?),
            (Some(_), None) => anyhow::bail!("--db-limit needs --db-dir (the cluster sets it)"),
            (None, _) => None,
        },
        metrics: PoolMetrics::default(),
        store: if options.service.galera.is_empty() {
            store::Store::Files {
                dir: shared_dir.join("fhir"),
                lag: options.service.read_replica_lag,
            }
        } else {
            store::Store::galera(&options.service.galera).await?
        },
        failover: crate::failover::Failover::new(
            &shared_dir,
            &shared_dir.join("fhir"),
            options.service.failover_loses,
            options.service.failover_down,
        ),
        next_identifier: AtomicU64::new(1),
        tokens_issued: AtomicU64::new(0),
        openfhir: openfhir::Cache::new(
            shared_dir.join("openfhir"),
            options.service.openfhir_invalidation,
        ),
        capture: match &options.capture_file {
            Some(path) => Some(std::sync::Mutex::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)?,
            )),
            None => None,
        },
        options,
        sessions,
        patients: data::patients(),
    });
    openfhir::start_reload(Arc::clone(&state), state.options.service.openfhir_reload);
    Ok(Router::new()
        .route(
            &format!("{REST}/session"),
            get(get_session).post(set_session_location).delete(logout),
        )
        .route(
            &format!("{REST}/patient"),
            get(search_patients).post(clinic::register_patient),
        )
        .route(&format!("{REST}/location"), get(locations))
        .route(&format!("{REST}/attachment"), post(upload_attachment))
        .route(
            &format!("{REST}/attachment/{{uuid}}/bytes"),
            get(download_attachment),
        )
        .route(
            "/fhir/Patient",
            get(fhir_search).post(clinic::fhir_create_patient),
        )
        // HAPI's paging links: /fhir?_getpages=<search id>&_getpagesoffset=N.
        .route("/fhir", get(fhir_search))
        .route("/openmrs/ws/fhir2/R4/Patient", get(fhir_search))
        .route("/fhir/{resource_type}/$validate", post(fhir_validate))
        .route("/fhir/Binary", post(fhir_binary_create))
        .route("/fhir/Binary/{id}", get(fhir_binary_read))
        .route(
            "/realms/{realm}/protocol/openid-connect/token",
            post(issue_token),
        )
        .route("/actuator/prometheus", get(prometheus))
        .route("/healthz", get(|| async { "ok" }))
        .merge(clinic::routes())
        .merge(openfhir::routes())
        .with_state(Arc::clone(&state))
        .layer(axum::middleware::from_fn(
            move |req: axum::extract::Request, next: axum::middleware::Next| {
                let state = Arc::clone(&state);
                async move {
                    state.capture_request(&req);
                    // `--slow`: extra time on matching paths, in units of the hold time.
                    let path = req.uri().path();
                    if let Some((_, factor)) = state
                        .options
                        .service
                        .slow
                        .iter()
                        .find(|(p, _)| path.starts_with(p.as_str()))
                    {
                        tokio::time::sleep(state.options.service.hold.mul_f64(factor - 1.0)).await;
                    }
                    let counted = !(path.starts_with("/actuator/") || path == "/healthz");
                    let began = std::time::Instant::now();
                    let response = next.run(req).await;
                    if counted {
                        let m = &state.metrics;
                        m.served.fetch_add(1, Ordering::Relaxed);
                        m.served_micros
                            .fetch_add(began.elapsed().as_micros() as u64, Ordering::Relaxed);
                    }
                    response
                }
            },
        ))
        .layer(axum::middleware::map_response(move |mut r: Response| {
            let name = name.clone();
            async move {
                r.headers_mut().insert("x-served-by", name);
                r
            }
        })))
}

/// Serves on `--host` (127.0.0.1 by default), printing `LISTENING <port>`
/// once bound (the supervisor reads it), after `--start-delay`. SIGTERM
/// ends it as a pod ends:
/// answering for `--shutdown-delay`, then finishing what is in flight.
pub async fn serve(options: ReplicaOptions) -> anyhow::Result<()> {
    tokio::time::sleep(options.start_delay).await;
    let listener = tokio::net::TcpListener::bind((options.host, options.port)).await?;
    println!("LISTENING {}", listener.local_addr()?.port());
    let delay = options.shutdown_delay;
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    axum::serve(listener, router(options).await?)
        .with_graceful_shutdown(async move {
            terminate.recv().await;
            tokio::time::sleep(delay).await;
        })
        .await?;
    Ok(())
}

fn text(status: StatusCode, body: &str) -> Response {
    (status, body.to_owned()).into_response()
}

enum Basic {
    Absent,
    Malformed,
    Credentials(String, String),
}

fn basic(headers: &HeaderMap) -> Basic {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Basic::Absent;
    };
    let decoded = value
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| {
            base64::engine::general_purpose::STANDARD
                .decode(b.trim())
                .ok()
        })
        .and_then(|b| String::from_utf8(b).ok());
    match decoded.as_deref().and_then(|d| d.split_once(':')) {
        Some((u, p)) if !u.is_empty() => Basic::Credentials(u.to_owned(), p.to_owned()),
        _ => Basic::Malformed,
    }
}

enum Auth {
    /// A session this replica knows.
    Session(String),
    /// Valid Basic credentials and no session cookie: a new session.
    NewSession(String),
    /// Refused, with the answer to give.
    Refused(Response),
}

impl Replica {
    /// OpenMRS's rule: a session cookie this replica does not know is 401
    /// "Session timed out", whatever else the request carries.
    async fn authenticate(&self, headers: &HeaderMap) -> Auth {
        if let Some(id) = super::request_cookie(headers, "JSESSIONID") {
            if self.sessions.get(&id).await.is_some() {
                return Auth::Session(id);
            }
            return Auth::Refused(text(StatusCode::UNAUTHORIZED, "Session timed out"));
        }
        match basic(headers) {
            Basic::Credentials(u, p)
                if u == self.options.service.username && p == self.options.service.password =>
            {
                let id = uuid::Uuid::new_v4().simple().to_string().to_uppercase();
                self.sessions.put(&id, "").await;
                Auth::NewSession(id)
            }
            Basic::Malformed => Auth::Refused(text(
                StatusCode::BAD_REQUEST,
                "Malformed Authorization header",
            )),
            _ => Auth::Refused(text(StatusCode::UNAUTHORIZED, "User is not logged in")),
        }
    }
}

/// HikariCP-style pool metrics, as HAPI FHIR exposes them at /actuator/prometheus.
#[derive(Default)]
struct PoolMetrics {
    pending: AtomicUsize,
    usage_count: AtomicU64,
    usage_micros: AtomicU64,
    /// Requests answered (Spring Boot's `http_server_requests_seconds`),
    /// the scrape and the health check left out: what an HPA on request
    /// rate reads.
    served: AtomicU64,
    served_micros: AtomicU64,
}

async fn prometheus(State(r): State<Shared>) -> Response {
    let max = r.options.service.pool;
    let active = max - r.pool.available_permits().min(max);
    let m = &r.metrics;
    let pool = "HikariPool-1";
    let body = format!(
        "# HELP hikaricp_connections_active Active connections\n# TYPE hikaricp_connections_active gauge\n\
         hikaricp_connections_active{{pool=\"{pool}\"}} {active}\n\
         # HELP hikaricp_connections_pending Pending threads\n# TYPE hikaricp_connections_pending gauge\n\
         hikaricp_connections_pending{{pool=\"{pool}\"}} {}\n\
         # HELP hikaricp_connections_max Max connections\n# TYPE hikaricp_connections_max gauge\n\
         hikaricp_connections_max{{pool=\"{pool}\"}} {max}\n\
         # HELP hikaricp_connections_usage_seconds Connection usage time\n# TYPE hikaricp_connections_usage_seconds summary\n\
         hikaricp_connections_usage_seconds_count{{pool=\"{pool}\"}} {}\n\
         hikaricp_connections_usage_seconds_sum{{pool=\"{pool}\"}} {}\n\
         # HELP http_server_requests_seconds Requests answered\n# TYPE http_server_requests_seconds summary\n\
         http_server_requests_seconds_count {}\n\
         http_server_requests_seconds_sum {}\n",
        m.pending.load(Ordering::Relaxed),
        m.usage_count.load(Ordering::Relaxed),
        m.usage_micros.load(Ordering::Relaxed) as f64 / 1e6,
        m.served.load(Ordering::Relaxed),
        m.served_micros.load(Ordering::Relaxed) as f64 / 1e6,
    );
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}

fn with_cookie(mut response: Response, auth: &Auth) -> Response {
    if let Auth::NewSession(id) = auth {
        if let Ok(v) = HeaderValue::from_str(&format!("JSESSIONID={id}; Path=/openmrs; HttpOnly")) {
            response.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    response
}

/// An OpenMRS REST answer from work done on a pooled connection: its JSON
/// with `status` and the session cookie, or the pool's refusal.
fn rest_json(status: StatusCode, made: Result<Value, Response>, auth: &Auth) -> Response {
    match made {
        Ok(body) => with_cookie((status, Json(body)).into_response(), auth),
        Err(refused) => refused,
    }
}

fn user_json(name: &str) -> Value {
    json!({"uuid": "45ce6c2e-dd5a-11e6-9d9c-0242ac150002", "display": name, "username": name})
}

async fn get_session(State(r): State<Shared>, headers: HeaderMap) -> Response {
    let auth = r.authenticate(&headers).await;
    let id = match &auth {
        Auth::Session(id) | Auth::NewSession(id) => id.clone(),
        Auth::Refused(_) => {
            let Auth::Refused(refusal) = auth else {
                unreachable!()
            };
            // No session cookie and no usable credentials (absent, or a wrong
            // password) is 200 with authenticated=false, as in OpenMRS.
            let anonymous = super::request_cookie(&headers, "JSESSIONID").is_none()
                && !matches!(basic(&headers), Basic::Malformed);
            return if anonymous {
                Json(json!({"authenticated": false})).into_response()
            } else {
                refusal
            };
        }
    };
    let location = r.sessions.get(&id).await.filter(|l| !l.is_empty());
    let body = json!({"authenticated": true, "user": user_json(&r.options.service.username), "locale": "en",
                      "sessionLocation": location.map(|l| json!({"uuid": l}))});
    with_cookie(Json(body).into_response(), &auth)
}

async fn set_session_location(
    State(r): State<Shared>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let auth = r.authenticate(&headers).await;
    let id = match &auth {
        Auth::Session(id) | Auth::NewSession(id) => id.clone(),
        Auth::Refused(_) => {
            let Auth::Refused(refusal) = auth else {
                unreachable!()
            };
            return refusal;
        }
    };
    let location = body
        .get("sessionLocation")
        .and_then(Value::as_str)
        .map(str::to_owned);
    r.sessions
        .put(&id, location.as_deref().unwrap_or_default())
        .await;
    with_cookie(
        Json(
            json!({"authenticated": true, "sessionLocation": location.map(|l| json!({"uuid": l}))}),
        )
        .into_response(),
        &auth,
    )
}

async fn logout(State(r): State<Shared>, headers: HeaderMap) -> Response {
    if let Some(id) = super::request_cookie(&headers, "JSESSIONID") {
        r.sessions.remove(&id).await;
    }
    StatusCode::NO_CONTENT.into_response()
}

macro_rules! session_or_refuse {
    ($r:expr, $headers:expr) => {{
        let auth = $r.authenticate(&$headers).await;
        if let Auth::Refused(resp) = auth {
            return resp;
        }
        auth
    }};
}

// After the macros above: modules see a macro_rules! only below its definition.
mod attachments;
mod clinic;
mod connection;
mod fhir;
mod openfhir;
mod store;
pub use openfhir::Invalidation;

impl Replica {
    /// `--capture-file`: the shape of a request, never a credential.
    fn capture_request(&self, req: &axum::extract::Request) {
        let h = req.headers();
        let text =
            |name: header::HeaderName| h.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let auth = text(header::AUTHORIZATION)
            .map(|a| a.split(' ').next().unwrap_or("").to_ascii_lowercase());
        let cookies: Vec<String> = h
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|kv| kv.split_once('=').map(|(k, _)| k.trim().to_owned()))
            .collect();
        self.capture(json!({
            "method": req.method().as_str(), "path": req.uri().path(), "query": req.uri().query(),
            "content_type": text(header::CONTENT_TYPE), "accept": text(header::ACCEPT),
            "auth": auth, "cookies": cookies,
        }));
    }

    fn capture(&self, line: Value) {
        if let Some(file) = &self.capture {
            use std::io::Write as _;
            let _ = writeln!(file.lock().unwrap(), "{line}");
        }
    }
}

fn patient_json(p: &Patient, full: bool) -> Value {
    let mut v = json!({
        "uuid": p.uuid,
        "display": format!("{} - {} {}", p.identifier, p.given, p.family),
        "identifiers": [{"identifier": p.identifier, "display": format!("OpenMRS ID = {}", p.identifier)}],
        "person": {"gender": p.gender, "birthdate": p.birthdate,
                   "preferredName": {"givenName": p.given, "familyName": p.family}},
    });
    if full {
        v["person"]["names"] = json!([
            {"givenName": p.given, "familyName": p.family, "locale": "en"},
            {"givenName": p.given_bn, "familyName": p.family_bn, "locale": "bn"}
        ]);
    }
    v
}

async fn search_patients(
    State(r): State<Shared>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let auth = session_or_refuse!(r, headers);
    let query = q.get("q").cloned().unwrap_or_default();
    // OpenMRS: default page 50, hard maximum 100.
    let limit = number(&q, "limit", 50).clamp(1, 100);
    let start = number(&q, "startIndex", 0);
    let full = q.get("v").is_some_and(|v| v == "full");
    let result = r
        .with_connection(|| {
            let hits = data::search(&r.patients, &query);
            let page: Vec<Value> = hits.iter().skip(start).take(limit).map(|p| patient_json(p, full)).collect();
            let mut body = json!({"results": page});
            if start + limit < hits.len() {
                body["links"] = json!([{"rel": "next",
                    "uri": format!("{REST}/patient?q={query}&limit={limit}&startIndex={}", start + limit)}]);
            }
            if q.get("totalCount").is_some_and(|t| t == "true") {
                body["totalCount"] = json!(hits.len());
            }
            body
        })
        .await;
    rest_json(StatusCode::OK, result, &auth)
}

async fn locations(State(r): State<Shared>, headers: HeaderMap) -> Response {
    let auth = session_or_refuse!(r, headers);
    let body = json!({"results": [
        {"uuid": "44c3efb0-2583-4c80-a79e-1f756a03c0a1", "display": "Outpatient Clinic"},
        {"uuid": "aff27d58-a15c-49a6-9beb-d30dcfc0c66e", "display": "Inpatient Ward"}]});
    with_cookie(Json(body).into_response(), &auth)
}

/// A numeric query parameter, or `default` when absent or not a number.
fn number(q: &HashMap<String, String>, key: &str, default: usize) -> usize {
    q.get(key).and_then(|v| v.parse().ok()).unwrap_or(default)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    /// The replica's service flags on a command line of their own.
    #[derive(Parser)]
    pub(super) struct Cli {
        #[command(flatten)]
        pub(super) service: ServiceOptions,
    }

    #[test]
    fn service_options_survive_the_trip_to_a_replica_process() {
        let options = ServiceOptions {
            pool: 3,
            hold: Duration::from_micros(2500),
            fhir_auth: true,
            corrupt_replication: true,
            db_limit: Some(6),
            cpu_per_request: Duration::from_micros(4500),
            slow: vec![("/fhir/Patient".into(), 3.0)],
            password: "p=w;d".into(),
            ..Default::default()
        };
        let args = std::iter::once("surge".to_owned()).chain(options.to_args());
        let back = Cli::parse_from(args).service;
        assert_eq!(format!("{back:?}"), format!("{options:?}"));
    }
}
