//! The client socket as hyper sees it, plus a handle that outlives hyper's
//! connection: hyper closes a connection whose request head timed out
//! without answering, so the proxy writes the 408 itself afterwards. The
//! handle also tracks whether part of a request has arrived since the last
//! response (a slow head gets 408, an idle keep-alive connection just closes).
//!
//! Hibernation: hyper keeps a read and a write buffer (8 KiB each) for as
//! long as an HTTP/1 connection lives. An idle keep-alive connection does
//! not need them, so once one has been idle for [`HIBERNATE_AFTER`] at a
//! message boundary (no request or response body in flight, nothing of a
//! next request received), the socket reports end-of-file to hyper, which
//! then ends its connection cleanly and frees its state; the shutdown that
//! follows is not passed on. The proxy waits for the next request without
//! any buffer and serves it with a new hyper connection on the same socket.

use std::{
    future::Future as _,
    pin::Pin,
    sync::{
        Arc, Mutex, MutexGuard, PoisonError,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    task::{Context, Poll},
    time::Duration,
};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::rt::{Read, ReadBufCursor, Write};
use hyper_util::rt::TokioIo;

use super::stream::ClientStream;

/// How long an HTTP/1 connection idles with hyper's buffers before it
/// hibernates. Long enough that busy keep-alive clients never pay for a new
/// hyper connection, short enough that idle ones cost little.
pub const HIBERNATE_AFTER: Duration = Duration::from_secs(1);

// hyper's upgrades need a `Send` socket, hence Arc and an (uncontended)
// Mutex instead of Rc and RefCell.
struct Shared {
    stream: Mutex<Stream>,
    mid_request: AtomicBool,
    /// Hibernation allowed (HTTP/1, no upgrade requested).
    may_hibernate: AtomicBool,
    /// Set when the fake end-of-file was reported.
    hibernated: AtomicBool,
    /// Requests whose handler or response body is still running.
    busy: AtomicUsize,
}

struct Stream {
    io: TokioIo<ClientStream>,
    /// Fires [`HIBERNATE_AFTER`] into an idle period at a boundary. Kept
    /// for the whole waking period and moved forward at each new idle
    /// period: a later deadline is an atomic store, where a new timer per
    /// request would be an allocation and two timer-wheel operations.
    idle: Option<Pin<Box<tokio::time::Sleep>>>,
    /// `idle` was set for the current idle period.
    idle_armed: bool,
}

impl Shared {
    fn stream(&self) -> MutexGuard<'_, Stream> {
        self.stream.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn at_boundary(&self) -> bool {
        self.may_hibernate.load(Ordering::Relaxed)
            && !self.mid_request.load(Ordering::Relaxed)
            && self.busy.load(Ordering::Relaxed) == 0
    }

    fn set_mid_request(&self, v: bool) {
        self.mid_request.store(v, Ordering::Relaxed);
    }
}

/// The socket handed to hyper.
pub(super) struct ClientIo(Arc<Shared>);

/// What the proxy keeps after hyper is done (and the request handlers
/// share).
#[derive(Clone)]
pub(super) struct ClientHandle(Arc<Shared>);

/// A weak handle on the client socket (it does not keep it open).
pub(super) struct ClientFd(std::sync::Weak<Shared>);

impl ClientFd {
    /// A duplicate descriptor of the socket while it is open.
    pub(super) fn dup(&self) -> Option<std::os::fd::OwnedFd> {
        use std::os::fd::AsFd as _;
        let shared = self.0.upgrade()?;
        let stream = shared.stream();
        stream.io.inner().tcp().as_fd().try_clone_to_owned().ok()
    }
}

impl ClientIo {
    /// Wraps the client connection; `http1` allows hibernation.
    pub(super) fn new(stream: ClientStream, http1: bool) -> (Self, ClientHandle) {
        let shared = Arc::new(Shared {
            stream: Mutex::new(Stream {
                io: TokioIo::new(stream),
                idle: None,
                idle_armed: false,
            }),
            mid_request: AtomicBool::new(false),
            may_hibernate: AtomicBool::new(http1),
            hibernated: AtomicBool::new(false),
            busy: AtomicUsize::new(0),
        });
        (Self(shared.clone()), ClientHandle(shared))
    }
}

impl ClientHandle {
    /// A weak handle for the tunnel of an upgrade.
    pub(super) fn fd(&self) -> ClientFd {
        ClientFd(Arc::downgrade(&self.0))
    }

    /// Whether bytes arrived since the last write to the client.
    pub(super) fn is_mid_request(&self) -> bool {
        self.0.mid_request.load(Ordering::Relaxed)
    }

    /// The socket for a new hyper connection after hibernation.
    pub(super) fn reopen(&self) -> ClientIo {
        self.0.hibernated.store(false, Ordering::Relaxed);
        ClientIo(self.0.clone())
    }

    /// Whether hyper's connection ended because it hibernated.
    pub(super) fn hibernated(&self) -> bool {
        self.0.hibernated.load(Ordering::Relaxed)
    }

    /// No hibernation from now on (an upgrade takes the socket over).
    pub(super) fn keep_awake(&self) {
        self.0.may_hibernate.store(false, Ordering::Relaxed);
    }

    /// Marks a request in flight until the guard (held by its response
    /// body) is dropped.
    pub(super) fn busy(&self) -> BusyGuard {
        self.0.busy.fetch_add(1, Ordering::Relaxed);
        BusyGuard(self.0.clone())
    }

    /// Waits until the client sends more (`Ok(true)`) or closes
    /// (`Ok(false)`), holding no buffer meanwhile.
    pub(super) async fn wait_for_request(&self) -> std::io::Result<bool> {
        let mut probe = [0u8; 1];
        std::future::poll_fn(|cx| {
            let stream = self.0.stream();
            let mut buf = tokio::io::ReadBuf::new(&mut probe);
            // Nothing is buffered above the socket at a boundary (TLS
            // included: hyper's last read found no plaintext), so the
            // socket tells when the client sends again.
            stream.io.inner().tcp().poll_peek(cx, &mut buf)
        })
        .await
        .map(|n| n > 0)
    }

    /// The connection, once hyper has dropped its side (`None` if an
    /// upgrade still holds it).
    pub(super) fn into_stream(self) -> Option<ClientStream> {
        Arc::into_inner(self.0).map(|s| {
            s.stream
                .into_inner()
                .unwrap_or_else(PoisonError::into_inner)
                .io
                .into_inner()
        })
    }
}

/// Keeps a connection awake while a request or its response body runs.
pub(super) struct BusyGuard(Arc<Shared>);

impl Drop for BusyGuard {
    fn drop(&mut self) {
        self.0.busy.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A response body that holds its connection's [`BusyGuard`] until it
/// ends or is dropped.
pub(super) struct Tracked<B> {
    body: B,
    guard: Option<BusyGuard>,
}

impl<B> Tracked<B> {
    pub(super) fn new(body: B, guard: BusyGuard) -> Self {
        Self {
            body,
            guard: Some(guard),
        }
    }
}

impl<B: Body<Data = Bytes> + Unpin> Body for Tracked<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let r = Pin::new(&mut self.body).poll_frame(cx);
        if matches!(r, Poll::Ready(None | Some(Err(_)))) {
            self.guard = None;
        }
        r
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

impl Read for ClientIo {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: ReadBufCursor<'_>) -> Poll<std::io::Result<()>> {
        let shared = &self.0;
        let mut guard = shared.stream();
        let stream = &mut *guard;
        let r = Pin::new(&mut stream.io).poll_read(cx, buf);
        if r.is_ready() {
            stream.idle_armed = false;
            // Ready means bytes or EOF; after EOF hyper ends the connection
            // without a timeout, so both can count as "part of a request".
            if matches!(r, Poll::Ready(Ok(()))) {
                shared.set_mid_request(true);
            }
            return r;
        }
        if !shared.at_boundary() {
            stream.idle_armed = false;
            return r;
        }
        let deadline = || tokio::time::Instant::now() + HIBERNATE_AFTER;
        let idle = match &mut stream.idle {
            Some(idle) => {
                if !stream.idle_armed {
                    idle.as_mut().reset(deadline());
                }
                idle
            }
            None => stream.idle.insert(Box::pin(tokio::time::sleep_until(deadline()))),
        };
        stream.idle_armed = true;
        if idle.as_mut().poll(cx).is_ready() {
            // Hibernating holds no timer.
            stream.idle = None;
            stream.idle_armed = false;
            shared.hibernated.store(true, Ordering::Relaxed);
            // Nothing written into `buf`: end-of-file for hyper.
            return Poll::Ready(Ok(()));
        }
        r
    }
}

impl Write for ClientIo {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.0.stream().io).poll_write(cx, data);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.0.set_mid_request(false);
        }
        r
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.0.stream().io).poll_write_vectored(cx, bufs);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.0.set_mid_request(false);
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0.stream().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        // Hibernating: hyper closes its connection, not the client's.
        if self.0.hibernated.load(Ordering::Relaxed) {
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.0.stream().io).poll_shutdown(cx)
    }
}
