//! ACME state kept in the swarm, shared by every manager with no store of
//! its own: Swarm configs, written through the Docker API into the
//! managers' Raft log.
//!
//! - `…-account-<ca>-v<N>`: the account, sealed ([`super::seal`]);
//! - `…-cert-<id>-v<N>`: a certificate chain and its key, sealed; configs
//!   are immutable, so a renewal writes the next version and the one
//!   before the previous is pruned;
//! - `…-lock-<id>`: who orders a certificate now. Creating a config whose
//!   name exists fails in Raft, so exactly one manager gets it; its labels
//!   name the holder and an expiry, after which another manager deletes it
//!   (by ID: never a newer lock of the same name) and takes over;
//! - `…-http-01-<id>` and `…-tls-alpn-01-<id>`: the challenges an order has
//!   published (key authorizations, which the CA checks publicly anyway),
//!   so that whichever manager the CA reaches answers.

use std::collections::HashMap;

use sha2::Digest as _;

use super::seal::{SealError, Sealer};
use crate::discovery::{
    configs::{Created, StoredConfig},
    engine::{Engine, EngineError},
};

/// The label every object carries: its kind.
pub const KIND: &str = "swarm-sticky.acme";
const CA: &str = "swarm-sticky.acme.ca";
const NAMES: &str = "swarm-sticky.acme.names";
const VERSION: &str = "swarm-sticky.acme.version";
const HOLDER: &str = "swarm-sticky.acme.holder";
const EXPIRES: &str = "swarm-sticky.acme.expires";
const TOKEN: &str = "swarm-sticky.acme.token";

/// Why the swarm store failed.
#[derive(Debug, thiserror::Error)]
pub enum SwarmStoreError {
    /// The Docker API failed.
    #[error("swarm configs: {0}")]
    Engine(#[from] EngineError),
    /// A stored object did not open.
    #[error("{name}: {source}")]
    Seal {
        /// The config.
        name: String,
        /// Why.
        #[source]
        source: SealError,
    },
}

/// A lock held by another manager.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    /// Who holds it (`node/instance`).
    pub holder: String,
    /// Until when, Unix seconds.
    pub expires: i64,
}

/// What taking a lock gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lock {
    /// Ours: the config's ID, to delete when done.
    Acquired(String),
    /// Another manager's.
    HeldBy(Held),
}

/// A challenge some manager published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    /// `http-01` or `tls-alpn-01`.
    pub kind: String,
    /// The HTTP-01 token, or the TLS-ALPN-01 name.
    pub key: String,
    /// The key authorization.
    pub key_authorization: String,
}

/// The swarm's ACME store for one CA.
#[derive(Clone)]
pub struct SwarmStore {
    engine: Engine,
    sealer: Sealer,
    /// A short digest of the CA's directory URL.
    ca: String,
    /// This instance, as locks name it.
    holder: String,
}

/// A short, name-safe digest.
pub fn digest(parts: &[&str]) -> String {
    let mut h = sha2::Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0]);
    }
    h.finalize()[..6].iter().map(|b| format!("{b:02x}")).collect()
}

fn labels(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

fn version(c: &StoredConfig) -> u64 {
    c.labels.get(VERSION).and_then(|v| v.parse().ok()).unwrap_or(0)
}

impl SwarmStore {
    /// The store of the CA at `directory` through `engine`, sealing with
    /// `sealer`, taking locks as `holder`.
    pub fn new(engine: Engine, sealer: Sealer, directory: &str, holder: String) -> Self {
        Self {
            engine,
            sealer,
            ca: digest(&[directory]),
            holder,
        }
    }

    /// The engine (for its events).
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    async fn of_kind(&self, kind: &str) -> Result<Vec<StoredConfig>, EngineError> {
        let all = self.engine.configs_labelled(KIND).await?;
        Ok(all
            .into_iter()
            .filter(|c| c.labels.get(KIND).map(String::as_str) == Some(kind))
            .filter(|c| c.labels.get(CA) == Some(&self.ca))
            .collect())
    }

    /// The account, if one is stored; `stale` when sealed under the key
    /// before a rotation.
    ///
    /// # Errors
    /// When the API fails or the stored account does not open.
    pub async fn account(&self) -> Result<Option<(Vec<u8>, bool)>, SwarmStoreError> {
        let latest = self.of_kind("account").await?.into_iter().max_by_key(version);
        let Some(c) = latest else { return Ok(None) };
        match self.sealer.open(&format!("account {}", self.ca), &c.data) {
            Ok(opened) => Ok(Some((opened.data, opened.stale))),
            // Sealed under a key no manager has any more (two join-token
            // rotations in a row): a new account replaces it.
            Err(SealError::UnknownKey) => {
                tracing::warn!(config = %c.name, "ACME: the stored account was sealed under a key this swarm no longer has; creating a new one");
                Ok(None)
            }
            Err(source) => Err(SwarmStoreError::Seal { name: c.name, source }),
        }
    }

    /// Stores the account (the next version).
    ///
    /// # Errors
    /// When the API fails.
    pub async fn save_account(&self, data: &[u8]) -> Result<(), SwarmStoreError> {
        let existing = self.of_kind("account").await?;
        let next = existing.iter().map(version).max().map_or(1, |v| v + 1);
        let sealed = self.sealer.seal(&format!("account {}", self.ca), data);
        let name = format!("swarm-sticky-acme-account-{}-v{next}", self.ca);
        let v = next.to_string();
        self.engine
            .create_config(
                &name,
                labels(&[(KIND, "account"), (CA, &self.ca), (VERSION, &v)]),
                &sealed,
            )
            .await?;
        self.prune(existing, next).await;
        Ok(())
    }

    /// The latest certificate of every name set: (names, PEM, stale). One
    /// that does not open is logged and skipped.
    ///
    /// # Errors
    /// When the API fails.
    pub async fn certs(&self) -> Result<Vec<(Vec<String>, Vec<u8>, bool)>, SwarmStoreError> {
        let mut latest: HashMap<String, StoredConfig> = HashMap::new();
        for c in self.of_kind("cert").await? {
            let Some(names) = c.labels.get(NAMES).cloned() else {
                continue;
            };
            if latest.get(&names).is_none_or(|l| version(l) < version(&c)) {
                latest.insert(names, c);
            }
        }
        let mut out = Vec::new();
        for (names, c) in latest {
            match self.sealer.open(&format!("cert {} {names}", self.ca), &c.data) {
                Ok(o) => out.push((names.split(',').map(str::to_owned).collect(), o.data, o.stale)),
                Err(err) => tracing::error!(config = %c.name, "ACME: stored certificate does not open: {err}"),
            }
        }
        Ok(out)
    }

    /// Stores a certificate of `names` (the next version) and prunes the
    /// versions before the previous one.
    ///
    /// # Errors
    /// When the API fails.
    pub async fn save_cert(&self, names: &[String], pem: &[u8]) -> Result<(), SwarmStoreError> {
        let joined = names.join(",");
        let id = digest(&[&self.ca, &joined]);
        let existing: Vec<StoredConfig> = self
            .of_kind("cert")
            .await?
            .into_iter()
            .filter(|c| c.labels.get(NAMES) == Some(&joined))
            .collect();
        let next = existing.iter().map(version).max().map_or(1, |v| v + 1);
        let sealed = self.sealer.seal(&format!("cert {} {joined}", self.ca), pem);
        let name = format!("swarm-sticky-acme-cert-{id}-v{next}");
        let v = next.to_string();
        let created = self
            .engine
            .create_config(
                &name,
                labels(&[(KIND, "cert"), (CA, &self.ca), (NAMES, &joined), (VERSION, &v)]),
                &sealed,
            )
            .await?;
        if created == Created::NameTaken {
            tracing::warn!(config = %name, "ACME: another manager stored this version first");
        }
        self.prune(existing, next).await;
        Ok(())
    }

    /// Deletes the versions of `existing` older than `latest - 1`.
    async fn prune(&self, existing: Vec<StoredConfig>, latest: u64) {
        for old in existing.into_iter().filter(|c| version(c) + 1 < latest) {
            if let Err(err) = self.engine.delete_config(&old.id).await {
                tracing::warn!(config = %old.name, "ACME: cannot prune an old version: {err}");
            }
        }
    }

    /// Takes the lock on `what` for `ttl_secs`, taking over one that
    /// expired.
    ///
    /// # Errors
    /// When the API fails.
    pub async fn lock(&self, what: &str, now: i64, ttl_secs: u64) -> Result<Lock, SwarmStoreError> {
        let name = format!("swarm-sticky-acme-lock-{}", digest(&[&self.ca, what]));
        let expires = (now + i64::try_from(ttl_secs).unwrap_or(i64::MAX / 4)).to_string();
        // Bounded: a stale lock is removed once, then it is ours or theirs.
        for _ in 0..2 {
            let l = labels(&[
                (KIND, "lock"),
                (CA, &self.ca),
                (NAMES, what),
                (HOLDER, &self.holder),
                (EXPIRES, &expires),
            ]);
            // A config holds at least a byte: the holder, for `docker
            // config inspect`.
            if let Created::Yes(id) = self.engine.create_config(&name, l, self.holder.as_bytes()).await? {
                return Ok(Lock::Acquired(id));
            }
            let Some(current) = self.of_kind("lock").await?.into_iter().find(|c| c.name == name) else {
                continue;
            };
            let held = Held {
                holder: current.labels.get(HOLDER).cloned().unwrap_or_default(),
                expires: current.labels.get(EXPIRES).and_then(|e| e.parse().ok()).unwrap_or(0),
            };
            if held.expires > now {
                return Ok(Lock::HeldBy(held));
            }
            tracing::warn!(names = what, holder = %held.holder, "ACME: taking over an expired order lock");
            self.engine.delete_config(&current.id).await?;
        }
        Ok(Lock::HeldBy(Held {
            holder: "another manager".to_owned(),
            expires: now,
        }))
    }

    /// Releases a lock taken with [`lock`](Self::lock).
    pub async fn unlock(&self, id: &str) {
        if let Err(err) = self.engine.delete_config(id).await {
            tracing::warn!("ACME: cannot release the order lock (it expires by itself): {err}");
        }
    }

    /// Publishes a challenge for the other managers; the config's ID.
    ///
    /// # Errors
    /// When the API fails.
    pub async fn publish(
        &self,
        kind: &str,
        key: &str,
        key_authorization: &str,
        expires: i64,
    ) -> Result<String, SwarmStoreError> {
        let name = format!("swarm-sticky-acme-{kind}-{}", digest(&[key, key_authorization]));
        let e = expires.to_string();
        let l = labels(&[(KIND, kind), (CA, &self.ca), (TOKEN, key), (EXPIRES, &e)]);
        match self
            .engine
            .create_config(&name, l, key_authorization.as_bytes())
            .await?
        {
            Created::Yes(id) => Ok(id),
            Created::NameTaken => Ok(String::new()),
        }
    }

    /// Withdraws a published challenge.
    pub async fn withdraw(&self, id: &str) {
        if id.is_empty() {
            return;
        }
        if let Err(err) = self.engine.delete_config(id).await {
            tracing::warn!("ACME: cannot withdraw a challenge: {err}");
        }
    }

    /// Every challenge published now; expired ones (an order whose manager
    /// died) are deleted.
    ///
    /// # Errors
    /// When the API fails.
    pub async fn challenges(&self, now: i64) -> Result<Vec<Published>, SwarmStoreError> {
        let mut out = Vec::new();
        for kind in ["http-01", "tls-alpn-01"] {
            for c in self.of_kind(kind).await? {
                let expires: i64 = c.labels.get(EXPIRES).and_then(|e| e.parse().ok()).unwrap_or(0);
                if expires < now {
                    let _ = self.engine.delete_config(&c.id).await;
                    continue;
                }
                let Some(key) = c.labels.get(TOKEN) else { continue };
                out.push(Published {
                    kind: kind.to_owned(),
                    key: key.clone(),
                    key_authorization: String::from_utf8_lossy(&c.data).into_owned(),
                });
            }
        }
        Ok(out)
    }
}
