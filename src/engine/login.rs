//! Signing a user in: the OpenMRS login (Basic credentials once, then the
//! session cookie) and the bearer token (a fixed one, or Keycloak's, fetched
//! once for all users and refreshed before it expires).

use super::auth;
use super::user::{what_happened, Shared, UserState};
use crate::measure::UNKNOWN_REPLICA;
use crate::scenario::{Auth, Expect};
use reqwest::Client;
use std::sync::atomic::Ordering;
use std::time::Instant;

/// The run stopped before the step finished.
#[derive(Debug)]
pub(super) struct Stopped;

impl Shared {
    /// OpenMRS login: Basic credentials once, then the session cookie.
    /// `None` if stopped, else whether the session was accepted.
    pub(super) async fn login(
        &self,
        client: &Client,
        state: &mut UserState,
        scheduled: Instant,
    ) -> Option<bool> {
        let Auth::OpenmrsBasic {
            username,
            password,
            login_path,
        } = &self.scenario.auth
        else {
            return Some(true);
        };
        let url = self.url(login_path);
        let mut rb = client.get(url).basic_auth(
            auth::credential(username).unwrap_or_default(),
            auth::credential(password),
        );
        if state.dropped || std::mem::take(&mut state.logged_out) {
            // The jar still holds the dead JSESSIONID, and OpenMRS refuses a
            // login that carries an unknown one ("Session timed out"). A Cookie
            // header of our own keeps reqwest from adding the jar's cookies.
            rb = rb.header(reqwest::header::COOKIE, "surge_relogin=1");
        }
        let reply = self
            .exchange(self.login_index?, rb, scheduled, &self.login_expect, state)
            .await?;
        state.logged_in = reply.error.is_none();
        state.login_failure = reply.error.map(|class| {
            format!(
                "{} {}",
                auth::LOGIN_REQUEST,
                what_happened(reply.status, class)
            )
        });
        if state.logged_in {
            let replica = reply.replica.unwrap_or_else(|| UNKNOWN_REPLICA.to_owned());
            self.sessions
                .accepted(std::mem::take(&mut state.dropped), &replica);
            state.session = Some(replica);
        }
        Some(state.logged_in)
    }

    /// The bearer token for this request, fetching it if needed. `Err(Stopped)` if the run stopped first.
    pub(super) async fn bearer(
        &self,
        client: &Client,
        state: &mut UserState,
    ) -> Result<Option<String>, Stopped> {
        match &self.scenario.auth {
            Auth::Bearer { token } => Ok(auth::credential(token)),
            Auth::Keycloak {
                token_url,
                client_id,
                client_secret,
                refresh_before,
            } => {
                if let Some(token) = self.tokens.current(refresh_before.0).await {
                    return Ok(Some(token));
                }
                let mut slot = self.tokens.lock().await;
                // Another user may have fetched it while we waited.
                if let Some((token, expires)) = slot.as_ref() {
                    if Instant::now() + refresh_before.0 < *expires {
                        return Ok(Some(token.clone()));
                    }
                }
                let rb = client
                    // A path (no scheme) is on the target itself, e.g. Keycloak behind the same ingress.
                    .post(self.url(&auth::credential(token_url).unwrap_or_default()))
                    .form(&auth::token_form(client_id, client_secret));
                let expect = Expect {
                    status: vec![200],
                    ..Default::default()
                };
                let index = self.token_index.ok_or(Stopped)?;
                let reply = self
                    .exchange(index, rb, Instant::now(), &expect, state)
                    .await
                    .ok_or(Stopped)?;
                let token = match (reply.error, auth::parse_token(&reply.body)) {
                    (None, Ok((token, expires_in))) => {
                        *slot = Some((token.clone(), Instant::now() + expires_in));
                        Some(token)
                    }
                    (error, parsed) => {
                        if !self.said_auth_failed.swap(true, Ordering::Relaxed) {
                            let why = match (error, parsed) {
                                (Some(class), _) => what_happened(reply.status, class),
                                (None, Err(e)) => e,
                                (None, Ok(_)) => unreachable!("matched above"),
                            };
                            tracing::error!(
                                "{}: the token endpoint {why}; requests that go without a token count as `auth` failures",
                                auth::TOKEN_REQUEST
                            );
                        }
                        None
                    }
                };
                Ok(token)
            }
            _ => Ok(None),
        }
    }
}
