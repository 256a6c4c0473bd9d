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
//! * [`app`]: wires the parts together and runs until a signal.

pub mod admin;
pub mod app;
pub mod cli;
pub mod config;
pub mod dataplane;
pub mod discovery;
pub mod netns;
pub mod worker;
