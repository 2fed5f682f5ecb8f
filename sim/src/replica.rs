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

/// How every replica of a cluster behaves: its database pool, who may log
/// in, and its token rules. `surge sim up` takes these and hands them to each
/// replica process, so both parse them with the same definitions.
#[derive(Debug, Clone, clap::Args)]
pub struct ServiceOptions {
    /// Database connections in each replica's pool.
    #[arg(long, default_value_t = 10)]
    pub pool: usize,
    /// How long each database-backed request holds a connection.
    #[arg(long, default_value = "5ms", value_parser = crate::duration_flag)]
    pub hold: Duration,
    /// The shared database takes at most this many connections at once, from
    /// all replicas together (like max_connections); no limit when not given.
    #[arg(long)]
    pub db_limit: Option<usize>,
    /// Give up waiting for a connection after this long (c3p0 checkoutTimeout), answering 500.
    #[arg(long, default_value = "30s", value_parser = crate::duration_flag)]
    pub checkout_timeout: Duration,
    /// User name accepted at login.
    #[arg(long, default_value = "admin")]
    pub username: String,
    /// Password accepted at login.
    #[arg(long, default_value = "Admin123", hide_default_value = true)]
    pub password: String,
    /// Require a bearer token from `/realms/{realm}/protocol/openid-connect/token` on /fhir (as a Keycloak-protected HAPI).
    #[arg(long)]
    pub fhir_auth: bool,
    /// Lifetime of the tokens the token endpoint issues.
    #[arg(long, default_value = "300s", value_parser = crate::duration_flag)]
    pub token_ttl: Duration,
    /// Fault: this replica's token endpoint issues at most N tokens, then
    /// answers 503 (an identity provider going down mid-run).
    #[arg(long)]
    pub token_limit: Option<u64>,
    /// Client id the token endpoint accepts.
    #[arg(long, default_value = "surge")]
    pub client_id: String,
    /// Client secret the token endpoint accepts.
    #[arg(long, default_value = "surge-secret", hide_default_value = true)]
    pub client_secret: String,
    /// Where login sessions live: per replica (the bug), a shared store, or Redis.
    #[arg(long, value_enum, default_value = "per-replica")]
    pub sessions: SessionStoreKind,
    /// Redis server for `--sessions redis`, e.g. redis://127.0.0.1:6379.
    #[arg(long)]
    pub redis_url: Option<String>,
    /// With replicated attachments: how long after an upload the other replicas get it.
    #[arg(long, default_value = "0ms", value_parser = crate::duration_flag)]
    pub replication_delay: Duration,
    /// Fault: replication flips a byte of every copy (a corrupting volume).
    #[arg(long)]
    pub corrupt_replication: bool,
    /// Slow requests whose path starts with PREFIX by FACTOR × the hold time
    /// (e.g. `/fhir/Patient=3`); repeatable. For regression tests.
    #[arg(long, value_parser = parse_slow)]
    pub slow: Vec<(String, f64)>,
    /// How an openFHIR template uploaded to one replica reaches the others' caches.
    #[arg(long, value_enum, default_value = "broadcast")]
    pub openfhir_invalidation: openfhir::Invalidation,
    /// Each replica reloads its openFHIR templates this often (with `--openfhir-invalidation none`).
    #[arg(long, value_parser = crate::duration_flag)]
    pub openfhir_reload: Option<Duration>,
}

impl Default for ServiceOptions {
    /// The command line's defaults (one source of truth).
    fn default() -> Self {
        #[derive(clap::Parser)]
        struct Defaults {
            #[command(flatten)]
            service: ServiceOptions,
        }
        <Defaults as clap::Parser>::parse_from(["surge"]).service
    }
}

impl ServiceOptions {
    /// The same options as command-line arguments, for a replica process.
    pub fn to_args(&self) -> Vec<String> {
        let mut args = vec![
            format!("--pool={}", self.pool),
            format!("--hold={}us", self.hold.as_micros()),
            format!("--checkout-timeout={}ms", self.checkout_timeout.as_millis()),
            format!("--username={}", self.username),
            format!("--password={}", self.password),
            format!("--token-ttl={}ms", self.token_ttl.as_millis()),
            format!("--client-id={}", self.client_id),
            format!("--client-secret={}", self.client_secret),
            format!(
                "--sessions={}",
                clap::ValueEnum::to_possible_value(&self.sessions)
                    .map(|v| v.get_name().to_owned())
                    .unwrap_or_default()
            ),
            format!(
                "--replication-delay={}ms",
                self.replication_delay.as_millis()
            ),
        ];
        if self.corrupt_replication {
            args.push("--corrupt-replication".into());
        }
        if let Some(limit) = self.db_limit {
            args.push(format!("--db-limit={limit}"));
        }
        args.extend(
            self.slow
                .iter()
                .map(|(prefix, factor)| format!("--slow={prefix}={factor}")),
        );
        if let Some(url) = &self.redis_url {
            args.push(format!("--redis-url={url}"));
        }
        if self.fhir_auth {
            args.push("--fhir-auth".into());
        }
        if let Some(limit) = self.token_limit {
            args.push(format!("--token-limit={limit}"));
        }
        args.push(format!(
            "--openfhir-invalidation={}",
            clap::ValueEnum::to_possible_value(&self.openfhir_invalidation)
                .map(|v| v.get_name().to_owned())
                .unwrap_or_default()
        ));
        if let Some(every) = self.openfhir_reload {
            args.push(format!("--openfhir-reload={}ms", every.as_millis()));
        }
        args
    }
}

/// Parses `PREFIX=FACTOR` for `--slow`.
fn parse_slow(text: &str) -> Result<(String, f64), String> {
    let (prefix, factor) = text
        .rsplit_once('=')
        .ok_or("expected PREFIX=FACTOR, e.g. /fhir/Patient=3")?;
    let factor: f64 = factor
        .parse()
        .map_err(|_| format!("{factor:?} is not a number"))?;
    if !prefix.starts_with('/') || factor < 1.0 {
        return Err("expected a path prefix starting with / and a factor of at least 1".into());
    }
    Ok((prefix.to_owned(), factor))
}

/// How one replica process runs.
#[derive(Debug, Clone, clap::Args)]
pub struct ReplicaOptions {
    /// Replica name, sent in `X-Served-By`.
    #[arg(long, default_value = "r1")]
    pub name: String,
    /// Port on 127.0.0.1 (0 picks a free one; the chosen port is printed).
    #[arg(long, default_value_t = 0)]
    pub port: u16,
    /// Folder attachments are written to (this replica's own, or one shared by all).
    #[arg(long)]
    pub attachments_dir: PathBuf,
    /// Other replicas' attachment folders, each written `--replication-delay` after an upload.
    #[arg(long)]
    pub replicate_to: Vec<PathBuf>,
    /// Folder of the shared session store (with `--sessions shared`).
    #[arg(long)]
    pub sessions_dir: Option<PathBuf>,
    /// Folder of the shared database's connection slots (with `--db-limit`).
    #[arg(long)]
    pub db_dir: Option<PathBuf>,
    /// Folder every replica shares as "the database": FHIR resources and
    /// openFHIR templates (default: `shared` beside the attachments).
    #[arg(long)]
    pub shared_dir: Option<PathBuf>,
    /// Append one JSON line per request received (method, path, query,
    /// content type, auth scheme, cookie names, multipart parts; never a
    /// credential): what the request-shape tests check.
    #[arg(long)]
    pub capture_file: Option<PathBuf>,
    /// Pool, credentials, tokens.
    #[command(flatten)]
    pub service: ServiceOptions,
}

struct Replica {
    options: ReplicaOptions,
    sessions: SessionStore,
    pool: Semaphore,
    database: Option<super::database::Database>,
    metrics: PoolMetrics,
    patients: Vec<Patient>,
    /// Where FHIR resources are stored (shared by all replicas).
    resources_dir: PathBuf,
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
        resources_dir: shared_dir.join("fhir"),
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
                    next.run(req).await
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

/// Serves on 127.0.0.1, printing `LISTENING <port>` once bound (the supervisor reads it).
pub async fn serve(options: ReplicaOptions) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", options.port)).await?;
    println!("LISTENING {}", listener.local_addr()?.port());
    axum::serve(listener, router(options).await?).await?;
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

    /// Runs `work` holding a database connection for the configured time.
    async fn with_connection<T>(&self, work: impl FnOnce() -> T) -> Result<T, Response> {
        self.metrics.pending.fetch_add(1, Ordering::Relaxed);
        let acquired =
            tokio::time::timeout(self.options.service.checkout_timeout, self.pool.acquire()).await;
        self.metrics.pending.fetch_sub(1, Ordering::Relaxed);
        let permit = acquired
            .map_err(|_| {
                text(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Could not get JDBC Connection: An attempt by a client to checkout a Connection has timed out.",
                )
            })?
            .map_err(|_| text(StatusCode::SERVICE_UNAVAILABLE, "shutting down"))?;
        // The pool's connection is held from here, including any wait for the
        // shared database to take it (as a real connection would be).
        let held_from = std::time::Instant::now();
        let slot = match &self.database {
            Some(db) => Some(
                db.connect(self.options.service.checkout_timeout)
                    .await
                    .ok_or_else(|| {
                        text(
                            StatusCode::INTERNAL_SERVER_ERROR,
                            "FATAL: sorry, too many clients already",
                        )
                    })?,
            ),
            None => None,
        };
        tokio::time::sleep(self.options.service.hold).await;
        drop(slot);
        let out = work();
        drop(permit);
        self.metrics.usage_count.fetch_add(1, Ordering::Relaxed);
        self.metrics
            .usage_micros
            .fetch_add(held_from.elapsed().as_micros() as u64, Ordering::Relaxed);
        Ok(out)
    }
}

/// HikariCP-style pool metrics, as HAPI FHIR exposes them at /actuator/prometheus.
#[derive(Default)]
struct PoolMetrics {
    pending: AtomicUsize,
    usage_count: AtomicU64,
    usage_micros: AtomicU64,
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
         hikaricp_connections_usage_seconds_sum{{pool=\"{pool}\"}} {}\n",
        m.pending.load(Ordering::Relaxed),
        m.usage_count.load(Ordering::Relaxed),
        m.usage_micros.load(Ordering::Relaxed) as f64 / 1e6,
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

mod clinic;
mod openfhir;
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

/// A part's content type as sent (text parts usually have none).
fn field_content_type(file: bool, content_type: &str) -> Option<String> {
    (file || content_type != "application/octet-stream").then(|| content_type.to_owned())
}

fn safe_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

async fn upload_attachment(
    State(r): State<Shared>,
    headers: HeaderMap,
    mut multipart: Multipart,
) -> Response {
    let auth = session_or_refuse!(r, headers);
    let (mut file, mut patient, mut caption) = (None, None, String::new());
    let mut parts = Vec::new();
    loop {
        match multipart.next_field().await {
            Ok(Some(field)) => {
                let name = field.name().unwrap_or_default().to_owned();
                let content_type = field
                    .content_type()
                    .unwrap_or("application/octet-stream")
                    .to_owned();
                let file_name = field.file_name().unwrap_or("file").to_owned();
                let has_file_name = field.file_name().is_some();
                let Ok(bytes) = field.bytes().await else {
                    return text(StatusCode::BAD_REQUEST, "unreadable multipart body");
                };
                parts.push(json!({"name": name, "content_type": field_content_type(has_file_name, &content_type),
                    "file_name": has_file_name, "bytes": bytes.len()}));
                match name.as_str() {
                    "file" => file = Some((bytes, content_type, file_name)),
                    "patient" => patient = Some(String::from_utf8_lossy(&bytes).into_owned()),
                    "fileCaption" => caption = String::from_utf8_lossy(&bytes).into_owned(),
                    _ => {}
                }
            }
            Ok(None) => break,
            Err(e) => return text(StatusCode::BAD_REQUEST, &format!("bad multipart body: {e}")),
        }
    }
    r.capture(json!({"multipart": parts, "path": format!("{REST}/attachment")}));
    let (Some((bytes, content_type, file_name)), Some(patient)) = (file, patient) else {
        return text(
            StatusCode::BAD_REQUEST,
            "parts `file` and `patient` are required",
        );
    };
    if bytes.len() > 5 * 1024 * 1024 {
        return text(
            StatusCode::BAD_REQUEST,
            "file exceeds attachments.maxUploadFileSize (5 MB)",
        );
    }
    // OpenMRS rescales images over attachments.maxStorageFileSize (1.2 MB) on
    // store: what comes back is not what was sent.
    let bytes = if content_type.starts_with("image/") && bytes.len() > 1_200_000 {
        bytes.slice(..bytes.len() / 2)
    } else {
        bytes
    };
    let uuid = uuid::Uuid::new_v4().to_string();
    let dir = r.options.attachments_dir.clone();
    let stored = r
        .with_connection(|| store(&dir, &uuid, &bytes, &format!("{content_type}\n{file_name}")))
        .await;
    if matches!(stored, Ok(Ok(()))) {
        replicate(&r, uuid.clone());
    }
    match stored {
        Ok(Ok(())) => with_cookie(
            (
                StatusCode::CREATED,
                Json(json!({"uuid": uuid, "comment": caption, "patient": {"uuid": patient}, "bytesContentFamily": "OTHER"})),
            )
                .into_response(),
            &auth,
        ),
        Ok(Err(e)) => text(StatusCode::INTERNAL_SERVER_ERROR, &format!("cannot store attachment: {e}")),
        Err(resp) => resp,
    }
}

async fn download_attachment(
    State(r): State<Shared>,
    headers: HeaderMap,
    Path(uuid): Path<String>,
) -> Response {
    let auth = session_or_refuse!(r, headers);
    if !safe_id(&uuid) {
        return text(StatusCode::NOT_FOUND, "no such attachment");
    }
    let dir = r.options.attachments_dir.clone();
    let read = r.with_connection(|| load(&dir, &uuid)).await;
    match read {
        Ok(Ok((bytes, meta))) => {
            let (content_type, file_name) = meta
                .split_once('\n')
                .unwrap_or(("application/octet-stream", "file"));
            let ext = file_name.rsplit_once('.').map(|(_, e)| e).unwrap_or("");
            let mut resp = bytes.into_response();
            for (k, v) in [
                ("content-type", content_type),
                ("file-name", file_name),
                ("file-ext", ext),
            ] {
                if let Ok(v) = HeaderValue::from_str(v) {
                    resp.headers_mut().insert(k, v);
                }
            }
            with_cookie(resp, &auth)
        }
        // Stored on another replica's disk: the classic multi-replica bug.
        Ok(Err(_)) => text(
            StatusCode::NOT_FOUND,
            "Object with given uuid doesn't exist",
        ),
        Err(resp) => resp,
    }
}

/// Writes a stored object and its metadata (content type, file name) under `dir`.
fn store(dir: &std::path::Path, id: &str, bytes: &[u8], meta: &str) -> std::io::Result<()> {
    std::fs::write(dir.join(id), bytes)?;
    std::fs::write(dir.join(format!("{id}.type")), meta)
}

/// Copies a stored object into the other replicas' folders after the
/// replication delay, as an asynchronously replicated volume would. The
/// metadata file goes last, so a reader never sees half an object.
fn replicate(r: &Replica, id: String) {
    if r.options.replicate_to.is_empty() {
        return;
    }
    let from = r.options.attachments_dir.clone();
    let to = r.options.replicate_to.clone();
    let delay = r.options.service.replication_delay;
    let corrupt = r.options.service.corrupt_replication;
    tokio::spawn(async move {
        tokio::time::sleep(delay).await;
        for dir in to {
            let _ = tokio::fs::create_dir_all(&dir).await;
            for (name, is_data) in [(id.clone(), true), (format!("{id}.type"), false)] {
                let tmp = dir.join(format!(".{name}.part"));
                let copied = match tokio::fs::read(from.join(&name)).await {
                    Ok(mut bytes) => {
                        if corrupt && is_data {
                            if let Some(first) = bytes.first_mut() {
                                *first ^= 0xff;
                            }
                        }
                        tokio::fs::write(&tmp, bytes).await.is_ok()
                    }
                    Err(_) => false,
                };
                if !copied || tokio::fs::rename(&tmp, dir.join(&name)).await.is_err() {
                    tracing::error!("replicating {name} to {} failed", dir.display());
                }
            }
        }
    });
}

/// Reads back what [`store`] wrote: the bytes and the metadata.
fn load(dir: &std::path::Path, id: &str) -> std::io::Result<(Vec<u8>, String)> {
    Ok((
        std::fs::read(dir.join(id))?,
        std::fs::read_to_string(dir.join(format!("{id}.type")))?,
    ))
}

/// A numeric query parameter, or `default` when absent or not a number.
fn number(q: &HashMap<String, String>, key: &str, default: usize) -> usize {
    q.get(key).and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn operation_outcome(severity: &str, code: &str, diagnostics: &str) -> Value {
    json!({"resourceType": "OperationOutcome",
           "issue": [{"severity": severity, "code": code, "diagnostics": diagnostics}]})
}

fn fhir(status: StatusCode, body: Value) -> Response {
    let mut resp = (status, body.to_string()).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/fhir+json;charset=utf-8"),
    );
    resp
}

fn unix_ms() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis()
}

/// Keycloak's client-credentials grant. Tokens carry their expiry, so every
/// replica can check them without shared state (as a signed JWT would).
async fn issue_token(
    State(r): State<Shared>,
    axum::Form(form): axum::Form<HashMap<String, String>>,
) -> Response {
    let field = |k: &str| form.get(k).map(String::as_str).unwrap_or_default();
    if field("grant_type") != "client_credentials" {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "unsupported_grant_type"})),
        )
            .into_response();
    }
    if field("client_id") != r.options.service.client_id
        || field("client_secret") != r.options.service.client_secret
    {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": "unauthorized_client"})),
        )
            .into_response();
    }
    let issued = r
        .tokens_issued
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    if r.options
        .service
        .token_limit
        .is_some_and(|limit| issued >= limit)
    {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"error": "temporarily_unavailable"})),
        )
            .into_response();
    }
    let ttl = r.options.service.token_ttl;
    let expires = unix_ms() + ttl.as_millis();
    let token = format!("tok-{expires}-{}", uuid::Uuid::new_v4().simple());
    Json(json!({"access_token": token, "expires_in": ttl.as_secs(), "token_type": "Bearer"}))
        .into_response()
}

/// With `--fhir-auth`, a FHIR request needs an unexpired token from
/// [`issue_token`]; the refusal to send when it has none.
fn refuse_without_bearer(r: &Replica, headers: &HeaderMap) -> Option<Response> {
    if !r.options.service.fhir_auth {
        return None;
    }
    let expires = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer tok-"))
        .and_then(|t| t.split('-').next())
        .and_then(|ms| ms.parse::<u128>().ok());
    match expires {
        Some(ms) if ms > unix_ms() => None,
        Some(_) => Some(fhir(
            StatusCode::UNAUTHORIZED,
            operation_outcome("error", "login", "token expired"),
        )),
        None => Some(fhir(
            StatusCode::UNAUTHORIZED,
            operation_outcome("error", "login", "bearer token required"),
        )),
    }
}

async fn fhir_search(
    State(r): State<Shared>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if let Some(refusal) = refuse_without_bearer(&r, &headers) {
        return refusal;
    }
    // A page of an earlier search names it in `_getpages` (HAPI keeps searches
    // in the database, so any replica can serve any page).
    let name = q
        .get("name")
        .cloned()
        .or_else(|| {
            q.get("_getpages")
                .and_then(|id| id.strip_prefix("search-"))
                .map(str::to_owned)
        })
        .unwrap_or_default();
    // HAPI: default page 20.
    let count = number(&q, "_count", 20).clamp(1, 100);
    let offset = number(&q, "_getpagesoffset", 0);
    let result = r
        .with_connection(|| {
            let hits = data::search(&r.patients, &name);
            let entries: Vec<Value> = hits
                .iter()
                .skip(offset)
                .take(count)
                .map(|p| json!({"resource": {"resourceType": "Patient", "id": p.uuid,
                    "identifier": [{"value": p.identifier}],
                    "name": [{"family": p.family, "given": [p.given]}],
                    "gender": if p.gender == "F" {"female"} else {"male"}, "birthDate": p.birthdate}}))
                .collect();
            let mut links = vec![json!({"relation": "self", "url": format!("/fhir/Patient?name={name}&_count={count}")})];
            if offset + count < hits.len() {
                links.push(json!({"relation": "next",
                    "url": format!("/fhir?_getpages=search-{name}&_getpagesoffset={}&_count={count}", offset + count)}));
            }
            json!({"resourceType": "Bundle", "type": "searchset", "total": hits.len(), "link": links, "entry": entries})
        })
        .await;
    match result {
        Ok(body) => fhir(StatusCode::OK, body),
        Err(resp) => resp,
    }
}

async fn fhir_validate(
    State(r): State<Shared>,
    headers: HeaderMap,
    Path(resource_type): Path<String>,
    body: String,
) -> Response {
    if let Some(refusal) = refuse_without_bearer(&r, &headers) {
        return refusal;
    }
    if body.trim().is_empty() {
        return fhir(
            StatusCode::BAD_REQUEST,
            operation_outcome("error", "required", "No resource supplied for $validate"),
        );
    }
    // Validation is CPU work in HAPI, not database work: no pool here.
    let outcome =
        tokio::task::spawn_blocking(move || fhir_check::validate_r4(&body, &resource_type)).await;
    match outcome {
        Ok(Ok(())) => fhir(
            StatusCode::OK,
            operation_outcome(
                "information",
                "informational",
                "No issues detected during validation",
            ),
        ),
        Ok(Err(diagnostics)) => fhir(
            StatusCode::PRECONDITION_FAILED,
            operation_outcome("error", "processing", &diagnostics),
        ),
        Err(_) => fhir(
            StatusCode::INTERNAL_SERVER_ERROR,
            operation_outcome("fatal", "exception", "validator failed"),
        ),
    }
}

async fn fhir_binary_create(
    State(r): State<Shared>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if let Some(refusal) = refuse_without_bearer(&r, &headers) {
        return refusal;
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/octet-stream")
        .to_owned();
    let id = uuid::Uuid::new_v4().to_string();
    let dir = r.options.attachments_dir.clone();
    let stored = r
        .with_connection(|| store(&dir, &format!("binary-{id}"), &body, &content_type))
        .await;
    if matches!(stored, Ok(Ok(()))) {
        replicate(&r, format!("binary-{id}"));
    }
    fhir_created(
        stored,
        json!({"resourceType": "Binary", "id": id, "contentType": content_type}),
        &format!("/fhir/Binary/{id}"),
    )
}

/// HAPI's answer to a create: 201 with the resource and its Location, or
/// an OperationOutcome when storing failed (or the pool refused).
fn fhir_created(
    stored: Result<std::io::Result<()>, Response>,
    resource: Value,
    location: &str,
) -> Response {
    match stored {
        Ok(Ok(())) => {
            let mut resp = fhir(StatusCode::CREATED, resource);
            if let Ok(v) = HeaderValue::from_str(location) {
                resp.headers_mut().insert(header::LOCATION, v);
            }
            resp
        }
        Ok(Err(e)) => fhir(
            StatusCode::INTERNAL_SERVER_ERROR,
            operation_outcome("fatal", "exception", &e.to_string()),
        ),
        Err(resp) => resp,
    }
}

async fn fhir_binary_read(
    State(r): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if let Some(refusal) = refuse_without_bearer(&r, &headers) {
        return refusal;
    }
    if !safe_id(&id) {
        return fhir(
            StatusCode::NOT_FOUND,
            operation_outcome("error", "not-found", "no such Binary"),
        );
    }
    let dir = r.options.attachments_dir.clone();
    let read = r
        .with_connection(|| load(&dir, &format!("binary-{id}")))
        .await;
    match read {
        Ok(Ok((bytes, content_type))) => {
            let mut resp = bytes.into_response();
            if let Ok(v) = HeaderValue::from_str(&content_type) {
                resp.headers_mut().insert(header::CONTENT_TYPE, v);
            }
            resp
        }
        Ok(Err(_)) => fhir(
            StatusCode::NOT_FOUND,
            operation_outcome("error", "not-found", &format!("Binary/{id} is not known")),
        ),
        Err(resp) => resp,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        service: ServiceOptions,
    }

    #[test]
    fn service_options_survive_the_trip_to_a_replica_process() {
        let options = ServiceOptions {
            pool: 3,
            hold: Duration::from_micros(2500),
            fhir_auth: true,
            corrupt_replication: true,
            db_limit: Some(6),
            slow: vec![("/fhir/Patient".into(), 3.0)],
            password: "p=w;d".into(),
            ..Default::default()
        };
        let args = std::iter::once("surge".to_owned()).chain(options.to_args());
        let back = Cli::parse_from(args).service;
        assert_eq!(format!("{back:?}"), format!("{options:?}"));
    }
}
