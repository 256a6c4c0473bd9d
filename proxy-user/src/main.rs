//! The `swarm-sticky` binary: parse, validate, run.
fn main() {}
