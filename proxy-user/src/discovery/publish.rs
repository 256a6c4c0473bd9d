//! What discovery hands on: the service configurations of the current
//! Docker table and the warnings about them, sent through a `watch`
//! channel whenever the table changes (and once more after a resync while
//! a warning may clear by itself, such as a task whose overlay namespace
//! does not exist yet).

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio::sync::watch;
use tracing::{info, warn};

use super::{DiscoveryStatus, DockerConfig, Warning, anchor, table::Snapshot, to_services};
use crate::services::ServiceConfig;

/// The services discovered now, and what is wrong with them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Discovered {
    /// Served services, checked as configured ones are.
    pub services: Vec<ServiceConfig>,
    /// Warnings, in the order found.
    pub warnings: Vec<Warning>,
}

/// Follows the Docker API of `cfg` on the current runtime: the watcher
/// (its state in `status`), this node's anchors, and the mapping of each
/// table to services. Returns the receiving end of what it publishes.
pub fn follow(cfg: DockerConfig, status: Arc<Mutex<DiscoveryStatus>>) -> watch::Receiver<Arc<Discovered>> {
    let (tables_tx, tables) = watch::channel(Arc::new(Snapshot::default()));
    let (tx, rx) = watch::channel(Arc::new(Discovered::default()));
    tokio::spawn(super::watch::run(cfg.host.clone(), cfg.resync, tables_tx, status));
    tokio::spawn(anchor::maintain(cfg.clone(), tables.clone()));
    tokio::spawn(map_tables(cfg, tables, tx));
    tokio::spawn(revalidate_namespaces());
    rx
}

/// How often the namespaces that upstream connections were made in are
/// checked: a request on a connection whose namespace Docker removed fails
/// (and an idempotent one is sent again) within about this long.
const NAMESPACE_CHECK: Duration = Duration::from_secs(1);

/// Closes the connections of overlay namespaces that Docker removed or
/// re-created (see [`crate::netns`]), every [`NAMESPACE_CHECK`].
async fn revalidate_namespaces() {
    let mut tick = tokio::time::interval(NAMESPACE_CHECK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        crate::netns::shared().revalidate();
    }
}

/// Maps every new table to services until the watcher is gone.
async fn map_tables(cfg: DockerConfig, mut tables: watch::Receiver<Arc<Snapshot>>, tx: watch::Sender<Arc<Discovered>>) {
    let mut last: Vec<Warning> = Vec::new();
    loop {
        // A task whose overlay namespace is missing becomes reachable
        // without the table changing: look again after a resync period.
        let retry = last.iter().any(Warning::clears_by_itself);
        tokio::select! {
            changed = tables.changed() => if changed.is_err() { return },
            () = tokio::time::sleep(cfg.resync), if retry => {}
        }
        let snapshot = tables.borrow_and_update().clone();
        let (services, mut warnings) =
            to_services::services(&snapshot, |id| to_services::overlay_netns(&cfg.netns_dir, id));
        warnings.extend(snapshot.warnings.iter().cloned());
        if warnings != last {
            for w in warnings.iter().filter(|w| !last.contains(w)) {
                warn!(service = %w.service(), "{w}");
            }
        }
        let backends: usize = services.iter().map(|s| s.backends.len()).sum();
        info!(services = services.len(), backends, "discovered table published");
        last.clone_from(&warnings);
        if tx.send(Arc::new(Discovered { services, warnings })).is_err() {
            return;
        }
    }
}
