//! What became of a flow's requests, second by second of scenario time.
//!
//! A request belongs to the second holding its *scheduled* time. Each
//! second keeps two HdrHistograms (latency = completion − scheduled time,
//! so a stalled generator or server shows as latency, not as fewer
//! samples; and lag = send − scheduled time, the generator's own delay),
//! a count per [`Outcome`], and counts per serving pod and zone. Any
//! window's percentiles are exact merges of its seconds, and memory is per
//! second, not per request.
//!
//! Latency is recorded for requests that got an answer (`ok`, `http_4xx`,
//! `http_5xx`); the others are counted by class only: a refused connect's
//! few microseconds would flatter the percentiles, a timeout's limit would
//! only repeat it.

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// The largest latency or lag recorded, in microseconds (values above are
/// clamped to it).
pub const MAX_MICROS: u64 = 600_000_000;

/// What became of one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Ok,
    #[serde(rename = "http_4xx")]
    Http4xx,
    #[serde(rename = "http_5xx")]
    Http5xx,
    Timeout,
    Refused,
    Reset,
    DnsNxdomain,
    DnsTimeout,
    Tls,
    /// The generator could not send it within `timeout` of its scheduled
    /// time.
    Shed,
    /// Any other failure (a protocol error, an unexpected answer).
    Other,
}

impl Outcome {
    pub const ALL: [Outcome; 11] = [
        Outcome::Ok,
        Outcome::Http4xx,
        Outcome::Http5xx,
        Outcome::Timeout,
        Outcome::Refused,
        Outcome::Reset,
        Outcome::DnsNxdomain,
        Outcome::DnsTimeout,
        Outcome::Tls,
        Outcome::Shed,
        Outcome::Other,
    ];

    pub fn is_error(self) -> bool {
        self != Outcome::Ok
    }

    /// Whether the request got an answer whose latency is recorded.
    pub fn answered(self) -> bool {
        matches!(self, Outcome::Ok | Outcome::Http4xx | Outcome::Http5xx)
    }

    /// The class's name in scenarios and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Http4xx => "http_4xx",
            Outcome::Http5xx => "http_5xx",
            Outcome::Timeout => "timeout",
            Outcome::Refused => "refused",
            Outcome::Reset => "reset",
            Outcome::DnsNxdomain => "dns_nxdomain",
            Outcome::DnsTimeout => "dns_timeout",
            Outcome::Tls => "tls",
            Outcome::Shed => "shed",
            Outcome::Other => "other",
        }
    }

    pub fn parse(s: &str) -> Option<Outcome> {
        Outcome::ALL.into_iter().find(|o| o.as_str() == s)
    }
}

/// Who served a request, as the answer said (http-echo's `pod`, or the
/// trace header), and that pod's state then.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Served {
    pub pod: String,
    pub node: String,
    pub zone: String,
    /// The pod was Terminating when it answered.
    pub terminating: bool,
}

/// One finished request.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Its scheduled time, from the scenario's start.
    pub scheduled: Duration,
    /// Send − scheduled.
    pub lag: Duration,
    /// Completion − scheduled.
    pub latency: Duration,
    pub outcome: Outcome,
    pub served: Option<Served>,
}

/// Requests per serving pod or zone.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Share {
    pub requests: u64,
    pub errors: u64,
    /// Requests answered while the pod was Terminating.
    pub terminating: u64,
    pub terminating_errors: u64,
}

impl Share {
    fn add(&mut self, other: &Share) {
        self.requests += other.requests;
        self.errors += other.errors;
        self.terminating += other.terminating;
        self.terminating_errors += other.terminating_errors;
    }
}

/// One second of one flow, or a merge of several.
#[derive(Debug, Clone)]
pub struct Bucket {
    /// Answered requests' latency, microseconds.
    pub latency: Histogram<u64>,
    /// Every sent request's lag, microseconds.
    pub lag: Histogram<u64>,
    pub outcomes: BTreeMap<Outcome, u64>,
    pub by_pod: BTreeMap<String, Share>,
    pub by_zone: BTreeMap<String, Share>,
    /// Requests served from another zone than the client's.
    pub cross_zone: u64,
    /// Seconds merged into this bucket.
    pub seconds: u64,
}

/// A latency or lag histogram: microseconds, 1 to [`MAX_MICROS`], 2
/// significant figures (values within 1 %): about 24 KB, where 3 figures
/// take 170 KB, which two per flow per second would make gigabytes over
/// an hour.
pub fn histogram() -> Histogram<u64> {
    // The bounds are constants that hdrhistogram accepts (low >= 1, high
    // >= 2 * low, 2 significant figures): construction cannot fail.
    #[allow(clippy::expect_used)]
    Histogram::new_with_bounds(1, MAX_MICROS, 2).expect("constant histogram bounds are valid")
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros())
        .unwrap_or(u64::MAX)
        .clamp(1, MAX_MICROS)
}

impl Default for Bucket {
    fn default() -> Bucket {
        Bucket {
            latency: histogram(),
            lag: histogram(),
            outcomes: BTreeMap::new(),
            by_pod: BTreeMap::new(),
            by_zone: BTreeMap::new(),
            cross_zone: 0,
            seconds: 0,
        }
    }
}

impl Bucket {
    /// Requests in the bucket, every class counted.
    pub fn total(&self) -> u64 {
        self.outcomes.values().sum()
    }

    pub fn errors(&self) -> u64 {
        self.outcomes
            .iter()
            .filter(|(o, _)| o.is_error())
            .map(|(_, n)| n)
            .sum()
    }

    pub fn count(&self, outcome: Outcome) -> u64 {
        self.outcomes.get(&outcome).copied().unwrap_or(0)
    }

    /// Errors / requests; NaN without requests.
    pub fn error_rate(&self) -> f64 {
        let total = self.total();
        if total == 0 {
            f64::NAN
        } else {
            self.errors() as f64 / total as f64
        }
    }

    /// The `q` latency quantile in seconds; NaN without answers.
    pub fn latency_quantile(&self, q: f64) -> f64 {
        if self.latency.is_empty() {
            f64::NAN
        } else {
            self.latency.value_at_quantile(q) as f64 / 1e6
        }
    }

    /// Answered requests whose latency exceeded `seconds` (to the
    /// histogram's two significant figures).
    pub fn answered_slower_than(&self, seconds: f64) -> u64 {
        let limit = (seconds * 1e6).clamp(1.0, MAX_MICROS as f64) as u64;
        let within = self.latency.count_between(1, limit);
        self.latency.len().saturating_sub(within)
    }

    pub fn latency_max(&self) -> f64 {
        if self.latency.is_empty() {
            f64::NAN
        } else {
            self.latency.max() as f64 / 1e6
        }
    }

    pub fn lag_quantile(&self, q: f64) -> f64 {
        if self.lag.is_empty() {
            f64::NAN
        } else {
            self.lag.value_at_quantile(q) as f64 / 1e6
        }
    }

    /// Requests sent (not shed) per second over the merged seconds.
    pub fn rate_achieved(&self) -> f64 {
        if self.seconds == 0 {
            return f64::NAN;
        }
        (self.total() - self.count(Outcome::Shed)) as f64 / self.seconds as f64
    }

    /// Errors from pods that were Terminating when they answered.
    pub fn errors_from_terminating(&self) -> u64 {
        self.by_pod.values().map(|s| s.terminating_errors).sum()
    }

    /// How many pods answered at least one request without an error.
    pub fn serving_pods(&self) -> u64 {
        self.by_pod
            .values()
            .filter(|s| s.requests > s.errors)
            .count() as u64
    }

    /// The share of served requests that crossed zones; NaN without any
    /// attributed to a zone.
    pub fn cross_zone_share(&self) -> f64 {
        let zoned: u64 = self.by_zone.values().map(|s| s.requests).sum();
        if zoned == 0 {
            f64::NAN
        } else {
            self.cross_zone as f64 / zoned as f64
        }
    }

    pub fn record(&mut self, sample: &Sample, client_zone: &str) {
        *self.outcomes.entry(sample.outcome).or_default() += 1;
        if sample.outcome != Outcome::Shed {
            // Cannot fail: values are clamped into the bounds.
            let _ = self.lag.record(micros(sample.lag));
        }
        if sample.outcome.answered() {
            let _ = self.latency.record(micros(sample.latency));
        }
        if let Some(served) = &sample.served {
            let share = Share {
                requests: 1,
                errors: u64::from(sample.outcome.is_error()),
                terminating: u64::from(served.terminating),
                terminating_errors: u64::from(served.terminating && sample.outcome.is_error()),
            };
            self.by_pod
                .entry(served.pod.clone())
                .or_default()
                .add(&share);
            if !served.zone.is_empty() {
                self.by_zone
                    .entry(served.zone.clone())
                    .or_default()
                    .add(&share);
                if !client_zone.is_empty() && served.zone != client_zone {
                    self.cross_zone += 1;
                }
            }
        }
    }

    /// Adds `other` into this bucket.
    pub fn merge(&mut self, other: &Bucket) {
        // Same bounds on both sides: adding cannot fail.
        let _ = self.latency.add(&other.latency);
        let _ = self.lag.add(&other.lag);
        for (o, n) in &other.outcomes {
            *self.outcomes.entry(*o).or_default() += n;
        }
        for (pod, s) in &other.by_pod {
            self.by_pod.entry(pod.clone()).or_default().add(s);
        }
        for (zone, s) in &other.by_zone {
            self.by_zone.entry(zone.clone()).or_default().add(s);
        }
        self.cross_zone += other.cross_zone;
        self.seconds += other.seconds;
    }
}

/// A bucket as it travels from a pod's generator to the runner: the
/// histograms as `[value, count]` pairs of their recorded buckets (so a
/// decoded bucket gives the same quantiles), the counts as they are.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WireBucket {
    pub latency_us: Vec<(u64, u64)>,
    pub lag_us: Vec<(u64, u64)>,
    pub outcomes: BTreeMap<Outcome, u64>,
    pub by_pod: BTreeMap<String, Share>,
    pub by_zone: BTreeMap<String, Share>,
    pub cross_zone: u64,
}

fn pairs(h: &Histogram<u64>) -> Vec<(u64, u64)> {
    h.iter_recorded()
        .map(|v| (v.value_iterated_to(), v.count_at_value()))
        .collect()
}

fn refill(pairs: &[(u64, u64)]) -> Histogram<u64> {
    let mut h = histogram();
    for &(value, count) in pairs {
        // In range once clamped; counts saturate.
        let _ = h.record_n(value.clamp(1, MAX_MICROS), count);
    }
    h
}

impl Bucket {
    pub fn to_wire(&self) -> WireBucket {
        WireBucket {
            latency_us: pairs(&self.latency),
            lag_us: pairs(&self.lag),
            outcomes: self.outcomes.clone(),
            by_pod: self.by_pod.clone(),
            by_zone: self.by_zone.clone(),
            cross_zone: self.cross_zone,
        }
    }

    /// The bucket `w` describes, one second long (a value beyond the
    /// histogram's range is clamped to it, as recording clamps).
    pub fn from_wire(w: WireBucket) -> Bucket {
        Bucket {
            latency: refill(&w.latency_us),
            lag: refill(&w.lag_us),
            outcomes: w.outcomes,
            by_pod: w.by_pod,
            by_zone: w.by_zone,
            cross_zone: w.cross_zone,
            seconds: 1,
        }
    }
}

/// One flow's seconds, from the scenario's start.
#[derive(Debug, Clone, Default)]
pub struct FlowSeries {
    /// The zone the flow's client is in (empty from the host).
    pub client_zone: String,
    /// How long after its scheduled time a request of the flow may still
    /// be in flight (its timeout), seconds: a window that leaves an event
    /// out leaves out the requests scheduled that long before it too.
    pub reach: f64,
    seconds: Vec<Bucket>,
}

impl FlowSeries {
    pub fn new(client_zone: impl Into<String>) -> FlowSeries {
        FlowSeries {
            client_zone: client_zone.into(),
            reach: 0.0,
            seconds: Vec::new(),
        }
    }

    /// The series of a flow whose requests may be in flight for up to
    /// `timeout` after their scheduled time.
    pub fn with_reach(mut self, timeout: Duration) -> FlowSeries {
        self.reach = timeout.as_secs_f64();
        self
    }

    /// Files a finished request under its scheduled second.
    pub fn record(&mut self, sample: &Sample) {
        let second = usize::try_from(sample.scheduled.as_secs()).unwrap_or(usize::MAX);
        // Bounded by the scenario's length, which the schema bounds.
        if second >= MAX_SECONDS {
            return;
        }
        if self.seconds.len() <= second {
            self.seconds.resize_with(second + 1, Bucket::default);
        }
        let zone = self.client_zone.clone();
        self.seconds[second].record(sample, &zone);
    }

    /// Adds `bucket` (another generator's part of the same flow) to
    /// second `s`.
    pub fn merge_second(&mut self, s: u64, bucket: &Bucket) {
        let Ok(second) = usize::try_from(s) else {
            return;
        };
        if second >= MAX_SECONDS {
            return;
        }
        if self.seconds.len() <= second {
            self.seconds.resize_with(second + 1, Bucket::default);
        }
        self.seconds[second].merge(bucket);
        // A second is one second long whatever merged into it.
        self.seconds[second].seconds = 0;
    }

    /// Seconds recorded so far (the last one holding a request).
    pub fn len(&self) -> usize {
        self.seconds.len()
    }

    pub fn is_empty(&self) -> bool {
        self.seconds.is_empty()
    }

    /// Second `s` alone (empty when nothing was scheduled in it).
    pub fn second(&self, s: u64) -> Bucket {
        let mut b = usize::try_from(s)
            .ok()
            .and_then(|i| self.seconds.get(i))
            .cloned()
            .unwrap_or_default();
        b.seconds = 1;
        b
    }

    /// The merge of seconds `from..to`.
    pub fn window(&self, from: u64, to: u64) -> Bucket {
        let mut out = Bucket::default();
        for s in from..to {
            if let Some(b) = usize::try_from(s).ok().and_then(|i| self.seconds.get(i)) {
                out.merge(b);
            }
        }
        out.seconds = to.saturating_sub(from);
        out
    }
}

/// The most seconds a series keeps (a day).
pub const MAX_SECONDS: usize = 86_400;

#[cfg(test)]
mod tests;
