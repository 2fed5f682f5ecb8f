//! Which captured values a step can use. A user runs its persona's steps in
//! order, and a value it captures stays until a later answer replaces (or a
//! capture that finds nothing unsets) it; so within one pass through a
//! persona, a step can fill `${var}` — and run `for_each` / `while` over
//! `var` — only when an earlier step of that persona captures `var`.
//!
//! A value left over from an earlier pass does not count: every user's first
//! pass lacks it (the request would not be sent), and later passes would
//! send a stale value from another search, patient or page. The closed
//! model repeats a user's persona and the open model gives a user later
//! arrivals, possibly of another persona, so "captured last time" is never
//! a promise. Feeder columns, `${uuid}` and `${env:..}` need no capture.

use super::*;

/// The variables a request needs before it is sent (path, headers, body),
/// and for its read-back, which is rendered after its answer: there `${id}`
/// is the stored object's id and the request's own captures are made.
fn needs(spec: &RequestSpec) -> BTreeSet<&str> {
    templates(spec)
        .flat_map(|(t, is_read)| vars(t).map(move |v| (v, is_read)))
        .filter(|(v, is_read)| !is_read || (*v != "id" && !captures_var(spec, v)))
        .map(|(v, _)| v)
        .collect()
}

fn vars(template: &Template) -> impl Iterator<Item = &str> {
    template.segments().iter().filter_map(|s| match s {
        Segment::Var(var) => Some(var.as_str()),
        _ => None,
    })
}

fn captures(spec: &RequestSpec) -> impl Iterator<Item = &str> {
    spec.captures.iter().map(|(v, _)| v.as_str())
}

/// Whether `spec` captures `var`.
fn captures_var(spec: &RequestSpec, var: &str) -> bool {
    captures(spec).any(|v| v == var)
}

/// The requests that capture `var`, with their index.
fn capturers<'a>(
    requests: &'a [RequestSpec],
    var: &'a str,
) -> impl Iterator<Item = (usize, &'a RequestSpec)> {
    requests
        .iter()
        .enumerate()
        .filter(move |(_, r)| captures_var(r, var))
}

/// `` `a` `` or `` `a` or `b` ``.
fn names<'a>(names: impl Iterator<Item = &'a str>) -> String {
    names
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(" or ")
}

/// Refuses requests whose captures depend on each other in a circle (`a`
/// needs a value only `b` captures and `b` one only `a` captures): none of
/// them can ever be sent first. `Err` has the first request of the circle,
/// the variable it lacks, and what is wrong.
pub(super) fn check_circles(requests: &[RequestSpec]) -> Result<(), (usize, String, String)> {
    // Every request that can be sent once the ones before it answered.
    let wanted: Vec<BTreeSet<&str>> = requests.iter().map(needs).collect();
    let mut can = vec![false; requests.len()];
    let mut have = BTreeSet::new();
    while let Some(i) =
        (0..requests.len()).find(|&i| !can[i] && wanted[i].iter().all(|v| have.contains(v)))
    {
        can[i] = true;
        have.extend(captures(&requests[i]));
    }
    let Some(mut at) = can.iter().position(|c| !c) else {
        return Ok(());
    };
    // Follow what each stuck request lacks to one that captures it, until
    // a request comes round again: that is the circle.
    let mut walk: Vec<(usize, &str)> = Vec::new();
    loop {
        if let Some(start) = walk.iter().position(|(r, _)| *r == at) {
            let circle = &walk[start..];
            let capturers = |var| names(capturers(requests, var).map(|(_, r)| r.name.as_str()));
            let links: Vec<String> = circle
                .iter()
                .map(|(r, var)| {
                    format!(
                        "`{}` uses `${{{var}}}`, which only {} captures",
                        requests[*r].name,
                        capturers(var)
                    )
                })
                .collect();
            let (first, var) = circle[0];
            let message = if circle.len() == 1 {
                format!(
                    "{}: it can never be sent the first time (capture `{var}` in an earlier request)",
                    links[0]
                )
            } else {
                format!(
                    "captures depend on each other in a circle: {}; none of them can be sent first (capture one of these values in a request that needs none of them)",
                    links.join("; ")
                )
            };
            return Err((first, var.to_owned(), message));
        }
        let Some(var) = wanted[at].iter().copied().find(|v| !have.contains(v)) else {
            return Ok(());
        };
        let Some((next, _)) = capturers(requests, var).next() else {
            // Nobody captures it: refused with the request's placeholders.
            return Ok(());
        };
        walk.push((at, var));
        at = next;
    }
}

/// Refuses a step that needs a value no earlier step of its persona
/// captures: a placeholder in the request it sends (pointing at the step's
/// `request`), or its `for_each` / `while` variable (pointing at that).
pub(super) fn check_order(
    persona: &model::Persona,
    steps: &[StepSpec],
    requests: &[RequestSpec],
) -> Result<(), Located> {
    let who = persona.name.get_ref();
    let mut have = BTreeSet::new();
    for (n, (step, spec)) in persona.steps.iter().zip(steps).enumerate() {
        let request = &requests[spec.request];
        // Where the value comes from, when not from an earlier step.
        let only = |var: &str| {
            let later: Vec<String> = steps[n..]
                .iter()
                .enumerate()
                .filter(|(_, s)| captures_var(&requests[s.request], var))
                .map(|(i, s)| format!("step {} (`{}`)", n + i + 1, requests[s.request].name))
                .collect();
            // Someone captures it: a value nobody captures was refused
            // with the request's placeholders or the step's loop already.
            let others = names(capturers(requests, var).map(|(_, r)| r.name.as_str()));
            if later.is_empty() {
                format!("only {others} captures it, which `{who}` never sends")
            } else {
                format!(
                    "it is captured only at this step or later: {}",
                    later.join(", ")
                )
            }
        };
        let looped = [("for_each", &step.for_each), ("while", &step.while_)];
        for (what, var) in looped
            .iter()
            .filter_map(|(w, v)| v.as_ref().map(|v| (w, v)))
        {
            let name = var.get_ref().as_str();
            if !have.contains(name) {
                return Err((
                    Some(var.span()),
                    format!(
                        "persona `{who}` step {}: {what} = \"{name}\" needs `{name}` captured by an earlier step of `{who}`, or the step never sends `{}` ({}): a step can use only what the steps before it captured, in the same pass through the persona",
                        n + 1,
                        request.name,
                        only(name)
                    ),
                ));
            }
        }
        if let Some(var) = needs(request).into_iter().find(|v| !have.contains(v)) {
            return Err((
                Some(step.request.span()),
                format!(
                    "persona `{who}` step {} sends `{}`, which uses `${{{var}}}`, but no earlier step of `{who}` captures `{var}` ({}): a step can use only what the steps before it captured, in the same pass through the persona",
                    n + 1,
                    request.name,
                    only(var)
                ),
            ));
        }
        have.extend(captures(request));
    }
    Ok(())
}
