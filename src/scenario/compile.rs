//! From the file's model to the specs: each part of a scenario file
//! compiled and checked (its target, auth, load, requests, repeats,
//! read-back rules, captures and placeholders), every problem located in the
//! file where it can be.

use super::*;

/// The most users an open model starts when the file does not say: enough
/// for each arrival to take 2 s at the peak rate, and at least 10. Slower
/// than that, arrivals drop — which is the saturation signal, not a fault.
/// Users start only as arrivals need them, so a generous cap costs nothing.
pub(super) fn default_pool(peak_rate: f64) -> usize {
    ((peak_rate * 2.0).ceil() as usize).clamp(10, limits::MAX_USERS)
}

pub(super) fn list<'a>(names: impl Iterator<Item = &'a String>) -> String {
    let mut names: Vec<&str> = names.map(String::as_str).collect();
    names.sort_unstable();
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}

/// The span of a `[name]` table header, for errors about the table as a whole.
pub(super) fn find_table(text: &str, name: &str) -> Option<std::ops::Range<usize>> {
    let header = format!("[{name}]");
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        if line.trim_start().starts_with(&header) {
            return Some(offset..offset + line.len());
        }
        offset += line.len();
    }
    None
}

/// Where `needle` is first written inside the `[name]` table (its
/// sub-tables included), for an error about one value in it.
pub(super) fn find_in_table(
    text: &str,
    name: &str,
    needle: &str,
) -> Option<std::ops::Range<usize>> {
    let start = find_table(text, name)?.start;
    let sub = format!("[{name}.");
    let mut offset = start;
    for (n, line) in text[start..].split_inclusive('\n').enumerate() {
        let head = line.trim_start();
        if n > 0 && head.starts_with('[') && !head.starts_with(&sub) {
            break;
        }
        if let Some(at) = line.find(needle) {
            return Some(offset + at..offset + at + needle.len());
        }
        offset += line.len();
    }
    None
}

/// An error message with the place it is about, when known.
pub(super) type Located = (Option<Range<usize>>, String);

pub(super) fn compile_target(t: &model::Target) -> Result<TargetSpec, Located> {
    let base = t.base_url.get_ref();
    let here = Some(t.base_url.span());
    let url = reqwest::Url::parse(base)
        .map_err(|e| (here.clone(), format!("target.base_url {base:?} is not a URL ({e}): expected e.g. \"http://127.0.0.1:8080\"")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err((
            here,
            format!(
                "target.base_url must be http or https, not {}",
                url.scheme()
            ),
        ));
    }
    let replica = match (&t.replica_header, &t.replica_cookie) {
        (Some(_), Some(_)) => {
            return Err((
                None,
                "give target.replica_header or target.replica_cookie, not both".into(),
            ))
        }
        (Some(h), None) => ReplicaSource::Header(h.to_ascii_lowercase()),
        (None, Some(c)) => ReplicaSource::Cookie(c.clone()),
        (None, None) => ReplicaSource::Unknown,
    };
    Ok(TargetSpec {
        base_url: base.trim_end_matches('/').to_owned(),
        replica,
        tls_verify: t.tls_verify.as_ref().is_none_or(|v| *v.get_ref()),
        timeout: t.timeout.0,
        control: t.control.as_ref().map(|c| c.get_ref().clone()),
    })
}

/// An auth field: its name, where it was written (if it was), and the kinds that use it.
type AuthField<'a> = (&'a str, Option<Range<usize>>, &'a [AuthKind]);

pub(super) fn compile_auth(def: AuthDef) -> Result<Auth, Located> {
    let kind = def.kind;
    let name = match kind {
        AuthKind::None => "none",
        AuthKind::OpenmrsBasic => "openmrs-basic",
        AuthKind::Bearer => "bearer",
        AuthKind::Keycloak => "keycloak",
    };
    // Every field a kind does not use is an error, not silently ignored.
    let fields: [AuthField; 8] = [
        (
            "username",
            def.username.as_ref().map(|f| f.span()),
            &[AuthKind::OpenmrsBasic],
        ),
        (
            "password",
            def.password.as_ref().map(|f| f.span()),
            &[AuthKind::OpenmrsBasic],
        ),
        (
            "login_path",
            def.login_path.as_ref().map(|f| f.span()),
            &[AuthKind::OpenmrsBasic],
        ),
        (
            "token",
            def.token.as_ref().map(|f| f.span()),
            &[AuthKind::Bearer],
        ),
        (
            "token_url",
            def.token_url.as_ref().map(|f| f.span()),
            &[AuthKind::Keycloak],
        ),
        (
            "client_id",
            def.client_id.as_ref().map(|f| f.span()),
            &[AuthKind::Keycloak],
        ),
        (
            "client_secret",
            def.client_secret.as_ref().map(|f| f.span()),
            &[AuthKind::Keycloak],
        ),
        (
            "refresh_before",
            def.refresh_before.as_ref().map(|f| f.span()),
            &[AuthKind::Keycloak],
        ),
    ];
    for (field, span, kinds) in &fields {
        if span.is_some() && !kinds.contains(&kind) {
            return Err((
                span.clone(),
                format!("auth field `{field}` is not used by auth kind `{name}`"),
            ));
        }
    }
    let need = |field: Option<toml::Spanned<Template>>, what: &str| {
        field
            .map(toml::Spanned::into_inner)
            .ok_or_else(|| (None, format!("auth kind `{name}` needs `{what}`")))
    };
    Ok(match kind {
        AuthKind::None => Auth::None,
        AuthKind::OpenmrsBasic => Auth::OpenmrsBasic {
            username: need(def.username, "username")?,
            password: need(def.password, "password")?,
            login_path: def
                .login_path
                .map(toml::Spanned::into_inner)
                .unwrap_or_else(|| "/openmrs/ws/rest/v1/session".to_owned()),
        },
        AuthKind::Bearer => Auth::Bearer {
            token: need(def.token, "token")?,
        },
        AuthKind::Keycloak => Auth::Keycloak {
            token_url: need(def.token_url, "token_url")?,
            client_id: need(def.client_id, "client_id")?,
            client_secret: need(def.client_secret, "client_secret")?,
            refresh_before: def
                .refresh_before
                .map(toml::Spanned::into_inner)
                .unwrap_or(Dur(Duration::from_secs(30))),
        },
    })
}

pub(super) fn compile_verify(def: &model::VerifyDef) -> Result<VerifySpec, Located> {
    let mut replicas: Vec<DirectReplica> = Vec::new();
    for entry in &def.replicas {
        let at = |e: String| (Some(entry.span()), e);
        let r = entry.get_ref();
        let url = r.url.as_str();
        let parsed = reqwest::Url::parse(url)
            .map_err(|e| at(format!("verify.replicas: {url:?} is not a URL ({e})")))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(at(format!(
                "verify.replicas: {url:?} must be http or https"
            )));
        }
        if let Some(name) = &r.answers_as {
            if name.trim().is_empty() || name.chars().count() > super::limits::MAX_NAME {
                return Err(at(format!(
                    "verify.replicas: answers_as must be the replica header's or cookie's value for this replica, 1 to {} characters",
                    super::limits::MAX_NAME
                )));
            }
            if replicas
                .iter()
                .any(|o| o.answers_as.as_deref() == Some(name.as_str()))
            {
                return Err(at(format!(
                    "verify.replicas: two replicas answer as {name:?}; each replica has its own value"
                )));
            }
        }
        let url = url.trim_end_matches('/').to_owned();
        if replicas.iter().any(|o| o.url == url) {
            return Err(at(format!("verify.replicas: {url:?} is listed twice")));
        }
        replicas.push(DirectReplica {
            url,
            answers_as: r.answers_as.clone(),
        });
    }
    if def.poll.0.is_zero() {
        return Err((None, "verify.poll must be more than zero".into()));
    }
    let budget = *def.budget.get_ref();
    if !(0.01..=100.0).contains(&budget) {
        return Err((
            Some(def.budget.span()),
            format!("verify.budget: {budget} is out of range: read-backs per request of the scenario's own, 0.01 to 100"),
        ));
    }
    Ok(VerifySpec {
        replicas,
        visible_within: def.visible_within.0,
        poll: def.poll.0,
        through_balancer: def.through_balancer,
        audit: def.audit,
        budget,
    })
}

pub(super) fn compile_session(
    def: &SessionDef,
    requests: &HashMap<String, usize>,
) -> Result<SessionRules, Located> {
    let (statuses, redirect, probe_json) = match def.preset {
        SessionPreset::Openmrs => (
            vec![401, 403],
            "login",
            vec![("authenticated".to_owned(), serde_json::Value::Bool(false))],
        ),
        SessionPreset::Keycloak => (vec![401, 403], "/protocol/openid-connect/auth", vec![]),
    };
    let probe = match &def.probe {
        Some(name) => Some(*requests.get(name.get_ref()).ok_or_else(|| {
            (
                Some(name.span()),
                format!(
                    "session.probe names request `{}`, which is not defined under [requests]",
                    name.get_ref()
                ),
            )
        })?),
        None => None,
    };
    let probe_unauthenticated = match &def.probe_unauthenticated {
        Some(map) => map
            .iter()
            .map(|(k, v)| {
                json_path::parse(k)
                    .map_err(|e| (None, format!("session.probe_unauthenticated: {e}")))?;
                Ok((
                    k.clone(),
                    serde_json::to_value(v).map_err(|e| (None, e.to_string()))?,
                ))
            })
            .collect::<Result<_, Located>>()?,
        None => probe_json,
    };
    Ok(SessionRules {
        drop_statuses: def.drop_statuses.clone().unwrap_or(statuses),
        login_redirect: Some(
            def.login_redirect
                .clone()
                .unwrap_or_else(|| redirect.to_owned()),
        )
        .filter(|r| !r.is_empty()),
        probe,
        probe_unauthenticated,
        on_drop: def.on_drop,
    })
}

pub(super) fn compile_load(load: &LoadDef) -> Result<LoadPlan, Located> {
    if load.stages.is_empty() {
        return Err((
            None,
            "load has no stages: add [[load.stages]] with rate (open) or users (closed), and hold"
                .into(),
        ));
    }
    let mut open = Vec::new();
    let mut closed = Vec::new();
    // Where the first open stage's rate is: a plan of quiet stages only is
    // refused there.
    let mut first_rate = None;
    for (i, stage) in load.stages.iter().enumerate() {
        let here = Some(stage.span());
        let s = stage.get_ref();
        let n = i + 1;
        if s.hold.get_ref().0.is_zero() {
            return Err((
                Some(s.hold.span()),
                format!("load stage {n}: hold must be more than zero"),
            ));
        }
        match (load.model, &s.rate, &s.users) {
            (LoadModel::Open, Some(rate), None) => {
                let r = *rate.get_ref();
                first_rate = first_rate.or(Some(rate.span()));
                limits::check_stage_rate(&format!("load stage {n}: rate"), r).map_err(|e| (Some(rate.span()), e))?;
                open.push(OpenStage { rate: r, ramp: s.ramp, hold: *s.hold.get_ref() });
            }
            (LoadModel::Closed, None, Some(users)) => {
                limits::check_users(&format!("load stage {n}: users"), *users.get_ref())
                    .map_err(|e| (Some(users.span()), e))?;
                closed.push(ClosedStage { users: *users.get_ref(), ramp: s.ramp, hold: *s.hold.get_ref() });
            }
            (LoadModel::Open, _, _) => return Err((here, format!("load stage {n}: the open model needs `rate` (arrivals per second) and no `users`"))),
            (LoadModel::Closed, _, _) => return Err((here, format!("load stage {n}: the closed model needs `users` and no `rate`"))),
        }
    }
    let total: Duration = load
        .stages
        .iter()
        .map(|s| s.get_ref().ramp.0 + s.get_ref().hold.get_ref().0)
        .sum();
    limits::check_duration("the whole load (all stages)", total).map_err(|e| (None, e))?;
    match load.model {
        LoadModel::Open => {
            let peak = open.iter().map(|s| s.rate).fold(0.0, f64::max);
            if peak <= 0.0 {
                return Err((
                    first_rate,
                    "every load stage has rate 0: nothing would arrive (a stage of rate 0 is a quiet spell between others)".into(),
                ));
            }
            let max_users = match &load.max_users {
                Some(m) => limits::check_users("load.max_users", *m.get_ref())
                    .map_err(|e| (Some(m.span()), e))?,
                None => default_pool(peak),
            };
            let queue_timeout = load.queue_timeout.map(|q| q.0).unwrap_or_default();
            let arrivals = match (load.arrivals.as_ref().map(|a| *a.get_ref()), &load.seed) {
                (Some(ArrivalsDef::Poisson), seed) => ArrivalProcess::Poisson {
                    seed: seed.as_ref().map_or(DEFAULT_SEED, |s| *s.get_ref()),
                },
                (_, Some(seed)) => {
                    return Err((
                        Some(seed.span()),
                        "load.seed seeds Poisson arrivals: add arrivals = \"poisson\", or remove the seed".into(),
                    ))
                }
                (Some(ArrivalsDef::Uniform) | None, None) => ArrivalProcess::Uniform,
            };
            Ok(LoadPlan::Open {
                stages: open,
                max_users,
                queue_timeout,
                arrivals,
            })
        }
        LoadModel::Closed => {
            if let Some(m) = &load.max_users {
                return Err((
                    Some(m.span()),
                    "load.max_users is for the open model; the closed model sets users per stage"
                        .into(),
                ));
            }
            if load.queue_timeout.is_some() {
                return Err((None, "load.queue_timeout is for the open model".into()));
            }
            if let Some(a) = &load.arrivals {
                return Err((
                    Some(a.span()),
                    "load.arrivals is for the open model: closed-model users arrive by their think time".into(),
                ));
            }
            if let Some(s) = &load.seed {
                return Err((
                    Some(s.span()),
                    "load.seed is for the open model's Poisson arrivals".into(),
                ));
            }
            Ok(LoadPlan::Closed { stages: closed })
        }
    }
}

pub(super) fn read_fixture(fixtures: &Path, file: &str) -> Result<Vec<u8>, String> {
    let path = fixtures.join(file);
    std::fs::read(&path).map_err(|e| format!("cannot read fixture {}: {e}", resolved(&path)))
}

/// A path as written and where it really points (`../fixtures/x.csv,
/// resolved to /srv/surge/fixtures/x.csv`): a relative path is resolved
/// against the scenario's folder, not the folder surge runs in, and an
/// error must say which file was looked for.
pub(crate) fn resolved(path: &Path) -> String {
    let parent = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let full = match (parent.canonicalize(), path.file_name()) {
        (Ok(dir), Some(name)) => dir.join(name),
        _ => std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf()),
    };
    format!("{} (resolved to {})", path.display(), full.display())
}

pub(super) fn compile_repeat(
    step: &model::StepDef,
    captured: &BTreeSet<&str>,
) -> Result<Repeat, Located> {
    use toml::Spanned;
    let max = step.max.unwrap_or(DEFAULT_REPEAT_MAX);
    if max == 0 {
        return Err((
            Some(step.request.span()),
            "max = 0 would never send the request: expected 1 or more".into(),
        ));
    }
    if max > limits::MAX_REPEAT {
        return Err((
            Some(step.request.span()),
            format!(
                "max = {max} is out of range: expected 1 to {}",
                limits::MAX_REPEAT
            ),
        ));
    }
    let var = |v: &Spanned<String>, what: &str| -> Result<String, Located> {
        let name = v.get_ref();
        if captured.contains(name.as_str()) {
            Ok(name.clone())
        } else {
            Err((
                Some(v.span()),
                format!("{what} = \"{name}\": no request captures `{name}` (add capture = {{ {name} = \"json.path\" }})"),
            ))
        }
    };
    match (&step.for_each, &step.while_) {
        (Some(_), Some(w)) => Err((
            Some(w.span()),
            "a step takes for_each or while, not both".into(),
        )),
        (Some(v), None) => Ok(Repeat::ForEach {
            var: var(v, "for_each")?,
            max,
        }),
        (None, Some(v)) => Ok(Repeat::While {
            var: var(v, "while")?,
            max,
        }),
        (None, None) if step.max.is_some() => Err((
            Some(step.request.span()),
            "max applies only with for_each or while".into(),
        )),
        (None, None) => Ok(Repeat::Once),
    }
}
