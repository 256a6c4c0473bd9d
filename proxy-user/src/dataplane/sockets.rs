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
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM.nonblocking(), Some(Protocol::TCP))?;
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

/// A worker socket that shares `published` with the other workers through
/// SO_REUSEPORT.
///
/// # Errors
/// When the address cannot be bound (in use by another program, not
/// local, or a privileged port without CAP_NET_BIND_SERVICE).
pub fn reuseport_socket(published: SocketAddr) -> Result<TcpListener, SocketError> {
    let err = |what| move |source| SocketError { what, addr: published, source };
    let socket = new_socket(published).map_err(err("create a socket for"))?;
    socket.set_reuse_port(true).map_err(err("set SO_REUSEPORT on"))?;
    socket.bind(&published.into()).map_err(err("bind"))?;
    socket.listen(BACKLOG).map_err(err("listen on"))?;
    Ok(socket.into())
}

/// One socket on `published` for all workers (no SO_REUSEPORT).
///
/// # Errors
/// When the address cannot be bound.
pub fn shared_socket(published: SocketAddr) -> Result<TcpListener, SocketError> {
    let err = |what| move |source| SocketError { what, addr: published, source };
    let socket = new_socket(published).map_err(err("create a socket for"))?;
    socket.bind(&published.into()).map_err(err("bind"))?;
    socket.listen(BACKLOG).map_err(err("listen on"))?;
    Ok(socket.into())
}
