//! swarm-sticky's eBPF programs.
//!
//! * `sticky_sk_lookup` ([`steer`]): owns each published address/port and
//!   assigns every new TCP connection to one live worker listening socket.
//! * `sticky_xdp_ingress` ([`xdp`]): counts packets, bytes and SYNs per
//!   published port and optionally drops SYNs above a per-source rate.
//!
//! Every map is pinned by name, so a second swarm-sticky process (a
//! hand-over) shares them with the first; their layouts are the ABI in
//! `proxy-common`.
#![no_std]
#![no_main]
#![expect(
    unsafe_code,
    reason = "eBPF programs read kernel contexts and packets through raw pointers"
)]

mod steer;
mod xdp;

use aya_ebpf::{
    macros::map,
    maps::{Array, HashMap, LruHashMap, PerCpuArray, PerCpuHashMap, SockHash},
};
use proxy_common::{
    names::{LISTENERS_CAPACITY, OWNERS_CAPACITY, PORT_STATS_CAPACITY, SYN_SOURCES_CAPACITY, WORKER_SOCKETS_CAPACITY},
    steer::{ListenKey, ListenTarget, Owner, SteerStats, WorkerKey},
    xdp::{PortKey, PortStats, SynGuardConfig},
};

// ---------------------------------------------------------------- maps ----
// Names must equal the `proxy_common::names::MAP_*` constants.

#[map(name = "META")]
static META: Array<u32> = Array::pinned(4, 0);

#[map(name = "LISTENERS")]
static LISTENERS: HashMap<ListenKey, ListenTarget> = HashMap::pinned(LISTENERS_CAPACITY, 0);

#[map(name = "WORKER_SOCKETS")]
static WORKER_SOCKETS: SockHash<WorkerKey> = SockHash::pinned(WORKER_SOCKETS_CAPACITY, 0);

// Only user space reads and writes it; declared here so that it is created
// and pinned together with the others.
#[map(name = "OWNERS")]
static OWNERS: HashMap<u32, Owner> = HashMap::pinned(OWNERS_CAPACITY, 0);

#[map(name = "STEER_STATS")]
static STEER_STATS: PerCpuArray<SteerStats> = PerCpuArray::pinned(1, 0);

#[map(name = "PORT_STATS")]
static PORT_STATS: PerCpuHashMap<PortKey, PortStats> = PerCpuHashMap::pinned(PORT_STATS_CAPACITY, 0);

#[map(name = "SYN_GUARD")]
static SYN_GUARD: Array<SynGuardConfig> = Array::pinned(1, 0);

#[map(name = "SYN_SOURCES")]
static SYN_SOURCES: LruHashMap<u32, u64> = LruHashMap::pinned(SYN_SOURCES_CAPACITY, 0);

/// Keeps `META` and `OWNERS` referenced by a program: maps no program
/// uses would still be created, but referencing them documents that both
/// programs are built against the same pinned set.
#[inline(always)]
fn abi_version() -> u32 {
    let _ = &OWNERS;
    META.get(proxy_common::META_ABI_SLOT).copied().unwrap_or(0)
}

// --------------------------------------------------------------- panic ----

/// The verifier rejects any program that could reach this loop, so no
/// program can actually panic; the handler only satisfies `no_std`.
#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo<'_>) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
