//! The routing table: services and their backends, published as an
//! immutable [`Table`] snapshot that the balancer swaps atomically. Requests
//! read it lock-free: [`Table::route`] finds a request's service, and each
//! [`Backend`] carries the runtime state ([`BackendState`]) that outlives
//! snapshots, so a reload or a Docker change keeps drain, health and
//! counters of the backends that stay.

use std::{
    collections::HashMap,
    net::{IpAddr, SocketAddr},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering},
    },
};

use crate::{
    services::{Limits, ServiceConfig, ServicesConfig},
    stats::{BackendStats, ServiceStats},
};

/// Runtime state of one backend, shared by all snapshots that contain it.
#[derive(Debug, Default)]
pub struct BackendState {
    /// No new sessions (admin drain, or a task Swarm is stopping).
    pub(crate) draining: AtomicBool,
    /// Consecutive connect failures.
    pub(crate) failures: AtomicU32,
    /// Milliseconds since the balancer's epoch; 0 = up.
    pub(crate) down_until: AtomicU64,
    /// Set by a failing active health check.
    pub(crate) unhealthy: AtomicBool,
    /// Request counters (admin API, metrics).
    pub stats: BackendStats,
}

/// A backend as seen by one snapshot.
#[derive(Debug)]
pub struct Backend {
    /// The identity the cookie names.
    pub name: String,
    /// Where to connect.
    pub addr: SocketAddr,
    /// SWRR weight.
    pub weight: u32,
    /// Network namespace to connect from (`None`: our own).
    pub via: Option<Arc<std::path::Path>>,
    /// The Swarm task behind it, when discovered.
    pub task: Option<crate::services::TaskInfo>,
    /// Why discovery holds it down, if it does (no sessions at all).
    pub down: Option<Arc<str>>,
    /// Runtime state (survives swaps).
    pub state: Arc<BackendState>,
}

/// A service in one snapshot.
#[derive(Debug)]
pub struct Service {
    /// Its configuration.
    pub config: ServiceConfig,
    /// Its backends, in configuration order.
    pub backends: Vec<Arc<Backend>>,
    /// SWRR current weights, one per backend (only new sessions take it).
    pub(crate) swrr: Mutex<Vec<i64>>,
    /// Request counters (survive swaps, like backend state).
    pub stats: Arc<ServiceStats>,
    /// Its `Strict-Transport-Security` value, built once with the table
    /// rather than for every response.
    pub hsts: Option<http::HeaderValue>,
}

/// Where a request goes: its service, and the rule's prefix it matched.
#[derive(Debug, Clone, Copy)]
pub struct Route<'a> {
    /// The service.
    pub service: &'a Arc<Service>,
    /// The path prefix of the service's rule that matched.
    pub prefix: &'a str,
}

/// One immutable snapshot of the routing table.
#[derive(Debug)]
pub struct Table {
    /// Services, in configuration order.
    pub services: Vec<Arc<Service>>,
    /// Peers whose forwarding headers are believed.
    pub trusted_proxies: Vec<IpAddr>,
    /// Proxy limits.
    pub limits: Limits,
}

/// Runtime state that outlives table snapshots, keyed by name.
#[derive(Debug, Default)]
pub(crate) struct States {
    /// Per (service, backend identity).
    pub(crate) backends: HashMap<(String, String), Arc<BackendState>>,
    /// Per service name.
    pub(crate) services: HashMap<String, Arc<ServiceStats>>,
}

impl Table {
    /// The service for a request to `host` (lower-case, no port) and
    /// `path` (as sent; normalised here), with the prefix that matched: the
    /// longest matching path prefix wins, and on a tie a rule with hosts
    /// beats one without.
    pub fn route(&self, host: Option<&str>, path: &str) -> Option<Route<'_>> {
        let path = crate::services::path::normalize(path);
        let path = path.as_ref();
        self.services
            .iter()
            .filter_map(|s| {
                s.config
                    .rule
                    .matched_prefix(host, path)
                    .map(|prefix| Route { service: s, prefix })
            })
            .max_by_key(|r| (r.prefix.len(), !r.service.config.rule.hosts.is_empty()))
    }

    /// Whether `ip` is a trusted proxy.
    pub fn is_trusted(&self, ip: IpAddr) -> bool {
        self.trusted_proxies.contains(&ip)
    }
}

impl Service {
    /// The backend with identity `name`.
    pub fn backend(&self, name: &str) -> Option<&Arc<Backend>> {
        self.backends.iter().find(|b| b.name == name)
    }

    /// Another backend in the same slot as the identity `name`
    /// (`<task>.<slot>`): the replacement of a task a rolling update took
    /// away. Only meaningful with [`ServiceConfig::slot_affinity`].
    pub fn backend_in_slot_of(&self, name: &str) -> Option<&Arc<Backend>> {
        let (_, slot) = name.rsplit_once('.')?;
        self.backends
            .iter()
            .find(|b| b.name != name && b.name.rsplit_once('.').is_some_and(|(_, s)| s == slot))
    }

    /// Whether `name` (`<task>.<slot>`) is of a slot whose next task is on
    /// its way (see [`crate::services::ServiceConfig::waiting_slots`]).
    pub fn is_waiting(&self, name: &str) -> bool {
        name.rsplit_once('.')
            .is_some_and(|(_, slot)| self.config.waiting_slots.iter().any(|w| w == slot))
    }

    /// The backend whose address is `addr` (Traefik v1 cookie migration).
    pub fn backend_by_addr(&self, addr: SocketAddr) -> Option<&Arc<Backend>> {
        self.backends.iter().find(|b| b.addr == addr)
    }

    /// Whether `b` is draining.
    pub fn is_draining(b: &Backend) -> bool {
        b.state.draining.load(Ordering::Relaxed)
    }
}

/// Builds a snapshot of `config`, taking each backend's and service's
/// runtime state from `states` (created there for new ones).
pub(crate) fn build(config: ServicesConfig, states: &mut States) -> Table {
    let services = config
        .services
        .into_iter()
        .map(|svc| {
            let backends: Vec<Arc<Backend>> = svc
                .backends
                .iter()
                .map(|b| {
                    let state = states
                        .backends
                        .entry((svc.name.clone(), b.name.clone()))
                        .or_default()
                        .clone();
                    Arc::new(Backend {
                        name: b.name.clone(),
                        addr: b.addr,
                        weight: b.weight,
                        via: b.via.as_deref().map(Arc::from),
                        task: b.task.clone(),
                        down: b.down.as_deref().map(Arc::from),
                        state,
                    })
                })
                .collect();
            let swrr = Mutex::new(vec![0; backends.len()]);
            let stats = states.services.entry(svc.name.clone()).or_default().clone();
            let hsts = svc.tls.hsts.as_ref().map(crate::services::Hsts::header_value);
            Arc::new(Service {
                config: svc,
                backends,
                swrr,
                stats,
                hsts,
            })
        })
        .collect();
    Table {
        services,
        trusted_proxies: config.trusted_proxies,
        limits: config.limits,
    }
}
