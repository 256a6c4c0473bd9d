//! Backends from the Docker API: Swarm services selected by labels, and
//! their running tasks.
//!
//! * [`labels`]: what a service's labels ask for (pure).
pub mod labels;
