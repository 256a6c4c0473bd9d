//! What discovery warns about, typed: each warning names its service and
//! its kind, is logged once when it appears, and is listed on
//! `/api/discovery` until it goes away.

use std::fmt;

use super::tasks::DownCause;

/// A problem with one discovered service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Warning {
    /// A label is recognised but unsupported, misspelled, or contradicts
    /// another spelling; the service is served without it.
    Label {
        /// The Swarm service.
        service: String,
        /// What is wrong.
        message: String,
    },
    /// The service is labelled for us, but cannot be served.
    NotServed {
        /// The Swarm service.
        service: String,
        /// Why.
        reason: String,
    },
    /// A task is left out until its overlay network has a namespace on
    /// this node (retried every resync).
    NoNamespace {
        /// The Swarm service.
        service: String,
        /// The task.
        task: String,
        /// The overlay network.
        network: String,
    },
    /// A task is held down: its node is not ready, or its container's
    /// HEALTHCHECK is not healthy.
    Down {
        /// The Swarm service.
        service: String,
        /// The task.
        task: String,
        /// Why.
        cause: DownCause,
    },
    /// Stickiness is switched off in the labels, which swarm-sticky ignores.
    StickinessOff {
        /// The Swarm service.
        service: String,
    },
}

impl Warning {
    /// The service it is about.
    pub fn service(&self) -> &str {
        match self {
            Self::Label { service, .. }
            | Self::NotServed { service, .. }
            | Self::NoNamespace { service, .. }
            | Self::Down { service, .. }
            | Self::StickinessOff { service } => service,
        }
    }

    /// Its kind, as the admin API names it.
    pub const fn kind(&self) -> &'static str {
        match self {
            Self::Label { .. } => "label",
            Self::NotServed { .. } => "not_served",
            Self::NoNamespace { .. } => "no_namespace",
            Self::Down { cause, .. } => cause.kind(),
            Self::StickinessOff { .. } => "stickiness_off",
        }
    }

    /// Whether the table should be built again after a resync period even
    /// if Docker reports no change: the condition can clear by itself.
    pub const fn clears_by_itself(&self) -> bool {
        matches!(self, Self::NoNamespace { .. })
    }
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Label { message, .. } => f.write_str(message),
            Self::NotServed { reason, .. } => write!(f, "not served: {reason}"),
            Self::NoNamespace { task, network, .. } => write!(
                f,
                "task {task} is not reachable yet: the overlay network {network} has no namespace on this node"
            ),
            Self::Down { task, cause, .. } => write!(f, "task {task} is not served: {cause}"),
            Self::StickinessOff { .. } => {
                f.write_str("stickiness is off in the labels, but swarm-sticky always pins sessions")
            }
        }
    }
}
