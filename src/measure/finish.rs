//! Turning what the recorder holds into the bundle's results: the cells,
//! the rows per request and per replica, the totals, the stages, the
//! timelines and the environment — each a named step of [`Recorder::finish`].

use super::*;

/// Every cell in report order, with the groups they sum into.
struct Grouped<'a> {
    overall: Cell,
    by_request: BTreeMap<&'a str, Cell>,
    by_replica: BTreeMap<&'a str, Cell>,
    cells: Vec<CellStats>,
    histograms: Vec<CellHistograms>,
}

impl Recorder {
    /// Everything measured so far, as results and histograms.
    pub fn finish(&self, info: RunInfo) -> Measurements {
        let elapsed = self.started().elapsed();
        let elapsed_s = elapsed.as_secs_f64();
        let seconds = elapsed_s.ceil() as u64;
        let state = self.lock();
        let mut grouped = self.grouped(&state, elapsed_s);
        let (requests, overall) = self.request_rows(&state, &mut grouped, elapsed_s);
        let totals = Totals {
            issued: overall.issued,
            succeeded: overall.ok,
            failed: overall.failed,
            cancelled: overall.issued.saturating_sub(overall.count),
            dropped_arrivals: state.dropped.iter().sum(),
            arrivals: state.arrivals.iter().sum(),
            not_sent: overall.not_sent,
            users_started: self.users_started.load(Ordering::Relaxed),
        };
        let mut results = RunResults {
            schema_version: SCHEMA_VERSION,
            run_id: info.run_id,
            scenario: info.scenario,
            scenario_file: info.scenario_file,
            target: info.target,
            tls_verify: !info.tls_unverified,
            model: info.model,
            arrivals: info.arrivals,
            setup_requests: info.setup_requests,
            started_at: humantime::format_rfc3339_seconds(
                self.started
                    .get_or_init(|| (Instant::now(), SystemTime::now()))
                    .1,
            )
            .to_string(),
            elapsed_s,
            busy_s: state
                .last_done
                .map(|t| t.saturating_duration_since(self.started()).as_secs_f64())
                .unwrap_or_default(),
            planned_s: self
                .stage_ends
                .last()
                .map(Duration::as_secs_f64)
                .unwrap_or_default(),
            interrupted: info.interrupted,
            user_panics: state.user_panics,
            totals,
            stages: self.stages(&state, &info.stage_targets),
            overall,
            requests,
            replicas: grouped
                .by_replica
                .iter()
                .map(|(n, c)| c.stats(n, elapsed_s))
                .collect(),
            // The engine fills it in from the run's replica book.
            attribution: Attribution::default(),
            cells: grouped.cells,
            timeline: state.timeline.rows(seconds),
            request_timelines: state
                .request_timelines
                .iter()
                .enumerate()
                .filter(|(_, t)| !t.is_empty())
                .map(|(i, t)| RequestTimeline {
                    request: self.requests[i].clone(),
                    rows: t.rows(seconds),
                })
                .collect(),
            sessions: Default::default(),
            consistency: Default::default(),
            thresholds: Vec::new(),
            latency_slo: None,
            checks: Vec::new(),
            chaos: None,
            autoscaling: None,
            shard: None,
            metrics_out: Vec::new(),
            merged: None,
            environment: None,
        };
        results.environment = Some(self.environment(&results, info.control_request.as_deref()));
        Measurements {
            results,
            histograms: grouped.histograms,
            visible: None,
            began: self.started.get().map(|s| s.1),
            timeline: self.timeline_histograms(&state, seconds),
        }
    }

    /// Every (stage, request, replica) cell in report order, each summed
    /// into all requests, its request and its replica.
    fn grouped<'a>(&'a self, state: &'a State, elapsed_s: f64) -> Grouped<'a> {
        let mut keys: Vec<_> = state.cells.keys().copied().collect();
        let order =
            |k: &(usize, usize, u32)| (k.0, &self.requests[k.1], &state.replicas[k.2 as usize]);
        keys.sort_by(|a, b| order(a).cmp(&order(b)));
        let mut grouped = Grouped {
            overall: Cell::new(),
            by_request: BTreeMap::new(),
            by_replica: BTreeMap::new(),
            cells: Vec::new(),
            histograms: Vec::new(),
        };
        for key in keys {
            let cell = &state.cells[&key];
            let request = self.requests[key.1].as_str();
            let replica = state.replicas[key.2 as usize].as_str();
            cell.merge_into(&mut grouped.overall);
            cell.merge_into(grouped.by_request.entry(request).or_default());
            cell.merge_into(grouped.by_replica.entry(replica).or_default());
            let base = format!(
                "s{}-{}-{}",
                key.0 + 1,
                file_part(request),
                file_part(replica)
            );
            grouped.cells.push(CellStats {
                stage: key.0,
                request: request.to_owned(),
                replica: replica.to_owned(),
                stats: cell.stats(request, elapsed_s),
                latency_hdr: format!("hdr/{base}.latency.hdr"),
                service_hdr: format!("hdr/{base}.service.hdr"),
            });
            grouped.histograms.push(CellHistograms {
                latency: cell.latency.clone(),
                service: cell.service.clone(),
            });
        }
        grouped
    }

    /// A row per request — also one sent but never completed, or never
    /// sent at all — with what was issued, not sent and why; and the row
    /// of all requests.
    fn request_rows<'a>(
        &'a self,
        state: &State,
        grouped: &mut Grouped<'a>,
        elapsed_s: f64,
    ) -> (Vec<Stats>, Stats) {
        let issued_of = |i: usize| self.issued[i].load(Ordering::Relaxed);
        let by_request = &mut grouped.by_request;
        for (i, name) in self.requests.iter().enumerate() {
            if issued_of(i) > 0 || state.not_sent.contains_key(&i) {
                by_request.entry(name.as_str()).or_default();
            }
        }
        let mut requests: Vec<Stats> = by_request
            .iter()
            .map(|(n, c)| c.stats_with_curve(n, elapsed_s))
            .collect();
        let mut not_sent_total = 0;
        for stats in &mut requests {
            let Some(i) = self.requests.iter().position(|n| *n == stats.name) else {
                continue;
            };
            stats.issued = issued_of(i);
            if let Some(what) = state.expectation.get(&i) {
                stats.expectation_failures = what.clone();
            }
            if let Some(reasons) = state.not_sent.get(&i) {
                stats.not_sent = reasons.values().sum();
                stats.not_sent_reasons = reasons.clone();
                not_sent_total += stats.not_sent;
            }
        }
        let mut overall = grouped.overall.stats_with_curve("all", elapsed_s);
        overall.issued = (0..self.issued.len()).map(issued_of).sum();
        overall.not_sent = not_sent_total;
        (requests, overall)
    }

    /// The stages as planned, with their arrivals and drops.
    fn stages(&self, state: &State, targets: &[f64]) -> Vec<StageStats> {
        let mut start = 0.0;
        self.stage_ends
            .iter()
            .enumerate()
            .map(|(i, end)| {
                let s = StageStats {
                    index: i,
                    start_s: start,
                    end_s: end.as_secs_f64(),
                    target: targets.get(i).copied().unwrap_or_default(),
                    arrivals: state.arrivals.get(i).copied().unwrap_or_default(),
                    dropped: state.dropped.get(i).copied().unwrap_or_default(),
                };
                start = end.as_secs_f64();
                s
            })
            .collect()
    }

    /// A histogram per second, of all requests and of each request.
    fn timeline_histograms(&self, state: &State, seconds: u64) -> TimelineHistograms {
        let mut timeline: TimelineHistograms = state
            .timeline
            .histograms(seconds)
            .into_iter()
            .map(|(second, h)| ("all".to_owned(), second, h))
            .collect();
        for (i, t) in state.request_timelines.iter().enumerate() {
            timeline.extend(
                t.histograms(seconds)
                    .into_iter()
                    .map(|(second, h)| (self.requests[i].clone(), second, h)),
            );
        }
        timeline
    }

    /// The machine and the generator during the run, and the control
    /// request's service time, if the scenario names one.
    fn environment(&self, results: &RunResults, control: Option<&str>) -> Environment {
        let mut environment = {
            let health = self.health_lock();
            health::environment(health.1, results.elapsed_s, &health.0)
        };
        environment.control = control.and_then(|name| {
            let s = results.request(name)?;
            Some(Control {
                request: name.to_owned(),
                count: s.count,
                p50_ms: s.service.p50,
                p95_ms: s.service.p95,
            })
        });
        environment
    }
}
