//! `batchguard report --html`: one self-contained page (inline CSS and SVG; no script, font or
//! URL it would fetch) with the charts a person would rather look at than read.
//!
//! The charts are drawn here as plain SVG (polylines, rectangles, text) with decimal
//! arithmetic for the coordinates: a handful of line and bar charts do not justify a plotting
//! crate and its fonts.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use rust_decimal::prelude::ToPrimitive;
use rust_decimal::{Decimal, RoundingStrategy};

use shared::analysis::report::{StatusReport, TimelinePoint, instant, money};
use shared::core::activity::{Activity, By, Distribution, JobTimings};
use shared::core::facts::JobStatus;

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

/// Columns of the state-transition chart, at most.
const TRANSITION_BUCKETS: i64 = 48;

const STATES: [JobStatus; 7] = JobStatus::ALL;

fn state_class(status: JobStatus) -> &'static str {
    match status {
        JobStatus::Submitted => "s-submitted",
        JobStatus::Pending => "s-pending",
        JobStatus::Runnable => "s-runnable",
        JobStatus::Starting => "s-starting",
        JobStatus::Running => "s-running",
        JobStatus::Succeeded => "s-succeeded",
        JobStatus::Failed => "s-failed",
    }
}

/// Transitions over time, stacked by the state entered.
fn transitions_chart(activity: &Activity, as_of: i64) -> String {
    let Some(first) = activity.transitions.first() else {
        return "<p>No job state changes.</p>".into();
    };
    let x0 = first.at.floor_seconds();
    let x1 = as_of.max(x0 + 60);
    let raw = ((x1 - x0) + TRANSITION_BUCKETS - 1) / TRANSITION_BUCKETS;
    // A bucket a person reads at a glance: 1, 5, 10, 15, 30 min, 1, 2, 3, 6, 12 h or a day.
    let bucket = [
        60, 300, 600, 900, 1_800, 3_600, 7_200, 10_800, 21_600, 43_200, 86_400,
    ]
    .into_iter()
    .find(|&b| b >= raw)
    .unwrap_or(raw.max(1));
    let x0 = x0 - x0.rem_euclid(bucket);
    let columns = ((x1 - x0) / bucket + 1).clamp(1, TRANSITION_BUCKETS + 1);
    let mut counts = vec![[0_u64; STATES.len()]; usize::try_from(columns).unwrap_or(1)];
    for transition in &activity.transitions {
        let index = ((transition.at.floor_seconds() - x0) / bucket).clamp(0, columns - 1);
        let state = STATES
            .iter()
            .position(|s| *s == transition.status)
            .unwrap_or(0);
        counts[usize::try_from(index).unwrap_or(0)][state] += 1;
    }
    let peak = counts
        .iter()
        .map(|c| c.iter().sum::<u64>())
        .max()
        .unwrap_or(0);
    let frame = Frame {
        x0,
        x1: x0 + bucket * columns,
        y_max: nice_max(Decimal::from(peak)),
    };
    let mut out = String::new();
    let _ = write!(
        out,
        r#"<svg id="chart-transitions" class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="Job state transitions over time, by the state entered" xmlns="http://www.w3.org/2000/svg">"#
    );
    frame.axes(
        &mut out,
        &match bucket {
            b if b % 3_600 == 0 => format!("transitions per {} h", b / 3_600),
            b if b % 60 == 0 => format!("transitions per {} min", b / 60),
            b => format!("transitions per {b} s"),
        },
        &|v| v.normalize().to_string(),
    );
    let column = (WIDTH - LEFT - RIGHT) / columns;
    for (index, states) in counts.iter().enumerate() {
        let x = frame.x(x0 + bucket * i64::try_from(index).unwrap_or(0));
        let mut below = 0_u64;
        for (state, &count) in states.iter().enumerate() {
            if count == 0 {
                continue;
            }
            let top = frame.y(Decimal::from(below + count));
            let bottom = frame.y(Decimal::from(below));
            let _ = write!(
                out,
                r#"<rect class="seg {}" x="{x}" y="{top}" width="{}" height="{}"><title>{} {}</title></rect>"#,
                state_class(STATES[state]),
                (column - 1).max(1),
                (bottom - top).max(1),
                count,
                STATES[state].as_str()
            );
            below += count;
        }
    }
    // Legend.
    for (i, state) in STATES.iter().enumerate() {
        let x = LEFT + 10 + i64::try_from(i).unwrap_or(0) * 95;
        let _ = write!(
            out,
            r#"<rect class="{}" x="{x}" y="4" width="10" height="10"/><text class="tick" x="{}" y="13">{}</text>"#,
            state_class(*state),
            x + 14,
            state.as_str()
        );
    }
    out.push_str("</svg>");
    out
}

fn duration(ms: i64) -> String {
    let seconds = ms / 1000;
    match seconds {
        s if s < 120 => format!("{}.{:01} s", s, (ms % 1000) / 100),
        s if s < 7200 => format!("{} min {} s", s / 60, s % 60),
        s => format!("{} h {} min", s / 3600, (s % 3600) / 60),
    }
}

/// Duration buckets of the timing histograms: upper bounds in seconds.
const TIMING_BUCKETS: [(i64, &str); 8] = [
    (10, "< 10 s"),
    (30, "10–30 s"),
    (60, "30 s – 1 min"),
    (300, "1–5 min"),
    (900, "5–15 min"),
    (3600, "15 min – 1 h"),
    (10_800, "1–3 h"),
    (i64::MAX, "≥ 3 h"),
];

/// Reads one timing of a job.
type TimingOf = fn(&JobTimings) -> Option<i64>;

const TIMINGS: [(&str, &str, TimingOf); 4] = [
    ("queue-wait", "queue wait (RUNNABLE → STARTING)", |t| {
        t.queue_wait_ms
    }),
    ("image-pull", "image pull", |t| t.image_pull_ms),
    ("run", "run time (RUNNING)", |t| t.run_ms),
    ("total", "total (created → stopped)", |t| t.total_ms),
];

fn timings_section(activity: &Activity) -> String {
    let mut out = String::from(
        r#"<table id="timings"><thead><tr><th>timing</th><th class="num">jobs</th><th class="num">p50</th><th class="num">p90</th><th class="num">p99</th><th class="num">max</th></tr></thead><tbody>"#,
    );
    let mut charts = String::new();
    for (id, name, timing) in TIMINGS {
        let Some(d) = activity.distribution(timing) else {
            continue;
        };
        let Distribution {
            count,
            p50,
            p90,
            p99,
            max,
        } = d;
        let _ = write!(
            out,
            r#"<tr><td>{}</td><td class="num">{count}</td><td class="num">{}</td><td class="num">{}</td><td class="num">{}</td><td class="num">{}</td></tr>"#,
            escape(name),
            duration(p50),
            duration(p90),
            duration(p99),
            duration(max)
        );
        let mut histogram = [0_u64; TIMING_BUCKETS.len()];
        for ms in activity.jobs.iter().filter_map(|j| timing(&j.timings)) {
            let index = TIMING_BUCKETS
                .iter()
                .position(|(upper, _)| ms < upper.saturating_mul(1000))
                .unwrap_or(TIMING_BUCKETS.len() - 1);
            histogram[index] += 1;
        }
        let bars: Vec<(String, Decimal)> = TIMING_BUCKETS
            .iter()
            .zip(histogram)
            .map(|((_, label), n)| ((*label).to_owned(), Decimal::from(n)))
            .collect();
        let _ = write!(charts, "<h3>{}</h3>", escape(name));
        charts.push_str(&bar_chart(
            &format!("chart-timing-{id}"),
            &format!("Distribution of {name}"),
            &bars,
            &|v| format!("{v} jobs"),
        ));
    }
    out.push_str("</tbody></table>");
    out.push_str(&charts);
    out
}

fn transitions_table(activity: &Activity) -> String {
    let counts = activity.transition_counts(By::Queue);
    let queues: std::collections::BTreeSet<&String> = counts.keys().map(|(q, _)| q).collect();
    let mut out = String::from(r#"<table id="transitions-by-queue"><thead><tr><th>queue</th>"#);
    for state in STATES {
        let _ = write!(out, r#"<th class="num">{}</th>"#, state.as_str());
    }
    out.push_str(r#"<th class="num">retries</th></tr></thead><tbody>"#);
    for queue in queues {
        let _ = write!(out, "<tr><td>{}</td>", escape(queue));
        for state in STATES {
            let n = counts.get(&(queue.clone(), state)).copied().unwrap_or(0);
            let _ = write!(out, r#"<td class="num">{n}</td>"#);
        }
        let retries: u32 = activity
            .jobs
            .iter()
            .filter(|j| &j.queue == queue)
            .map(|j| j.retries)
            .sum();
        let _ = write!(out, r#"<td class="num">{retries}</td></tr>"#);
    }
    out.push_str("</tbody></table>");
    let codes = activity.exit_codes();
    if !codes.is_empty() {
        out.push_str(r#"<p class="muted">Exit codes of finished jobs: "#);
        let list: Vec<String> = codes
            .iter()
            .map(|(code, n)| format!("{code} × {n}"))
            .collect();
        out.push_str(&escape(&list.join(", ")));
        out.push_str(".</p>");
    }
    out
}

fn spot_section(activity: &Activity) -> String {
    let lost: Decimal = activity
        .interruptions
        .iter()
        .filter_map(|i| i.cost_usd)
        .sum();
    let mut out = format!(
        "<p>{} Spot interruptions; interrupted attempts cost {}; Spot saved {} against the on-demand price of the same billed time.</p>",
        activity.interruptions.len(),
        usd(lost),
        usd(activity.spot_savings_usd())
    );
    if activity.interruptions.is_empty() {
        return out;
    }
    out.push_str(r#"<table id="interruptions"><thead><tr><th>queue</th><th>zone</th><th class="num">interruptions</th></tr></thead><tbody>"#);
    for ((queue, zone), n) in activity.interruption_counts() {
        let _ = write!(
            out,
            r#"<tr><td>{}</td><td>{}</td><td class="num">{n}</td></tr>"#,
            escape(&queue),
            escape(&zone)
        );
    }
    out.push_str("</tbody></table>");
    out
}

fn ec2_section(activity: &Activity) -> String {
    if activity.instances.is_empty() {
        return String::new();
    }
    let mut out = String::from(
        r#"<h2>EC2 instances</h2><table id="instances"><thead><tr><th>instance</th><th>type</th><th>split by</th><th>zone</th><th>compute environment</th><th class="num">billed</th><th class="num">bill</th><th class="num">jobs' shares</th><th class="num">idle</th></tr></thead><tbody>"#,
    );
    for instance in &activity.instances {
        let _ = write!(
            out,
            r#"<tr><td title="{}">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}{}</td><td class="num">{} s</td><td class="num">{}</td><td class="num">{}</td><td class="num">{}</td></tr>"#,
            escape(&instance.container_instance_arn),
            escape(instance.ec2_instance_id.as_deref().unwrap_or("?")),
            escape(instance.instance_type.as_deref().unwrap_or("?")),
            escape(
                &instance
                    .split_basis
                    .map_or_else(|| "—".to_owned(), |basis| basis.to_string())
            ),
            escape(instance.availability_zone.as_deref().unwrap_or("?")),
            escape(&instance.compute_environment),
            if instance.spot { " (Spot)" } else { "" },
            instance.billed_seconds,
            instance.cost_usd.map_or_else(|| "unpriced".to_owned(), usd),
            usd(instance.attributed_usd),
            instance.idle_usd.map_or_else(|| "—".to_owned(), usd),
        );
    }
    out.push_str(r#"</tbody></table><p class="muted">Idle by compute environment: "#);
    let idle: Vec<String> = activity
        .idle_by_compute_environment()
        .into_iter()
        .map(|(ce, idle)| format!("{ce} {} (exact {})", usd(idle), money(idle)))
        .collect();
    out.push_str(&escape(&idle.join("; ")));
    out.push_str(". A job's share of an instance is its reserved vCPU and memory weighted 9:1 (as AWS split cost allocation data does); idle is the rest of the instance's bill.</p>");
    let placements = activity.placements();
    out.push_str(r#"<table id="placements"><thead><tr><th>zone</th><th>instance type</th><th class="num">jobs</th></tr></thead><tbody>"#);
    for ((zone, kind), n) in placements {
        let _ = write!(
            out,
            r#"<tr><td>{}</td><td>{}</td><td class="num">{n}</td></tr>"#,
            escape(&zone),
            escape(&kind)
        );
    }
    out.push_str("</tbody></table>");
    out
}

fn parents_section(activity: &Activity) -> String {
    if activity.parents.is_empty() {
        return String::new();
    }
    let mut out = String::from(
        r#"<h2>Array and multi-node jobs</h2><table id="parents"><thead><tr><th>job</th><th>kind</th><th class="num">children</th><th>by state</th><th class="num">retries</th><th class="num">cost</th></tr></thead><tbody>"#,
    );
    for parent in &activity.parents {
        let states: Vec<String> = parent
            .by_status
            .iter()
            .map(|(s, n)| format!("{} {n}", s.as_str()))
            .collect();
        let _ = write!(
            out,
            r#"<tr><td>{}</td><td>{}</td><td class="num">{}</td><td>{}</td><td class="num">{}</td><td class="num">{}</td></tr>"#,
            escape(&parent.job_id),
            match parent.kind {
                shared::core::activity::ParentKind::Array => "array",
                shared::core::activity::ParentKind::MultiNode => "multi-node",
            },
            parent.children,
            escape(&states.join(", ")),
            parent.retries,
            usd(parent.cost_usd)
        );
    }
    out.push_str("</tbody></table>");
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
.s-submitted { fill: #c3cad8; } .s-pending { fill: #98a2b8; } .s-runnable { fill: #f2b84b; } .s-starting { fill: #8fb8f2; }
.s-running { fill: #2456d6; } .s-succeeded { fill: #0f8a5f; } .s-failed { fill: #b42318; }
h3 { font-size: .95rem; margin: 1rem 0 .3rem; }
table { border-collapse: collapse; width: 100%; font-size: 13px; } th, td { padding: .3rem .5rem; border-bottom: 1px solid #e6e9f0; text-align: left; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
"#;

/// The whole page.
pub fn render(
    report: &StatusReport,
    timeline: &[TimelinePoint],
    activity: &Activity,
    as_of: i64,
) -> String {
    let mut page = String::new();
    let _ = write!(
        page,
        r#"<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>batchguard report — {}</title><style>{STYLE}</style></head><body>"#,
        escape(&report.as_of)
    );
    let _ = write!(
        page,
        r#"<h1>batchguard — AWS Batch spend</h1><p class="muted">As of {} · budget period {} to {}</p><div class="figures">"#,
        escape(&report.as_of),
        escape(&report.period_start),
        escape(&report.period_end)
    );
    let mut figure = |name: &str, value: String| {
        let _ = write!(
            page,
            r#"<div class="figure"><span class="muted">{}</span><b>{}</b></div>"#,
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
    if !report.budgets.is_empty() {
        page.push_str(&budgets_section(report));
    }
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
    page.push_str("<h2>Job state transitions</h2>");
    page.push_str(&transitions_chart(activity, as_of));
    page.push_str(&transitions_table(activity));
    page.push_str("<h2>Timings</h2>");
    page.push_str(&timings_section(activity));
    page.push_str("<h2>Spot</h2>");
    page.push_str(&spot_section(activity));
    page.push_str(&ec2_section(activity));
    page.push_str(&parents_section(activity));

    page.push_str(r#"<h2>Costliest jobs</h2><table id="costliest-jobs"><thead><tr><th>job</th><th>queue</th><th>definition</th><th>state</th><th class="num">attempts</th><th class="num">billed</th><th class="num">cost</th></tr></thead><tbody>"#);
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
            r#"<tr><td title="{}">{}</td><td>{}</td><td>{}</td><td>{}</td><td class="num">{}</td><td class="num">{} s</td><td class="num">{}</td></tr>"#,
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

/// The budgets of `--budgets`: a table of each one's figures and action, and a chart of the
/// share of its amount each has used.
fn budgets_section(report: &StatusReport) -> String {
    let mut out = String::from(
        r#"<h2>Budgets</h2><table id="budgets"><thead><tr><th>budget</th><th>parent</th><th>counts</th><th>period</th><th class="num">amount</th><th class="num">this period</th><th class="num">used</th><th class="num">committed</th><th class="num">forecast</th><th>action now</th></tr></thead><tbody>"#,
    );
    for line in &report.budgets {
        let action = match line.action {
            Some(action) if line.dry_run => format!("{action} (dry run)"),
            Some(action) => action.to_string(),
            None => "-".to_owned(),
        };
        let _ = write!(
            out,
            r#"<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class="num">{}</td><td class="num">{}</td><td class="num">{} %</td><td class="num">{}</td><td class="num">{}</td><td>{}</td></tr>"#,
            escape(&line.name),
            escape(line.parent.as_deref().unwrap_or("-")),
            line.counts,
            shared::core::budgets::period_name(line.period),
            usd(line.amount_usd),
            usd(line.period_spend_usd),
            line.used_percent.round_dp(1),
            escape(&super::text::committed_cell(line)),
            usd(line.forecast_usd),
            escape(&action),
        );
    }
    out.push_str("</tbody></table>");
    let used: Vec<(String, Decimal)> = report
        .budgets
        .iter()
        .map(|line| (line.name.clone(), line.used_percent))
        .collect();
    out.push_str(&bar_chart(
        "chart-budgets",
        "Share of each budget used this period",
        &used,
        &|v| format!("{} %", v.round_dp(1)),
    ));
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests fail loudly")]
mod tests {
    use shared::core::budget::BudgetPeriod;
    use shared::core::ledger::Ledger;
    use shared::core::prices::PriceTable;
    use shared::ports::IngestCounts;

    use super::*;

    #[test]
    fn the_ec2_section_lists_each_instance_with_its_bill_shares_and_idle_part() {
        let workload = batchguard_tests::mixed_ec2_workload();
        let prices = PriceTable::builtin_with_overrides(workload.prices).unwrap();
        let mut ledger = Ledger::new(prices, BudgetPeriod::Month);
        for fact in &workload.facts {
            ledger.apply(fact);
        }
        let walk = ledger.walk(workload.at);
        let activity = Activity::build(&workload.facts, &walk);
        let report = StatusReport::build(&ledger, workload.at, None, IngestCounts::default());
        let timeline = shared::analysis::report::timeline(&ledger, workload.at, 50);
        let page = render(&report, &timeline, &activity, workload.at);

        let instances = page
            .split(r#"id="instances""#)
            .nth(1)
            .unwrap()
            .split("</table>")
            .next()
            .unwrap();
        assert_eq!(
            instances.matches("<tr>").count(),
            1 + 3,
            "header and 3 instances"
        );
        for instance in &walk.instances {
            let row = instances
                .split(&format!(r#"title="{}""#, instance.container_instance_arn))
                .nth(1)
                .unwrap()
                .split("</tr>")
                .next()
                .unwrap();
            assert!(row.contains(&usd(instance.cost_usd.unwrap())), "{row}");
            assert!(row.contains(&usd(instance.idle_usd.unwrap())), "{row}");
        }
        assert!(instances.contains("ec2-spot (Spot)"));
        // Placement: the EC2 jobs by zone and instance type, the Fargate ones as `fargate`.
        let placements = page.split(r#"id="placements""#).nth(1).unwrap();
        assert!(placements.contains("<td>m5.xlarge</td>"));
        assert!(placements.contains("<td>fargate</td>"));
    }
}
