//! Backends from the Docker API: Swarm services selected by labels, and
//! their running tasks.
//!
//! * [`anchor`]: anchor tasks that give this node a namespace on a network.
//! * [`cluster_key`]: the cookie key derived from the manager join token.
//! * [`labels`]: what a service's labels ask for (pure).
//! * [`tasks`]: a service's tasks as backends (pure).
//! * [`traefik_v1`]: the cookie name Traefik v1 used (migration).
//! * [`table`]: a discovered table as the proxy's services.
//! * [`engine`]: the Engine API client (bollard, negotiated version).
//! * [`watch`]: events, debounced re-lists, resync, reconnects; tables
//!   published through a `watch` channel.

pub mod anchor;
pub mod cluster_key;
pub mod engine;
pub mod labels;
pub mod table;
pub mod tasks;
pub mod traefik_v1;
pub mod watch;
