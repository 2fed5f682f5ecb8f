//! Command-line changes to a scenario — its target, auth, load
//! (`--rate`, `--users`, `--duration`, `--arrivals`, `--think-scale`,
//! `--persona`), replicas and thresholds — checked as the file is, all here.

use super::*;

/// Every change the command line makes to a scenario.
#[derive(Debug, Clone, Copy)]
pub struct CommandLine<'a> {
    /// `--target`: the base URL to drive instead of the file's.
    pub target: Option<&'a str>,
    /// `--no-auth`: send no credentials.
    pub no_auth: bool,
    /// The load's changes.
    pub load: &'a LoadOverride,
    /// `--replica URL | NAME=URL`, each.
    pub replicas: &'a [String],
    /// `--threshold NAME=EXPRESSION`, each.
    pub thresholds: &'a [String],
}

/// Why a command-line change cannot apply; each names its flag.
#[allow(missing_docs)] // the fields are named for what they hold
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum OverrideError {
    /// Not a URL at all.
    #[error("{flag} {shown:?} is not a URL: {why}")]
    NotAUrl {
        flag: &'static str,
        shown: String,
        why: String,
    },
    /// A URL with a user name or password: seen by every process list.
    #[error("{flag} {shown:?} carries a user name or password: give credentials in the scenario's [auth] instead, from the environment, e.g. password = \"${{env:SURGE_PASSWORD}}\"")]
    Userinfo { flag: &'static str, shown: String },
    /// A URL that is not http or https.
    #[error("{flag} must be http or https, not {scheme}")]
    Scheme { flag: &'static str, scheme: String },
    /// `--threshold` without `=`.
    #[error("--threshold {spec:?}: expected NAME=EXPRESSION, e.g. 'search_patient.p95=<800ms'")]
    ThresholdShape { spec: String },
    /// A threshold the scenario cannot judge.
    #[error("--threshold {spec:?}: {error}")]
    Threshold {
        spec: String,
        error: threshold::ThresholdError,
    },
    /// A zero `--duration`.
    #[error("duration must be more than zero")]
    ZeroDuration,
    /// Both load models at once.
    #[error("give --rate (open model) or --users (closed model), not both")]
    RateAndUsers,
    /// `--arrivals` on a closed model.
    #[error("--arrivals is for the open model (give --rate, or an open-model scenario)")]
    ArrivalsOnClosed,
    /// `--persona` not `NAME=WEIGHT`.
    #[error(
        "--persona {spec:?}: expected NAME=WEIGHT with a weight from 0 to {max}, e.g. doctor=3"
    )]
    PersonaShape { spec: String, max: u32 },
    /// `--persona` naming no persona.
    #[error("--persona {spec:?}: no persona `{name}` (the scenario has: {personas})")]
    UnknownPersona {
        spec: String,
        name: String,
        personas: String,
    },
    /// Every persona weighted 0.
    #[error("--persona left no persona with a weight above 0")]
    NoPersonaLeft,
    /// `--think-scale` out of range.
    #[error("--think-scale {scale}: expected a factor from 0 to 1000")]
    ThinkScale { scale: f64 },
    /// A number beyond its limit, or generated bodies beyond memory, as the
    /// file's own checks word it.
    #[error("{0}")]
    Limit(String),
}

/// An http(s) base URL from the command line, without a trailing slash.
/// One with a user name or password is refused: a command line is seen by
/// every process list and shell history, and would silently override the
/// scenario's auth.
fn http_base(flag: &'static str, text: &str) -> Result<String, OverrideError> {
    let shown = redact_text(text);
    let url = reqwest::Url::parse(text).map_err(|e| OverrideError::NotAUrl {
        flag,
        shown: shown.clone(),
        why: e.to_string(),
    })?;
    if has_userinfo(text) {
        return Err(OverrideError::Userinfo { flag, shown });
    }
    if !matches!(url.scheme(), "http" | "https") {
        return Err(OverrideError::Scheme {
            flag,
            scheme: url.scheme().to_owned(),
        });
    }
    Ok(text.trim_end_matches('/').to_owned())
}

impl Scenario {
    /// Applies every change the command line makes.
    pub fn apply_command_line(&mut self, c: CommandLine<'_>) -> Result<(), OverrideError> {
        if let Some(target) = c.target {
            self.target.base_url = http_base("--target", target)?;
        }
        if c.no_auth {
            self.auth = Auth::None;
        }
        self.apply_override(c.load)?;
        for replica in c.replicas {
            let (answers_as, url) = DirectReplica::parse_arg(replica);
            let url = http_base("--replica", url)?;
            if self.verify.replicas.iter().all(|r| r.url != url) {
                self.verify.replicas.push(DirectReplica {
                    url,
                    answers_as: answers_as.map(str::to_owned),
                });
            }
        }
        let names: Vec<String> = self.requests.iter().map(|r| r.name.clone()).collect();
        let requests: Vec<&str> = names.iter().map(String::as_str).collect();
        for spec in c.thresholds {
            let (name, expression) = spec
                .split_once('=')
                .ok_or_else(|| OverrideError::ThresholdShape { spec: spec.clone() })?;
            let t = threshold::parse(name.trim(), expression, &requests).map_err(|error| {
                OverrideError::Threshold {
                    spec: spec.clone(),
                    error,
                }
            })?;
            self.thresholds.retain(|old| old.name != t.name);
            self.thresholds.push(t);
        }
        Ok(())
    }

    /// Applies `--rate`, `--users`, `--duration`, `--arrivals`, `--persona` and `--think-scale`.
    pub fn apply_override(&mut self, o: &LoadOverride) -> Result<(), OverrideError> {
        let duration = o.duration.unwrap_or_else(|| self.load.duration());
        if duration.is_zero() {
            return Err(OverrideError::ZeroDuration);
        }
        limits::check_duration("--duration", duration).map_err(OverrideError::Limit)?;
        let hold = Dur(duration);
        match (o.rate, o.users) {
            (Some(_), Some(_)) => return Err(OverrideError::RateAndUsers),
            (Some(rate), None) => {
                limits::check_rate("--rate", rate).map_err(OverrideError::Limit)?;
                let (max_users, queue_timeout, arrivals) = match &self.load {
                    LoadPlan::Open {
                        max_users,
                        queue_timeout,
                        arrivals,
                        ..
                    } => (
                        (*max_users).max(default_pool(rate)),
                        *queue_timeout,
                        *arrivals,
                    ),
                    LoadPlan::Closed { .. } => {
                        (default_pool(rate), Duration::ZERO, ArrivalProcess::Uniform)
                    }
                };
                self.load = LoadPlan::Open {
                    stages: vec![OpenStage {
                        rate,
                        ramp: Dur::default(),
                        hold,
                    }],
                    max_users,
                    queue_timeout,
                    arrivals,
                };
            }
            (None, Some(users)) => {
                limits::check_users("--users", users).map_err(OverrideError::Limit)?;
                self.load = LoadPlan::Closed {
                    stages: vec![ClosedStage {
                        users,
                        ramp: Dur::default(),
                        hold,
                    }],
                };
            }
            (None, None) if o.duration.is_some() => {
                // Keep the shape, stretch or shrink it to the asked length.
                let scale = duration.as_secs_f64() / self.load.duration().as_secs_f64();
                let stretch = |d: &mut Dur| d.0 = d.0.mul_f64(scale);
                match &mut self.load {
                    LoadPlan::Open { stages, .. } => stages.iter_mut().for_each(|s| {
                        stretch(&mut s.ramp);
                        stretch(&mut s.hold)
                    }),
                    LoadPlan::Closed { stages } => stages.iter_mut().for_each(|s| {
                        stretch(&mut s.ramp);
                        stretch(&mut s.hold)
                    }),
                }
            }
            (None, None) => {}
        }
        if let Some(process) = o.arrivals {
            match &mut self.load {
                LoadPlan::Open { arrivals, .. } => *arrivals = process,
                LoadPlan::Closed { .. } => return Err(OverrideError::ArrivalsOnClosed),
            }
        }
        for spec in &o.persona_weights {
            let (name, weight) = spec
                .split_once('=')
                .and_then(|(n, w)| Some((n.trim(), w.trim().parse::<u32>().ok()?)))
                .filter(|(_, w)| *w <= limits::MAX_WEIGHT)
                .ok_or_else(|| OverrideError::PersonaShape {
                    spec: spec.clone(),
                    max: limits::MAX_WEIGHT,
                })?;
            let names = list(self.personas.iter().map(|p| &p.name));
            let persona = self
                .personas
                .iter_mut()
                .find(|p| p.name == name)
                .ok_or_else(|| OverrideError::UnknownPersona {
                    spec: spec.clone(),
                    name: name.to_owned(),
                    personas: names,
                })?;
            persona.weight = weight;
        }
        self.personas.retain(|p| p.weight > 0);
        if self.personas.is_empty() {
            return Err(OverrideError::NoPersonaLeft);
        }
        if let Some(scale) = o.think_scale {
            if !(0.0..=1000.0).contains(&scale) {
                return Err(OverrideError::ThinkScale { scale });
            }
            for step in self.personas.iter_mut().flat_map(|p| p.steps.iter_mut()) {
                step.think.min = step.think.min.mul_f64(scale);
                step.think.max = step.think.max.mul_f64(scale);
            }
        }
        self.check_generated_memory().map_err(OverrideError::Limit)
    }
}
