//! A custom metrics API server (`surge sim metrics-adapter`): the part of
//! a cluster that tells the HPA controller each pod's request rate. The
//! real API server's aggregation layer forwards `custom.metrics.k8s.io`
//! to it (an APIService), and it answers from Prometheus, as
//! kubernetes-sigs' prometheus-adapter does — only the API an HPA on a
//! Pods metric needs: discovery, and `pods/*/http_server_requests_per_second`
//! in a namespace, by label selector.
//!
//! A test double beside the reference cluster, not part of the harness.
//! It trusts whoever reaches it (the aggregator's client certificate is not
//! checked), which is right only inside a test's own network.

use anyhow::Context;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

const GROUP: &str = "custom.metrics.k8s.io";
const VERSION: &str = "v1beta2";
/// The one metric served: what `surge calibrate`'s HPA names.
pub const REQUEST_RATE: &str = "http_server_requests_per_second";

/// `surge sim metrics-adapter`'s flags.
#[derive(Debug, Clone, clap::Args)]
pub struct AdapterOptions {
    /// Prometheus' base URL (its HTTP API answers the queries).
    #[arg(long)]
    pub prometheus: String,
    /// Serving certificate (PEM), for the aggregator's TLS.
    #[arg(long)]
    pub tls_cert: PathBuf,
    /// Its private key (PEM).
    #[arg(long)]
    pub tls_key: PathBuf,
    /// Address to listen on (a pod's: `$(POD_IP)`).
    #[arg(long, default_value = "127.0.0.1")]
    pub host: IpAddr,
    /// Port to listen on.
    #[arg(long, default_value_t = 6443)]
    pub port: u16,
    /// The rate's window (PromQL `rate(…[window])`).
    #[arg(long, default_value = "30s", value_parser = crate::duration_flag)]
    pub window: Duration,
}

struct Adapter {
    prometheus: String,
    window: Duration,
    http: reqwest::Client,
}

/// The PromQL for each pod's request rate in `namespace` whose labels match
/// `selector` (`k=v,k2=v2`; Prometheus keeps the pods' labels): `None`
/// for a selector this adapter cannot translate.
pub fn rate_query(namespace: &str, selector: &str, window: Duration) -> Option<String> {
    let mut matchers = vec![format!("namespace=\"{}\"", escape(namespace))];
    for term in selector.split(',').map(str::trim).filter(|t| !t.is_empty()) {
        let (key, value) = term.split_once('=')?;
        let key = key.trim_end_matches('=').trim();
        let value = value.trim_start_matches('=').trim();
        // Prometheus label names: what a labelmap of pod labels produces.
        let label: String = key
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        if key.ends_with('!') || label.is_empty() || value.contains(['(', ')', ' ']) {
            return None;
        }
        matchers.push(format!("{label}=\"{}\"", escape(value)));
    }
    Some(format!(
        "sum by (pod) (rate(http_server_requests_seconds_count{{{}}}[{}s]))",
        matchers.join(","),
        window.as_secs().max(1)
    ))
}

fn escape(text: &str) -> String {
    text.replace('\\', "\\\\").replace('"', "\\\"")
}

/// A Kubernetes quantity in milli-units, as metrics APIs write values.
pub fn milli_quantity(value: f64) -> String {
    format!("{}m", (value * 1000.0).round().max(0.0) as u64)
}

fn status(code: StatusCode, message: &str) -> Response {
    let reason = match code {
        StatusCode::NOT_FOUND => "NotFound",
        StatusCode::BAD_REQUEST => "BadRequest",
        _ => "InternalError",
    };
    let body = json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {},
        "status": "Failure", "message": message, "reason": reason, "code": code.as_u16()
    });
    (code, Json(body)).into_response()
}

async fn group_list() -> Json<Value> {
    Json(json!({
        "kind": "APIGroupList", "apiVersion": "v1",
        "groups": [{
            "name": GROUP,
            "versions": [{"groupVersion": format!("{GROUP}/{VERSION}"), "version": VERSION}],
            "preferredVersion": {"groupVersion": format!("{GROUP}/{VERSION}"), "version": VERSION}
        }]
    }))
}

async fn resources() -> Json<Value> {
    Json(json!({
        "kind": "APIResourceList", "apiVersion": "v1",
        "groupVersion": format!("{GROUP}/{VERSION}"),
        "resources": [{
            "name": format!("pods/{REQUEST_RATE}"), "singularName": "",
            "namespaced": true, "kind": "MetricValueList", "verbs": ["get"]
        }]
    }))
}

async fn pod_metric(
    State(adapter): State<Arc<Adapter>>,
    Path((namespace, pod, metric)): Path<(String, String, String)>,
    Query(query): Query<BTreeMap<String, String>>,
) -> Response {
    if metric != REQUEST_RATE {
        return status(
            StatusCode::NOT_FOUND,
            &format!("metric {metric} is not served (only {REQUEST_RATE})"),
        );
    }
    let selector = query.get("labelSelector").map(String::as_str).unwrap_or("");
    let Some(promql) = rate_query(&namespace, selector, adapter.window) else {
        return status(
            StatusCode::BAD_REQUEST,
            &format!("label selector {selector:?}: only k=v terms are translated"),
        );
    };
    let url = reqwest::Url::parse_with_params(
        &format!("{}/api/v1/query", adapter.prometheus.trim_end_matches('/')),
        &[("query", promql.as_str())],
    );
    let answer = match url {
        Ok(url) => adapter.http.get(url).send().await,
        Err(e) => {
            return status(
                StatusCode::INTERNAL_SERVER_ERROR,
                &format!("bad --prometheus URL: {e}"),
            )
        }
    };
    let body: Value = match answer {
        Ok(a) if a.status().is_success() => a.json().await.unwrap_or(Value::Null),
        Ok(a) => {
            return status(
                StatusCode::INTERNAL_SERVER_ERROR,
                &format!("prometheus answered {}", a.status()),
            )
        }
        Err(e) => {
            return status(
                StatusCode::INTERNAL_SERVER_ERROR,
                &format!("prometheus unreachable: {e}"),
            )
        }
    };
    let now = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    let items: Vec<Value> = body["data"]["result"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|series| {
            let name = series["metric"]["pod"].as_str()?;
            let value: f64 = series["value"][1].as_str()?.parse().ok()?;
            (pod == "*" || pod == name).then(|| {
                json!({
                    "describedObject": {"kind": "Pod", "namespace": namespace, "name": name, "apiVersion": "/v1"},
                    "metric": {"name": REQUEST_RATE},
                    "timestamp": now,
                    "windowSeconds": adapter.window.as_secs(),
                    "value": milli_quantity(value)
                })
            })
        })
        .collect();
    if pod != "*" && items.is_empty() {
        return status(
            StatusCode::NOT_FOUND,
            &format!("no {REQUEST_RATE} for pod {namespace}/{pod}"),
        );
    }
    Json(json!({
        "kind": "MetricValueList", "apiVersion": format!("{GROUP}/{VERSION}"),
        "metadata": {}, "items": items
    }))
    .into_response()
}

/// The adapter's routes.
fn router(adapter: Arc<Adapter>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/apis", get(group_list))
        .route(&format!("/apis/{GROUP}/{VERSION}"), get(resources))
        .route(
            &format!("/apis/{GROUP}/{VERSION}/namespaces/{{namespace}}/pods/{{pod}}/{{metric}}"),
            get(pod_metric),
        )
        .fallback(|| async { status(StatusCode::NOT_FOUND, "not served by this adapter") })
        .with_state(adapter)
}

/// Serves HTTPS until the process is stopped.
pub async fn serve(options: AdapterOptions) -> anyhow::Result<()> {
    let app = router(Arc::new(Adapter {
        prometheus: options.prometheus,
        window: options.window,
        http: reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(5))
            .build()?,
    }));
    let listener = tokio::net::TcpListener::bind((options.host, options.port))
        .await
        .with_context(|| format!("cannot listen on {}:{}", options.host, options.port))?;
    println!("LISTENING {}", listener.local_addr()?.port());
    crate::tls::serve(app, &options.tls_cert, &options.tls_key, listener).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_selector_becomes_label_matchers_and_what_cannot_be_translated_is_refused() {
        let window = Duration::from_secs(30);
        assert_eq!(
            rate_query("clinic", "app=hapi,app.kubernetes.io/part-of=emr", window).unwrap(),
            "sum by (pod) (rate(http_server_requests_seconds_count{namespace=\"clinic\",app=\"hapi\",app_kubernetes_io_part_of=\"emr\"}[30s]))"
        );
        assert_eq!(
            rate_query("clinic", "", window).unwrap(),
            "sum by (pod) (rate(http_server_requests_seconds_count{namespace=\"clinic\"}[30s]))"
        );
        for refused in ["app!=hapi", "app in (a,b)", "app"] {
            assert_eq!(rate_query("clinic", refused, window), None, "{refused}");
        }
    }

    #[test]
    fn values_are_milli_quantities() {
        assert_eq!(milli_quantity(82.2314), "82231m");
        assert_eq!(milli_quantity(0.0), "0m");
    }
}
