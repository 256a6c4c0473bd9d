//! Integration tests for swarm-sticky, in three tiers (see `README.md`):
//!
//! * unprivileged end-to-end tests of the L7 proxy, run by a plain
//!   `cargo test`: `l7`;
//! * privileged tests (`#[ignore]`d; root, one fresh network namespace
//!   each) for the eBPF data path: `l4`;
//! * tests against a real Docker Swarm engine.
//!
//! `cargo xtask test` runs all of them; the harness shared by the tiers is
//! in [`harness`].

pub mod harness;

#[cfg(test)]
mod l4;
#[cfg(test)]
mod l7;
