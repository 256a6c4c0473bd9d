//! A serializable view of the routing table, each backend's state and the
//! counters, for the admin API (`/api/services`, `/api/status`, the
//! dashboard) and `/metrics`.

use std::{collections::BTreeMap, sync::atomic::Ordering};

use serde::Serialize;

use crate::{
    balance::Balancer,
    routing::Backend,
    sticky::{Decision, RejectReason},
};

/// One service as the admin API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServiceStatus {
    /// Service name.
    pub name: String,
    /// The rule, in Traefik v1's words (`Host:a PathPrefix:/x`).
    pub rule: String,
    /// Host names of the rule (empty: any host).
    pub hosts: Vec<String>,
    /// Path prefixes of the rule.
    pub path_prefixes: Vec<String>,
    /// Whether the matched prefix is stripped before forwarding.
    pub strip_prefix: bool,
    /// Sticky cookie name.
    pub cookie: String,
    /// Backends in configuration order.
    pub backends: Vec<BackendStatus>,
    /// Requests routed to this service (relayed and answered locally).
    pub requests: u64,
    /// Sticky decisions by kind (hit, new, failover, migrated, rejected).
    pub decisions: BTreeMap<&'static str, u64>,
    /// Rejected cookies by reason.
    pub rejected: BTreeMap<&'static str, u64>,
    /// Answers given by the proxy itself (502/503), by status.
    pub local_responses: BTreeMap<u16, u64>,
}

/// One backend as the admin API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BackendStatus {
    /// Identity (the name the cookie carries).
    pub name: String,
    /// Address dialled.
    pub addr: String,
    /// The Swarm task, container and node behind it, when discovered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task: Option<crate::services::TaskInfo>,
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
    /// One word for all of the above: `down` (passive back-off, a failed
    /// health check, or held down by discovery), `draining`, `failing`
    /// (connect failures, not yet down) or `healthy`.
    pub state: &'static str,
    /// Why it is down, when discovery holds it down (`its node node3 is
    /// down`, `its container's HEALTHCHECK is not healthy`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Responses relayed from it.
    pub requests: u64,
    /// Responses by status.
    pub responses: BTreeMap<u16, u64>,
    /// New sessions started on it.
    pub sessions: u64,
    /// Requests its cookie brought back to it.
    pub sticky_hits: u64,
    /// Requests that had to leave it.
    pub failovers: u64,
    /// Requests it took and did not answer within the response timeout.
    pub timeouts: u64,
    /// Bytes client → backend on upgraded connections that ended.
    pub tunnel_bytes_up: u64,
    /// Bytes backend → client on upgraded connections that ended.
    pub tunnel_bytes_down: u64,
}

/// The current table of `balancer` with live backend state and counters.
pub fn services(balancer: &Balancer) -> Vec<ServiceStatus> {
    let table = balancer.table();
    table
        .services
        .iter()
        .map(|s| {
            let backends: Vec<BackendStatus> = s.backends.iter().map(|b| backend(balancer, b)).collect();
            let stats = &s.stats;
            ServiceStatus {
                name: s.config.name.clone(),
                rule: s.config.rule.to_string(),
                hosts: s.config.rule.hosts.clone(),
                path_prefixes: s.config.rule.path_prefixes.clone(),
                strip_prefix: s.config.rule.strip_prefix,
                cookie: s.config.cookie.name.clone(),
                requests: backends.iter().map(|b| b.requests).sum::<u64>() + stats.local_responses.total(),
                decisions: Decision::ALL
                    .iter()
                    .map(|d| (d.as_str(), stats.decisions.get(d.index())))
                    .collect(),
                rejected: RejectReason::ALL
                    .iter()
                    .map(|r| (r.as_str(), stats.rejected.get(r.index())))
                    .collect(),
                local_responses: stats.local_responses.nonzero().collect(),
                backends,
            }
        })
        .collect()
}

/// One backend's live state and counters.
fn backend(balancer: &Balancer, b: &Backend) -> BackendStatus {
    // Drained by the admin API, or given weight 0 (discovery's mark for a
    // task Swarm is stopping): no new sessions either way.
    let draining = b.state.draining.load(Ordering::Relaxed) || b.weight == 0;
    let healthy = !b.state.unhealthy.load(Ordering::Relaxed);
    let down_for = balancer.down_for(b);
    let failures = b.state.failures.load(Ordering::Relaxed);
    let state = if down_for.is_some() || !healthy || b.down.is_some() {
        "down"
    } else if draining {
        "draining"
    } else if failures > 0 {
        "failing"
    } else {
        "healthy"
    };
    let st = &b.state.stats;
    BackendStatus {
        name: b.name.clone(),
        addr: b.addr.to_string(),
        task: b.task.clone(),
        weight: b.weight,
        draining,
        healthy,
        down_for_ms: down_for.map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
        failures,
        available: balancer.is_available(b),
        state,
        reason: b.down.as_deref().map(str::to_owned),
        requests: st.responses.total(),
        responses: st.responses.nonzero().collect(),
        sessions: st.sessions.load(Ordering::Relaxed),
        sticky_hits: st.sticky_hits.load(Ordering::Relaxed),
        failovers: st.failovers.load(Ordering::Relaxed),
        timeouts: st.timeouts.load(Ordering::Relaxed),
        tunnel_bytes_up: st.tunnel_bytes_up.load(Ordering::Relaxed),
        tunnel_bytes_down: st.tunnel_bytes_down.load(Ordering::Relaxed),
    }
}
