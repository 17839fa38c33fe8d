//! Request journeys: trace ids and the span recorder every process uses.
//!
//! Every flow gets a trace id at its first hop; each hop (edge, ingress,
//! service proxy, overlay, pod) records a [`Span`] with its timing and its
//! decision through a [`Recorder`], which keeps the process's recent spans
//! in memory ([`crate::journeys::TraceStore`]). Nothing is sent anywhere
//! while traffic flows: `podnet trace` asks the control plane, which asks
//! every process for the spans of the journeys wanted (`TraceSource.Spans`)
//! and stitches them.
//!
//! Recording never blocks a datapath for long: one short lock and a push;
//! the store is bounded and forgets the oldest journeys first. This module
//! does not decide where hops record; the edge, datapath and ingress do.

use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crate::journeys::TraceStore;
use crate::v1::trace_source_server::TraceSource;
use crate::v1::{Span, SpanBatch, SpansRequest};

/// The hops a span can name, as `podnet trace` shows them.
pub mod hop {
    pub const EDGE: &str = "edge";
    pub const INGRESS: &str = "ingress";
    pub const PROXY: &str = "proxy";
    pub const OVERLAY: &str = "overlay";
    pub const POD: &str = "pod";
    /// NetworkPolicy's verdict on a new flow, at the node that judged it.
    pub const POLICY: &str = "policy";
}

/// Most journeys one `Spans` call returns by `latest`.
pub const MAX_LATEST: usize = 100;
/// Most trace ids one `Spans` call asks for.
pub const MAX_IDS: usize = 1024;

/// A fresh random trace id; never 0 (0 means "none" on the wire).
pub fn new_trace_id() -> u64 {
    loop {
        let id: u64 = rand::random();
        if id != 0 {
            return id;
        }
    }
}

/// 16 lowercase hex digits, as `podnet trace` shows and accepts them.
pub fn format_trace_id(id: u64) -> String {
    format!("{id:016x}")
}

/// The inverse of [`format_trace_id`]: 1 to 16 hex digits (either case),
/// not all zero.
pub fn parse_trace_id(s: &str) -> Option<u64> {
    // from_str_radix alone would also take a leading '+'.
    if s.is_empty() || s.len() > 16 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u64::from_str_radix(s, 16).ok().filter(|&id| id != 0)
}

/// Keeps this process's spans. Cheap to clone; every clone records into
/// the same store.
#[derive(Debug, Clone)]
pub struct Recorder {
    inner: Option<Arc<Inner>>,
}

#[derive(Debug)]
struct Inner {
    store: TraceStore,
    process: String,
}

impl Recorder {
    /// Records nothing (tests, tools).
    pub fn disabled() -> Recorder {
        Recorder { inner: None }
    }

    /// Records into memory; spans recorded without a process name get
    /// `process` (the node name or "edge").
    pub fn new(process: String) -> Recorder {
        Recorder {
            inner: Some(Arc::new(Inner {
                store: TraceStore::new(),
                process,
            })),
        }
    }

    /// Whether spans go anywhere: lets a hop skip formatting a decision
    /// nobody will read.
    pub fn enabled(&self) -> bool {
        self.inner.is_some()
    }

    /// Keeps `span` (bounded: see [`TraceStore`]).
    pub fn record(&self, mut span: Span) {
        let Some(inner) = &self.inner else {
            return;
        };
        if span.process.is_empty() {
            span.process.clone_from(&inner.process);
        }
        inner.store.insert_one(span);
    }

    /// Spans dropped so far (a journey over its span cap, trace id 0).
    pub fn dropped(&self) -> u64 {
        self.inner.as_ref().map_or(0, |i| i.store.dropped())
    }

    /// What this process answers to `TraceSource.Spans`.
    pub fn spans(&self, request: &SpansRequest) -> Vec<Span> {
        let Some(inner) = &self.inner else {
            return Vec::new();
        };
        let ids: Vec<u64> = request.trace_ids.iter().copied().take(MAX_IDS).collect();
        let mut spans = inner.store.spans_of(&ids);
        if request.latest > 0 {
            let latest = (request.latest as usize).min(MAX_LATEST);
            spans.extend(inner.store.latest_spans(latest));
        }
        spans
    }
}

/// `TraceSource`, served by every process that records spans.
#[derive(Debug, Clone)]
pub struct TraceSourceService {
    pub recorder: Recorder,
}

#[tonic::async_trait]
impl TraceSource for TraceSourceService {
    async fn spans(
        &self,
        request: tonic::Request<SpansRequest>,
    ) -> Result<tonic::Response<SpanBatch>, tonic::Status> {
        let spans = self.recorder.spans(request.get_ref());
        Ok(tonic::Response::new(SpanBatch { spans }))
    }
}

/// Times one hop: [`SpanTimer::start`] when the hop begins,
/// [`SpanTimer::finish`] with its decision when it is done.
#[derive(Debug, Clone)]
pub struct SpanTimer {
    trace_id: u64,
    parent_trace_id: u64,
    hop: &'static str,
    start_unix_nanos: i64,
    started: Instant,
}

impl SpanTimer {
    /// Captures the wall-clock start (for ordering hops across processes)
    /// and a monotonic one (for the duration).
    pub fn start(trace_id: u64, hop: &'static str) -> SpanTimer {
        let start_unix_nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX));
        SpanTimer {
            trace_id,
            parent_trace_id: 0,
            hop,
            start_unix_nanos,
            started: Instant::now(),
        }
    }

    /// The flow this span continues (a request on a connection).
    pub fn with_parent(mut self, parent_trace_id: u64) -> SpanTimer {
        self.parent_trace_id = parent_trace_id;
        self
    }

    pub fn trace_id(&self) -> u64 {
        self.trace_id
    }

    /// The finished span, with the process left empty (the recorder fills
    /// it in).
    pub fn into_span(self, decision: impl Into<String>, status: impl Into<String>) -> Span {
        let took = self.started.elapsed();
        Span {
            trace_id: self.trace_id,
            parent_trace_id: self.parent_trace_id,
            hop: self.hop.to_string(),
            process: String::new(),
            decision: decision.into(),
            start_unix_nanos: self.start_unix_nanos,
            duration_nanos: u64::try_from(took.as_nanos()).unwrap_or(u64::MAX),
            status: status.into(),
        }
    }

    /// Records the span: duration from `start` until now.
    pub fn finish(
        self,
        recorder: &Recorder,
        decision: impl Into<String>,
        status: impl Into<String>,
    ) {
        if recorder.enabled() {
            recorder.record(self.into_span(decision, status));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(trace_id: u64) -> Span {
        Span {
            trace_id,
            hop: hop::PROXY.into(),
            ..Default::default()
        }
    }

    #[test]
    fn trace_ids_round_trip() {
        for id in [1, 0xff, 0x3f2a_9c1b_0d4e_5f60, u64::MAX, new_trace_id()] {
            let text = format_trace_id(id);
            assert_eq!(text.len(), 16);
            assert_eq!(text, text.to_lowercase());
            assert_eq!(parse_trace_id(&text), Some(id));
        }
        assert_eq!(
            parse_trace_id("3F2A9C1B0D4E5F60"),
            Some(0x3f2a_9c1b_0d4e_5f60)
        );
        assert_eq!(parse_trace_id("ab"), Some(0xab));
        for bad in [
            "",
            "0",
            "0000000000000000",
            "+1",
            "-1",
            "xyz",
            "12345678901234567",
            " 1",
        ] {
            assert_eq!(parse_trace_id(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn new_trace_ids_are_not_zero_and_differ() {
        let a = new_trace_id();
        let b = new_trace_id();
        assert_ne!(a, 0);
        assert_ne!(a, b);
    }

    #[test]
    fn the_recorder_answers_by_id_and_by_latest() {
        let recorder = Recorder::new("node-1".into());
        for id in 1..=3 {
            let mut s = span(id);
            s.start_unix_nanos = i64::try_from(id).unwrap();
            recorder.record(s);
        }
        let by_id = recorder.spans(&SpansRequest {
            trace_ids: vec![2, 9],
            latest: 0,
        });
        assert_eq!(by_id.len(), 1);
        assert_eq!(
            (by_id[0].trace_id, by_id[0].process.as_str()),
            (2, "node-1")
        );
        let latest = recorder.spans(&SpansRequest {
            trace_ids: vec![],
            latest: 2,
        });
        let mut ids: Vec<u64> = latest.iter().map(|s| s.trace_id).collect();
        ids.sort_unstable();
        assert_eq!(ids, [2, 3]);
    }

    #[test]
    fn disabled_recorder_records_nothing() {
        let recorder = Recorder::disabled();
        assert!(!recorder.enabled());
        SpanTimer::start(1, hop::EDGE).finish(&recorder, "x", "ok");
        recorder.record(span(1));
        assert_eq!(recorder.dropped(), 0);
    }

    #[test]
    fn span_timer_fills_the_span() {
        let timer = SpanTimer::start(7, hop::INGRESS).with_parent(3);
        assert_eq!(timer.trace_id(), 7);
        let s = timer.into_span("route a.example / (Prefix) → default/web:80", "200");
        assert_eq!((s.trace_id, s.parent_trace_id), (7, 3));
        assert_eq!(s.hop, "ingress");
        assert_eq!(s.status, "200");
        assert!(s.decision.starts_with("route a.example"));
        assert!(s.start_unix_nanos > 1_600_000_000_000_000_000);
        assert!(s.process.is_empty());
    }
}
