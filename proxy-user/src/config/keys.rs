//! Where the cookie keys come from, and loading them: one place for `run`
//! and for `cookie decode`, so the tool verifies with exactly the keys the
//! proxy signs with.

use std::path::PathBuf;

use crate::{
    cli::{DockerArgs, KeyArgs},
    cookie::{KEY_FILE_NAME, Keyring, KeyringError},
    discovery::cluster_key,
    error::chain,
};

/// The source of the cookie keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// `--cookie-key-file`: one key per line, the first signs.
    File(PathBuf),
    /// A random key generated once in the state directory (mode 0600).
    StateDir(PathBuf),
    /// With `--docker` and no key file: derived from the swarm's manager
    /// join token (the same on every manager); the state directory's key
    /// when the token cannot be read.
    Cluster {
        /// The Docker API to read the token from.
        docker_host: String,
        /// The fallback's directory.
        state_dir: PathBuf,
    },
    /// A random key of this process only (the demo).
    Ephemeral,
}

/// What the keys are loaded for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyUse {
    /// Signing and verifying (`run`): the state directory's key is created
    /// when missing, and a cluster key that cannot be read falls back to it.
    Serve,
    /// Verifying only (`cookie decode`): nothing is written, and a missing
    /// key is an error.
    Inspect,
}

/// Keys, loaded.
#[derive(Debug)]
pub struct LoadedKeys {
    /// The keys in force.
    pub keyring: Keyring,
    /// The key derived from the join token, when it was read: the cluster
    /// key follower starts from it.
    pub cluster_key: Option<[u8; 32]>,
}

/// Why the keys could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// A key file or the state directory.
    #[error("cookie key: {0}")]
    Keyring(#[from] KeyringError),
    /// The swarm's join token could not be read (`cookie decode --docker`).
    #[error("cluster key: {0}")]
    Cluster(String),
}

impl KeySource {
    /// The source the flags name.
    pub fn from_args(keys: &KeyArgs, docker: &DockerArgs) -> Self {
        match &keys.cookie_key_file {
            Some(path) => Self::File(path.clone()),
            None if docker.docker => Self::Cluster {
                docker_host: docker.docker_host.clone(),
                state_dir: keys.state_dir.clone(),
            },
            None => Self::StateDir(keys.state_dir.clone()),
        }
    }

    /// Loads the keys for `purpose`. With [`KeySource::Cluster`] this asks
    /// the Docker API (bounded by its call timeout).
    ///
    /// # Errors
    /// An unreadable or invalid key file; for [`KeyUse::Inspect`] also a
    /// missing state-directory key or an unreadable join token.
    pub fn load(&self, purpose: KeyUse) -> Result<LoadedKeys, KeyError> {
        let plain = |keyring| LoadedKeys {
            keyring,
            cluster_key: None,
        };
        match (self, purpose) {
            (Self::File(path), _) => Ok(plain(Keyring::from_file(path)?)),
            (Self::StateDir(dir), KeyUse::Serve) => Ok(plain(Keyring::load_or_generate(dir)?)),
            (Self::StateDir(dir), KeyUse::Inspect) => Ok(plain(Keyring::from_file(&dir.join(KEY_FILE_NAME))?)),
            (Self::Ephemeral, _) => Ok(plain(Keyring::random())),
            (Self::Cluster { docker_host, .. }, KeyUse::Inspect) => {
                let key = cluster_key::read_blocking(docker_host)
                    .map_err(|e| KeyError::Cluster(chain(&e).to_string()))?
                    .ok_or_else(|| KeyError::Cluster("no manager join token: not a swarm manager".into()))?;
                Ok(LoadedKeys {
                    keyring: Keyring::from_secrets(&[key]),
                    cluster_key: Some(key),
                })
            }
            (Self::Cluster { docker_host, state_dir }, KeyUse::Serve) => {
                let why = match cluster_key::read_blocking(docker_host) {
                    Ok(Some(key)) => {
                        tracing::info!(
                            "cookie key derived from the swarm's manager join token (the same on every manager)"
                        );
                        return Ok(LoadedKeys {
                            keyring: Keyring::from_secrets(&[key]),
                            cluster_key: Some(key),
                        });
                    }
                    Ok(None) => "no manager join token (not a swarm manager?)".to_owned(),
                    Err(err) => format!("cannot read the swarm's join token ({})", chain(&err)),
                };
                tracing::warn!("{why}: cookies are signed with the state directory's key until it can be read");
                Ok(plain(Keyring::load_or_generate(state_dir)?))
            }
        }
    }
}
