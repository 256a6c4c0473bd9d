//! The Docker Engine API of the node swarm-sticky runs on.
//!
//! bollard with version negotiation (Engine API 1.41, Debian 12's
//! docker.io 20.10, and newer) for services, events and the swarm; `/tasks`
//! is read with our own model (see [`super::tasks`]) over the same socket.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::PathBuf,
    time::Duration,
};

use bollard::{Docker, models::ServiceUpdateStatusStateEnum, query_parameters::EventsOptions};
use bytes::Bytes;
use futures_util::{Stream, StreamExt as _};

use super::tasks::Task;

/// Timeout of one API call.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// The label Docker puts on a swarm task's container: the task ID.
const TASK_ID_LABEL: &str = "com.docker.swarm.task.id";

/// Percent-encodes everything but RFC 3986's unreserved characters (for a
/// JSON query parameter).
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A Docker API problem.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// Only `unix://` hosts are supported.
    #[error("--docker-host {0}: only unix:// sockets are supported")]
    Host(String),
    /// bollard reported an error.
    #[error("docker API")]
    Docker(#[from] bollard::errors::Error),
    /// The raw `/tasks` call failed.
    #[error("docker API GET {path}")]
    Raw {
        /// Request path.
        path: String,
        /// Why.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// A service as discovery needs it.
#[derive(Debug, Clone)]
pub struct ServiceInfo {
    /// Service ID.
    pub id: String,
    /// Service name.
    pub name: String,
    /// Service labels (`Spec.Labels`).
    pub labels: BTreeMap<String, String>,
    /// IDs of the networks its tasks attach to (`TaskTemplate.Networks`).
    pub networks: Vec<String>,
    /// A rolling update (or its rollback) is under way: Swarm replaces
    /// tasks without sending task events.
    pub updating: bool,
    /// The replicas asked for (replicated services; `None`: global).
    pub replicas: Option<u64>,
}

/// A swarm node as discovery needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeInfo {
    /// Node ID.
    pub id: String,
    /// Its host name.
    pub hostname: String,
    /// `ready`, `down`, `unknown` or `disconnected`.
    pub state: String,
}

impl NodeInfo {
    /// Whether its tasks can be reached: Swarm hears from the node.
    pub fn is_ready(&self) -> bool {
        self.state == "ready"
    }
}

/// A connection to the engine.
#[derive(Debug, Clone)]
pub struct Engine {
    docker: Docker,
    socket: PathBuf,
}

impl Engine {
    /// Connects to `host` (`unix:///var/run/docker.sock`) and negotiates
    /// the API version.
    ///
    /// # Errors
    /// An unsupported host, or an engine that does not answer.
    pub async fn connect(host: &str) -> Result<Self, EngineError> {
        let socket = host
            .strip_prefix("unix://")
            .ok_or_else(|| EngineError::Host(host.to_string()))?;
        let docker = Docker::connect_with_unix(socket, CALL_TIMEOUT.as_secs(), bollard::API_DEFAULT_VERSION)?
            .negotiate_version()
            .await?;
        Ok(Self {
            docker,
            socket: PathBuf::from(socket),
        })
    }

    /// The bollard client (for the anchors).
    pub(super) fn docker(&self) -> &Docker {
        &self.docker
    }

    /// The negotiated API version, e.g. `1.41`.
    pub fn api_version(&self) -> String {
        let v = self.docker.client_version();
        format!("{}.{}", v.major_version, v.minor_version)
    }

    /// All services.
    ///
    /// # Errors
    /// When the call fails (for example, this node is not a swarm manager).
    pub async fn services(&self) -> Result<Vec<ServiceInfo>, EngineError> {
        let services = self.docker.list_services(None).await?;
        Ok(services
            .into_iter()
            .filter_map(|s| {
                let spec = s.spec?;
                let networks = spec
                    .task_template
                    .as_ref()
                    .and_then(|t| t.networks.as_ref())
                    .map(|n| n.iter().filter_map(|a| a.target.clone()).collect())
                    .unwrap_or_default();
                let updating = s.update_status.and_then(|u| u.state).is_some_and(|state| {
                    matches!(
                        state,
                        ServiceUpdateStatusStateEnum::UPDATING | ServiceUpdateStatusStateEnum::ROLLBACK_STARTED
                    )
                });
                let replicas = spec
                    .mode
                    .as_ref()
                    .and_then(|m| m.replicated.as_ref())
                    .and_then(|r| r.replicas);
                Some(ServiceInfo {
                    replicas: replicas.and_then(|n| u64::try_from(n).ok()),
                    id: s.id?,
                    name: spec.name.unwrap_or_default(),
                    labels: spec.labels.unwrap_or_default().into_iter().collect(),
                    networks,
                    updating,
                })
            })
            .collect())
    }

    /// All nodes of the swarm, with their state.
    ///
    /// # Errors
    /// When the call fails (for example, this node is not a swarm manager).
    pub async fn nodes(&self) -> Result<Vec<NodeInfo>, EngineError> {
        let nodes = self
            .docker
            .list_nodes(None::<bollard::query_parameters::ListNodesOptions>)
            .await?;
        Ok(nodes
            .into_iter()
            .filter_map(|n| {
                Some(NodeInfo {
                    id: n.id?,
                    hostname: n.description.and_then(|d| d.hostname).unwrap_or_default(),
                    state: n
                        .status
                        .and_then(|s| s.state)
                        .map_or_else(|| "unknown".to_owned(), |s| s.to_string()),
                })
            })
            .collect())
    }

    /// All tasks (every state: draining ones matter too).
    ///
    /// # Errors
    /// When the call fails or the answer does not parse.
    pub async fn tasks(&self) -> Result<Vec<Task>, EngineError> {
        let path = format!("/v{}/tasks", self.api_version());
        let body = self.raw_get(&path).await.map_err(|source| EngineError::Raw {
            path: path.clone(),
            source,
        })?;
        serde_json::from_slice(&body).map_err(|e| EngineError::Raw {
            path,
            source: Box::new(e),
        })
    }

    /// IDs of the swarm tasks whose container runs on this node and has a
    /// HEALTHCHECK that does not report `healthy` (yet): `unhealthy` or
    /// `starting`. Containers without a HEALTHCHECK are not listed.
    ///
    /// # Errors
    /// When the call fails or the answer does not parse.
    pub async fn unhealthy_local_tasks(&self) -> Result<BTreeSet<String>, EngineError> {
        /// The fields of a `/containers/json` entry read here.
        #[derive(serde::Deserialize)]
        struct Summary {
            #[serde(rename = "Labels", default)]
            labels: BTreeMap<String, String>,
        }
        let filters = serde_json::json!({
            "label": [TASK_ID_LABEL],
            "health": ["unhealthy", "starting"],
        });
        let path = format!(
            "/v{}/containers/json?filters={}",
            self.api_version(),
            percent_encode(&filters.to_string())
        );
        let body = self.raw_get(&path).await.map_err(|source| EngineError::Raw {
            path: path.clone(),
            source,
        })?;
        let list: Vec<Summary> = serde_json::from_slice(&body).map_err(|e| EngineError::Raw {
            path,
            source: Box::new(e),
        })?;
        Ok(list
            .into_iter()
            .filter_map(|mut c| c.labels.remove(TASK_ID_LABEL))
            .collect())
    }

    async fn raw_get(&self, path: &str) -> Result<Bytes, crate::oneshot::GetError> {
        let call = async {
            let stream = tokio::net::UnixStream::connect(&self.socket).await?;
            crate::oneshot::get_ok(stream, "docker", path).await
        };
        tokio::time::timeout(CALL_TIMEOUT, call)
            .await
            .map_err(|_| "timed out")?
    }

    /// The swarm's manager join token, readable only on managers.
    ///
    /// # Errors
    /// When the call fails (not a manager, not in a swarm).
    pub async fn manager_join_token(&self) -> Result<Option<String>, EngineError> {
        Ok(self.docker.inspect_swarm().await?.join_tokens.and_then(|t| t.manager))
    }

    /// This node's swarm node ID.
    ///
    /// # Errors
    /// When the call fails.
    pub async fn node_id(&self) -> Result<Option<String>, EngineError> {
        Ok(self.docker.info().await?.swarm.and_then(|s| s.node_id))
    }

    /// A stream of "something changed" signals from `/events` (service,
    /// container, network and node events, container health changes
    /// included; not the execs of health checks). It ends when the engine
    /// goes.
    pub fn changes(&self) -> impl Stream<Item = Result<(), EngineError>> + use<> {
        let filters = [(
            "type".to_string(),
            vec!["service".into(), "container".into(), "network".into(), "node".into()],
        )]
        .into_iter()
        .collect();
        let opts = EventsOptions {
            filters: Some(filters),
            ..Default::default()
        };
        self.docker.events(Some(opts)).filter_map(|e| {
            std::future::ready(match e {
                // A HEALTHCHECK runs as an exec every interval: its
                // exec_create/exec_start/exec_die events change nothing
                // (the `health_status: …` event that may follow does).
                Ok(m) if m.action.as_deref().is_some_and(|a| a.starts_with("exec_")) => None,
                Ok(_) => Some(Ok(())),
                Err(err) => Some(Err(EngineError::from(err))),
            })
        })
    }
}
