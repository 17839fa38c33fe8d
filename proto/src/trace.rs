//! Request journeys: trace ids and the span recorder every process uses.
//!
//! Every flow gets a trace id at its first hop; each hop (edge, ingress,
//! service proxy, overlay, pod) records a [`Span`] with its timing and its
//! decision through a [`Recorder`], which ships spans to the control plane
//! (`Api.ReportSpans`) in the background. `podnet trace` reads them back.
//!
//! Recording is best effort by design: [`Recorder::record`] never blocks a
//! datapath. When the queue is full or a report fails the spans are dropped
//! and counted ([`Recorder::dropped`]), never retried. This module does not
//! decide where hops record; the edge, datapath and ingress do.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::mpsc;
use tokio::time;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tonic::transport::Channel;
use tracing::Instrument;

use crate::v1::api_client::ApiClient;
use crate::v1::{Span, SpanBatch};

/// The hops a span can name, as `podnet trace` shows them.
pub mod hop {
    pub const EDGE: &str = "edge";
    pub const INGRESS: &str = "ingress";
    pub const PROXY: &str = "proxy";
    pub const OVERLAY: &str = "overlay";
    pub const POD: &str = "pod";
}

/// Spans waiting to be reported; beyond this `record` drops.
const QUEUE: usize = 4096;
/// Spans per `ReportSpans` call (the control plane accepts up to 4096).
const MAX_BATCH: usize = 512;
/// A report that takes longer is abandoned (its spans counted as dropped),
/// so a stuck control plane cannot stall the flusher forever.
const REPORT_TIMEOUT: Duration = Duration::from_secs(5);
/// On shutdown, how long the last report of what is queued may take.
const FINAL_REPORT_TIMEOUT: Duration = Duration::from_millis(500);

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

/// Ships spans to the control plane. Cheap to clone; every clone feeds the
/// same queue and counters.
#[derive(Debug, Clone)]
pub struct Recorder {
    inner: Option<Arc<Inner>>,
}

#[derive(Debug)]
struct Inner {
    tx: mpsc::Sender<Span>,
    process: String,
    dropped: AtomicU64,
}

impl Recorder {
    /// Records nothing (tests, tools, tracing turned off).
    pub fn disabled() -> Recorder {
        Recorder { inner: None }
    }

    /// Starts the flusher on `tasks`: it reports queued spans over `channel`
    /// as soon as there are any, until `shutdown`. Spans recorded without a
    /// process name get `process` (the node name or "edge").
    pub fn start(
        channel: Channel,
        process: String,
        shutdown: CancellationToken,
        tasks: &TaskTracker,
    ) -> Recorder {
        let client = ApiClient::new(channel);
        Recorder::with_sink(QUEUE, process, shutdown, tasks, move |batch| {
            let mut client = client.clone();
            async move { client.report_spans(batch).await.map(|_| ()) }
        })
    }

    fn with_sink<F, Fut>(
        capacity: usize,
        process: String,
        shutdown: CancellationToken,
        tasks: &TaskTracker,
        report: F,
    ) -> Recorder
    where
        F: FnMut(SpanBatch) -> Fut + Send + 'static,
        Fut: Future<Output = Result<(), tonic::Status>> + Send + 'static,
    {
        let (tx, rx) = mpsc::channel(capacity);
        let inner = Arc::new(Inner {
            tx,
            process: process.clone(),
            dropped: AtomicU64::new(0),
        });
        tasks.spawn(
            flush(rx, report, Arc::clone(&inner), shutdown)
                .instrument(tracing::debug_span!("trace.flusher", process = %process)),
        );
        Recorder { inner: Some(inner) }
    }

    /// Whether spans go anywhere: lets a hop skip formatting a decision
    /// nobody will read.
    pub fn enabled(&self) -> bool {
        self.inner.is_some()
    }

    /// Queues `span` for the control plane. Never blocks nor awaits: when
    /// the queue is full (or the flusher is gone) the span is dropped and
    /// counted.
    pub fn record(&self, mut span: Span) {
        let Some(inner) = &self.inner else {
            return;
        };
        if span.process.is_empty() {
            span.process.clone_from(&inner.process);
        }
        if inner.tx.try_send(span).is_err() {
            inner.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Spans lost so far: queue full, flusher stopped, or report failed.
    pub fn dropped(&self) -> u64 {
        self.inner
            .as_ref()
            .map_or(0, |i| i.dropped.load(Ordering::Relaxed))
    }
}

async fn flush<F, Fut>(
    mut rx: mpsc::Receiver<Span>,
    mut report: F,
    inner: Arc<Inner>,
    shutdown: CancellationToken,
) where
    F: FnMut(SpanBatch) -> Fut,
    Fut: Future<Output = Result<(), tonic::Status>>,
{
    let mut spans = Vec::with_capacity(MAX_BATCH);
    loop {
        // Wait for the first span, then take whatever else is queued: no
        // timer, so a lone span is reported at once and a burst in batches.
        let n = tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            n = rx.recv_many(&mut spans, MAX_BATCH) => n,
        };
        if n == 0 {
            // Every Recorder is gone.
            return;
        }
        let batch = SpanBatch {
            spans: std::mem::take(&mut spans),
        };
        let call = report_until(report(batch), time::Instant::now() + REPORT_TIMEOUT);
        tokio::pin!(call);
        let (result, stop) = tokio::select! {
            biased;
            r = &mut call => (r, false),
            // The report in flight gets the last moment too.
            _ = shutdown.cancelled() => {
                let r = time::timeout(FINAL_REPORT_TIMEOUT, call).await;
                (r.unwrap_or_else(|_| Err("timed out".into())), true)
            }
        };
        if let Err(why) = result {
            count_failed(&inner, n, &why);
        }
        if stop {
            break;
        }
    }
    // Shutting down: report what is already queued, briefly.
    rx.close();
    let deadline = time::Instant::now() + FINAL_REPORT_TIMEOUT;
    loop {
        while spans.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(span) => spans.push(span),
                Err(_) => break,
            }
        }
        let n = spans.len();
        if n == 0 {
            return;
        }
        if time::Instant::now() >= deadline {
            count_failed(&inner, n + rx.len(), "shutting down");
            return;
        }
        let batch = SpanBatch {
            spans: std::mem::take(&mut spans),
        };
        if let Err(why) = report_until(report(batch), deadline).await {
            count_failed(&inner, n, &why);
        }
    }
}

async fn report_until(
    call: impl Future<Output = Result<(), tonic::Status>>,
    deadline: time::Instant,
) -> Result<(), String> {
    match time::timeout_at(deadline, call).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(status)) => Err(status.message().to_string()),
        Err(_) => Err("timed out".into()),
    }
}

fn count_failed(inner: &Inner, n: usize, why: &str) {
    let total = inner.dropped.fetch_add(n as u64, Ordering::Relaxed) + n as u64;
    tracing::debug!(
        spans = n,
        dropped.total = total,
        "span report failed: {why}"
    );
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

    /// Runs `recorder`'s queued work on this (current-thread) runtime until
    /// `done` holds; no sleeps, the flusher only needs turns.
    async fn until(done: impl Fn() -> bool) {
        for _ in 0..10_000 {
            if done() {
                return;
            }
            tokio::task::yield_now().await;
        }
        panic!("condition not reached");
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

    #[tokio::test]
    async fn recorder_reports_queued_spans_in_one_batch() {
        let tasks = TaskTracker::new();
        let shutdown = CancellationToken::new();
        let (seen_tx, mut seen) = mpsc::unbounded_channel();
        let recorder = Recorder::with_sink(16, "node-1".into(), shutdown.clone(), &tasks, {
            move |batch: SpanBatch| {
                let _ = seen_tx.send(batch);
                async { Ok(()) }
            }
        });
        for id in 1..=3 {
            recorder.record(span(id));
        }
        let mut named = span(4);
        named.process = "edge".into();
        recorder.clone().record(named);
        // The flusher has not run yet (current-thread runtime): all four are
        // queued, and go in one batch.
        let batch = seen.recv().await.unwrap();
        let ids: Vec<u64> = batch.spans.iter().map(|s| s.trace_id).collect();
        assert_eq!(ids, [1, 2, 3, 4]);
        let processes: Vec<&str> = batch.spans.iter().map(|s| s.process.as_str()).collect();
        assert_eq!(processes, ["node-1", "node-1", "node-1", "edge"]);
        // A later span is reported on its own, without waiting for more.
        recorder.record(span(5));
        assert_eq!(seen.recv().await.unwrap().spans.len(), 1);
        assert_eq!(recorder.dropped(), 0);
        shutdown.cancel();
        tasks.close();
        tasks.wait().await;
    }

    #[tokio::test]
    async fn batches_are_bounded() {
        let tasks = TaskTracker::new();
        let shutdown = CancellationToken::new();
        let (seen_tx, mut seen) = mpsc::unbounded_channel();
        let recorder = Recorder::with_sink(2000, "n".into(), shutdown.clone(), &tasks, {
            move |batch: SpanBatch| {
                let _ = seen_tx.send(batch.spans.len());
                async { Ok(()) }
            }
        });
        for id in 1..=1100 {
            recorder.record(span(id));
        }
        assert_eq!(seen.recv().await, Some(MAX_BATCH));
        assert_eq!(seen.recv().await, Some(MAX_BATCH));
        assert_eq!(seen.recv().await, Some(1100 - 2 * MAX_BATCH));
        shutdown.cancel();
        tasks.close();
        tasks.wait().await;
    }

    #[tokio::test]
    async fn full_queue_drops_and_counts() {
        let tasks = TaskTracker::new();
        let shutdown = CancellationToken::new();
        let recorder = Recorder::with_sink(4, "n".into(), shutdown.clone(), &tasks, |_| async {
            Ok(())
        });
        // Nothing yields in between: the flusher cannot drain the queue.
        for id in 1..=10 {
            recorder.record(span(id));
        }
        assert_eq!(recorder.dropped(), 6);
        shutdown.cancel();
        tasks.close();
        tasks.wait().await;
    }

    #[tokio::test]
    async fn failed_report_counts_as_dropped_and_is_not_retried() {
        let tasks = TaskTracker::new();
        let shutdown = CancellationToken::new();
        let calls = Arc::new(AtomicU64::new(0));
        let recorder = Recorder::with_sink(16, "n".into(), shutdown.clone(), &tasks, {
            let calls = Arc::clone(&calls);
            move |_| {
                calls.fetch_add(1, Ordering::Relaxed);
                async { Err(tonic::Status::unavailable("control plane away")) }
            }
        });
        recorder.record(span(1));
        recorder.record(span(2));
        until(|| recorder.dropped() == 2).await;
        for _ in 0..100 {
            tokio::task::yield_now().await;
        }
        assert_eq!(calls.load(Ordering::Relaxed), 1);
        assert_eq!(recorder.dropped(), 2);
        shutdown.cancel();
        tasks.close();
        tasks.wait().await;
    }

    #[tokio::test]
    async fn shutdown_reports_what_is_queued_then_stops() {
        let tasks = TaskTracker::new();
        let shutdown = CancellationToken::new();
        let (seen_tx, mut seen) = mpsc::unbounded_channel();
        let recorder = Recorder::with_sink(16, "n".into(), shutdown.clone(), &tasks, {
            move |batch: SpanBatch| {
                let _ = seen_tx.send(batch.spans.len());
                async { Ok(()) }
            }
        });
        recorder.record(span(1));
        recorder.record(span(2));
        shutdown.cancel();
        tasks.close();
        tasks.wait().await;
        assert_eq!(seen.recv().await, Some(2));
        // The flusher is gone: recording still never blocks, and counts.
        recorder.record(span(3));
        assert_eq!(recorder.dropped(), 1);
    }

    type Reported = std::pin::Pin<Box<dyn Future<Output = Result<(), tonic::Status>> + Send>>;

    /// A sink whose first report waits for `gate`; every report's size is
    /// sent to the returned receiver.
    fn gated_sink(
        gate: Arc<tokio::sync::Notify>,
    ) -> (
        impl FnMut(SpanBatch) -> Reported + Send + 'static,
        mpsc::UnboundedReceiver<usize>,
        Arc<AtomicU64>,
    ) {
        let (seen_tx, seen) = mpsc::unbounded_channel();
        let calls = Arc::new(AtomicU64::new(0));
        let sink = {
            let calls = Arc::clone(&calls);
            move |batch: SpanBatch| {
                let first = calls.fetch_add(1, Ordering::SeqCst) == 0;
                let gate = Arc::clone(&gate);
                let seen_tx = seen_tx.clone();
                Box::pin(async move {
                    if first {
                        gate.notified().await;
                    }
                    let _ = seen_tx.send(batch.spans.len());
                    Ok(())
                }) as Reported
            }
        };
        (sink, seen, calls)
    }

    #[tokio::test]
    async fn shutdown_lets_the_report_in_flight_finish() {
        let tasks = TaskTracker::new();
        let shutdown = CancellationToken::new();
        let gate = Arc::new(tokio::sync::Notify::new());
        let (sink, mut seen, calls) = gated_sink(Arc::clone(&gate));
        let recorder = Recorder::with_sink(16, "n".into(), shutdown.clone(), &tasks, sink);
        recorder.record(span(1));
        until(|| calls.load(Ordering::SeqCst) == 1).await;
        recorder.record(span(2));
        shutdown.cancel();
        // Let the flusher see the cancellation with the report still open.
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        gate.notify_one();
        tasks.close();
        tasks.wait().await;
        assert_eq!(seen.recv().await, Some(1));
        assert_eq!(seen.recv().await, Some(1));
        assert_eq!(recorder.dropped(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_stuck_report_is_abandoned_on_shutdown() {
        let tasks = TaskTracker::new();
        let shutdown = CancellationToken::new();
        let (sink, mut seen, calls) = gated_sink(Arc::new(tokio::sync::Notify::new()));
        let recorder = Recorder::with_sink(16, "n".into(), shutdown.clone(), &tasks, sink);
        recorder.record(span(1));
        recorder.record(span(2));
        until(|| calls.load(Ordering::SeqCst) == 1).await;
        recorder.record(span(3));
        shutdown.cancel();
        tasks.close();
        // Paused time: the grace period passes as soon as all is idle.
        tasks.wait().await;
        assert_eq!(recorder.dropped(), 2);
        // What was queued behind the stuck report still went out.
        assert_eq!(seen.recv().await, Some(1));
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
