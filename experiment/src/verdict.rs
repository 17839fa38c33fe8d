//! Expectations over windows: a metric of a flow's series in a window,
//! compared with a limit, gives a verdict that shows the observed value,
//! the limit, the margin and the window resolved to seconds.
//!
//! No data never passes: a window with fewer requests than `min_samples`
//! fails and says so. `each` and `sliding` windows pass when every window
//! does (or all but `allow` of them).

use std::fmt;

use crate::series::{Bucket, FlowSeries, Outcome};
use crate::units::{Dimension, parse_multiple, parse_points};
use crate::window::{Anchor, BEFORE, Edge, Resolved, Timeline, WindowError, WindowSpec};

/// `min_samples` when an expectation gives none.
pub const MIN_SAMPLES: u64 = 100;

/// A second counts as down for `longest_outage` when at least this share
/// of its requests failed.
pub const OUTAGE_SHARE: f64 = 0.5;

/// What is measured over a window.
#[derive(Debug, Clone, PartialEq)]
pub enum Metric {
    /// A latency quantile: `p50`, `p99`, `p99.9` (as 0.5, 0.99, 0.999).
    Quantile(f64),
    Max,
    ErrorRate,
    /// Requests of one error class (`errors{timeout}`), or of all.
    Errors(Option<Outcome>),
    RateAchieved,
    /// The longest run of seconds in which at least [`OUTAGE_SHARE`] of the
    /// requests failed.
    LongestOutage,
    ErrorsFromTerminating,
    CrossZoneShare,
    /// How many pods answered requests without an error (one, for a
    /// client with session affinity).
    ServingPods,
    /// Time from an anchor (an event's end by default) until the flow is
    /// back within `tolerance` of its value before the event, and stays
    /// so for `stable_for` seconds.
    RecoveryTime(Recovery),
    /// The same from the event's start (by default): how long until
    /// traffic is served again while the fault may still be on (a killed
    /// node's requests taken over by the other replicas).
    FailoverTime(Recovery),
    /// The share of the error budget a window used: its bad requests
    /// (failed, or answered slower than `good`) over what the SLO allows,
    /// `(1 - slo) x requests`. An answer that is both an HTTP error and
    /// slow counts twice (the histograms do not split latency by class),
    /// so the figure errs on the side of a budget used up.
    ErrorBudget {
        slo: f64,
        /// Seconds; `None`: every answered request that did not fail is
        /// good.
        good: Option<f64>,
    },
}

/// How `recovery_time` decides the flow has recovered.
#[derive(Debug, Clone, PartialEq)]
pub struct Recovery {
    pub after: Anchor,
    /// Each second's p99 at most this multiple of the p99 before.
    pub p99: Option<f64>,
    /// Each second's error rate at most this many points above the rate
    /// before.
    pub error_rate: Option<f64>,
    pub stable_for: u64,
}

impl Recovery {
    /// `tolerance` values as written: `1.25x` and `+0.1pp`.
    pub fn tolerance(
        p99: Option<&str>,
        error_rate: Option<&str>,
    ) -> Result<(Option<f64>, Option<f64>), String> {
        let p99 = p99.map(parse_multiple).transpose()?;
        let err = error_rate.map(parse_points).transpose()?;
        if p99.is_none() && err.is_none() {
            return Err(
                "a recovery tolerance needs p99 (like 1.25x) or error_rate (like +0.1pp)".into(),
            );
        }
        Ok((p99, err))
    }
}

impl Metric {
    /// `p99`, `p99.9`, `max`, `error_rate`, `errors`, `errors{timeout}`,
    /// `rate_achieved`, `longest_outage`, `errors_from_terminating`,
    /// `cross_zone_share`, `serving_pods`. (`recovery_time` has its own form.)
    pub fn parse(name: &str) -> Result<Metric, String> {
        let n = name.trim();
        if let Some(q) = n.strip_prefix('p')
            && let Ok(v) = q.parse::<f64>()
        {
            if !(0.0 < v && v <= 100.0) {
                return Err(format!("{name:?}: a percentile is p0.1 to p100"));
            }
            return Ok(Metric::Quantile(v / 100.0));
        }
        if let Some(class) = n.strip_prefix("errors{").and_then(|r| r.strip_suffix('}')) {
            let outcome = Outcome::parse(class.trim())
                .filter(|o| o.is_error())
                .ok_or_else(|| {
                    format!(
                        "{name:?}: no error class {class:?}; the classes are {}",
                        error_classes()
                    )
                })?;
            return Ok(Metric::Errors(Some(outcome)));
        }
        Ok(match n {
            "max" => Metric::Max,
            "error_rate" => Metric::ErrorRate,
            "errors" => Metric::Errors(None),
            "rate_achieved" => Metric::RateAchieved,
            "longest_outage" => Metric::LongestOutage,
            "errors_from_terminating" => Metric::ErrorsFromTerminating,
            "cross_zone_share" => Metric::CrossZoneShare,
            "serving_pods" => Metric::ServingPods,
            _ => {
                return Err(format!(
                    "{name:?} is not a metric: use p50..p99.9, max, error_rate, errors, errors{{CLASS}}, rate_achieved, longest_outage, recovery_time, failover_time, error_budget, errors_from_terminating, cross_zone_share or serving_pods"
                ));
            }
        })
    }

    pub fn dimension(&self) -> Dimension {
        match self {
            Metric::Quantile(_) | Metric::Max | Metric::LongestOutage | Metric::RecoveryTime(_) => {
                Dimension::Time
            }
            Metric::FailoverTime(_) => Dimension::Time,
            Metric::ErrorRate | Metric::CrossZoneShare | Metric::ErrorBudget { .. } => {
                Dimension::Share
            }
            Metric::RateAchieved => Dimension::Rate,
            Metric::Errors(_) | Metric::ErrorsFromTerminating | Metric::ServingPods => {
                Dimension::Count
            }
        }
    }

    /// The metric's value over a window of `flow` (NaN when the window has
    /// nothing to measure it on).
    pub fn compute(
        &self,
        flow: &FlowSeries,
        window: &Resolved,
        timeline: &Timeline,
    ) -> Result<f64, WindowError> {
        let bucket = merged(flow, window);
        Ok(match self {
            Metric::Quantile(q) => bucket.latency_quantile(*q),
            Metric::Max => bucket.latency_max(),
            Metric::ErrorRate => bucket.error_rate(),
            Metric::Errors(None) => bucket.errors() as f64,
            Metric::Errors(Some(class)) => bucket.count(*class) as f64,
            Metric::RateAchieved => bucket.rate_achieved(),
            Metric::ErrorsFromTerminating => bucket.errors_from_terminating() as f64,
            Metric::CrossZoneShare => bucket.cross_zone_share(),
            Metric::ServingPods => bucket.serving_pods() as f64,
            Metric::LongestOutage => {
                let (mut longest, mut run) = (0u64, 0u64);
                for s in window.each_second() {
                    let b = flow.second(s);
                    if b.total() > 0 && b.error_rate() >= OUTAGE_SHARE {
                        run += 1;
                        longest = longest.max(run);
                    } else {
                        run = 0;
                    }
                }
                longest as f64
            }
            Metric::RecoveryTime(r) => recovery_time(flow, r, timeline, Edge::End)?,
            Metric::FailoverTime(r) => recovery_time(flow, r, timeline, Edge::Start)?,
            Metric::ErrorBudget { slo, good } => {
                let total = bucket.total();
                if total == 0 {
                    f64::NAN
                } else {
                    let slow = good.map_or(0, |g| bucket.answered_slower_than(g));
                    let bad = (bucket.errors() + slow).min(total);
                    bad as f64 / (total as f64 * (1.0 - slo))
                }
            }
        })
    }

    /// Whether the metric counts failed requests, so that a verdict on it
    /// that fails says which classes failed.
    pub fn counts_errors(&self) -> bool {
        matches!(
            self,
            Metric::ErrorRate
                | Metric::Errors(_)
                | Metric::LongestOutage
                | Metric::ErrorsFromTerminating
                | Metric::ErrorBudget { .. }
        )
    }

    pub fn name(&self) -> String {
        match self {
            Metric::Quantile(q) => format!("p{}", (q * 1e5).round() / 1e3),
            Metric::Max => "max".into(),
            Metric::ErrorRate => "error_rate".into(),
            Metric::Errors(None) => "errors".into(),
            Metric::Errors(Some(c)) => format!("errors{{{}}}", c.as_str()),
            Metric::RateAchieved => "rate_achieved".into(),
            Metric::LongestOutage => "longest_outage".into(),
            Metric::ErrorsFromTerminating => "errors_from_terminating".into(),
            Metric::CrossZoneShare => "cross_zone_share".into(),
            Metric::ServingPods => "serving_pods".into(),
            Metric::RecoveryTime(r) => format!("recovery_time after {}", r.after),
            Metric::FailoverTime(r) => format!("failover_time after {}", r.after),
            Metric::ErrorBudget { slo, good } => match good {
                Some(g) => format!(
                    "error_budget used (slo {}%, good < {}ms)",
                    slo * 100.0,
                    g * 1e3
                ),
                None => format!("error_budget used (slo {}%)", slo * 100.0),
            },
        }
    }
}

fn error_classes() -> String {
    Outcome::ALL
        .iter()
        .filter(|o| o.is_error())
        .map(|o| o.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The error classes of a bucket, most frequent first, for a failed
/// verdict to say what failed: `; errors: 4 timeout, 1 reset`.
fn error_breakdown(bucket: &Bucket) -> String {
    let mut classes: Vec<(Outcome, u64)> = bucket
        .outcomes
        .iter()
        .filter(|(o, n)| o.is_error() && **n > 0)
        .map(|(o, n)| (*o, *n))
        .collect();
    if classes.is_empty() {
        return String::new();
    }
    classes.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let listed: Vec<String> = classes
        .iter()
        .map(|(o, n)| format!("{n} {}", o.as_str()))
        .collect();
    format!("; errors: {}", listed.join(", "))
}

fn merged(flow: &FlowSeries, window: &Resolved) -> Bucket {
    let mut out = Bucket::default();
    for &(a, b) in &window.ranges {
        out.merge(&flow.window(a, b));
    }
    out
}

/// The first second from the anchor (its `edge` unless it names one) on
/// that begins `stable_for` good seconds, minus the anchor; infinite when
/// there is none.
fn recovery_time(
    flow: &FlowSeries,
    r: &Recovery,
    timeline: &Timeline,
    edge: Edge,
) -> Result<f64, WindowError> {
    let from = r.after.resolve(timeline, edge)?;
    let before = WindowSpec::Before {
        event: r.after.event.clone(),
        span: BEFORE,
    }
    .resolve(timeline, flow.reach)?;
    let base = merged(flow, &before[0]);
    let (base_p99, base_err) = (base.latency_quantile(0.99), base.error_rate());
    let good = |s: u64| {
        let b = flow.second(s);
        if b.total() == 0 {
            return false;
        }
        let p99_ok = r.p99.is_none_or(|m| {
            let p = b.latency_quantile(0.99);
            base_p99.is_nan() || p.is_nan() || p <= m * base_p99
        });
        let err_ok = r
            .error_rate
            .is_none_or(|pp| b.error_rate() <= base_err.max(0.0) + pp + 1e-12);
        p99_ok && err_ok
    };
    let first = if from <= 0.0 { 0 } else { from.ceil() as u64 };
    let last = timeline.end.floor() as u64;
    let mut s = first;
    while s + r.stable_for <= last {
        if (s..s + r.stable_for).all(good) {
            return Ok((s as f64 - from).max(0.0));
        }
        s += 1;
    }
    Ok(f64::INFINITY)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
}

impl Op {
    fn holds(self, a: f64, b: f64) -> bool {
        match self {
            Op::Lt => a < b,
            Op::Le => a <= b,
            Op::Gt => a > b,
            Op::Ge => a >= b,
            Op::Eq => a == b,
            Op::Ne => a != b,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Eq => "==",
            Op::Ne => "!=",
        }
    }
}

/// The right-hand side of a condition.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Limit {
    /// In the metric's own unit, converted (seconds, a share, per second,
    /// a count).
    Literal(f64),
    /// This multiple of the metric's value before the window's event.
    TimesBefore(f64),
}

/// `< 300ms`, `<= 0.5%`, `== 0`, `< 2x before`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Condition {
    pub op: Op,
    pub limit: Limit,
}

impl Condition {
    pub fn parse(s: &str, dimension: Dimension) -> Result<Condition, String> {
        let t = s.trim();
        let (op, rest) = [
            ("<=", Op::Le),
            (">=", Op::Ge),
            ("==", Op::Eq),
            ("!=", Op::Ne),
            ("<", Op::Lt),
            (">", Op::Gt),
        ]
        .into_iter()
        .find_map(|(p, op)| t.strip_prefix(p).map(|r| (op, r.trim())))
        .ok_or_else(|| {
            format!("{s:?} is not a condition: write it like \"< 300ms\" (<, <=, >, >=, == or !=)")
        })?;
        let limit = match rest.strip_suffix("before") {
            Some(m) => Limit::TimesBefore(parse_multiple(m.trim())?),
            None => Limit::Literal(dimension.parse(rest)?),
        };
        Ok(Condition { op, limit })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Severity {
    Fail,
    Warn,
}

/// One expectation, ready to judge.
#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    pub name: String,
    pub flow: String,
    pub window: WindowSpec,
    pub metric: Metric,
    pub condition: Condition,
    pub min_samples: u64,
    pub severity: Severity,
    /// `each`/`sliding`: windows allowed to fail.
    pub allow: usize,
}

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Status {
    Pass,
    Fail,
    /// Failed, with severity warn.
    Warn,
}

/// A judged check, with everything needed to see why.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    pub name: String,
    pub status: Status,
    /// The metric's value (for repeated windows, the worst one's).
    pub observed: f64,
    /// The limit it was held to, in the metric's unit.
    pub limit: f64,
    /// How far inside (positive) or outside (negative) the limit.
    pub margin: f64,
    /// The window judged (the worst one for repeated windows).
    pub window: Option<Resolved>,
    pub samples: u64,
    /// Why, in words.
    pub detail: String,
}

impl Check {
    /// Judges the check on its flow's series.
    pub fn judge(&self, flow: &FlowSeries, timeline: &Timeline) -> Verdict {
        let windows = match self.window.resolve(timeline, flow.reach) {
            Ok(w) => w,
            Err(e) => {
                return self.verdict(
                    false,
                    f64::NAN,
                    f64::NAN,
                    None,
                    0,
                    format!("window {}: {e}", self.window),
                );
            }
        };
        let mut failed = 0;
        let mut worst: Option<(f64, f64, f64, Resolved, u64, String)> = None;
        for w in &windows {
            let (ok, observed, limit, samples, why) = self.judge_one(flow, w, timeline);
            let margin = signed_margin(self.condition.op, observed, limit);
            if !ok {
                failed += 1;
            }
            let worse = match &worst {
                None => true,
                Some((m, ..)) => !ok && (margin < *m || m.is_nan()),
            };
            if worse {
                worst = Some((margin, observed, limit, w.clone(), samples, why));
            }
        }
        let Some((margin, observed, limit, window, samples, why)) = worst else {
            return self.verdict(
                false,
                f64::NAN,
                f64::NAN,
                None,
                0,
                format!("window {} holds no window of the run", self.window),
            );
        };
        let ok = failed <= self.allow && !windows.is_empty();
        let mut detail = why;
        if self.window.is_repeated() {
            detail = format!(
                "{failed} of {} windows failed (allowed {}); worst: {detail}",
                windows.len(),
                self.allow
            );
        }
        let mut v = self.verdict(ok, observed, limit, Some(window), samples, detail);
        v.margin = margin;
        v
    }

    fn judge_one(
        &self,
        flow: &FlowSeries,
        w: &Resolved,
        timeline: &Timeline,
    ) -> (bool, f64, f64, u64, String) {
        let dim = self.metric.dimension();
        let samples = merged(flow, w).total();
        let is_recovery = matches!(
            self.metric,
            Metric::RecoveryTime(_) | Metric::FailoverTime(_)
        );
        if !is_recovery && samples < self.min_samples {
            return (
                false,
                f64::NAN,
                f64::NAN,
                samples,
                format!(
                    "{samples} samples in {w}, at least {} needed: no data never passes",
                    self.min_samples
                ),
            );
        }
        let observed = match self.metric.compute(flow, w, timeline) {
            Ok(v) => v,
            Err(e) => return (false, f64::NAN, f64::NAN, samples, e.to_string()),
        };
        let limit = match self.condition.limit {
            Limit::Literal(v) => v,
            Limit::TimesBefore(m) => {
                let Some(event) = self.window.fault() else {
                    return (
                        false,
                        observed,
                        f64::NAN,
                        samples,
                        format!(
                            "\"x before\" needs a window on an event, not {}",
                            self.window
                        ),
                    );
                };
                let before = WindowSpec::Before {
                    event: event.to_string(),
                    span: BEFORE,
                }
                .resolve(timeline, flow.reach);
                match before {
                    Ok(b) => {
                        let base_samples = merged(flow, &b[0]).total();
                        if base_samples < self.min_samples {
                            return (
                                false,
                                observed,
                                f64::NAN,
                                samples,
                                format!(
                                    "{base_samples} samples before {event} ({}), at least {} needed",
                                    b[0], self.min_samples
                                ),
                            );
                        }
                        match self.metric.compute(flow, &b[0], timeline) {
                            Ok(v) => m * v,
                            Err(e) => return (false, observed, f64::NAN, samples, e.to_string()),
                        }
                    }
                    Err(e) => return (false, observed, f64::NAN, samples, e.to_string()),
                }
            }
        };
        if observed.is_nan() {
            return (
                false,
                observed,
                limit,
                samples,
                format!("{} has no value in {w}", self.metric.name()),
            );
        }
        let ok = self.condition.op.holds(observed, limit);
        let mut why = format!(
            "{} = {} (limit {} {}) in {w}, {samples} samples",
            self.metric.name(),
            dim.show(observed),
            self.condition.op.as_str(),
            dim.show(limit)
        );
        if !ok && self.metric.counts_errors() {
            why.push_str(&error_breakdown(&merged(flow, w)));
        }
        (ok, observed, limit, samples, why)
    }

    fn verdict(
        &self,
        ok: bool,
        observed: f64,
        limit: f64,
        window: Option<Resolved>,
        samples: u64,
        detail: String,
    ) -> Verdict {
        let status = match (ok, self.severity) {
            (true, _) => Status::Pass,
            (false, Severity::Fail) => Status::Fail,
            (false, Severity::Warn) => Status::Warn,
        };
        Verdict {
            name: self.name.clone(),
            status,
            observed,
            limit,
            margin: signed_margin(self.condition.op, observed, limit),
            window,
            samples,
            detail,
        }
    }
}

/// Positive inside the limit, negative outside; NaN when either is.
fn signed_margin(op: Op, observed: f64, limit: f64) -> f64 {
    match op {
        Op::Lt | Op::Le => limit - observed,
        Op::Gt | Op::Ge => observed - limit,
        Op::Eq | Op::Ne => -(observed - limit).abs(),
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let status = match self.status {
            Status::Pass => "PASS",
            Status::Fail => "FAIL",
            Status::Warn => "WARN",
        };
        write!(f, "{status} {}: {}", self.name, self.detail)
    }
}

#[cfg(test)]
mod tests;
