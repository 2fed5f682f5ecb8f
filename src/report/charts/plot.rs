//! The drawing every chart shares: line charts (framed, with chaos
//! events marked across them), grouped bars, and one legend.

use super::{Series, FONT};
use anyhow::anyhow;
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;

pub(in crate::report) fn lines<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    x_desc: &str,
    y_desc: &str,
    series: &[Series],
    x_label: Option<fn(&f64) -> String>,
) -> anyhow::Result<()>
where
    DB::ErrorType: 'static,
{
    lines_marked(root, title, x_desc, y_desc, series, x_label, &[])
}

/// How a line chart is framed: its words, the marks (chaos events) drawn
/// across it, and the x axis' end when charts stacked together share one.
pub(super) struct Frame<'a> {
    pub title: &'a str,
    pub x_desc: &'a str,
    pub y_desc: &'a str,
    pub x_label: Option<fn(&f64) -> String>,
    pub marks: &'a [f64],
    pub x_max: Option<f64>,
}

/// Line chart with vertical marks (chaos events) at `marks` on the x axis.
pub(super) fn lines_marked<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    x_desc: &str,
    y_desc: &str,
    series: &[Series],
    x_label: Option<fn(&f64) -> String>,
    marks: &[f64],
) -> anyhow::Result<()>
where
    DB::ErrorType: 'static,
{
    let frame = Frame {
        title,
        x_desc,
        y_desc,
        x_label,
        marks,
        x_max: None,
    };
    framed_lines(root, &frame, series)
}

/// A line chart framed by `frame`.
pub(super) fn framed_lines<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    frame: &Frame,
    series: &[Series],
) -> anyhow::Result<()>
where
    DB::ErrorType: 'static,
{
    let Frame {
        title,
        x_desc,
        y_desc,
        x_label,
        marks,
        x_max,
    } = *frame;
    let x_max = x_max.unwrap_or_else(|| {
        series
            .iter()
            .flat_map(|s| s.1.iter().map(|p| p.0))
            .fold(1.0, f64::max)
    });
    let y_max = series
        .iter()
        .flat_map(|s| s.1.iter().map(|p| p.1))
        .fold(0.0, f64::max)
        .max(1e-3)
        * 1.1;
    let mut chart = ChartBuilder::on(root)
        .caption(title, (FONT, 18))
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..x_max, 0.0..y_max)
        .map_err(|e| anyhow!("{e:?}"))?;
    let mut mesh = chart.configure_mesh();
    mesh.x_desc(x_desc).y_desc(y_desc).label_style((FONT, 12));
    let formatter = x_label.unwrap_or(|x: &f64| format!("{x:.0}"));
    mesh.x_label_formatter(&formatter);
    let whole_ticks = x_max as usize + 1;
    mesh.x_labels(if x_label.is_some() {
        // One tick per "nine", at whole numbers, where the labels are exact.
        whole_ticks
    } else {
        // Ticks on whole numbers only: on a short run plotters would put
        // them on halves, and whole-number labels then read "0 0 1 2 2".
        whole_ticks.min(10)
    });
    mesh.draw().map_err(|e| anyhow!("{e:?}"))?;
    if !marks.is_empty() {
        let colour = full_palette::PURPLE;
        chart
            .draw_series(
                marks
                    .iter()
                    .map(|&x| PathElement::new(vec![(x, 0.0), (x, y_max)], colour.stroke_width(2))),
            )
            .map_err(|e| anyhow!("{e:?}"))?
            .label("chaos event")
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], colour.stroke_width(2))
            });
    }
    for (name, points, colour) in series {
        let colour = *colour;
        // A value measured in one second only (the users' logins, all in
        // the first second) would be a line of one point, which draws
        // nothing: it is drawn across that second instead.
        let drawn: Vec<(f64, f64)> = match points.as_slice() {
            [(x, y)] if *x + 1.0 <= x_max => vec![(*x, *y), (*x + 1.0, *y)],
            [(x, y)] => vec![((*x - 1.0).max(0.0), *y), (*x, *y)],
            _ => points.clone(),
        };
        chart
            .draw_series(LineSeries::new(drawn, colour.stroke_width(2)))
            .map_err(|e| anyhow!("{e:?}"))?
            .label(name.as_str())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], colour.stroke_width(2))
            });
    }
    legend(&mut chart)
}

/// The series legend every chart draws the same way.
fn legend<'a, DB: DrawingBackend + 'a>(
    chart: &mut ChartContext<'a, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>,
) -> anyhow::Result<()>
where
    DB::ErrorType: 'static,
{
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .label_font((FONT, 12))
        .draw()
        .map_err(|e| anyhow!("{e:?}"))?;
    Ok(())
}

/// Grouped bars: one group per label, one bar per series.
pub(super) fn bars<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    labels: &[String],
    series: &[(String, Vec<f64>, RGBColor)],
) -> anyhow::Result<()>
where
    DB::ErrorType: 'static,
{
    let n = labels.len().max(1);
    let y_max = series
        .iter()
        .flat_map(|s| s.1.iter().copied())
        .fold(0.0, f64::max)
        .max(1.0)
        * 1.15;
    let mut chart = ChartBuilder::on(root)
        .caption(title, (FONT, 16))
        .margin(8)
        .x_label_area_size(30)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..n as f64, 0.0..y_max)
        .map_err(|e| anyhow!("{e:?}"))?;
    let label_of = |x: &f64| {
        let i = (x - 0.5).round();
        if (x - 0.5 - i).abs() < 1e-6 && i >= 0.0 {
            labels.get(i as usize).cloned().unwrap_or_default()
        } else {
            String::new()
        }
    };
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(n * 2 + 1)
        .x_label_formatter(&label_of)
        .label_style((FONT, 12))
        .draw()
        .map_err(|e| anyhow!("{e:?}"))?;
    let width = 0.8 / series.len().max(1) as f64;
    for (k, (name, values, colour)) in series.iter().enumerate() {
        let colour = *colour;
        chart
            .draw_series(values.iter().enumerate().map(|(i, v)| {
                let x0 = i as f64 + 0.1 + k as f64 * width;
                Rectangle::new([(x0, 0.0), (x0 + width * 0.95, *v)], colour.filled())
            }))
            .map_err(|e| anyhow!("{e:?}"))?
            .label(name.as_str())
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], colour.filled()));
    }
    if series.is_empty() {
        return Ok(());
    }
    legend(&mut chart)
}
