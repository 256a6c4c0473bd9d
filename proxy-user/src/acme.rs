//! Automatic certificates (ACME, RFC 8555) for the names the services
//! declare, never for a name a client merely sends: the CA's rate limits
//! are not for strangers to burn.
//!
//! Layout: `acme/manager.rs` keeps each certificate obtained and fresh,
//! `acme/order.rs` runs one order, `acme/account.rs` restores or creates
//! the account (through `acme/client.rs`), `tls/challenges.rs` holds the
//! HTTP-01 and TLS-ALPN-01 answers the listeners serve,
//! `acme/dns_hook.rs` calls the operator's DNS-01 program,
//! `acme/schedule.rs` says when to renew or retry, `acme/store.rs` is
//! where state lives: `acme/state_dir.rs` on one host,
//! `acme/swarm_store.rs` (sealed by `acme/seal.rs`) shared by the
//! managers, whose challenges `acme/watch.rs` follows; `acme/report.rs`
//! prints a running instance's state (`acme status`).
//!
//! Across managers (`--docker`), Swarm itself is the store and the lock:
//! every manager runs the same loop, one takes a name's lock and orders,
//! the others answer its challenges and adopt the certificate it stores.
//!
//! A certificate from a file wins over ACME for the same names: a name a
//! file certificate serves is not ordered.

mod account;
mod client;
mod dns_hook;
mod manager;
mod order;
pub mod report;
mod schedule;
mod seal;
mod state_dir;
mod store;
mod swarm_store;
mod watch;

use std::{
    path::PathBuf,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicU64, Ordering},
    },
};

pub use self::dns_hook::DnsHook;
use self::{seal::Sealer, state_dir::StateDir, store::Store, swarm_store::SwarmStore};
use crate::{
    balance::Balancer,
    cookie::KeyringHandle,
    discovery::engine::Engine,
    tls::{ChallengeBook, Tls},
};

/// Let's Encrypt's production directory, the default CA.
pub const LETS_ENCRYPT: &str = "https://acme-v02.api.letsencrypt.org/directory";

/// Let's Encrypt's staging directory (`--acme-directory staging`).
pub const LETS_ENCRYPT_STAGING: &str = "https://acme-staging-v02.api.letsencrypt.org/directory";

/// The validated ACME settings of `run`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcmeSettings {
    /// The account's contact (`--acme-email`).
    pub email: Option<String>,
    /// The CA's directory URL (`--acme-directory`).
    pub directory: String,
    /// A root certificate trusted for the CA's own HTTPS beside the
    /// system's (`--acme-ca-root`), for private CAs.
    pub ca_root: Option<PathBuf>,
    /// DNS-01 through this program (`--acme-dns-hook`).
    pub dns_hook: Option<DnsHook>,
    /// The challenge answered for names that are not wildcards.
    pub challenge: Challenge,
    /// Where the account and certificates are kept.
    pub state_dir: PathBuf,
    /// The first wait after a failure, doubled up to an hour.
    pub retry_secs: u64,
    /// How long an order lock holds before another manager may take it
    /// over (`--acme-lock-ttl`).
    pub lock_ttl_secs: u64,
    /// With `--docker`: state lives in the swarm of this engine.
    pub docker_host: Option<String>,
}

/// A challenge type this instance answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Challenge {
    /// HTTP-01, on the plain listeners.
    Http01,
    /// TLS-ALPN-01, on the TLS listeners.
    TlsAlpn01,
    /// DNS-01, through the hook.
    Dns01,
}

/// Where a managed certificate stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CertState {
    /// Not obtained yet, first order due.
    Waiting,
    /// First order under way.
    Ordering,
    /// Served; renewal scheduled.
    Valid,
    /// Renewal under way (the current certificate is served).
    Renewing,
    /// The last attempt failed; retried after a back-off.
    Failed,
    /// A certificate file serves these names: not ordered.
    FromFile,
}

impl CertState {
    /// As the status shows it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Waiting => "waiting",
            Self::Ordering => "ordering",
            Self::Valid => "valid",
            Self::Renewing => "renewing",
            Self::Failed => "failed",
            Self::FromFile => "from_file",
        }
    }
}

/// One managed certificate, as `/api/status` shows it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ManagedStatus {
    /// Its names, the main one first.
    pub names: Vec<String>,
    /// Where it stands.
    pub state: CertState,
    /// Serial of the certificate served, upper-case hex.
    pub serial: Option<String>,
    /// Its expiry, Unix seconds.
    pub not_after: Option<i64>,
    /// When it is looked at next (renewal or retry), Unix seconds.
    pub next_attempt: Option<i64>,
    /// When an order was last placed, Unix seconds.
    pub last_attempt: Option<i64>,
    /// Failures in a row.
    pub failures: u32,
    /// The last failure's reason.
    pub error: Option<String>,
    /// The instance that orders it.
    pub holder: Option<String>,
}

/// Counters of the process.
#[derive(Debug, Default)]
pub struct AcmeStats {
    /// Certificates obtained.
    pub issued: AtomicU64,
    /// Orders that failed.
    pub failed: AtomicU64,
}

/// ACME as the rest of the process sees it.
pub struct Acme {
    settings: AcmeSettings,
    /// The challenges answered now.
    pub book: Arc<ChallengeBook>,
    status: Arc<Mutex<Vec<ManagedStatus>>>,
    /// Counters.
    pub stats: Arc<AcmeStats>,
}

impl Acme {
    /// ACME with `settings`, not started.
    pub fn new(settings: AcmeSettings) -> Arc<Self> {
        Arc::new(Self {
            settings,
            book: Arc::default(),
            status: Arc::default(),
            stats: Arc::default(),
        })
    }

    /// Starts managing the certificates `balancer`'s services ask for,
    /// served through `tls`, the state sealed with `keyring` when it lives
    /// in the swarm. On the current runtime; with `--docker`, once the
    /// engine answers (retried, so that an engine that is away at start
    /// delays ACME and nothing else).
    pub fn start(&self, tls: Arc<Tls>, balancer: Arc<Balancer>, keyring: KeyringHandle) {
        let (settings, book) = (self.settings.clone(), self.book.clone());
        let (status, stats) = (self.status.clone(), self.stats.clone());
        tokio::spawn(async move {
            let instance = crate::instance::instance().to_owned();
            let (store, me) = match &settings.docker_host {
                None => (
                    Store::Dir(StateDir::new(&settings.state_dir, &settings.directory)),
                    instance,
                ),
                Some(host) => {
                    let engine = connect(host).await;
                    // Locks and the status name the node: which manager orders.
                    let node = engine.node_id().await.ok().flatten().unwrap_or_default();
                    let me = format!("{node}/{instance}");
                    let swarm = SwarmStore::new(engine, Sealer::new(keyring), &settings.directory, me.clone());
                    tokio::spawn(watch::follow(swarm.clone(), book.clone()));
                    (Store::Swarm(swarm), me)
                }
            };
            let parts = manager::Parts {
                store,
                book,
                tls,
                balancer,
                me,
                status,
                stats,
            };
            manager::Manager::new(settings, parts).run().await;
        });
    }

    /// Every managed certificate.
    pub fn status(&self) -> Vec<ManagedStatus> {
        self.status.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Certificates obtained and orders failed.
    pub fn counts(&self) -> (u64, u64) {
        (
            self.stats.issued.load(Ordering::Relaxed),
            self.stats.failed.load(Ordering::Relaxed),
        )
    }
}

/// The engine at `host`, once it answers (retried every few seconds).
async fn connect(host: &str) -> Engine {
    let mut wait = std::time::Duration::from_millis(500);
    loop {
        match Engine::connect(host).await {
            Ok(engine) => return engine,
            Err(err) => {
                tracing::warn!(
                    "ACME waits for the Docker engine (state lives in the swarm): {}",
                    crate::error::chain(&err)
                );
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(std::time::Duration::from_secs(5));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::CertState;

    /// The log's spelling of a state is the API's.
    #[test]
    fn states_read_the_same_in_the_log_and_the_api() {
        use CertState::*;
        for s in [Waiting, Ordering, Valid, Renewing, Failed, FromFile] {
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
            assert_eq!(serde_json::from_value::<CertState>(s.as_str().into()).unwrap(), s);
        }
    }
}
