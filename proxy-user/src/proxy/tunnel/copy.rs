//! The tunnel's copy loop.
//!
//! EOF on one side shuts the other side's write half (half-close works);
//! an error on either side resets both; no byte either way for the idle
//! timeout closes both. A slow reader stalls its writer: a direction
//! reads only after its previous chunk was written in full.

use std::{cell::Cell, os::fd::OwnedFd, time::Duration};

use tokio::{
    io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _},
    time::Instant,
};

use super::{Client, End, Upstream, reset};

/// Buffer of one direction, held for the tunnel's life: WebSocket
/// connections are mostly idle and long-lived, so this is what each one
/// costs (HAProxy's default buffer is the same size).
const CHUNK: usize = 16 * 1024;

/// Copies until both sides closed, one failed, or the tunnel idled out.
/// Returns how it ended and the bytes sent up (client → backend) and down.
pub(super) async fn run(client: Client, client_fd: Option<&OwnedFd>, up: Upstream, idle: Duration) -> (End, u64, u64) {
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
