//! A bounded serving loop for an axum [`Router`]: HTTP/1.1 and h2c on one port, with a cap on
//! open connections, client-side timeouts (request head, request body, idle keep-alive, stalled
//! writes) and a graceful drain that has a deadline.
//!
//! Every limit is always on; [`Limits::default`] gives production values. Per connection:
//!
//! * **Request head** ([`Limits::header_read_timeout`]): from the first byte of a request (or from
//!   the accept, for a connection's first request) until the head is parsed. Trickling bytes does
//!   not extend it. On expiry the connection is closed (no response; hyper cannot answer a
//!   request it has not parsed).
//! * **Idle** ([`Limits::idle_timeout`]): a connection with no request in flight, nothing left
//!   to write and no request head arriving is closed once it has been so for this long (h2c:
//!   GOAWAY first, then closed if the peer has not gone one more idle period later).
//! * **Stalled writes** (also [`Limits::idle_timeout`]): a connection whose socket has refused
//!   every write for this long (a client that stopped reading, or a dead peer) is closed, even
//!   mid-response.
//! * **Request body** ([`Limits::body_read_timeout`]): the whole body must arrive within this long
//!   of the head. A body read past it fails with [`BodyTimeout`] (see [`is_body_timeout`]); the
//!   response then becomes `408 Request Timeout` with `Connection: close` (unless the handler
//!   already answered 408 itself, which keeps its own body).
//!
//! A watchdog per connection enforces the first three, fed by a thin IO wrapper (which notes
//! reads and blocked writes) and by the per-request service (which counts requests in flight
//! until their response body is dropped). hyper's own HTTP/1 header timer is kept only as a
//! backstop, because it starts when a keep-alive connection goes idle and so would also cap
//! idle time at the header timeout.
//!
//! Shutdown: when the signal future completes the listener is closed (new connections are
//! refused), every connection is asked to finish gracefully (HTTP/1: close after the response in
//! flight, idle ones at once; h2c: GOAWAY), and [`Shutdown::draining`] resolves.
//! [`Shutdown::deadline`] resolves [`Limits::deadline_grace`] before the end of
//! [`Limits::drain_timeout`], so a long-lived stream can end itself with a final event; whatever
//! is still open at `drain_timeout` is closed, and `serve` returns `Ok(())`.

use std::convert::Infallible;
use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::Router;
use bytes::Bytes;
use futures_util::task::AtomicWaker;
use http::{header, HeaderValue, Request, Response, StatusCode, Version};
use http_body::{Body as HttpBody, Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::{JoinError, JoinSet};
use tokio::time::{Instant, Sleep};
use tower::util::Oneshot;
use tower::ServiceExt as _;

/// The server's limits. Build with `Limits { field: value, ..Limits::default() }`.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Connections served at once (default 10 000; 0 counts as 1). At the cap the server stops
    /// calling `accept`: further connections wait in the kernel's listen backlog (their TCP
    /// handshake completes, nothing is read) until a connection closes; once the backlog is full
    /// the kernel drops new SYNs and clients retry.
    pub max_connections: usize,
    /// The whole request head must arrive within this long of its first byte (of the accept, for
    /// a connection's first request); default 30 s.
    pub header_read_timeout: Duration,
    /// The whole request body must arrive within this long of the request head; default 60 s.
    pub body_read_timeout: Duration,
    /// A connection with no request in flight is closed after this long; so is one whose writes
    /// have made no progress for this long. Default 60 s.
    pub idle_timeout: Duration,
    /// How long a drain may last, from the shutdown signal until the last connection is closed
    /// by force; default 25 s (under Kubernetes' default 30 s grace period).
    pub drain_timeout: Duration,
    /// [`Shutdown::deadline`] resolves this long before `drain_timeout` ends, so streams can
    /// write a last event before the hard close; default 1 s.
    pub deadline_grace: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 10_000,
            header_read_timeout: Duration::from_secs(30),
            body_read_timeout: Duration::from_secs(60),
            idle_timeout: Duration::from_secs(60),
            drain_timeout: Duration::from_secs(25),
            deadline_grace: Duration::from_secs(1),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Phase {
    Serving,
    Draining,
    Deadline,
}

/// Where the server is in its shutdown; cheap to clone. Every request carries one in its
/// extensions (`Extension<Shutdown>`), and [`Server::shutdown`] hands one out before serving.
#[derive(Debug, Clone)]
pub struct Shutdown {
    phase: watch::Sender<Phase>,
}

impl Shutdown {
    fn new() -> Self {
        Shutdown { phase: watch::Sender::new(Phase::Serving) }
    }

    /// True once the drain has started.
    pub fn is_draining(&self) -> bool {
        *self.phase.borrow() >= Phase::Draining
    }

    /// True once [`Shutdown::deadline`] has resolved.
    pub fn is_past_deadline(&self) -> bool {
        *self.phase.borrow() >= Phase::Deadline
    }

    /// Resolves when the drain starts: the listener is closed and no new request will come on a
    /// new connection. The future owns what it needs (`Send + 'static`): keep one pinned across a
    /// stream's polls rather than making one per chunk.
    pub fn draining(&self) -> impl Future<Output = ()> + Send + 'static {
        self.reach(Phase::Draining)
    }

    /// Resolves [`Limits::deadline_grace`] before the drain period ends (and at once after
    /// `serve` has returned): a stream still open should send its last event and end. Owned
    /// (`Send + 'static`) like [`Shutdown::draining`].
    pub fn deadline(&self) -> impl Future<Output = ()> + Send + 'static {
        self.reach(Phase::Deadline)
    }

    fn reach(&self, phase: Phase) -> impl Future<Output = ()> + Send + 'static {
        let mut rx = self.phase.subscribe();
        async move {
            // An error means every sender is gone: the server is long finished.
            let _ = rx.wait_for(|p| *p >= phase).await;
        }
    }

    fn advance(&self, phase: Phase) {
        self.phase.send_if_modified(|p| {
            let later = *p < phase;
            if later {
                *p = phase;
            }
            later
        });
    }
}

#[derive(Debug, Default)]
struct Counters {
    open: AtomicUsize,
    accepted: AtomicU64,
    header_timeouts: AtomicU64,
    body_timeouts: AtomicU64,
    idle_timeouts: AtomicU64,
    write_timeouts: AtomicU64,
    forced_closes: AtomicU64,
}

/// Counters for metrics and tests; cheap to clone, read with relaxed loads.
#[derive(Debug, Clone, Default)]
pub struct Stats(Arc<Counters>);

impl Stats {
    /// Connections accepted and not yet closed.
    pub fn open_connections(&self) -> usize {
        self.0.open.load(Ordering::Relaxed)
    }
    /// Connections accepted since start.
    pub fn accepted(&self) -> u64 {
        self.0.accepted.load(Ordering::Relaxed)
    }
    /// Connections closed because a request head did not arrive in time.
    pub fn header_timeouts(&self) -> u64 {
        self.0.header_timeouts.load(Ordering::Relaxed)
    }
    /// Requests whose body did not arrive in time (counted when the response is produced).
    pub fn body_timeouts(&self) -> u64 {
        self.0.body_timeouts.load(Ordering::Relaxed)
    }
    /// Connections closed for being idle.
    pub fn idle_timeouts(&self) -> u64 {
        self.0.idle_timeouts.load(Ordering::Relaxed)
    }
    /// Connections closed because their writes stalled.
    pub fn write_timeouts(&self) -> u64 {
        self.0.write_timeouts.load(Ordering::Relaxed)
    }
    /// Connections still open at the end of the drain, closed by force.
    pub fn forced_closes(&self) -> u64 {
        self.0.forced_closes.load(Ordering::Relaxed)
    }

    fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// A server with its shutdown handle and counters, for callers that need them before serving.
#[derive(Debug)]
pub struct Server {
    limits: Limits,
    shutdown: Shutdown,
    stats: Stats,
}

/// Serve `app` on `listener` within `limits` until `signal` completes, then drain; returns
/// `Ok(())` once the drain is over. The same as `Server::new(limits).serve(listener, app, signal)`.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    signal: impl Future<Output = ()>,
) -> io::Result<()> {
    Server::new(limits).serve(listener, app, signal).await
}

/// Back-off after an accept error such as EMFILE, so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

impl Server {
    pub fn new(limits: Limits) -> Self {
        Server { limits, shutdown: Shutdown::new(), stats: Stats::default() }
    }

    /// The shutdown handle of this server (for app state, background tasks, streams).
    pub fn shutdown(&self) -> Shutdown {
        self.shutdown.clone()
    }

    /// The counters of this server.
    pub fn stats(&self) -> Stats {
        self.stats.clone()
    }

    /// Serve until `signal` completes, then drain (see the crate docs); returns `Ok(())` after
    /// the drain. Accept errors are logged and retried, never returned.
    pub async fn serve(self, listener: TcpListener, app: Router, signal: impl Future<Output = ()>) -> io::Result<()> {
        let Server { limits, shutdown, stats } = self;
        let limits = Arc::new(limits);
        let builder = Arc::new(http_builder(&limits));
        let permits = Arc::new(Semaphore::new(limits.max_connections.clamp(1, Semaphore::MAX_PERMITS)));
        let mut conns = JoinSet::new();
        let mut signal = pin!(signal);
        loop {
            // Take a slot before accepting: at the cap, connections wait in the kernel backlog.
            let permit = tokio::select! {
                biased;
                () = &mut signal => break,
                permit = permits.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
            };
            let accepted = tokio::select! {
                biased;
                () = &mut signal => break,
                accepted = listener.accept() => accepted,
            };
            let (tcp, remote) = match accepted {
                Ok(accepted) => accepted,
                Err(e) if is_connection_error(&e) => continue,
                Err(e) => {
                    tracing::error!(error = %e, "accept failed; retrying");
                    tokio::select! {
                        biased;
                        () = &mut signal => break,
                        () = tokio::time::sleep(ACCEPT_BACKOFF) => continue,
                    }
                }
            };
            // Token-sized stream writes must leave at once, not wait on Nagle and delayed ACKs.
            let _ = tcp.set_nodelay(true);
            stats.0.accepted.fetch_add(1, Ordering::Relaxed);
            while let Some(done) = conns.try_join_next() {
                log_join(done);
            }
            let conn = Conn {
                app: app.clone(),
                builder: builder.clone(),
                limits: limits.clone(),
                shutdown: shutdown.clone(),
                stats: stats.clone(),
            };
            conns.spawn(conn.run(tcp, remote, permit));
        }

        // Drain. Closing the listener first makes new connections fail fast (refused) instead
        // of waiting in a backlog nobody reads.
        drop(listener);
        let started = Instant::now();
        shutdown.advance(Phase::Draining);
        tracing::info!(connections = conns.len(), "shutdown: draining");
        let deadline = after(started, limits.drain_timeout.saturating_sub(limits.deadline_grace));
        let mut done = wait_all(&mut conns, deadline).await;
        shutdown.advance(Phase::Deadline);
        if !done {
            done = wait_all(&mut conns, after(started, limits.drain_timeout)).await;
        }
        if !done {
            let left = conns.len();
            stats.0.forced_closes.fetch_add(left as u64, Ordering::Relaxed);
            tracing::warn!(connections = left, "shutdown: drain timeout; closing the connections left");
            conns.abort_all();
            while let Some(done) = conns.join_next().await {
                log_join(done);
            }
        }
        tracing::info!("shutdown: drained");
        Ok(())
    }
}

/// Waits until every connection task has ended (true) or `until` (false).
async fn wait_all(conns: &mut JoinSet<()>, until: Instant) -> bool {
    let mut timer = pin!(tokio::time::sleep_until(until));
    loop {
        tokio::select! {
            next = conns.join_next() => match next {
                None => return true,
                Some(done) => log_join(done),
            },
            () = &mut timer => return false,
        }
    }
}

fn log_join(done: Result<(), JoinError>) {
    if let Err(e) = done {
        if e.is_panic() {
            tracing::error!(error = %e, "a connection task panicked");
        }
    }
}

/// Errors that concern one connection, not the listener.
fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
            | io::ErrorKind::WouldBlock
    )
}

/// Caps a duration at ~30 years so deadlines never overflow `Instant`.
fn capped(d: Duration) -> Duration {
    d.min(Duration::from_secs(30 * 365 * 86_400))
}

fn after(start: Instant, d: Duration) -> Instant {
    start + capped(d)
}

fn http_builder(limits: &Limits) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .keep_alive(true)
        // A backstop only: the watchdog enforces the head and idle timeouts more precisely. hyper
        // starts this timer when a keep-alive connection goes idle, so it must cover idle + head.
        .header_read_timeout(capped(limits.header_read_timeout).saturating_add(capped(limits.idle_timeout)));
    builder
        .http2()
        .timer(TokioTimer::new())
        // Pings detect a dead peer under a long stream; idle connections are the watchdog's.
        .keep_alive_interval(capped(limits.idle_timeout).max(Duration::from_secs(1)))
        .keep_alive_timeout(limits.idle_timeout.clamp(Duration::from_secs(1), Duration::from_secs(20)));
    builder
}

/// What one connection task needs.
struct Conn {
    app: Router,
    builder: Arc<auto::Builder<TokioExecutor>>,
    limits: Arc<Limits>,
    shutdown: Shutdown,
    stats: Stats,
}

/// Counts the connection as open and holds its slot until dropped (also on abort).
struct OpenGuard {
    stats: Stats,
    _permit: OwnedSemaphorePermit,
}

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.stats.0.open.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Conn {
    async fn run(self, tcp: TcpStream, remote: SocketAddr, permit: OwnedSemaphorePermit) {
        let Conn { app, builder, limits, shutdown, stats } = self;
        stats.0.open.fetch_add(1, Ordering::Relaxed);
        let _open = OpenGuard { stats: stats.clone(), _permit: permit };
        let state = Arc::new(ConnState::new());
        let io = TokioIo::new(TrackedIo { io: tcp, state: state.clone(), sniffed: 0 });
        let service = ConnService {
            app,
            state: state.clone(),
            shutdown: shutdown.clone(),
            stats: stats.clone(),
            remote,
            body_read_timeout: capped(limits.body_read_timeout),
        };
        let mut conn = pin!(builder.serve_connection(io, service));
        let mut watchdog = Watchdog::new(state.clone(), &limits);
        let mut draining = pin!(shutdown.draining());
        let mut drain_seen = false;
        let mut goaway_sent = false;
        loop {
            tokio::select! {
                result = conn.as_mut() => {
                    if let Err(e) = result {
                        tracing::debug!(%remote, error = %e, "connection ended with an error");
                    }
                    return;
                }
                () = &mut draining, if !drain_seen => {
                    drain_seen = true;
                    conn.as_mut().graceful_shutdown();
                    // An HTTP/1 connection with nothing in flight and nothing left to flush has
                    // nothing to finish (hyper would wait for a head that is only partly here).
                    if !state.is_h2() && state.in_flight() == 0 && !state.is_write_blocked() {
                        return;
                    }
                }
                expired = &mut watchdog => match expired {
                    Expired::Head => {
                        Stats::bump(&stats.0.header_timeouts);
                        tracing::debug!(%remote, "closing: request head not received in time");
                        return;
                    }
                    Expired::Write => {
                        Stats::bump(&stats.0.write_timeouts);
                        tracing::debug!(%remote, "closing: writes stalled");
                        return;
                    }
                    Expired::Idle => {
                        if state.is_h2() && !goaway_sent {
                            // Say GOAWAY and give the peer one more idle period to go.
                            Stats::bump(&stats.0.idle_timeouts);
                            tracing::debug!(%remote, "closing idle h2 connection");
                            goaway_sent = true;
                            conn.as_mut().graceful_shutdown();
                            state.restart_idle();
                        } else {
                            if !goaway_sent {
                                Stats::bump(&stats.0.idle_timeouts);
                            }
                            tracing::debug!(%remote, "closing idle connection");
                            return;
                        }
                    }
                },
            }
        }
    }
}

/// "No time": a timestamp slot that is not set.
const UNSET: u64 = u64::MAX;

/// What the IO wrapper, the service and the watchdog of one connection share. Times are
/// nanoseconds since `base`.
struct ConnState {
    base: Instant,
    in_flight: AtomicUsize,
    /// When `in_flight` last fell to 0 (or the h2 preface arrived).
    idle_since: AtomicU64,
    /// When the first byte of a request head arrived while nothing was in flight.
    head_since: AtomicU64,
    /// When a write first returned `Pending` with no progress since.
    write_blocked_since: AtomicU64,
    h2: AtomicBool,
    watchdog: AtomicWaker,
}

impl ConnState {
    fn new() -> Self {
        ConnState {
            base: Instant::now(),
            in_flight: AtomicUsize::new(0),
            idle_since: AtomicU64::new(0),
            // A new connection is for a request: its head is due from the accept.
            head_since: AtomicU64::new(0),
            write_blocked_since: AtomicU64::new(UNSET),
            h2: AtomicBool::new(false),
            watchdog: AtomicWaker::new(),
        }
    }

    fn now(&self) -> u64 {
        self.base.elapsed().as_nanos().min(u128::from(UNSET - 1)) as u64
    }

    fn instant(&self, at: u64) -> Instant {
        self.base + Duration::from_nanos(at)
    }

    fn is_h2(&self) -> bool {
        self.h2.load(Ordering::Relaxed)
    }

    fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Acquire)
    }

    fn request_started(&self) {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.head_since.store(UNSET, Ordering::Relaxed);
    }

    fn request_finished(&self) {
        if self.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.head_since.store(UNSET, Ordering::Relaxed);
            self.idle_since.store(self.now(), Ordering::Release);
            self.watchdog.wake();
        }
    }

    fn restart_idle(&self) {
        self.idle_since.store(self.now(), Ordering::Release);
    }

    fn h2_preface_read(&self) {
        self.h2.store(true, Ordering::Relaxed);
        self.head_since.store(UNSET, Ordering::Relaxed);
        self.idle_since.store(self.now(), Ordering::Release);
        self.watchdog.wake();
    }

    /// Bytes arrived. On HTTP/1 with nothing in flight they start a request head.
    fn bytes_read(&self) {
        if !self.is_h2() && self.in_flight() == 0 && self.head_since.load(Ordering::Relaxed) == UNSET {
            self.head_since.store(self.now(), Ordering::Relaxed);
            self.watchdog.wake();
        }
    }

    /// A write went through. With nothing in flight the connection is still flushing a response
    /// (hyper drops a body once it holds its last frame): not idle, and not yet reading a head.
    fn write_progressed(&self) {
        if self.write_blocked_since.load(Ordering::Relaxed) != UNSET {
            self.write_blocked_since.store(UNSET, Ordering::Relaxed);
        }
        if self.in_flight() == 0 {
            let now = self.now();
            self.idle_since.store(now, Ordering::Release);
            if self.head_since.load(Ordering::Relaxed) != UNSET {
                self.head_since.store(now, Ordering::Relaxed);
            }
        }
    }

    fn write_blocked(&self) {
        if self.write_blocked_since.load(Ordering::Relaxed) == UNSET {
            self.write_blocked_since.store(self.now(), Ordering::Relaxed);
            self.watchdog.wake();
        }
    }

    fn is_write_blocked(&self) -> bool {
        self.write_blocked_since.load(Ordering::Relaxed) != UNSET
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expired {
    Head,
    Idle,
    Write,
}

/// Resolves when one of the connection's deadlines passes; recomputes them whenever woken.
struct Watchdog {
    state: Arc<ConnState>,
    head: u64,
    idle: u64,
    timer: Pin<Box<Sleep>>,
}

fn nanos(d: Duration) -> u64 {
    capped(d).as_nanos() as u64
}

impl Watchdog {
    fn new(state: Arc<ConnState>, limits: &Limits) -> Self {
        let far = state.instant(nanos(Duration::MAX));
        Watchdog {
            state,
            head: nanos(limits.header_read_timeout),
            idle: nanos(limits.idle_timeout),
            timer: Box::pin(tokio::time::sleep_until(far)),
        }
    }

    fn next(&self) -> Option<(u64, Expired)> {
        let s = &self.state;
        let blocked = s.write_blocked_since.load(Ordering::Relaxed);
        if blocked != UNSET {
            // Unflushed output: neither idle nor reading a head yet; the write deadline governs.
            return Some((blocked.saturating_add(self.idle), Expired::Write));
        }
        if s.in_flight() != 0 {
            return None;
        }
        let head = s.head_since.load(Ordering::Relaxed);
        Some(if head != UNSET {
            (head.saturating_add(self.head), Expired::Head)
        } else {
            (s.idle_since.load(Ordering::Acquire).saturating_add(self.idle), Expired::Idle)
        })
    }
}

impl Future for Watchdog {
    type Output = Expired;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Expired> {
        let this = &mut *self;
        this.state.watchdog.register(cx.waker());
        loop {
            let Some((at, why)) = this.next() else { return Poll::Pending };
            let when = this.state.instant(at);
            if this.timer.deadline() != when {
                this.timer.as_mut().reset(when);
            }
            ready!(this.timer.as_mut().poll(cx));
            // The timer fired; unless the connection moved the deadline meanwhile, it has passed.
            if this.next() == Some((at, why)) {
                return Poll::Ready(why);
            }
        }
    }
}

const H2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// `sniffed` once the connection is known not to be h2c.
const NOT_H2: usize = usize::MAX;

/// The socket, noting reads and blocked writes for the watchdog.
struct TrackedIo {
    io: TcpStream,
    state: Arc<ConnState>,
    /// How many bytes of the h2 preface have been read so far (or `NOT_H2`).
    sniffed: usize,
}

impl TrackedIo {
    fn on_read(&mut self, got: &[u8]) {
        if self.sniffed < H2_PREFACE.len() {
            let n = got.len().min(H2_PREFACE.len() - self.sniffed);
            if got[..n] == H2_PREFACE[self.sniffed..self.sniffed + n] {
                self.sniffed += n;
                if self.sniffed == H2_PREFACE.len() {
                    self.state.h2_preface_read();
                }
                return;
            }
            self.sniffed = NOT_H2;
        }
        self.state.bytes_read();
    }

    fn on_write(&self, polled: &Poll<io::Result<usize>>) {
        match polled {
            Poll::Pending => self.state.write_blocked(),
            Poll::Ready(Ok(n)) if *n > 0 => self.state.write_progressed(),
            Poll::Ready(_) => {}
        }
    }
}

impl AsyncRead for TrackedIo {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.io).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = polled {
            if buf.filled().len() > before {
                this.on_read(&buf.filled()[before..]);
            }
        }
        polled
    }
}

impl AsyncWrite for TrackedIo {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.io).poll_write(cx, buf);
        this.on_write(&polled);
        polled
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.io).poll_write_vectored(cx, bufs);
        this.on_write(&polled);
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

/// The per-connection hyper service: counts the request in flight until its response body is
/// dropped, bounds the request body, and adds `ConnectInfo<SocketAddr>` and [`Shutdown`] to the
/// request's extensions.
#[derive(Clone)]
struct ConnService {
    app: Router,
    state: Arc<ConnState>,
    shutdown: Shutdown,
    stats: Stats,
    remote: SocketAddr,
    body_read_timeout: Duration,
}

impl hyper::service::Service<Request<Incoming>> for ConnService {
    type Response = Response<ResponseBody>;
    type Error = Infallible;
    type Future = ResponseFuture;

    fn call(&self, req: Request<Incoming>) -> ResponseFuture {
        let in_flight = InFlight::new(self.state.clone());
        let (mut parts, body) = req.into_parts();
        parts.extensions.insert(ConnectInfo(self.remote));
        parts.extensions.insert(self.shutdown.clone());
        let http1 = parts.version < Version::HTTP_2;
        let (body, expired) = if body.is_end_stream() {
            (RequestBody { inner: body, timer: None }, None)
        } else {
            let expired = Arc::new(AtomicBool::new(false));
            let timer =
                BodyTimer { deadline: Instant::now() + self.body_read_timeout, sleep: None, expired: expired.clone() };
            (RequestBody { inner: body, timer: Some(timer) }, Some(expired))
        };
        ResponseFuture {
            inner: self.app.clone().oneshot(Request::from_parts(parts, body)),
            in_flight: Some(in_flight),
            expired,
            http1,
            stats: self.stats.clone(),
        }
    }
}

/// One request in flight on a connection, until dropped.
struct InFlight(Arc<ConnState>);

impl InFlight {
    fn new(state: Arc<ConnState>) -> Self {
        state.request_started();
        InFlight(state)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.request_finished();
    }
}

pin_project_lite::pin_project! {
    struct ResponseFuture {
        #[pin]
        inner: Oneshot<Router, Request<RequestBody>>,
        in_flight: Option<InFlight>,
        expired: Option<Arc<AtomicBool>>,
        http1: bool,
        stats: Stats,
    }
}

impl Future for ResponseFuture {
    type Output = Result<Response<ResponseBody>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut res = match ready!(this.inner.poll(cx)) {
            Ok(res) => res,
            Err(never) => match never {},
        };
        if this.expired.as_ref().is_some_and(|e| e.load(Ordering::Acquire)) {
            Stats::bump(&this.stats.0.body_timeouts);
            if res.status() != StatusCode::REQUEST_TIMEOUT {
                res = Response::new(Body::from("request body not received in time\n"));
                *res.status_mut() = StatusCode::REQUEST_TIMEOUT;
                res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
            }
            // The rest of the body may still be on its way: do not reuse the connection.
            if *this.http1 {
                res.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
        }
        let in_flight = this.in_flight.take();
        Poll::Ready(Ok(res.map(|inner| ResponseBody { inner, _in_flight: in_flight })))
    }
}

/// The response body, holding the request's [`InFlight`] until hyper drops it.
struct ResponseBody {
    inner: Body,
    _in_flight: Option<InFlight>,
}

impl HttpBody for ResponseBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.get_mut().inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The error a request body read returns once [`Limits::body_read_timeout`] has passed. Handlers
/// see it wrapped (in `axum::Error`, an extractor rejection, ...): test with [`is_body_timeout`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyTimeout;

impl fmt::Display for BodyTimeout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the request body was not received in time")
    }
}

impl StdError for BodyTimeout {}

/// True if `err`, or an error in its `source()` chain, is a [`BodyTimeout`]: map it to 408.
pub fn is_body_timeout(err: &(dyn StdError + 'static)) -> bool {
    let mut next = Some(err);
    while let Some(e) = next {
        if e.is::<BodyTimeout>() {
            return true;
        }
        next = e.source();
    }
    false
}

struct BodyTimer {
    deadline: Instant,
    /// Made on the first read that has to wait.
    sleep: Option<Pin<Box<Sleep>>>,
    expired: Arc<AtomicBool>,
}

impl BodyTimer {
    /// Polls the timer (registering the waker); true once the deadline has passed.
    fn poll_expired(&mut self, cx: &mut Context<'_>) -> bool {
        if self.expired.load(Ordering::Relaxed) {
            return true;
        }
        let deadline = self.deadline;
        let sleep = self.sleep.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if sleep.as_mut().poll(cx).is_ready() {
            self.expired.store(true, Ordering::Release);
            return true;
        }
        false
    }
}

/// The request body: hyper's, failing with [`BodyTimeout`] once its deadline has passed.
struct RequestBody {
    inner: Incoming,
    timer: Option<BodyTimer>,
}

impl HttpBody for RequestBody {
    type Data = Bytes;
    type Error = Box<dyn StdError + Send + Sync>;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        // Once the timer runs, check it first, so a steady trickle cannot outrun it.
        if let Some(timer) = this.timer.as_mut().filter(|t| t.sleep.is_some()) {
            if timer.poll_expired(cx) {
                return Poll::Ready(Some(Err(Box::new(BodyTimeout))));
            }
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => Poll::Ready(Some(Ok(frame))),
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(Box::new(e)))),
            Poll::Ready(None) => {
                this.timer = None;
                Poll::Ready(None)
            }
            Poll::Pending => {
                if this.timer.as_mut().is_some_and(|t| t.poll_expired(cx)) {
                    return Poll::Ready(Some(Err(Box::new(BodyTimeout))));
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Resolves on SIGTERM or SIGINT (Ctrl-C elsewhere than Unix). The handlers are installed when
/// this is called, not when the future is first polled, so call it early, inside the runtime:
/// a SIGTERM that arrives before then kills the process with the default action.
pub fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let term = signal(SignalKind::terminate());
        let int = signal(SignalKind::interrupt());
        async move {
            tokio::select! {
                () = recv(term, "SIGTERM") => {}
                () = recv(int, "SIGINT") => {}
            }
        }
    }
    #[cfg(not(unix))]
    {
        async {
            if tokio::signal::ctrl_c().await.is_ok() {
                tracing::info!("Ctrl-C: shutting down");
            } else {
                std::future::pending::<()>().await;
            }
        }
    }
}

#[cfg(unix)]
async fn recv(signal: io::Result<tokio::signal::unix::Signal>, name: &'static str) {
    match signal {
        Ok(mut s) => {
            s.recv().await;
            tracing::info!("{name}: shutting down");
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot listen for {name}");
            std::future::pending::<()>().await;
        }
    }
}
