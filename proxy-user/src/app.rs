//! The process: [`App::build`] sets up every part from a valid
//! [`Config`], [`App::run`] starts the workers and the background work (by
//! name) and waits for signals.
//!
//! The order is fixed. The admin listener comes first, so that `/healthz`
//! answers and `/readyz` says 503 while the rest starts (reading the
//! cluster key can wait on Docker for a few seconds). Then the keys, the
//! access log, the balancer and the data plane; a failure there exits
//! before any worker runs. `run` follows Docker until the first table is
//! in, starts the workers, the health checks and the cluster key follower,
//! takes the published addresses over (from a predecessor, if one runs)
//! and turns ready.
//! SIGHUP re-reads the static services. SIGTERM or SIGINT drains: this
//! process leaves the eBPF steering (a successor, if any, keeps the
//! published ports), workers stop accepting after a short linger, finish
//! in-flight requests within the grace period, and the process exits.

use std::{
    sync::{Arc, Mutex, PoisonError, atomic::Ordering},
    time::Duration,
};

use anyhow::Context as _;
use tokio::{
    io::unix::AsyncFd,
    signal::unix::{SignalKind, signal},
};
use tracing::{info, warn};

use crate::{
    access_log::AccessLog,
    acme::Acme,
    admin::{self, AdminState, Parts, ReloadHook},
    balance::{Balancer, spawn_health_checks},
    config::{Config, KeyUse, LogFormat, ServicesSource},
    cookie::KeyringHandle,
    dataplane::{Dataplane, Steering},
    discovery::{self, DiscoveryStatus, cluster_key},
    error::FieldError,
    proxy::{Edge, Proxy},
    sources::Sources,
    tls::Tls,
    worker::{Shutdown, StopPolicy, Worker, WorkerSpec, WorkerStats},
};

/// How long a stopping worker keeps accepting: long enough for handshakes
/// the kernel steered to it just before a successor took over to complete.
const HANDOVER_LINGER: Duration = Duration::from_millis(300);

/// How long a starting process waits for its first table from Docker
/// before it serves without one.
const FIRST_TABLE: Duration = Duration::from_secs(10);

/// How long a draining process keeps the published addresses for a
/// successor that is still starting.
const SUCCESSOR_WAIT: Duration = Duration::from_secs(15);

/// Every part of a process that serves, set up and not yet running.
pub struct App {
    config: Config,
    /// Admin API, health checks, discovery and signals (one thread).
    runtime: tokio::runtime::Runtime,
    admin: Arc<AdminState>,
    balancer: Arc<Balancer>,
    keyring: KeyringHandle,
    /// The key derived from the join token at start, if it was read.
    cluster_key: Option<[u8; 32]>,
    sources: Arc<Sources>,
    proxy: Arc<Proxy>,
    /// With an HTTPS listener.
    tls: Option<Arc<Tls>>,
    /// Automatic certificates, when on.
    acme: Option<Arc<Acme>>,
    dataplane: Arc<Mutex<Dataplane>>,
    /// `sockets[worker][published address]`.
    sockets: Vec<Vec<std::net::TcpListener>>,
}

impl App {
    /// Sets up the admin listener, the keys, the access log, the balancer,
    /// the service sources and the data plane.
    ///
    /// # Errors
    /// When a listener cannot be bound, the keys or the access log cannot
    /// be read, or steering cannot be set up.
    pub fn build(config: Config) -> anyhow::Result<Self> {
        raise_nofile_limit();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("main")
            .enable_all()
            .build()
            .context("main runtime")?;
        let admin = Arc::new(AdminState::new(config.admin_access.clone()));
        let listener = admin::listener::bind(config.admin)
            .with_context(|| format!("bind the admin listener {} (--admin)", config.admin))?;
        {
            let _in_runtime = runtime.enter();
            let listener = tokio::net::TcpListener::from_std(listener).context("admin listener")?;
            runtime.spawn(admin::serve(listener, admin.clone()));
        }
        let keys = config.keys.load(KeyUse::Serve)?;
        let access_log = AccessLog::open(&config.access_log)?;
        let balancer = Arc::new(Balancer::new(config.services.clone()));
        let keyring = KeyringHandle::new(keys.keyring);
        let acme = config.acme.clone().map(Acme::new);
        let challenges = acme.as_ref().map(|a| a.book.clone());
        let tls = match config.edge.tls.clone() {
            Some(settings) => Some(Tls::new(settings, keyring.clone(), challenges).context("set up TLS")?),
            None => None,
        };
        let edge = Edge {
            listeners: config.edge.listeners.clone(),
            tls: tls.clone(),
            proxy_protocol_from: config.edge.proxy_protocol_from.clone(),
        };
        let proxy = Proxy::new(balancer.clone(), keyring.clone(), access_log, edge);
        let sources = Sources::new(balancer.clone(), config.services.clone());
        let (dataplane, sockets) = Dataplane::start(&config.dataplane).context("set up steering")?;
        Ok(Self {
            config,
            runtime,
            admin,
            balancer,
            keyring,
            cluster_key: keys.cluster_key,
            sources,
            proxy,
            tls,
            acme,
            dataplane: Arc::new(Mutex::new(dataplane)),
            sockets,
        })
    }

    /// Serves until SIGTERM or SIGINT and the drain that follows.
    ///
    /// # Errors
    /// When a worker, a signal handler or the runtime cannot be started,
    /// or the published addresses cannot be taken over.
    pub fn run(mut self) -> anyhow::Result<()> {
        let (stop_tx, stop) = Shutdown::new();
        let discovery = self.config.docker.as_ref().map(|_| Arc::default());
        // The first table comes before any worker accepts: a successor
        // takes the published addresses only once it can route.
        self.runtime.block_on(self.follow_docker(discovery.clone()));
        let (workers, stats) = self.spawn_workers(&stop)?;
        let steering = lock(&self.dataplane).steering.to_string();
        self.admin.serve(Parts {
            dataplane: self.dataplane.clone(),
            workers: stats,
            balancer: self.balancer.clone(),
            sources: self.sources.clone(),
            discovery,
            reload: reload_hook(
                self.config.services_source.clone(),
                self.sources.clone(),
                self.tls.clone(),
            ),
            listeners: self.config.edge.listeners.clone(),
            tls: self.tls.clone(),
            acme: self.acme.clone(),
        });
        self.runtime.block_on(async {
            spawn_ebpf_log(&self.dataplane);
            self.start_health_checks();
            self.follow_cluster_key();
            if let Some(tls) = &self.tls {
                tokio::spawn(tls.clone().watch());
                if let Some(acme) = &self.acme {
                    acme.start(tls.clone(), self.balancer.clone(), self.keyring.clone());
                }
            }
            let mut term = signal(SignalKind::terminate()).context("SIGTERM handler")?;
            let mut int = signal(SignalKind::interrupt()).context("SIGINT handler")?;
            let mut hup = signal(SignalKind::hangup()).context("SIGHUP handler")?;
            lock(&self.dataplane)
                .take_over()
                .context("take over the published addresses")?;
            self.admin.ready.store(true, Ordering::Release);
            let listen: Vec<String> = self.config.edge.listeners.iter().map(ToString::to_string).collect();
            info!(listen = %listen.join(","), workers = workers.len(), steering = %steering, admin = %self.config.admin, "ready");
            loop {
                tokio::select! {
                    _ = term.recv() => break,
                    _ = int.recv() => break,
                    _ = hup.recv() => {
                        info!("SIGHUP: reloading the configuration");
                        if let Err(err) = reload(&self.config.services_source, &self.sources, self.tls.as_deref()) {
                            tracing::error!("reload rejected, keeping the running configuration: {err}");
                        }
                    }
                }
            }
            info!(grace = ?self.config.grace_period, "draining");
            self.admin.ready.store(false, Ordering::Release);
            discovery::anchor::stop_maintaining();
            self.wait_for_successor().await;
            lock(&self.dataplane).leave();
            let _ = stop_tx.send(true);
            let joined = tokio::task::spawn_blocking(move || workers.into_iter().for_each(Worker::join));
            tokio::select! {
                _ = joined => info!("drained; exiting"),
                _ = term.recv() => warn!("second SIGTERM: exiting without waiting"),
                _ = int.recv() => warn!("second SIGINT: exiting without waiting"),
            }
            anyhow::Ok(())
        })?;
        // Background tasks (discovery, health checks) end with the runtime.
        self.runtime.shutdown_background();
        Ok(())
    }

    /// A successor that registered its workers but is still reading Docker
    /// gets up to [`SUCCESSOR_WAIT`] to take the published addresses over,
    /// while this process keeps serving them: leaving first would leave
    /// them without an owner, and connections would be refused.
    async fn wait_for_successor(&self) {
        if !lock(&self.dataplane).successor_starting() {
            return;
        }
        info!(at_most = ?SUCCESSOR_WAIT, "a successor is starting; serving until it takes over");
        let deadline = tokio::time::Instant::now() + SUCCESSOR_WAIT;
        while lock(&self.dataplane).successor_starting() {
            if tokio::time::Instant::now() >= deadline {
                warn!("the successor did not take over in time; leaving anyway");
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// One worker thread per socket set, each serving the proxy.
    fn spawn_workers(&mut self, stop: &Shutdown) -> anyhow::Result<(Vec<Worker>, Vec<Arc<WorkerStats>>)> {
        let policy = StopPolicy {
            linger: HANDOVER_LINGER,
            grace: self.config.grace_period,
        };
        let mut stats = Vec::new();
        let mut workers = Vec::new();
        for (index, listeners) in std::mem::take(&mut self.sockets).into_iter().enumerate() {
            let s = Arc::new(WorkerStats::default());
            stats.push(s.clone());
            let spec = WorkerSpec {
                index,
                listeners,
                handler: self.proxy.clone(),
                stats: s,
                max_connections: self.config.max_connections,
            };
            workers.push(Worker::spawn(spec, stop.clone(), policy).context("start a worker")?);
        }
        Ok((workers, stats))
    }

    /// The active health checks of services that have them.
    fn start_health_checks(&self) {
        spawn_health_checks(self.balancer.clone());
    }

    /// With `--docker`: discovery, publishing into the sources. Returns
    /// once the first table is in (or after [`FIRST_TABLE`] without one).
    async fn follow_docker(&self, status: Option<Arc<Mutex<DiscoveryStatus>>>) {
        let (Some(cfg), Some(status)) = (&self.config.docker, status) else {
            return;
        };
        let mut discovered = discovery::follow(cfg.clone(), status);
        match tokio::time::timeout(FIRST_TABLE, discovered.changed()).await {
            Ok(Ok(())) => self.sources.set_discovered(discovered.borrow_and_update().clone()),
            Ok(Err(_)) => {}
            Err(_) => {
                warn!(waited = ?FIRST_TABLE, "no table from Docker yet: serving without one, discovery keeps trying")
            }
        }
        tokio::spawn(self.sources.clone().follow(discovered));
    }

    /// With a key derived from the join token: its rotations.
    fn follow_cluster_key(&self) {
        if let (crate::config::KeySource::Cluster { docker_host, .. }, Some(docker)) =
            (&self.config.keys, &self.config.docker)
        {
            tokio::spawn(cluster_key::follow(
                self.keyring.clone(),
                docker_host.clone(),
                docker.resync,
                self.cluster_key,
            ));
        }
    }
}

/// Re-reads the certificates and the static services; a refused services
/// file leaves the running ones, a certificate that fails keeps its
/// previous one (its errors are returned, and logged).
fn reload(source: &ServicesSource, sources: &Sources, tls: Option<&Tls>) -> Result<Vec<String>, FieldError> {
    let certificate_errors = tls.map(Tls::reload).unwrap_or_default();
    sources.set_static(source.load()?);
    Ok(certificate_errors)
}

fn reload_hook(source: ServicesSource, sources: Arc<Sources>, tls: Option<Arc<Tls>>) -> ReloadHook {
    Arc::new(move || reload(&source, &sources, tls.as_deref()))
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Forwards the steering program's aya-log records into our log.
fn spawn_ebpf_log(dataplane: &Mutex<Dataplane>) {
    let logger = match &mut lock(dataplane).steering {
        Steering::Ebpf { steering, .. } => steering.take_logger(),
        Steering::Reuseport { .. } | Steering::Shared => None,
    };
    let Some(logger) = logger else { return };
    // SAFETY: the logger owns its ring-buffer fd and is moved into the
    // AsyncFd, which deregisters the fd before dropping (closing) it.
    #[expect(unsafe_code, reason = "tokio's registration of a foreign fd is unsafe")]
    let registered = unsafe { AsyncFd::register_with_interest(logger, tokio::io::Interest::READABLE) };
    let fd = match registered {
        Ok(fd) => fd,
        Err(err) => {
            warn!(error = %err, "cannot poll the eBPF log");
            return;
        }
    };
    tokio::spawn(async move {
        let mut fd = fd;
        loop {
            let Ok(mut guard) = fd.readable_mut().await else { return };
            guard.get_inner_mut().flush();
            guard.clear_ready();
        }
    });
}

/// Raises the soft open-files limit to the hard one: every client
/// connection and every pooled upstream connection is a descriptor, and the
/// usual soft limit of 1024 would cap a worker far below
/// `--max-connections`.
fn raise_nofile_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed.
    #[expect(unsafe_code, reason = "getrlimit/setrlimit have no safe wrapper in std")]
    let raised = unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &raw mut lim) == 0 && {
            let soft = lim.rlim_cur;
            lim.rlim_cur = lim.rlim_max;
            soft >= lim.rlim_max || libc::setrlimit(libc::RLIMIT_NOFILE, &raw const lim) == 0
        }
    };
    if raised {
        tracing::debug!(limit = lim.rlim_cur, "open files limit");
    } else {
        warn!("cannot raise the open files limit: {}", std::io::Error::last_os_error());
    }
}

/// Sets up the log on stderr in `format` (`SWARM_STICKY_LOG` filters,
/// default `info`); without timestamps under journald, which adds its own.
pub fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("SWARM_STICKY_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    // Under systemd, journald stamps every line itself.
    let journald = std::env::var_os("JOURNAL_STREAM").is_some();
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_ansi(ansi);
    match (format, journald) {
        (LogFormat::Text, false) => builder.with_writer(std::io::stderr).init(),
        (LogFormat::Text, true) => builder.with_writer(std::io::stderr).without_time().init(),
        // Structured lines go where log collectors read a container's
        // output (`docker service logs`, the json-file driver): stdout.
        (LogFormat::Json, _) => builder.json().with_ansi(false).with_writer(std::io::stdout).init(),
    }
}
