//! Listening sockets for the workers.
//!
//! * eBPF steering: each worker gets, per published address, a socket of
//!   the same family bound to loopback on an ephemeral port. The kernel
//!   never looks it up by address for published traffic; the `sk_lookup`
//!   program assigns connections to it directly.
//! * SO_REUSEPORT: each worker gets, per published address, a socket bound
//!   to that address with SO_REUSEPORT; the kernel spreads connections.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener};

use socket2::{Domain, Protocol, Socket, Type};

/// Accept queue length of every worker socket (the kernel caps it at
/// `net.core.somaxconn`).
const BACKLOG: i32 = 4096;

/// A socket that could not be created.
#[derive(Debug, thiserror::Error)]
#[error("{what} {addr}")]
pub struct SocketError {
    /// What was being done.
    pub what: &'static str,
    /// The address involved.
    pub addr: SocketAddr,
    /// Why it failed.
    #[source]
    pub source: std::io::Error,
}

fn new_socket(addr: SocketAddr) -> std::io::Result<Socket> {
    let socket = Socket::new(
        Domain::for_address(addr),
        Type::STREAM.nonblocking(),
        Some(Protocol::TCP),
    )?;
    if addr.is_ipv6() {
        // `[::]:P` serves IPv6 only, in both steering modes, so that it can
        // sit beside `0.0.0.0:P`; list both to serve both families.
        socket.set_only_v6(true)?;
    }
    socket.set_reuse_address(true)?;
    Ok(socket)
}

/// A worker socket for eBPF steering of `published`: same family, bound
/// to loopback on an ephemeral port, listening.
///
/// # Errors
/// When the socket cannot be created, bound or put to listen.
pub fn steered_worker_socket(published: SocketAddr) -> Result<TcpListener, SocketError> {
    let addr = match published {
        SocketAddr::V4(_) => SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
        SocketAddr::V6(_) => SocketAddr::from((Ipv6Addr::LOCALHOST, 0)),
    };
    let err = |what| move |source| SocketError { what, addr, source };
    let socket = new_socket(addr).map_err(err("create a worker socket on"))?;
    socket.bind(&addr.into()).map_err(err("bind a worker socket to"))?;
    socket.listen(BACKLOG).map_err(err("listen on"))?;
    Ok(socket.into())
}

/// A socket on `published` itself: with `reuse_port` one of several that
/// the workers share through SO_REUSEPORT, without it the one socket every
/// worker accepts from.
///
/// # Errors
/// When the address cannot be bound (in use by another program, not
/// local, or a privileged port without CAP_NET_BIND_SERVICE).
pub fn published_socket(published: SocketAddr, reuse_port: bool) -> Result<TcpListener, SocketError> {
    let err = |what| {
        move |source| SocketError {
            what,
            addr: published,
            source,
        }
    };
    let socket = new_socket(published).map_err(err("create a socket for"))?;
    if reuse_port {
        socket.set_reuse_port(true).map_err(err("set SO_REUSEPORT on"))?;
    }
    socket.bind(&published.into()).map_err(err("bind"))?;
    socket.listen(BACKLOG).map_err(err("listen on"))?;
    Ok(socket.into())
}

/// Whether a socket in this thread's network namespace already listens on
/// `published` (same port, and the same address or a wildcard on either
/// side). eBPF steering runs before the kernel's own lookup, so it would
/// silently take that program's connections; this check refuses instead.
pub fn published_in_use(published: SocketAddr) -> bool {
    let (file, v6) = match published {
        SocketAddr::V4(_) => ("/proc/thread-self/net/tcp", false),
        SocketAddr::V6(_) => ("/proc/thread-self/net/tcp6", true),
    };
    let Ok(table) = std::fs::read_to_string(file) else {
        return false;
    };
    table.lines().skip(1).any(|line| {
        let cols: Vec<&str> = line.split_whitespace().collect();
        // cols[1] = "ADDR:PORT" in hex; cols[3] = state, 0A = LISTEN.
        if cols.len() < 4 || cols[3] != "0A" {
            return false;
        }
        let Some((addr_hex, port_hex)) = cols[1].split_once(':') else {
            return false;
        };
        if u16::from_str_radix(port_hex, 16).ok() != Some(published.port()) {
            return false;
        }
        let wildcard = addr_hex.bytes().all(|b| b == b'0');
        wildcard || published.ip().is_unspecified() || parse_proc_addr(addr_hex, v6) == Some(published.ip())
    })
}

/// An address as `/proc/net/tcp{,6}` prints it: 32-bit words in host byte
/// order, each as 8 hex digits.
fn parse_proc_addr(hex: &str, v6: bool) -> Option<std::net::IpAddr> {
    let word = |i: usize| {
        u32::from_str_radix(hex.get(i * 8..i * 8 + 8)?, 16)
            .ok()
            .map(u32::to_ne_bytes)
    };
    if v6 {
        let mut b = [0u8; 16];
        for i in 0..4 {
            b[i * 4..i * 4 + 4].copy_from_slice(&word(i)?);
        }
        Some(Ipv6Addr::from(b).into())
    } else {
        Some(Ipv4Addr::from(word(0)?).into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_addresses_parse() {
        // 127.0.0.1 as the kernel prints it on little-endian machines.
        assert_eq!(parse_proc_addr("0100007F", false), Some("127.0.0.1".parse().unwrap()));
        assert_eq!(
            parse_proc_addr("00000000000000000000000001000000", true),
            Some("::1".parse().unwrap())
        );
    }

    #[test]
    fn a_listener_on_the_port_is_seen() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        assert!(published_in_use(addr));
        assert!(published_in_use(SocketAddr::from(([0, 0, 0, 0], addr.port()))));
        drop(l);
        assert!(!published_in_use(addr));
    }
}
