//! Command-line changes to a scenario's load (`--rate`, `--users`,
//! `--duration`, `--arrivals`, `--think-scale`, `--persona`), checked as the
//! file is.

use super::*;

impl Scenario {
    /// Applies `--rate`, `--users`, `--duration`, `--arrivals`, `--persona` and `--think-scale`.
    pub fn apply_override(&mut self, o: &LoadOverride) -> Result<(), String> {
        let duration = o.duration.unwrap_or_else(|| self.load.duration());
        if duration.is_zero() {
            return Err("duration must be more than zero".into());
        }
        limits::check_duration("--duration", duration)?;
        let hold = Dur(duration);
        match (o.rate, o.users) {
            (Some(_), Some(_)) => {
                return Err("give --rate (open model) or --users (closed model), not both".into())
            }
            (Some(rate), None) => {
                limits::check_rate("--rate", rate)?;
                let (max_users, queue_timeout, arrivals) = match &self.load {
                    LoadPlan::Open {
                        max_users,
                        queue_timeout,
                        arrivals,
                        ..
                    } => (
                        (*max_users).max(default_pool(rate)),
                        *queue_timeout,
                        *arrivals,
                    ),
                    LoadPlan::Closed { .. } => {
                        (default_pool(rate), Duration::ZERO, ArrivalProcess::Uniform)
                    }
                };
                self.load = LoadPlan::Open {
                    stages: vec![OpenStage {
                        rate,
                        ramp: Dur::default(),
                        hold,
                    }],
                    max_users,
                    queue_timeout,
                    arrivals,
                };
            }
            (None, Some(users)) => {
                limits::check_users("--users", users)?;
                self.load = LoadPlan::Closed {
                    stages: vec![ClosedStage {
                        users,
                        ramp: Dur::default(),
                        hold,
                    }],
                };
            }
            (None, None) if o.duration.is_some() => {
                // Keep the shape, stretch or shrink it to the asked length.
                let scale = duration.as_secs_f64() / self.load.duration().as_secs_f64();
                let stretch = |d: &mut Dur| d.0 = d.0.mul_f64(scale);
                match &mut self.load {
                    LoadPlan::Open { stages, .. } => stages.iter_mut().for_each(|s| {
                        stretch(&mut s.ramp);
                        stretch(&mut s.hold)
                    }),
                    LoadPlan::Closed { stages } => stages.iter_mut().for_each(|s| {
                        stretch(&mut s.ramp);
                        stretch(&mut s.hold)
                    }),
                }
            }
            (None, None) => {}
        }
        if let Some(process) = o.arrivals {
            match &mut self.load {
                LoadPlan::Open { arrivals, .. } => *arrivals = process,
                LoadPlan::Closed { .. } => {
                    return Err(
                        "--arrivals is for the open model (give --rate, or an open-model scenario)"
                            .into(),
                    )
                }
            }
        }
        for spec in &o.persona_weights {
            let (name, weight) = spec
                .split_once('=')
                .and_then(|(n, w)| Some((n.trim(), w.trim().parse::<u32>().ok()?)))
                .filter(|(_, w)| *w <= limits::MAX_WEIGHT)
                .ok_or_else(|| {
                    format!("--persona {spec:?}: expected NAME=WEIGHT with a weight from 0 to {}, e.g. doctor=3", limits::MAX_WEIGHT)
                })?;
            let names = list(self.personas.iter().map(|p| &p.name));
            let persona = self
                .personas
                .iter_mut()
                .find(|p| p.name == name)
                .ok_or_else(|| {
                    format!("--persona {spec:?}: no persona `{name}` (the scenario has: {names})")
                })?;
            persona.weight = weight;
        }
        self.personas.retain(|p| p.weight > 0);
        if self.personas.is_empty() {
            return Err("--persona left no persona with a weight above 0".into());
        }
        if let Some(scale) = o.think_scale {
            if !(0.0..=1000.0).contains(&scale) {
                return Err(format!(
                    "--think-scale {scale}: expected a factor from 0 to 1000"
                ));
            }
            for step in self.personas.iter_mut().flat_map(|p| p.steps.iter_mut()) {
                step.think.min = step.think.min.mul_f64(scale);
                step.think.max = step.think.max.mul_f64(scale);
            }
        }
        self.check_generated_memory()
    }
}
