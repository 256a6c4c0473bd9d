//! XDP counters and the SYN guard on the interface the user names.
//!
//! Like the `sk_lookup` link, the XDP link is pinned (one per interface),
//! so that a hand-over keeps counting without a gap and the counters keep
//! running totals across restarts. Native (driver) mode is tried first,
//! generic (skb) mode second.

use std::path::Path;

use aya::{
    Ebpf,
    maps::{Array, PerCpuHashMap, PerCpuValues},
    programs::{Xdp, XdpMode as AttachMode, links::FdLink},
    util::nr_cpus,
};
use proxy_common::{
    names::{MAP_PORT_STATS, MAP_SYN_GUARD, PROG_XDP},
    xdp::{PortKey, PortStats, SynGuardConfig},
};
use tracing::info;

use super::{
    DataplaneError,
    ebpf::{map_err, map_mut, map_ref},
};

/// XDP attachment settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XdpConfig {
    /// Interface name.
    pub iface: String,
    /// SYN guard settings (disabled unless `--syn-rate` > 0).
    pub syn_guard: SynGuardConfig,
}

/// How the XDP program is attached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum XdpMode {
    /// In the driver.
    Native,
    /// In the generic (skb) path, where the driver has no XDP support.
    Generic,
    /// Attached by an earlier process; this one reuses its pinned link.
    Pinned,
}

impl std::fmt::Display for XdpMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Native => "native",
            Self::Generic => "generic",
            Self::Pinned => "pinned",
        })
    }
}

/// `BPF_NOEXIST`: create only, keep an existing entry (and its counts).
const BPF_NOEXIST: u64 = 1;

/// Counters of one published port, summed over CPUs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct PortCounters {
    /// Destination port.
    pub port: u16,
    /// Packets seen (including dropped SYNs).
    pub packets: u64,
    /// Bytes seen.
    pub bytes: u64,
    /// Connection attempts (SYN without ACK).
    pub syns: u64,
    /// SYNs dropped by the guard.
    pub syns_dropped: u64,
}

/// Attaches (or reuses) the XDP program on `cfg.iface`, creates counters
/// for `ports` and writes the SYN guard settings.
///
/// # Errors
/// An unknown interface, or a failure to load, attach or update.
pub fn setup(ebpf: &mut Ebpf, dir: &Path, cfg: &XdpConfig, ports: &[u16]) -> Result<XdpMode, DataplaneError> {
    let ncpus = nr_cpus().map_err(|(_, source)| DataplaneError::Io {
        what: "count CPUs",
        source,
    })?;
    {
        let mut stats: PerCpuHashMap<_, PortKey, PortStats> = map_mut(ebpf, MAP_PORT_STATS)?;
        for port in ports {
            let zeros =
                PerCpuValues::try_from(vec![PortStats::default(); ncpus]).map_err(|source| DataplaneError::Io {
                    what: "build per-CPU values",
                    source,
                })?;
            match stats.insert(PortKey::tcp(*port), zeros, BPF_NOEXIST) {
                Ok(()) => {}
                // EEXIST: a previous process created it; keep its totals.
                Err(aya::maps::MapError::SyscallError(e)) if e.io_error.raw_os_error() == Some(libc::EEXIST) => {}
                Err(source) => {
                    return Err(DataplaneError::Map {
                        name: MAP_PORT_STATS,
                        source,
                    });
                }
            }
        }
    }
    {
        let mut guard: Array<_, SynGuardConfig> = map_mut(ebpf, MAP_SYN_GUARD)?;
        guard.set(0, cfg.syn_guard, 0).map_err(map_err(MAP_SYN_GUARD))?;
    }

    let pin = dir.join(format!("xdp_link_{}", cfg.iface));
    if pin.exists() {
        info!(iface = %cfg.iface, "reusing the pinned XDP program");
        return Ok(XdpMode::Pinned);
    }
    let prog: &mut Xdp = ebpf
        .program_mut(PROG_XDP)
        .ok_or(DataplaneError::MissingProgram(PROG_XDP))?
        .try_into()
        .map_err(|source| DataplaneError::Program { name: PROG_XDP, source })?;
    prog.load()
        .map_err(|source| DataplaneError::Program { name: PROG_XDP, source })?;
    let (id, mode) = match prog.attach(&cfg.iface, AttachMode::Driver) {
        Ok(id) => (id, XdpMode::Native),
        Err(native) => match prog.attach(&cfg.iface, AttachMode::Skb) {
            Ok(id) => (id, XdpMode::Generic),
            Err(_) => {
                return Err(DataplaneError::XdpAttach {
                    iface: cfg.iface.clone(),
                    source: native,
                });
            }
        },
    };
    let link = prog
        .take_link(id)
        .map_err(|source| DataplaneError::Program { name: PROG_XDP, source })?;
    let fd_link = FdLink::try_from(link).map_err(|_| DataplaneError::XdpLegacyLink {
        iface: cfg.iface.clone(),
    })?;
    let _pinned = fd_link.pin(&pin).map_err(|source| DataplaneError::Pin {
        what: "the XDP link",
        source,
    })?;
    info!(iface = %cfg.iface, %mode, guard = cfg.syn_guard.enabled != 0, "XDP attached");
    Ok(mode)
}

/// Counters of every published port, summed over CPUs.
///
/// # Errors
/// When the map cannot be read.
pub fn counters(ebpf: &Ebpf) -> Result<Vec<PortCounters>, DataplaneError> {
    let stats: PerCpuHashMap<_, PortKey, PortStats> = map_ref(ebpf, MAP_PORT_STATS)?;
    let mut out = Vec::new();
    for entry in stats.iter() {
        let (key, per_cpu) = entry.map_err(map_err(MAP_PORT_STATS))?;
        let mut c = PortCounters {
            port: key.port,
            ..PortCounters::default()
        };
        for s in per_cpu.iter() {
            c.packets += s.packets;
            c.bytes += s.bytes;
            c.syns += s.syns;
            c.syns_dropped += s.syns_dropped;
        }
        out.push(c);
    }
    out.sort_by_key(|c| c.port);
    Ok(out)
}
