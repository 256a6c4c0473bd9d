//! swarm-sticky: sticky sessions for Docker Swarm.
//!
//! # Layout
//!
//! * [`cli`] and [`config`]: the command line, validated into plain data
//!   before anything binds.
//! * [`dataplane`]: how connections reach the workers — the eBPF
//!   `sk_lookup` program with pinned maps (and hand-over between processes),
//!   XDP counters and the SYN guard, or SO_REUSEPORT as the fallback.
//! * [`worker`]: worker threads, each with its own runtime and sockets.
//! * [`services`]: the service model (`--backend`, `--config`), validated.
//! * [`cookie`]: the signed sticky cookie and its keyring.
//! * [`balance`]: the routing table (atomic snapshots), SWRR, drain, health.
//! * [`proxy`]: the hyper reverse proxy served by the workers.
//! * [`demo`]: the built-in whoami backend and the demo helpers.
//! * [`probe`]: `swarm-sticky probe URL`, a HEALTHCHECK without curl.
//! * [`alloc`]: the allocator, and handing idle connections' memory back.
//! * [`app`]: wires the parts together and runs until a signal.

pub mod access_log;
pub mod admin;
pub mod alloc;
pub mod app;
pub mod balance;
pub mod cli;
pub mod config;
pub mod cookie;
pub mod dataplane;
pub mod demo;
pub mod discovery;
pub mod inspect;
pub mod metrics;
pub mod netns;
pub mod probe;
pub mod proxy;
pub mod services;
pub mod sources;
pub mod stats;
pub mod worker;
