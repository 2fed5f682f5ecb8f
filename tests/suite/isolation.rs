//! Each virtual user's cookies are its own: two users never share a
//! session, a user's cookies survive its next iteration, and a new user in
//! the open model starts with none. Shown both ways against a target of the
//! test's own that hands a new session to every request without one and
//! watches which sessions are in flight at once: a user sends one request
//! at a time, so one session in flight twice means two users share it.

use crate::common::*;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::IntoResponse;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the target saw.
#[derive(Default, Debug)]
struct Seen {
    /// Sessions handed out: one per request that came without one.
    issued: u64,
    /// Requests that carried a session.
    carried: u64,
    /// Requests that carried a session the target never handed out.
    unknown: u64,
    /// Requests that arrived while another with the same session was in flight.
    shared: u64,
    in_flight: HashMap<u64, u32>,
}

type Target = Arc<Mutex<Seen>>;

/// How long the target takes per request: long enough that users overlap.
const SERVICE: Duration = Duration::from_millis(40);

async fn work(State(seen): State<Target>, headers: HeaderMap) -> impl IntoResponse {
    let sid = headers
        .get(header::COOKIE)
        .and_then(|c| c.to_str().ok())
        .and_then(|c| c.split(';').find_map(|p| p.trim().strip_prefix("sid=")))
        .and_then(|s| s.parse::<u64>().ok());
    let Some(sid) = sid else {
        let sid = {
            let mut seen = seen.lock().unwrap();
            seen.issued += 1;
            seen.issued
        };
        tokio::time::sleep(SERVICE).await;
        return (
            StatusCode::OK,
            [(header::SET_COOKIE, format!("sid={sid}; Path=/"))],
            "new",
        )
            .into_response();
    };
    {
        let mut seen = seen.lock().unwrap();
        seen.carried += 1;
        if sid == 0 || sid > seen.issued {
            seen.unknown += 1;
        }
        let n = seen.in_flight.entry(sid).or_default();
        *n += 1;
        if *n > 1 {
            seen.shared += 1;
        }
    }
    tokio::time::sleep(SERVICE).await;
    *seen.lock().unwrap().in_flight.get_mut(&sid).unwrap() -= 1;
    (StatusCode::OK, "known").into_response()
}

async fn target() -> (String, Target, tokio::task::JoinHandle<()>) {
    let seen = Target::default();
    let app = axum::Router::new()
        .route("/work", axum::routing::get(work))
        .with_state(Arc::clone(&seen));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (url, seen, server)
}

/// A scenario of two requests per iteration; `forced_cookie` puts one
/// Cookie header on every request of every user (a faulty harness would
/// share a jar to the same effect).
fn scenario(url: &str, load: &str, forced_cookie: bool) -> String {
    let headers = if forced_cookie {
        "headers = { Cookie = \"sid=1\" }\n"
    } else {
        ""
    };
    format!(
        "[target]\nbase_url = \"{url}\"\ntimeout = \"5s\"\n\n{load}\n\
         [[personas]]\nname = \"clinician\"\nsteps = [{{ request = \"work\" }}, {{ request = \"work\" }}]\n\n\
         [requests.work]\npath = \"/work\"\n{headers}expect = {{ status = [200] }}\n"
    )
}

async fn run_against(load: &str, forced_cookie: bool) -> (surge::bundle::RunResults, Seen) {
    let (url, seen, server) = target().await;
    let dir = tempfile::tempdir().unwrap();
    let path = scenario_file(
        dir.path(),
        "isolation",
        &scenario(&url, load, forced_cookie),
    );
    let results = run(path, None, None, &dir.path().join("reports"))
        .await
        .results;
    server.abort();
    let seen = std::mem::take(&mut *seen.lock().unwrap());
    (results, seen)
}

const CLOSED: &str = "[load]\nmodel = \"closed\"\n[[load.stages]]\nusers = 4\nhold = \"3s\"\n";
const OPEN: &str = "[load]\nmodel = \"open\"\n[[load.stages]]\nrate = 40\nhold = \"3s\"\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_model_users_keep_their_own_cookies_across_iterations() {
    let _engine = engine_lock().await;
    let (r, seen) = run_against(CLOSED, false).await;
    assert_eq!(r.overall.failed, 0, "{seen:?}");
    // One session per user, handed out on its first request and carried on
    // every later one: a user's cookies survive its iterations, and no
    // user ever took another's.
    assert_eq!(seen.issued, 4, "{seen:?}");
    assert_eq!(seen.carried + seen.issued, r.overall.count, "{seen:?}");
    assert!(seen.carried > 40, "{seen:?}");
    assert_eq!((seen.shared, seen.unknown), (0, 0), "{seen:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_model_arrivals_never_carry_another_users_cookies() {
    let _engine = engine_lock().await;
    let (r, seen) = run_against(OPEN, false).await;
    assert_eq!(r.overall.failed, 0, "{seen:?}");
    assert_eq!(r.totals.arrivals, 120, "{seen:?}");
    assert_eq!(r.totals.dropped_arrivals, 0, "{seen:?}");
    // 40 arrivals/s of two 40 ms requests keep about 3 users busy: several
    // users start, each with an empty jar (one new session each) ...
    assert!(seen.issued >= 2, "{seen:?}");
    // ... and serve later arrivals in their own sessions, far fewer users
    // than arrivals.
    assert!(seen.issued < 40, "{seen:?}");
    assert_eq!(seen.carried + seen.issued, r.overall.count, "{seen:?}");
    // Each user surge says it started is one new session the target saw.
    assert_eq!(r.totals.users_started, seen.issued, "{seen:?}");
    // No session was ever in flight twice: no two users shared one.
    assert_eq!((seen.shared, seen.unknown), (0, 0), "{seen:?}");
}

/// The other way: users that do share one session (a Cookie header forced
/// on every request) are caught by the same check, in both models.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_forced_into_one_session_are_caught() {
    let _engine = engine_lock().await;
    for load in [CLOSED, OPEN] {
        let (_, seen) = run_against(load, true).await;
        assert_eq!(seen.issued, 0, "{seen:?}");
        assert!(
            seen.shared > 10,
            "one session in flight at once from several users: {seen:?}"
        );
    }
}
