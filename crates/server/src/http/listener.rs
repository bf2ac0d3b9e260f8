//! Accepting connections. axum's `serve` sets no timeouts, so a client that
//! sends half a request, or opens a connection and says nothing, would hold
//! it open forever; here every connection has a deadline for its request
//! headers and an idle limit, and shutdown lets in-flight requests finish.

use std::{
    future::Future,
    io,
    net::SocketAddr,
    pin::{Pin, pin},
    task::{Context, Poll},
    time::Duration,
};

use axum::body::Body;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::{TcpListener, TcpStream},
};
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use crate::http::front::Front;

/// How long shutdown waits for open connections to finish.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// How long connections may dawdle.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// From the first byte of a request (or the end of the previous answer)
    /// to the end of its headers.
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
    let io = TokioIo::new(Tracked::new(stream, timeouts.idle));
    let service = hyper::service::service_fn(move |request: hyper::Request<_>| {
        let answer = front.call(request.map(Body::new));
        async move { Ok::<_, std::convert::Infallible>(answer.await) }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(timeouts.header_read);
    let mut connection = pin!(builder.serve_connection(io, service).with_upgrades());
    let result = tokio::select! {
        biased;
        result = connection.as_mut() => result,
        () = shutdown.cancelled() => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(error) = result {
        tracing::debug!(%peer, %error, "connection ended");
    }
}

/// A stream that ends (reads as closed) once no byte has moved either way
/// for a whole `idle` period: hyper then closes the connection, between
/// `idle` and twice that after its last byte. The timer is reset only when
/// it fires, and traffic only sets a flag, so a busy connection pays for
/// no timer and no clock read per request.
struct Tracked {
    inner: TcpStream,
    idle: Duration,
    /// Whether a byte moved since the timer last fired.
    moved: bool,
    /// Fires at the end of each period.
    check: Pin<Box<tokio::time::Sleep>>,
}

impl Tracked {
    fn new(inner: TcpStream, idle: Duration) -> Self {
        Self {
            inner,
            idle,
            moved: false,
            check: Box::pin(tokio::time::sleep(idle)),
        }
    }

    fn moved(&mut self) {
        self.moved = true;
    }

    /// Whether a whole period passed without a byte moving; else the timer
    /// is armed for the next period.
    fn idle_too_long(&mut self, cx: &mut Context<'_>) -> bool {
        while self.check.as_mut().poll(cx).is_ready() {
            if !std::mem::take(&mut self.moved) {
                return true;
            }
            self.check
                .as_mut()
                .reset(tokio::time::Instant::now() + self.idle);
        }
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
                    self.moved();
                }
                Poll::Ready(result)
            }
            // Nothing to read: an idle connection reads as closed.
            Poll::Pending if self.idle_too_long(cx) => Poll::Ready(Ok(())),
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
            self.moved();
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
            self.moved();
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
