//! Swarm configs as a small store the managers share: list by label,
//! create (atomic in the swarm's Raft log: a name taken is a conflict, so
//! a create doubles as a lock), delete by ID. The data of a config is
//! returned by the API (unlike a secret's), so every manager can read
//! what another wrote.

use std::collections::HashMap;

use base64::Engine as _;
use bollard::{models::ConfigSpec, query_parameters::ListConfigsOptionsBuilder};
use futures_util::{Stream, StreamExt as _};

use super::engine::{Engine, EngineError};

/// A config as the store reads it.
#[derive(Debug, Clone)]
pub struct StoredConfig {
    /// Its ID (deletes go by ID, so a delete never hits a newer object
    /// that took the same name).
    pub id: String,
    /// Its name.
    pub name: String,
    /// Its labels.
    pub labels: HashMap<String, String>,
    /// Its data.
    pub data: Vec<u8>,
}

/// What a create found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Created {
    /// Created, with this ID.
    Yes(String),
    /// A config of that name exists.
    NameTaken,
}

impl Engine {
    /// Every config with the label `key` (any value).
    ///
    /// # Errors
    /// When the call fails.
    pub async fn configs_labelled(&self, key: &str) -> Result<Vec<StoredConfig>, EngineError> {
        let filters = HashMap::from([("label", vec![key])]);
        let options = ListConfigsOptionsBuilder::new().filters(&filters).build();
        let configs = self.docker().list_configs(Some(options)).await?;
        Ok(configs
            .into_iter()
            .filter_map(|c| {
                let spec = c.spec?;
                Some(StoredConfig {
                    id: c.id?,
                    name: spec.name?,
                    labels: spec.labels.unwrap_or_default(),
                    data: spec
                        .data
                        .and_then(|d| base64::engine::general_purpose::STANDARD.decode(d).ok())
                        .unwrap_or_default(),
                })
            })
            .collect())
    }

    /// Creates the config `name`.
    ///
    /// # Errors
    /// When the call fails for another reason than the name being taken.
    pub async fn create_config(
        &self,
        name: &str,
        labels: HashMap<String, String>,
        data: &[u8],
    ) -> Result<Created, EngineError> {
        let spec = ConfigSpec {
            name: Some(name.to_owned()),
            labels: Some(labels),
            data: Some(base64::engine::general_purpose::STANDARD.encode(data)),
            templating: None,
        };
        match self.docker().create_config(spec).await {
            Ok(r) => Ok(Created::Yes(r.id)),
            Err(bollard::errors::Error::DockerResponseServerError { status_code: 409, .. }) => Ok(Created::NameTaken),
            Err(e) => Err(e.into()),
        }
    }

    /// Deletes the config `id`; one already gone is not an error.
    ///
    /// # Errors
    /// When the call fails for another reason.
    pub async fn delete_config(&self, id: &str) -> Result<(), EngineError> {
        match self.docker().delete_config(id).await {
            Ok(()) | Err(bollard::errors::Error::DockerResponseServerError { status_code: 404, .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// A signal per config event (create, update, remove).
    pub fn config_changes(&self) -> impl Stream<Item = Result<(), EngineError>> + use<> {
        let filters = [("type".to_string(), vec!["config".to_string()])].into_iter().collect();
        let opts = bollard::query_parameters::EventsOptions {
            filters: Some(filters),
            ..Default::default()
        };
        self.docker()
            .events(Some(opts))
            .map(|e| e.map(drop).map_err(EngineError::from))
    }
}
