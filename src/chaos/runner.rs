//! Carries out a chaos timetable beside the load: each action at its time,
//! within the caps; for each, a watch until the replicas are back; all along,
//! the workload's replica counts (and the HPA's) on the run's timeline, and
//! (when asked) the pods' addresses for direct read-backs.
//!
//! An API error surge does not understand stops the chaos — never the load.

use super::recovery::{monitor, watch_recovery, Recovery};
use super::run_end::{RunEnd, LET_FINISH};
use super::{Backend, ChaosError, Pod};
use crate::bundle::{ChaosEvent, ChaosReport, Outcome, ReplicaCount};
use crate::measure::Recorder;
use crate::scenario::chaos::{timetable, Action, ChaosPlan, Pick};
use crate::scenario::threshold::{Metric, RequestStat};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// The interval between pod lists when no pod watch brings the changes.
pub(super) const POLL: Duration = Duration::from_millis(200);
/// How long an exec action may run.
const EXEC_LIMIT: Duration = Duration::from_secs(60);

/// A chaos run ready to go: the plan, authorised, and its backend.
pub struct Chaos {
    /// The plan.
    pub plan: ChaosPlan,
    /// Pod backend (None when every action is `exec`).
    pub backend: Option<Backend>,
    /// Namespace and selector, for the report.
    pub scope: String,
    /// Read uploads back straight from the pods behind the selector; the
    /// string is the path prefix on a pod.
    pub discover_replicas: Option<String>,
    /// The workload, e.g. `deployment/openmrs`, for the report.
    pub workload: Option<String>,
}

/// What the runner hands back: the report and, per event, the recorder mark.
pub struct Ran {
    /// The report (impact not yet filled in).
    pub report: ChaosReport,
    /// Recorder mark of each event, by event index.
    pub marks: Vec<Option<usize>>,
}

pub(super) struct Log {
    pub(super) events: Mutex<Vec<ChaosEvent>>,
    pub(super) marks: Mutex<Vec<Option<usize>>>,
    pub(super) counts: Mutex<Vec<ReplicaCount>>,
    pub(super) startups: Mutex<Vec<f64>>,
    pub(super) started: Instant,
    /// The load, whose recorder counts each event as it is logged.
    pub(super) load: Arc<dyn LoadView>,
}

impl Log {
    fn now_s(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }

    fn push(&self, event: ChaosEvent, mark: Option<usize>) -> usize {
        self.load
            .recorder()
            .chaos_event(&event.action, event.outcome.as_str());
        let mut events = self.events.lock().unwrap();
        events.push(event);
        self.marks.lock().unwrap().push(mark);
        events.len() - 1
    }

    /// The HPA's current and desired replicas as last read.
    pub(super) fn last_hpa(&self) -> (Option<u32>, Option<u32>) {
        self.counts
            .lock()
            .unwrap()
            .last()
            .map(|l| (l.hpa_current, l.hpa_desired))
            .unwrap_or_default()
    }

    pub(super) fn count(&self, mut c: ReplicaCount) {
        let mut counts = self.counts.lock().unwrap();
        let same = counts.last().is_some_and(|l| {
            (l.desired, l.ready, l.hpa_current, l.hpa_desired)
                == (c.desired, c.ready, c.hpa_current, c.hpa_desired)
        });
        if !same {
            c.at_s = self.now_s();
            counts.push(c);
        }
    }
}

/// What chaos reads from the running load and tells it, without knowing
/// the engine that runs it (the engine implements this).
pub trait LoadView: Send + Sync {
    /// The run's recorder: when the load began, and marks on its timeline.
    fn recorder(&self) -> &Recorder;
    /// Live sessions per replica, to say whose users a kill affects.
    fn sessions_by_replica(&self) -> BTreeMap<String, u64>;
    /// Read uploads back straight from these replica URLs from now on
    /// (the pods' current addresses).
    fn read_back_from(&self, replicas: Vec<crate::measure::replicas::ListedReplica>);
}

/// Runs the chaos beside the load until `stop`; `length` is the planned run.
pub async fn run(
    chaos: Chaos,
    shared: Arc<dyn LoadView>,
    length: Duration,
    stop: CancellationToken,
) -> Ran {
    while !shared.recorder().has_begun() {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(10)) => {}
            _ = stop.cancelled() => break,
        }
    }
    let started = shared.recorder().started();
    let log = Arc::new(Log {
        events: Mutex::default(),
        marks: Mutex::default(),
        counts: Mutex::default(),
        startups: Mutex::default(),
        started,
        load: Arc::clone(&shared),
    });
    let backend = chaos.backend.map(|mut b| {
        b.watch_pods();
        Arc::new(b)
    });
    let monitor = backend.as_ref().map(|b| {
        tokio::spawn(monitor(
            Arc::clone(b),
            Arc::clone(&log),
            Arc::clone(&shared),
            chaos.discover_replicas.clone(),
            stop.clone(),
        ))
    });
    let mut day = GameDay {
        log: Arc::clone(&log),
        backend,
        shared,
        plan: chaos.plan,
        workload: chaos.workload,
        kills: 0,
        actions: 0,
        watchers: Vec::new(),
        stop: stop.clone(),
    };
    let mut aborted = None;
    let end = RunEnd::new(stop.clone());
    for (at, action) in timetable(&day.plan.actions, length) {
        tokio::select! {
            _ = tokio::time::sleep_until((started + at).into()) => {}
            _ = stop.cancelled() => break,
        }
        let described = action.describe();
        match end.finish(day.act(action)).await {
            Some(Ok(())) => {}
            Some(Err(why)) => {
                aborted = Some(why);
                break;
            }
            None => {
                aborted = Some(format!(
                    "the run ended while {described} still waited on the API; abandoned {} s later",
                    LET_FINISH.as_secs()
                ));
                break;
            }
        }
    }
    // Watchers and the monitor end with the run; one still waiting on the
    // API after the grace is stopped, so none goes on calling it.
    for mut w in std::mem::take(&mut day.watchers) {
        if end.finish(&mut w).await.is_none() {
            w.abort();
        }
    }
    stop.cancelled().await;
    if let Some(mut m) = monitor {
        if end.finish(&mut m).await.is_none() {
            m.abort();
        }
    }
    let report = ChaosReport {
        backend: day.backend.as_ref().map_or("exec", |b| b.name()).to_owned(),
        scope: chaos.scope,
        aborted,
        events: log.events.lock().unwrap().clone(),
        replica_counts: log.counts.lock().unwrap().clone(),
        pod_startup_s: log.startups.lock().unwrap().clone(),
        slo_p95_ms: None,
        slo_source: String::new(),
    };
    let marks = log.marks.lock().unwrap().clone();
    Ran { report, marks }
}

/// The game day as it goes: what has been done, and the recoveries watched.
struct GameDay {
    log: Arc<Log>,
    backend: Option<Arc<Backend>>,
    shared: Arc<dyn LoadView>,
    plan: ChaosPlan,
    workload: Option<String>,
    kills: u32,
    actions: u32,
    watchers: Vec<tokio::task::JoinHandle<()>>,
    stop: CancellationToken,
}

/// What carrying out an action came to.
enum Done {
    /// It ran: the backend's or command's answer, or its error.
    Ran(Result<String, ChaosError>),
    /// It was not carried out, and why (a cap reached, no pod to pick).
    Skipped(String),
}

impl GameDay {
    /// Carries out one action and logs it; `Err` ends the game day (the
    /// load goes on), saying why.
    async fn act(&mut self, action: Action) -> Result<(), String> {
        let mut event = ChaosEvent {
            at_s: self.log.now_s(),
            action: action.describe(),
            target: Vec::new(),
            outcome: Outcome::Done,
            answer: String::new(),
            ready_before: None,
            ready_after_s: None,
            watched: false,
            impact: None,
        };
        if self.actions >= self.plan.max_actions {
            event.outcome = Outcome::Skipped;
            event.answer = format!(
                "cap reached: {} actions per run (max_actions)",
                self.plan.max_actions
            );
            self.log.push(event, None);
            return Ok(());
        }
        let pods_before = match &self.backend {
            Some(b) => match b.pods().await {
                Ok(p) => Some(p),
                Err(e) => return Err(abort(&self.log, event, e, self.shared.as_ref())),
            },
            None => None,
        };
        event.ready_before = pods_before
            .as_ref()
            .map(|p| p.iter().filter(|p| p.ready).count() as u32);
        let result = match self
            .perform(&action, pods_before.as_deref(), &mut event)
            .await
        {
            Done::Ran(result) => result,
            Done::Skipped(why) => {
                event.outcome = Outcome::Skipped;
                event.answer = why;
                self.log.push(event, None);
                return Ok(());
            }
        };
        self.actions += 1;
        let mark = Some(self.shared.recorder().mark());
        match result {
            Ok(answer) => event.answer = answer,
            Err(ChaosError::Gone(answer)) => {
                event.outcome = Outcome::Gone;
                event.answer = answer;
            }
            Err(ChaosError::Held(answer)) => {
                event.outcome = Outcome::Held;
                event.answer = answer;
            }
            Err(e) => return Err(abort(&self.log, event, e, self.shared.as_ref())),
        }
        say(&event);
        let recovery = pods_before
            .filter(|_| event.outcome == Outcome::Done)
            .map(|before| Recovery::new(action, &before, &event.target, self.plan.recover_within));
        event.watched = self.backend.is_some() && recovery.is_some();
        let index = self.log.push(event, mark);
        if let (Some(b), Some(recovery)) = (&self.backend, recovery) {
            self.watchers.push(tokio::spawn(watch_recovery(
                Arc::clone(b),
                Arc::clone(&self.log),
                index,
                recovery,
                self.stop.clone(),
            )));
        }
        Ok(())
    }

    /// Does what `action` says, naming its target in `event`. Matched on
    /// the action alone, so a new action must say here how it runs.
    async fn perform(
        &mut self,
        action: &Action,
        pods: Option<&[Pod]>,
        event: &mut ChaosEvent,
    ) -> Done {
        let needs_backend = || {
            Done::Ran(Err(ChaosError::Api(format!(
                "`{}` needs a pod backend",
                action.describe()
            ))))
        };
        let workload = || self.workload.clone().into_iter().collect();
        match action {
            Action::Exec(command) => {
                event.target = vec![command.clone()];
                Done::Ran(exec(command).await)
            }
            Action::KillPod(pick) => {
                let (Some(b), Some(pods)) = (&self.backend, pods) else {
                    return needs_backend();
                };
                let sessions = || self.shared.sessions_by_replica();
                match choose(*pick, pods, &self.plan, self.kills, sessions) {
                    Err(why) => Done::Skipped(why),
                    Ok(victim) => {
                        event.target = vec![victim.clone()];
                        self.kills += 1;
                        Done::Ran(b.kill(&victim, self.plan.grace_period).await)
                    }
                }
            }
            Action::Evict(pick) => {
                let (Some(b), Some(pods)) = (&self.backend, pods) else {
                    return needs_backend();
                };
                let sessions = || self.shared.sessions_by_replica();
                match choose(*pick, pods, &self.plan, self.kills, sessions) {
                    Err(why) => Done::Skipped(why),
                    Ok(victim) => {
                        event.target = vec![victim.clone()];
                        let b = Arc::clone(b);
                        let result = self.drain(&b, &victim).await;
                        if result.is_ok() {
                            self.kills += 1;
                        }
                        Done::Ran(result)
                    }
                }
            }
            Action::RolloutRestart => match &self.backend {
                Some(b) => {
                    event.target = workload();
                    Done::Ran(b.rollout_restart().await)
                }
                None => needs_backend(),
            },
            Action::Scale(n) => match &self.backend {
                Some(b) => {
                    event.target = workload();
                    Done::Ran(b.scale(*n).await)
                }
                None => needs_backend(),
            },
        }
    }
}

impl GameDay {
    /// Evicts `pod` as `kubectl drain` does: while a disruption budget holds
    /// it (429), again every [`EVICT_RETRY`], until `recover_within` has
    /// passed or the run stops; then [`ChaosError::Held`], saying how long.
    async fn drain(&self, backend: &Backend, pod: &str) -> Result<String, ChaosError> {
        let started = Instant::now();
        let mut tries = 0u32;
        loop {
            tries += 1;
            match backend.evict(pod, self.plan.grace_period).await {
                Err(ChaosError::Held(why)) => {
                    let next = started.elapsed() + EVICT_RETRY;
                    if next > self.plan.recover_within || self.stop.is_cancelled() {
                        return Err(ChaosError::Held(format!(
                            "held by its disruption budget for {:.0} s ({tries} tries, every {} s as kubectl drain does): {why}",
                            started.elapsed().as_secs_f64(),
                            EVICT_RETRY.as_secs()
                        )));
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(EVICT_RETRY) => {}
                        _ = self.stop.cancelled() => {}
                    }
                }
                other => return other,
            }
        }
    }
}

/// How often a held eviction is tried again (`kubectl drain` waits 5 s).
const EVICT_RETRY: Duration = Duration::from_secs(5);

/// A fault is worth a warning as it happens; a command that exited 0 is not.
fn say(event: &ChaosEvent) {
    if event.answer == "exit 0" {
        tracing::info!(
            "chaos at {:.1}s: {}: {}",
            event.at_s,
            event.action,
            event.answer
        );
    } else {
        tracing::warn!(
            "chaos at {:.1}s: {} {:?}: {}",
            event.at_s,
            event.action,
            event.target,
            event.answer
        );
    }
}

fn abort(log: &Log, mut event: ChaosEvent, e: ChaosError, shared: &dyn LoadView) -> String {
    let why = format!("chaos stopped: {e} (the load goes on)");
    tracing::error!("{why}");
    event.outcome = Outcome::Aborted;
    event.answer = e.to_string();
    log.push(event, Some(shared.recorder().mark()));
    why
}

/// Picks the pod to kill, or says why none is killed.
fn choose(
    pick: Pick,
    pods: &[Pod],
    plan: &ChaosPlan,
    kills: u32,
    sessions: impl FnOnce() -> BTreeMap<String, u64>,
) -> Result<String, String> {
    if kills >= plan.max_kills {
        return Err(format!(
            "cap reached: {} kills per run (max_kills)",
            plan.max_kills
        ));
    }
    let down = pods.iter().filter(|p| !p.ready).count() as u32;
    if down >= plan.max_down {
        return Err(format!(
            "{down} pod(s) already down: at most {} down at once (max_down)",
            plan.max_down
        ));
    }
    let ready: Vec<&Pod> = pods.iter().filter(|p| p.ready).collect();
    if ready.is_empty() {
        return Err("no ready pod to kill".into());
    }
    let victim = match pick {
        Pick::Random => ready[rand::random_range(0..ready.len())],
        Pick::Oldest => ready
            .iter()
            .min_by_key(|p| (p.started, p.name.clone()))
            .copied()
            .expect("not empty"),
        Pick::MostSessions => {
            let sessions = sessions();
            ready
                .iter()
                .max_by_key(|p| {
                    (
                        sessions.get(&p.name).copied().unwrap_or(0),
                        std::cmp::Reverse(p.name.clone()),
                    )
                })
                .copied()
                .expect("not empty")
        }
    };
    Ok(victim.name.clone())
}

/// Runs `sh -c COMMAND` (bounded); its exit status and the end of its
/// stderr are the answer.
async fn exec(command: &str) -> Result<String, ChaosError> {
    let child = tokio::process::Command::new("sh")
        .args(["-c", command])
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    match tokio::time::timeout(EXEC_LIMIT, child).await {
        Err(_) => Ok(format!("still running after {EXEC_LIMIT:?}: killed")),
        Ok(Err(e)) => Err(ChaosError::Api(format!("cannot run sh: {e}"))),
        Ok(Ok(out)) => {
            let stderr = String::from_utf8_lossy(&out.stderr);
            let tail: String = stderr
                .trim()
                .chars()
                .rev()
                .take(200)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            let status = match out.status.code() {
                Some(code) => format!("exit {code}"),
                None => "killed by a signal".to_owned(),
            };
            Ok(if tail.is_empty() || out.status.success() {
                status
            } else {
                format!("{status}: {tail}")
            })
        }
    }
}

/// Fills in each event's impact once the run is over, and the SLO it was
/// judged against: `[chaos] slo_p95`, else the scenario's `requests.p95`
/// threshold, else (per event) twice the p95 of the minute before.
pub fn assess(
    ran: Ran,
    results: &crate::bundle::RunResults,
    recorder: &crate::measure::Recorder,
    scenario: &crate::scenario::Scenario,
) -> ChaosReport {
    let mut report = ran.report;
    let configured = scenario
        .chaos
        .as_ref()
        .and_then(|c| c.slo_p95)
        .map(|d| (d.as_secs_f64() * 1000.0, "[chaos] slo_p95"))
        .or_else(|| {
            scenario
                .thresholds
                .iter()
                .find(|t| {
                    t.metric
                        == Metric::Requests(RequestStat::Latency(crate::bundle::LatencyStat::P95))
                })
                .map(|t| (t.limit, "the requests.p95 threshold"))
        });
    report.slo_p95_ms = configured.map(|c| c.0);
    report.slo_source = configured.map_or_else(
        || "twice the p95 of the minute before each event".to_owned(),
        |c| c.1.to_owned(),
    );
    let starts: Vec<f64> = report.events.iter().map(|e| e.at_s).collect();
    for (i, event) in report.events.iter_mut().enumerate() {
        if !matches!(
            event.outcome,
            Outcome::Done | Outcome::Gone | Outcome::Aborted
        ) {
            continue;
        }
        let around = ran
            .marks
            .get(i)
            .copied()
            .flatten()
            .map(|m| recorder.around_mark(m))
            .unwrap_or_default();
        let slo = configured
            .map(|c| c.0)
            .or(around.before_p95_ms.map(|p| 2.0 * p));
        let until = starts
            .iter()
            .copied()
            .find(|s| *s > event.at_s)
            .unwrap_or(results.elapsed_s)
            .min(results.elapsed_s);
        let mut impact = super::impact::impact(
            super::impact::EventWindow {
                at_s: event.at_s,
                until_s: until,
                ready_after_s: event.ready_after_s,
            },
            &results.timeline,
            &results.sessions.timeline,
            slo,
        );
        impact.p99_before_ms = around.before_p99_ms;
        impact.p99_after_ms = around.after_p99_ms;
        event.impact = Some(impact);
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, SystemTime};

    fn pod(name: &str, age_s: u64, ready: bool) -> Pod {
        Pod {
            name: name.into(),
            uid: format!("uid-{name}"),
            started: Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1000 - age_s)),
            ready,
            url: None,
        }
    }

    #[test]
    fn recovery_means_the_victim_replaced_and_the_count_back() {
        let before = [pod("a", 10, true), pod("b", 20, true), pod("c", 30, true)];
        let kill = Recovery::new(
            Action::KillPod(Pick::Oldest),
            &before,
            &["c".to_owned()],
            Duration::from_secs(5),
        );
        let mut dipped = false;
        let down = [pod("a", 10, true), pod("b", 20, true), pod("c", 30, false)];
        assert!(!kill.back(&down, &mut dipped));
        assert!(
            !kill.back(&before, &mut dipped),
            "the same pod is not a replacement"
        );
        let mut replaced = before.clone();
        replaced[2].uid = "uid-c2".into();
        assert!(kill.back(&replaced, &mut dipped));
        let scale = Recovery::new(Action::Scale(2), &before, &[], Duration::from_secs(5));
        assert!(!scale.back(&before, &mut dipped));
        assert!(scale.back(&before[..2], &mut dipped));
        let exec = Recovery::new(
            Action::Exec("x".into()),
            &before,
            &[],
            Duration::from_secs(5),
        );
        let mut quiet = false;
        assert!(!exec.back(&before, &mut quiet), "nothing changed yet");
        assert!(!exec.back(&down, &mut quiet));
        assert!(exec.back(&before, &mut quiet), "dipped, then back");
    }

    #[test]
    fn picks_follow_the_rule_and_the_caps_refuse() {
        let pods = [pod("a", 10, true), pod("b", 300, true), pod("c", 50, true)];
        let plan = ChaosPlan::default();
        let no_sessions = BTreeMap::new;
        assert_eq!(
            choose(Pick::Oldest, &pods, &plan, 0, no_sessions).unwrap(),
            "b"
        );
        let sessions = || BTreeMap::from([("a".to_owned(), 3), ("c".to_owned(), 9)]);
        assert_eq!(
            choose(Pick::MostSessions, &pods, &plan, 0, sessions).unwrap(),
            "c"
        );
        for _ in 0..20 {
            let p = choose(Pick::Random, &pods, &plan, 0, no_sessions).unwrap();
            assert!(["a", "b", "c"].contains(&p.as_str()));
        }
        // The cap on kills.
        let e = choose(Pick::Oldest, &pods, &plan, plan.max_kills, no_sessions).unwrap_err();
        assert!(e.contains("max_kills"), "{e}");
        // A pod already down, max_down 1: no second one.
        let one_down = [pod("a", 10, false), pod("b", 300, true)];
        let e = choose(Pick::Oldest, &one_down, &plan, 0, no_sessions).unwrap_err();
        assert!(e.contains("max_down"), "{e}");
        let two = ChaosPlan {
            max_down: 2,
            ..ChaosPlan::default()
        };
        assert_eq!(
            choose(Pick::Oldest, &one_down, &two, 0, no_sessions).unwrap(),
            "b"
        );
        // Never a pod that is not ready.
        let none_ready = [pod("a", 10, false)];
        assert!(choose(Pick::Random, &none_ready, &two, 0, no_sessions)
            .unwrap_err()
            .contains("no ready pod"));
    }
}
