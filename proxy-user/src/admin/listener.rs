//! The admin listener, shared by the instances that overlap during an
//! update, and the header that tells their answers apart.
//!
//! A start-first update (the stack) or a hand-over (two systemd units)
//! runs two swarm-sticky processes on one host for a while, both with the
//! admin address they were configured with. The listener is opened with
//! SO_REUSEPORT, so the second process binds it too; the kernel spreads
//! admin connections over both (it only lets processes of the same user
//! share a port) until the first one exits. Every answer names the
//! process that gave it in [`crate::instance::INSTANCE_HEADER`], and `swarm-sticky probe
//! --this-container` uses that to judge only its own container's process.

use std::net::{SocketAddr, TcpListener};

use socket2::{Domain, Protocol, Socket, Type};

/// Binds the admin listener at `addr` (non-blocking, SO_REUSEPORT).
///
/// # Errors
/// When the address cannot be bound: taken by another user's process or
/// by one without SO_REUSEPORT, or not on this host.
pub fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(128)?;
    Ok(socket.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two listeners share one address.
    #[test]
    fn two_processes_share_the_address() {
        let first = bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = first.local_addr().unwrap();
        let second = bind(addr).unwrap();
        assert_eq!(second.local_addr().unwrap(), addr);
    }
}
