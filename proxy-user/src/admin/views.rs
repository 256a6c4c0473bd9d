//! The read-only views of the admin API: `/api/status`, `/api/services`,
//! `/api/discovery`, and the [`Scrape`] behind `/metrics`.

use std::{net::SocketAddr, sync::atomic::Ordering};

use serde::Serialize;

use super::AdminState;
use crate::{balance::ServiceStatus, metrics::Scrape};

/// A label or configuration warning about one service.
#[derive(Serialize)]
pub(super) struct Warning {
    service: String,
    warning: String,
}

/// `/api/discovery`.
#[derive(Serialize)]
pub(super) struct DiscoveryView {
    #[serde(flatten)]
    status: crate::discovery::watch::DiscoveryStatus,
    /// Seconds since the table in force was last confirmed by the engine.
    table_age_secs: Option<f64>,
    warnings: Vec<Warning>,
}

pub(super) fn discovery(state: &AdminState) -> Option<DiscoveryView> {
    let sources = state.sources.as_ref()?;
    let status = sources
        .discovery
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    let warnings = sources
        .warnings
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .iter()
        .map(|(service, warning)| Warning {
            service: service.clone(),
            warning: warning.clone(),
        })
        .collect();
    Some(DiscoveryView {
        table_age_secs: status.table_age().map(|d| d.as_secs_f64()),
        status,
        warnings,
    })
}

#[derive(Serialize)]
struct WorkerView {
    index: usize,
    accepted: u64,
    open: u64,
}

/// What the admin API allows, so the dashboard can say so.
#[derive(Serialize)]
struct AccessView {
    /// Write actions (drain, undrain, reload) are enabled.
    writes: bool,
}

/// `/api/status`.
#[derive(Serialize)]
pub(super) struct Status {
    pid: u32,
    version: &'static str,
    uptime_secs: u64,
    listen: Vec<SocketAddr>,
    workers: Vec<WorkerView>,
    dataplane: crate::dataplane::DataplaneStatus,
    services: Vec<ServiceStatus>,
    /// Requests no service's rule matched.
    unrouted: u64,
    discovery: Option<DiscoveryView>,
    access: AccessView,
}

fn dataplane(state: &AdminState) -> (Vec<SocketAddr>, crate::dataplane::DataplaneStatus) {
    let dp = state
        .dataplane
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    (dp.listen.clone(), dp.status())
}

pub(super) fn services(state: &AdminState) -> Vec<ServiceStatus> {
    state.balancer.as_ref().map(|b| b.status()).unwrap_or_default()
}

pub(super) fn status(state: &AdminState) -> Status {
    let (listen, dataplane) = dataplane(state);
    Status {
        pid: std::process::id(),
        version: env!("CARGO_PKG_VERSION"),
        uptime_secs: state.started.elapsed().as_secs(),
        listen,
        workers: state
            .workers
            .iter()
            .enumerate()
            .map(|(index, w)| WorkerView {
                index,
                accepted: w.accepted.load(Ordering::Relaxed),
                open: w.open.load(Ordering::Relaxed),
            })
            .collect(),
        dataplane,
        services: services(state),
        unrouted: state.balancer.as_ref().map_or(0, |b| b.unrouted.total()),
        discovery: discovery(state),
        access: AccessView {
            writes: state.access.token.is_some(),
        },
    }
}

/// Every value `/metrics` reports, copied now.
pub(super) fn scrape(state: &AdminState) -> Scrape {
    let (_, dataplane) = dataplane(state);
    let latency = state.balancer.as_ref().map_or_else(Vec::new, |b| {
        b.table()
            .services
            .iter()
            .map(|s| (s.config.name.clone(), s.stats.latency.snapshot()))
            .collect()
    });
    Scrape {
        services: services(state),
        latency,
        unrouted: state
            .balancer
            .as_ref()
            .map_or_else(Vec::new, |b| b.unrouted.nonzero().collect()),
        workers: state
            .workers
            .iter()
            .map(|w| (w.accepted.load(Ordering::Relaxed), w.open.load(Ordering::Relaxed)))
            .collect(),
        dataplane,
        discovery: discovery(state).map(|d| (d.status.connected, d.table_age_secs, d.warnings.len())),
    }
}

/// Every request counted so far (the dashboard's rate is its derivative).
pub(super) fn total_requests(state: &AdminState) -> u64 {
    let Some(b) = &state.balancer else { return 0 };
    let table = b.table();
    let relayed: u64 = table
        .services
        .iter()
        .flat_map(|s| s.backends.iter())
        .map(|b| b.state.stats.responses.total())
        .sum();
    let local: u64 = table.services.iter().map(|s| s.stats.local_responses.total()).sum();
    relayed + local + b.unrouted.total()
}
