//! The data plane: how new connections for the published addresses reach
//! the workers.
//!
//! * [`SteeringMode::Ebpf`]: the `sk_lookup` program owns the published
//!   ports ([`ebpf`]); nothing listens on them. Optional XDP counters and
//!   SYN guard ([`xdp`]).
//! * [`SteeringMode::Reuseport`]: one SO_REUSEPORT socket per worker on
//!   each published address ([`sockets`]).
//! * [`SteeringMode::Shared`]: one socket per address that every worker
//!   accepts from (a baseline for benchmarks).
//! * [`SteeringMode::Auto`] tries eBPF and falls back to SO_REUSEPORT with
//!   one warning line that names what is missing.
//!
//! [`SteeringMode`] is what was asked for, [`Steering`] what runs.

pub mod ebpf;
mod error;
pub mod owners;
pub mod pins;
pub mod privileges;
pub mod sockets;
pub mod xdp;

use std::{
    net::{SocketAddr, TcpListener},
    path::PathBuf,
};

use proxy_common::steer::SteerStats;
use tracing::warn;

pub use self::{
    error::DataplaneError,
    xdp::{XdpConfig, XdpMode},
};
use crate::error::chain;

/// Where bpffs is mounted unless `--bpffs` says otherwise.
pub const DEFAULT_BPFFS: &str = "/sys/fs/bpf";

/// How new connections should reach the workers (`--steering`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SteeringMode {
    /// eBPF when this process may load it, SO_REUSEPORT otherwise (with a warning).
    #[default]
    Auto,
    /// eBPF sk_lookup only; exit with an error when it cannot be loaded.
    Ebpf,
    /// One SO_REUSEPORT listening socket per worker on each published address.
    Reuseport,
    /// One listening socket per published address that every worker
    /// accepts from (the classic shared accept loop; a benchmark baseline).
    Shared,
}

impl SteeringMode {
    /// Every mode, by its name on the command line.
    pub const NAMES: [(&'static str, Self); 4] = [
        ("auto", Self::Auto),
        ("ebpf", Self::Ebpf),
        ("reuseport", Self::Reuseport),
        ("shared", Self::Shared),
    ];
}

impl std::str::FromStr for SteeringMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Self::NAMES
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(s))
            .map(|(_, mode)| *mode)
            .ok_or_else(|| format!("{s:?} is not one of auto, ebpf, reuseport, shared"))
    }
}

/// Everything the data plane needs.
#[derive(Debug, Clone)]
pub struct DataplaneConfig {
    /// Published addresses, in `--listen` order.
    pub listen: Vec<SocketAddr>,
    /// Number of workers.
    pub workers: usize,
    /// How connections reach them.
    pub steering: SteeringMode,
    /// XDP counters, when asked for.
    pub xdp: Option<XdpConfig>,
    /// bpffs mount point.
    pub bpffs: PathBuf,
}

/// How connections reach the workers, as reported (`/api/status`, the
/// `steering_info` metric).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SteeringKind {
    /// eBPF `sk_lookup`.
    Ebpf,
    /// SO_REUSEPORT sockets per worker.
    Reuseport,
    /// One shared socket per address.
    Shared,
}

impl SteeringKind {
    /// The name in the API and metrics.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Ebpf => "ebpf",
            Self::Reuseport => "reuseport",
            Self::Shared => "shared",
        }
    }
}

/// What steers connections in this process, once set up.
pub enum Steering {
    /// eBPF `sk_lookup` (and maybe XDP).
    Ebpf {
        /// The registration in the pinned state.
        steering: Box<ebpf::EbpfSteering>,
        /// How XDP is attached, when it is.
        xdp: Option<XdpMode>,
    },
    /// One socket per published address shared by all workers.
    Shared,
    /// SO_REUSEPORT; `reason` says why when eBPF was wanted.
    Reuseport {
        /// Why eBPF is not used (None when reuseport was asked for).
        reason: Option<String>,
    },
}

impl std::fmt::Display for Steering {
    /// `ebpf (xdp native)`, `ebpf`, `reuseport` or `shared`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Ebpf { xdp: Some(mode), .. } => write!(f, "ebpf (xdp {mode})"),
            Self::Ebpf { xdp: None, .. } => f.write_str("ebpf"),
            Self::Reuseport { .. } => f.write_str("reuseport"),
            Self::Shared => f.write_str("shared"),
        }
    }
}

impl Steering {
    /// The kind, as reported.
    pub const fn kind(&self) -> SteeringKind {
        match self {
            Self::Ebpf { .. } => SteeringKind::Ebpf,
            Self::Reuseport { .. } => SteeringKind::Reuseport,
            Self::Shared => SteeringKind::Shared,
        }
    }
}

/// The running data plane.
pub struct Dataplane {
    /// What steers.
    pub steering: Steering,
    /// The published addresses.
    pub listen: Vec<std::net::SocketAddr>,
}

/// A point-in-time view for the admin API.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DataplaneStatus {
    /// How connections reach the workers.
    pub steering: SteeringKind,
    /// Why eBPF is not in use, if it was wanted.
    pub fallback_reason: Option<String>,
    /// Pin directory (eBPF only).
    pub pin_dir: Option<String>,
    /// Connections steered to a worker socket (eBPF only).
    pub steered: Option<u64>,
    /// Connections that found no live worker socket (eBPF only).
    pub no_worker: Option<u64>,
    /// XDP mode, when attached.
    pub xdp_mode: Option<XdpMode>,
    /// XDP counters per published port.
    pub xdp_ports: Vec<xdp::PortCounters>,
}

impl Dataplane {
    /// Sets up steering for `cfg`. Returns the data plane and the worker
    /// sockets, `sockets[worker][listener]`.
    ///
    /// # Errors
    /// In `ebpf` mode any eBPF problem; in every mode a socket that cannot
    /// be bound.
    pub fn start(cfg: &DataplaneConfig) -> Result<(Self, Vec<Vec<TcpListener>>), DataplaneError> {
        let wanted_ebpf = match cfg.steering {
            SteeringMode::Reuseport | SteeringMode::Shared => None,
            SteeringMode::Ebpf => Some(true),
            SteeringMode::Auto => Some(false),
        };
        let reason = match wanted_ebpf {
            None => None,
            Some(required) => match Self::start_ebpf(cfg) {
                Ok(ok) => return Ok(ok),
                Err(err) if required => return Err(err),
                // SO_REUSEPORT would fail on it too (or share it); say so plainly.
                Err(err @ DataplaneError::InUse(_)) => return Err(err),
                Err(err) => {
                    let xdp = if cfg.xdp.is_some() {
                        " (XDP counters are off too)"
                    } else {
                        ""
                    };
                    let reason = chain(&err).to_string();
                    warn!("eBPF steering unavailable: {reason}; falling back to SO_REUSEPORT listeners{xdp}");
                    Some(reason)
                }
            },
        };
        if cfg.steering == SteeringMode::Shared {
            let shared = cfg
                .listen
                .iter()
                .map(|a| sockets::published_socket(*a, false))
                .collect::<Result<Vec<_>, _>>()?;
            let sockets = (0..cfg.workers)
                .map(|_| {
                    shared
                        .iter()
                        .map(|s| {
                            s.try_clone().map_err(|source| DataplaneError::Io {
                                what: "share a listening socket",
                                source,
                            })
                        })
                        .collect::<Result<Vec<_>, _>>()
                })
                .collect::<Result<Vec<_>, _>>()?;
            return Ok((
                Self {
                    steering: Steering::Shared,
                    listen: cfg.listen.clone(),
                },
                sockets,
            ));
        }
        let sockets = (0..cfg.workers)
            .map(|_| {
                cfg.listen
                    .iter()
                    .map(|a| sockets::published_socket(*a, true))
                    .collect::<Result<Vec<_>, _>>()
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok((
            Self {
                steering: Steering::Reuseport { reason },
                listen: cfg.listen.clone(),
            },
            sockets,
        ))
    }

    fn start_ebpf(cfg: &DataplaneConfig) -> Result<(Self, Vec<Vec<TcpListener>>), DataplaneError> {
        if ebpf::OBJECT.is_empty() {
            return Err(DataplaneError::NotBuilt);
        }
        if let Some(missing) = privileges::check() {
            return Err(DataplaneError::Privileges(missing));
        }
        if let Some(addr) = cfg.listen.iter().find(|a| sockets::published_in_use(**a)) {
            return Err(DataplaneError::InUse(*addr));
        }
        let sockets = (0..cfg.workers)
            .map(|_| {
                cfg.listen
                    .iter()
                    .map(|a| sockets::steered_worker_socket(*a))
                    .collect::<Result<Vec<_>, _>>()
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut steering =
            ebpf::EbpfSteering::start(&cfg.bpffs, &cfg.listen, &sockets).map_err(DataplaneError::explained)?;
        let xdp = match &cfg.xdp {
            None => None,
            Some(x) => {
                let ports: Vec<u16> = cfg.listen.iter().map(std::net::SocketAddr::port).collect();
                let dir = steering.dir.clone();
                match xdp::setup(&mut steering.ebpf, &dir, x, &ports) {
                    Ok(mode) => Some(mode),
                    Err(err) => {
                        // Do not leave a half-registered process behind.
                        let _ = steering.leave();
                        return Err(err.explained());
                    }
                }
            }
        };
        Ok((
            Self {
                steering: Steering::Ebpf {
                    steering: Box::new(steering),
                    xdp,
                },
                listen: cfg.listen.clone(),
            },
            sockets,
        ))
    }

    /// Points the published addresses at this process's workers (eBPF: a
    /// predecessor, if any, drains from here on; the other modes listen
    /// from the start, and the kernel queues connections until the workers
    /// accept).
    ///
    /// # Errors
    /// When the eBPF maps cannot be updated.
    pub fn take_over(&mut self) -> Result<(), DataplaneError> {
        match &mut self.steering {
            Steering::Ebpf { steering, .. } => steering.take_over(),
            Steering::Reuseport { .. } | Steering::Shared => Ok(()),
        }
    }

    /// Whether a successor registered its workers and has not taken over
    /// yet (eBPF only): leaving now would leave the published addresses
    /// without an owner until it does.
    pub fn successor_starting(&self) -> bool {
        match &self.steering {
            Steering::Ebpf { steering, .. } => steering.successor_starting(),
            Steering::Reuseport { .. } | Steering::Shared => false,
        }
    }

    /// Stops steering new connections to this process (unless a successor
    /// already did). Call before draining the workers.
    pub fn leave(&mut self) {
        if let Steering::Ebpf { steering, .. } = &mut self.steering {
            match steering.leave() {
                Ok(true) => tracing::info!("a successor owns the published addresses; draining"),
                Ok(false) => tracing::info!("published addresses released; draining"),
                Err(err) => warn!("leaving eBPF steering: {}", chain(&err)),
            }
        }
    }

    /// The current status, for the admin API.
    pub fn status(&self) -> DataplaneStatus {
        match &self.steering {
            Steering::Shared | Steering::Reuseport { .. } => DataplaneStatus {
                steering: self.steering.kind(),
                fallback_reason: match &self.steering {
                    Steering::Reuseport { reason } => reason.clone(),
                    _ => None,
                },
                pin_dir: None,
                steered: None,
                no_worker: None,
                xdp_mode: None,
                xdp_ports: Vec::new(),
            },
            Steering::Ebpf {
                steering,
                xdp: xdp_mode,
            } => {
                let stats = steering.steer_stats().unwrap_or_else(|_| SteerStats::default());
                let ports = if xdp_mode.is_some() {
                    xdp::counters(&steering.ebpf).unwrap_or_default()
                } else {
                    Vec::new()
                };
                DataplaneStatus {
                    steering: SteeringKind::Ebpf,
                    fallback_reason: None,
                    pin_dir: Some(steering.pin_dir().display().to_string()),
                    steered: Some(stats.steered),
                    no_worker: Some(stats.no_worker),
                    xdp_mode: *xdp_mode,
                    xdp_ports: ports,
                }
            }
        }
    }
}
