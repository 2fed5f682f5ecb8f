//! A calibration's outputs: `calibration.html` (the staircase, the knee,
//! the USL fit and every recommended number with its reason, self-contained
//! like `report.html`), `calibration.json`, `recommendations.yaml`, and the
//! terminal text.

use super::charts::{lines, register_font, Series, SIZE};
use super::content::{Span, Table, Text};
use super::html::{esc, table, STYLE};
use super::Export;
use crate::calibrate::slo_breaks::first_standing_break;
use crate::calibrate::{manifest, usl, Calibration};
use anyhow::{anyhow, Context};
use plotters::prelude::*;
use std::fmt::Write as _;
use std::path::Path;

fn svg(
    draw: impl FnOnce(&DrawingArea<SVGBackend, plotters::coord::Shift>) -> anyhow::Result<()>,
) -> anyhow::Result<String> {
    register_font();
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(|e| anyhow!("{e:?}"))?;
        draw(&root)?;
        root.present().map_err(|e| anyhow!("{e:?}"))?;
    }
    Ok(out.find("<svg").map(|i| out[i..].to_owned()).unwrap_or(out))
}

/// A vertical marker line from 0 to `top` at `x`.
fn marker(name: &str, x: f64, top: f64) -> Series {
    (name.to_owned(), vec![(x, 0.0), (x, top)], BLACK)
}

/// What the manifests are written for: the workload the HPA scales, and a
/// KEDA ScaledObject too when a Prometheus server is given.
#[derive(Debug, Clone)]
pub struct Recommendations {
    /// The workload.
    pub workload: manifest::Workload,
    /// (Prometheus server, PromQL query of the cluster's total request rate).
    pub keda: Option<(String, String)>,
}

/// `calibration.json`.
pub(super) struct Json;

impl Export<Calibration> for Json {
    fn file_name(&self) -> &'static str {
        "calibration.json"
    }

    fn serialize(&self, c: &Calibration) -> anyhow::Result<Vec<u8>> {
        Ok(serde_json::to_vec_pretty(c)?)
    }
}

/// `calibration.html`.
pub(super) struct Page;

impl Export<Calibration> for Page {
    fn file_name(&self) -> &'static str {
        "calibration.html"
    }

    fn serialize(&self, c: &Calibration) -> anyhow::Result<Vec<u8>> {
        Ok(html(c)?.into_bytes())
    }
}

impl Export<Calibration> for Recommendations {
    fn file_name(&self) -> &'static str {
        "recommendations.yaml"
    }

    /// The HPA, the pool settings when pools were sized, and KEDA when asked.
    fn serialize(&self, c: &Calibration) -> anyhow::Result<Vec<u8>> {
        let plan = c
            .hpa
            .as_ref()
            .ok_or_else(|| anyhow!("no recommendation was made"))?;
        let hpa = manifest::hpa(&self.workload, plan);
        let pools = match (&c.pool, &c.knobs) {
            (Some(p), Some(k)) => Some(manifest::PoolSettings {
                per_replica: p.clone(),
                knobs: k.clone(),
            }),
            _ => None,
        };
        let keda = self
            .keda
            .as_ref()
            .map(|(server, query)| manifest::keda(&self.workload, plan, server, query));
        let cpu = c
            .cpu
            .as_ref()
            .map(|a| (manifest::hpa_cpu(&self.workload, plan, a), a.pick));
        Ok(manifest::to_yaml(
            &hpa,
            pools.as_ref(),
            cpu.as_ref().map(|(h, pick)| (h, *pick)),
            keda.as_ref(),
        )?
        .into_bytes())
    }
}

/// Writes the calibration bundle into `dir`: `calibration.json`,
/// `calibration.html` and, when a recommendation was made, `recommendations.yaml`.
pub fn write(dir: &Path, c: &Calibration, recommendations: &Recommendations) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut formats: Vec<&dyn Export<Calibration>> = vec![&Json, &Page];
    if c.hpa.is_some() {
        formats.push(recommendations);
    }
    super::write_all(dir, c, &formats)
}

/// For the terminal: the staircase table, then every reason.
pub fn text(c: &Calibration) -> String {
    let mut out = format!("\n{}\n", super::staircase_table(&c.steps));
    for reason in &c.reasons {
        out += &format!("- {reason}\n");
    }
    out
}

/// The "meets SLO" cell of step `i`: whether it met the SLO, whether that
/// is its re-measure, and whether a break below it kept it from capacity.
fn meets_cell(c: &Calibration, i: usize) -> Text {
    let step = &c.steps[i];
    let remeasured = if c.remeasures.iter().any(|r| r.step == i) {
        " (re-measured)"
    } else {
        ""
    };
    if !step.meets(&c.slo) {
        return Text(vec![Span::Failed("no".into())]).and(remeasured);
    }
    match first_standing_break(&c.steps, &c.slo) {
        Some(b) if b < i => format!(
            "yes{remeasured}, above step {}'s break: not capacity",
            b + 1
        )
        .into(),
        _ => format!("yes{remeasured}").into(),
    }
}

/// The page: the capacity and the recommendation with their reasons, the
/// staircase's charts, its table.
pub fn html(c: &Calibration) -> anyhow::Result<String> {
    let mut o = String::new();
    write!(o, "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>surge calibration</title><style>{STYLE}</style></head><body>")?;
    o.push_str("<h1>surge: capacity calibration</h1>");
    verdict(&mut o, c)?;
    o.push_str("<h2>Why</h2><ul>");
    for r in &c.reasons {
        write!(o, "<li>{}</li>", esc(r))?;
    }
    o.push_str("</ul><h2>Staircase</h2>");
    // Both charts run to just past the highest step; the knee marks both.
    let top_rate = c.steps.iter().map(|s| s.rate).fold(1.0, f64::max) * 1.05;
    let knee = c.knee_step.map(|k| c.steps[k].rate);
    chart(&mut o, "staircase", &throughput_chart(c, top_rate, knee)?);
    chart(&mut o, "latency", &latency_chart(c, top_rate, knee)?);
    if let Some(fit) = &c.usl {
        chart(&mut o, "usl", &usl_chart(c, fit)?);
    }
    table(&mut o, &steps_table(c));
    if let Some(legend) = super::staircase::bisection_legend(&c.steps) {
        write!(o, "<p>{}</p>", esc(legend))?;
    }
    o.push_str("</body></html>\n");
    Ok(o)
}

/// The capacity per pod (or that none can be stated) and the HPA and pool
/// recommended.
fn verdict(o: &mut String, c: &Calibration) -> anyhow::Result<()> {
    match c.capacity_per_pod {
        Some(cap) => write!(o, "<p>Per-pod capacity at the SLO (p99 ≤ {:.0} ms, errors ≤ {:.2}%): <b>{cap:.1} req/s</b>, measured on {} replicas.</p>", c.slo.p99_ms, c.slo.error_budget * 100.0, c.replicas)?,
        None => o.push_str("<p class=\"fail\">No step met the SLO: no capacity can be stated.</p>"),
    }
    if let Some(h) = &c.hpa {
        write!(o, "<p>HPA: target <b>{:.1} req/s per pod</b>, minReplicas <b>{}</b>, maxReplicas <b>{}</b>", h.target_per_pod, h.min_replicas, h.max_replicas)?;
        if let Some(p) = &c.pool {
            write!(o, "; pool <b>{} connections</b> per replica", p.size)?;
        }
        o.push_str(".</p>");
        // The pool the target was measured with, beside the recommended one.
        if let Some(basis) = &h.pool_basis {
            write!(o, "<p>HPA target and pool: {}.</p>", esc(basis))?;
        }
        if let Some(cpu) = &c.cpu {
            let target = match cpu.target_utilization {
                Some(u) => format!("{u}% CPU utilization"),
                None => format!("{:.0}m CPU per pod", cpu.target_millicores),
            };
            let pick = match cpu.pick {
                crate::calibrate::cpu::ScalingMetric::Cpu => "scale on CPU",
                crate::calibrate::cpu::ScalingMetric::RequestRate => "scale on the request rate",
            };
            write!(o, "<p>The same target on CPU: <b>{target}</b>; surge's pick: <b>{pick}</b> (why: below).</p>")?;
        }
    }
    Ok(())
}

fn chart(o: &mut String, id: &str, svg: &str) {
    let _ = write!(o, "<div class=\"chart\" id=\"chart-{id}\">{svg}</div>");
}

/// Offered against achieved, per step.
fn throughput_chart(c: &Calibration, top_rate: f64, knee: Option<f64>) -> anyhow::Result<String> {
    let mut throughput: Vec<Series> = vec![
        (
            "offered".into(),
            c.steps.iter().map(|s| (s.rate, s.rate)).collect(),
            full_palette::GREY,
        ),
        (
            "achieved".into(),
            c.steps.iter().map(|s| (s.rate, s.achieved)).collect(),
            BLUE,
        ),
    ];
    if let Some(k) = knee {
        throughput.push(marker("knee", k, top_rate));
    }
    svg(|root| {
        lines(
            root,
            "Throughput per step (offered vs achieved)",
            "offered req/s",
            "req/s",
            &throughput,
            None,
        )
    })
}

/// The percentiles per step, against the SLO's p99.
fn latency_chart(c: &Calibration, top_rate: f64, knee: Option<f64>) -> anyhow::Result<String> {
    let top_latency = c
        .steps
        .iter()
        .map(|s| s.p99_ms)
        .fold(c.slo.p99_ms, f64::max)
        * 1.05;
    let mut latency: Vec<Series> = vec![
        (
            "p50".into(),
            c.steps.iter().map(|s| (s.rate, s.p50_ms)).collect(),
            GREEN,
        ),
        (
            "p95".into(),
            c.steps.iter().map(|s| (s.rate, s.p95_ms)).collect(),
            full_palette::ORANGE,
        ),
        (
            "p99".into(),
            c.steps.iter().map(|s| (s.rate, s.p99_ms)).collect(),
            RED,
        ),
        (
            "SLO p99".into(),
            vec![(0.0, c.slo.p99_ms), (top_rate, c.slo.p99_ms)],
            MAGENTA,
        ),
    ];
    if let Some(k) = knee {
        latency.push(marker("knee", k, top_latency));
    }
    svg(|root| {
        lines(
            root,
            "Latency per step",
            "offered req/s",
            "ms",
            &latency,
            None,
        )
    })
}

/// The steps' throughput against concurrency, with the USL curve fitted.
fn usl_chart(c: &Calibration, f: &usl::UslFit) -> anyhow::Result<String> {
    let measured: Vec<(f64, f64)> = c
        .steps
        .iter()
        .map(|s| (s.concurrency(), s.achieved))
        .collect();
    let n_max = measured.iter().map(|p| p.0).fold(1.0, f64::max) * 1.2;
    let curve: Vec<(f64, f64)> = (0..=100)
        .map(|i| {
            let n = n_max * i as f64 / 100.0;
            (n, usl::throughput(f.lambda, f.sigma, f.kappa, n.max(1e-9)))
        })
        .collect();
    let series: Vec<Series> = vec![
        ("measured".into(), measured, BLUE),
        ("USL fit".into(), curve, RED),
    ];
    svg(|root| {
        lines(
            root,
            &format!(
                "Universal Scalability Law: σ {:.3}, κ {:.5}, N* {:.0}",
                f.sigma, f.kappa, f.n_star
            ),
            "concurrency (Little's law)",
            "req/s",
            &series,
            None,
        )
    })
}

/// One row per step, with whether it met the SLO; with the read-backs and
/// what the cluster carried in all when surge read uploads back.
fn steps_table(c: &Calibration) -> Table {
    let read_backs = super::staircase::read_back_cells(&c.steps);
    let cpu = super::staircase::cpu_cells(&c.steps);
    let mut header = vec![
        "step",
        "offered req/s",
        "achieved req/s",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        "errors",
        "dropped",
    ];
    if read_backs.is_some() {
        header.extend(super::staircase::READ_BACK_COLUMNS);
    }
    if cpu.is_some() {
        header.push(super::staircase::CPU_COLUMN);
    }
    header.push("meets SLO");
    Table::new(header).with_rows(c.steps.iter().enumerate().map(|(i, s)| {
        let figures = [
            super::staircase::step_label(i, s),
            format!("{:.1}", s.rate),
            format!("{:.1}", s.achieved),
            format!("{:.1}", s.p50_ms),
            format!("{:.1}", s.p95_ms),
            format!("{:.1}", s.p99_ms),
            format!("{:.2}%", s.error_rate * 100.0),
            s.dropped.to_string(),
        ];
        let carried = read_backs.as_ref().map(|cells| cells[i].clone());
        let cpu = cpu.as_ref().map(|cells| cells[i].clone());
        figures
            .into_iter()
            .chain(carried.into_iter().flatten())
            .chain(cpu)
            .map(Text::from)
            .chain([meets_cell(c, i)])
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bundle::Step;
    use crate::calibrate::capacity::Slo;
    use crate::calibrate::slo_breaks::Remeasure;
    use crate::calibrate::{analyse_measurements, Demand, Measurements};

    fn step(rate: f64, p99: f64) -> Step {
        Step {
            rate,
            achieved: rate,
            p99_ms: p99,
            p95_ms: p99,
            p50_ms: p99 / 2.0,
            mean_ms: p99 / 2.0,
            ..Default::default()
        }
    }

    fn calibration(again_p99: f64) -> Calibration {
        let first = step(8.0, 511.0);
        let again = step(8.0, again_p99);
        analysed(
            vec![step(4.0, 300.0), again.clone(), step(12.0, 420.0)],
            vec![Remeasure {
                step: 1,
                first,
                again,
            }],
        )
    }

    fn analysed(steps: Vec<Step>, remeasures: Vec<Remeasure>) -> Calibration {
        analyse_measurements(
            Measurements {
                steps,
                remeasures,
                pool_samples: Vec::new(),
            },
            1,
            Slo {
                p99_ms: 500.0,
                error_budget: 0.01,
            },
            &Demand {
                base_rate: None,
                peak_rate: None,
                growth_per_s: 0.0,
                metric_window_s: 30.0,
                pod_start_s: 30.0,
                readiness_s: 0.0,
                hold_s: None,
                checkouts_per_request: None,
                wait_probability: 0.05,
                pool_floor: 1,
                connection_budget: 97,
            },
        )
    }

    /// The table marks a re-measured step, and a step that met the SLO
    /// above a break that stands as not capacity; both ways.
    #[test]
    fn the_table_marks_remeasures_and_steps_above_a_standing_break() {
        let cell = |c: &Calibration, i: usize| meets_cell(c, i).words();
        let stands = calibration(530.0);
        assert_eq!(cell(&stands, 0), "yes");
        assert_eq!(
            meets_cell(&stands, 1),
            Text(vec![Span::Failed("no".into())]).and(" (re-measured)")
        );
        assert_eq!(cell(&stands, 2), "yes, above step 2's break: not capacity");
        let noise = calibration(430.0);
        assert_eq!(cell(&noise, 1), "yes (re-measured)");
        assert_eq!(cell(&noise, 2), "yes");
    }

    /// A staircase whose steps read uploads back: the table shows each
    /// step's read-backs and what the cluster carried, and the capacity's
    /// reason says the read-backs were part of the load at its step, while
    /// the capacity itself stays the work's. Without read-backs, none of it.
    #[test]
    fn read_backs_are_shown_as_carried_load_and_capacity_stays_the_works() {
        let with_read_backs = |rb: Option<f64>| {
            let steps = [step(4.0, 300.0), step(8.0, 400.0), step(12.0, 900.0)]
                .into_iter()
                .map(|s| Step {
                    read_backs_per_s: rb.map(|r| r * s.rate),
                    ..s
                })
                .collect();
            analysed(steps, Vec::new())
        };
        let with = with_read_backs(Some(2.0));
        let without = with_read_backs(None);
        assert_eq!(with.capacity_per_pod, Some(8.0));
        assert_eq!(with.capacity_per_pod, without.capacity_per_pod);
        let table = steps_table(&with);
        assert_eq!(
            table.header[8..],
            ["read-backs/s", "carried/s", "meets SLO"]
        );
        let cells: Vec<String> = table.rows[1].iter().map(Text::words).collect();
        assert_eq!(cells[8..10], ["16.0", "24.0"]);
        assert!(
            with.reasons[0]
                .ends_with("; the cluster carried 24.0/s with 16.0 read-backs/s of uploads"),
            "{:?}",
            with.reasons
        );
        assert!(
            with.reasons
                .iter()
                .any(|r| r.starts_with("left out of capacity: 16.0 read-backs/s")),
            "{:?}",
            with.reasons
        );
        assert!(text(&with).contains("read-backs/s"));
        assert!(!steps_table(&without)
            .header
            .iter()
            .any(|h| h.contains("read-backs")));
        assert!(
            !without.reasons.iter().any(|r| r.contains("read-backs")),
            "{:?}",
            without.reasons
        );
        assert!(!text(&without).contains("read-backs"));
    }
}
