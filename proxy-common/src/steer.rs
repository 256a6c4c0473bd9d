//! Types and the worker choice of the `sk_lookup` steering program.
//!
//! A *listener* is one published address and port (`--listen ADDR`). Each
//! process that serves it registers a *group* of worker listening sockets
//! and points the listener at that group; a hand-over is the new process
//! pointing the same listener at its own group.

use core::net::{IpAddr, SocketAddr};

use crate::{FAMILY_V4, FAMILY_V6};

/// Key of `LISTENERS`: a published address and port.
///
/// A wildcard listener (`0.0.0.0` or `::`) has an all-zero `addr`; the
/// program tries the exact address first and the wildcard second, as the
/// kernel's own socket lookup does.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
#[repr(C)]
pub struct ListenKey {
    /// Address bytes in network order (IPv4 in word 0, the rest zero).
    pub addr: [u32; 4],
    /// Port in host byte order.
    pub port: u16,
    /// [`FAMILY_V4`] or [`FAMILY_V6`].
    pub family: u8,
    /// Always zero.
    pub _pad: u8,
}
const _: () = assert!(core::mem::size_of::<ListenKey>() == 20);

impl ListenKey {
    /// The key for an IPv4 address given as its network-order word.
    #[inline(always)]
    pub const fn v4(addr_be: u32, port: u16) -> Self {
        Self {
            addr: [addr_be, 0, 0, 0],
            port,
            family: FAMILY_V4,
            _pad: 0,
        }
    }

    /// The key for an IPv6 address given as four network-order words.
    #[inline(always)]
    pub const fn v6(addr_be: [u32; 4], port: u16) -> Self {
        Self {
            addr: addr_be,
            port,
            family: FAMILY_V6,
            _pad: 0,
        }
    }

    /// The wildcard key of the same family and port.
    #[inline(always)]
    pub const fn wildcard(&self) -> Self {
        Self {
            addr: [0; 4],
            port: self.port,
            family: self.family,
            _pad: 0,
        }
    }

    /// The key for a socket address as user space writes it.
    pub fn from_socket_addr(addr: SocketAddr) -> Self {
        match addr.ip() {
            IpAddr::V4(ip) => Self::v4(u32::from_ne_bytes(ip.octets()), addr.port()),
            IpAddr::V6(ip) => {
                let o = ip.octets();
                let word = |i: usize| u32::from_ne_bytes([o[i], o[i + 1], o[i + 2], o[i + 3]]);
                Self::v6([word(0), word(4), word(8), word(12)], addr.port())
            }
        }
    }
}

/// Value of `LISTENERS`: which group of which process takes new connections.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct ListenTarget {
    /// Process id of the owner of the group.
    pub owner: u32,
    /// Group number within the owner (its listener index).
    pub group: u16,
    /// Number of workers in the group, `1..=MAX_WORKERS`.
    pub workers: u16,
}
const _: () = assert!(core::mem::size_of::<ListenTarget>() == 8);

/// Key of `WORKER_SOCKETS`: one worker's listening socket.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
#[repr(C)]
pub struct WorkerKey {
    /// Process id of the owner.
    pub owner: u32,
    /// Group number within the owner.
    pub group: u16,
    /// Worker index within the group.
    pub worker: u16,
}
const _: () = assert!(core::mem::size_of::<WorkerKey>() == 8);

/// Value of `OWNERS`: a process that uses the pinned state.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct Owner {
    /// Seconds since the Unix epoch when the process registered.
    pub registered_at: u64,
}
const _: () = assert!(core::mem::size_of::<Owner>() == 8);

/// Value of the one-slot per-CPU `STEER_STATS` array.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct SteerStats {
    /// Connections assigned to a worker socket.
    pub steered: u64,
    /// Connections for a published listener whose group had no live socket;
    /// they fall through to the normal socket lookup.
    pub no_worker: u64,
    /// Lookups on ports swarm-sticky does not own (passed untouched).
    pub passed: u64,
}
const _: () = assert!(core::mem::size_of::<SteerStats>() == 24);

#[cfg(feature = "user")]
mod pod {
    // SAFETY: each type is #[repr(C)], made of fixed-width integers with its
    // padding spelled out, so every bit pattern is valid and none is uninit.
    unsafe impl aya::Pod for super::ListenKey {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::ListenTarget {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::WorkerKey {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::Owner {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::SteerStats {}
}

/// Mixes a 32-bit word (the murmur3 finalizer: every input bit flips each
/// output bit with probability close to 1/2).
#[inline(always)]
pub const fn mix32(mut h: u32) -> u32 {
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^= h >> 16;
    h
}

/// Hash of a connection's 4-tuple, the same in the kernel and on the host.
///
/// `remote` and `local` are the address words as in [`ListenKey::addr`];
/// ports are in host order. The seed is fixed (never random) so that a test
/// on the host predicts exactly what the kernel does.
#[inline(always)]
pub const fn flow_hash(remote: [u32; 4], remote_port: u16, local: [u32; 4], local_port: u16) -> u32 {
    let mut h: u32 = 0x9e37_79b9;
    h = mix32(h ^ remote[0]);
    h = mix32(h ^ remote[1]);
    h = mix32(h ^ remote[2]);
    h = mix32(h ^ remote[3]);
    h = mix32(h ^ local[0]);
    h = mix32(h ^ local[1]);
    h = mix32(h ^ local[2]);
    h = mix32(h ^ local[3]);
    mix32(h ^ (((remote_port as u32) << 16) | local_port as u32))
}

/// The worker slot probed first for a connection with hash `hash` in a group
/// of `workers` workers (`workers == 0` gives 0). The program then probes the
/// following slots, wrapping around, until it finds a live socket.
#[inline(always)]
pub const fn first_slot(hash: u32, workers: u16) -> u16 {
    if workers == 0 {
        return 0;
    }
    (hash % workers as u32) as u16
}

#[cfg(test)]
mod tests {
    use core::net::{Ipv4Addr, Ipv6Addr, SocketAddrV4, SocketAddrV6};

    use super::*;

    #[test]
    fn keys_hold_network_order_bytes() {
        let k = ListenKey::from_socket_addr(SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(10, 1, 2, 3), 8080)));
        assert_eq!(k.addr[0].to_ne_bytes(), [10, 1, 2, 3]);
        assert_eq!(k.addr[1..], [0, 0, 0]);
        assert_eq!((k.port, k.family), (8080, FAMILY_V4));

        let ip6 = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);
        let k = ListenKey::from_socket_addr(SocketAddr::V6(SocketAddrV6::new(ip6, 443, 0, 0)));
        assert_eq!(k.addr[0].to_ne_bytes(), [0x20, 0x01, 0x0d, 0xb8]);
        assert_eq!(k.addr[3].to_ne_bytes(), [0, 0, 0, 1]);
        assert_eq!(k.family, FAMILY_V6);
        assert_eq!(k.wildcard(), ListenKey::v6([0; 4], 443));
    }

    #[test]
    fn flow_hash_is_deterministic_and_sensitive() {
        let a = flow_hash([1, 0, 0, 0], 40000, [2, 0, 0, 0], 8080);
        assert_eq!(a, flow_hash([1, 0, 0, 0], 40000, [2, 0, 0, 0], 8080));
        assert_ne!(a, flow_hash([1, 0, 0, 0], 40001, [2, 0, 0, 0], 8080));
        assert_ne!(a, flow_hash([1, 0, 0, 0], 40000, [2, 0, 0, 0], 8081));
        assert_ne!(a, flow_hash([3, 0, 0, 0], 40000, [2, 0, 0, 0], 8080));
    }

    /// Sequential source ports, as a client's ephemeral range hands them
    /// out, spread within 1.25x of the fair share over 2..=8 workers.
    #[test]
    fn sequential_source_ports_spread_evenly() {
        let client = ListenKey::from_socket_addr("10.0.0.2:0".parse().unwrap()).addr;
        let server = ListenKey::from_socket_addr("10.0.0.1:0".parse().unwrap()).addr;
        for workers in 2u16..=8 {
            let mut counts = [0u32; 8];
            for port in 32768u16..33768 {
                let slot = first_slot(flow_hash(client, port, server, 8080), workers);
                counts[slot as usize] += 1;
            }
            let fair = 1000.0 / f64::from(workers);
            let max = counts.iter().copied().max().unwrap();
            assert!(f64::from(max) <= fair * 1.25, "workers={workers} counts={counts:?}");
            assert!(counts[..workers as usize].iter().all(|&c| c > 0));
        }
    }

    #[test]
    fn first_slot_stays_in_range() {
        assert_eq!(first_slot(12345, 0), 0);
        for h in [0, 1, u32::MAX, 0x8000_0000] {
            assert!(first_slot(h, 3) < 3);
        }
    }
}
