//! When a plan's actions happen: their concrete times within a run, and the
//! refusal of an action that would come after the load ends.

use super::*;

/// When an action first happens.
fn first_time(action: &Scheduled) -> Duration {
    match action.when {
        When::At(at) => at,
        When::Every { from, .. } => from,
    }
}

/// The first time of an action that would come after a load of `length`
/// ends (so it would never run), if one would: a plan must not silently drop it.
pub fn first_after_end(actions: &[Scheduled], length: Duration) -> Option<Duration> {
    actions.iter().map(first_time).find(|at| *at >= length)
}

/// Where the file writes the time of the first action that would come after
/// a load of `length` ends: its `at`, else its `from`, else its `every`.
/// (`plan` is compiled from `def`, one action for each.)
pub fn late_action_place(
    def: &ChaosDef,
    plan: &ChaosPlan,
    length: Duration,
) -> Option<std::ops::Range<usize>> {
    let late = plan.actions.iter().position(|a| first_time(a) >= length)?;
    let a = def.actions.get(late)?.get_ref();
    a.at.as_ref()
        .or(a.from.as_ref())
        .or(a.every.as_ref())
        .map(|t| t.span())
}

/// Says why an action would never run, if one would not.
pub fn check_timing(actions: &[Scheduled], length: Duration) -> Result<(), String> {
    match first_after_end(actions, length) {
        None => Ok(()),
        Some(late) => Err(format!(
            "a chaos action at {} would come after the load ends ({}): it would never run",
            humantime::format_duration(late),
            humantime::format_duration(length)
        )),
    }
}

/// The concrete times of the plan's actions within a run of `length`, in order.
pub fn timetable(actions: &[Scheduled], length: Duration) -> Vec<(Duration, Action)> {
    let mut out = Vec::new();
    for s in actions {
        match s.when {
            When::At(at) if at < length => out.push((at, s.action.clone())),
            When::At(_) => {}
            When::Every { every, from } => {
                let mut t = from;
                while t < length {
                    out.push((t, s.action.clone()));
                    t += every;
                }
            }
        }
    }
    out.sort_by_key(|(t, _)| *t);
    out
}
