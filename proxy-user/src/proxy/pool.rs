//! Upstream connections: a per-worker (thread-local, lock-free) pool of
//! HTTP/1.1 `SendRequest`s per backend address. A sender goes back to the
//! pool when its response body ends ([`PooledBody`]), not when the head
//! arrives, so no extra task per request; and only when both directions
//! ended cleanly: a response that ends while the request body is still
//! being uploaded leaves its connection busy, so it is closed once the
//! upload ends instead. Only addresses of backends in the current table
//! are ever dialled: callers pass a [`Backend`].

use std::{
    cell::RefCell,
    collections::HashMap,
    net::SocketAddr,
    path::Path,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::{Duration, Instant},
};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::{body::Incoming, client::conn::http1::SendRequest};
use hyper_util::rt::TokioIo;

use super::{BoxError, ProxyBody, body::Upload};
use crate::routing::Backend;

type Sender = SendRequest<ProxyBody>;

/// Idle upstream connections older than this are closed rather than
/// reused: backends close idle keep-alive connections on their own (Node
/// after 5 s, nginx after 75 s), and a request must not race that.
const MAX_IDLE: Duration = Duration::from_secs(4);

/// What identifies an upstream: its address and the network namespace
/// connections to it are made in (two overlays may reuse a subnet).
pub(super) type PoolKey = (SocketAddr, Option<Arc<Path>>);

/// The pool key of `backend`.
pub(super) fn key_of(backend: &Backend) -> PoolKey {
    (backend.addr, backend.via.clone())
}

/// Idle senders per upstream. Hashed with foldhash, not SipHash: the keys
/// are backend addresses from the table, never chosen by a client, and
/// the map is looked up twice per request.
type Pool = HashMap<PoolKey, Vec<(Instant, Sender)>, foldhash::fast::FixedState>;

thread_local! {
    /// Per upstream, idle senders in the order they were returned (the
    /// newest last).
    static POOL: RefCell<Pool> = RefCell::new(Pool::default());
}

/// Why no upstream connection could be had.
#[derive(Debug, thiserror::Error)]
pub(super) enum ConnectError {
    /// TCP connect failed (refused, reset, unreachable).
    #[error("connect to {addr}: {source}")]
    Io {
        /// The backend address.
        addr: SocketAddr,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// TCP connect took too long.
    #[error("connect to {0}: timed out")]
    Timeout(SocketAddr),
    /// The HTTP/1 handshake failed.
    #[error("handshake with {addr}: {source}")]
    Handshake {
        /// The backend address.
        addr: SocketAddr,
        /// The cause.
        #[source]
        source: hyper::Error,
    },
}

/// An idle pooled sender for `key` that is ready for a request now.
///
/// Never waits: a sender that is not ready yet (its connection is still
/// finishing the previous exchange) stays in the pool, and the caller
/// connects afresh. Waiting there once let a slow upload on a connection
/// that a backend had answered early hold up every later request.
pub(super) fn take_idle(key: &PoolKey) -> Option<Sender> {
    POOL.with_borrow_mut(|p| {
        let idle = p.get_mut(key)?;
        // Newest first.
        let mut i = idle.len();
        while i > 0 {
            i -= 1;
            let (since, sender) = &idle[i];
            if since.elapsed() > MAX_IDLE {
                // Returned in order: every older one is too old as well.
                idle.drain(..=i);
                return None;
            }
            if sender.is_closed() {
                idle.remove(i);
            } else if sender.is_ready() {
                return Some(idle.remove(i).1);
            }
        }
        None
    })
}

/// A new connection to `backend` (TCP_NODELAY, connect timeout); its
/// connection task runs on this worker and supports upgrades.
pub(super) async fn connect(backend: &Backend, timeout: Duration) -> Result<Sender, ConnectError> {
    let addr = backend.addr;
    // Overlay addresses are reachable only from inside the overlay.
    let connecting = crate::netns::connect_leased(backend.via.as_deref(), addr);
    let (stream, mut lease) = match tokio::time::timeout(timeout, connecting).await {
        Err(_) => return Err(ConnectError::Timeout(addr)),
        Ok(Err(source)) => return Err(ConnectError::Io { addr, source }),
        Ok(Ok(s)) => s,
    };
    if let Err(err) = stream.set_nodelay(true) {
        tracing::debug!(%addr, error = %err, "TCP_NODELAY upstream");
    }
    let (sender, conn) = hyper::client::conn::http1::Builder::new()
        .handshake(TokioIo::new(stream))
        .await
        .map_err(|source| ConnectError::Handshake { addr, source })?;
    tokio::task::spawn_local(async move {
        tokio::select! {
            ended = conn.with_upgrades() => if let Err(err) = ended {
                tracing::debug!(%addr, error = %err, "upstream connection ended");
            },
            // Its namespace is gone: dropping the connection fails the
            // request on it now (an idempotent one is sent again on a
            // new connection) instead of at its response deadline.
            () = lease.gone() => tracing::debug!(%addr, "upstream connection closed: its network namespace went away"),
        }
    });
    Ok(sender)
}

fn give_back(key: PoolKey, sender: Sender, max_idle: usize) {
    if sender.is_closed() {
        return;
    }
    POOL.with_borrow_mut(|p| {
        let idle = p.entry(key).or_default();
        if idle.len() < max_idle {
            idle.push((Instant::now(), sender));
        }
    });
}

/// Where a response's connection goes back to once the exchange ends.
pub(super) struct Return {
    /// The pool entry.
    pub(super) key: PoolKey,
    /// The connection.
    pub(super) sender: Sender,
    /// The pool's size per backend.
    pub(super) max_idle: usize,
    /// The request body's trip, when the request had one.
    pub(super) upload: Option<Arc<Upload>>,
}

/// The upstream response body; returns its sender to the pool at the end.
pub(super) struct PooledBody {
    inner: Incoming,
    back: Option<Return>,
}

impl PooledBody {
    /// `back` is `None` for connections that must not be reused (upgrades).
    pub(super) fn new(inner: Incoming, back: Option<Return>) -> Self {
        let mut body = Self { inner, back };
        if body.inner.is_end_stream() {
            body.release();
        }
        body
    }

    fn release(&mut self) {
        let Some(back) = self.back.take() else { return };
        // Dropping the sender of a connection whose upload still runs
        // lets the upload finish (or time out), then closes it.
        if back.upload.as_ref().is_none_or(|u| u.is_complete()) {
            give_back(back.key, back.sender, back.max_idle);
        }
    }
}

impl Body for PooledBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let r = Pin::new(&mut self.inner).poll_frame(cx);
        match &r {
            Poll::Ready(None) => self.release(),
            Poll::Ready(Some(Ok(_))) if self.inner.is_end_stream() => self.release(),
            // A broken connection is dropped, never pooled.
            Poll::Ready(Some(Err(_))) => self.back = None,
            _ => {}
        }
        r.map(|f| f.map(|f| f.map_err(Into::into)))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
