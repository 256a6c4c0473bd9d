//! One listing of the engine → the discovered table (pure).
//!
//! A [`Listing`] is what one round of API calls returned: services, every
//! task, the swarm's nodes and this node's containers that fail their
//! HEALTHCHECK. [`build`] turns it into a [`Snapshot`]: the services whose
//! labels ask to be served, each with its tasks as backends (serving,
//! draining or held down, and why), and the slots still waiting for a
//! task. The watcher compares snapshots and publishes only changes.

use std::collections::{BTreeMap, BTreeSet};

use super::{
    Warning,
    engine::{NodeInfo, ServiceInfo},
    labels::{self, ServiceLabels, Skip},
    tasks::{self, DownCause, Task, TaskBackend, TaskState},
};

/// What one round of API calls returned.
#[derive(Debug, Default)]
pub struct Listing {
    /// Every service.
    pub services: Vec<ServiceInfo>,
    /// Every task, in every state.
    pub tasks: Vec<Task>,
    /// Every node of the swarm.
    pub nodes: Vec<NodeInfo>,
    /// Tasks whose container on this node fails (or has not yet passed)
    /// its Docker HEALTHCHECK.
    pub unhealthy: BTreeSet<String>,
}

/// A Swarm service that swarm-sticky serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiscoveredService {
    /// Service ID.
    pub id: String,
    /// Service name.
    pub name: String,
    /// What its labels ask for.
    pub labels: ServiceLabels,
    /// Its serving, draining and held-down tasks.
    pub backends: Vec<TaskBackend>,
    /// IDs of the networks its tasks attach to.
    pub networks: Vec<String>,
    /// Slots with a task on its way and none running (see
    /// [`tasks::waiting_slots`]).
    pub waiting_slots: Vec<String>,
    /// A rolling update is under way.
    pub updating: bool,
    /// Fewer of its tasks run than its replicas ask for: Swarm will start
    /// more (a failed task is replaced after its restart delay, with no
    /// event).
    pub short: bool,
}

impl DiscoveredService {
    /// Whether Swarm is moving this service's tasks: an update under way,
    /// a slot waiting for its task, or a task being stopped. Swarm sends
    /// no task events, so the watcher lists again at short intervals
    /// while any served service is in transition.
    pub fn in_transition(&self) -> bool {
        self.updating
            || self.short
            || !self.waiting_slots.is_empty()
            || self.backends.iter().any(|b| b.state == TaskState::Draining)
    }
}

/// One discovered table.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Snapshot {
    /// Served services, by name.
    pub services: Vec<DiscoveredService>,
    /// Label problems and services that cannot be served.
    pub warnings: Vec<Warning>,
}

impl Snapshot {
    /// Whether any served service is in transition.
    pub fn in_transition(&self) -> bool {
        self.services.iter().any(DiscoveredService::in_transition)
    }
}

/// Builds the table from one listing.
///
/// A task on a node that is not `ready` is held down ([`DownCause::Node`]):
/// Swarm keeps listing it as running. A task whose container on this node
/// fails its HEALTHCHECK is held down too ([`DownCause::Unhealthy`]): Swarm
/// keeps a task with a HEALTHCHECK `starting` until its first healthy
/// report, and fails it about 2 s after it turns unhealthy (the gossip
/// delay before the container is stopped); this closes that window for
/// local tasks.
pub fn build(listing: &Listing) -> Snapshot {
    let nodes: BTreeMap<&str, &NodeInfo> = listing.nodes.iter().map(|n| (n.id.as_str(), n)).collect();
    let mut out = Snapshot::default();
    for s in &listing.services {
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
        match tasks::backends(&listing.tasks, &s.id, &parsed) {
            Ok(mut backends) => {
                for b in &mut backends {
                    if let Some(cause) = down_cause(b, &nodes, &listing.unhealthy) {
                        b.state = TaskState::Down(cause);
                    }
                }
                out.services.push(DiscoveredService {
                    id: s.id.clone(),
                    name: s.name.clone(),
                    labels: parsed,
                    backends,
                    networks: s.networks.clone(),
                    waiting_slots: tasks::waiting_slots(&listing.tasks, &s.id),
                    updating: s.updating,
                    short: s.replicas.is_some_and(|n| tasks::running(&listing.tasks, &s.id) < n),
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

/// Why `b` must not be used, if it must not. A node missing from the
/// listing (it left the swarm) counts as down.
fn down_cause(b: &TaskBackend, nodes: &BTreeMap<&str, &NodeInfo>, unhealthy: &BTreeSet<String>) -> Option<DownCause> {
    if let Some(id) = b.node_id.as_deref() {
        match nodes.get(id) {
            Some(n) if n.is_ready() => {}
            Some(n) => {
                return Some(DownCause::Node {
                    hostname: if n.hostname.is_empty() {
                        id.to_owned()
                    } else {
                        n.hostname.clone()
                    },
                    state: n.state.clone(),
                });
            }
            None => {
                return Some(DownCause::Node {
                    hostname: id.to_owned(),
                    state: "gone".to_owned(),
                });
            }
        }
    }
    unhealthy.contains(&b.task_id).then_some(DownCause::Unhealthy)
}

#[cfg(test)]
mod tests;
