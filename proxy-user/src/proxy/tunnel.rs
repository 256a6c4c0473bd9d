//! Upgraded connections (WebSocket and friends): after a `101 Switching
//! Protocols` the client and backend connections are a plain byte tunnel,
//! copied in user space with backpressure both ways.
//!
//! EOF on one side becomes `shutdown(Write)` on the other (half-close); a
//! reset (or a socket that went away) on one side resets the other; a
//! tunnel that carried no byte either way for the idle timeout is closed.
//! Bytes per direction are added to the backend's stats when it ends.
//!
//! Why the bytes are not spliced in the kernel instead: see "Upgrades" in
//! `docs/sticky-proxy.md`.

use std::{
    cell::Cell,
    os::fd::OwnedFd,
    sync::{Arc, atomic::Ordering},
    time::Duration,
};

use hyper::upgrade::{OnUpgrade, Upgraded};
use hyper_util::rt::TokioIo;
use tokio::{
    io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _},
    net::TcpStream,
    time::Instant,
};

use crate::routing::Backend;

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
    let (end, up, down) = copy(client, t.client_fd.as_ref(), upstream, t.idle_timeout).await;
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

/// Buffer of one direction, held for the tunnel's life: WebSocket
/// connections are mostly idle and long-lived, so this is what each one
/// costs (HAProxy's default buffer is the same size).
const CHUNK: usize = 16 * 1024;

/// Copies until both sides closed, one failed, or the tunnel idled out,
/// with backpressure: a direction reads only after its previous chunk was
/// written in full.
/// Returns how it ended and the bytes sent up (client → backend) and down.
async fn copy(client: Client, client_fd: Option<&OwnedFd>, up: Upstream, idle: Duration) -> (End, u64, u64) {
    let Upstream { mut stream, prefix } = up;
    let (up_bytes, down_bytes) = (Cell::new(0u64), Cell::new(0u64));
    let last = Cell::new(Instant::now());
    let end = {
        let (mut cr, mut cw) = tokio::io::split(client);
        let (mut ur, mut uw) = stream.split();
        let down = async {
            if !prefix.is_empty() {
                cw.write_all(&prefix).await?;
                down_bytes.set(prefix.len() as u64);
            }
            pump(&mut ur, &mut cw, &down_bytes, &last).await
        };
        let up = pump(&mut cr, &mut uw, &up_bytes, &last);
        tokio::pin!(up, down);
        let (mut up_done, mut down_done) = (false, false);
        loop {
            tokio::select! {
                r = &mut up, if !up_done => match r {
                    Ok(()) => up_done = true,
                    Err(err) => {
                        tracing::debug!(error = %err, "upgraded connection: client side failed");
                        break End::Reset;
                    }
                },
                r = &mut down, if !down_done => match r {
                    Ok(()) => down_done = true,
                    Err(err) => {
                        tracing::debug!(error = %err, "upgraded connection: backend side failed");
                        break End::Reset;
                    }
                },
                () = idle_for(&last, idle) => break End::Idle,
            }
            if up_done && down_done {
                break End::Closed;
            }
        }
    };
    if end == End::Reset {
        // The failed side is broken already; the other learns by a reset.
        reset(socket2::SockRef::from(&stream));
        if let Some(fd) = client_fd {
            reset(socket2::SockRef::from(fd));
        }
    }
    (end, up_bytes.get(), down_bytes.get())
}

/// Copies `r` to `w` until EOF, then shuts `w`'s write half.
async fn pump<R, W>(r: &mut R, w: &mut W, count: &Cell<u64>, last: &Cell<Instant>) -> std::io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = r.read(&mut buf).await?;
        if n == 0 {
            return w.shutdown().await;
        }
        last.set(Instant::now());
        w.write_all(&buf[..n]).await?;
        count.set(count.get() + n as u64);
        last.set(Instant::now());
    }
}

/// Resolves once nothing moved for `idle` (as recorded in `last`).
async fn idle_for(last: &Cell<Instant>, idle: Duration) {
    loop {
        let deadline = last.get() + idle;
        if Instant::now() >= deadline {
            return;
        }
        tokio::time::sleep_until(deadline).await;
    }
}
