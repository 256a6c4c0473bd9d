//! Wiring: data plane, workers, admin listener and signals.
//!
//! The order is fixed: the configuration is already valid when [`run`] is
//! called; then the admin listener and the data plane are set up (a
//! failure there exits before any worker runs), the workers start, and
//! the main thread waits for signals. SIGTERM or SIGINT drains: this
//! process leaves the eBPF steering (a successor, if any, keeps the
//! published ports), workers stop accepting after a short linger, finish
//! in-flight requests within the grace period, and the process exits.
//! SIGHUP calls the reload hook.

use std::{
    sync::{Arc, Mutex, atomic::Ordering},
    time::Duration,
};

use anyhow::Context as _;
use tokio::{
    io::unix::AsyncFd,
    signal::unix::{SignalKind, signal},
};
use tracing::{info, warn};

use crate::{
    admin::{self, AdminState, ReloadHook},
    config::Config,
    dataplane::{Active, Dataplane},
    worker::{ConnectionHandler, Shutdown, StopPolicy, Worker, WorkerSpec, WorkerStats},
};

/// How long a stopping worker keeps accepting: long enough for handshakes
/// the kernel steered to it just before a successor took over to complete.
const HANDOVER_LINGER: Duration = Duration::from_millis(300);

/// What the caller plugs into the main runtime.
pub struct Hooks {
    /// Called on SIGHUP and by the admin API's reload action.
    pub reload: Option<ReloadHook>,
    /// Called once inside the main runtime, after the workers started
    /// (background tasks such as health checks are spawned here).
    pub on_start: Box<dyn FnOnce() + Send>,
    /// The routing table, shown by the admin API.
    pub balancer: Option<Arc<crate::balance::Balancer>>,
    /// The service sources (Docker discovery), shown by the admin API.
    pub sources: Option<Arc<crate::sources::Sources>>,
}

/// Runs until SIGTERM/SIGINT and the drain that follows.
///
/// # Errors
/// When the admin listener or the data plane cannot be set up.
pub fn run(config: &Config, handler: Arc<dyn ConnectionHandler>, hooks: Hooks) -> anyhow::Result<()> {
    let Hooks {
        reload,
        on_start,
        balancer,
        sources,
    } = hooks;
    raise_nofile_limit();
    let admin_listener = std::net::TcpListener::bind(config.admin)
        .with_context(|| format!("bind the admin listener {} (--admin)", config.admin))?;
    admin_listener.set_nonblocking(true).context("admin listener")?;

    let (dataplane, sockets) = Dataplane::start(&config.dataplane).context("set up steering")?;
    let steering = match &dataplane.active {
        Active::Ebpf { xdp: Some(mode), .. } => format!("ebpf (xdp {mode})"),
        Active::Ebpf { .. } => "ebpf".to_string(),
        Active::Reuseport { .. } => "reuseport".to_string(),
        Active::Shared => "shared".to_string(),
    };
    let dataplane = Arc::new(Mutex::new(dataplane));

    let (stop_tx, stop) = Shutdown::new();
    let policy = StopPolicy {
        linger: HANDOVER_LINGER,
        grace: config.grace_period,
    };
    let mut stats = Vec::new();
    let mut workers = Vec::new();
    for (index, listeners) in sockets.into_iter().enumerate() {
        let s = Arc::new(WorkerStats::default());
        stats.push(s.clone());
        let spec = WorkerSpec {
            index,
            listeners,
            handler: handler.clone(),
            stats: s,
            max_connections: config.max_connections,
        };
        workers.push(Worker::spawn(spec, stop.clone(), policy).context("start a worker")?);
    }
    let state = Arc::new(AdminState::new(
        dataplane.clone(),
        stats,
        balancer,
        sources,
        reload.clone(),
        config.admin_access.clone(),
    ));

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("main runtime")?;
    rt.block_on(async {
        let listener = tokio::net::TcpListener::from_std(admin_listener).context("admin listener")?;
        tokio::spawn(admin::serve(listener, state.clone()));
        spawn_ebpf_log(&dataplane);
        on_start();
        let mut term = signal(SignalKind::terminate()).context("SIGTERM handler")?;
        let mut int = signal(SignalKind::interrupt()).context("SIGINT handler")?;
        let mut hup = signal(SignalKind::hangup()).context("SIGHUP handler")?;
        state.ready.store(true, Ordering::Release);
        let listen: Vec<String> = config.dataplane.listen.iter().map(ToString::to_string).collect();
        info!(listen = %listen.join(","), workers = workers.len(), steering = %steering, admin = %config.admin, "ready");
        loop {
            tokio::select! {
                _ = term.recv() => break,
                _ = int.recv() => break,
                _ = hup.recv() => {
                    info!("SIGHUP: reloading the configuration");
                    if let Some(Err(err)) = reload.as_ref().map(|r| r()) {
                        tracing::error!("reload rejected, keeping the running configuration: {err}");
                    }
                }
            }
        }
        info!(grace = ?config.grace_period, "draining");
        state.ready.store(false, Ordering::Release);
        match dataplane.lock() {
            Ok(mut dp) => dp.leave(),
            Err(poisoned) => poisoned.into_inner().leave(),
        }
        let _ = stop_tx.send(true);
        let joined = tokio::task::spawn_blocking(move || workers.into_iter().for_each(Worker::join));
        tokio::select! {
            _ = joined => info!("drained; exiting"),
            _ = term.recv() => warn!("second SIGTERM: exiting without waiting"),
            _ = int.recv() => warn!("second SIGINT: exiting without waiting"),
        }
        anyhow::Ok(())
    })
}

/// Forwards the steering program's aya-log records into our log.
fn spawn_ebpf_log(dataplane: &Arc<Mutex<Dataplane>>) {
    let logger = match dataplane.lock() {
        Ok(mut dp) => match &mut dp.active {
            Active::Ebpf { steering, .. } => steering.take_logger(),
            Active::Reuseport { .. } | Active::Shared => None,
        },
        Err(_) => None,
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
