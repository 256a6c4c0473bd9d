//! Where the balancer's services come from, merged: the static ones
//! (`--backend`, `--config`; re-read on SIGHUP and the admin reload) and
//! those [`crate::discovery`] publishes. Either changing hands the union to
//! the balancer. A discovered service that would take the name, cookie or
//! rule of a configured service (or of a discovered one before it) is left
//! out with a warning: the configured one wins.

use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::watch;
use tracing::info;

use crate::{
    balance::Balancer,
    discovery::{Discovered, Warning},
    services::{Claims, ServicesConfig},
};

/// The two sources and the balancer they feed.
pub struct Sources {
    balancer: Arc<Balancer>,
    base: Mutex<ServicesConfig>,
    discovered: Mutex<Arc<Discovered>>,
    /// Warnings of the last merge (discovery's and the merge's own).
    warnings: Mutex<Vec<Warning>>,
}

impl Sources {
    /// Sources feeding `balancer`, starting with the static services `base`.
    pub fn new(balancer: Arc<Balancer>, base: ServicesConfig) -> Arc<Self> {
        Arc::new(Self {
            balancer,
            base: Mutex::new(base),
            discovered: Mutex::default(),
            warnings: Mutex::default(),
        })
    }

    /// Replaces the static services (SIGHUP) and publishes.
    pub fn set_static(&self, base: ServicesConfig) {
        *self.base.lock().unwrap_or_else(PoisonError::into_inner) = base;
        self.publish();
        info!("services reloaded");
    }

    /// Replaces the discovered services and publishes.
    pub fn set_discovered(&self, discovered: Arc<Discovered>) {
        *self.discovered.lock().unwrap_or_else(PoisonError::into_inner) = discovered;
        self.publish();
    }

    /// Takes every table discovery publishes on `rx` until it stops.
    pub async fn follow(self: Arc<Self>, mut rx: watch::Receiver<Arc<Discovered>>) {
        while rx.changed().await.is_ok() {
            let discovered = rx.borrow_and_update().clone();
            self.set_discovered(discovered);
        }
    }

    /// The warnings about discovered services now.
    pub fn warnings(&self) -> Vec<Warning> {
        self.warnings.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    fn publish(&self) {
        let mut cfg = self.base.lock().unwrap_or_else(PoisonError::into_inner).clone();
        let discovered = self.discovered.lock().unwrap_or_else(PoisonError::into_inner).clone();
        let before = self.warnings();
        let mut warnings = discovered.warnings.clone();
        let mut claims = Claims::default();
        for svc in &cfg.services {
            // The static services were checked together already.
            let _ = claims.claim(|f| f.to_owned(), svc);
        }
        for svc in &discovered.services {
            match claims.claim(|f| format!("labels: {f}"), svc) {
                Ok(()) => cfg.services.push(svc.clone()),
                Err(err) => {
                    let w = Warning::NotServed {
                        service: svc.name.clone(),
                        reason: err.to_string(),
                    };
                    if !before.contains(&w) {
                        tracing::warn!(service = %svc.name, "{w}");
                    }
                    warnings.push(w);
                }
            }
        }
        self.balancer.replace(cfg);
        *self.warnings.lock().unwrap_or_else(PoisonError::into_inner) = warnings;
    }
}
