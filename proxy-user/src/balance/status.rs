//! A serializable view of the routing table and backend state, for the
//! admin API (`GET /services` and the dashboard).

use std::sync::atomic::Ordering;

use serde::Serialize;

use super::Balancer;

/// One service as the admin API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServiceStatus {
    /// Service name.
    pub name: String,
    /// Host rule, if any.
    pub host: Option<String>,
    /// Path prefix.
    pub path_prefix: String,
    /// Sticky cookie name.
    pub cookie: String,
    /// Backends in configuration order.
    pub backends: Vec<BackendStatus>,
}

/// One backend as the admin API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BackendStatus {
    /// Identity (the name the cookie carries).
    pub name: String,
    /// Address dialled.
    pub addr: String,
    /// SWRR weight.
    pub weight: u32,
    /// Draining: no new sessions, pinned ones still served.
    pub draining: bool,
    /// Last active health check passed (true without checks).
    pub healthy: bool,
    /// Milliseconds left of a passive-health back-off (0 = up).
    pub down_for_ms: u64,
    /// Consecutive connect failures so far.
    pub failures: u32,
    /// Whether it takes new sessions now.
    pub available: bool,
}

impl Balancer {
    /// The current table with live backend state.
    pub fn status(&self) -> Vec<ServiceStatus> {
        let table = self.table();
        table
            .services
            .iter()
            .map(|s| ServiceStatus {
                name: s.config.name.clone(),
                host: s.config.rule.host.clone(),
                path_prefix: s.config.rule.path_prefix.clone(),
                cookie: s.config.cookie.name.clone(),
                backends: s
                    .backends
                    .iter()
                    .map(|b| BackendStatus {
                        name: b.name.clone(),
                        addr: b.addr.to_string(),
                        weight: b.weight,
                        draining: b.state.draining.load(Ordering::Relaxed),
                        healthy: !b.state.unhealthy.load(Ordering::Relaxed),
                        down_for_ms: self
                            .down_for(b)
                            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
                        failures: b.state.failures.load(Ordering::Relaxed),
                        available: self.is_available(b),
                    })
                    .collect(),
            })
            .collect()
    }
}
