//! What happens on a client connection before its first request: the
//! PROXY protocol header where the listener reads one, the TLS handshake
//! on HTTPS listeners (a plain HTTP request there gets a 400 saying so),
//! and which HTTP version the client speaks (ALPN over TLS, the HTTP/2
//! preface otherwise). Each step is bounded by a timeout, and a draining
//! worker closes connections that have not started a request.

use std::net::SocketAddr;

use tokio::{io::AsyncWriteExt as _, net::TcpStream};

use super::{Inner, observe, stream::ClientStream};
use crate::{
    listener::{Listener, Scheme, proxy_protocol},
    tls::Accepted,
    worker::{ConnInfo, Shutdown},
};

/// A connection ready for HTTP.
pub(super) struct Opened {
    pub stream: ClientStream,
    /// The client: the TCP peer, or the one a trusted PROXY header named.
    pub peer: SocketAddr,
    /// HTTP/2 (by ALPN or prior knowledge).
    pub h2: bool,
    /// The scheme the client used.
    pub scheme: Scheme,
}

const RESPONSE_400_HTTPS: &[u8] = b"HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain\r\ncontent-length: 51\r\nconnection: close\r\n\r\nThis port speaks HTTPS: use https:// to reach it.\r\n";

/// Takes a new connection up to its first request, or `None` when it
/// ended before (closed, refused, timed out, or the worker is draining).
/// A PROXY header and the first bytes each have `timeout`.
pub(super) async fn open(
    inner: &Inner,
    mut stream: TcpStream,
    conn: ConnInfo,
    timeout: std::time::Duration,
    shutdown: &mut Shutdown,
) -> Option<Opened> {
    let listener = inner
        .edge
        .listeners
        .get(conn.listener)
        .copied()
        .unwrap_or(Listener::http(conn.local));
    let mut peer = conn.peer;
    if listener.proxy_protocol {
        let trusted = inner.edge.proxy_protocol_from.iter().any(|n| n.contains(peer.ip()));
        let read = tokio::time::timeout(timeout, proxy_protocol::read(&mut stream, trusted));
        match tokio::select! { r = read => r, () = shutdown.wait() => return None } {
            Ok(Ok(Some(client))) => peer = client,
            Ok(Ok(None)) => {}
            Ok(Err(err)) => {
                tracing::debug!(peer = %peer, error = %err, "connection refused");
                return None;
            }
            Err(_) => return None,
        }
    }
    match listener.scheme {
        Scheme::Http => {
            let h2 = prior_knowledge_h2(&stream, timeout, shutdown, peer).await?;
            Some(Opened {
                stream: ClientStream::Plain(stream),
                peer,
                h2,
                scheme: Scheme::Http,
            })
        }
        Scheme::Https => {
            let tls = inner.edge.tls.as_ref()?;
            // Boxed: the handshake's state is only needed while it runs,
            // not in every connection's task.
            let accepted =
                tokio::select! { a = Box::pin(tls.accept(stream)) => a, () = shutdown.wait() => return None };
            match accepted {
                Accepted::Tls { stream, h2 } => Some(Opened {
                    stream: ClientStream::Tls(stream),
                    peer,
                    h2,
                    scheme: Scheme::Https,
                }),
                Accepted::PlainHttp(stream) => {
                    tracing::debug!(peer = %peer, "plain HTTP on an HTTPS listener: 400");
                    observe::refused(inner, peer, 400);
                    answer_and_linger(ClientStream::Plain(stream), RESPONSE_400_HTTPS).await;
                    None
                }
                Accepted::Failed => None,
            }
        }
    }
}

/// Waits for the first bytes: HTTP/2 with prior knowledge starts with
/// "PRI". hyper's timer only starts once it reads a request head, so a
/// client that never sends a byte is closed here after the same timeout.
async fn prior_knowledge_h2(
    stream: &TcpStream,
    timeout: std::time::Duration,
    shutdown: &mut Shutdown,
    peer: SocketAddr,
) -> Option<bool> {
    let mut preface = [0u8; 3];
    let first_bytes = tokio::select! {
        r = tokio::time::timeout(timeout, stream.peek(&mut preface)) => r,
        // Draining: a connection that has not sent anything yet just closes.
        () = shutdown.wait() => return None,
    };
    match first_bytes {
        Ok(Ok(0) | Err(_)) => None,
        Ok(Ok(n)) => Some(n == 3 && &preface == b"PRI"),
        Err(_) => {
            tracing::debug!(peer = %peer, "no request before the header read timeout");
            None
        }
    }
}

/// Writes a final answer, then closes gracefully: FIN first, then unread
/// input is discarded for a moment, because closing with unread bytes
/// makes the kernel send a reset that can destroy the answer in flight.
pub(super) async fn answer_and_linger(mut stream: ClientStream, answer: &[u8]) {
    use tokio::io::AsyncReadExt as _;
    if let Err(e) = stream.write_all(answer).await.and(stream.shutdown().await) {
        tracing::debug!(error = %e, "writing a final answer");
        return;
    }
    // On the heap: an array here would be part of every connection's
    // task, idle or not.
    let mut sink = vec![0u8; 4096];
    let linger = async {
        // Bounded: at most 64 KiB, within the timeout below.
        for _ in 0..16 {
            match stream.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    };
    let _expired = tokio::time::timeout(std::time::Duration::from_secs(1), linger).await;
}
