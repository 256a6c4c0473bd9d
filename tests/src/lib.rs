//! Integration tests for swarm-sticky.
//!
//! * unprivileged end-to-end tests of the L7 proxy, run by a plain
//!   `cargo test`: `l7`.
//!
//! The harness shared by the tiers is in [`harness`].

pub mod harness;

#[cfg(test)]
mod l7;
