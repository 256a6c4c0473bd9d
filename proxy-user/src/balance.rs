//! The balancer: it holds the current routing [`Table`] (swapped
//! atomically with arc-swap when services change: SIGHUP, the admin reload,
//! Docker discovery) and decides, per backend, whether it may take new
//! sessions and pinned ones.
//!
//! Backend runtime state (draining, passive failures, down-until, active
//! health; see [`crate::routing::BackendState`]) is keyed by (service,
//! identity) and carried over by every swap, so a reload keeps it. New
//! sessions are spread by smooth weighted round robin over healthy,
//! non-draining backends. The active health checker is `balance/health.rs`.

mod health;

use std::{
    sync::{Arc, Mutex, atomic::Ordering},
    time::{Duration, Instant},
};

use arc_swap::ArcSwap;

pub use self::health::spawn_health_checks;
use crate::{
    routing::{Backend, Service, States, Table, build},
    services::ServicesConfig,
};

/// The balancer: the current [`Table`] plus backend runtime state.
#[derive(Debug)]
pub struct Balancer {
    table: ArcSwap<Table>,
    states: Mutex<States>,
    epoch: Instant,
    /// Requests no service's rule matched (answered 503), by status.
    pub unrouted: crate::stats::StatusCounts,
}

/// Why `set_draining` did nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BalanceError {
    /// No such service.
    #[error("no service {0:?}")]
    UnknownService(String),
    /// No such backend in the service.
    #[error("service {service:?} has no backend {backend:?}")]
    UnknownBackend {
        /// The service.
        service: String,
        /// The backend.
        backend: String,
    },
}

impl Balancer {
    /// A balancer publishing `config`.
    pub fn new(config: ServicesConfig) -> Self {
        let states = Mutex::new(States::default());
        let table = build(config, &mut lock(&states));
        Self {
            table: ArcSwap::from_pointee(table),
            states,
            epoch: Instant::now(),
            unrouted: crate::stats::StatusCounts::default(),
        }
    }

    /// The current snapshot (lock-free).
    pub fn table(&self) -> Arc<Table> {
        self.table.load_full()
    }

    /// Publishes a new configuration; state of backends that stay (same
    /// service and identity) is kept, that of removed ones is dropped.
    pub fn replace(&self, config: ServicesConfig) {
        let mut states = lock(&self.states);
        let table = build(config, &mut states);
        let kept: std::collections::HashSet<(&str, &str)> = table
            .services
            .iter()
            .flat_map(|s| s.backends.iter().map(|b| (s.config.name.as_str(), b.name.as_str())))
            .collect();
        states
            .backends
            .retain(|(s, b), _| kept.contains(&(s.as_str(), b.as_str())));
        states
            .services
            .retain(|name, _| table.services.iter().any(|s| s.config.name == *name));
        self.table.store(Arc::new(table));
        drop(states);
    }

    /// Marks a backend draining (no new sessions; pinned ones stay) or not.
    ///
    /// # Errors
    /// When the service or backend is not in the current table.
    pub fn set_draining(&self, service: &str, backend: &str, draining: bool) -> Result<(), BalanceError> {
        let table = self.table();
        let svc = table
            .services
            .iter()
            .find(|s| s.config.name == service)
            .ok_or_else(|| BalanceError::UnknownService(service.to_owned()))?;
        let b = svc.backend(backend).ok_or_else(|| BalanceError::UnknownBackend {
            service: service.to_owned(),
            backend: backend.to_owned(),
        })?;
        b.state.draining.store(draining, Ordering::Relaxed);
        tracing::info!(service, backend, draining, "backend drain state changed");
        Ok(())
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis())
            .unwrap_or(u64::MAX)
            .max(1)
    }

    /// Whether `b` may take new sessions now.
    pub fn is_available(&self, b: &Backend) -> bool {
        Self::is_available_at(b, self.now_ms())
    }

    fn is_available_at(b: &Backend, now_ms: u64) -> bool {
        b.weight > 0 && !b.state.draining.load(Ordering::Relaxed) && Self::is_up_at(b, now_ms)
    }

    /// Whether `b` may keep serving sessions pinned to it (draining is fine).
    pub fn is_up(&self, b: &Backend) -> bool {
        Self::is_up_at(b, self.now_ms())
    }

    fn is_up_at(b: &Backend, now_ms: u64) -> bool {
        // Down-until is checked first: it is 0 (up) almost always.
        b.state.down_until.load(Ordering::Relaxed) <= now_ms
            && !b.state.unhealthy.load(Ordering::Relaxed)
            && b.down.is_none()
    }

    /// Picks a backend for a new session by smooth weighted round robin
    /// over available backends, skipping `exclude`.
    pub fn pick(&self, svc: &Service, exclude: &[&str]) -> Option<Arc<Backend>> {
        let now = self.now_ms();
        let mut current = lock(&svc.swrr);
        let mut total = 0i64;
        let mut best: Option<usize> = None;
        for (i, b) in svc.backends.iter().enumerate() {
            if !Self::is_available_at(b, now) || exclude.contains(&b.name.as_str()) {
                continue;
            }
            let w = i64::from(b.weight);
            current[i] += w;
            total += w;
            if best.is_none_or(|j| current[i] > current[j]) {
                best = Some(i);
            }
        }
        let i = best?;
        current[i] -= total;
        Some(svc.backends[i].clone())
    }

    /// Passive health: one more connect failure; `failures` in a row take
    /// the backend down for the service's back-off.
    pub fn record_failure(&self, svc: &Service, b: &Backend) {
        let n = b.state.failures.fetch_add(1, Ordering::Relaxed) + 1;
        if n >= svc.config.passive.failures {
            let backoff = u64::try_from(svc.config.passive.backoff.as_millis()).unwrap_or(u64::MAX);
            b.state
                .down_until
                .store(self.now_ms().saturating_add(backoff), Ordering::Relaxed);
            b.state.failures.store(0, Ordering::Relaxed);
            tracing::warn!(service = %svc.config.name, backend = %b.name, addr = %b.addr, backoff = ?svc.config.passive.backoff, "backend down after connect failures");
        }
    }

    /// Passive health: a successful connect resets the failure count.
    pub fn record_success(&self, b: &Backend) {
        if b.state.failures.load(Ordering::Relaxed) != 0 {
            b.state.failures.store(0, Ordering::Relaxed);
        }
    }

    /// Active health: sets the result of the last check.
    pub fn set_healthy(&self, b: &Backend, healthy: bool) {
        let was = !b.state.unhealthy.swap(!healthy, Ordering::Relaxed);
        if was != healthy {
            tracing::info!(backend = %b.name, addr = %b.addr, healthy, "backend health changed");
        }
    }

    /// How long until a down backend is retried (for the admin API).
    pub fn down_for(&self, b: &Backend) -> Option<Duration> {
        let until = b.state.down_until.load(Ordering::Relaxed);
        let now = self.now_ms();
        (until > now).then(|| Duration::from_millis(until - now))
    }
}

/// Locks a mutex, ignoring poisoning: the guarded data stays consistent
/// (plain numbers and maps), and the request path must not panic.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests;
