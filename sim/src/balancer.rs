//! The reference cluster's load balancer: round-robin, or sticky by a cookie
//! whose value names the replica (as Traefik's `openmrs_session` does). A
//! replica that is down is skipped; a request that cannot reach its replica
//! gets 502, as from a real proxy.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};

/// How requests are spread.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Balancing {
    /// Each request to the next replica.
    RoundRobin,
    /// A cookie keeps each client on the replica it first reached.
    Sticky,
}

/// A replica as the balancer sees it.
#[derive(Debug, Clone)]
pub struct Backend {
    /// Name (also the sticky cookie's value).
    pub name: String,
    /// Where it answers while it is up (127.0.0.1 and a port for the
    /// cluster's own replicas; a pod's address behind a Service).
    pub address: Option<SocketAddr>,
    /// Process id while it is up.
    pub pid: Option<u32>,
    /// When it started answering (while it is up): a pod's start time.
    pub since: Option<std::time::SystemTime>,
}

/// The replicas, updated by the supervisor as they die and come back.
#[derive(Debug, Default)]
pub struct Backends(pub RwLock<Vec<Backend>>);

impl Backends {
    /// Snapshot.
    pub fn list(&self) -> Vec<Backend> {
        self.0.read().unwrap().clone()
    }

    /// Sets a replica's loopback port and pid (None when it is down).
    pub fn set(&self, name: &str, port: Option<u16>, pid: Option<u32>) {
        if let Some(b) = self.0.write().unwrap().iter_mut().find(|b| b.name == name) {
            b.address = port.map(|p| SocketAddr::from((Ipv4Addr::LOCALHOST, p)));
            b.pid = pid;
            b.since = port.map(|_| std::time::SystemTime::now());
        }
    }
}

struct Balancer {
    backends: Arc<Backends>,
    mode: Balancing,
    cookie: String,
    next: AtomicUsize,
    client: reqwest::Client,
}

/// The balancer's routes.
pub fn router(backends: Arc<Backends>, mode: Balancing, cookie: String) -> Router {
    let client = reqwest::Client::builder()
        .no_proxy()
        .no_gzip()
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(256)
        .build()
        .expect("a plain HTTP client builds");
    let state = Arc::new(Balancer {
        backends,
        mode,
        cookie,
        next: AtomicUsize::new(0),
        client,
    });
    Router::new().fallback(proxy).with_state(state)
}

impl Balancer {
    fn pick(&self, sticky_to: Option<&str>) -> Option<(String, SocketAddr)> {
        let backends = self.backends.0.read().unwrap();
        if let Some(name) = sticky_to {
            if let Some(Backend {
                address: Some(address),
                ..
            }) = backends.iter().find(|b| b.name == name)
            {
                return Some((name.to_owned(), *address));
            }
        }
        let n = backends.len();
        for _ in 0..n {
            let b = &backends[self.next.fetch_add(1, Ordering::Relaxed) % n];
            if let Some(address) = b.address {
                return Some((b.name.clone(), address));
            }
        }
        None
    }
}

fn bad_gateway(why: &str) -> Response {
    (StatusCode::BAD_GATEWAY, format!("Bad Gateway: {why}")).into_response()
}

async fn proxy(State(lb): State<Arc<Balancer>>, req: Request) -> Response {
    let sticky_value = match lb.mode {
        Balancing::Sticky => super::request_cookie(req.headers(), &lb.cookie),
        Balancing::RoundRobin => None,
    };
    let Some((name, address)) = lb.pick(sticky_value.as_deref()) else {
        return bad_gateway("no replica is up");
    };
    let path = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/")
        .to_owned();
    let method = req.method().clone();
    let mut headers = req.headers().clone();
    for hop in [
        header::HOST,
        header::CONNECTION,
        header::TRANSFER_ENCODING,
        header::CONTENT_LENGTH,
    ] {
        headers.remove(hop);
    }
    let body = match axum::body::to_bytes(req.into_body(), 64 * 1024 * 1024).await {
        Ok(b) => b,
        Err(_) => return (StatusCode::PAYLOAD_TOO_LARGE, "body too large").into_response(),
    };
    let upstream = lb
        .client
        .request(method, format!("http://{address}{path}"))
        .headers(headers)
        .body(body)
        .send()
        .await;
    let upstream = match upstream {
        Ok(u) => u,
        Err(e) => {
            return bad_gateway(&format!(
                "replica {name}: {}",
                if e.is_connect() {
                    "connection refused"
                } else {
                    "no answer"
                }
            ))
        }
    };
    let status = upstream.status();
    let mut out_headers = upstream.headers().clone();
    let body = match upstream.bytes().await {
        Ok(b) => b,
        Err(_) => return bad_gateway(&format!("replica {name} broke off its answer")),
    };
    out_headers.remove(header::TRANSFER_ENCODING);
    out_headers.remove(header::CONNECTION);
    out_headers.remove(header::CONTENT_LENGTH);
    if lb.mode == Balancing::Sticky && sticky_value.as_deref() != Some(name.as_str()) {
        if let Ok(v) = HeaderValue::from_str(&format!("{}={name}; Path=/", lb.cookie)) {
            out_headers.append(header::SET_COOKIE, v);
        }
    }
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    *response.headers_mut() = out_headers;
    response
}
