//! Why the data plane could not be set up, and how a permission problem
//! is told apart from the verifier's refusals.

use std::path::PathBuf;

use super::{pins, privileges, sockets};

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
    pub(super) fn is_permission_denied(&self) -> bool {
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
    pub(super) fn explained(self) -> Self {
        if matches!(self, Self::Privileges(_) | Self::PermissionDenied { .. }) || !self.is_permission_denied() {
            return self;
        }
        Self::PermissionDenied { source: Box::new(self) }
    }
}
