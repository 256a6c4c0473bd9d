//! Integration tests for swarm-sticky, in three tiers (see `README.md`):
//!
//! * unprivileged end-to-end tests of the L7 proxy, run by a plain
//!   `cargo test`: `l7`, and the dashboard in headless Chromium:
//!   `dashboard`;
//! * privileged tests (`#[ignore]`d; root, one fresh network namespace
//!   each) for the eBPF data path: `l4`;
//! * tests against a real Docker engine in swarm mode: `swarm`, and on a
//!   real multi-node swarm of daemons in namespaces: `multinode`.
//!
//! `cargo xtask test` runs all of them; the harness shared by the tiers is
//! in [`harness`].

pub mod harness;

#[cfg(test)]
mod dashboard;
#[cfg(test)]
mod l4;
#[cfg(test)]
mod l7;
#[cfg(test)]
mod multinode;
#[cfg(test)]
mod packaging;
#[cfg(test)]
mod swarm;
#[cfg(test)]
mod tls;
