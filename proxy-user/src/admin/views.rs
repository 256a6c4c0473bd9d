//! The read-only views of the admin API: `/api/status`, `/api/services`,
//! `/api/discovery`, and the [`Scrape`] behind `/metrics`.

use std::{net::SocketAddr, sync::atomic::Ordering};

use serde::Serialize;

use super::{AdminState, Parts};
use crate::{
    acme::ManagedStatus,
    balance::Balancer,
    discovery::{DiscoveryStatus, Warning},
    metrics::Scrape,
    status::ServiceStatus,
    tls::{CertStatus, TlsCounts},
};

/// A warning about one service, as the API shows it.
#[derive(Serialize)]
pub(super) struct WarningView {
    service: String,
    /// What kind of problem (`label`, `skipped`, `no_namespace`, …).
    kind: &'static str,
    warning: String,
}

impl From<&Warning> for WarningView {
    fn from(w: &Warning) -> Self {
        Self {
            service: w.service().to_owned(),
            kind: w.kind(),
            warning: w.to_string(),
        }
    }
}

/// `/api/discovery`.
#[derive(Serialize)]
pub(super) struct DiscoveryView {
    #[serde(flatten)]
    status: DiscoveryStatus,
    /// Seconds since the table in force was last confirmed by the engine.
    table_age_secs: Option<f64>,
    warnings: Vec<WarningView>,
}

pub(super) fn discovery(parts: &Parts) -> Option<DiscoveryView> {
    let status = parts
        .discovery
        .as_ref()?
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    let warnings = parts.sources.warnings().iter().map(WarningView::from).collect();
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
    /// This process as the `swarm-sticky-instance` header names it (PID
    /// namespace/pid): which of two overlapping instances answered.
    instance: &'static str,
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
    /// The listeners as `--listen` spells them (`https://0.0.0.0:443`).
    listeners: Vec<String>,
    /// Certificates and handshakes, with an HTTPS listener.
    tls: Option<TlsView>,
}

/// The `tls` part of `/api/status`.
#[derive(Serialize)]
pub(super) struct TlsView {
    /// Every certificate source: names, issuer, expiry, last error.
    certificates: Vec<CertStatus>,
    /// Handshakes completed and failed.
    handshakes: TlsCounts,
    /// The certificates ACME manages, when it is on.
    #[serde(skip_serializing_if = "Option::is_none")]
    acme: Option<Vec<ManagedStatus>>,
}

fn tls(parts: &Parts) -> Option<TlsView> {
    let tls = parts.tls.as_ref()?;
    Some(TlsView {
        certificates: tls.status(),
        handshakes: tls.stats.counts(),
        acme: parts.acme.as_ref().map(|a| a.status()),
    })
}

fn dataplane(parts: &Parts) -> (Vec<SocketAddr>, crate::dataplane::DataplaneStatus) {
    let dp = parts
        .dataplane
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    (dp.listen.clone(), dp.status())
}

pub(super) fn status(state: &AdminState, parts: &Parts) -> Status {
    let (listen, dataplane) = dataplane(parts);
    Status {
        pid: std::process::id(),
        instance: crate::instance::instance(),
        version: env!("CARGO_PKG_VERSION"),
        uptime_secs: state.started.elapsed().as_secs(),
        listen,
        workers: parts
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
        services: crate::status::services(&parts.balancer),
        unrouted: parts.balancer.unrouted.total(),
        discovery: discovery(parts),
        access: AccessView {
            writes: state.access.token.is_some(),
        },
        listeners: parts.listeners.iter().map(ToString::to_string).collect(),
        tls: tls(parts),
    }
}

/// Every value `/metrics` reports, copied now.
pub(super) fn scrape(parts: &Parts) -> Scrape {
    let (_, dataplane) = dataplane(parts);
    let latency = parts
        .balancer
        .table()
        .services
        .iter()
        .map(|s| (s.config.name.clone(), s.stats.latency.snapshot()))
        .collect();
    Scrape {
        services: crate::status::services(&parts.balancer),
        latency,
        unrouted: parts.balancer.unrouted.nonzero().collect(),
        workers: parts
            .workers
            .iter()
            .map(|w| (w.accepted.load(Ordering::Relaxed), w.open.load(Ordering::Relaxed)))
            .collect(),
        dataplane,
        discovery: discovery(parts).map(|d| (d.status.connected, d.table_age_secs, d.warnings.len())),
        tls: tls(parts).map(|t| (t.handshakes, t.certificates)),
        acme: parts.acme.as_ref().map(|a| {
            let (issued, failed) = a.counts();
            (issued, failed, a.status())
        }),
    }
}

/// Every request counted so far (the dashboard's rate is its derivative).
pub(super) fn total_requests(b: &Balancer) -> u64 {
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
