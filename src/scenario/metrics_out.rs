//! Where a run's metrics go while it runs: the receivers named by
//! `--metrics-out KIND=URL` and by the scenario's `[metrics_out]` table,
//! checked once here (an http(s) URL with a host and no credentials, which
//! would be written into the bundle).

use serde::Deserialize;
use std::ops::Range;
use toml::Spanned;

/// A receiver of the run's metrics.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum MetricsTarget {
    /// A Prometheus Remote-Write 1.0 receiver (`/api/v1/write`).
    Prometheus(String),
    /// An OTLP/HTTP metrics receiver (`/v1/metrics` of a Collector,
    /// `/api/v1/otlp/v1/metrics` of Prometheus).
    Otlp(String),
}

impl MetricsTarget {
    /// Its kind, as `--metrics-out` and `[metrics_out]` name it.
    pub fn kind(&self) -> &'static str {
        match self {
            MetricsTarget::Prometheus(_) => "prometheus",
            MetricsTarget::Otlp(_) => "otlp",
        }
    }

    /// Its URL.
    pub fn url(&self) -> &str {
        match self {
            MetricsTarget::Prometheus(url) | MetricsTarget::Otlp(url) => url,
        }
    }

    /// `prometheus=URL` or `otlp=URL` (the `--metrics-out` flag); or what
    /// was expected.
    pub fn parse(text: &str) -> Result<MetricsTarget, String> {
        let (kind, url) = text.split_once('=').unwrap_or((text, ""));
        Self::of_kind(kind, url)
            .map_err(|e| format!("--metrics-out {}: {e}", super::redact_text(text)))
    }

    /// A receiver of `kind` at `url`; or what was expected (never echoing
    /// the URL, which may hold a credential).
    fn of_kind(kind: &str, url: &str) -> Result<MetricsTarget, String> {
        let url_ok = reqwest::Url::parse(url)
            .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some());
        let example = match kind {
            "prometheus" => "a Remote-Write receiver, such as http://prometheus:9090/api/v1/write",
            "otlp" => "an OTLP/HTTP metrics receiver, such as http://collector:4318/v1/metrics",
            _ => {
                return Err(
                    "expected prometheus=URL (a Remote-Write receiver such as http://prometheus:9090/api/v1/write) or otlp=URL (an OTLP/HTTP receiver such as http://collector:4318/v1/metrics)"
                        .into(),
                )
            }
        };
        if !url_ok {
            return Err(format!("expected an http(s) URL of {example}"));
        }
        if super::has_userinfo(url) {
            return Err(
                "credentials in the URL would be written into the bundle: give the receiver's URL alone"
                    .into(),
            );
        }
        Ok(match kind {
            "otlp" => MetricsTarget::Otlp(url.to_owned()),
            _ => MetricsTarget::Prometheus(url.to_owned()),
        })
    }
}

/// `[metrics_out]`: receivers by kind.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsOutDef {
    /// Prometheus Remote-Write 1.0 receivers.
    #[serde(default)]
    pub prometheus: Vec<Spanned<String>>,
    /// OTLP/HTTP metrics receivers.
    #[serde(default)]
    pub otlp: Vec<Spanned<String>>,
}

/// The receivers `[metrics_out]` names; or the place and what was expected.
pub fn compile(def: &MetricsOutDef) -> Result<Vec<MetricsTarget>, (Option<Range<usize>>, String)> {
    let mut out = Vec::new();
    let named = [("prometheus", &def.prometheus), ("otlp", &def.otlp)];
    for (kind, urls) in named {
        for url in urls {
            let target = MetricsTarget::of_kind(kind, url.get_ref())
                .map_err(|e| (Some(url.span()), format!("metrics_out.{kind}: {e}")))?;
            if out.contains(&target) {
                return Err((
                    Some(url.span()),
                    format!("metrics_out.{kind}: this receiver is named twice"),
                ));
            }
            out.push(target);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_target_is_prometheus_and_an_http_url_without_credentials() {
        assert_eq!(
            MetricsTarget::parse("prometheus=http://127.0.0.1:9090/api/v1/write"),
            Ok(MetricsTarget::Prometheus(
                "http://127.0.0.1:9090/api/v1/write".into()
            ))
        );
        let said = MetricsTarget::parse("prometheus=https://u:secret@x/api/v1/write").unwrap_err();
        assert!(
            said.contains("credentials") && !said.contains("secret"),
            "{said}"
        );
        assert!(MetricsTarget::parse("graphite=http://x")
            .unwrap_err()
            .contains("expected prometheus=URL"));
        assert!(MetricsTarget::parse("prometheus=x")
            .unwrap_err()
            .contains("expected an http(s) URL"));
        assert!(MetricsTarget::parse("prometheus=ftp://x/")
            .unwrap_err()
            .contains("expected an http(s) URL"));
        assert_eq!(
            MetricsTarget::parse("otlp=http://127.0.0.1:4318/v1/metrics"),
            Ok(MetricsTarget::Otlp(
                "http://127.0.0.1:4318/v1/metrics".into()
            ))
        );
        assert!(MetricsTarget::parse("otlp=collector:4318")
            .unwrap_err()
            .contains("OTLP/HTTP metrics receiver"));
    }

    fn with_table(table: &str) -> Result<crate::scenario::Scenario, String> {
        let text = format!(
            "[scenario]\nname = 't'\n[target]\nbase_url = 'http://127.0.0.1:1'\n\
             [load]\nmodel = 'closed'\n[[load.stages]]\nusers = 1\nhold = '1s'\n\
             [[personas]]\nname = 'p'\nsteps = [{{ request = 'a' }}]\n[requests.a]\npath = '/'\n\
             [metrics_out]\n{table}\n"
        );
        crate::scenario::Scenario::from_text(std::path::Path::new("t.toml"), &text)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn the_scenario_names_its_receivers_and_a_bad_one_is_refused_at_its_line() {
        let s = with_table("prometheus = ['http://127.0.0.1:9090/api/v1/write']").unwrap();
        assert_eq!(
            s.metrics_out,
            [MetricsTarget::Prometheus(
                "http://127.0.0.1:9090/api/v1/write".into()
            )]
        );
        assert!(with_table("").unwrap().metrics_out.is_empty());
        let said = with_table("prometheus = ['not a url']").unwrap_err();
        assert!(
            said.starts_with("t.toml:16:") && said.contains("expected an http(s) URL"),
            "{said}"
        );
        let said = with_table("prometheus = ['http://u:hunter2@h/api/v1/write']").unwrap_err();
        assert!(
            said.contains("credentials") && !said.contains("hunter2"),
            "{said}"
        );
        let said = with_table("prometheus = ['http://h/w', 'http://h/w']").unwrap_err();
        assert!(said.contains("named twice"), "{said}");
        let said = with_table("graphite = ['http://h/w']").unwrap_err();
        assert!(
            said.contains("t.toml:16:") && said.contains("graphite"),
            "{said}"
        );
        let said = with_table("prometheus = 'http://h/w'").unwrap_err();
        assert!(said.contains("t.toml:16:"), "{said}");
    }
}
