//! `sk_lookup`: assign each new connection for a published listener to a
//! worker socket.
//!
//! The program runs before the kernel's own socket lookup for every new
//! connection in the network namespace. For a published address/port it
//! picks a worker with the shared flow hash, probes forward past empty or
//! removed slots, and assigns the connection to that worker's listening
//! socket. Anything else (other ports, UDP, a listener with no live worker)
//! passes untouched to the normal lookup.

use aya_ebpf::{bindings::sk_action::SK_PASS, macros::sk_lookup, programs::SkLookupContext};
use aya_log_ebpf::warn;
use proxy_common::{
    FAMILY_V4, FAMILY_V6, IPPROTO_TCP,
    names::MAX_WORKERS,
    steer::{ListenKey, ListenTarget, SteerStats, WorkerKey, first_slot, flow_hash},
};

use crate::{LISTENERS, STEER_STATS, WORKER_SOCKETS, abi_version};

/// `bpf_sk_assign` returns this when an earlier program already assigned a
/// socket; the connection is then taken care of.
const EEXIST: i32 = -17;

/// Address family numbers of `bpf_sk_lookup.family`.
const AF_INET: u32 = 2;
const AF_INET6: u32 = 10;

#[sk_lookup]
pub fn sticky_sk_lookup(ctx: SkLookupContext) -> u32 {
    // Fail open: whatever goes wrong, the kernel's own lookup still runs.
    try_sticky_sk_lookup(&ctx).unwrap_or(SK_PASS)
}

/// The 4-tuple of the lookup, in the shape of the map keys.
struct Tuple {
    remote: [u32; 4],
    remote_port: u16,
    key: ListenKey,
}

/// Reads one context field. Each field is loaded straight from the
/// context pointer: the verifier rejects loads through a pointer derived
/// from ctx by arithmetic, which the optimiser produces when it merges
/// field reads, and a volatile read keeps each access separate.
macro_rules! field {
    ($ctx:expr, $($f:tt)+) => {
        // SAFETY: `ctx.lookup` is the kernel's bpf_sk_lookup context, valid
        // for the whole program run; the verifier checks every access.
        unsafe { core::ptr::read_volatile(&raw const (*$ctx.lookup).$($f)+) }
    };
}

#[inline(always)]
fn read_tuple(ctx: &SkLookupContext) -> Option<Tuple> {
    if field!(ctx, protocol) != u32::from(IPPROTO_TCP) {
        return None;
    }
    // local_port is host order; remote_port is the 16-bit network-order port.
    let local_port = field!(ctx, local_port) as u16;
    let remote_port = u16::from_be(field!(ctx, remote_port));
    match field!(ctx, family) {
        AF_INET => Some(Tuple {
            remote: [field!(ctx, remote_ip4), 0, 0, 0],
            remote_port,
            key: ListenKey::v4(field!(ctx, local_ip4), local_port),
        }),
        AF_INET6 => Some(Tuple {
            remote: [
                field!(ctx, remote_ip6[0]),
                field!(ctx, remote_ip6[1]),
                field!(ctx, remote_ip6[2]),
                field!(ctx, remote_ip6[3]),
            ],
            remote_port,
            key: ListenKey::v6(
                [
                    field!(ctx, local_ip6[0]),
                    field!(ctx, local_ip6[1]),
                    field!(ctx, local_ip6[2]),
                    field!(ctx, local_ip6[3]),
                ],
                local_port,
            ),
        }),
        _ => None,
    }
}

#[inline(always)]
fn bump(f: impl FnOnce(&mut SteerStats)) {
    if let Some(s) = STEER_STATS.get_ptr_mut(0) {
        // SAFETY: a per-CPU array slot is only touched by programs on this
        // CPU, and the pointer came from a successful lookup.
        f(unsafe { &mut *s });
    }
}

fn try_sticky_sk_lookup(ctx: &SkLookupContext) -> Result<u32, ()> {
    let Some(t) = read_tuple(ctx) else {
        return Ok(SK_PASS);
    };
    debug_assert!(t.key.family == FAMILY_V4 || t.key.family == FAMILY_V6);
    // SAFETY: LISTENERS is only written by user space with whole-value
    // updates; a torn read at worst steers one connection by stale data.
    let target: ListenTarget = match unsafe { LISTENERS.get(t.key) } {
        Some(v) => *v,
        // SAFETY: as above.
        None => match unsafe { LISTENERS.get(t.key.wildcard()) } {
            Some(v) => *v,
            None => {
                bump(|s| s.passed += 1);
                return Ok(SK_PASS);
            }
        },
    };
    let workers = if target.workers as u32 > MAX_WORKERS {
        MAX_WORKERS as u16
    } else {
        target.workers
    };
    let hash = flow_hash(t.remote, t.remote_port, t.key.addr, t.key.port);
    let first = first_slot(hash, workers) as u32;
    let mut key = WorkerKey {
        owner: target.owner,
        group: target.group,
        worker: 0,
    };
    // Probe at most `workers` slots, starting at the hashed one; a slot whose
    // socket closed (a crashed or exiting worker) is skipped, never picked.
    for i in 0..MAX_WORKERS {
        if i >= workers as u32 {
            break;
        }
        let mut slot = first + i;
        if slot >= workers as u32 {
            slot -= workers as u32;
        }
        key.worker = slot as u16;
        match WORKER_SOCKETS.redirect_sk_lookup(ctx, key, 0) {
            Ok(()) | Err(EEXIST) => {
                bump(|s| s.steered += 1);
                return Ok(SK_PASS);
            }
            Err(_) => {}
        }
    }
    bump(|s| s.no_worker += 1);
    warn!(
        ctx,
        "no live worker for port {} (owner {}, abi {})",
        t.key.port,
        target.owner,
        abi_version()
    );
    Ok(SK_PASS)
}
