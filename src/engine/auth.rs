//! Authentication as the target expects it: OpenMRS Basic login once per user
//! (the `JSESSIONID` cookie carries the session after), a static bearer
//! token, or a Keycloak client-credentials token shared by all users and
//! refreshed before it expires. Credentials and tokens are never logged.

use crate::scenario::{Auth, Template};
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

/// Names the recorder uses for authentication requests.
pub const LOGIN_REQUEST: &str = "auth.login";
/// Name of the token request.
pub const TOKEN_REQUEST: &str = "auth.token";

/// The cached Keycloak token.
#[derive(Default)]
pub struct TokenCache {
    token: Mutex<Option<(String, Instant)>>,
}

impl TokenCache {
    /// The current token, or `None` when it must be fetched (missing, or
    /// within `refresh_before` of expiry).
    pub async fn current(&self, refresh_before: Duration) -> Option<String> {
        let guard = self.token.lock().await;
        match guard.as_ref() {
            Some((token, expires)) if Instant::now() + refresh_before < *expires => {
                Some(token.clone())
            }
            _ => None,
        }
    }

    /// Stores a token valid for `expires_in`.
    pub async fn store(&self, token: String, expires_in: Duration) {
        *self.token.lock().await = Some((token, Instant::now() + expires_in));
    }

    /// Holds the cache while one user fetches, so users do not all fetch at once.
    pub async fn lock(&self) -> tokio::sync::MutexGuard<'_, Option<(String, Instant)>> {
        self.token.lock().await
    }
}

/// Renders a credential; `None` when it cannot be (it has per-user placeholders).
pub fn credential(t: &Template) -> Option<String> {
    t.render_static().ok()
}

/// Parses a token endpoint's answer: `access_token` and `expires_in` (seconds).
pub fn parse_token(body: &[u8]) -> Result<(String, Duration), String> {
    let json: serde_json::Value =
        serde_json::from_slice(body).map_err(|_| "token answer is not JSON".to_owned())?;
    let token = json
        .get("access_token")
        .and_then(|t| t.as_str())
        .ok_or_else(|| "token answer has no access_token".to_owned())?;
    let expires_in = json
        .get("expires_in")
        .and_then(|e| e.as_u64())
        .unwrap_or(300);
    Ok((token.to_owned(), Duration::from_secs(expires_in)))
}

/// The client-credentials form a token request posts (the engine's and the
/// check before the load: one form).
pub fn token_form(client_id: &Template, client_secret: &Template) -> [(&'static str, String); 3] {
    [
        ("grant_type", "client_credentials".to_owned()),
        ("client_id", credential(client_id).unwrap_or_default()),
        (
            "client_secret",
            credential(client_secret).unwrap_or_default(),
        ),
    ]
}

/// One authentication before the load, so a scenario whose credentials never
/// work fails up front (exit 2) instead of running a load that measures
/// refusals. Keycloak: one token fetch; OpenMRS: one login. A static bearer
/// token is not tried (no endpoint says whether it is good).
/// `Err` says what the server answered, never a credential.
pub async fn preflight(scenario: &crate::scenario::Scenario) -> Result<(), String> {
    let client = super::client::client_builder(&scenario.target)
        .build()
        .map_err(|e| format!("cannot build an HTTP client: {e}"))?;
    let url = |path: &str| scenario.target.url(path);
    let (what, request) = match &scenario.auth {
        Auth::Keycloak {
            token_url,
            client_id,
            client_secret,
            ..
        } => (
            "the token endpoint",
            client
                .post(url(&credential(token_url).unwrap_or_default()))
                .form(&token_form(client_id, client_secret)),
        ),
        Auth::OpenmrsBasic {
            username,
            password,
            login_path,
        } => (
            "the login",
            client.get(url(login_path)).basic_auth(
                credential(username).unwrap_or_default(),
                credential(password),
            ),
        ),
        _ => return Ok(()),
    };
    let response = request.send().await.map_err(|e| {
        format!(
            "{what} could not be reached: {}",
            crate::scenario::redact_text(&e.to_string())
        )
    })?;
    let status = response.status().as_u16();
    let body = response.bytes().await.unwrap_or_default();
    let json: Option<serde_json::Value> = serde_json::from_slice(&body).ok();
    // An OAuth error code (`unauthorized_client`) says why without a secret.
    let oauth_error = json
        .as_ref()
        .and_then(|j| j.get("error")?.as_str().map(str::to_owned))
        .map(|e| format!(" ({e})"))
        .unwrap_or_default();
    // As the engine judges a login or token answer: 200, nothing else.
    if status != 200 {
        return Err(format!("{what} answered {status}{oauth_error}"));
    }
    match &scenario.auth {
        Auth::Keycloak { .. } => parse_token(&body).map(|_| ()).map_err(|e| format!("{what} answered {status}, but {e}")),
        _ => match json.as_ref().and_then(|j| j.get("authenticated")) {
            Some(serde_json::Value::Bool(true)) => Ok(()),
            _ => Err(format!(
                "{what} answered {status} without `authenticated: true`: the username or password is not accepted"
            )),
        },
    }
}

/// Whether this auth kind sends a login request per user.
pub fn logs_in(auth: &Auth) -> bool {
    matches!(auth, Auth::OpenmrsBasic { .. })
}

/// Whether this auth kind fetches tokens.
pub fn fetches_tokens(auth: &Auth) -> bool {
    matches!(auth, Auth::Keycloak { .. })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_keycloak_answers() {
        let (t, e) =
            parse_token(br#"{"access_token":"abc","expires_in":60,"token_type":"Bearer"}"#)
                .unwrap();
        assert_eq!((t.as_str(), e), ("abc", Duration::from_secs(60)));
        assert!(parse_token(b"{}").unwrap_err().contains("access_token"));
    }

    #[tokio::test]
    async fn a_token_near_expiry_is_refetched() {
        let cache = TokenCache::default();
        assert_eq!(cache.current(Duration::from_secs(30)).await, None);
        cache.store("t".into(), Duration::from_secs(60)).await;
        assert_eq!(
            cache.current(Duration::from_secs(30)).await.as_deref(),
            Some("t")
        );
        assert_eq!(cache.current(Duration::from_secs(90)).await, None);
    }
}
