//! Swarm tasks → backends: which tasks serve, at which address, in which
//! state, under which identity.
//!
//! The Engine API's `/tasks` carries each task's overlay addresses in
//! `NetworksAttachments`, a field that bollard's generated `Task` model does
//! not have (it is missing from Docker's API description), so the few
//! fields needed are modelled here. The mapping is pure and tested on
//! responses recorded from a real engine.

use std::net::{IpAddr, SocketAddr};

use serde::Deserialize;

use super::labels::ServiceLabels;

/// The fields of a `/tasks` entry that discovery reads.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Task {
    /// Task ID.
    #[serde(rename = "ID")]
    pub id: String,
    /// Service ID.
    #[serde(rename = "ServiceID")]
    pub service_id: String,
    /// Replica slot (replicated services only).
    #[serde(default)]
    pub slot: Option<u64>,
    /// Node the task runs on (global services: its slot equivalent).
    #[serde(rename = "NodeID", default)]
    pub node_id: Option<String>,
    /// What the orchestrator wants: `running`, `shutdown`, …
    #[serde(default)]
    pub desired_state: String,
    /// What the task is.
    #[serde(default)]
    pub status: TaskStatus,
    /// Overlay attachments with addresses.
    #[serde(default)]
    pub networks_attachments: Vec<Attachment>,
}

/// `Task.Status`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TaskStatus {
    /// `running`, `starting`, `shutdown`, …
    #[serde(default)]
    pub state: String,
    /// The container, once there is one.
    #[serde(default)]
    pub container_status: Option<ContainerStatus>,
}

/// `Task.Status.ContainerStatus`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerStatus {
    /// Container ID.
    #[serde(rename = "ContainerID", default)]
    pub container_id: Option<String>,
}

/// One entry of `Task.NetworksAttachments`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Attachment {
    /// The network.
    pub network: AttachedNetwork,
    /// CIDR strings such as `10.0.1.4/24`.
    #[serde(default)]
    pub addresses: Vec<String>,
}

/// `NetworksAttachments[].Network`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AttachedNetwork {
    /// Network ID.
    #[serde(rename = "ID")]
    pub id: String,
    /// Network spec (for its name).
    #[serde(default)]
    pub spec: NetworkSpec,
}

/// `Network.Spec`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NetworkSpec {
    /// Network name.
    #[serde(default)]
    pub name: String,
    /// Whether this is the routing-mesh ingress network.
    #[serde(default)]
    pub ingress: bool,
}

/// Whether a backend takes new sessions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskState {
    /// Running and meant to run: new sessions welcome.
    Serving,
    /// Still running, but the orchestrator is shutting it down (a rolling
    /// update or scale-down) on a live node: pinned sessions only, no new
    /// ones.
    Draining,
    /// Listed as running, but not to be used: no sessions at all, and a
    /// cookie naming it fails over at once, without a connect attempt.
    Down(DownCause),
}

/// Why a running task is held down.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DownCause {
    /// Its container's Docker HEALTHCHECK says `unhealthy` (or still
    /// `starting`). Known only for containers on this node (see
    /// [`super::table::build`]).
    Unhealthy,
    /// Its node is not `ready`. Once Swarm marks a node `down` (about 10 s
    /// after it stops answering), its tasks read desired state `shutdown`
    /// with status `running` for as long as the node stays away (a day,
    /// swarmkit's node-down period): they are gone, not draining.
    Node {
        /// The node's host name (its ID when it has none).
        hostname: String,
        /// Its state: `down`, `unknown`, `disconnected`, or `gone` (it left
        /// the swarm).
        state: String,
    },
}

impl DownCause {
    /// One word for the admin API and the warning's kind.
    pub const fn kind(&self) -> &'static str {
        match self {
            Self::Unhealthy => "unhealthy",
            Self::Node { .. } => "node_down",
        }
    }
}

impl std::fmt::Display for DownCause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Unhealthy => f.write_str("its container's HEALTHCHECK is not healthy"),
            Self::Node { hostname, state } => write!(f, "its node {hostname} is {state}"),
        }
    }
}

/// A task that serves, as a backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskBackend {
    /// Backend identity: `<task id>.<slot>` (the slot is the node ID for
    /// global services), so a cookie can follow its slot to a replacement.
    pub identity: String,
    /// Task ID.
    pub task_id: String,
    /// Slot key (replica slot number, or node ID).
    pub slot: String,
    /// Address on the selected network, port from the labels.
    pub addr: SocketAddr,
    /// ID of that network (its namespace is where sockets are opened).
    pub network_id: String,
    /// Container ID, when known.
    pub container_id: Option<String>,
    /// Node ID, when known.
    pub node_id: Option<String>,
    /// Serving, draining or down.
    pub state: TaskState,
}

/// Why a service's tasks could not be mapped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MappingError {
    /// The service is on several networks and the labels name none.
    #[error(
        "the service is attached to several networks ({0}); name one with swarm-sticky.network (or traefik.docker.network)"
    )]
    AmbiguousNetwork(String),
    /// The labels name a network the tasks are not on.
    #[error("network {0:?} from the labels is not one of the service's networks ({1})")]
    UnknownNetwork(String, String),
}

fn address_of(attachment: &Attachment) -> Option<IpAddr> {
    attachment
        .addresses
        .iter()
        .find_map(|cidr| cidr.split('/').next()?.parse().ok())
}

/// The attachment of `task` on the network the labels select.
fn select<'a>(task: &'a Task, labels: &ServiceLabels) -> Result<Option<&'a Attachment>, MappingError> {
    let candidates: Vec<&Attachment> = task
        .networks_attachments
        .iter()
        .filter(|a| !a.network.spec.ingress)
        .collect();
    let names = || {
        candidates
            .iter()
            .map(|a| a.network.spec.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    match &labels.network {
        Some(wanted) => match candidates
            .iter()
            .find(|a| &a.network.spec.name == wanted || &a.network.id == wanted)
        {
            Some(a) => Ok(Some(a)),
            // A task that has no attachment yet (still starting) is skipped
            // quietly; one attached elsewhere is a label mistake.
            None if candidates.is_empty() => Ok(None),
            None => Err(MappingError::UnknownNetwork(wanted.clone(), names())),
        },
        None => match candidates.as_slice() {
            [] => Ok(None),
            [one] => Ok(Some(one)),
            _ => Err(MappingError::AmbiguousNetwork(names())),
        },
    }
}

/// A task's slot key: its replica slot, or its node for a global service
/// (the task itself when it has neither).
fn slot_of(task: &Task) -> String {
    match (task.slot, &task.node_id) {
        (Some(s), _) if s > 0 => s.to_string(),
        (_, Some(node)) => node.clone(),
        _ => task.id.clone(),
    }
}

/// Whether a task's status comes before `running` (Swarm's task states
/// `new` … `starting`).
fn is_on_its_way(task: &Task) -> bool {
    matches!(
        task.status.state.as_str(),
        "new" | "pending" | "assigned" | "accepted" | "preparing" | "ready" | "starting"
    )
}

/// How many tasks of a service run and are meant to.
pub fn running(tasks: &[Task], service_id: &str) -> u64 {
    let n = tasks
        .iter()
        .filter(|t| t.service_id == service_id && t.desired_state == "running" && t.status.state == "running")
        .count();
    u64::try_from(n).unwrap_or(u64::MAX)
}

/// The slots of a service that have a task on its way (meant to run, not
/// running yet) and no running task meant to run: a replacement in a
/// stop-first rolling update, a restarted task, a new replica. Sorted.
pub fn waiting_slots(tasks: &[Task], service_id: &str) -> Vec<String> {
    let of_service = || {
        tasks
            .iter()
            .filter(|t| t.service_id == service_id && t.desired_state == "running")
    };
    let mut out: Vec<String> = of_service()
        .filter(|t| is_on_its_way(t))
        .map(slot_of)
        .filter(|slot| !of_service().any(|t| t.status.state == "running" && slot_of(t) == *slot))
        .collect();
    out.sort();
    out.dedup();
    out
}

/// The backends among a service's tasks: running tasks that are meant to
/// run serve; running tasks that are being shut down drain; everything
/// else (starting, failed, shut down) is not a backend.
///
/// # Errors
/// When the labels do not select exactly one network.
pub fn backends(tasks: &[Task], service_id: &str, labels: &ServiceLabels) -> Result<Vec<TaskBackend>, MappingError> {
    let mut out = Vec::new();
    for task in tasks.iter().filter(|t| t.service_id == service_id) {
        if task.status.state != "running" {
            continue;
        }
        let state = match task.desired_state.as_str() {
            "running" => TaskState::Serving,
            // shutdown/remove while still running: before its container stops.
            _ => TaskState::Draining,
        };
        let Some(attachment) = select(task, labels)? else {
            continue;
        };
        let Some(ip) = address_of(attachment) else { continue };
        let slot = slot_of(task);
        out.push(TaskBackend {
            identity: format!("{}.{slot}", task.id),
            task_id: task.id.clone(),
            slot,
            addr: SocketAddr::new(ip, labels.port),
            network_id: attachment.network.id.clone(),
            container_id: task
                .status
                .container_status
                .as_ref()
                .and_then(|c| c.container_id.clone()),
            node_id: task.node_id.clone(),
            state,
        });
    }
    out.sort_by(|a, b| a.identity.cmp(&b.identity));
    Ok(out)
}

#[cfg(test)]
mod tests;
