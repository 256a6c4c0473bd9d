//! Tests against a real Docker engine in swarm mode (root; `cargo xtask
//! test` provides the engine and the static test binary). Each test makes
//! its own overlay network and services and removes them again.

mod anchor;
mod changes;
mod daemon;
mod discovery;
mod health;
mod rotation;
mod tutorial;
