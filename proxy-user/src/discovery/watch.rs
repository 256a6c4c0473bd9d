//! Watching the engine: a debounced re-list on every event, a periodic
//! full resync as the safety net, and reconnects with back-off.
//!
//! Swarm sends no task events, so any service, container, network or node
//! event triggers a re-list of services and tasks. Each new table is
//! compared with the previous one and published (atomically, through a
//! `watch` channel) only when it differs. When the engine goes away the
//! last table stays in force; the state changes are logged once each, and
//! the table's age is exported in [`DiscoveryStatus`].

use std::{
    collections::BTreeSet,
    sync::{Arc, Mutex},
    time::{Duration, Instant, SystemTime},
};

use futures_util::StreamExt as _;
use tokio::sync::watch;
use tracing::{info, warn};

use super::{
    Warning,
    engine::{Engine, EngineError, ServiceInfo},
    labels::{self, ServiceLabels, Skip},
    tasks::{self, Task, TaskBackend, TaskState},
};

/// Events that arrive within this window are served by one re-list.
const DEBOUNCE: Duration = Duration::from_millis(100);
/// Reconnect back-off bounds.
const BACKOFF_MIN: Duration = Duration::from_millis(200);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// A Swarm service that swarm-sticky serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiscoveredService {
    /// Service ID.
    pub id: String,
    /// Service name.
    pub name: String,
    /// What its labels ask for.
    pub labels: ServiceLabels,
    /// Its serving and draining tasks.
    pub backends: Vec<TaskBackend>,
    /// IDs of the networks its tasks attach to.
    pub networks: Vec<String>,
}

/// One discovered table.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Snapshot {
    /// Served services, by name.
    pub services: Vec<DiscoveredService>,
    /// Label problems and services that cannot be served.
    pub warnings: Vec<Warning>,
}

/// Builds the table from one listing (pure). `unhealthy` holds the tasks
/// whose container on this node fails (or has not yet passed) its Docker
/// HEALTHCHECK: they become [`TaskState::Unhealthy`]. Swarm itself keeps a
/// task with a HEALTHCHECK in `starting` until its first healthy report,
/// and fails it about 2 s after it turns unhealthy (the gossip delay before
/// the container is stopped); this closes that window for local tasks.
pub fn build(services: &[ServiceInfo], all_tasks: &[Task], unhealthy: &BTreeSet<String>) -> Snapshot {
    let mut out = Snapshot::default();
    for s in services {
        let parsed = match labels::parse(&s.labels) {
            Ok(p) => p,
            Err(Skip::NotLabelled | Skip::Disabled) => continue,
            Err(Skip::Invalid(reason)) => {
                out.warnings.push(Warning::NotServed {
                    service: s.name.clone(),
                    reason,
                });
                continue;
            }
        };
        out.warnings
            .extend(parsed.warnings.iter().map(|message| Warning::Label {
                service: s.name.clone(),
                message: message.clone(),
            }));
        match tasks::backends(all_tasks, &s.id, &parsed) {
            Ok(mut backends) => {
                for b in backends.iter_mut().filter(|b| unhealthy.contains(&b.task_id)) {
                    b.state = TaskState::Unhealthy;
                }
                out.services.push(DiscoveredService {
                    id: s.id.clone(),
                    name: s.name.clone(),
                    labels: parsed,
                    backends,
                    networks: s.networks.clone(),
                });
            }
            Err(err) => out.warnings.push(Warning::NotServed {
                service: s.name.clone(),
                reason: err.to_string(),
            }),
        }
    }
    out.services.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// The watcher's state, for the admin API and metrics.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct DiscoveryStatus {
    /// Whether the engine answers.
    pub connected: bool,
    /// Negotiated API version.
    pub api_version: Option<String>,
    /// The last error, while disconnected.
    pub last_error: Option<String>,
    /// When the table in force was last confirmed (listed successfully).
    #[serde(skip)]
    pub confirmed_at: Option<Instant>,
    /// Wall-clock time of that confirmation.
    pub confirmed_at_unix: Option<u64>,
    /// Tables published since start.
    pub tables_published: u64,
}

impl DiscoveryStatus {
    /// Seconds since the table in force was last confirmed.
    pub fn table_age(&self) -> Option<Duration> {
        self.confirmed_at.map(|t| t.elapsed())
    }
}

async fn refresh(
    engine: &Engine,
    tx: &watch::Sender<Arc<Snapshot>>,
    status: &Mutex<DiscoveryStatus>,
) -> Result<(), EngineError> {
    let (services, tasks, unhealthy) =
        tokio::try_join!(engine.services(), engine.tasks(), engine.unhealthy_local_tasks())?;
    let table = build(&services, &tasks, &unhealthy);
    let changed = tx.send_if_modified(|current| {
        if **current == table {
            return false;
        }
        *current = Arc::new(table);
        true
    });
    let mut st = status.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    st.confirmed_at = Some(Instant::now());
    st.confirmed_at_unix = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .ok()
        .map(|d| d.as_secs());
    if changed {
        st.tables_published += 1;
    }
    Ok(())
}

fn set_disconnected(status: &Mutex<DiscoveryStatus>, err: &EngineError) -> bool {
    let mut st = status.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let was = st.connected || st.last_error.is_none();
    st.connected = false;
    st.last_error = Some(crate::error::chain(err).to_string());
    was
}

/// Watches the engine at `host` until the task is dropped, publishing
/// tables on `tx` and its state in `status`.
pub async fn run(
    host: String,
    resync: Duration,
    tx: watch::Sender<Arc<Snapshot>>,
    status: Arc<Mutex<DiscoveryStatus>>,
) {
    let mut backoff = BACKOFF_MIN;
    loop {
        let engine = match Engine::connect(&host).await {
            Ok(e) => e,
            Err(err) => {
                if set_disconnected(&status, &err) {
                    warn!(host = %host, error = %crate::error::chain(&err), "docker API unreachable; keeping the last backend table");
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(BACKOFF_MAX);
                continue;
            }
        };
        let mut events = Box::pin(engine.changes());
        if let Err(err) = refresh(&engine, &tx, &status).await {
            if set_disconnected(&status, &err) {
                warn!(error = %crate::error::chain(&err), "docker API listing failed; keeping the last backend table");
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(BACKOFF_MAX);
            continue;
        }
        {
            let mut st = status.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            st.connected = true;
            st.last_error = None;
            st.api_version = Some(engine.api_version());
        }
        info!(host = %host, api = %engine.api_version(), "watching the docker API");
        backoff = BACKOFF_MIN;
        let mut resync_timer = tokio::time::interval(resync);
        resync_timer.tick().await;
        let failure = loop {
            tokio::select! {
                ev = events.next() => match ev {
                    Some(Ok(())) => {
                        // Let a burst of events (a rolling update emits
                        // several per task) settle into one re-list.
                        tokio::time::sleep(DEBOUNCE).await;
                        while let Some(Some(Ok(()))) = futures_util::FutureExt::now_or_never(events.next()) {}
                        if let Err(err) = refresh(&engine, &tx, &status).await { break err; }
                    }
                    Some(Err(err)) => break err,
                    None => break EngineError::Host(format!("{host}: event stream ended")),
                },
                _ = resync_timer.tick() => {
                    if let Err(err) = refresh(&engine, &tx, &status).await { break err; }
                }
            }
        };
        if set_disconnected(&status, &failure) {
            warn!(error = %crate::error::chain(&failure), "lost the docker API; keeping the last backend table and reconnecting");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(id: &str, name: &str, labels: &[(&str, &str)]) -> ServiceInfo {
        ServiceInfo {
            id: id.into(),
            name: name.into(),
            labels: labels
                .iter()
                .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
                .collect(),
            networks: vec!["net1".into()],
        }
    }

    fn task(id: &str, service: &str, slot: u64, ip: &str) -> Task {
        serde_json::from_value(serde_json::json!({
            "ID": id, "ServiceID": service, "Slot": slot, "DesiredState": "running",
            "Status": {"State": "running"},
            "NetworksAttachments": [{"Network": {"ID": "net1", "Spec": {"Name": "whoaminet"}}, "Addresses": [format!("{ip}/24")]}]
        }))
        .expect("task json")
    }

    /// Labelled services are served, unlabelled ones ignored, and a bad
    /// label becomes a warning for that service only.
    #[test]
    fn build_serves_labelled_services_and_reports_bad_ones() {
        let services = [
            service(
                "s1",
                "whoami",
                &[("traefik.port", "8000"), ("traefik.docker.network", "whoaminet")],
            ),
            service("s2", "plain", &[]),
            service("s3", "broken", &[("traefik.enable", "true")]),
            service(
                "s4",
                "other",
                &[("swarm-sticky.port", "80"), ("swarm-sticky.colour", "blue")],
            ),
        ];
        let tasks = [
            task("t1", "s1", 1, "10.0.1.3"),
            task("t2", "s1", 2, "10.0.1.4"),
            task("t3", "s4", 1, "10.0.1.9"),
        ];
        let snap = build(&services, &tasks, &BTreeSet::new());
        let names: Vec<&str> = snap.services.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, vec!["other", "whoami"]);
        assert_eq!(snap.services[1].backends.len(), 2);
        let about = |svc: &str| -> Vec<String> {
            snap.warnings
                .iter()
                .filter(|w| w.service() == svc)
                .map(ToString::to_string)
                .collect()
        };
        assert!(about("broken")[0].contains("no backend port"), "{:?}", snap.warnings);
        assert!(about("other")[0].contains("swarm-sticky.colour"), "{:?}", snap.warnings);
        assert!(about("whoami").is_empty(), "{:?}", snap.warnings);
        // Same input, same table: nothing would be republished.
        assert_eq!(build(&services, &tasks, &BTreeSet::new()), snap);
        // A local container failing its HEALTHCHECK: that task only.
        let sick = build(&services, &tasks, &["t2".to_string()].into());
        let states: Vec<TaskState> = sick.services[1].backends.iter().map(|b| b.state).collect();
        assert_eq!(states, vec![TaskState::Serving, TaskState::Unhealthy]);
    }
}
