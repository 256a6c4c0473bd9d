//! Where the proxy's services come from, combined: the static ones
//! (`--backend`, `--config`; re-read on SIGHUP) and the ones discovered from
//! the Docker API. Either source changing publishes the union to the proxy.

use std::{
    collections::BTreeSet,
    path::PathBuf,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use tokio::sync::watch;
use tracing::{info, warn};

use crate::{
    discovery::{
        table,
        watch::{DiscoveryStatus, Snapshot},
    },
    proxy::Proxy,
    services::{ServiceConfig, ServicesConfig},
};

/// The two sources and the proxy they feed.
pub struct Sources {
    proxy: Arc<Proxy>,
    base: Mutex<ServicesConfig>,
    discovered: Mutex<Vec<ServiceConfig>>,
    /// Warnings of the last discovered table (label and reach problems).
    pub warnings: Mutex<Vec<(String, String)>>,
    /// State of the Docker watcher.
    pub discovery: Arc<Mutex<DiscoveryStatus>>,
}

impl Sources {
    /// Sources that start with the static services `base`.
    pub fn new(proxy: Arc<Proxy>, base: ServicesConfig) -> Arc<Self> {
        Arc::new(Self {
            proxy,
            base: Mutex::new(base),
            discovered: Mutex::new(Vec::new()),
            warnings: Mutex::new(Vec::new()),
            discovery: Arc::default(),
        })
    }

    /// Replaces the static services (SIGHUP) and publishes.
    pub fn set_base(&self, base: ServicesConfig) {
        *self.base.lock().unwrap_or_else(PoisonError::into_inner) = base;
        self.publish();
    }

    fn publish(&self) {
        let mut cfg = self.base.lock().unwrap_or_else(PoisonError::into_inner).clone();
        let names: BTreeSet<String> = cfg.services.iter().map(|s| s.name.clone()).collect();
        for s in self.discovered.lock().unwrap_or_else(PoisonError::into_inner).iter() {
            if names.contains(&s.name) {
                warn!(service = %s.name, "a discovered service has the name of a configured one; the configured one wins");
                continue;
            }
            cfg.services.push(s.clone());
        }
        self.proxy.reload(cfg);
    }

    /// Follows the Docker API at `host` until the task is dropped; the
    /// engine's network namespaces are in `netns_dir`. Also keeps this
    /// node's anchors (see [`crate::discovery::anchor`]).
    pub async fn follow_docker(self: Arc<Self>, host: String, resync: Duration, netns_dir: PathBuf) {
        let (tx, mut rx) = watch::channel(Arc::new(Snapshot::default()));
        tokio::spawn(crate::discovery::watch::run(
            host.clone(),
            resync,
            tx,
            self.discovery.clone(),
        ));
        tokio::spawn(crate::discovery::anchor::maintain(
            host,
            netns_dir.clone(),
            rx.clone(),
            resync,
        ));
        let mut last_warnings = Vec::new();
        loop {
            // A task whose overlay namespace is missing becomes reachable
            // without the table changing: look again after a resync period.
            let retry = last_warnings
                .iter()
                .any(|(_, w): &(String, String)| w.contains("no namespace"));
            tokio::select! {
                changed = rx.changed() => if changed.is_err() { return },
                () = tokio::time::sleep(resync), if retry => {}
            }
            let snapshot = rx.borrow_and_update().clone();
            let (services, mut warnings) = table::services(&snapshot, |id| table::overlay_netns(&netns_dir, id));
            for (svc, ws) in &snapshot.warnings {
                warnings.extend(ws.iter().map(|w| (svc.clone(), w.clone())));
            }
            if warnings != last_warnings {
                for (svc, w) in &warnings {
                    warn!(service = %svc, "{w}");
                }
            }
            let backends: usize = services.iter().map(|s| s.backends.len()).sum();
            info!(services = services.len(), backends, "discovered table published");
            *self.discovered.lock().unwrap_or_else(PoisonError::into_inner) = services;
            self.warnings
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone_from(&warnings);
            last_warnings = warnings;
            self.publish();
        }
    }
}
