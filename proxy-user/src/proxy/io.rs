//! The client socket as hyper sees it, plus a handle that outlives hyper's
//! connection: hyper closes a connection whose request head timed out
//! without answering, so the proxy writes the 408 itself afterwards. The
//! handle also tracks whether part of a request has arrived since the last
//! response (a slow head gets 408, an idle keep-alive connection just closes).

use std::{
    pin::Pin,
    sync::{
        Arc, Mutex, MutexGuard, PoisonError,
        atomic::{AtomicBool, Ordering},
    },
    task::{Context, Poll},
};

use hyper::rt::{Read, ReadBufCursor, Write};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

// hyper's upgrades need a `Send` socket, hence Arc and an (uncontended)
// Mutex instead of Rc and RefCell.
struct Shared {
    stream: Mutex<TokioIo<TcpStream>>,
    mid_request: AtomicBool,
}

impl Shared {
    fn stream(&self) -> MutexGuard<'_, TokioIo<TcpStream>> {
        self.stream.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn set_mid_request(&self, v: bool) {
        self.mid_request.store(v, Ordering::Relaxed);
    }
}

/// The socket handed to hyper.
pub(super) struct ClientIo(Arc<Shared>);

/// What the proxy keeps after hyper is done.
pub(super) struct ClientHandle(Arc<Shared>);

impl ClientIo {
    pub(super) fn new(stream: TcpStream) -> (Self, ClientHandle) {
        let shared = Arc::new(Shared {
            stream: Mutex::new(TokioIo::new(stream)),
            mid_request: AtomicBool::new(false),
        });
        (Self(shared.clone()), ClientHandle(shared))
    }
}

impl ClientHandle {
    /// Whether bytes arrived since the last write to the client.
    pub(super) fn is_mid_request(&self) -> bool {
        self.0.mid_request.load(Ordering::Relaxed)
    }

    /// The socket, once hyper has dropped its side (`None` if an upgrade
    /// still holds it).
    pub(super) fn into_stream(self) -> Option<TcpStream> {
        Arc::into_inner(self.0).map(|s| {
            s.stream
                .into_inner()
                .unwrap_or_else(PoisonError::into_inner)
                .into_inner()
        })
    }
}

impl Read for ClientIo {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: ReadBufCursor<'_>) -> Poll<std::io::Result<()>> {
        let mut stream = self.0.stream();
        let r = Pin::new(&mut *stream).poll_read(cx, buf);
        // Ready means bytes or EOF; after EOF hyper ends the connection
        // without a timeout, so both can count as "part of a request".
        if matches!(r, Poll::Ready(Ok(()))) {
            self.0.set_mid_request(true);
        }
        r
    }
}

impl Write for ClientIo {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut *self.0.stream()).poll_write(cx, data);
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
        let r = Pin::new(&mut *self.0.stream()).poll_write_vectored(cx, bufs);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.0.set_mid_request(false);
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut *self.0.stream()).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut *self.0.stream()).poll_shutdown(cx)
    }
}
