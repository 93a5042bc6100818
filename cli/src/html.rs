//! `batchguard report --html`: one self-contained page (inline CSS and SVG; no script, font or
//! URL it would fetch) with the charts a person would rather look at than read.
//!
//! The charts are drawn here as plain SVG (polylines, rectangles, text) with decimal
//! arithmetic for the coordinates: four charts do not justify a plotting crate and its fonts.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use rust_decimal::prelude::ToPrimitive;
use rust_decimal::{Decimal, RoundingStrategy};

use shared::report::{StatusReport, TimelinePoint, instant};

const WIDTH: i64 = 760;
const HEIGHT: i64 = 260;
const LEFT: i64 = 70;
const RIGHT: i64 = 20;
const TOP: i64 = 20;
const BOTTOM: i64 = 36;
/// How many of the costliest jobs the table lists.
const COSTLIEST_JOBS: usize = 15;

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn usd(value: Decimal) -> String {
    format!(
        "${:.2}",
        value.round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero)
    )
}

fn pixels(value: Decimal) -> i64 {
    value.round().to_i64().unwrap_or(0)
}

/// Maps instants and values to the plot area.
struct Frame {
    x0: i64,
    x1: i64,
    y_max: Decimal,
}

impl Frame {
    fn x(&self, at: i64) -> i64 {
        let span = (self.x1 - self.x0).max(1);
        LEFT + (at - self.x0).clamp(0, span) * (WIDTH - LEFT - RIGHT) / span
    }

    fn y(&self, value: Decimal) -> i64 {
        let height = Decimal::from(HEIGHT - TOP - BOTTOM);
        let scaled = if self.y_max.is_zero() {
            Decimal::ZERO
        } else {
            value.max(Decimal::ZERO).min(self.y_max) * height / self.y_max
        };
        HEIGHT - BOTTOM - pixels(scaled)
    }

    fn axes(&self, out: &mut String, y_label: &str, y_text: &dyn Fn(Decimal) -> String) {
        let (left, right, bottom) = (LEFT, WIDTH - RIGHT, HEIGHT - BOTTOM);
        let _ = write!(
            out,
            r#"<line class="axis" x1="{left}" y1="{TOP}" x2="{left}" y2="{bottom}"/><line class="axis" x1="{left}" y1="{bottom}" x2="{right}" y2="{bottom}"/>"#
        );
        for step in 0..=4 {
            let value = self.y_max * Decimal::from(step) / Decimal::from(4);
            let y = self.y(value);
            let _ = write!(
                out,
                r#"<line class="grid" x1="{left}" y1="{y}" x2="{right}" y2="{y}"/><text class="tick" x="{}" y="{}" text-anchor="end">{}</text>"#,
                left - 6,
                y + 4,
                escape(&y_text(value))
            );
        }
        let _ = write!(
            out,
            r#"<text class="tick" x="{left}" y="{}">{}</text><text class="tick" x="{right}" y="{}" text-anchor="end">{}</text><text class="tick" x="12" y="{}" transform="rotate(-90 12 {})" text-anchor="middle">{}</text>"#,
            bottom + 18,
            escape(&instant(self.x0)),
            bottom + 18,
            escape(&instant(self.x1)),
            (TOP + bottom) / 2,
            (TOP + bottom) / 2,
            escape(y_label)
        );
    }

    fn polyline(&self, out: &mut String, class: &str, points: &[(i64, Decimal)]) {
        let coordinates: Vec<String> = points
            .iter()
            .map(|&(at, value)| format!("{},{}", self.x(at), self.y(value)))
            .collect();
        let _ = write!(
            out,
            r#"<polyline class="{class}" points="{}"/>"#,
            coordinates.join(" ")
        );
    }
}

/// A nice upper bound for an axis: 1, 2 or 5 × a power of ten, at least `value`.
fn nice_max(value: Decimal) -> Decimal {
    if value <= Decimal::ZERO {
        return Decimal::ONE;
    }
    let mut magnitude = Decimal::new(1, 6);
    while magnitude * Decimal::TEN <= value {
        magnitude *= Decimal::TEN;
    }
    for factor in [1, 2, 5, 10] {
        let candidate = magnitude * Decimal::from(factor);
        if candidate >= value {
            return candidate;
        }
    }
    magnitude * Decimal::TEN
}

fn spend_chart(report: &StatusReport, timeline: &[TimelinePoint], as_of: i64) -> String {
    let mut out = String::new();
    let Some(first) = timeline.first() else {
        return "<p>No priced spend to draw.</p>".into();
    };
    let span = (as_of - first.at).max(60);
    // Room to the right for the forecast: a third of the span drawn, at the current burn.
    let forecast_until = as_of + span / 3;
    let forecast = report.period_spend_usd
        + report.burn_rate_usd_per_hour * Decimal::from(forecast_until - as_of)
            / Decimal::from(3600);
    let mut y_max = forecast.max(report.period_spend_usd);
    if let Some(budget) = report.budget_usd {
        y_max = y_max.max(budget);
    }
    let frame = Frame {
        x0: first.at,
        x1: forecast_until,
        y_max: nice_max(y_max),
    };
    let _ = write!(
        out,
        r#"<svg id="chart-spend" class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="Spend this period against the budget, with the forecast" xmlns="http://www.w3.org/2000/svg">"#
    );
    frame.axes(&mut out, "USD this period", &|v| usd(v));
    if let Some(budget) = report.budget_usd {
        let y = frame.y(budget);
        let _ = write!(
            out,
            r#"<line class="budget" x1="{LEFT}" y1="{y}" x2="{}" y2="{y}"/><text class="label budget-label" x="{}" y="{}">budget {}</text>"#,
            WIDTH - RIGHT,
            LEFT + 6,
            y - 6,
            usd(budget)
        );
    }
    let points: Vec<(i64, Decimal)> = timeline
        .iter()
        .map(|p| (p.at, p.period_spend_usd))
        .collect();
    frame.polyline(&mut out, "series spend", &points);
    frame.polyline(
        &mut out,
        "series forecast",
        &[(as_of, report.period_spend_usd), (forecast_until, forecast)],
    );
    let _ = write!(
        out,
        r#"<text class="label" x="{}" y="{}" text-anchor="end">forecast at {}/h</text></svg>"#,
        WIDTH - RIGHT,
        frame.y(forecast) - 8,
        usd(report.burn_rate_usd_per_hour)
    );
    out
}

fn vcpu_chart(timeline: &[TimelinePoint]) -> String {
    let (Some(first), Some(last)) = (timeline.first(), timeline.last()) else {
        return "<p>Nothing ran.</p>".into();
    };
    let peak = timeline
        .iter()
        .map(|p| p.running_vcpu)
        .max()
        .unwrap_or_default();
    let frame = Frame {
        x0: first.at,
        x1: last.at.max(first.at + 60),
        y_max: nice_max(peak),
    };
    let mut out = String::new();
    let _ = write!(
        out,
        r#"<svg id="chart-vcpu" class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="Running vCPU over time" xmlns="http://www.w3.org/2000/svg">"#
    );
    frame.axes(&mut out, "running vCPU", &|v| v.normalize().to_string());
    let points: Vec<(i64, Decimal)> = timeline.iter().map(|p| (p.at, p.running_vcpu)).collect();
    frame.polyline(&mut out, "series vcpu", &points);
    out.push_str("</svg>");
    out
}

/// Horizontal bars, largest first.
fn bar_chart(
    id: &str,
    label: &str,
    bars: &[(String, Decimal)],
    value_text: &dyn Fn(Decimal) -> String,
) -> String {
    let row = 26;
    let height = TOP + row * i64::try_from(bars.len().max(1)).unwrap_or(1) + 10;
    let max = bars.iter().map(|(_, v)| *v).max().unwrap_or_default();
    let name_width = 220;
    let area = Decimal::from(WIDTH - name_width - 120);
    let mut out = String::new();
    let _ = write!(
        out,
        r#"<svg id="{id}" class="chart" viewBox="0 0 {WIDTH} {height}" role="img" aria-label="{}" xmlns="http://www.w3.org/2000/svg">"#,
        escape(label)
    );
    for (index, (name, value)) in bars.iter().enumerate() {
        let y = TOP + row * i64::try_from(index).unwrap_or(0);
        let width = if max.is_zero() {
            0
        } else {
            pixels(*value * area / max).max(1)
        };
        let _ = write!(
            out,
            r#"<text class="tick" x="{}" y="{}" text-anchor="end">{}</text><rect class="bar" x="{name_width}" y="{}" width="{width}" height="{}"/><text class="tick" x="{}" y="{}">{}</text>"#,
            name_width - 8,
            y + 15,
            escape(name),
            y + 2,
            row - 8,
            name_width + width + 6,
            y + 15,
            escape(&value_text(*value))
        );
    }
    out.push_str("</svg>");
    out
}

const STYLE: &str = r#"
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1d2433; margin: 2rem auto; max-width: 860px; padding: 0 1rem; }
h1 { font-size: 1.5rem; margin-bottom: .2rem; } h2 { font-size: 1.1rem; margin-top: 2rem; }
.muted { color: #5b6478; } .figures { display: flex; flex-wrap: wrap; gap: 1rem; margin: 1rem 0; }
.figure { border: 1px solid #dde2ec; border-radius: 8px; padding: .6rem .9rem; min-width: 150px; }
.figure b { display: block; font-size: 1.25rem; }
.chart { width: 100%; height: auto; background: #fbfcfe; border: 1px solid #e6e9f0; border-radius: 8px; }
.axis { stroke: #8a93a6; stroke-width: 1; } .grid { stroke: #e6e9f0; stroke-width: 1; }
.tick, .label { font-size: 11px; fill: #5b6478; } .budget-label { fill: #b42318; }
.series { fill: none; stroke-width: 2.5; stroke-linejoin: round; }
.spend { stroke: #2456d6; } .forecast { stroke: #e07b00; stroke-dasharray: 6 5; } .vcpu { stroke: #0f8a5f; }
.budget { stroke: #b42318; stroke-width: 1.5; stroke-dasharray: 2 3; } .bar { fill: #2456d6; }
table { border-collapse: collapse; width: 100%; font-size: 13px; } th, td { padding: .3rem .5rem; border-bottom: 1px solid #e6e9f0; text-align: left; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
"#;

/// The whole page.
pub fn render(report: &StatusReport, timeline: &[TimelinePoint], as_of: i64) -> String {
    let mut page = String::new();
    let _ = write!(
        page,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>batchguard report — {}</title><style>{STYLE}</style></head><body>",
        escape(&report.as_of)
    );
    let _ = write!(
        page,
        "<h1>batchguard — AWS Batch spend</h1><p class=\"muted\">As of {} · budget period {} to {}</p><div class=\"figures\">",
        escape(&report.as_of),
        escape(&report.period_start),
        escape(&report.period_end)
    );
    let mut figure = |name: &str, value: String| {
        let _ = write!(
            page,
            "<div class=\"figure\"><span class=\"muted\">{}</span><b>{}</b></div>",
            escape(name),
            escape(&value)
        );
    };
    figure("spend this period", usd(report.period_spend_usd));
    if let Some(budget) = report.budget_usd {
        figure("budget", usd(budget));
    }
    if let Some(percent) = report.budget_used_percent {
        figure("budget used", format!("{:.1} %", percent));
    }
    figure(
        "burn rate",
        format!("{}/h", usd(report.burn_rate_usd_per_hour)),
    );
    figure(
        "running",
        format!(
            "{} tasks, {} vCPU",
            report.running_tasks,
            report.running_vcpu.normalize()
        ),
    );
    if let Some(when) = &report.projected_exhaustion {
        figure("budget runs out", when.clone());
    }
    page.push_str("</div>");

    page.push_str("<h2>Spend this period against the budget</h2>");
    page.push_str(&spend_chart(report, timeline, as_of));
    page.push_str("<h2>Spend by job queue</h2>");
    let mut queues: Vec<(String, Decimal)> = report
        .by_queue
        .iter()
        .map(|(queue, spend)| (queue.clone(), *spend))
        .collect();
    queues.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    page.push_str(&bar_chart(
        "chart-queues",
        "Spend by job queue",
        &queues,
        &|v| usd(v),
    ));
    page.push_str("<h2>Running vCPU</h2>");
    page.push_str(&vcpu_chart(timeline));
    page.push_str("<h2>Jobs by state</h2>");
    let mut states: BTreeMap<&str, u64> = BTreeMap::new();
    for job in &report.jobs {
        *states.entry(job.status.unwrap_or("UNKNOWN")).or_default() += 1;
    }
    let states: Vec<(String, Decimal)> = states
        .into_iter()
        .map(|(state, count)| (state.to_owned(), Decimal::from(count)))
        .collect();
    page.push_str(&bar_chart("chart-states", "Jobs by state", &states, &|v| {
        v.to_string()
    }));

    page.push_str("<h2>Costliest jobs</h2><table id=\"costliest-jobs\"><thead><tr><th>job</th><th>queue</th><th>definition</th><th>state</th><th class=\"num\">attempts</th><th class=\"num\">billed</th><th class=\"num\">cost</th></tr></thead><tbody>");
    let mut jobs: Vec<_> = report
        .jobs
        .iter()
        .filter(|j| j.cost_usd.is_some())
        .collect();
    jobs.sort_by(|a, b| {
        b.cost_usd
            .cmp(&a.cost_usd)
            .then_with(|| a.job_id.cmp(&b.job_id))
    });
    for job in jobs.into_iter().take(COSTLIEST_JOBS) {
        let _ = write!(
            page,
            "<tr><td title=\"{}\">{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{} s</td><td class=\"num\">{}</td></tr>",
            escape(&job.job_id),
            escape(&job.job_name),
            escape(&job.queue),
            escape(&job.job_definition),
            escape(job.status.unwrap_or("")),
            job.attempts,
            job.billed_seconds,
            usd(job.cost_usd.unwrap_or_default())
        );
    }
    let _ = writeln!(
        page,
        "</tbody></table><p class=\"muted\">{} events read, {} duplicates, {} skipped, {} rejected. Figures follow the Fargate billing rules (per second, one-minute minimum, from the image pull).</p></body></html>",
        report.events.read, report.events.duplicates, report.events.skipped, report.events.rejected
    );
    page
}
