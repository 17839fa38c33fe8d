//! Windows: the stretches of scenario time a verdict judges, anchored on
//! what actually happened (a fault's applied and healed times as the runner
//! recorded them, not the scheduled ones), resolved to the whole seconds
//! of the series.
//!
//! A window `[a, b)` judges the seconds lying wholly inside it: `ceil(a)`
//! to `floor(b)`. A window that excludes an event (`outside`, `steady`)
//! drops every second the event touches, and for `steady` the
//! [`SETTLE`] seconds after it too.

use std::collections::BTreeMap;
use std::fmt;

/// When an event happened, in seconds from the scenario's start. An
/// instantaneous one (a kill) ends when it starts; an action that takes
/// time (a rollout) ends when it finished.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Span {
    pub start: f64,
    pub end: f64,
}

/// What a run's windows are resolved against.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Timeline {
    /// Where measurement starts: the end of the warmup.
    pub begin: f64,
    /// Where it ends: the traffic's end.
    pub end: f64,
    /// Faults and actions by id, with their actual times.
    pub events: BTreeMap<String, Span>,
}

/// How long after a fault's end `steady` still counts it as recovering.
pub const SETTLE: f64 = 10.0;
/// `before: F` without a length: this many seconds before F starts.
pub const BEFORE: f64 = 30.0;

/// Which edge of an event an anchor names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Edge {
    Start,
    End,
}

/// `ID`, `ID.start`, `ID.end`, each `± d`.
#[derive(Debug, Clone, PartialEq)]
pub struct Anchor {
    pub event: String,
    /// `None`: the edge the window's kind implies (`after` an event's end,
    /// `before` its start).
    pub edge: Option<Edge>,
    /// Seconds added (negative for `-`).
    pub offset: f64,
}

impl Anchor {
    /// Parses `cut`, `cut.end + 5s`, `roll.start - 500ms`.
    pub fn parse(s: &str) -> Result<Anchor, String> {
        let t = s.trim();
        // The offset's sign is the last + or - followed by a number: ids
        // may hold dashes (`zone-cut.end - 5s`).
        let sign_at = t.char_indices().rev().find(|&(i, c)| {
            matches!(c, '+' | '-')
                && t[i + 1..]
                    .trim_start()
                    .starts_with(|d: char| d.is_ascii_digit())
        });
        let (head, offset) = match sign_at.map(|(i, _)| i) {
            Some(i) => {
                let sign = if t[i..].starts_with('-') { -1.0 } else { 1.0 };
                let d = crate::units::parse_duration(t[i + 1..].trim())
                    .map_err(|e| format!("{s:?}: {e}"))?;
                (t[..i].trim(), sign * d.as_secs_f64())
            }
            None => (t, 0.0),
        };
        let (event, edge) = match head.rsplit_once('.') {
            Some((e, "start")) => (e, Some(Edge::Start)),
            Some((e, "end")) => (e, Some(Edge::End)),
            Some((_, other)) => {
                return Err(format!(
                    "{s:?}: an event's edge is .start or .end, not .{other}"
                ));
            }
            None => (head, None),
        };
        if event.is_empty() {
            return Err(format!("{s:?} names no event"));
        }
        Ok(Anchor {
            event: event.to_string(),
            edge,
            offset,
        })
    }

    /// The time it names, with `default` as the edge when it names none.
    pub fn resolve(&self, timeline: &Timeline, default: Edge) -> Result<f64, WindowError> {
        let span = timeline.event(&self.event)?;
        let at = match self.edge.unwrap_or(default) {
            Edge::Start => span.start,
            Edge::End => span.end,
        };
        Ok(at + self.offset)
    }
}

impl fmt::Display for Anchor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.event)?;
        match self.edge {
            Some(Edge::Start) => f.write_str(".start")?,
            Some(Edge::End) => f.write_str(".end")?,
            None => {}
        }
        if self.offset != 0.0 {
            let sign = if self.offset < 0.0 { '-' } else { '+' };
            write!(f, " {sign} {}s", self.offset.abs())?;
        }
        Ok(())
    }
}

/// A window as a scenario writes it.
#[derive(Debug, Clone, PartialEq)]
pub enum WindowSpec {
    /// The whole run after the warmup.
    Whole,
    /// Outside every event and the [`SETTLE`] seconds after each (and the
    /// flow's reach before each).
    Steady,
    /// From an event's start to its end.
    During(String),
    /// The `span` seconds before an event starts, of requests that ended
    /// before it started: it ends the flow's reach (its timeout) before
    /// the event's start.
    Before {
        event: String,
        span: f64,
    },
    /// From an anchor (an event's end by default) to the end of the run.
    After(Anchor),
    Between(Anchor, Anchor),
    /// The whole run minus these events.
    Outside(Vec<String>),
    /// Consecutive windows of `every` seconds, those touching the
    /// `outside` events left out; each must pass.
    Each {
        every: f64,
        outside: Vec<String>,
    },
    /// Every window of `span` seconds, one second apart; each must pass.
    Sliding {
        span: f64,
        outside: Vec<String>,
    },
}

impl WindowSpec {
    /// The events the window names, for checking a scenario before it runs.
    pub fn events(&self) -> Vec<&str> {
        match self {
            WindowSpec::Whole | WindowSpec::Steady => Vec::new(),
            WindowSpec::During(e) | WindowSpec::Before { event: e, .. } => vec![e],
            WindowSpec::After(a) => vec![&a.event],
            WindowSpec::Between(a, b) => vec![&a.event, &b.event],
            WindowSpec::Outside(list)
            | WindowSpec::Each { outside: list, .. }
            | WindowSpec::Sliding { outside: list, .. } => {
                list.iter().map(String::as_str).collect()
            }
        }
    }

    /// The event a `before`-relative limit (`< 2x before`) compares with.
    pub fn fault(&self) -> Option<&str> {
        match self {
            WindowSpec::During(e) | WindowSpec::Before { event: e, .. } => Some(e),
            WindowSpec::After(a) | WindowSpec::Between(a, _) => Some(&a.event),
            _ => None,
        }
    }

    /// Whether every one of several windows is judged (`each`, `sliding`).
    pub fn is_repeated(&self) -> bool {
        matches!(self, WindowSpec::Each { .. } | WindowSpec::Sliding { .. })
    }

    /// The window(s) in whole seconds of the series, for a flow whose
    /// requests may be in flight `reach` seconds after their scheduled
    /// time (see [`FlowSeries::reach`](crate::series::FlowSeries)): a
    /// request scheduled that close before an event may fail because of
    /// it, so the windows that leave an event out (`before`, `steady`,
    /// `outside`, and `each` and `sliding` with `outside`) leave that
    /// stretch before it out too.
    pub fn resolve(&self, timeline: &Timeline, reach: f64) -> Result<Vec<Resolved>, WindowError> {
        let whole = (timeline.begin, timeline.end);
        let reach = reach.max(0.0);
        let one = |a: f64, b: f64, excluded: &[(f64, f64)]| {
            vec![Resolved::new(a.max(whole.0), b.min(whole.1), excluded)]
        };
        Ok(match self {
            WindowSpec::Whole => one(whole.0, whole.1, &[]),
            WindowSpec::Steady => {
                let excluded: Vec<(f64, f64)> = timeline
                    .events
                    .values()
                    .map(|s| (s.start - reach, s.end + SETTLE))
                    .collect();
                one(whole.0, whole.1, &excluded)
            }
            WindowSpec::During(e) => {
                let s = timeline.event(e)?;
                one(s.start, s.end, &[])
            }
            WindowSpec::Before { event, span } => {
                let s = timeline.event(event)?;
                one(s.start - reach - span, s.start - reach, &[])
            }
            WindowSpec::After(a) => one(a.resolve(timeline, Edge::End)?, whole.1, &[]),
            WindowSpec::Between(a, b) => one(
                a.resolve(timeline, Edge::Start)?,
                b.resolve(timeline, Edge::End)?,
                &[],
            ),
            WindowSpec::Outside(list) => one(whole.0, whole.1, &timeline.spans(list, reach)?),
            WindowSpec::Each { every, outside } => {
                let excluded = timeline.spans(outside, reach)?;
                let mut out = Vec::new();
                let mut a = whole.0;
                while a + every <= whole.1 + 1e-9 {
                    if !touches(a, a + every, &excluded) {
                        out.push(Resolved::new(a, a + every, &[]));
                    }
                    a += every;
                }
                out
            }
            WindowSpec::Sliding { span, outside } => {
                let excluded = timeline.spans(outside, reach)?;
                let mut out = Vec::new();
                let mut a = whole.0.ceil();
                while a + span <= whole.1 + 1e-9 {
                    if !touches(a, a + span, &excluded) {
                        out.push(Resolved::new(a, a + span, &[]));
                    }
                    a += 1.0;
                }
                out
            }
        })
    }
}

impl fmt::Display for WindowSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WindowSpec::Whole => f.write_str("whole"),
            WindowSpec::Steady => f.write_str("steady"),
            WindowSpec::During(e) => write!(f, "during {e}"),
            WindowSpec::Before { event, span } => write!(f, "{span}s before {event}"),
            WindowSpec::After(a) => write!(f, "after {a}"),
            WindowSpec::Between(a, b) => write!(f, "between {a} and {b}"),
            WindowSpec::Outside(l) => write!(f, "outside {}", l.join(", ")),
            WindowSpec::Each { every, outside } if outside.is_empty() => {
                write!(f, "each {every}s")
            }
            WindowSpec::Each { every, outside } => {
                write!(f, "each {every}s outside {}", outside.join(", "))
            }
            WindowSpec::Sliding { span, outside } if outside.is_empty() => {
                write!(f, "sliding {span}s")
            }
            WindowSpec::Sliding { span, outside } => {
                write!(f, "sliding {span}s outside {}", outside.join(", "))
            }
        }
    }
}

fn touches(a: f64, b: f64, excluded: &[(f64, f64)]) -> bool {
    excluded.iter().any(|&(x, y)| x < b && a <= y)
}

impl Timeline {
    pub fn event(&self, id: &str) -> Result<Span, WindowError> {
        self.events
            .get(id)
            .copied()
            .ok_or_else(|| WindowError::NoSuchEvent(id.to_string()))
    }

    /// The events' spans, each from `reach` before its start.
    fn spans(&self, ids: &[String], reach: f64) -> Result<Vec<(f64, f64)>, WindowError> {
        ids.iter()
            .map(|id| self.event(id).map(|s| (s.start - reach, s.end)))
            .collect()
    }
}

/// A window resolved to whole seconds: the seconds in `ranges` (each
/// `from..to`), and the times it was resolved from.
#[derive(Debug, Clone, PartialEq)]
pub struct Resolved {
    pub start: f64,
    pub end: f64,
    pub ranges: Vec<(u64, u64)>,
}

impl Resolved {
    fn new(start: f64, end: f64, excluded: &[(f64, f64)]) -> Resolved {
        let from = second_at_or_after(start);
        let to = second_at_or_before(end).max(from);
        let mut ranges = vec![(from, to)];
        for &(x, y) in excluded {
            // Every second the event touches goes: second s covers
            // [s, s + 1), so floor(x) to floor(y).
            let cut_from = second_at_or_before(x);
            let cut_to = second_at_or_before(y.max(x)) + 1;
            ranges = ranges
                .into_iter()
                .flat_map(|(a, b)| {
                    let mut keep = Vec::new();
                    if a < cut_from.min(b) {
                        keep.push((a, cut_from.min(b)));
                    }
                    if cut_to.max(a) < b {
                        keep.push((cut_to.max(a), b));
                    }
                    keep
                })
                .collect();
        }
        Resolved { start, end, ranges }
    }

    /// Whole seconds judged.
    pub fn seconds(&self) -> u64 {
        self.ranges.iter().map(|(a, b)| b - a).sum()
    }

    /// Every second judged, in order.
    pub fn each_second(&self) -> impl Iterator<Item = u64> + '_ {
        self.ranges.iter().flat_map(|&(a, b)| a..b)
    }
}

impl fmt::Display for Resolved {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.1}s-{:.1}s", self.start, self.end)?;
        match self.ranges.as_slice() {
            [] => f.write_str(" (no whole second)"),
            [(a, b)] if a == b => f.write_str(" (no whole second)"),
            ranges => {
                // Whole seconds, first to last, as people count them.
                f.write_str(" = seconds ")?;
                for (i, (a, b)) in ranges.iter().filter(|(a, b)| a < b).enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    if b - a == 1 {
                        write!(f, "{a}")?;
                    } else {
                        write!(f, "{a}-{}", b - 1)?;
                    }
                }
                Ok(())
            }
        }
    }
}

fn second_at_or_after(t: f64) -> u64 {
    if t <= 0.0 { 0 } else { t.ceil() as u64 }
}

fn second_at_or_before(t: f64) -> u64 {
    if t <= 0.0 { 0 } else { t.floor() as u64 }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WindowError {
    #[error("no event {0:?} happened in this run")]
    NoSuchEvent(String),
}

#[cfg(test)]
mod tests;
