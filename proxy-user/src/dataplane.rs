//! The data plane: how new connections for the published addresses reach
//! the workers.
//!
//! * [`Steering::Ebpf`](crate::cli::Steering): the `sk_lookup` program owns
//!   the published ports ([`ebpf`]); nothing listens on them. Optional XDP
//!   counters and SYN guard ([`xdp`]).
//! * [`Steering::Reuseport`](crate::cli::Steering): one SO_REUSEPORT socket
//!   per worker on each published address ([`sockets`]).
//! * `auto` tries eBPF and falls back to SO_REUSEPORT with one warning line
//!   that names what is missing.

pub mod ebpf;
pub mod pins;
pub mod privileges;
pub mod sockets;
pub mod xdp;

use std::{net::TcpListener, path::PathBuf};

use proxy_common::steer::SteerStats;
use tracing::warn;

use crate::{cli::Steering, config::DataplaneConfig};

/// Why the data plane could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum DataplaneError {
    /// The process lacks the capabilities for BPF.
    #[error("{0}")]
    Privileges(privileges::Missing),
    /// The kernel refused with EPERM/EACCES although the capabilities look right.
    #[error(
        "the kernel refused to load eBPF ({source}); run as root or grant cap_bpf,cap_net_admin,cap_perfmon (e.g. setcap cap_bpf,cap_net_admin,cap_perfmon+ep swarm-sticky)"
    )]
    PermissionDenied {
        /// The refusal.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// This binary was built without the eBPF object.
    #[error(
        "this swarm-sticky was built without its eBPF object (bpf-linker or the nightly rust-src was missing at build time; run `cargo xtask build`)"
    )]
    NotBuilt,
    /// Pinned state of another ABI version.
    #[error("pinned eBPF state in {dir} speaks ABI v{found}, this swarm-sticky speaks v{expected}: stop the other swarm-sticky version, then remove the pins with `rm -r {dir}` and start again", dir = dir.display())]
    AbiMismatch {
        /// The pin directory.
        dir: PathBuf,
        /// ABI version found in the pins.
        found: u32,
        /// ABI version of this binary.
        expected: u32,
    },
    /// bpffs trouble.
    #[error(transparent)]
    Pins(#[from] pins::PinError),
    /// The object could not be loaded.
    #[error("load the eBPF object")]
    Load {
        /// aya's error.
        #[source]
        source: Box<aya::EbpfError>,
    },
    /// A map is missing from the object.
    #[error("the eBPF object has no map {0}")]
    MissingMap(&'static str),
    /// A program is missing from the object.
    #[error("the eBPF object has no program {0}")]
    MissingProgram(&'static str),
    /// A map operation failed.
    #[error("eBPF map {name}")]
    Map {
        /// Map name.
        name: &'static str,
        /// aya's error.
        #[source]
        source: aya::maps::MapError,
    },
    /// A program operation failed.
    #[error("eBPF program {name}")]
    Program {
        /// Program name.
        name: &'static str,
        /// aya's error.
        #[source]
        source: aya::programs::ProgramError,
    },
    /// Pinning failed.
    #[error("pin {what}")]
    Pin {
        /// What was pinned.
        what: &'static str,
        /// aya's error.
        #[source]
        source: aya::pin::PinError,
    },
    /// XDP could not attach in native or generic mode.
    #[error("attach XDP to {iface} (native and generic mode both failed; does the interface exist?)")]
    XdpAttach {
        /// Interface name.
        iface: String,
        /// The native-mode error.
        #[source]
        source: aya::programs::ProgramError,
    },
    /// The kernel attached XDP through netlink, which cannot be pinned.
    #[error("XDP on {iface} was attached without a bpf_link (kernel older than 5.9?); hand-over needs a link")]
    XdpLegacyLink {
        /// Interface name.
        iface: String,
    },
    /// Another program listens on a published address.
    #[error(
        "{0} is in use: another program listens on it, and eBPF steering would take its connections; stop it or publish another address"
    )]
    InUse(std::net::SocketAddr),
    /// Too many workers for the map key.
    #[error("{0} workers do not fit the steering map")]
    TooManyWorkers(usize),
    /// A socket could not be created.
    #[error(transparent)]
    Socket(#[from] sockets::SocketError),
    /// Another system call failed.
    #[error("{what}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

impl DataplaneError {
    /// Whether a permission error sits anywhere in the source chain.
    fn is_permission_denied(&self) -> bool {
        let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(self);
        while let Some(e) = cur {
            // EPERM only: EACCES is also what the verifier returns when it
            // rejects a program, and that is no privilege problem.
            if let Some(io) = e.downcast_ref::<std::io::Error>()
                && io.raw_os_error() == Some(libc::EPERM)
            {
                return true;
            }
            cur = e.source();
        }
        false
    }

    /// Rewrites a permission error into a message that says what to do.
    fn explained(self) -> Self {
        if matches!(self, Self::Privileges(_) | Self::PermissionDenied { .. }) || !self.is_permission_denied() {
            return self;
        }
        Self::PermissionDenied { source: Box::new(self) }
    }
}

/// What steers connections in this process.
pub enum Active {
    /// eBPF `sk_lookup` (and maybe XDP).
    Ebpf {
        /// The registration in the pinned state.
        steering: Box<ebpf::EbpfSteering>,
        /// XDP mode ("native", "generic", "pinned") when attached.
        xdp: Option<&'static str>,
    },
    /// One socket per published address shared by all workers.
    Shared,
    /// SO_REUSEPORT; `reason` says why when eBPF was wanted.
    Reuseport {
        /// Why eBPF is not used (None when reuseport was asked for).
        reason: Option<String>,
    },
}

/// The running data plane.
pub struct Dataplane {
    /// What steers.
    pub active: Active,
    /// The published addresses.
    pub listen: Vec<std::net::SocketAddr>,
}

/// A point-in-time view for the admin API.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DataplaneStatus {
    /// "ebpf" or "reuseport".
    pub steering: &'static str,
    /// Why eBPF is not in use, if it was wanted.
    pub fallback_reason: Option<String>,
    /// Pin directory (eBPF only).
    pub pin_dir: Option<String>,
    /// Connections steered to a worker socket (eBPF only).
    pub steered: Option<u64>,
    /// Connections that found no live worker socket (eBPF only).
    pub no_worker: Option<u64>,
    /// XDP mode, when attached.
    pub xdp_mode: Option<&'static str>,
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
            Steering::Reuseport | Steering::Shared => None,
            Steering::Ebpf => Some(true),
            Steering::Auto => Some(false),
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
                    let reason = format!("{:#}", anyhow_like(&err));
                    warn!("eBPF steering unavailable: {reason}; falling back to SO_REUSEPORT listeners{xdp}");
                    Some(reason)
                }
            },
        };
        if cfg.steering == Steering::Shared {
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
                    active: Active::Shared,
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
                active: Active::Reuseport { reason },
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
                active: Active::Ebpf {
                    steering: Box::new(steering),
                    xdp,
                },
                listen: cfg.listen.clone(),
            },
            sockets,
        ))
    }

    /// Stops steering new connections to this process (unless a successor
    /// already did). Call before draining the workers.
    pub fn leave(&mut self) {
        if let Active::Ebpf { steering, .. } = &mut self.active {
            match steering.leave() {
                Ok(true) => tracing::info!("a successor owns the published addresses; draining"),
                Ok(false) => tracing::info!("published addresses released; draining"),
                Err(err) => warn!("leaving eBPF steering: {:#}", anyhow_like(&err)),
            }
        }
    }

    /// The current status, for the admin API.
    pub fn status(&self) -> DataplaneStatus {
        match &self.active {
            Active::Shared | Active::Reuseport { .. } => DataplaneStatus {
                steering: if matches!(self.active, Active::Shared) {
                    "shared"
                } else {
                    "reuseport"
                },
                fallback_reason: match &self.active {
                    Active::Reuseport { reason } => reason.clone(),
                    _ => None,
                },
                pin_dir: None,
                steered: None,
                no_worker: None,
                xdp_mode: None,
                xdp_ports: Vec::new(),
            },
            Active::Ebpf {
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
                    steering: "ebpf",
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

/// Formats an error with its sources joined by ": " (like anyhow's `{:#}`).
pub fn anyhow_like<'a>(err: &'a (dyn std::error::Error + 'static)) -> impl std::fmt::Display + 'a {
    struct Chain<'a>(&'a (dyn std::error::Error + 'static));
    impl std::fmt::Display for Chain<'_> {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "{}", self.0)?;
            let mut cur = self.0.source();
            while let Some(e) = cur {
                write!(f, ": {e}")?;
                cur = e.source();
            }
            Ok(())
        }
    }
    Chain(err)
}
