//! The control plane's revisioned key-value store, etcd style.
//!
//! Every successful write transaction gets the next value of one global,
//! monotonically increasing revision (the first write is revision 1). Each key
//! remembers the revision that created it and the one that last modified it;
//! those become an object's `resourceVersion` and drive optimistic
//! concurrency through [`Precondition::ModRevision`].
//!
//! The module has two layers:
//!
//! - [`Backend`]: durable state only. [`RedbBackend`] (one redb file, the
//!   default) and [`MemBackend`] (tests) implement it; an etcd backend can be
//!   added behind the same trait.
//! - [`Storage`]: the front every other component uses. It serializes writes,
//!   keeps a bounded in-memory history of recent events and serves
//!   list-then-watch with resume from a revision.
//!
//! Deliberately not here: object schemas, validation and the Kubernetes
//! key layout (the API layer owns those; values are opaque bytes), history
//! on disk (a watch can only resume from what the in-memory history still
//! holds, so after a restart clients relist), compaction of old revisions
//! (only the latest value of each key is stored), leases/TTLs, and async I/O:
//! calls block on the backend (a redb commit syncs to disk).

mod failures;
mod mem;
mod redb;
#[cfg(test)]
mod tests;

use std::collections::{BTreeSet, VecDeque};
use std::fmt;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError, Weak};
use std::task::{Context, Poll};

use futures::Stream;
use tokio::sync::mpsc;

use self::failures::FailureLog;
pub use self::mem::MemBackend;
pub use self::redb::RedbBackend;

/// One stored key with its value and revisions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub key: String,
    pub value: Vec<u8>,
    /// Revision of the write that created the key (kept across updates; a
    /// delete followed by a create starts over).
    pub create_revision: u64,
    /// Revision of the latest write to the key.
    pub mod_revision: u64,
}

/// One page of a list ([`Backend::list_page`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    pub entries: Vec<Entry>,
    /// Entries under the prefix after this page (0: this was the last).
    pub remaining: u64,
    /// The revision of the snapshot the page was read from.
    pub revision: u64,
}

/// What must hold for an [`Op`] to be applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precondition {
    /// Always apply. A `Delete` of a missing key is then a no-op.
    None,
    /// The key must not exist, else [`StoreError::AlreadyExists`] (create).
    MustNotExist,
    /// The key must exist, else [`StoreError::NotFound`].
    MustExist,
    /// The key must exist ([`StoreError::NotFound`]) with exactly this
    /// mod revision ([`StoreError::Conflict`]): compare-and-swap.
    ModRevision(u64),
}

/// One write in a transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    Put {
        key: String,
        value: Vec<u8>,
        pre: Precondition,
    },
    Delete {
        key: String,
        pre: Precondition,
    },
}

impl Op {
    fn key(&self) -> &str {
        match self {
            Op::Put { key, .. } | Op::Delete { key, .. } => key,
        }
    }

    fn precondition(&self) -> Precondition {
        match self {
            Op::Put { pre, .. } | Op::Delete { pre, .. } => *pre,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Put,
    Delete,
}

/// A change to one key, as committed by a transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub ty: EventType,
    pub key: String,
    /// The new value for `Put`, the last value before deletion for `Delete`.
    pub value: Vec<u8>,
    /// Revision of the transaction; all events of one transaction share it.
    pub revision: u64,
    /// `true` for a `Put` that created the key (an ADDED rather than a
    /// MODIFIED watch event); always `false` for `Delete`.
    pub created: bool,
}

/// Why a store operation failed. Precondition failures
/// (`Conflict`, `AlreadyExists`, `NotFound`, `DuplicateKey`) are expected
/// outcomes the API maps to client errors; `Corrupt` and `Backend` are not.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("key {key:?} was modified: expected mod revision {expected}, found {actual}")]
    Conflict {
        key: String,
        expected: u64,
        actual: u64,
    },
    #[error("key {key:?} already exists")]
    AlreadyExists { key: String },
    #[error("key {key:?} not found")]
    NotFound { key: String },
    /// Like etcd, a transaction may touch each key at most once, so that
    /// every precondition is checked against the same state.
    #[error("key {key:?} appears more than once in one transaction")]
    DuplicateKey { key: String },
    #[error("stored data for key {key:?} is corrupt: {reason}")]
    Corrupt { key: String, reason: String },
    #[error("storage backend failed")]
    Backend(#[from] BackendError),
}

/// A failure of the storage engine itself, by engine.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("redb database error")]
    Redb(#[source] ::redb::Error),
    /// The database was closed after an I/O failure and could not be
    /// opened again yet; the next call tries again.
    #[error("the store {path} is closed after an I/O failure and could not be reopened yet")]
    Closed { path: String },
}

/// Durable revisioned storage. Implementations only persist; watches are
/// added by [`Storage`], which must be the only writer of a backend (writes
/// that bypass it are not seen by watchers).
pub trait Backend: Send + Sync + 'static {
    fn get(&self, key: &str) -> Result<Option<Entry>, StoreError>;

    /// Every entry whose key starts with `prefix`, in key (byte) order, and
    /// the revision of the consistent snapshot they were read from.
    fn list(&self, prefix: &str) -> Result<(Vec<Entry>, u64), StoreError>;

    /// Up to `limit` (at least 1) entries whose key starts with `prefix`
    /// and sorts after `after` (from the first when `after` is empty), in
    /// key order: one page of [`Backend::list`], read from one snapshot.
    /// The default reads the whole prefix; backends override it to read
    /// only the page.
    fn list_page(&self, prefix: &str, after: &str, limit: usize) -> Result<Page, StoreError> {
        let (entries, revision) = self.list(prefix)?;
        let mut rest = entries
            .into_iter()
            .filter(|e| after.is_empty() || e.key.as_str() > after);
        let entries: Vec<Entry> = rest.by_ref().take(limit.max(1)).collect();
        Ok(Page {
            entries,
            remaining: rest.count() as u64,
            revision,
        })
    }

    /// The revision of the latest write, 0 for an empty store.
    fn revision(&self) -> Result<u64, StoreError>;

    /// Applies all ops atomically: every precondition is checked against the
    /// state before the transaction, and any failure leaves the store (and
    /// the revision) untouched. A transaction that changes something gets
    /// exactly one new revision (the previous one plus 1), returned with its
    /// events in op order. A transaction that changes nothing (no ops, or
    /// only deletes of missing keys without precondition) returns the
    /// current revision and no events, and does not bump the revision.
    fn txn(&self, ops: Vec<Op>) -> Result<(u64, Vec<Event>), StoreError>;
}

/// A change decided by [`plan`], before anything is written.
enum Change {
    Put {
        key: String,
        value: Vec<u8>,
        prev: Option<Entry>,
    },
    Delete {
        prev: Entry,
    },
}

impl Change {
    /// The create revision the key will have after a `Put` at `revision`.
    fn create_revision(&self, revision: u64) -> u64 {
        match self {
            Change::Put {
                prev: Some(prev), ..
            } => prev.create_revision,
            Change::Put { prev: None, .. } | Change::Delete { .. } => revision,
        }
    }

    fn into_event(self, revision: u64) -> Event {
        match self {
            Change::Put { key, value, prev } => Event {
                ty: EventType::Put,
                key,
                value,
                revision,
                created: prev.is_none(),
            },
            Change::Delete { prev } => Event {
                ty: EventType::Delete,
                key: prev.key,
                value: prev.value,
                revision,
                created: false,
            },
        }
    }
}

/// Checks every op of a transaction against the current state (`lookup`) and
/// returns the changes to apply, or the first failure. Shared by the backends
/// so they agree on transaction semantics; it writes nothing.
fn plan(
    ops: Vec<Op>,
    mut lookup: impl FnMut(&str) -> Result<Option<Entry>, StoreError>,
) -> Result<Vec<Change>, StoreError> {
    let mut seen = BTreeSet::new();
    for op in &ops {
        if !seen.insert(op.key()) {
            return Err(StoreError::DuplicateKey {
                key: op.key().to_owned(),
            });
        }
    }
    let mut changes = Vec::with_capacity(ops.len());
    for op in ops {
        let current = lookup(op.key())?;
        check(op.key(), op.precondition(), current.as_ref())?;
        match op {
            Op::Put { key, value, .. } => changes.push(Change::Put {
                key,
                value,
                prev: current,
            }),
            Op::Delete { .. } => {
                if let Some(prev) = current {
                    changes.push(Change::Delete { prev });
                }
            }
        }
    }
    Ok(changes)
}

/// What [`StoreError::Corrupt`] names when the revision counter itself is
/// bad rather than a key.
const REVISION_COUNTER: &str = "(revision counter)";

/// The revision after `current`. Only a corrupt stored counter can be at the
/// end of the range (one write per nanosecond takes centuries to get there).
fn next_revision(current: u64) -> Result<u64, StoreError> {
    current.checked_add(1).ok_or_else(|| StoreError::Corrupt {
        key: REVISION_COUNTER.to_owned(),
        reason: "revision counter is at its maximum".to_owned(),
    })
}

fn check(key: &str, pre: Precondition, current: Option<&Entry>) -> Result<(), StoreError> {
    match (pre, current) {
        (Precondition::None, _)
        | (Precondition::MustNotExist, None)
        | (Precondition::MustExist, Some(_)) => Ok(()),
        (Precondition::MustNotExist, Some(_)) => Err(StoreError::AlreadyExists {
            key: key.to_owned(),
        }),
        (Precondition::MustExist | Precondition::ModRevision(_), None) => {
            Err(StoreError::NotFound {
                key: key.to_owned(),
            })
        }
        (Precondition::ModRevision(expected), Some(entry)) => {
            if entry.mod_revision == expected {
                Ok(())
            } else {
                Err(StoreError::Conflict {
                    key: key.to_owned(),
                    expected,
                    actual: entry.mod_revision,
                })
            }
        }
    }
}

/// Why a watch could not start or had to end. Every variant means "relist
/// (or resume) and watch again"; none is a store failure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WatchError {
    /// Events after `requested` may no longer be in the history (it is
    /// bounded and empty after a restart). `oldest_available` is the
    /// smallest `from_revision` currently accepted.
    #[error(
        "revision {requested} is too old: the oldest revision a watch can resume from is {oldest_available}"
    )]
    TooOld {
        requested: u64,
        oldest_available: u64,
    },
    /// The store has not reached `requested` yet: the client's revision came
    /// from another store (for example one whose state was wiped), so
    /// waiting for it could silently skip events.
    #[error("revision {requested} is newer than the store's current revision {current}")]
    FutureRevision { requested: u64, current: u64 },
    /// The watcher did not keep up and was terminated so writers never wait.
    /// Every matching event up to and including `resume_from` was delivered
    /// before this error, so a new watch from `resume_from` continues without
    /// a gap if the history still holds it (else relist).
    #[error("watcher fell behind and was terminated; resume from revision {resume_from}")]
    Lagged { resume_from: u64 },
}

/// Tuning of a [`Storage`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StorageConfig {
    /// How many recent events are kept in memory for watches to resume from.
    pub history_capacity: usize,
    /// Default bound of each watcher's queue of undelivered live events
    /// (at least 1). A transaction whose matching events do not all fit
    /// terminates that watcher with [`WatchError::Lagged`].
    pub watch_queue_capacity: usize,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            history_capacity: 10_000,
            watch_queue_capacity: 1024,
        }
    }
}

/// The store as the rest of the control plane sees it: a [`Backend`] plus
/// ordered, resumable watches. Cloning is cheap and shares everything.
#[derive(Clone)]
pub struct Storage {
    inner: Arc<Inner>,
}

struct Inner {
    backend: Box<dyn Backend>,
    /// Seconds each backend write transaction takes.
    commits: prometheus_client::metrics::histogram::Histogram,
    config: StorageConfig,
    hub: Mutex<Hub>,
    failures: Mutex<FailureLog>,
}

/// Watch state. Its mutex is also held across every backend write, so the
/// order in which events are published is the revision order.
struct Hub {
    /// Revision of the latest write through this `Storage`.
    revision: u64,
    /// Recent events, oldest first.
    history: VecDeque<Arc<Event>>,
    /// The history holds every event with a revision above this one.
    compacted: u64,
    subscribers: Vec<Subscriber>,
    next_id: u64,
}

struct Subscriber {
    id: u64,
    prefix: String,
    tx: mpsc::Sender<Arc<Event>>,
    /// Set (to the last fully delivered revision) when dropped for lagging.
    lagged: Arc<OnceLock<u64>>,
}

impl Storage {
    /// Wraps `backend` with the default [`StorageConfig`]. Reads the
    /// backend's revision: watches can start from it, not from before it.
    pub fn new(backend: Box<dyn Backend>) -> Result<Self, StoreError> {
        Self::with_config(backend, StorageConfig::default())
    }

    pub fn with_config(
        backend: Box<dyn Backend>,
        config: StorageConfig,
    ) -> Result<Self, StoreError> {
        let revision = backend.revision()?;
        Ok(Self {
            inner: Arc::new(Inner {
                backend,
                commits: prometheus_client::metrics::histogram::Histogram::new(
                    crate::metrics::commit_buckets(),
                ),
                config,
                hub: Mutex::new(Hub {
                    revision,
                    history: VecDeque::new(),
                    // Events before this process started are not in memory.
                    compacted: revision,
                    subscribers: Vec::new(),
                    next_id: 0,
                }),
                failures: Mutex::new(FailureLog::default()),
            }),
        })
    }

    /// The histogram of write transaction times (shared: a clone observes
    /// into the same buckets).
    pub fn commit_histogram(&self) -> prometheus_client::metrics::histogram::Histogram {
        self.inner.commits.clone()
    }

    pub fn get(&self, key: &str) -> Result<Option<Entry>, StoreError> {
        self.inner.observe("read", self.inner.backend.get(key))
    }

    /// Entries under `prefix` in key order and the revision they were read
    /// at: pass that revision to [`Storage::watch`] for list-then-watch.
    pub fn list(&self, prefix: &str) -> Result<(Vec<Entry>, u64), StoreError> {
        self.inner.observe("list", self.inner.backend.list(prefix))
    }

    /// One page of [`Storage::list`]: see [`Backend::list_page`].
    pub fn list_page(&self, prefix: &str, after: &str, limit: usize) -> Result<Page, StoreError> {
        self.inner.backend.list_page(prefix, after, limit)
    }

    pub fn revision(&self) -> Result<u64, StoreError> {
        self.inner.observe("read", self.inner.backend.revision())
    }

    /// Runs [`Backend::txn`] and publishes its events to watchers before
    /// returning. Never waits for a watcher. Blocks on backend I/O, with
    /// writes serialized: call it from `spawn_blocking` if that matters.
    pub fn txn(&self, ops: Vec<Op>) -> Result<(u64, Vec<Arc<Event>>), StoreError> {
        let mut hub = self.inner.lock_hub();
        let started = std::time::Instant::now();
        let written = self.inner.backend.txn(ops);
        self.inner.commits.observe(started.elapsed().as_secs_f64());
        let (revision, events) = self.inner.observe("write", written)?;
        let events: Vec<Arc<Event>> = events.into_iter().map(Arc::new).collect();
        hub.revision = hub.revision.max(revision);
        hub.publish(&events, self.inner.config.history_capacity);
        Ok((revision, events))
    }

    /// Watches keys starting with `prefix` for events with a revision above
    /// `from_revision`, with the default queue capacity. See
    /// [`Storage::watch_with_queue`].
    pub fn watch(&self, prefix: &str, from_revision: u64) -> Result<Watcher, WatchError> {
        self.watch_with_queue(
            prefix,
            from_revision,
            self.inner.config.watch_queue_capacity,
        )
    }

    /// Watches keys starting with `prefix`: the stream yields, in revision
    /// order and without gaps or duplicates, first the events after
    /// `from_revision` still in the history, then live ones. Typically
    /// `from_revision` is the revision a list was read at.
    ///
    /// Fails with [`WatchError::TooOld`] if the history may have lost events
    /// after `from_revision` (always the case for an older revision after a
    /// restart), and with [`WatchError::FutureRevision`] if the store has
    /// not reached `from_revision`. At most `queue_capacity` (at least 1)
    /// live events wait for the consumer; beyond that the stream ends with
    /// [`WatchError::Lagged`].
    pub fn watch_with_queue(
        &self,
        prefix: &str,
        from_revision: u64,
        queue_capacity: usize,
    ) -> Result<Watcher, WatchError> {
        let mut hub = self.inner.lock_hub();
        if from_revision > hub.revision {
            return Err(WatchError::FutureRevision {
                requested: from_revision,
                current: hub.revision,
            });
        }
        if from_revision < hub.compacted {
            return Err(WatchError::TooOld {
                requested: from_revision,
                oldest_available: hub.compacted,
            });
        }
        // Snapshot and registration under the same lock: no write can land
        // between them, so the replay and the live queue meet exactly.
        let backlog = hub
            .history
            .iter()
            .filter(|ev| ev.revision > from_revision && ev.key.starts_with(prefix))
            .cloned()
            .collect();
        let (tx, rx) = mpsc::channel(queue_capacity.max(1));
        let lagged = Arc::new(OnceLock::new());
        let id = hub.next_id;
        hub.next_id += 1;
        hub.subscribers.push(Subscriber {
            id,
            prefix: prefix.to_owned(),
            tx,
            lagged: Arc::clone(&lagged),
        });
        Ok(Watcher {
            id,
            prefix: prefix.to_owned(),
            backlog,
            rx,
            lagged,
            last_revision: from_revision,
            finished: false,
            storage: Arc::downgrade(&self.inner),
        })
    }

    /// Number of registered watchers (for metrics and tests).
    pub fn watcher_count(&self) -> usize {
        self.inner.lock_hub().subscribers.len()
    }
}

impl fmt::Debug for Storage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Storage")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

impl Inner {
    /// Logs backend failures (rate-limited by [`FailureLog`], with the
    /// cause chain) and the recovery after them; passes `result` through.
    /// Precondition failures are answers, not failures, and are not logged.
    fn observe<T>(&self, op: &'static str, result: Result<T, StoreError>) -> Result<T, StoreError> {
        let now = std::time::Instant::now();
        let mut log = self.failures.lock().unwrap_or_else(PoisonError::into_inner);
        match &result {
            Err(err @ (StoreError::Backend(_) | StoreError::Corrupt { .. })) => {
                if let Some(say) = log.failed(now) {
                    tracing::error!(
                        store.op = op,
                        suppressed = say.suppressed,
                        error = %ErrorChain(err),
                        "store {op} failed"
                    );
                }
            }
            Err(_) => {}
            Ok(_) => {
                if let Some(recovered) = log.succeeded(now) {
                    tracing::warn!(
                        failures = recovered.failures,
                        after = ?recovered.after,
                        "store works again"
                    );
                }
            }
        }
        result
    }

    fn lock_hub(&self) -> MutexGuard<'_, Hub> {
        // A panic while holding the lock cannot leave the hub inconsistent
        // in a way that matters more than losing the process, so continue.
        self.hub.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Hub {
    /// Records one transaction's events and hands them to every matching
    /// subscriber without blocking: a subscriber either gets all of the
    /// transaction's matching events or is dropped, so a lagged watcher's
    /// stream always ends on a transaction boundary.
    fn publish(&mut self, events: &[Arc<Event>], history_capacity: usize) {
        let Some(revision) = events.first().map(|ev| ev.revision) else {
            return;
        };
        for ev in events {
            if self.history.len() >= history_capacity {
                match self.history.pop_front() {
                    Some(old) => self.compacted = old.revision,
                    // Zero capacity: the event is dropped as soon as it is made.
                    None => {
                        self.compacted = ev.revision;
                        continue;
                    }
                }
            }
            self.history.push_back(Arc::clone(ev));
        }
        self.subscribers.retain(|sub| {
            let matching = events
                .iter()
                .filter(|ev| ev.key.starts_with(&sub.prefix))
                .count();
            if matching == 0 {
                return !sub.tx.is_closed();
            }
            match sub.tx.try_reserve_many(matching) {
                Ok(permits) => {
                    let matching = events.iter().filter(|ev| ev.key.starts_with(&sub.prefix));
                    for (permit, ev) in permits.zip(matching) {
                        permit.send(Arc::clone(ev));
                    }
                    true
                }
                Err(mpsc::error::TrySendError::Full(())) => {
                    // Revisions are at least 1, so this cannot underflow;
                    // everything before this transaction was delivered.
                    let _ = sub.lagged.set(revision.saturating_sub(1));
                    tracing::debug!(
                        watch.prefix = %sub.prefix,
                        revision,
                        "watcher queue full, terminating watcher"
                    );
                    false
                }
                Err(mpsc::error::TrySendError::Closed(())) => false,
            }
        });
    }
}

/// A stream of [`Event`]s for one watch, from [`Storage::watch`].
///
/// Yields `Ok` events in revision order. It ends with one
/// `Err(WatchError::Lagged)` if the consumer fell behind, or simply ends
/// (`None`) when the `Storage` is gone. Dropping it unregisters the watch.
pub struct Watcher {
    id: u64,
    prefix: String,
    /// Past events from the history, delivered before the live queue.
    backlog: VecDeque<Arc<Event>>,
    rx: mpsc::Receiver<Arc<Event>>,
    lagged: Arc<OnceLock<u64>>,
    last_revision: u64,
    finished: bool,
    storage: Weak<Inner>,
}

impl Watcher {
    /// The next event, `None` once the stream has ended; the same as
    /// `StreamExt::next`, without needing the trait in scope.
    pub async fn next(&mut self) -> Option<Result<Arc<Event>, WatchError>> {
        std::future::poll_fn(|cx| Pin::new(&mut *self).poll_next(cx)).await
    }

    /// Revision of the last event yielded (or the starting revision).
    pub fn last_revision(&self) -> u64 {
        self.last_revision
    }
}

impl Stream for Watcher {
    type Item = Result<Arc<Event>, WatchError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if let Some(ev) = this.backlog.pop_front() {
            this.last_revision = ev.revision;
            return Poll::Ready(Some(Ok(ev)));
        }
        if this.finished {
            return Poll::Ready(None);
        }
        match this.rx.poll_recv(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(ev)) => {
                this.last_revision = ev.revision;
                Poll::Ready(Some(Ok(ev)))
            }
            // The queue is drained and the sender gone: either dropped for
            // lagging (flag set before the sender was dropped) or the
            // storage itself is gone.
            Poll::Ready(None) => {
                this.finished = true;
                Poll::Ready(
                    this.lagged
                        .get()
                        .map(|&resume_from| Err(WatchError::Lagged { resume_from })),
                )
            }
        }
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        if let Some(inner) = self.storage.upgrade() {
            inner.lock_hub().subscribers.retain(|sub| sub.id != self.id);
        }
    }
}

impl fmt::Debug for Watcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Watcher")
            .field("id", &self.id)
            .field("prefix", &self.prefix)
            .field("last_revision", &self.last_revision)
            .field("finished", &self.finished)
            .finish_non_exhaustive()
    }
}

/// An error and its sources, `: `-separated, as anyhow's `{:#}` prints it.
pub struct ErrorChain<'a>(pub &'a (dyn std::error::Error + 'static));

impl fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(err) = source {
            write!(f, ": {err}")?;
            source = err.source();
        }
        Ok(())
    }
}
