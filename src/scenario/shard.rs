//! Shards: one test split over N processes (the pods of a Kubernetes
//! Indexed Job, or processes on several machines) so that the union of the
//! shards is the single-process test. Pure: the split of a scenario.
//!
//! - open model: shard `i` takes the arrivals `k ≡ i (mod N)` of the one
//!   global schedule, personas picked along that schedule, so the total rate,
//!   its ramps and the persona mix are exact over the union;
//! - closed model: each stage's users split as evenly as possible, and the
//!   personas of the largest stage's users dealt along the one global mix
//!   (user `u` plays the `u`-th pick, shard `i` holds users `u ≡ i (mod N)`),
//!   each shard's persona weights becoming its users' counts, so the union
//!   holds each persona its weight's worth;
//! - feeders: rows `k ≡ i (mod N)`, so two shards never use the same row;
//! - chaos: only shard 0 acts (it records the actions for all).

use super::{LoadPlan, Scenario};

/// Most shards in one test.
pub const MAX_SHARDS: u32 = 1000;

/// Which part of a test this process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// 0-based.
    pub index: u32,
    /// How many shards the test has.
    pub count: u32,
}

impl Default for Shard {
    /// The whole test in one process.
    fn default() -> Self {
        Shard { index: 0, count: 1 }
    }
}

impl Shard {
    /// A shard, checked: `count` in 1..=[`MAX_SHARDS`], `index < count`.
    pub fn new(index: u32, count: u32) -> Result<Shard, String> {
        if !(1..=MAX_SHARDS).contains(&count) {
            return Err(format!(
                "shard count {count} is out of range: expected 1 to {MAX_SHARDS}"
            ));
        }
        if index >= count {
            return Err(format!(
                "shard index {index} is out of range: expected 0 to {} for {count} shards",
                count - 1
            ));
        }
        Ok(Shard { index, count })
    }

    /// `I/N`, e.g. `0/3`.
    pub fn parse(text: &str) -> Result<Shard, String> {
        let (i, n) = text
            .split_once('/')
            .ok_or_else(|| format!("--shard {text:?}: expected INDEX/COUNT, e.g. 0/3"))?;
        let number = |what: &str, t: &str| {
            t.trim()
                .parse::<u32>()
                .map_err(|_| format!("--shard {text:?}: the {what} must be a whole number"))
        };
        Shard::new(number("index", i)?, number("count", n)?)
            .map_err(|e| format!("--shard {text:?}: {e}"))
    }

    /// Inside an Indexed Job: the index from `JOB_COMPLETION_INDEX` (its
    /// value given here), the count from `--shards`.
    pub fn from_job(index: Option<&str>, count: u32) -> Result<Shard, String> {
        let index = index.ok_or(
            "--shards needs JOB_COMPLETION_INDEX (set by a Kubernetes Indexed Job) for this shard's index; outside a Job give --shard INDEX/COUNT",
        )?;
        let index = index
            .trim()
            .parse::<u32>()
            .map_err(|_| format!("JOB_COMPLETION_INDEX {index:?} is not a whole number"))?;
        Shard::new(index, count)
            .map_err(|e| format!("--shards {count} with JOB_COMPLETION_INDEX {index}: {e}"))
    }

    /// Whether this is the whole test.
    pub fn is_whole(&self) -> bool {
        self.count == 1
    }

    /// Whether the `k`-th item of a global sequence (an arrival) is this
    /// shard's.
    pub fn takes(&self, k: u64) -> bool {
        k % u64::from(self.count) == u64::from(self.index)
    }

    /// This shard's share of `total` (users): as even as possible, the
    /// first `total mod N` shards one more.
    pub fn share(&self, total: usize) -> usize {
        let n = self.count as usize;
        total / n + usize::from((self.index as usize) < total % n)
    }
}

/// `--start-at`: an RFC 3339 instant (`2026-11-30T10:00:00Z`), or a delay
/// from `now` (`30s`, `2m`).
pub fn parse_start_at(
    text: &str,
    now: std::time::SystemTime,
) -> Result<std::time::SystemTime, String> {
    let text = text.trim();
    if let Ok(at) = humantime::parse_rfc3339_weak(text) {
        return Ok(at);
    }
    match super::parse_duration(text) {
        Ok(delay) => Ok(now + delay),
        Err(_) => Err(format!(
            "--start-at {text:?}: expected an RFC 3339 instant (2026-11-30T10:00:00Z) or a delay (30s)"
        )),
    }
}

/// Makes `scenario` this shard's part of the test (see the module doc).
/// Refused when a part would be empty: a stage whose users cannot give
/// each shard one, or a feeder with fewer rows than shards.
pub fn split(scenario: &mut Scenario, shard: Shard) -> Result<(), String> {
    scenario.shard = shard;
    if shard.is_whole() {
        return Ok(());
    }
    match &mut scenario.load {
        LoadPlan::Closed { stages } => {
            let peak = stages.iter().map(|s| s.users).max().unwrap_or(0);
            let mut mix = super::PersonaMix::new(scenario.personas.iter().map(|p| p.weight));
            let mut mine = vec![0u32; scenario.personas.len()];
            for user in 0..peak as u64 {
                let persona = mix.pick();
                if shard.takes(user) {
                    mine[persona] += 1;
                }
            }
            // A persona none of this shard's users plays keeps weight 0 and
            // is not started here; another shard's users play it.
            for (persona, weight) in scenario.personas.iter_mut().zip(mine) {
                persona.weight = weight;
            }
            for (i, stage) in stages.iter_mut().enumerate() {
                // Refused on every shard alike, not only on the one left
                // without a user: the parts of one test agree.
                let mine = shard.share(stage.users);
                if stage.users < shard.count as usize {
                    return Err(format!(
                        "stage {} has {} users: too few for {} shards (each needs at least one)",
                        i + 1,
                        stage.users,
                        shard.count
                    ));
                }
                stage.users = mine;
            }
        }
        LoadPlan::Open { max_users, .. } => {
            // A shard takes 1/N of the arrivals, so 1/N of the users serve them.
            *max_users = max_users.div_ceil(shard.count as usize).max(1);
        }
    }
    scenario.feeders = scenario
        .feeders
        .iter()
        .map(|f| {
            f.partition(shard.index as usize, shard.count as usize)
                .map(std::sync::Arc::new)
        })
        .collect::<Result<_, _>>()?;
    if shard.index != 0 {
        scenario.chaos = None;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shard_is_parsed_and_checked() {
        assert_eq!(Shard::parse("1/3"), Ok(Shard { index: 1, count: 3 }));
        for (text, says) in [
            (
                "3/3",
                "index 3 is out of range: expected 0 to 2 for 3 shards",
            ),
            ("0/0", "count 0 is out of range: expected 1 to 1000"),
            ("0/1001", "count 1001 is out of range"),
            ("1", "expected INDEX/COUNT"),
            ("a/3", "the index must be a whole number"),
            ("1/-3", "the count must be a whole number"),
        ] {
            let err = Shard::parse(text).unwrap_err();
            assert!(err.contains(says), "{text}: {err}");
        }
        assert_eq!(
            Shard::from_job(Some("2"), 4),
            Ok(Shard { index: 2, count: 4 })
        );
        assert!(Shard::from_job(None, 4)
            .unwrap_err()
            .contains("JOB_COMPLETION_INDEX"));
        assert!(Shard::from_job(Some("4"), 4)
            .unwrap_err()
            .contains("index 4 is out of range"));
    }

    #[test]
    fn a_start_is_an_instant_or_a_delay() {
        let now = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_000);
        assert_eq!(
            parse_start_at("30s", now),
            Ok(now + std::time::Duration::from_secs(30))
        );
        assert_eq!(
            parse_start_at("1970-01-01T00:20:00Z", now),
            Ok(std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_200))
        );
        assert!(parse_start_at("soon", now)
            .unwrap_err()
            .contains("expected an RFC 3339 instant"));
    }

    fn closed(users: &[usize]) -> Scenario {
        let stages: String = users
            .iter()
            .map(|u| format!("[[load.stages]]\nusers = {u}\nhold = \"10s\"\n"))
            .collect();
        let text = format!(
            "[scenario]\nname = \"t\"\n[target]\nbase_url = \"http://127.0.0.1:1\"\n\
             [[feeders]]\nname = \"patient\"\nfile = \"patients.csv\"\n\
             [load]\nmodel = \"closed\"\n{stages}\
             [[personas]]\nname = \"p\"\nweight = 3\nsteps = [{{ request = \"a\" }}]\n\
             [[personas]]\nname = \"q\"\nweight = 1\nsteps = [{{ request = \"a\" }}]\n\
             [requests.a]\npath = \"/${{patient.uuid}}\"\n\
             [chaos]\nbackend = \"local\"\nactions = [{{ at = \"1s\", action = \"kill-pod\" }}]\n"
        );
        let path = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scenarios/t.toml");
        Scenario::from_text(&path, &text).unwrap()
    }

    /// A closed model's users split evenly over the shards, its feeder rows partitioned, its chaos on shard 0 only; a
    /// stage that cannot give every shard a user is refused.
    #[test]
    fn a_closed_scenario_splits_into_parts_that_add_up() {
        let mut users = vec![0; 3];
        let mut weights = Vec::new();
        for i in 0..3 {
            let mut s = closed(&[10, 4]);
            split(&mut s, Shard::new(i, 3).unwrap()).unwrap();
            let LoadPlan::Closed { stages } = &s.load else {
                panic!("closed")
            };
            users[i as usize] = stages[0].users;
            assert!(stages[1].users >= 1);
            assert_eq!(s.feeders[0].file_rows(), 300);
            assert_eq!(s.chaos.is_some(), i == 0, "chaos on shard 0 only");
            assert_eq!(s.shard, Shard::new(i, 3).unwrap());
            assert_eq!(
                s.personas.iter().map(|p| p.weight).sum::<u32>() as usize,
                users[i as usize],
                "each of the shard's users plays a persona"
            );
            weights.push((s.personas[0].weight, s.personas[1].weight));
        }
        assert_eq!(users, [4, 3, 3]);
        // Over the union, the 10 users play 3:1 as the global mix deals them
        // (8 of p and 2 of q at 10 users: p p p q p p p q p p).
        let total = weights.iter().fold((0, 0), |(a, b), (p, q)| (a + p, b + q));
        assert_eq!(total, (8, 2), "{weights:?}");
        let mut few = closed(&[2]);
        let err = split(&mut few, Shard::new(0, 3).unwrap()).unwrap_err();
        assert!(
            err.contains("stage 1 has 2 users: too few for 3 shards"),
            "{err}"
        );
    }

    /// The shards' parts add up to the whole: arrivals interleaved, users
    /// split as evenly as possible.
    #[test]
    fn the_parts_add_up_to_the_whole() {
        let shards: Vec<Shard> = (0..3).map(|i| Shard::new(i, 3).unwrap()).collect();
        for k in 0..30u64 {
            assert_eq!(
                shards.iter().filter(|s| s.takes(k)).count(),
                1,
                "arrival {k}"
            );
        }
        for total in [0, 1, 2, 3, 10, 11] {
            let parts: Vec<usize> = shards.iter().map(|s| s.share(total)).collect();
            assert_eq!(parts.iter().sum::<usize>(), total, "{parts:?}");
            assert!(parts.iter().max().unwrap() - parts.iter().min().unwrap() <= 1);
        }
    }
}
