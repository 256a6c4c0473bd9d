//! Where ACME state lives: the state directory of this host, or, with
//! `--docker`, the swarm (shared by every manager). One interface for the
//! manager; on a single host a lock is always granted.

use super::{
    state_dir::StateDir,
    swarm_store::{Lock, SwarmStore},
};
use crate::error::chain;

/// The store of one CA's account and certificates.
#[derive(Clone)]
pub enum Store {
    /// Files under `--state-dir` (mode 0600).
    Dir(StateDir),
    /// Swarm configs, sealed.
    Swarm(SwarmStore),
}

/// A stored certificate: its PEM (chain and key), and whether it should be
/// sealed again under the current key.
pub struct StoredCert {
    /// The names it was stored under (empty: read them from the PEM).
    pub names: Vec<String>,
    /// Chain then key, PEM.
    pub pem: Vec<u8>,
    /// Sealed under the key before a join-token rotation.
    pub stale: bool,
}

impl Store {
    /// The swarm store, when state is shared.
    pub fn swarm(&self) -> Option<&SwarmStore> {
        match self {
            Self::Swarm(s) => Some(s),
            Self::Dir(_) => None,
        }
    }

    /// The stored account (JSON credentials) and whether it is stale.
    ///
    /// # Errors
    /// When it cannot be read.
    pub async fn account(&self) -> Result<Option<(Vec<u8>, bool)>, String> {
        match self {
            Self::Dir(d) => Ok(d
                .read("account.json")
                .map_err(|e| chain(&e).to_string())?
                .map(|a| (a, false))),
            Self::Swarm(s) => s.account().await.map_err(|e| chain(&e).to_string()),
        }
    }

    /// Stores the account.
    ///
    /// # Errors
    /// When it cannot be written.
    pub async fn save_account(&self, json: &[u8]) -> Result<(), String> {
        match self {
            Self::Dir(d) => d.write("account.json", json).map_err(|e| chain(&e).to_string()),
            Self::Swarm(s) => s.save_account(json).await.map_err(|e| chain(&e).to_string()),
        }
    }

    /// Every stored certificate.
    ///
    /// # Errors
    /// When the store cannot be read.
    pub async fn certs(&self) -> Result<Vec<StoredCert>, String> {
        match self {
            Self::Dir(d) => {
                let mut out = Vec::new();
                for name in d.list("certs").map_err(|e| chain(&e).to_string())? {
                    if let Some(pem) = d.read(&format!("certs/{name}")).map_err(|e| chain(&e).to_string())? {
                        out.push(StoredCert {
                            names: Vec::new(),
                            pem,
                            stale: false,
                        });
                    }
                }
                Ok(out)
            }
            Self::Swarm(s) => Ok(s
                .certs()
                .await
                .map_err(|e| chain(&e).to_string())?
                .into_iter()
                .map(|(names, pem, stale)| StoredCert { names, pem, stale })
                .collect()),
        }
    }

    /// Stores the certificate of `names` as `file` (in the state
    /// directory) or the next version (in the swarm).
    ///
    /// # Errors
    /// When it cannot be written.
    pub async fn save_cert(&self, names: &[String], file: &str, pem: &[u8]) -> Result<(), String> {
        match self {
            Self::Dir(d) => d
                .write(&format!("certs/{file}"), pem)
                .map_err(|e| chain(&e).to_string()),
            Self::Swarm(s) => s.save_cert(names, pem).await.map_err(|e| chain(&e).to_string()),
        }
    }

    /// Takes the lock on `what` (always granted on one host).
    ///
    /// # Errors
    /// When the swarm cannot be asked.
    pub async fn lock(&self, what: &str, now: i64, ttl_secs: u64) -> Result<Lock, String> {
        match self {
            Self::Dir(_) => Ok(Lock::Acquired(String::new())),
            Self::Swarm(s) => s.lock(what, now, ttl_secs).await.map_err(|e| chain(&e).to_string()),
        }
    }

    /// Releases a lock.
    pub async fn unlock(&self, lock: &Lock) {
        if let (Self::Swarm(s), Lock::Acquired(id)) = (self, lock) {
            s.unlock(id).await;
        }
    }
}
