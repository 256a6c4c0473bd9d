//! Names and capacities of every program and map.
//!
//! The eBPF side spells the same names in `#[map(name = …)]` and
//! `#[sk_lookup]`/`#[xdp]` function names; a boundary test in `proxy-user`
//! loads the built object and checks that each name below exists.

/// The `sk_lookup` program that assigns new connections to worker sockets.
pub const PROG_STEER: &str = "sticky_sk_lookup";
/// The XDP program that counts traffic per published port and guards SYNs.
pub const PROG_XDP: &str = "sticky_xdp_ingress";

/// `Array<u32>`: slot 0 holds the ABI version of the pinned state.
pub const MAP_META: &str = "META";
/// `HashMap<ListenKey, ListenTarget>`: published address/port → worker group.
pub const MAP_LISTENERS: &str = "LISTENERS";
/// `SockHash<WorkerKey>`: the listening socket of each worker of each group.
pub const MAP_WORKER_SOCKETS: &str = "WORKER_SOCKETS";
/// `HashMap<u32, Owner>`: the processes (by pid) that use the pinned state.
pub const MAP_OWNERS: &str = "OWNERS";
/// `PerCpuArray<SteerStats>`: one slot of steering counters.
pub const MAP_STEER_STATS: &str = "STEER_STATS";
/// `PerCpuHashMap<PortKey, PortStats>`: XDP counters per published port.
pub const MAP_PORT_STATS: &str = "PORT_STATS";
/// `Array<SynGuardConfig>`: one slot, the SYN-rate guard settings.
pub const MAP_SYN_GUARD: &str = "SYN_GUARD";
/// `LruHashMap<u32, u64>`: per-source IPv4 GCRA state of the SYN guard.
pub const MAP_SYN_SOURCES: &str = "SYN_SOURCES";

/// Every map name, for the boundary test and for removing stale pins.
pub const ALL_MAPS: [&str; 8] = [
    MAP_META,
    MAP_LISTENERS,
    MAP_WORKER_SOCKETS,
    MAP_OWNERS,
    MAP_STEER_STATS,
    MAP_PORT_STATS,
    MAP_SYN_GUARD,
    MAP_SYN_SOURCES,
];

/// Capacity of `LISTENERS`: published address/port pairs per network namespace.
pub const LISTENERS_CAPACITY: u32 = 256;
/// Workers per published listener; also the bound of the probe loop.
pub const MAX_WORKERS: u32 = 64;
/// Capacity of `WORKER_SOCKETS`: room for two processes (old and new during a
/// hand-over) with every listener at [`MAX_WORKERS`].
pub const WORKER_SOCKETS_CAPACITY: u32 = 4096;
/// Capacity of `OWNERS`.
pub const OWNERS_CAPACITY: u32 = 64;
/// Capacity of `PORT_STATS`.
pub const PORT_STATS_CAPACITY: u32 = 256;
/// Capacity of `SYN_SOURCES`: tracked client addresses (least recently used
/// ones are evicted, which only forgets their rate history).
pub const SYN_SOURCES_CAPACITY: u32 = 65_536;
