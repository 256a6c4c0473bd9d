//! HTTPS termination with rustls (aws-lc-rs): one server configuration for
//! every TLS listener and worker, TLS 1.2 and 1.3 (or 1.3 only), ALPN `h2`
//! and `http/1.1`.
//!
//! Layout: `tls/certs.rs` reads certificate files, `tls/library.rs` keeps
//! the sources and their last good certificates, `tls/store.rs` picks one
//! per handshake by SNI and key type, `tls/ticket.rs` seals session
//! tickets every manager can open, `tls/handshake.rs` runs a bounded
//! handshake and counts it.
//!
//! Reloads (SIGHUP, the admin API's reload, and a poll of the files every
//! [`WATCH_INTERVAL`]) build a new SNI index and swap it in: handshakes
//! from then on see the new certificates, connections keep theirs.

mod certs;
mod challenges;
mod handshake;
mod library;
mod store;
mod ticket;

use std::{
    path::PathBuf,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use rustls::{ServerConfig, version};

pub use self::{
    certs::{CertFiles, LoadedCert, from_pem},
    challenges::{ACME_TLS_ALPN, ChallengeBook, HTTP_CHALLENGE_PATH, alpn_config},
    handshake::{Accepted, DURATION_BUCKETS, TlsCounts, TlsStats},
    library::CertStatus,
    ticket::PERIOD as TICKET_PERIOD,
};
use self::{
    library::Library,
    store::{CertStore, SniResolver},
    ticket::ClusterTicketer,
};
use crate::cookie::KeyringHandle;

/// How often the certificate files are checked for changes. A change is
/// read one interval after it is seen, so that a certificate and its key
/// written one after the other are read together; a read that still
/// caught a half-written file is repeated once the files change again.
pub const WATCH_INTERVAL: Duration = Duration::from_secs(2);

/// The oldest TLS version served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MinVersion {
    /// TLS 1.2 and 1.3.
    Tls12,
    /// TLS 1.3 only.
    Tls13,
}

/// The validated TLS settings of `run`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    /// `--tls-cert-dir`.
    pub cert_dir: Option<PathBuf>,
    /// `--tls-cert` and `--tls-key`: the default certificate.
    pub cert: Option<CertFiles>,
    /// `--tls-min-version`.
    pub min_version: MinVersion,
    /// The whole handshake, from the first byte.
    pub handshake_timeout: Duration,
    /// The largest ClientHello accepted, in bytes.
    pub max_client_hello: usize,
    /// Certificates also come from ACME: starting with none is fine.
    pub automatic: bool,
}

/// The largest ClientHello accepted. Today's, post-quantum key shares
/// included, are under 2 KiB; this leaves room without letting a client
/// make a worker buffer much.
pub const MAX_CLIENT_HELLO: usize = 16 * 1024;

impl TlsSettings {
    /// Settings for these sources, with a handshake timeout of
    /// `handshake_timeout_secs` and the [`MAX_CLIENT_HELLO`] limit.
    pub fn new(
        cert_dir: Option<PathBuf>,
        cert: Option<CertFiles>,
        min_version: MinVersion,
        handshake_timeout_secs: u64,
    ) -> Self {
        Self {
            cert_dir,
            cert,
            min_version,
            handshake_timeout: Duration::from_secs(handshake_timeout_secs),
            max_client_hello: MAX_CLIENT_HELLO,
            automatic: false,
        }
    }
}

/// Why TLS cannot start.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// No certificate could be loaded.
    #[error("no usable TLS certificate{}", .0.iter().map(|e| format!("\n  {e}")).collect::<String>())]
    NoCertificate(Vec<String>),
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Config(#[from] rustls::Error),
}

/// aws-lc-rs with AES-128-GCM first. With the server's order in force
/// (below), clients that list AES-256 first (OpenSSL does) still get
/// AES-128-GCM with SHA-256: as strong in practice, faster in bulk, and
/// its key schedule is cheaper than SHA-384's (about a tenth of a full
/// handshake's CPU time here).
fn provider() -> rustls::crypto::CryptoProvider {
    use rustls::CipherSuite as S;
    let mut provider = rustls::crypto::aws_lc_rs::default_provider();
    provider.cipher_suites.sort_by_key(|s| {
        !matches!(
            s.suite(),
            S::TLS13_AES_128_GCM_SHA256
                | S::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
                | S::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256
        )
    });
    provider
}

/// Reads the certificates of `settings` once, as a start would.
///
/// # Errors
/// When none loads.
pub fn check(settings: &TlsSettings) -> Result<(), TlsError> {
    load(
        Library::new(settings.cert_dir.clone(), settings.cert.clone()).quiet(),
        settings,
    )
    .map(drop)
}

fn load(mut library: Library, settings: &TlsSettings) -> Result<Library, TlsError> {
    let mut errors = library.refresh();
    if settings.automatic && errors.is_empty() {
        return Ok(library);
    }
    if library.serving() == 0 {
        if errors.is_empty() {
            errors.push(match &settings.cert_dir {
                Some(dir) => format!(
                    "{}: no certificate found (layouts: swarm-sticky run --help, --tls-cert-dir)",
                    dir.display()
                ),
                None => "no --tls-cert-dir or --tls-cert given".to_owned(),
            });
        }
        return Err(TlsError::NoCertificate(errors));
    }
    Ok(library)
}

/// The two sources of the SNI index: the files' certificates (indexed
/// once per reload) and, behind them, those ACME obtained.
#[derive(Default)]
struct Layers {
    files: CertStore,
    automatic: Vec<LoadedCert>,
}

/// TLS for every listener that has it.
pub struct Tls {
    settings: TlsSettings,
    server_config: Arc<ServerConfig>,
    resolver: Arc<SniResolver>,
    library: Mutex<Library>,
    /// What the resolver's index is built from.
    layers: Mutex<Layers>,
    /// The TLS-ALPN-01 answers, when ACME runs.
    challenges: Option<Arc<ChallengeBook>>,
    /// Handshake counters.
    pub stats: TlsStats,
}

impl Tls {
    /// Loads the certificates and builds the server configuration, with
    /// session tickets sealed under keys derived from `keyring`, and
    /// TLS-ALPN-01 answered from `challenges`.
    ///
    /// # Errors
    /// When no certificate loads, or rustls refuses the settings.
    pub fn new(
        settings: TlsSettings,
        keyring: KeyringHandle,
        challenges: Option<Arc<ChallengeBook>>,
    ) -> Result<Arc<Self>, TlsError> {
        let library = load(
            Library::new(settings.cert_dir.clone(), settings.cert.clone()),
            &settings,
        )?;
        let files = library.store();
        let resolver = Arc::new(SniResolver::new(files.clone()));
        let provider = Arc::new(provider());
        let versions: &[&rustls::SupportedProtocolVersion] = match settings.min_version {
            MinVersion::Tls12 => &[&version::TLS13, &version::TLS12],
            MinVersion::Tls13 => &[&version::TLS13],
        };
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(versions)?
            .with_no_client_auth()
            .with_cert_resolver(resolver.clone());
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        // The server's order (see `provider`) rather than whatever a
        // client lists first.
        config.ignore_client_order = true;
        config.ticketer = Arc::new(ClusterTicketer::new(keyring));
        Ok(Arc::new(Self {
            settings,
            server_config: Arc::new(config),
            resolver,
            library: Mutex::new(library),
            layers: Mutex::new(Layers {
                files,
                automatic: Vec::new(),
            }),
            challenges,
            stats: TlsStats::default(),
        }))
    }

    fn library(&self) -> std::sync::MutexGuard<'_, Library> {
        self.library.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Re-reads the certificate sources now; new handshakes use what
    /// loaded, a source that failed keeps its previous certificate.
    /// Returns the errors.
    pub fn reload(&self) -> Vec<String> {
        let mut library = self.library();
        let errors = library.refresh();
        self.swap_in(&library);
        errors
    }

    /// The ACME challenges answered now (HTTP-01 on the plain listeners
    /// reads them here too), when ACME runs.
    pub fn challenges(&self) -> Option<&ChallengeBook> {
        self.challenges.as_deref()
    }

    fn layers(&self) -> std::sync::MutexGuard<'_, Layers> {
        self.layers.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Indexes the files' certificates again and serves them, with the
    /// automatic ones behind, to new handshakes.
    fn swap_in(&self, library: &Library) {
        let mut layers = self.layers();
        layers.files = library.store();
        self.serve(&layers);
    }

    fn serve(&self, layers: &Layers) {
        let acme: Vec<&LoadedCert> = layers.automatic.iter().collect();
        self.resolver.replace(layers.files.clone().with_acme(&acme));
    }

    /// Serves `certs`, obtained by ACME, from the next handshake on, for
    /// the names no certificate file serves.
    pub fn set_automatic(&self, certs: Vec<LoadedCert>) {
        let mut layers = self.layers();
        layers.automatic = certs;
        self.serve(&layers);
    }

    /// Whether a certificate file serves `name` (exactly, or `*.parent`
    /// for a wildcard name).
    pub fn file_serves(&self, name: &str) -> bool {
        self.layers().files.serves(name)
    }

    /// Follows the certificate files: checks them every [`WATCH_INTERVAL`]
    /// and reloads one interval after it sees a change.
    pub async fn watch(self: Arc<Self>) {
        let mut tick = tokio::time::interval(WATCH_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut pending = false;
        loop {
            tick.tick().await;
            let this = self.clone();
            // Directory scans and stat calls block: off the runtime.
            let changed = tokio::task::spawn_blocking(move || this.library().changed())
                .await
                .unwrap_or(false);
            if changed && !pending {
                pending = true;
                continue;
            }
            if pending {
                pending = false;
                let this = self.clone();
                let _done = tokio::task::spawn_blocking(move || {
                    tracing::info!("certificate files changed: reloading");
                    this.reload()
                })
                .await;
            }
        }
    }

    /// Every certificate source with what it serves and its last error.
    pub fn status(&self) -> Vec<CertStatus> {
        self.library().status()
    }
}
