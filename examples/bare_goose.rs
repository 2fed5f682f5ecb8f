//! Bare goose against one endpoint, for `bench/run.sh`: the baseline surge's
//! own recording is compared with. Usage: bare_goose HOST PATH USERS SECONDS
use goose::config::GooseConfiguration;
use goose::prelude::*;
use std::sync::OnceLock;

static PATH: OnceLock<String> = OnceLock::new();

async fn get(user: &mut GooseUser) -> TransactionResult {
    let _ = user.get(PATH.get().unwrap()).await?;
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), GooseError> {
    let args: Vec<String> = std::env::args().collect();
    let [_, host, path, users, seconds] = args.as_slice() else {
        eprintln!("usage: bare_goose HOST PATH USERS SECONDS");
        std::process::exit(2);
    };
    PATH.set(path.clone()).unwrap();
    let mut config = GooseConfiguration::default();
    config.host = Some(host.clone());
    config.users = Some(users.parse().expect("USERS"));
    config.increase_rate = Some("1000".into());
    config.run_time = Some(seconds.clone());
    config.no_telnet = true;
    config.quiet = 1;
    config.no_print_metrics = true;
    let metrics = GooseAttack::initialize_with_config(config)?
        .register_scenario(scenario!("bare").register_transaction(transaction!(get)))
        .execute()
        .await?;
    let total: usize = metrics
        .requests
        .values()
        .map(|r| r.success_count + r.fail_count)
        .sum();
    let failed: usize = metrics.requests.values().map(|r| r.fail_count).sum();
    let secs = metrics.duration.max(1);
    println!(
        "requests={total} failed={failed} seconds={secs} rps={:.0}",
        total as f64 / secs as f64
    );
    Ok(())
}
