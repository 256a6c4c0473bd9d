//! swarm-sticky integration tests.
//!
//! # Layout
//!
//! * [`harness`]: in-process backends and proxies on 127.0.0.1:0.
//! * `l7`: unprivileged end-to-end tests of the HTTP sticky proxy.

#[cfg(test)]
pub mod harness;
#[cfg(test)]
mod l7;
