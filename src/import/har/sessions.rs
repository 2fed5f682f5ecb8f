//! Who the recording was: its sessions, told apart by their session
//! cookie (a login answered with a new one starts the next), and how they
//! logged in, as a kind the scenario's `[auth]` knows.

use super::model::{header, Entry};
use super::HarAuth;
use std::collections::HashMap;

/// How the recording logged in: Basic credentials on OpenMRS's session
/// resource, Keycloak's client-credentials grant, or a bearer token.
pub(super) fn detect_auth(
    entries: &[Entry],
    kept: &[(usize, i64, reqwest::Url)],
) -> Option<HarAuth> {
    let mut bearer = false;
    for (i, _, url) in kept {
        let e = &entries[*i];
        let authorization = header(&e.request.headers, "authorization").unwrap_or("");
        if scheme_is(authorization, "basic ")
            && e.request.method.eq_ignore_ascii_case("GET")
            && url.path().ends_with("/session")
        {
            return Some(HarAuth::OpenmrsBasic {
                login_path: url.path().to_owned(),
            });
        }
        if url.path().ends_with("/protocol/openid-connect/token") {
            let body = e
                .request
                .post_data
                .as_ref()
                .and_then(|p| p.text.as_deref())
                .unwrap_or("");
            if body.contains("grant_type=client_credentials") {
                return Some(HarAuth::Keycloak {
                    token_url: token_url(url),
                });
            }
        }
        bearer |= scheme_is(authorization, "bearer ");
    }
    bearer.then_some(HarAuth::Bearer)
}

/// Whether an `Authorization` value is of `scheme` (`"basic "`), any case;
/// a value of any bytes, never cut inside a character.
fn scheme_is(authorization: &str, scheme: &str) -> bool {
    authorization.len() > scheme.len()
        && authorization
            .get(..scheme.len())
            .is_some_and(|p| p.eq_ignore_ascii_case(scheme))
}

/// A token endpoint's URL as the scenario keeps it: no query, no fragment
/// and no credentials.
fn token_url(url: &reqwest::Url) -> String {
    let mut url = url.clone();
    url.set_query(None);
    url.set_fragment(None);
    let _ = url.set_username("");
    let _ = url.set_password(None);
    url.to_string()
}

/// Whether the entry is the login the scenario's `[auth]` makes.
pub(super) fn is_login(auth: &Option<HarAuth>, e: &Entry, url: &reqwest::Url) -> bool {
    match auth {
        Some(HarAuth::OpenmrsBasic { login_path }) => {
            url.path() == login_path
                && e.request.method.eq_ignore_ascii_case("GET")
                && header(&e.request.headers, "authorization")
                    .is_some_and(|a| scheme_is(a, "basic "))
        }
        Some(HarAuth::Keycloak {
            token_url: url_of_token,
        }) => token_url(url) == *url_of_token,
        Some(HarAuth::Bearer) | None => false,
    }
}

/// The session cookie's value a request sent, and the one its answer set.
fn session_values(e: &Entry) -> (Option<String>, Option<String>) {
    let sent = e
        .request
        .headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("cookie"))
        .flat_map(|h| h.value.split(';').map(str::to_owned).collect::<Vec<_>>())
        .chain(
            e.request
                .cookies
                .iter()
                .map(|c| format!("{}={}", c.name, c.value)),
        )
        .find_map(|pair| {
            let (n, v) = pair.trim().split_once('=')?;
            (crate::import::session_cookie(n) && !v.is_empty()).then(|| v.to_owned())
        });
    let set = e
        .response
        .headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("set-cookie"))
        .flat_map(|h| h.value.split('\n').map(str::to_owned).collect::<Vec<_>>())
        .find_map(|line| {
            let pair = line.split(';').next()?;
            let (n, v) = pair.trim().split_once('=')?;
            (crate::import::session_cookie(n)
                && !v.is_empty()
                && !line.to_ascii_lowercase().contains("max-age=0"))
            .then(|| v.to_owned())
        });
    (sent, set)
}

/// The kept entries grouped into recorded sessions (indices into `kept`,
/// in order): a request belongs to the session whose cookie it sent, or
/// that its answer started; requests before any session join the next one.
/// A login answered with a new session cookie starts a new session; any
/// other new cookie renews the one the request sent. No session cookie at
/// all: one session.
pub(super) fn sessions(entries: &[Entry], kept: &[(usize, i64, reqwest::Url)]) -> Vec<Vec<usize>> {
    let mut by_value: HashMap<String, usize> = HashMap::new();
    let mut out: Vec<Vec<usize>> = Vec::new();
    let mut pending: Vec<usize> = Vec::new();
    for (k, (i, _, _)) in kept.iter().enumerate() {
        let e = &entries[*i];
        let (sent, set) = session_values(e);
        // A login sends credentials; a bearer token on every request of a
        // session is no login.
        let login =
            header(&e.request.headers, "authorization").is_some_and(|a| scheme_is(a, "basic "));
        let known_sent = sent.as_ref().and_then(|v| by_value.get(v).copied());
        let session = match (known_sent, &set) {
            (Some(s), Some(new)) if !login || by_value.contains_key(new) => {
                by_value.insert(new.clone(), s);
                Some(s)
            }
            (Some(s), None) => Some(s),
            (_, Some(new)) => Some(*by_value.entry(new.clone()).or_insert_with(|| {
                out.push(Vec::new());
                out.len() - 1
            })),
            // A cookie from before the recording: a session of its own.
            (None, None) => sent.map(|v| {
                *by_value.entry(v).or_insert_with(|| {
                    out.push(Vec::new());
                    out.len() - 1
                })
            }),
        };
        match session {
            Some(s) => {
                out[s].append(&mut pending);
                out[s].push(k);
            }
            None => pending.push(k),
        }
    }
    if !pending.is_empty() {
        match out.last_mut() {
            Some(last) => last.append(&mut pending),
            None => out.push(pending),
        }
    }
    for s in &mut out {
        s.sort_unstable();
    }
    out
}
