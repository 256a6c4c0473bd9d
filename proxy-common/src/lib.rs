//! Plain data shared by the kernel (`proxy-ebpf`) and user space (`proxy-user`).
//!
//! Everything here is `#![no_std]` and free of dependencies unless the `user`
//! feature is on, which only adds the `aya::Pod` impls.
//!
//! # ABI rules
//!
//! * Every map key and value is `#[repr(C)]`, uses fixed-width integers only,
//!   spells its padding out and has a compile-time size check.
//! * Addresses are stored as the packet carries them: network byte order,
//!   as `[u32; 4]` words whose in-memory bytes are the address bytes. An
//!   IPv4 address uses the first word and leaves the other three zero.
//! * Ports are in host byte order (that is what `bpf_sk_lookup.local_port`
//!   gives, and what the XDP program converts to once).
//! * Any change to a type, a map definition or a program's meaning bumps
//!   [`ABI_VERSION`]: maps are pinned in bpffs across restarts, and a process
//!   must never reuse pins whose layout it does not speak.
//!
//! # Layout
//!
//! * [`steer`]: the published-listener table and the worker socket keys
//!   used by the `sk_lookup` program, and the flow hash that picks a worker.
//! * [`xdp`]: per-port counters and the SYN-rate guard of the XDP program.
//! * [`names`]: program and map names, and their capacities.
#![no_std]
#![cfg_attr(
    feature = "user",
    expect(unsafe_code, reason = "the aya::Pod impls are unsafe by definition")
)]

pub mod names;
pub mod steer;
pub mod xdp;

/// Version of the kernel/user ABI: the layouts and meanings of every pinned
/// map and program. Stored in slot [`META_ABI_SLOT`] of the `META` map.
pub const ABI_VERSION: u32 = 1;

/// Slot of the `META` array that holds [`ABI_VERSION`].
pub const META_ABI_SLOT: u32 = 0;

/// Address family tag used in map keys (IPv4).
pub const FAMILY_V4: u8 = 4;
/// Address family tag used in map keys (IPv6).
pub const FAMILY_V6: u8 = 6;

/// IP protocol number of TCP.
pub const IPPROTO_TCP: u8 = 6;
