//! The `swarm-sticky` binary: parse, validate, run.
//!
//! Exit status: 0 after a clean drain, 64 for an invalid configuration
//! (nothing was bound), 1 for a failure to start or run.

use std::{process::ExitCode, sync::Arc, time::Duration};

use anyhow::Context as _;
use clap::Parser as _;
use proxy_user::{
    app::{self, Hooks},
    cli::{
        Cli, Command, CookieCommand, CookieDecodeArgs, DemoArgs, LogFormat, ProbeArgs, RunArgs, Steering, WhoamiArgs,
    },
    config::{Config, DataplaneConfig, EXIT_CONFIG, default_workers},
    cookie::Keyring,
    demo,
    discovery::cluster_key,
    inspect,
    proxy::{Proxy, ProxyInitError},
    services,
};

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            let usage = err.use_stderr();
            let _ = err.print();
            return if usage {
                ExitCode::from(EXIT_CONFIG as u8)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    match cli.command {
        Command::Run(args) => run(args),
        Command::Demo(args) => {
            init_logging(LogFormat::Text);
            report(demo(&args))
        }
        Command::Whoami(args) => {
            init_logging(LogFormat::Text);
            report(whoami(&args))
        }
        Command::Cookie(CookieCommand::Decode(args)) => cookie_decode(&args),
        Command::CheckConfig(args) => check_config(&args.file),
        Command::Probe(args) => probe(&args),
        Command::Anchor => anchor(),
    }
}

/// `swarm-sticky cookie decode`: exit 0 when the cookie is valid, 1 when it
/// is not, 64 when the configuration is invalid.
fn cookie_decode(args: &CookieDecodeArgs) -> ExitCode {
    match inspect::decode_cookie(args) {
        Ok(report) => {
            if args.json {
                println!("{}", serde_json::to_string_pretty(&report).unwrap_or_default());
            } else {
                println!("{report}");
            }
            if report.valid {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(inspect::InspectError::Config(err)) => config_error(err),
        Err(err) => {
            eprintln!("swarm-sticky: {err}");
            ExitCode::from(EXIT_CONFIG as u8)
        }
    }
}

/// `swarm-sticky check-config FILE`: exit 0 and a description when valid,
/// 64 and the offending field when not.
fn check_config(file: &std::path::Path) -> ExitCode {
    let text = match std::fs::read_to_string(file) {
        Ok(t) => t,
        Err(err) => return config_error(format!("cannot read {}: {err}", file.display())),
    };
    match services::ServicesConfig::from_toml_str(&text) {
        Ok(cfg) => {
            print!("{}", inspect::describe(&cfg));
            ExitCode::SUCCESS
        }
        Err(err) => config_error(err),
    }
}

fn config_error(err: impl std::fmt::Display) -> ExitCode {
    eprintln!("swarm-sticky: invalid configuration: {err}");
    ExitCode::from(EXIT_CONFIG as u8)
}

fn run(args: Box<RunArgs>) -> ExitCode {
    init_logging(args.log_format);
    let config = match Config::from_run_args(&args) {
        Ok(c) => c,
        Err(err) => return config_error(err),
    };
    let proxy = match Proxy::from_run_args(&args) {
        Ok(p) => p,
        Err(ProxyInitError::Config(err)) => return config_error(err),
        Err(err) => return report(Err(err.into())),
    };
    // In swarm mode without a key file: the key derived from the join
    // token, followed through rotations (`Some(initial)` once started).
    let cluster_key =
        (args.docker && args.cookie_key_file.is_none()).then(|| use_cluster_key(&proxy, &args.docker_host));
    let base = match services::from_run_args(&args) {
        Ok(s) => s,
        Err(err) => return config_error(err),
    };
    let sources = proxy_user::sources::Sources::new(proxy.clone(), base);
    let reloading = sources.clone();
    let shown = args.docker.then(|| sources.clone());
    let checking = proxy.clone();
    let keyed = proxy.clone();
    let docker = args.docker.then(|| {
        (
            args.docker_host.clone(),
            Duration::from_secs(args.resync),
            args.docker_netns_dir.clone(),
        )
    });
    let hooks = Hooks {
        // SIGHUP: re-read --config (and the flags); an invalid file is
        // rejected and the running configuration stays.
        reload: Some(Arc::new(move || {
            let services = services::from_run_args(&args).map_err(|e| e.to_string())?;
            reloading.set_base(services);
            Ok(())
        })),
        on_start: Box::new(move || {
            checking.spawn_health_checks();
            if let Some((host, resync, netns_dir)) = docker {
                if let Some(initial) = cluster_key {
                    let key_host = host.clone();
                    tokio::spawn(cluster_key::follow(keyed, key_host, resync, initial));
                }
                tokio::spawn(sources.follow_docker(host, resync, netns_dir));
            }
        }),
        balancer: Some(proxy.balancer().clone()),
        sources: shown,
    };
    report(app::run(&config, proxy, hooks))
}

/// In swarm mode without `--cookie-key-file`: sign with the key derived
/// from the manager join token, so that every manager signs and accepts
/// the same cookies. Falls back to the state directory's key (and says so)
/// when the engine does not answer or this node is not a manager. Returns
/// the derived key, if any.
fn use_cluster_key(proxy: &Proxy, docker_host: &str) -> Option<[u8; 32]> {
    match cluster_key::read_blocking(docker_host) {
        Ok(Some(key)) => {
            proxy.set_keyring(Keyring::from_secrets(&[key]));
            tracing::info!("cookie key derived from the swarm's manager join token (the same on every manager)");
            Some(key)
        }
        Ok(None) => {
            tracing::warn!(
                "no manager join token (not a swarm manager?): cookies are signed with the state directory's key"
            );
            None
        }
        Err(err) => {
            let err = anyhow::Error::from(err);
            tracing::warn!(
                "cannot read the swarm's join token ({err:#}): cookies are signed with the state directory's key"
            );
            None
        }
    }
}

/// `swarm-sticky demo`: three whoami backends and the balancer.
fn demo(args: &DemoArgs) -> anyhow::Result<()> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("demo-backends".into())
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(rt) => rt,
                Err(err) => {
                    let _ = tx.send(Err(err));
                    return;
                }
            };
            rt.block_on(async move {
                let _ = tx.send(demo::spawn_demo_backends(3).await);
                std::future::pending::<()>().await;
            });
        })?;
    let backends = rx
        .recv_timeout(Duration::from_secs(10))
        .context("demo backends did not start")??;
    let services = demo::demo_services(&backends);
    println!("{}", demo::demo_instructions(args.listen, &services, &backends));
    let config = Config {
        dataplane: DataplaneConfig {
            listen: vec![args.listen],
            workers: args.workers.unwrap_or_else(default_workers),
            steering: Steering::Auto,
            xdp: None,
            bpffs: "/sys/fs/bpf".into(),
        },
        admin: demo::DEMO_ADMIN.parse().context("demo admin address")?,
        admin_access: proxy_user::config::AdminAccess::default(),
        state_dir: std::env::temp_dir(),
        grace_period: Duration::from_secs(5),
        max_connections: 25_000,
        log_format: LogFormat::Text,
    };
    let proxy = Proxy::new(services, Keyring::random());
    let hooks = Hooks {
        reload: None,
        on_start: Box::new(|| {}),
        balancer: Some(proxy.balancer().clone()),
        sources: None,
    };
    app::run(&config, proxy, hooks)
}

/// `swarm-sticky whoami`: the built-in test backend.
fn whoami(args: &WhoamiArgs) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(demo::run_whoami(args.listen, args.name.clone()))
        .with_context(|| format!("whoami on {}", args.listen))
}

/// `swarm-sticky anchor`: wait for SIGTERM or SIGINT (as PID 1 of the
/// anchor task), then exit 0.
fn anchor() -> ExitCode {
    let waited = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .and_then(|rt| {
            rt.block_on(async {
                use tokio::signal::unix::{SignalKind, signal};
                let mut term = signal(SignalKind::terminate())?;
                let mut int = signal(SignalKind::interrupt())?;
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
                Ok(())
            })
        });
    match waited {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("anchor: {err}");
            ExitCode::FAILURE
        }
    }
}

/// `swarm-sticky probe URL`: quiet on success (a HEALTHCHECK runs it every
/// few seconds), the reason on stderr otherwise.
fn probe(args: &ProbeArgs) -> ExitCode {
    let result = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())
        .and_then(|rt| {
            rt.block_on(proxy_user::probe::probe(&args.url, Duration::from_secs(args.timeout)))
                .map_err(|e| e.to_string())
        });
    match result {
        Ok(_) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("probe {}: {err}", args.url);
            ExitCode::FAILURE
        }
    }
}

fn report(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!("{err:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("SWARM_STICKY_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    // Under systemd, journald stamps every line itself.
    let journald = std::env::var_os("JOURNAL_STREAM").is_some();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    match (format, journald) {
        (LogFormat::Text, false) => builder.init(),
        (LogFormat::Text, true) => builder.without_time().init(),
        (LogFormat::Json, _) => builder.json().init(),
    }
}
