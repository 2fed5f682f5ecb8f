//! `junit.xml`: one test case per threshold and per verdict, for CI systems.
//! A failure carries the measured value and the limit.

use super::Export;
use crate::bundle::RunResults;
use crate::bundle::Verdict;
use quick_xml::events::{BytesDecl, BytesEnd, BytesStart, BytesText, Event};
use quick_xml::Writer;

pub(super) struct Junit;

/// A test case: class, name, and its failure message if it failed (or `Skip`).
enum Outcome {
    Pass,
    Fail(String),
    Skip(String),
}

fn cases(r: &RunResults) -> Vec<(&'static str, String, Outcome)> {
    let mut out = Vec::new();
    for t in &r.thresholds {
        let outcome = if t.passed {
            Outcome::Pass
        } else {
            Outcome::Fail(format!("{}, limit {}", t.measured_phrase(), t.limit))
        };
        out.push(("thresholds", format!("{} {}", t.metric, t.limit), outcome));
    }
    for c in &r.checks {
        let outcome = if c.passed {
            Outcome::Pass
        } else {
            Outcome::Fail(c.detail.clone())
        };
        out.push(("checks", c.name.clone(), outcome));
    }
    let completed = match &r.interrupted {
        None => Outcome::Pass,
        Some(why) => Outcome::Fail(format!(
            "{why} after {:.1} s of {:.0} s",
            r.elapsed_s, r.planned_s
        )),
    };
    out.push(("verdicts", "run completed".to_owned(), completed));
    let s = &r.sessions;
    let sessions = if s.sessions == 0 {
        Outcome::Skip("no authenticated sessions in this run".into())
    } else if s.drops > 0 {
        let worst = s.transitions.iter().max_by_key(|t| t.drops);
        Outcome::Fail(format!(
            "{} of {} sessions dropped ({:.1} per 1,000){}",
            s.drops,
            s.sessions,
            s.drops_per_1000_sessions,
            worst
                .map(|t| format!("; most between {} and {}: {}", t.before, t.after, t.drops))
                .unwrap_or_default()
        ))
    } else {
        Outcome::Pass
    };
    out.push(("verdicts", "session continuity".to_owned(), sessions));
    let c = &r.consistency;
    let bad = c.count(Verdict::Missing) + c.count(Verdict::Corrupted);
    let attachments = if c.unverifiable > 0 {
        Outcome::Fail(format!(
            "{} uploads could not be read back (see the `uploads verifiable` check)",
            c.unverifiable
        ))
    } else if c.uploads == 0 {
        Outcome::Skip("no uploads checked in this run".into())
    } else if bad > 0 {
        Outcome::Fail(format!(
            "{} uploads: {} missing, {} corrupted (upload × replica reads)",
            c.uploads,
            c.count(Verdict::Missing),
            c.count(Verdict::Corrupted)
        ))
    } else {
        Outcome::Pass
    };
    out.push(("verdicts", "attachment consistency".to_owned(), attachments));
    if let Some(chaos) = &r.chaos {
        let recovery = if chaos.recovered() {
            Outcome::Pass
        } else {
            let not_back: Vec<String> = chaos
                .events
                .iter()
                .filter(|e| {
                    e.outcome == crate::bundle::Outcome::Done
                        && e.ready_after_s.is_none()
                        && e.action != "exec"
                })
                .map(|e| format!("{} at {:.1}s", e.action, e.at_s))
                .collect();
            Outcome::Fail(match &chaos.aborted {
                Some(why) => why.clone(),
                None => format!(
                    "replicas not back within the limit after: {}",
                    not_back.join(", ")
                ),
            })
        };
        out.push(("verdicts", "chaos recovery".to_owned(), recovery));
    }
    out
}

impl Export for Junit {
    fn file_name(&self) -> &'static str {
        "junit.xml"
    }

    fn serialize(&self, r: &RunResults) -> anyhow::Result<Vec<u8>> {
        let cases = cases(r);
        let failures = cases
            .iter()
            .filter(|c| matches!(c.2, Outcome::Fail(_)))
            .count();
        let skipped = cases
            .iter()
            .filter(|c| matches!(c.2, Outcome::Skip(_)))
            .count();
        let (tests, failures, skipped) = (
            cases.len().to_string(),
            failures.to_string(),
            skipped.to_string(),
        );
        let time = format!("{:.3}", r.elapsed_s);
        let suite_name = format!("surge {}", r.scenario);
        let mut w = Writer::new_with_indent(Vec::new(), b' ', 2);
        w.write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)))?;
        let mut suites = BytesStart::new("testsuites");
        suites.push_attribute(("name", "surge"));
        suites.push_attribute(("tests", tests.as_str()));
        suites.push_attribute(("failures", failures.as_str()));
        suites.push_attribute(("time", time.as_str()));
        w.write_event(Event::Start(suites))?;
        let mut suite = BytesStart::new("testsuite");
        for (k, v) in [
            ("name", suite_name.as_str()),
            ("tests", tests.as_str()),
            ("failures", failures.as_str()),
            ("errors", "0"),
            ("skipped", skipped.as_str()),
            ("time", time.as_str()),
            ("timestamp", r.started_at.as_str()),
        ] {
            suite.push_attribute((k, v));
        }
        w.write_event(Event::Start(suite))?;
        for (class, name, outcome) in &cases {
            let mut case = BytesStart::new("testcase");
            case.push_attribute(("classname", *class));
            case.push_attribute(("name", name.as_str()));
            match outcome {
                Outcome::Pass => w.write_event(Event::Empty(case))?,
                Outcome::Fail(message) | Outcome::Skip(message) => {
                    let tag = if matches!(outcome, Outcome::Fail(_)) {
                        "failure"
                    } else {
                        "skipped"
                    };
                    w.write_event(Event::Start(case))?;
                    let mut detail = BytesStart::new(tag);
                    detail.push_attribute(("message", message.as_str()));
                    if tag == "failure" {
                        detail.push_attribute(("type", *class));
                        w.write_event(Event::Start(detail))?;
                        w.write_event(Event::Text(BytesText::new(message)))?;
                        w.write_event(Event::End(BytesEnd::new(tag)))?;
                    } else {
                        w.write_event(Event::Empty(detail))?;
                    }
                    w.write_event(Event::End(BytesEnd::new("testcase")))?;
                }
            }
        }
        w.write_event(Event::End(BytesEnd::new("testsuite")))?;
        w.write_event(Event::End(BytesEnd::new("testsuites")))?;
        let mut bytes = w.into_inner();
        bytes.push(b'\n');
        Ok(bytes)
    }
}
