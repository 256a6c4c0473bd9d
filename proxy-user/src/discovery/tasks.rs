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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskState {
    /// Running and meant to run: new sessions welcome.
    Serving,
    /// Still running, but the orchestrator is shutting it down (a rolling
    /// update or scale-down): pinned sessions only, no new ones.
    Draining,
    /// Running, but its container's Docker HEALTHCHECK says `unhealthy`
    /// (or still `starting`): no sessions at all; pinned ones fail over.
    /// Known only for containers on this node (see [`super::watch::build`]).
    Unhealthy,
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
    /// Serving or draining.
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
        let slot = match (task.slot, &task.node_id) {
            (Some(s), _) if s > 0 => s.to_string(),
            (_, Some(node)) => node.clone(),
            _ => task.id.clone(),
        };
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
