//! Link emulation (netem in user space) for the overlay's underlay datagrams.
//!
//! [`EmulatedSocket`] wraps the UDP socket quinn uses and applies the
//! [`LinkParams`] of the destination (from a [`LinkTable`] that can change at
//! run time) to every datagram it sends: partition, random loss, delay with
//! jitter, a rate limit, duplication and reordering, as netem does them.
//! QUIC's own loss recovery and congestion control then react as they would
//! on a real link (QUIC discards a duplicated packet, as TCP discards a
//! duplicated segment; a reordered one can look lost and be sent again).
//!
//! The cost model: a datagram to a destination with clear params (the common
//! case) is passed through untouched, GSO batch included, after one atomic
//! load (and one map lookup when some link is set). Only shaped links pay
//! for splitting batches, random draws and the delay queue.
//!
//! The timing decision is the pure [`LinkState::decide`]: params, per-link
//! state, `now`, size and random draws in, drop or departure time out; and
//! [`duplicates`] says whether a datagram gets a copy, which is then decided
//! on as a datagram of its own (netem enqueues the clone again). The
//! I/O around it sends datagrams that are due right away and queues the
//! others (bounded, [`QUEUE_CAPACITY`] per socket, overflow is dropped and
//! counted) for one sender task that sleeps until the next departure.
//!
//! Deliberately not done here: emulation on receive (each direction of a node
//! pair is shaped by its sender, so a link is a directed pair), bursty loss
//! and netem's correlations, reordering by jitter (only `reorder` lets a
//! datagram overtake: a delayed datagram never leaves before the one delayed
//! before it), what a partition in `Reject` mode refuses (the node's
//! datapath refuses flows before they reach the link; here a partition
//! drops whatever its mode), and deciding which node pairs get which params
//! (the agent fills the table from the scenario's links).

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};
use std::io::{self, IoSliceMut};
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{self, AtomicBool, AtomicU64};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use podnet_proto::model::LinkParams;
use quinn::udp::{EcnCodepoint, RecvMeta, Transmit, UdpSocketState};
use quinn::{AsyncUdpSocket, Runtime, UdpPoller};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tokio::sync::Notify;
use tracing::Instrument;

/// Most datagrams waiting for their departure, per socket. Like a router's
/// buffer: beyond it datagrams are dropped (and counted), which is what
/// makes an overloaded rate-limited link lose packets.
pub const QUEUE_CAPACITY: usize = 10_000;

/// Longest delay (and longest serialization time of one datagram) a link
/// applies; longer settings are clamped so departure times stay far inside
/// the clock's range.
pub const MAX_LINK_DELAY: Duration = Duration::from_secs(3600);

/// Send and receive buffer size requested for the underlay socket.
const SOCKET_BUFFER_BYTES: usize = 4 << 20;

// ---------------------------------------------------------------------------
// Pure core: the timing decision.

/// Why a datagram was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// The link is partitioned (or its rate is 0).
    Partition,
    /// Random loss.
    Loss,
}

/// What happens to one datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Drop(DropReason),
    /// Send at this instant (now or later); `overtakes` when `reorder`
    /// let it skip the delay the others wait.
    Send {
        at: Instant,
        overtakes: bool,
    },
}

/// Random draws for one datagram, each uniform in `[0, 1)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Dice {
    /// Compared with `LinkParams::loss`: the datagram is lost when below it.
    pub loss: f64,
    /// Picks the jitter: 0 is `-jitter`, 0.5 is none, towards 1 is `+jitter`.
    pub jitter: f64,
    /// Compared with `LinkParams::reorder`: the datagram skips the delay
    /// when below it.
    pub reorder: f64,
}

impl Dice {
    /// Fresh draws from `rng`.
    pub fn roll(rng: &mut impl Rng) -> Dice {
        Dice {
            loss: rng.random(),
            jitter: rng.random(),
            reorder: rng.random(),
        }
    }
}

/// Whether a datagram is sent twice: `draw` (uniform in `[0, 1)`) below
/// `LinkParams::duplicate`. A partitioned link has nothing to copy.
pub fn duplicates(params: &LinkParams, draw: f64) -> bool {
    !params.partition && draw < params.duplicate
}

/// What a link remembers between datagrams.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkState {
    /// When the rate limiter finishes serializing the datagrams accepted so
    /// far.
    busy_until: Option<Instant>,
    /// Departure of the last datagram delayed; later delayed ones never
    /// leave earlier, so only `reorder` reorders.
    last_departure: Option<Instant>,
}

impl LinkState {
    /// Decides the fate of one datagram of `size` bytes offered at `now`.
    ///
    /// Only a `Send` verdict changes the state. Callers that then cannot
    /// queue the datagram should decide on a copy and keep the old state, so
    /// a dropped datagram does not occupy the link.
    pub fn decide(
        &mut self,
        params: &LinkParams,
        now: Instant,
        size: usize,
        dice: Dice,
    ) -> Verdict {
        // A rate of zero lets nothing through: the same as a cut link.
        if params.partition || params.rate_bps == Some(0) {
            return Verdict::Drop(DropReason::Partition);
        }
        // Lost datagrams never reach the rate limiter, as in netem.
        if dice.loss < params.loss {
            return Verdict::Drop(DropReason::Loss);
        }
        let mut ready = now;
        let mut busy_until = self.busy_until;
        if let Some(rate) = params.rate_bps {
            let start = busy_until.map_or(now, |busy| busy.max(now));
            let Some(done) = start.checked_add(serialization_time(size, rate)) else {
                // Unreachable with clamped durations; never sending is the
                // honest fallback for a departure beyond the clock's range.
                return Verdict::Drop(DropReason::Partition);
            };
            busy_until = Some(done);
            ready = done;
        }
        // netem's reorder: this share of datagrams is sent as soon as the
        // link has serialized it, ahead of the others waiting their delay.
        // Without a delay nothing waits (the params refuse it anyway).
        if !params.delay.is_zero() && dice.reorder < params.reorder {
            self.busy_until = busy_until;
            return Verdict::Send {
                at: ready,
                overtakes: true,
            };
        }
        let Some(at) = ready.checked_add(propagation_delay(params, dice.jitter)) else {
            return Verdict::Drop(DropReason::Partition);
        };
        let at = self.last_departure.map_or(at, |last| last.max(at));
        self.busy_until = busy_until;
        self.last_departure = Some(at);
        Verdict::Send {
            at,
            overtakes: false,
        }
    }
}

/// Time to put `size` bytes on a link of `rate_bps` (> 0).
fn serialization_time(size: usize, rate_bps: u64) -> Duration {
    let bits = u128::try_from(size).unwrap_or(u128::MAX).saturating_mul(8);
    let nanos = bits.saturating_mul(1_000_000_000) / u128::from(rate_bps.max(1));
    clamp_nanos(nanos)
}

/// Delay plus jitter in `[-jitter, +jitter]`, never below zero.
fn propagation_delay(params: &LinkParams, jitter_draw: f64) -> Duration {
    let delay = i128::try_from(params.delay.min(MAX_LINK_DELAY).as_nanos()).unwrap_or(0);
    let jitter = i128::try_from(params.jitter.min(MAX_LINK_DELAY).as_nanos()).unwrap_or(0);
    // `as` from f64 saturates and maps NaN to 0, which is what we want for a
    // bad draw; the jitter is at most an hour, well inside f64's precision.
    let offset = ((2.0 * jitter_draw.clamp(0.0, 1.0) - 1.0) * jitter as f64) as i128;
    clamp_nanos(u128::try_from(delay + offset).unwrap_or(0))
}

fn clamp_nanos(nanos: u128) -> Duration {
    let max = MAX_LINK_DELAY.as_nanos();
    Duration::from_nanos(u64::try_from(nanos.min(max)).unwrap_or(u64::MAX))
}

// ---------------------------------------------------------------------------
// The link table.

/// Link params by destination underlay address, shared between the agent
/// (which writes it) and the sockets (which read it per datagram).
///
/// Cheap to clone. A change applies to the next datagram sent; datagrams
/// already queued keep the departure they were given.
#[derive(Debug, Clone, Default)]
pub struct LinkTable {
    inner: Arc<TableInner>,
}

#[derive(Debug, Default)]
struct TableInner {
    /// True when `links` is not empty, so the fast path skips the lock.
    any: AtomicBool,
    links: RwLock<HashMap<SocketAddr, LinkParams>>,
}

impl LinkTable {
    pub fn new() -> LinkTable {
        LinkTable::default()
    }

    /// Applies `params` to datagrams sent to `addr`; clear params remove
    /// the entry.
    pub fn set(&self, addr: SocketAddr, params: LinkParams) {
        let mut links = self.write();
        if params.is_clear() {
            links.remove(&canonical(addr));
        } else {
            links.insert(canonical(addr), params);
        }
        // Updated under the write lock so the flag never disagrees with the
        // map for longer than one datagram.
        self.inner
            .any
            .store(!links.is_empty(), atomic::Ordering::Release);
    }

    /// Stops shaping datagrams sent to `addr`.
    pub fn clear(&self, addr: SocketAddr) {
        self.set(addr, LinkParams::default());
    }

    /// Stops shaping every link.
    pub fn clear_all(&self) {
        let mut links = self.write();
        links.clear();
        self.inner.any.store(false, atomic::Ordering::Release);
    }

    /// The params for `addr` (clear when none are set).
    pub fn get(&self, addr: SocketAddr) -> LinkParams {
        self.active(addr).unwrap_or_default()
    }

    /// The params for `addr` when they are not clear: the per-datagram
    /// lookup.
    fn active(&self, addr: SocketAddr) -> Option<LinkParams> {
        if !self.inner.any.load(atomic::Ordering::Acquire) {
            return None;
        }
        self.read().get(&canonical(addr)).copied()
    }

    // A panic while holding the lock cannot leave the map half-updated (each
    // operation is one insert or remove), so a poisoned lock is still valid.
    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<SocketAddr, LinkParams>> {
        self.inner
            .links
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<SocketAddr, LinkParams>> {
        self.inner
            .links
            .write()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// IPv4-mapped IPv6 addresses (from a dual-stack socket) key the same link
/// as the plain IPv4 address.
fn canonical(addr: SocketAddr) -> SocketAddr {
    SocketAddr::new(addr.ip().to_canonical(), addr.port())
}

// ---------------------------------------------------------------------------
// The socket.

/// Counters of one [`EmulatedSocket`], since it was created.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkStats {
    /// Datagrams dropped by random loss.
    pub dropped_loss: u64,
    /// Datagrams dropped because their link was partitioned.
    pub dropped_partition: u64,
    /// Datagrams dropped because the delay queue was full.
    pub dropped_overflow: u64,
    /// Datagrams that went through the delay queue.
    pub delayed: u64,
    /// Copies sent by `duplicate` (beyond the datagrams themselves).
    pub duplicated: u64,
    /// Datagrams `reorder` sent ahead of the ones waiting their delay.
    pub reordered: u64,
    /// Datagrams in the delay queue right now.
    pub queued: usize,
}

/// A UDP socket for quinn that applies link emulation on send.
///
/// Build it with [`EmulatedSocket::new`] and hand it to quinn with
/// [`endpoint`]. Dropping the last reference stops its sender task; queued
/// datagrams are then discarded.
pub struct EmulatedSocket {
    shared: Arc<Shared>,
    table: LinkTable,
    /// The sender task, owned by the socket and aborted when it drops.
    sender: tokio::task::JoinHandle<()>,
}

/// What the socket and its sender task share.
struct Shared {
    io: Arc<dyn AsyncUdpSocket>,
    shaper: Mutex<Shaper>,
    /// Wakes the sender task when a datagram becomes the earliest queued.
    wake: Notify,
    counters: Counters,
}

#[derive(Default)]
struct Counters {
    dropped_loss: AtomicU64,
    dropped_partition: AtomicU64,
    dropped_overflow: AtomicU64,
    delayed: AtomicU64,
    duplicated: AtomicU64,
    reordered: AtomicU64,
}

struct Shaper {
    links: HashMap<SocketAddr, LinkState>,
    queue: BinaryHeap<Queued>,
    next_seq: u64,
    rng: SmallRng,
}

/// A datagram waiting for its departure.
struct Queued {
    at: Instant,
    /// Breaks ties in arrival order, so equal departures keep their order.
    seq: u64,
    destination: SocketAddr,
    ecn: Option<EcnCodepoint>,
    src_ip: Option<IpAddr>,
    contents: Vec<u8>,
}

// `BinaryHeap` is a max-heap: the earliest departure compares greatest.
impl Ord for Queued {
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

impl PartialOrd for Queued {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Queued {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Queued {}

/// The emulation's clock: tokio's, so paused-time tests see the same time
/// as the timers that release queued datagrams.
fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

impl EmulatedSocket {
    /// Wraps a bound UDP socket: makes it non-blocking, raises its buffers
    /// to 4 MB (the kernel may cap that at `net.core.{r,w}mem_max`; a
    /// warning says so) and starts the sender task.
    ///
    /// Must be called inside a tokio runtime.
    pub fn new(socket: std::net::UdpSocket, table: LinkTable) -> io::Result<Arc<EmulatedSocket>> {
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|e| io::Error::other(format!("link emulation needs a tokio runtime: {e}")))?;
        socket.set_nonblocking(true)?;
        let local = socket.local_addr()?;
        raise_buffers(&socket, local)?;
        let io = quinn::TokioRuntime.wrap_udp_socket(socket)?;
        let shared = Arc::new(Shared {
            io,
            shaper: Mutex::new(Shaper {
                links: HashMap::new(),
                queue: BinaryHeap::new(),
                next_seq: 0,
                rng: SmallRng::from_rng(&mut rand::rng()),
            }),
            wake: Notify::new(),
            counters: Counters::default(),
        });
        let span = tracing::debug_span!("link_emulation", underlay.addr = %local);
        let sender = runtime.spawn(run_sender(shared.clone()).instrument(span));
        Ok(Arc::new(EmulatedSocket {
            shared,
            table,
            sender,
        }))
    }

    /// The table this socket reads its link params from.
    pub fn table(&self) -> &LinkTable {
        &self.table
    }

    pub fn stats(&self) -> LinkStats {
        let c = &self.shared.counters;
        let load = |v: &AtomicU64| v.load(atomic::Ordering::Relaxed);
        LinkStats {
            dropped_loss: load(&c.dropped_loss),
            dropped_partition: load(&c.dropped_partition),
            dropped_overflow: load(&c.dropped_overflow),
            delayed: load(&c.delayed),
            duplicated: load(&c.duplicated),
            reordered: load(&c.reordered),
            queued: self.shared.lock().queue.len(),
        }
    }
}

fn raise_buffers(socket: &std::net::UdpSocket, local: SocketAddr) -> io::Result<()> {
    let state = UdpSocketState::new(socket.into())?;
    state.set_send_buffer_size(socket.into(), SOCKET_BUFFER_BYTES)?;
    state.set_recv_buffer_size(socket.into(), SOCKET_BUFFER_BYTES)?;
    // Linux reports twice the (capped) size it was given; anything below the
    // request means the cap applied and bulk throughput will suffer.
    let send = state.send_buffer_size(socket.into())?;
    let recv = state.recv_buffer_size(socket.into())?;
    if send < SOCKET_BUFFER_BYTES || recv < SOCKET_BUFFER_BYTES {
        tracing::warn!(
            underlay.addr = %local,
            send_buffer = send,
            recv_buffer = recv,
            wanted = SOCKET_BUFFER_BYTES,
            "underlay socket buffers capped by the kernel; raise net.core.rmem_max and net.core.wmem_max"
        );
    }
    Ok(())
}

impl Drop for EmulatedSocket {
    fn drop(&mut self) {
        self.sender.abort();
    }
}

impl std::fmt::Debug for EmulatedSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmulatedSocket")
            .field("io", &self.shared.io)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl AsyncUdpSocket for EmulatedSocket {
    fn create_io_poller(self: Arc<Self>) -> Pin<Box<dyn UdpPoller>> {
        self.shared.io.clone().create_io_poller()
    }

    fn try_send(&self, transmit: &Transmit) -> io::Result<()> {
        match self.table.active(transmit.destination) {
            None => self.shared.io.try_send(transmit),
            Some(params) => self.shared.shape(transmit, &params),
        }
    }

    fn poll_recv(
        &self,
        cx: &mut Context,
        bufs: &mut [IoSliceMut<'_>],
        meta: &mut [RecvMeta],
    ) -> Poll<io::Result<usize>> {
        self.shared.io.poll_recv(cx, bufs, meta)
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.shared.io.local_addr()
    }

    fn max_transmit_segments(&self) -> usize {
        self.shared.io.max_transmit_segments()
    }

    fn max_receive_segments(&self) -> usize {
        self.shared.io.max_receive_segments()
    }

    fn may_fragment(&self) -> bool {
        self.shared.io.may_fragment()
    }
}

impl Shared {
    // Every critical section leaves the shaper consistent, so a poisoned
    // lock (a panic elsewhere) must not stop the datapath.
    fn lock(&self) -> MutexGuard<'_, Shaper> {
        self.shaper.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn count(&self, counter: &AtomicU64) {
        counter.fetch_add(1, atomic::Ordering::Relaxed);
    }

    /// The slow path: splits `transmit` into datagrams and applies `params`.
    ///
    /// Never returns `WouldBlock`: by then the datagrams' fates are decided,
    /// and a retry by quinn would draw them again. Datagrams due now that
    /// meet a full socket buffer are queued instead.
    fn shape(&self, transmit: &Transmit, params: &LinkParams) -> io::Result<()> {
        let now = now();
        let segment = transmit
            .segment_size
            .unwrap_or(transmit.contents.len())
            .max(1);
        // Whether quinn's batch leaves as it came: nothing dropped, delayed
        // or copied.
        let mut untouched = true;
        let mut direct: Vec<&[u8]> = Vec::new();
        let mut wake = false;
        {
            let mut guard = self.lock();
            let Shaper {
                links,
                queue,
                next_seq,
                rng,
            } = &mut *guard;
            let state = links.entry(canonical(transmit.destination)).or_default();
            for datagram in transmit.contents.chunks(segment) {
                // A copy is decided on as a datagram of its own (its own
                // loss, delay and reorder draws), as netem enqueues its
                // clone again; it always goes through the queue, so the
                // datagrams sent at once still form a valid GSO batch.
                let copies = if duplicates(params, rng.random()) {
                    self.count(&self.counters.duplicated);
                    untouched = false;
                    2
                } else {
                    1
                };
                for copy in 0..copies {
                    let mut next = *state;
                    let verdict = next.decide(params, now, datagram.len(), Dice::roll(rng));
                    let at = match verdict {
                        Verdict::Drop(reason) => {
                            untouched = false;
                            self.count(match reason {
                                DropReason::Partition => &self.counters.dropped_partition,
                                DropReason::Loss => &self.counters.dropped_loss,
                            });
                            continue;
                        }
                        Verdict::Send { at, overtakes } => {
                            if overtakes {
                                self.count(&self.counters.reordered);
                            }
                            at
                        }
                    };
                    if copy == 0 && at <= now {
                        *state = next;
                        direct.push(datagram);
                        continue;
                    }
                    untouched = false;
                    if queue.len() >= QUEUE_CAPACITY {
                        self.count(&self.counters.dropped_overflow);
                        continue;
                    }
                    *state = next;
                    wake |= queue.peek().is_none_or(|first| at < first.at);
                    *next_seq += 1;
                    queue.push(Queued {
                        at,
                        seq: *next_seq,
                        destination: transmit.destination,
                        ecn: transmit.ecn,
                        src_ip: transmit.src_ip,
                        contents: datagram.to_vec(),
                    });
                    self.count(&self.counters.delayed);
                }
            }
        }
        if wake {
            self.wake.notify_one();
        }
        self.send_direct(transmit, &direct, untouched, segment, now)
    }

    /// Sends the datagrams of a shaped transmit that are due now, as one
    /// batch. They keep their order and only the original last datagram can
    /// be short, so they still form a valid GSO batch.
    fn send_direct(
        &self,
        transmit: &Transmit,
        direct: &[&[u8]],
        all: bool,
        segment: usize,
        now: Instant,
    ) -> io::Result<()> {
        let joined;
        let batch = match direct {
            [] => return Ok(()),
            // Nothing was dropped or delayed: send quinn's batch as it is.
            _ if all => transmit.clone(),
            [one] => Transmit {
                contents: one,
                segment_size: None,
                ..transmit.clone()
            },
            many => {
                joined = many.concat();
                Transmit {
                    contents: &joined,
                    segment_size: Some(segment),
                    ..transmit.clone()
                }
            }
        };
        match self.io.try_send(&batch) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                self.enqueue_now(transmit, direct, now);
                Ok(())
            }
            other => other,
        }
    }

    fn enqueue_now(&self, transmit: &Transmit, datagrams: &[&[u8]], now: Instant) {
        let mut wake = false;
        {
            let mut guard = self.lock();
            for datagram in datagrams {
                if guard.queue.len() >= QUEUE_CAPACITY {
                    self.count(&self.counters.dropped_overflow);
                    continue;
                }
                wake |= guard.queue.peek().is_none_or(|first| now < first.at);
                guard.next_seq += 1;
                let seq = guard.next_seq;
                guard.queue.push(Queued {
                    at: now,
                    seq,
                    destination: transmit.destination,
                    ecn: transmit.ecn,
                    src_ip: transmit.src_ip,
                    contents: datagram.to_vec(),
                });
                self.count(&self.counters.delayed);
            }
        }
        if wake {
            self.wake.notify_one();
        }
    }

    /// Sends one queued datagram, waiting for the socket to be writable.
    async fn send_queued(&self, poller: &mut Pin<Box<dyn UdpPoller>>, datagram: Queued) {
        let transmit = Transmit {
            destination: datagram.destination,
            ecn: datagram.ecn,
            contents: &datagram.contents,
            segment_size: None,
            src_ip: datagram.src_ip,
        };
        loop {
            match self.io.try_send(&transmit) {
                Ok(()) => return,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    let writable =
                        std::future::poll_fn(|cx| poller.as_mut().poll_writable(cx)).await;
                    if let Err(error) = writable {
                        tracing::debug!(%error, "underlay socket failed; delayed datagram dropped");
                        return;
                    }
                }
                Err(error) => {
                    // Like a lost datagram: QUIC recovers.
                    tracing::debug!(%error, dst = %transmit.destination, "delayed datagram not sent");
                    return;
                }
            }
        }
    }
}

/// The sender task: sends queued datagrams at their departure time.
async fn run_sender(shared: Arc<Shared>) {
    let mut poller = shared.io.clone().create_io_poller();
    let mut due = Vec::new();
    loop {
        let next = {
            let mut guard = shared.lock();
            let now = now();
            while guard.queue.peek().is_some_and(|first| first.at <= now) {
                due.extend(guard.queue.pop());
            }
            guard.queue.peek().map(|first| first.at)
        };
        if !due.is_empty() {
            for datagram in due.drain(..) {
                shared.send_queued(&mut poller, datagram).await;
            }
            // Sending took time: look again before sleeping.
            continue;
        }
        // A notification sent since the queue was read is kept as a permit,
        // so no wake-up is lost between the check above and this wait.
        let notified = shared.wake.notified();
        match next {
            Some(at) => {
                tokio::select! {
                    () = tokio::time::sleep_until(at.into()) => {}
                    () = notified => {}
                }
            }
            None => notified.await,
        }
    }
}

/// Builds a quinn endpoint on an [`EmulatedSocket`], with the default
/// endpoint config and the tokio runtime. Set a client config on the result
/// (`set_default_client_config`) to open connections.
pub fn endpoint(
    socket: Arc<EmulatedSocket>,
    server_config: Option<quinn::ServerConfig>,
) -> io::Result<quinn::Endpoint> {
    quinn::Endpoint::new_with_abstract_socket(
        quinn::EndpointConfig::default(),
        server_config,
        socket,
        Arc::new(quinn::TokioRuntime),
    )
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;
    use crate::tls::testing::TestCa;

    const MS: Duration = Duration::from_millis(1);

    fn params(f: impl FnOnce(&mut LinkParams)) -> LinkParams {
        let mut p = LinkParams::default();
        f(&mut p);
        p
    }

    /// Times are microseconds after a fixed origin.
    fn at(origin: Instant, micros: u64) -> Instant {
        origin + Duration::from_micros(micros)
    }

    /// What a decision should give, with times in microseconds.
    #[derive(Debug, PartialEq)]
    enum Expect {
        Drop(DropReason),
        SendAt(u64),
        /// Sent at this time ahead of the delayed ones (`reorder`).
        OvertakesAt(u64),
    }

    struct Case {
        params: LinkParams,
        /// `busy_until`, `last_departure` before the datagram, in µs.
        state: (Option<u64>, Option<u64>),
        now: u64,
        size: usize,
        /// Loss, jitter and reorder draws.
        dice: (f64, f64, f64),
    }

    fn check(case: Case, expected: Expect) {
        let origin = Instant::now();
        let mut state = LinkState {
            busy_until: case.state.0.map(|t| at(origin, t)),
            last_departure: case.state.1.map(|t| at(origin, t)),
        };
        let before = state;
        let verdict = state.decide(
            &case.params,
            at(origin, case.now),
            case.size,
            Dice {
                loss: case.dice.0,
                jitter: case.dice.1,
                reorder: case.dice.2,
            },
        );
        let got = match verdict {
            Verdict::Drop(reason) => {
                assert_eq!(state, before, "a drop must not change the link state");
                Expect::Drop(reason)
            }
            Verdict::Send {
                at: when,
                overtakes,
            } => {
                let micros = u64::try_from((when - origin).as_micros()).unwrap();
                if overtakes {
                    assert_eq!(
                        state.last_departure, before.last_departure,
                        "an overtaking datagram must not hold back the delayed ones"
                    );
                    Expect::OvertakesAt(micros)
                } else {
                    assert_eq!(state.last_departure, Some(when));
                    Expect::SendAt(micros)
                }
            }
        };
        assert_eq!(got, expected, "params {:?}", case.params);
    }

    fn case(params: LinkParams) -> Case {
        Case {
            params,
            state: (None, None),
            now: 1_000,
            size: 1_000,
            dice: (0.5, 0.5, 0.5),
        }
    }

    #[test]
    fn decisions() {
        // Partition drops whatever the draws.
        check(
            Case {
                dice: (0.999, 0.0, 0.5),
                ..case(params(|p| p.partition = true))
            },
            Expect::Drop(DropReason::Partition),
        );
        // A zero rate is a partition, not a division by zero.
        check(
            case(params(|p| p.rate_bps = Some(0))),
            Expect::Drop(DropReason::Partition),
        );
        // Loss: dropped when the draw is below the loss probability.
        let lossy = params(|p| p.loss = 0.25);
        check(
            Case {
                dice: (0.1, 0.5, 0.5),
                ..case(lossy)
            },
            Expect::Drop(DropReason::Loss),
        );
        check(
            Case {
                dice: (0.25, 0.5, 0.5),
                ..case(lossy)
            },
            Expect::SendAt(1_000),
        );
        // Loss 100% drops even the highest draw.
        check(
            Case {
                dice: (0.999_999, 0.5, 0.5),
                ..case(params(|p| p.loss = 1.0))
            },
            Expect::Drop(DropReason::Loss),
        );
        // Delay.
        let delayed = params(|p| p.delay = 20 * MS);
        check(case(delayed), Expect::SendAt(21_000));
        // Jitter: draw 0 is -jitter, 0.5 none, 0.75 half of +jitter.
        let jittery = params(|p| {
            p.delay = 10 * MS;
            p.jitter = 4 * MS;
        });
        check(
            Case {
                dice: (0.5, 0.0, 0.5),
                ..case(jittery)
            },
            Expect::SendAt(7_000),
        );
        check(case(jittery), Expect::SendAt(11_000));
        check(
            Case {
                dice: (0.5, 0.75, 0.5),
                ..case(jittery)
            },
            Expect::SendAt(13_000),
        );
        // Jitter larger than the delay never sends before now.
        check(
            Case {
                dice: (0.5, 0.0, 0.5),
                ..case(params(|p| {
                    p.delay = MS;
                    p.jitter = 5 * MS;
                }))
            },
            Expect::SendAt(1_000),
        );
        // No reordering: never before the previous departure on the link.
        check(
            Case {
                state: (None, Some(30_000)),
                ..case(delayed)
            },
            Expect::SendAt(30_000),
        );
        check(
            Case {
                state: (None, Some(5_000)),
                ..case(delayed)
            },
            Expect::SendAt(21_000),
        );
        // Rate: 8 Mbit/s is one byte per microsecond.
        let slow = params(|p| p.rate_bps = Some(8_000_000));
        check(case(slow), Expect::SendAt(2_000));
        // Serialization starts when the link is free, not now.
        check(
            Case {
                state: (Some(4_000), Some(4_000)),
                ..case(slow)
            },
            Expect::SendAt(5_000),
        );
        // An idle link (busy in the past) starts now.
        check(
            Case {
                state: (Some(500), Some(500)),
                ..case(slow)
            },
            Expect::SendAt(2_000),
        );
        // Rate then delay.
        check(
            case(params(|p| {
                p.rate_bps = Some(8_000_000);
                p.delay = 20 * MS;
            })),
            Expect::SendAt(22_000),
        );
        // Reorder: a draw below the share skips the delay (and the jitter)
        // and does not wait for the datagrams delayed before it.
        let reordering = params(|p| {
            p.delay = 10 * MS;
            p.jitter = 2 * MS;
            p.reorder = 0.25;
        });
        check(
            Case {
                state: (None, Some(30_000)),
                dice: (0.5, 0.0, 0.1),
                ..case(reordering)
            },
            Expect::OvertakesAt(1_000),
        );
        check(
            Case {
                dice: (0.5, 0.5, 0.25),
                ..case(reordering)
            },
            Expect::SendAt(11_000),
        );
        // It still waits for the rate limiter to serialize it.
        check(
            Case {
                state: (Some(4_000), Some(20_000)),
                dice: (0.5, 0.5, 0.0),
                ..case(params(|p| {
                    p.delay = 10 * MS;
                    p.reorder = 1.0;
                    p.rate_bps = Some(8_000_000);
                }))
            },
            Expect::OvertakesAt(5_000),
        );
        // Lost datagrams are lost whatever the reorder draw.
        check(
            Case {
                dice: (0.0, 0.5, 0.0),
                ..case(params(|p| {
                    p.delay = 10 * MS;
                    p.reorder = 1.0;
                    p.loss = 0.5;
                }))
            },
            Expect::Drop(DropReason::Loss),
        );
        // Without a delay there is nothing to overtake.
        check(
            Case {
                dice: (0.5, 0.5, 0.0),
                ..case(params(|p| p.reorder = 1.0))
            },
            Expect::SendAt(1_000),
        );
        // Absurd settings are clamped, not overflowed.
        check(
            Case {
                now: 0,
                ..case(params(|p| p.delay = Duration::MAX))
            },
            Expect::SendAt(u64::try_from(MAX_LINK_DELAY.as_micros()).unwrap()),
        );
        check(
            Case {
                now: 0,
                size: usize::MAX,
                ..case(params(|p| p.rate_bps = Some(1)))
            },
            Expect::SendAt(u64::try_from(MAX_LINK_DELAY.as_micros()).unwrap()),
        );
    }

    #[test]
    fn rate_limit_serializes_a_burst() {
        let origin = Instant::now();
        let p = params(|p| {
            p.rate_bps = Some(8_000_000);
            p.delay = 10 * MS;
        });
        let mut state = LinkState::default();
        let dice = Dice {
            loss: 0.5,
            jitter: 0.5,
            reorder: 0.5,
        };
        let departures: Vec<_> = (0..3)
            .map(|_| match state.decide(&p, origin, 1_000, dice) {
                Verdict::Send { at, .. } => at - origin,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(departures, [11 * MS, 12 * MS, 13 * MS]);
    }

    #[test]
    fn jitter_never_reorders() {
        let origin = Instant::now();
        let p = params(|p| {
            p.delay = 10 * MS;
            p.jitter = 10 * MS;
        });
        let mut rng = SmallRng::seed_from_u64(1);
        let mut state = LinkState::default();
        let mut last = origin;
        for i in 0..10_000u64 {
            let now = origin + Duration::from_micros(i * 10);
            let dice = Dice::roll(&mut rng);
            let Verdict::Send { at, .. } = state.decide(&p, now, 1_200, dice) else {
                panic!("no loss configured");
            };
            assert!(at >= last && at >= now, "datagram {i} reordered");
            assert!(at <= now + 20 * MS, "datagram {i} beyond delay + jitter");
            last = at;
        }
    }

    #[test]
    fn loss_rate_over_many_samples() {
        let p = params(|p| p.loss = 0.01);
        let mut rng = SmallRng::seed_from_u64(7);
        let mut state = LinkState::default();
        let now = Instant::now();
        let samples = 100_000;
        let lost = (0..samples)
            .filter(|_| {
                let dice = Dice::roll(&mut rng);
                state.decide(&p, now, 1_200, dice) == Verdict::Drop(DropReason::Loss)
            })
            .count();
        let rate = lost as f64 / f64::from(samples);
        assert!((0.008..=0.012).contains(&rate), "loss rate {rate}");
    }

    #[test]
    fn duplicate_share_over_many_samples() {
        let p = params(|p| p.duplicate = 0.01);
        let mut rng = SmallRng::seed_from_u64(11);
        let samples = 100_000;
        let copies = (0..samples)
            .filter(|_| duplicates(&p, rng.random()))
            .count();
        let share = copies as f64 / f64::from(samples);
        assert!((0.008..=0.012).contains(&share), "duplicate share {share}");
        // Nothing to copy across a partition, nothing at 0%; always at 100%.
        let cut = params(|p| {
            p.duplicate = 1.0;
            p.partition = true;
        });
        assert!(!duplicates(&cut, 0.0));
        assert!(!duplicates(&LinkParams::default(), 0.0));
        assert!(duplicates(&params(|p| p.duplicate = 1.0), 0.999_999));
    }

    /// Datagrams offered 100 µs apart on a 10 ms link reordering 25%: about
    /// a quarter leave at once and arrive before datagrams sent earlier.
    #[test]
    fn reorder_share_over_many_samples() {
        let origin = Instant::now();
        let p = params(|p| {
            p.delay = 10 * MS;
            p.reorder = 0.25;
        });
        let mut rng = SmallRng::seed_from_u64(3);
        let mut state = LinkState::default();
        let samples = 100_000u64;
        let mut departures = Vec::new();
        let mut overtaking = 0;
        for i in 0..samples {
            let now = origin + Duration::from_micros(i * 100);
            let Verdict::Send { at, overtakes } =
                state.decide(&p, now, 1_200, Dice::roll(&mut rng))
            else {
                panic!("no loss configured");
            };
            if overtakes {
                overtaking += 1;
                assert_eq!(at, now, "datagram {i} overtook but waited");
            } else {
                assert_eq!(at, now + 10 * MS, "datagram {i} delayed wrong");
            }
            departures.push((at, i));
        }
        let share = f64::from(overtaking) / samples as f64;
        assert!((0.24..=0.26).contains(&share), "reorder share {share}");
        // In arrival order, a datagram is out of order when one sent before
        // it arrives after it: each overtaking one passes the delayed ones
        // of the 10 ms before it, and only those are.
        departures.sort();
        let mut earliest_after = u64::MAX;
        let out_of_order = departures
            .iter()
            .rev()
            .filter(|&&(_, i)| {
                let early = earliest_after < i;
                earliest_after = earliest_after.min(i);
                early
            })
            .count();
        let share = out_of_order as f64 / samples as f64;
        assert!((0.24..=0.26).contains(&share), "out-of-order share {share}");
    }

    #[test]
    fn link_table() {
        let table = LinkTable::new();
        let a: SocketAddr = (Ipv4Addr::LOCALHOST, 1000).into();
        let mapped: SocketAddr = "[::ffff:127.0.0.1]:1000".parse().unwrap();
        let delayed = params(|p| p.delay = MS);
        assert_eq!(table.active(a), None);
        table.set(a, delayed);
        assert_eq!(table.get(a), delayed);
        assert_eq!(table.active(mapped), Some(delayed));
        // Clones share the table.
        let clone = table.clone();
        clone.set(a, LinkParams::default());
        assert_eq!(table.active(a), None);
        assert!(!table.inner.any.load(atomic::Ordering::Acquire));
        table.set(a, delayed);
        table.clear(mapped);
        assert!(table.get(a).is_clear());
        table.set(a, delayed);
        table.clear_all();
        assert_eq!(table.active(a), None);
    }

    // --- I/O: the socket with raw datagrams -------------------------------

    fn emulated(table: &LinkTable) -> Arc<EmulatedSocket> {
        let socket = std::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        EmulatedSocket::new(socket, table.clone()).unwrap()
    }

    async fn receiver() -> (tokio::net::UdpSocket, SocketAddr) {
        let socket = tokio::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .unwrap();
        let addr = socket.local_addr().unwrap();
        (socket, addr)
    }

    fn transmit(
        destination: SocketAddr,
        contents: &[u8],
        segment_size: Option<usize>,
    ) -> Transmit<'_> {
        Transmit {
            destination,
            ecn: None,
            contents,
            segment_size,
            src_ip: None,
        }
    }

    /// Waits until the socket is known writable: a fresh tokio socket
    /// reports `WouldBlock` until the reactor has seen it, as quinn expects.
    async fn writable(socket: &Arc<EmulatedSocket>) {
        let mut poller = socket.clone().create_io_poller();
        std::future::poll_fn(|cx| poller.as_mut().poll_writable(cx))
            .await
            .unwrap();
    }

    async fn recv(socket: &tokio::net::UdpSocket) -> Vec<u8> {
        let mut buf = [0u8; 2048];
        let (n, _) = tokio::time::timeout(Duration::from_secs(5), socket.recv_from(&mut buf))
            .await
            .expect("datagram within 5 s")
            .unwrap();
        buf[..n].to_vec()
    }

    #[tokio::test]
    async fn delay_holds_datagrams_and_keeps_their_order() {
        let table = LinkTable::new();
        let socket = emulated(&table);
        let (rx, rx_addr) = receiver().await;
        table.set(
            rx_addr,
            params(|p| {
                p.delay = 30 * MS;
                p.jitter = 5 * MS;
            }),
        );
        let start = tokio::time::Instant::now();
        for i in 0..50u8 {
            socket.try_send(&transmit(rx_addr, &[i], None)).unwrap();
        }
        for i in 0..50u8 {
            assert_eq!(recv(&rx).await, [i]);
            if i == 0 {
                assert!(start.elapsed() >= 25 * MS, "first datagram early");
            }
        }
        let stats = socket.stats();
        assert_eq!(stats.delayed, 50);
        assert_eq!(stats.queued, 0);
    }

    #[tokio::test]
    async fn batches_are_split_into_their_datagrams() {
        let table = LinkTable::new();
        let socket = emulated(&table);
        let (rx, rx_addr) = receiver().await;
        table.set(rx_addr, params(|p| p.delay = MS));
        let contents: Vec<u8> = (0..25).collect();
        socket
            .try_send(&transmit(rx_addr, &contents, Some(10)))
            .unwrap();
        assert_eq!(recv(&rx).await, contents[..10]);
        assert_eq!(recv(&rx).await, contents[10..20]);
        assert_eq!(recv(&rx).await, contents[20..]);
        assert_eq!(socket.stats().delayed, 3);
    }

    #[tokio::test]
    async fn loss_only_links_send_directly() {
        let table = LinkTable::new();
        let socket = emulated(&table);
        let (rx, rx_addr) = receiver().await;
        // Shaped, but the smallest loss never drops in practice.
        table.set(rx_addr, params(|p| p.loss = f64::MIN_POSITIVE));
        writable(&socket).await;
        let segments = socket.max_transmit_segments().min(3);
        let contents: Vec<u8> = (0..u8::try_from(segments * 10 - 5).unwrap()).collect();
        let segment_size = (segments > 1).then_some(10);
        socket
            .try_send(&transmit(rx_addr, &contents, segment_size))
            .unwrap();
        let mut got = Vec::new();
        while got.len() < contents.len() {
            got.extend(recv(&rx).await);
        }
        assert_eq!(got, contents);
        assert_eq!(socket.stats(), LinkStats::default());
    }

    #[tokio::test]
    async fn drops_are_counted() {
        let table = LinkTable::new();
        let socket = emulated(&table);
        let (rx, rx_addr) = receiver().await;
        table.set(rx_addr, params(|p| p.partition = true));
        socket.try_send(&transmit(rx_addr, b"cut", None)).unwrap();
        table.set(rx_addr, params(|p| p.loss = 1.0));
        socket
            .try_send(&transmit(rx_addr, &[0; 20], Some(10)))
            .unwrap();
        // A long delay fills the queue; one more datagram overflows it.
        table.set(rx_addr, params(|p| p.delay = Duration::from_secs(60)));
        for _ in 0..QUEUE_CAPACITY + 1 {
            socket.try_send(&transmit(rx_addr, b"late", None)).unwrap();
        }
        assert_eq!(
            socket.stats(),
            LinkStats {
                dropped_loss: 2,
                dropped_partition: 1,
                dropped_overflow: 1,
                delayed: u64::try_from(QUEUE_CAPACITY).unwrap(),
                queued: QUEUE_CAPACITY,
                ..LinkStats::default()
            }
        );
        // Clearing applies to the next datagram; the queued ones stay.
        table.clear(rx_addr);
        writable(&socket).await;
        socket.try_send(&transmit(rx_addr, b"clear", None)).unwrap();
        assert_eq!(recv(&rx).await, b"clear");
    }

    #[tokio::test]
    async fn duplicates_and_reorders_reach_the_receiver() {
        let table = LinkTable::new();
        let socket = emulated(&table);
        let (rx, rx_addr) = receiver().await;
        table.set(rx_addr, params(|p| p.duplicate = 1.0));
        writable(&socket).await;
        // A GSO batch of three: each datagram arrives twice.
        let contents: Vec<u8> = (0..25).collect();
        socket
            .try_send(&transmit(rx_addr, &contents, Some(10)))
            .unwrap();
        let mut got = Vec::new();
        for _ in 0..6 {
            got.push(recv(&rx).await);
        }
        got.sort();
        let mut want = vec![
            contents[..10].to_vec(),
            contents[..10].to_vec(),
            contents[10..20].to_vec(),
            contents[10..20].to_vec(),
            contents[20..].to_vec(),
            contents[20..].to_vec(),
        ];
        want.sort();
        assert_eq!(got, want);
        assert_eq!(socket.stats().duplicated, 3);

        // Every datagram overtakes: a 60 s delay holds none of them.
        table.set(
            rx_addr,
            params(|p| {
                p.delay = Duration::from_secs(60);
                p.reorder = 1.0;
            }),
        );
        socket.try_send(&transmit(rx_addr, b"now", None)).unwrap();
        assert_eq!(recv(&rx).await, b"now");
        let stats = socket.stats();
        assert_eq!((stats.reordered, stats.queued), (1, 0));
    }

    #[test]
    fn new_outside_a_runtime_is_an_error() {
        // tokio would panic when registering the socket; `new` must return
        // an error instead.
        let handle = std::thread::spawn(|| {
            let socket = std::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
            EmulatedSocket::new(socket, LinkTable::new()).map(|_| ())
        });
        let result = handle.join().unwrap();
        assert!(result.is_err());
    }

    // --- I/O: two quinn endpoints -----------------------------------------

    struct Node {
        endpoint: quinn::Endpoint,
        socket: Arc<EmulatedSocket>,
        addr: SocketAddr,
    }

    fn node(ca: &TestCa, name: &str) -> Node {
        let identity = ca.identity(name);
        let socket = emulated(&LinkTable::new());
        let addr = socket.local_addr().unwrap();
        let mut endpoint = endpoint(socket.clone(), Some(identity.server_config())).unwrap();
        endpoint.set_default_client_config(identity.client_config());
        Node {
            endpoint,
            socket,
            addr,
        }
    }

    /// Accepts connections and echoes every 4-byte message on every stream.
    fn echo_server(endpoint: quinn::Endpoint) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            while let Some(incoming) = endpoint.accept().await {
                tokio::spawn(async move {
                    let Ok(conn) = incoming.await else { return };
                    while let Ok((mut send, mut recv)) = conn.accept_bi().await {
                        tokio::spawn(async move {
                            let mut buf = [0u8; 4];
                            while recv.read_exact(&mut buf).await.is_ok() {
                                if send.write_all(&buf).await.is_err() {
                                    return;
                                }
                            }
                        });
                    }
                });
            }
        })
    }

    async fn ping(send: &mut quinn::SendStream, recv: &mut quinn::RecvStream) -> Duration {
        let start = tokio::time::Instant::now();
        send.write_all(b"ping").await.unwrap();
        let mut buf = [0u8; 4];
        recv.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"ping");
        start.elapsed()
    }

    #[tokio::test]
    async fn quinn_over_a_delayed_link() {
        let ca = TestCa::new("podnet test CA");
        let a = node(&ca, "node-a");
        let b = node(&ca, "node-b");
        let server = echo_server(b.endpoint.clone());
        let delayed = params(|p| p.delay = 20 * MS);
        a.socket.table().set(b.addr, delayed);
        b.socket.table().set(a.addr, delayed);

        let conn = a.endpoint.connect(b.addr, "node-b").unwrap().await.unwrap();
        let (mut send, mut recv) = conn.open_bi().await.unwrap();
        ping(&mut send, &mut recv).await;
        let rtt = ping(&mut send, &mut recv).await;
        assert!(rtt >= 40 * MS, "round trip {rtt:?} under 2 x 20 ms");
        assert!(a.socket.stats().delayed > 0 && b.socket.stats().delayed > 0);

        conn.close(0u32.into(), b"done");
        server.abort();
    }

    #[tokio::test]
    async fn quinn_streams_survive_duplication_and_reordering() {
        let ca = TestCa::new("podnet test CA");
        let a = node(&ca, "node-a");
        let b = node(&ca, "node-b");
        let server = echo_server(b.endpoint.clone());
        let messy = params(|p| {
            p.delay = 2 * MS;
            p.reorder = 0.5;
            p.duplicate = 0.3;
        });
        a.socket.table().set(b.addr, messy);
        b.socket.table().set(a.addr, messy);

        let conn = a.endpoint.connect(b.addr, "node-b").unwrap().await.unwrap();
        let (mut send, mut recv) = conn.open_bi().await.unwrap();
        // Many messages in flight at once, each echoed once and in order.
        let sent: Vec<u8> = (0..4_000u32).flat_map(|i| i.to_be_bytes()).collect();
        let writer = tokio::spawn(async move {
            send.write_all(&sent).await.unwrap();
            send
        });
        let mut got = vec![0u8; 16_000];
        recv.read_exact(&mut got).await.unwrap();
        let want: Vec<u8> = (0..4_000u32).flat_map(|i| i.to_be_bytes()).collect();
        assert_eq!(got, want);
        let _send = writer.await.unwrap();
        let stats = a.socket.stats();
        assert!(stats.duplicated > 0 && stats.reordered > 0, "{stats:?}");

        conn.close(0u32.into(), b"done");
        server.abort();
    }

    #[tokio::test]
    async fn quinn_over_a_partitioned_link() {
        let ca = TestCa::new("podnet test CA");
        let a = node(&ca, "node-a");
        let b = node(&ca, "node-b");
        let server = echo_server(b.endpoint.clone());
        a.socket.table().set(b.addr, params(|p| p.partition = true));

        let attempt = a.endpoint.connect(b.addr, "node-b").unwrap();
        let result = tokio::time::timeout(300 * MS, attempt).await;
        assert!(result.is_err(), "connected across a partition: {result:?}");
        assert!(a.socket.stats().dropped_partition > 0);

        a.socket.table().clear(b.addr);
        let conn = tokio::time::timeout(Duration::from_secs(5), {
            a.endpoint.connect(b.addr, "node-b").unwrap()
        })
        .await
        .expect("connects once the partition is cleared")
        .unwrap();
        let (mut send, mut recv) = conn.open_bi().await.unwrap();
        ping(&mut send, &mut recv).await;

        conn.close(0u32.into(), b"done");
        server.abort();
    }
}
