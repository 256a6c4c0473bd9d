//! Backends from the Docker API: Swarm services selected by labels, and
//! their running tasks.
//!
//! * [`labels`]: what a service's labels ask for (pure).
//! * [`tasks`]: a service's tasks as backends (pure).

pub mod labels;
pub mod tasks;
