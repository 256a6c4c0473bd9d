//! Backends from the Docker API: Swarm services selected by labels, and
//! their running tasks, published as service configurations.
//!
//! The path of a change, one way down: [`watch`] lists the engine on every
//! event and resync, and while tasks move, into a [`table::Snapshot`]
//! (services, their [`labels`] and [`tasks`], held down by node state and
//! health); [`publish`] turns each snapshot into the proxy's
//! service configurations ([`to_services`], checked as the config file's
//! are) with typed [`Warning`]s, and sends them on; [`crate::sources`]
//! merges them with the static services and hands them to the balancer.
//!
//! * [`anchor`]: anchor tasks that give this node a namespace on a network.
//! * [`cluster_key`]: the cookie key derived from the manager join token.
//! * [`engine`]: the Engine API client (bollard, negotiated version).
//! * [`traefik_v1`]: the cookie name Traefik v1 used (migration).

pub mod anchor;
pub mod cluster_key;
pub mod configs;
pub mod engine;
pub mod labels;
mod publish;
pub mod table;
pub mod tasks;
pub mod to_services;
pub mod traefik_v1;
mod warning;
pub mod watch;

use std::{path::PathBuf, time::Duration};

pub use self::{
    publish::{Discovered, follow},
    warning::Warning,
    watch::DiscoveryStatus,
};

/// How to follow the Docker API (`run --docker`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DockerConfig {
    /// The API's `unix://` URL.
    pub host: String,
    /// Time between full re-lists; events trigger re-lists in between.
    pub resync: Duration,
    /// Where the engine keeps network namespaces (`<exec-root>/netns`).
    pub netns_dir: PathBuf,
    /// The Swarm stack this instance runs in, whose anchors join it.
    pub stack: Option<String>,
}
