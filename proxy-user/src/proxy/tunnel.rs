//! Upgraded connections (WebSocket and friends): after a `101 Switching
//! Protocols` the client and backend connections are a plain byte tunnel,
//! copied in user space ([`copy`]) with backpressure both ways.
//!
//! EOF on one side becomes `shutdown(Write)` on the other (half-close); a
//! reset (or a socket that went away) on one side resets the other; a
//! tunnel that carried no byte either way for the idle timeout is closed.
//! Bytes per direction are added to the backend's stats when it ends.
//!
//! Why the bytes are not spliced in the kernel instead: see "Upgrades" in
//! `docs/sticky-proxy.md`.

mod copy;

use std::{
    os::fd::OwnedFd,
    sync::{Arc, atomic::Ordering},
    time::Duration,
};

use hyper::upgrade::{OnUpgrade, Upgraded};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::balance::Backend;

/// What a tunnel needs besides its two connections.
pub(super) struct Tunnel {
    /// A duplicate of the client socket's descriptor (same socket).
    pub client_fd: Option<OwnedFd>,
    /// The backend, for the byte counters.
    pub backend: Arc<Backend>,
    /// No byte either way for this long closes the tunnel.
    pub idle_timeout: Duration,
}

/// How a tunnel ended, for the debug log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// Both sides closed (FIN both ways).
    Closed,
    /// One side was reset or failed; the other was reset too.
    Reset,
    /// Nothing moved for the idle timeout.
    Idle,
}

/// Joins two upgraded connections until both sides close, one resets, or
/// the tunnel idles out.
pub(super) async fn run(client: OnUpgrade, upstream: OnUpgrade, t: Tunnel) {
    let (c, u) = match tokio::try_join!(client, upstream) {
        Ok(pair) => pair,
        Err(err) => {
            tracing::debug!(error = %err, "upgrade failed");
            return;
        }
    };
    // The upstream connection is ours (`pool::connect`): its socket type is
    // known, and so are the bytes hyper read past the 101.
    let upstream = match u.downcast::<TokioIo<TcpStream>>() {
        Ok(parts) => Upstream {
            stream: parts.io.into_inner(),
            prefix: parts.read_buf,
        },
        Err(_) => {
            tracing::warn!("upgraded upstream connection of an unexpected type; closing the tunnel");
            return;
        }
    };
    let client = TokioIo::new(c);
    let (end, up, down) = copy::run(client, t.client_fd.as_ref(), upstream, t.idle_timeout).await;
    let stats = &t.backend.state.stats;
    stats.tunnel_bytes_up.fetch_add(up, Ordering::Relaxed);
    stats.tunnel_bytes_down.fetch_add(down, Ordering::Relaxed);
    tracing::debug!(?end, up, down, backend = %t.backend.name, "upgraded connection closed");
}

/// The upstream side of a tunnel.
struct Upstream {
    stream: TcpStream,
    /// Bytes hyper had read past the 101 (they belong to the client).
    prefix: bytes::Bytes,
}

/// The client side of a tunnel as hyper hands it over.
type Client = TokioIo<Upgraded>;

/// Resets a socket: the close that follows sends RST instead of FIN.
fn reset(sock: socket2::SockRef<'_>) {
    if let Err(err) = sock.set_linger(Some(Duration::ZERO)) {
        tracing::debug!(error = %err, "SO_LINGER 0 (reset)");
    }
}
