//! The Docker Engine API of the node swarm-sticky runs on.
//!
//! bollard with version negotiation (Engine API 1.41, Debian 12's
//! docker.io 20.10, and newer) for services, events and the swarm; `/tasks`
//! is read with our own model (see [`super::tasks`]) over the same socket.

use std::{collections::BTreeMap, path::PathBuf, time::Duration};

use bollard::{Docker, query_parameters::EventsOptions};
use bytes::Bytes;
use futures_util::{Stream, StreamExt as _};
use http_body_util::{BodyExt as _, Empty};
use hyper_util::rt::TokioIo;

use super::tasks::Task;

/// Timeout of one API call.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

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
                Some(ServiceInfo {
                    id: s.id?,
                    name: spec.name.unwrap_or_default(),
                    labels: spec.labels.unwrap_or_default().into_iter().collect(),
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

    async fn raw_get(&self, path: &str) -> Result<Bytes, Box<dyn std::error::Error + Send + Sync>> {
        let call = async {
            let stream = tokio::net::UnixStream::connect(&self.socket).await?;
            let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
            tokio::spawn(async move {
                // The connection ends with the response; its error, if any,
                // surfaces through the request below.
                let _ = conn.await;
            });
            let req = http::Request::get(path)
                .header(http::header::HOST, "docker")
                .body(Empty::<Bytes>::new())?;
            let resp = sender.send_request(req).await?;
            let status = resp.status();
            let body = resp.into_body().collect().await?.to_bytes();
            if !status.is_success() {
                return Err(format!("{status}: {}", String::from_utf8_lossy(&body).trim()).into());
            }
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(body)
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
    /// container, network and node events). It ends when the engine goes.
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
        self.docker
            .events(Some(opts))
            .map(|e| e.map(|_| ()).map_err(EngineError::from))
    }
}
