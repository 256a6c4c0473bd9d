//! Shared test fixtures. L7: whoami and special-purpose backends
//! ([`backend`]) and a proxy on real workers with hyper clients ([`proxy`]),
//! all in process on loopback ephemeral ports.

#[cfg(test)]
pub mod backend;
#[cfg(test)]
pub mod proxy;
