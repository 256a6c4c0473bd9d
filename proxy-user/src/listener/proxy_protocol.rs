//! PROXY protocol v1 and v2 on input (HAProxy's spec), for listeners behind
//! an L4 balancer that would otherwise hide every client behind its own
//! address.
//!
//! A header is believed only from the networks of `--proxy-protocol-from`:
//! from anyone else it would let a client claim any address, so such a
//! connection is refused. A trusted source may also connect without a
//! header (a balancer's health check, an operator's curl), and is then
//! served as itself. v2's `LOCAL` command (health checks) keeps the
//! connection's own peer too.
//!
//! The header is recognised by peeking, so a connection without one loses
//! nothing, and it is consumed exactly, so the TLS handshake or the HTTP
//! request after it starts on its first byte.

use std::net::SocketAddr;

use tokio::{io::AsyncReadExt as _, net::TcpStream};

/// The v2 signature.
const V2_SIGNATURE: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";
/// The v1 prefix.
const V1_PREFIX: &[u8; 6] = b"PROXY ";
/// A v1 header's longest form, CRLF included.
const V1_MAX: usize = 107;
/// The longest v2 header accepted: the fixed part, addresses and TLVs
/// (balancers add a few dozen bytes of TLVs).
const V2_MAX: usize = 16 + 1024;

/// Why a connection on a PROXY protocol listener was refused.
#[derive(Debug, thiserror::Error)]
pub enum ProxyHeaderError {
    /// A header from a source outside `--proxy-protocol-from`.
    #[error("PROXY protocol header from {0}, which is not a trusted source (--proxy-protocol-from)")]
    Untrusted(std::net::IpAddr),
    /// Not a valid header.
    #[error("malformed PROXY protocol header: {0}")]
    Malformed(String),
    /// The client closed before the header was complete.
    #[error("connection closed inside the PROXY protocol header")]
    Closed,
    /// The socket failed.
    #[error("reading the PROXY protocol header: {0}")]
    Io(#[from] std::io::Error),
}

/// Reads the PROXY protocol header at the start of `stream`, if there is
/// one, and returns the client address it announces (`None`: no header,
/// or one that names no client). The caller bounds the time it may take.
///
/// # Errors
/// A header from an untrusted peer, a malformed one, or a socket error.
pub async fn read(stream: &mut TcpStream, trusted: bool) -> Result<Option<SocketAddr>, ProxyHeaderError> {
    let mut buf = vec![0u8; V2_MAX];
    let peer = stream.peer_addr()?.ip();
    let mut seen = peek(stream, &mut buf[..V2_SIGNATURE.len()], decided).await?;
    let head = &buf[..seen];
    if !(head.starts_with(V1_PREFIX) || head.starts_with(V2_SIGNATURE)) {
        return Ok(None);
    }
    if !trusted {
        return Err(ProxyHeaderError::Untrusted(peer));
    }
    if head.starts_with(V1_PREFIX) {
        seen = peek(stream, &mut buf[..V1_MAX], |b| b.windows(2).any(|w| w == b"\r\n")).await?;
        let end = buf[..seen]
            .windows(2)
            .position(|w| w == b"\r\n")
            .map(|i| i + 2)
            .ok_or_else(|| ProxyHeaderError::Malformed("a v1 header longer than 107 bytes".into()))?;
        let client = v1_client(&buf[..end])?;
        stream.read_exact(&mut buf[..end]).await?;
        return Ok(client);
    }
    seen = peek(stream, &mut buf[..16], |b| b.len() >= 16).await?;
    if seen < 16 {
        return Err(ProxyHeaderError::Closed);
    }
    let total = 16 + usize::from(u16::from_be_bytes([buf[14], buf[15]]));
    if total > V2_MAX {
        return Err(ProxyHeaderError::Malformed(format!("a v2 header of {total} bytes")));
    }
    seen = peek(stream, &mut buf[..total], |b| b.len() >= total).await?;
    if seen < total {
        return Err(ProxyHeaderError::Closed);
    }
    let client = v2_client(&buf[..total])?;
    stream.read_exact(&mut buf[..total]).await?;
    Ok(client)
}

/// Whether the first bytes tell a header from no header.
fn decided(b: &[u8]) -> bool {
    let could_be = |sig: &[u8]| {
        let n = b.len().min(sig.len());
        b[..n] == sig[..n]
    };
    let v1 = could_be(V1_PREFIX);
    let v2 = could_be(V2_SIGNATURE);
    (!v1 && !v2) || (v1 && b.len() >= V1_PREFIX.len()) || (v2 && b.len() >= V2_SIGNATURE.len())
}

/// [`super::peek_until`], with a close before the header is complete as
/// an error.
async fn peek(stream: &TcpStream, buf: &mut [u8], done: impl Fn(&[u8]) -> bool) -> Result<usize, ProxyHeaderError> {
    match super::peek_until(stream, buf, done).await? {
        0 => Err(ProxyHeaderError::Closed),
        n => Ok(n),
    }
}

fn v1_client(header: &[u8]) -> Result<Option<SocketAddr>, ProxyHeaderError> {
    use ppp::v1::{Addresses, Header};
    let parsed = Header::try_from(header).map_err(|e| ProxyHeaderError::Malformed(format!("v1: {e}")))?;
    Ok(match parsed.addresses {
        Addresses::Tcp4(a) => Some(SocketAddr::from((a.source_address, a.source_port))),
        Addresses::Tcp6(a) => Some(SocketAddr::from((a.source_address, a.source_port))),
        Addresses::Unknown => None,
    })
}

fn v2_client(header: &[u8]) -> Result<Option<SocketAddr>, ProxyHeaderError> {
    use ppp::v2::{Addresses, Command, Header};
    let parsed = Header::try_from(header).map_err(|e| ProxyHeaderError::Malformed(format!("v2: {e}")))?;
    if parsed.command == Command::Local {
        return Ok(None);
    }
    Ok(match parsed.addresses {
        Addresses::IPv4(a) => Some(SocketAddr::from((a.source_address, a.source_port))),
        Addresses::IPv6(a) => Some(SocketAddr::from((a.source_address, a.source_port))),
        Addresses::Unix(_) | Addresses::Unspecified => None,
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::io::AsyncWriteExt as _;

    use super::*;

    async fn pair() -> (TcpStream, TcpStream) {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let c = TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
        let (s, _) = l.accept().await.unwrap();
        (c, s)
    }

    async fn after_header(client_sends: &[&[u8]], trusted: bool) -> (Result<Option<SocketAddr>, String>, Vec<u8>) {
        let (mut c, mut s) = pair().await;
        for (i, part) in client_sends.iter().enumerate() {
            c.write_all(part).await.unwrap();
            if i + 1 < client_sends.len() {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        c.shutdown().await.unwrap();
        // The caller bounds the time: a header cut short waits for more.
        let r = match tokio::time::timeout(Duration::from_millis(500), read(&mut s, trusted)).await {
            Ok(r) => r.map_err(|e| e.to_string()),
            Err(_) => Err("timed out".to_owned()),
        };
        let mut rest = Vec::new();
        if r.is_ok() {
            s.read_to_end(&mut rest).await.unwrap();
        }
        (r, rest)
    }

    #[tokio::test]
    async fn v1_is_read_and_consumed() {
        let (r, rest) = after_header(
            &[b"PROXY TCP4 198.51.100.7 192.0.2.1 40000 443\r\nGET / HTTP/1.1\r\n\r\n"],
            true,
        )
        .await;
        assert_eq!(r.unwrap(), Some("198.51.100.7:40000".parse().unwrap()));
        assert_eq!(rest, b"GET / HTTP/1.1\r\n\r\n");
        let (r, _) = after_header(&[b"PROXY TCP6 2001:db8::7 2001:db8::1 40000 443\r\n"], true).await;
        assert_eq!(r.unwrap(), Some("[2001:db8::7]:40000".parse().unwrap()));
        let (r, rest) = after_header(&[b"PROXY UNKNOWN\r\nx"], true).await;
        assert_eq!((r.unwrap(), rest), (None, b"x".to_vec()));
    }

    #[tokio::test]
    async fn v2_is_read_in_pieces_and_local_keeps_the_peer() {
        let header = ppp::v2::Builder::with_addresses(
            ppp::v2::Version::Two | ppp::v2::Command::Proxy,
            ppp::v2::Protocol::Stream,
            (
                "198.51.100.7:40000".parse::<SocketAddr>().unwrap(),
                "192.0.2.1:443".parse::<SocketAddr>().unwrap(),
            ),
        )
        .build()
        .unwrap();
        let (first, second) = header.split_at(5);
        let (r, rest) = after_header(&[first, second, b"\x16\x03\x01"], true).await;
        assert_eq!(r.unwrap(), Some("198.51.100.7:40000".parse().unwrap()));
        assert_eq!(rest, b"\x16\x03\x01");
        let local = ppp::v2::Builder::with_addresses(
            ppp::v2::Version::Two | ppp::v2::Command::Local,
            ppp::v2::Protocol::Stream,
            ppp::v2::Addresses::Unspecified,
        )
        .build()
        .unwrap();
        let (r, _) = after_header(&[&local], true).await;
        assert_eq!(r.unwrap(), None);
    }

    #[tokio::test]
    async fn no_header_loses_nothing_and_untrusted_headers_are_refused() {
        let (r, rest) = after_header(&[b"POST / HTTP/1.1\r\n\r\n"], false).await;
        assert_eq!((r.unwrap(), rest), (None, b"POST / HTTP/1.1\r\n\r\n".to_vec()));
        let (r, rest) = after_header(&[b"PR", b"OXY-ish / HTTP/1.1\r\n\r\n"], true).await;
        assert_eq!((r.unwrap(), rest.len()), (None, 24));
        let (r, _) = after_header(&[b"PROXY TCP4 198.51.100.7 192.0.2.1 40000 443\r\n"], false).await;
        assert!(r.unwrap_err().contains("not a trusted source"));
        let (r, _) = after_header(&[b"PROXY TCP4 banana 192.0.2.1 40000 443\r\n"], true).await;
        assert!(r.unwrap_err().contains("malformed"));
        let (r, _) = after_header(&[b"PROXY TCP4 198.51.100.7"], true).await;
        assert_eq!(r.unwrap_err(), "timed out");
    }
}
