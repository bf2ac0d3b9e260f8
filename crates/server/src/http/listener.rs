//! Accepting connections. axum's `serve` sets no timeouts, so a client that
//! sends half a request, or opens a connection and says nothing, would hold
//! it open forever; here every connection has a deadline for its request
//! headers and an idle limit, and shutdown lets in-flight requests finish.

use std::{
    future::Future,
    io,
    net::SocketAddr,
    pin::{Pin, pin},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    task::{Context, Poll},
    time::Duration,
};

use axum::body::Body;
use hyper_util::rt::TokioIo;
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::{TcpListener, TcpStream},
};
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use crate::http::front::Front;

/// How long shutdown waits for open connections to finish.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// How long a connection is still served once shutdown begins, every
/// answer saying `Connection: close`, before it is closed if idle. A
/// keep-alive client (a load balancer's pool, a server passing requests
/// on) may be sending on an idle connection just as it closes, and would
/// see it end with no answer; answered and told to close, it opens a new
/// connection (refused here: it goes elsewhere) instead.
const DRAIN_LINGER: Duration = Duration::from_millis(500);

/// How long connections may dawdle.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// From the first byte of a request's head (or the connection's
    /// opening, for its first) to the end of the head, however the bytes
    /// trickle in.
    pub header_read: Duration,
    /// With no byte read or written.
    pub idle: Duration,
}

impl Timeouts {
    pub fn of(limits: &crate::config::Limits) -> Self {
        Self {
            header_read: Duration::from_millis(limits.header_read_timeout_ms),
            idle: Duration::from_millis(limits.idle_timeout_ms),
        }
    }
}

/// Serves `front` on `listener` until `shutdown`, then waits for in-flight
/// requests.
pub async fn serve(
    listener: TcpListener,
    front: Front,
    timeouts: Timeouts,
    shutdown: CancellationToken,
) -> io::Result<()> {
    let connections = TaskTracker::new();
    loop {
        let (stream, peer) = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors and the like: back off, go on.
                    tracing::warn!(%error, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        connections.spawn(connection(
            stream,
            peer,
            front.for_peer(peer),
            timeouts,
            shutdown.clone(),
        ));
    }
    drop(listener);
    connections.close();
    // In-flight requests finish; a stream that never ends (a log tail
    // left open) does not hold the shutdown for longer than this.
    if tokio::time::timeout(SHUTDOWN_GRACE, connections.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            open = connections.len(),
            "connections still open after the shutdown grace period; closing them"
        );
    }
    Ok(())
}

async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    front: Front,
    timeouts: Timeouts,
    shutdown: CancellationToken,
) {
    let exchanges = Arc::new(Exchanges::default());
    let io = TokioIo::new(Tracked::new(stream, timeouts, exchanges.clone()));
    let draining = Arc::new(AtomicBool::new(false));
    let service = {
        let draining = draining.clone();
        hyper::service::service_fn(move |request: hyper::Request<_>| {
            exchanges.heads.fetch_add(1, Ordering::Relaxed);
            let answer = front.call(request.map(Body::new));
            let (exchanges, draining) = (exchanges.clone(), draining.clone());
            async move {
                let mut answer = answer.await;
                exchanges.answers.fetch_add(1, Ordering::Relaxed);
                if draining.load(Ordering::Relaxed) {
                    answer.headers_mut().insert(
                        axum::http::header::CONNECTION,
                        axum::http::HeaderValue::from_static("close"),
                    );
                }
                Ok::<_, std::convert::Infallible>(answer)
            }
        })
    };
    // An answer's head and body go out in one `write` from one buffer:
    // for the small bodies a sandbox sends, copying the body is cheaper
    // than the kernel gathering two pieces (measured: +2-3% answers/s).
    let mut connection = pin!(
        hyper::server::conn::http1::Builder::new()
            .writev(false)
            .serve_connection(io, service)
    );
    // The token's future is polled until it holds this task's waker (it
    // wakes the task when shutdown begins); after that the token is only
    // read. Polled on every wake, as `select!` would, it takes a lock per
    // request.
    let mut cancelled = pin!(shutdown.cancelled());
    let mut watching = false;
    let ended = std::future::poll_fn(|cx| {
        if let Poll::Ready(result) = connection.as_mut().poll(cx) {
            return Poll::Ready(Some(result));
        }
        let shutting_down = if watching {
            shutdown.is_cancelled()
        } else {
            watching = true;
            cancelled.as_mut().poll(cx).is_ready()
        };
        if shutting_down {
            Poll::Ready(None)
        } else {
            Poll::Pending
        }
    })
    .await;
    let result = match ended {
        Some(result) => result,
        None => {
            draining.store(true, Ordering::Relaxed);
            match tokio::time::timeout(DRAIN_LINGER, connection.as_mut()).await {
                Ok(result) => result,
                Err(_) => {
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            }
        }
    };
    if let Err(error) = result {
        tracing::debug!(%peer, %error, "connection ended");
    }
}

/// How many requests of a connection hyper has parsed and answered, so its
/// stream knows whether bytes it reads are a request's head (none in
/// service) or a body (one in service).
#[derive(Default)]
struct Exchanges {
    heads: AtomicU64,
    answers: AtomicU64,
}

/// A stream that ends (reads as closed) when its peer dawdles: a request
/// head still incomplete `header_read` after its first byte (or after the
/// connection opened), or no byte moved either way for `idle`. Both are
/// counted in periods of one timer, so each fires between its limit and
/// one period later. The timer is reset only when it fires, and traffic
/// only sets a flag, so a busy connection pays for no timer and no clock
/// read per request (hyper's own header timeout arms one per request).
struct Tracked {
    inner: TcpStream,
    exchanges: Arc<Exchanges>,
    /// Fires at the end of each period.
    clock: Pin<Box<tokio::time::Sleep>>,
    period: Duration,
    /// Periods a head may take, and periods without traffic allowed.
    header_periods: u32,
    idle_periods: u32,
    /// Periods since the connection opened.
    periods: u32,
    /// Periods in a row with no byte moved.
    quiet_periods: u32,
    /// Whether a byte moved since the timer last fired.
    moved: bool,
    /// Whether the timer was polled, and so holds this task's waker.
    armed: bool,
    /// The period in which the head being read began, and how many heads
    /// were complete then.
    head_began: Option<(u32, u64)>,
}

impl Tracked {
    fn new(inner: TcpStream, timeouts: Timeouts, exchanges: Arc<Exchanges>) -> Self {
        let period = timeouts
            .header_read
            .min(timeouts.idle)
            .max(Duration::from_millis(1));
        let periods_in = |limit: Duration| {
            u32::try_from(limit.as_nanos().div_ceil(period.as_nanos())).unwrap_or(u32::MAX)
        };
        Self {
            inner,
            exchanges,
            clock: Box::pin(tokio::time::sleep(period)),
            period,
            header_periods: periods_in(timeouts.header_read),
            idle_periods: periods_in(timeouts.idle),
            periods: 0,
            quiet_periods: 0,
            moved: false,
            armed: false,
            // A new connection owes its first head from the start.
            head_began: Some((0, 0)),
        }
    }

    /// Bytes were read: between requests they begin a head.
    fn read_some(&mut self) {
        self.moved = true;
        let heads = self.exchanges.heads.load(Ordering::Relaxed);
        match self.head_began {
            Some((_, complete)) if complete == heads => {}
            _ => {
                let between_requests = heads == self.exchanges.answers.load(Ordering::Relaxed);
                self.head_began = between_requests.then_some((self.periods, heads));
            }
        }
    }

    /// Whether the peer dawdled past a limit; else the timer is armed for
    /// the next period.
    fn dawdled(&mut self, cx: &mut Context<'_>) -> bool {
        // Once polled, the timer holds this task's waker: until it fires,
        // a read that finds nothing need not poll it again.
        if self.armed && !self.clock.is_elapsed() {
            return false;
        }
        while self.clock.as_mut().poll(cx).is_ready() {
            self.periods = self.periods.saturating_add(1);
            self.quiet_periods = if std::mem::take(&mut self.moved) {
                0
            } else {
                self.quiet_periods + 1
            };
            if self.quiet_periods >= self.idle_periods {
                return true;
            }
            if let Some((began, complete)) = self.head_began {
                if self.exchanges.heads.load(Ordering::Relaxed) != complete {
                    self.head_began = None;
                } else if self.periods - began > self.header_periods {
                    return true;
                }
            }
            self.clock
                .as_mut()
                .reset(tokio::time::Instant::now() + self.period);
        }
        self.armed = true;
        false
    }
}

impl AsyncRead for Tracked {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(result) => {
                if buf.filled().len() > before {
                    self.read_some();
                }
                Poll::Ready(result)
            }
            // Nothing to read: a dawdling peer's connection reads as closed.
            Poll::Pending if self.dawdled(cx) => Poll::Ready(Ok(())),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.moved = true;
        }
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.moved = true;
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
