//! Bare reqwest against one endpoint, for `bench/run.sh`: the HTTP client
//! surge's users send with, and nothing else (no user model, no recording,
//! no checks). Each of USERS tasks has its own client (own connection and
//! cookie jar, as a surge user does) and sends GET after GET, reading each
//! body to the end, for SECONDS. Usage: bare_reqwest URL USERS SECONDS
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, url, users, seconds] = args.as_slice() else {
        eprintln!("usage: bare_reqwest URL USERS SECONDS");
        std::process::exit(2);
    };
    let users: usize = users.parse().expect("USERS is a count");
    let seconds: u64 = seconds.parse().expect("SECONDS is a count");
    let url = reqwest::Url::parse(url).expect("URL parses");
    let (done, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let end = Instant::now() + Duration::from_secs(seconds);
    let tasks: Vec<_> = (0..users)
        .map(|_| {
            let (url, done, failed) = (url.clone(), Arc::clone(&done), Arc::clone(&failed));
            tokio::spawn(async move {
                let client = reqwest::Client::builder()
                    .cookie_store(true)
                    .timeout(Duration::from_secs(60))
                    .build()
                    .expect("a client");
                while Instant::now() < end {
                    let ok = match client.get(url.clone()).send().await {
                        Ok(r) => r.bytes().await.is_ok(),
                        Err(_) => false,
                    };
                    let counter = if ok { &done } else { &failed };
                    counter.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for task in tasks {
        let _ = task.await;
    }
    let (ok, bad) = (done.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    println!(
        "requests={} failed={bad} seconds={seconds} rps={:.0}",
        ok + bad,
        (ok + bad) as f64 / seconds as f64
    );
}
