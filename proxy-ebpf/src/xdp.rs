//! XDP: count traffic per published port, and guard against SYN floods.
//!
//! Only TCP packets whose destination port has an entry in `PORT_STATS` are
//! looked at (user space creates one entry per published port); everything
//! else passes untouched. Counting happens before the guard, so a dropped
//! SYN is still a counted packet.

use aya_ebpf::{
    bindings::xdp_action::{XDP_DROP, XDP_PASS},
    helpers::bpf_ktime_get_ns,
    macros::xdp,
    programs::XdpContext,
};
use proxy_common::{
    IPPROTO_TCP,
    xdp::{PortKey, PortStats, SynGuardConfig, gcra_admit},
};

use crate::{PORT_STATS, SYN_GUARD, SYN_SOURCES};

const ETH_HLEN: usize = 14;
const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86dd;
const ETH_P_8021Q: u16 = 0x8100;
const VLAN_HLEN: usize = 4;
const IPV6_HLEN: usize = 40;
const TCP_FLAG_SYN: u8 = 0x02;
const TCP_FLAG_ACK: u8 = 0x10;

#[xdp]
pub fn sticky_xdp_ingress(ctx: XdpContext) -> u32 {
    // Fail open: a packet we cannot parse is not ours to judge.
    try_sticky_xdp_ingress(&ctx).unwrap_or(XDP_PASS)
}

/// A bounds-checked pointer to a `T` at `offset` in the packet.
#[inline(always)]
fn ptr_at<T>(ctx: &XdpContext, offset: usize) -> Result<*const T, ()> {
    let start = ctx.data();
    let end = ctx.data_end();
    // The verifier needs this exact comparison against data_end before any
    // read of packet memory.
    if start + offset + core::mem::size_of::<T>() > end {
        return Err(());
    }
    Ok((start + offset) as *const T)
}

#[inline(always)]
fn read_u8(ctx: &XdpContext, offset: usize) -> Result<u8, ()> {
    // SAFETY: ptr_at checked that the byte lies inside the packet.
    Ok(unsafe { *ptr_at::<u8>(ctx, offset)? })
}

#[inline(always)]
fn read_be16(ctx: &XdpContext, offset: usize) -> Result<u16, ()> {
    // SAFETY: ptr_at checked both bytes; the read is unaligned-safe.
    Ok(u16::from_be(unsafe {
        core::ptr::read_unaligned(ptr_at::<u16>(ctx, offset)?)
    }))
}

#[inline(always)]
fn read_u32(ctx: &XdpContext, offset: usize) -> Result<u32, ()> {
    // SAFETY: ptr_at checked all four bytes; the read is unaligned-safe.
    Ok(unsafe { core::ptr::read_unaligned(ptr_at::<u32>(ctx, offset)?) })
}

fn try_sticky_xdp_ingress(ctx: &XdpContext) -> Result<u32, ()> {
    let mut l3 = ETH_HLEN;
    let mut ethertype = read_be16(ctx, 12)?;
    if ethertype == ETH_P_8021Q {
        ethertype = read_be16(ctx, ETH_HLEN + 2)?;
        l3 += VLAN_HLEN;
    }
    // (source IPv4 address in network order or 0 for IPv6, TCP header offset)
    let (src_v4, l4) = match ethertype {
        ETH_P_IP => {
            let ihl = (read_u8(ctx, l3)? & 0x0f) as usize * 4;
            if ihl < 20 || read_u8(ctx, l3 + 9)? != IPPROTO_TCP {
                return Ok(XDP_PASS);
            }
            (read_u32(ctx, l3 + 12)?, l3 + ihl)
        }
        // Extension headers are not followed: a TCP segment behind them is
        // not counted, which only under-counts exotic traffic.
        ETH_P_IPV6 => {
            if read_u8(ctx, l3 + 6)? != IPPROTO_TCP {
                return Ok(XDP_PASS);
            }
            (0, l3 + IPV6_HLEN)
        }
        _ => return Ok(XDP_PASS),
    };
    let dport = read_be16(ctx, l4 + 2)?;
    let Some(stats) = PORT_STATS.get_ptr_mut(PortKey::tcp(dport)) else {
        return Ok(XDP_PASS);
    };
    let flags = read_u8(ctx, l4 + 13)?;
    let is_syn = flags & (TCP_FLAG_SYN | TCP_FLAG_ACK) == TCP_FLAG_SYN;
    let len = (ctx.data_end() - ctx.data()) as u64;
    // SAFETY: a per-CPU hash value is only written by programs on this CPU;
    // the pointer came from a successful lookup.
    let stats: &mut PortStats = unsafe { &mut *stats };
    stats.packets += 1;
    stats.bytes += len;
    if !is_syn {
        return Ok(XDP_PASS);
    }
    stats.syns += 1;
    if src_v4 != 0 && !syn_admitted(src_v4) {
        stats.syns_dropped += 1;
        return Ok(XDP_DROP);
    }
    Ok(XDP_PASS)
}

/// The SYN-rate guard: GCRA per source address (see `proxy_common::xdp`).
///
/// The state is one shared LRU entry per source; two CPUs updating the same
/// source at once may both admit a SYN, which lets a flood exceed its burst
/// by at most one SYN per CPU — a deliberate trade for a lock-free path.
#[inline(always)]
fn syn_admitted(src: u32) -> bool {
    let Some(cfg) = SYN_GUARD.get(0) else {
        return true;
    };
    if cfg.enabled == 0 {
        return true;
    }
    let cfg: SynGuardConfig = *cfg;
    // SAFETY: bpf_ktime_get_ns has no preconditions.
    let now = unsafe { bpf_ktime_get_ns() };
    // SAFETY: the value is a plain u64; a racing update is tolerated as above.
    let tat = unsafe { SYN_SOURCES.get(src) }.copied().unwrap_or(0);
    match gcra_admit(tat, now, &cfg) {
        Some(next) => {
            // A failed insert (map full even after LRU eviction) only forgets
            // this source's history; the SYN still conforms.
            let _ = SYN_SOURCES.insert(src, next, 0);
            true
        }
        None => false,
    }
}
