//! Following a user's session across replicas: whether a request carries
//! the session, and what its answer says: the same replica, a switch to
//! another, or a drop (the cluster no longer knows a session it accepted).

use super::user::{Reply, Shared, UserState};
use crate::bundle::DropEvent;
use crate::measure::UNKNOWN_REPLICA;
use crate::scenario::{Auth, OnDrop, ReplicaSource};

impl Shared {
    /// Whether a request to `url` carries the user's session cookie: the jar
    /// holds a cookie for that URL other than the balancer's sticky one, and
    /// the request sets neither its own Cookie header (reqwest then leaves
    /// the jar's out) nor its own Authorization (it authenticates itself: its
    /// 401 is about that credential, its answer no proof of the session).
    pub(super) fn carries_session_cookie(
        &self,
        state: &UserState,
        spec: &crate::scenario::RequestSpec,
        url: &str,
    ) -> bool {
        use reqwest::cookie::CookieStore as _;
        let own = |name: &str| {
            spec.headers
                .iter()
                .any(|(h, _)| h.eq_ignore_ascii_case(name))
        };
        if own("cookie") || own("authorization") {
            return false;
        }
        let (Some(jar), Ok(url)) = (&state.jar, reqwest::Url::parse(url)) else {
            // No jar of ours (a client surge did not build): assume it does.
            return true;
        };
        let sticky = match &self.scenario.target.replica {
            ReplicaSource::Cookie(name) => Some(name.as_str()),
            _ => None,
        };
        jar.cookies(&url).is_some_and(|header| {
            header.to_str().unwrap_or_default().split(';').any(|pair| {
                let name = pair.split('=').next().unwrap_or_default().trim();
                !name.is_empty() && Some(name) != sticky
            })
        })
    }

    /// Updates the user's session from an answer that carried it: a drop, a
    /// replica switch, or (for token auth) the first accepted request.
    pub(super) fn follow_session(&self, state: &mut UserState, index: usize, reply: &Reply) {
        let Some(status) = reply.status else { return };
        let Some(last) = state.session.clone() else {
            let token_auth = matches!(
                self.scenario.auth,
                Auth::Bearer { .. } | Auth::Keycloak { .. }
            );
            if token_auth && reply.error.is_none() {
                let replica = reply
                    .replica
                    .clone()
                    .unwrap_or_else(|| UNKNOWN_REPLICA.to_owned());
                self.sessions
                    .accepted(std::mem::take(&mut state.dropped), &replica);
                state.session = Some(replica);
            }
            return;
        };
        let rules = &self.scenario.session;
        let location = reply
            .headers
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok());
        let answered_by = reply
            .replica
            .clone()
            .unwrap_or_else(|| UNKNOWN_REPLICA.to_owned());
        if rules.is_unauthenticated(status, location, &reply.body, rules.probe == Some(index)) {
            self.sessions.dropped(DropEvent {
                at_s: self.recorder.started().elapsed().as_secs_f64(),
                user: state.id,
                request: self.scenario.requests[index].name.clone(),
                before: last,
                after: answered_by,
                status,
                during_chaos: false,
            });
            state.session = None;
            state.logged_in = false;
            state.dropped = true;
            state.stopped = rules.on_drop == OnDrop::Stop;
        } else if reply.replica.is_some() && answered_by != last {
            self.sessions.switched();
            state.session = Some(answered_by);
        }
    }
}
