//! Request journeys kept in memory, grouped by trace id: each process
//! keeps its own spans (see `trace::Recorder`); for `podnet trace` the
//! control plane gathers what the processes hold into one more store and
//! stitches journeys from it.
//!
//! Bounded in every direction, because all of it arrives from the network:
//! the last [`MAX_JOURNEYS`] trace ids by first sight, at most
//! [`MAX_SPANS`] spans each, string fields truncated. Deliberately not in
//! the persistent store: journeys are a debugging aid, lost on restart.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Mutex, PoisonError};

use crate::v1::{Journey, Span};

/// Trace ids remembered; the first seen is forgotten first.
pub const MAX_JOURNEYS: usize = 4096;
/// Spans kept per trace id; later ones are counted and dropped.
pub const MAX_SPANS: usize = 64;
/// Longest decision kept, in bytes.
pub const MAX_DECISION: usize = 1024;
/// Longest hop, process or status kept, in bytes.
pub const MAX_NAME: usize = 256;
/// How many flows a journey is stitched through (parent of a parent ...).
const MAX_ANCESTORS: usize = 8;

#[derive(Debug)]
pub struct TraceStore {
    max_journeys: usize,
    max_spans: usize,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    journeys: HashMap<u64, Vec<Span>>,
    /// Trace ids by first sight, for eviction.
    order: VecDeque<u64>,
    dropped: u64,
}

impl Default for TraceStore {
    fn default() -> TraceStore {
        TraceStore::with_limits(MAX_JOURNEYS, MAX_SPANS)
    }
}

impl TraceStore {
    pub fn new() -> TraceStore {
        TraceStore::default()
    }

    fn with_limits(max_journeys: usize, max_spans: usize) -> TraceStore {
        TraceStore {
            max_journeys,
            max_spans,
            inner: Mutex::new(Inner::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // The data stays consistent across a panic: every change is a push.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds spans; returns how many of them were dropped (trace id 0, or
    /// their journey already full).
    pub fn insert(&self, spans: Vec<Span>) -> usize {
        let mut inner = self.lock();
        let mut dropped = 0;
        for span in spans {
            if !self.push(&mut inner, span) {
                dropped += 1;
            }
        }
        inner.dropped += dropped as u64;
        dropped
    }

    /// Adds one span (the recording path: one lock, one push).
    pub fn insert_one(&self, span: Span) {
        let mut inner = self.lock();
        if !self.push(&mut inner, span) {
            inner.dropped += 1;
        }
    }

    fn push(&self, inner: &mut Inner, span: Span) -> bool {
        if span.trace_id == 0 {
            return false;
        }
        let id = span.trace_id;
        if !inner.journeys.contains_key(&id) {
            while inner.order.len() >= self.max_journeys {
                match inner.order.pop_front() {
                    Some(old) => {
                        inner.journeys.remove(&old);
                    }
                    None => break,
                }
            }
            inner.order.push_back(id);
        }
        let journey = inner.journeys.entry(id).or_default();
        if journey.len() >= self.max_spans {
            return false;
        }
        journey.push(bounded(span));
        true
    }

    /// Every span of the journeys `ids` (unknown ids have none).
    pub fn spans_of(&self, ids: &[u64]) -> Vec<Span> {
        let inner = self.lock();
        ids.iter()
            .filter_map(|id| inner.journeys.get(id))
            .flatten()
            .cloned()
            .collect()
    }

    /// Every span of the `limit` most recently started journeys, unstitched.
    pub fn latest_spans(&self, limit: usize) -> Vec<Span> {
        let inner = self.lock();
        newest_first(&inner.journeys)
            .iter()
            .take(limit)
            .filter_map(|id| inner.journeys.get(id))
            .flatten()
            .cloned()
            .collect()
    }

    /// Parents named by the spans held that are not held themselves: what
    /// to ask the other processes for next.
    pub fn missing_parents(&self) -> Vec<u64> {
        let inner = self.lock();
        let mut missing: Vec<u64> = inner
            .journeys
            .values()
            .flatten()
            .map(|s| s.parent_trace_id)
            .filter(|p| *p != 0 && !inner.journeys.contains_key(p))
            .collect();
        missing.sort_unstable();
        missing.dedup();
        missing
    }

    /// Spans dropped since start.
    pub fn dropped(&self) -> u64 {
        self.lock().dropped
    }

    /// The spans of `id` and, for each flow it continues
    /// (`parent_trace_id`), that flow's spans that started before it,
    /// sorted by start time. Empty if `id` is unknown.
    pub fn journey(&self, id: u64) -> Vec<Span> {
        stitch(&self.lock().journeys, id)
    }

    /// The `limit` most recently started journeys, newest first, each
    /// stitched as [`TraceStore::journey`] does. A flow already shown as
    /// part of a newer journey (a connection a listed request rode on) is
    /// not listed again.
    pub fn latest(&self, limit: usize) -> Vec<Journey> {
        let inner = self.lock();
        let mut shown = HashSet::new();
        let mut out = Vec::new();
        for id in newest_first(&inner.journeys) {
            if out.len() >= limit {
                break;
            }
            if shown.contains(&id) {
                continue;
            }
            let spans = stitch(&inner.journeys, id);
            shown.extend(spans.iter().map(|s| s.trace_id));
            out.push(Journey {
                trace_id: id,
                spans,
            });
        }
        out
    }
}

/// Trace ids by the start of their first span, newest first.
fn newest_first(journeys: &HashMap<u64, Vec<Span>>) -> Vec<u64> {
    let mut by_start: Vec<(i64, u64)> = journeys
        .iter()
        .filter_map(|(&id, spans)| Some((spans.iter().map(|s| s.start_unix_nanos).min()?, id)))
        .collect();
    by_start.sort_unstable_by(|a, b| b.cmp(a));
    by_start.into_iter().map(|(_, id)| id).collect()
}

fn stitch(journeys: &HashMap<u64, Vec<Span>>, id: u64) -> Vec<Span> {
    let Some(own) = journeys.get(&id) else {
        return Vec::new();
    };
    let mut spans = own.clone();
    let mut seen = HashSet::from([id]);
    // Spans added in the previous round, whose parents come next.
    let mut frontier = 0..spans.len();
    for _ in 0..MAX_ANCESTORS {
        // For each parent, the latest start of a span continuing it.
        let mut cutoffs: HashMap<u64, i64> = HashMap::new();
        for s in &spans[frontier.clone()] {
            if s.parent_trace_id != 0 && !seen.contains(&s.parent_trace_id) {
                let c = cutoffs
                    .entry(s.parent_trace_id)
                    .or_insert(s.start_unix_nanos);
                *c = (*c).max(s.start_unix_nanos);
            }
        }
        if cutoffs.is_empty() {
            break;
        }
        let start = spans.len();
        for (parent, cutoff) in cutoffs {
            seen.insert(parent);
            if let Some(theirs) = journeys.get(&parent) {
                spans.extend(
                    theirs
                        .iter()
                        .filter(|s| s.start_unix_nanos <= cutoff)
                        .cloned(),
                );
            }
        }
        frontier = start..spans.len();
    }
    // Stable: on equal starts, the span recorded first stays first.
    spans.sort_by_key(|s| s.start_unix_nanos);
    spans
}

fn bounded(mut span: Span) -> Span {
    truncate(&mut span.decision, MAX_DECISION);
    truncate(&mut span.hop, MAX_NAME);
    truncate(&mut span.process, MAX_NAME);
    truncate(&mut span.status, MAX_NAME);
    span
}

fn truncate(s: &mut String, max: usize) {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(trace_id: u64, parent: u64, hop: &str, start: i64) -> Span {
        Span {
            trace_id,
            parent_trace_id: parent,
            hop: hop.into(),
            process: "node-1".into(),
            decision: format!("{hop} at {start}"),
            start_unix_nanos: start,
            duration_nanos: 10,
            status: "ok".into(),
        }
    }

    fn hops(spans: &[Span]) -> Vec<(u64, &str)> {
        spans.iter().map(|s| (s.trace_id, s.hop.as_str())).collect()
    }

    #[test]
    fn journey_is_sorted_by_start() {
        let store = TraceStore::new();
        store.insert(vec![span(1, 0, "overlay", 30), span(1, 0, "edge", 10)]);
        store.insert(vec![span(1, 0, "proxy", 20), span(2, 0, "edge", 5)]);
        assert_eq!(
            hops(&store.journey(1)),
            [(1, "edge"), (1, "proxy"), (1, "overlay")]
        );
        assert!(store.journey(3).is_empty());
    }

    #[test]
    fn oldest_first_seen_journey_is_evicted() {
        let store = TraceStore::with_limits(3, 64);
        for id in 1..=3 {
            store.insert(vec![span(id, 0, "edge", id as i64)]);
        }
        // A new span for journey 1 does not make it younger.
        store.insert(vec![span(1, 0, "proxy", 100)]);
        store.insert(vec![span(4, 0, "edge", 4)]);
        assert!(store.journey(1).is_empty());
        for id in 2..=4 {
            assert_eq!(store.journey(id).len(), 1, "journey {id}");
        }
        store.insert(vec![span(5, 0, "edge", 5)]);
        assert!(store.journey(2).is_empty());
        assert_eq!(store.latest(10).len(), 3);
    }

    #[test]
    fn spans_beyond_the_cap_are_dropped_and_counted() {
        let store = TraceStore::with_limits(16, 4);
        let spans = (0..6).map(|i| span(1, 0, "pod", i)).collect();
        assert_eq!(store.insert(spans), 2);
        assert_eq!(
            store.insert(vec![span(1, 0, "pod", 9), span(0, 0, "pod", 9)]),
            2
        );
        assert_eq!(store.journey(1).len(), 4);
        assert_eq!(store.dropped(), 4);
        // Other journeys are unaffected.
        assert_eq!(store.insert(vec![span(2, 0, "pod", 1)]), 0);
    }

    #[test]
    fn long_fields_are_truncated_on_a_char_boundary() {
        let store = TraceStore::new();
        let mut s = span(1, 0, "edge", 1);
        s.decision = "→".repeat(1000); // 3 bytes each
        s.process = "n".repeat(10_000);
        store.insert(vec![s]);
        let got = &store.journey(1)[0];
        assert_eq!(got.decision.len(), 1023);
        assert_eq!(got.process.len(), MAX_NAME);
        assert_eq!(got.status, "ok");
    }

    #[test]
    fn a_request_is_stitched_to_the_connection_it_rode_on() {
        let store = TraceStore::new();
        // Connection 1: edge, proxy, overlay; later a hop of a second
        // request on the same connection.
        store.insert(vec![
            span(1, 0, "edge", 10),
            span(1, 0, "proxy", 11),
            span(1, 0, "overlay", 12),
            span(1, 0, "proxy", 50),
        ]);
        // Request 2 on connection 1, and its backend hops.
        store.insert(vec![span(2, 1, "ingress", 20), span(2, 0, "pod", 25)]);
        assert_eq!(
            hops(&store.journey(2)),
            [
                (1, "edge"),
                (1, "proxy"),
                (1, "overlay"),
                (2, "ingress"),
                (2, "pod")
            ]
        );
        // The connection on its own is not stitched to its requests.
        assert_eq!(store.journey(1).len(), 4);
    }

    #[test]
    fn stitching_follows_ancestors_and_survives_cycles() {
        let store = TraceStore::new();
        store.insert(vec![span(1, 3, "edge", 1)]);
        store.insert(vec![span(2, 1, "ingress", 2)]);
        store.insert(vec![span(3, 2, "pod", 3)]);
        assert_eq!(
            hops(&store.journey(3)),
            [(1, "edge"), (2, "ingress"), (3, "pod")]
        );
        // A parent that is unknown (evicted, or never reported) is skipped.
        store.insert(vec![span(9, 77, "pod", 4)]);
        assert_eq!(hops(&store.journey(9)), [(9, "pod")]);
    }

    #[test]
    fn latest_is_newest_first_and_lists_a_connection_once() {
        let store = TraceStore::new();
        store.insert(vec![span(1, 0, "edge", 10)]);
        store.insert(vec![span(2, 1, "ingress", 20)]);
        store.insert(vec![span(3, 0, "edge", 30)]);
        store.insert(vec![span(4, 0, "edge", 5)]);
        let latest = store.latest(10);
        let ids: Vec<u64> = latest.iter().map(|j| j.trace_id).collect();
        // 1 is shown inside 2's journey.
        assert_eq!(ids, [3, 2, 4]);
        assert_eq!(hops(&latest[1].spans), [(1, "edge"), (2, "ingress")]);
        let ids: Vec<u64> = store.latest(2).iter().map(|j| j.trace_id).collect();
        assert_eq!(ids, [3, 2]);
        assert!(store.latest(0).is_empty());
    }
}
