//! What the cluster carried besides the scenario's own requests — the
//! read-backs surge sent to check uploads — and how answers were attributed
//! to replicas (unmapped values, balancer retries). The content is decided
//! here once; the terminal, Markdown and HTML reports only add syntax.

use super::content::{Line, Span, Table, Text};
use crate::bundle::RunResults;

/// Columns of the read-back table.
const READ_BACK_HEADER: [&str; 6] = [
    "replica",
    "direct",
    "through balancer",
    "failed",
    "read-backs/s",
    "share of its traffic",
];

/// The read-back table: one row per replica and a total, or None when no
/// read-back was sent.
pub(super) fn read_backs(r: &RunResults) -> Option<Table> {
    let t = &r.consistency.read_backs;
    if t.total() == 0 {
        return None;
    }
    let seconds = r.elapsed_s.max(1e-9);
    let share = |read_backs: u64, own: u64| {
        let all = read_backs + own;
        if all == 0 {
            "–".to_owned()
        } else {
            format!("{:.1}%", 100.0 * read_backs as f64 / all as f64)
        }
    };
    let row = |name: &str, direct: u64, balancer: u64, failed: u64, own: u64| {
        let total = direct + balancer;
        [
            name.to_owned(),
            direct.to_string(),
            balancer.to_string(),
            failed.to_string(),
            format!("{:.1}", total as f64 / seconds),
            share(total, own),
        ]
    };
    let replicas = t.replicas.iter().map(|rb| {
        let own = r
            .replicas
            .iter()
            .find(|s| s.name == rb.replica)
            .map_or(0, |s| s.count);
        row(&rb.replica, rb.direct, rb.through_balancer, rb.failed, own)
    });
    let failed = t.replicas.iter().map(|x| x.failed).sum::<u64>();
    let all = row(
        "all",
        t.direct(),
        t.through_balancer(),
        failed,
        r.totals.issued,
    );
    Some(
        Table::new(READ_BACK_HEADER)
            .titled("read-backs of uploads (load surge added)")
            .with_rows(replicas.chain([all])),
    )
}

/// What the cluster carried and how answers were attributed: the total
/// with read-backs, the budget when it was passed, unmapped answers and
/// retries. Empty when there is nothing to say.
pub(super) fn notes(r: &RunResults) -> Vec<Line> {
    let mut out = Vec::new();
    let t = &r.consistency.read_backs;
    let own = r.totals.issued;
    if t.total() > 0 {
        out.push(Line::new(format!(
            "the cluster carried {} requests: {own} of the scenario's own and {} read-backs of uploads ({} direct, {} through the balancer), all in the latency it served",
            own + t.total(),
            t.total(),
            t.direct(),
            t.through_balancer()
        )));
    }
    if t.over_budget(own) {
        let ratio = t
            .ratio_to(own)
            .map(|x| format!("{x:.1}×"))
            .unwrap_or_else(|| "more than".to_owned());
        out.push(Line::alert("over budget", format!(
            "read-backs were {ratio} the scenario's own requests, budget {}×: list the replicas under [verify] replicas, lower visible_within or raise poll",
            t.budget_ratio
        )));
    }
    let a = &r.attribution;
    if a.unmapped_total() > 0 {
        let values: Vec<String> = a
            .unmapped
            .iter()
            .map(|(v, n)| format!("{v:?} {n}×"))
            .collect();
        let text = Text::plain(format!(
            "{} answers named a replica that is none of those listed ({}); counted as ",
            a.unmapped_total(),
            values.join(", ")
        ))
        .then(Span::Code("unmapped".into()))
        .and(", not as replicas — say which replica answers so with answers_as under [verify] replicas (or --replica NAME=URL)");
        out.push(Line::alert("unmapped", text));
    }
    if a.retries_total() > 0 {
        let by: Vec<String> = a.retries.iter().map(|(v, n)| format!("{v} {n}")).collect();
        out.push(Line::labelled("retries", format!(
            "{} answers came after the balancer retried another replica (its header named several; the last answered): {}",
            a.retries_total(),
            by.join(", ")
        )));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bundle::{ReadBackReplica, ReadBackTraffic, Stats};

    /// The notes as the terminal says them.
    fn said(r: &RunResults) -> Vec<String> {
        notes(r).iter().map(super::super::terminal::line).collect()
    }

    fn run(direct: u64, balancer: u64) -> RunResults {
        let mut r: RunResults =
            serde_json::from_str(include_str!("testdata/summary.json")).unwrap();
        r.totals.issued = 600;
        r.elapsed_s = 10.0;
        r.replicas = vec![Stats {
            name: "r1".into(),
            count: 600,
            ..Default::default()
        }];
        r.consistency.read_backs = ReadBackTraffic {
            replicas: vec![ReadBackReplica {
                replica: "r1".into(),
                direct,
                through_balancer: balancer,
                failed: 5,
            }],
            budget_ratio: 1.0,
            per_second: Vec::new(),
        };
        r.attribution = Default::default();
        r
    }

    #[test]
    fn read_backs_are_traffic_the_cluster_carried() {
        let r = run(200, 100);
        let rows = read_backs(&r).unwrap().rows;
        let words = |row: &[Text]| row.iter().map(Text::words).collect::<Vec<_>>();
        assert_eq!(words(&rows[0]), ["r1", "200", "100", "5", "30.0", "33.3%"]);
        assert_eq!(words(&rows[1])[0], "all");
        let notes = said(&r);
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert!(
            notes[0].starts_with(
                "the cluster carried 900 requests: 600 of the scenario's own and 300 read-backs"
            ),
            "{}",
            notes[0]
        );
    }

    #[test]
    fn a_budget_passed_is_said_and_one_kept_is_not() {
        let over = said(&run(600, 3035));
        assert!(
            over.iter().any(|n| n.starts_with(
                "OVER BUDGET: read-backs were 6.1× the scenario's own requests, budget 1×"
            )),
            "{over:?}"
        );
        let within = said(&run(300, 200));
        assert!(
            !within.iter().any(|n| n.contains("OVER BUDGET")),
            "{within:?}"
        );
    }

    #[test]
    fn unmapped_answers_and_retries_are_said() {
        let mut r = run(0, 0);
        assert!(notes(&r).is_empty());
        assert!(read_backs(&r).is_none());
        r.attribution.unmapped.insert("10.0.0.9:80".into(), 12);
        r.attribution.retries.insert("r2".into(), 3);
        let n = said(&r);
        assert!(n[0].starts_with("UNMAPPED: 12 answers named a replica that is none of those listed (\"10.0.0.9:80\" 12×)"), "{n:?}");
        assert!(
            n[1].starts_with("retries: 3 answers came after the balancer retried"),
            "{n:?}"
        );
    }
}
