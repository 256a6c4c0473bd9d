//! The validated configuration of every subcommand: the only module that
//! reads the command line ([`crate::cli`]).
//!
//! [`Config::from_run_args`] turns the flags of `run` (and the files they
//! name) into typed sub-configurations owned by the parts that use them:
//! the data plane's, the services (parsed once), the key source, the
//! access log, the admin listener, the Docker watcher. Anything invalid is
//! rejected before a socket is bound or a map is created, and each error
//! names the flag or field; the binary exits with 64 (`EX_USAGE`) on them.

mod acme;
mod edge;
mod keys;
mod services;

use std::{net::SocketAddr, time::Duration};

use proxy_common::{names::MAX_WORKERS, xdp::SynGuardConfig};

pub use self::{
    edge::EdgeConfig,
    keys::{KeyError, KeySource, KeyUse, LoadedKeys},
    services::ServicesSource,
};
use crate::{
    access_log::{AccessLogConfig, AccessLogFormat},
    acme::AcmeSettings,
    admin::AdminAccess,
    cli::{self, CookieDecodeArgs, DemoArgs, RunArgs},
    dataplane::{DataplaneConfig, SteeringMode, XdpConfig},
    discovery::DockerConfig,
    error::FieldError,
    inspect::DecodeConfig,
    listener::{Listener, Scheme},
    services::ServicesConfig,
    tls::{CertFiles, MinVersion, TlsSettings},
};

/// Exit status for an invalid configuration (`EX_USAGE` from sysexits.h).
pub const EXIT_CONFIG: i32 = 64;

/// An invalid configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// No `--listen` address.
    #[error("--listen: at least one published address is required (e.g. --listen 0.0.0.0:8080)")]
    NoListen,
    /// The same address twice.
    #[error("--listen: {0} is given twice")]
    DuplicateListen(SocketAddr),
    /// Port 0 cannot be published.
    #[error("--listen: {0} has port 0; a published address needs a fixed port")]
    ListenPortZero(SocketAddr),
    /// Worker count out of range.
    #[error("--workers: {0} is out of range 1..={MAX_WORKERS}")]
    Workers(usize),
    /// The SYN guard needs the XDP program.
    #[error("--syn-rate: the SYN guard runs in XDP; name the interface with --xdp-iface")]
    SynRateWithoutXdp,
    /// XDP needs eBPF.
    #[error("--xdp-iface: XDP needs eBPF, but --steering reuseport or shared was given")]
    XdpWithoutEbpf,
    /// Bad interface name.
    #[error("--xdp-iface: {0:?} is not a valid interface name")]
    XdpIface(String),
    /// A limit of zero.
    #[error("--max-connections: must be at least 1")]
    MaxConnections,
    /// Only local unix sockets are supported.
    #[error("--docker-host: {0:?} is not a unix:// socket URL (e.g. unix:///var/run/docker.sock)")]
    DockerHost(String),
    /// A resync period of zero.
    #[error("--resync: must be at least 1 second")]
    Resync,
    /// A flag or field with a value that is not acceptable.
    #[error(transparent)]
    Field(#[from] FieldError),
}

/// Format of the log lines on stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// The validated configuration of `swarm-sticky run` (and of the demo).
#[derive(Debug, Clone)]
pub struct Config {
    /// Steering and XDP.
    pub dataplane: DataplaneConfig,
    /// The listeners' schemes, TLS and PROXY protocol.
    pub edge: EdgeConfig,
    /// The services of the flags and the file, parsed and validated.
    pub services: ServicesConfig,
    /// Where the services came from (re-read on SIGHUP).
    pub services_source: ServicesSource,
    /// Where the cookie keys come from.
    pub keys: KeySource,
    /// The access log.
    pub access_log: AccessLogConfig,
    /// Admin listener address.
    pub admin: SocketAddr,
    /// Admin API access.
    pub admin_access: AdminAccess,
    /// Docker discovery, when `--docker` is given.
    pub docker: Option<DockerConfig>,
    /// Grace period for in-flight requests on SIGTERM.
    pub grace_period: Duration,
    /// Open connections per worker.
    pub max_connections: usize,
    /// Log format.
    pub log_format: LogFormat,
    /// Automatic certificates, when on.
    pub acme: Option<AcmeSettings>,
}

impl Config {
    /// Validates the command line of `run`, reading the files it names
    /// (services, admin token).
    ///
    /// # Errors
    /// The first problem found, naming the flag or field.
    pub fn from_run_args(args: &RunArgs) -> Result<Self, ConfigError> {
        let edge = edge::edge(&args.listen, &args.tls, acme::wanted(&args.acme))?;
        let docker_host = args.docker.docker.then_some(args.docker.docker_host.as_str());
        let acme = acme::acme(&args.acme, &args.keys.state_dir, &edge.listeners, docker_host)?;
        let dataplane = dataplane(args, &edge)?;
        if args.max_connections == 0 {
            return Err(ConfigError::MaxConnections);
        }
        let docker = args.docker.docker.then(|| docker(args)).transpose()?;
        let services_source = ServicesSource::from_args(&args.services, args.docker.docker);
        Ok(Self {
            dataplane,
            edge,
            services: services_source.load()?,
            services_source,
            keys: KeySource::from_args(&args.keys, &args.docker),
            access_log: AccessLogConfig {
                format: parse_flag("--access-log", &args.access_log)?,
                file: args.access_log_file.clone(),
            },
            admin: args.admin,
            admin_access: admin_access(args)?,
            docker,
            grace_period: Duration::from_secs(args.grace_period),
            max_connections: args.max_connections,
            log_format: match args.log_format.as_str() {
                "json" => LogFormat::Json,
                _ => LogFormat::Text,
            },
            acme,
        })
    }

    /// The demo's configuration: `services` behind `args.listen` and, with
    /// `cert`, HTTPS on `args.tls_listen`, steered as `run` would by
    /// default, the admin listener on `admin`, a key of its own.
    ///
    /// # Errors
    /// An invalid worker count, or a certificate that does not load.
    pub fn demo(
        args: &DemoArgs,
        services: ServicesConfig,
        admin: SocketAddr,
        cert: Option<CertFiles>,
    ) -> Result<Self, ConfigError> {
        let workers = workers(args.workers)?;
        let mut listeners = vec![Listener::http(args.listen)];
        let tls = match cert {
            None => None,
            Some(cert) => {
                listeners.push(Listener {
                    addr: args.tls_listen,
                    scheme: Scheme::Https,
                    proxy_protocol: false,
                });
                Some(edge::checked_tls(
                    TlsSettings::new(
                        None,
                        Some(cert),
                        MinVersion::Tls12,
                        cli::DEFAULT_TLS_HANDSHAKE_TIMEOUT_SECS,
                    ),
                    "demo certificate",
                )?)
            }
        };
        Ok(Self {
            edge: EdgeConfig {
                listeners: listeners.clone(),
                tls,
                proxy_protocol_from: Vec::new(),
            },
            dataplane: DataplaneConfig {
                listen: listeners.iter().map(|l| l.addr).collect(),
                workers,
                steering: SteeringMode::Auto,
                xdp: None,
                bpffs: cli::DEFAULT_BPFFS.into(),
            },
            services_source: ServicesSource::Fixed(services.clone()),
            services,
            keys: KeySource::Ephemeral,
            access_log: AccessLogConfig {
                format: AccessLogFormat::Off,
                file: None,
            },
            admin,
            admin_access: AdminAccess::default(),
            docker: None,
            grace_period: Duration::from_secs(5),
            max_connections: cli::DEFAULT_MAX_CONNECTIONS,
            log_format: LogFormat::Text,
            acme: None,
        })
    }
}

/// What `cookie decode` checks a cookie against, and with which keys.
///
/// # Errors
/// Invalid services (the same checks as `run`'s).
pub fn decode_config(args: &CookieDecodeArgs) -> Result<(DecodeConfig, KeySource), ConfigError> {
    let have_services = args.services.config.is_some() || !args.services.backends.is_empty();
    let services = if have_services {
        // As with --docker: no service is required.
        ServicesSource::from_args(&args.services, true).load()?.services
    } else {
        Vec::new()
    };
    let cfg = DecodeConfig {
        services,
        service: args.service.clone(),
        max_age: args.max_age,
    };
    Ok((cfg, KeySource::from_args(&args.keys, &args.docker)))
}

/// The number of CPUs this process may run on (at least 1).
pub fn default_workers() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
}

/// `--workers`, or one per CPU, within what the steering map holds.
fn workers(flag: Option<usize>) -> Result<usize, ConfigError> {
    let workers = flag.unwrap_or_else(default_workers);
    if workers == 0 || workers > MAX_WORKERS as usize {
        return Err(ConfigError::Workers(workers));
    }
    Ok(workers)
}

/// Parses a flag that clap limited to known names into its owner's type.
fn parse_flag<T: std::str::FromStr<Err = String>>(flag: &str, value: &str) -> Result<T, ConfigError> {
    value.parse().map_err(|e| FieldError::new(flag, e).into())
}

fn docker(args: &RunArgs) -> Result<DockerConfig, ConfigError> {
    if !args.docker.docker_host.starts_with("unix:///") {
        return Err(ConfigError::DockerHost(args.docker.docker_host.clone()));
    }
    if args.resync == 0 {
        return Err(ConfigError::Resync);
    }
    let stack = args.stack.clone().filter(|s| !s.is_empty());
    if let Some(name) = &stack
        && !name.chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
    {
        return Err(FieldError::new("--stack", format!("{name:?} is not a stack name ([A-Za-z0-9_.-])")).into());
    }
    Ok(DockerConfig {
        host: args.docker.docker_host.clone(),
        resync: Duration::from_secs(args.resync),
        netns_dir: args.docker_netns_dir.clone(),
        stack,
    })
}

fn admin_access(args: &RunArgs) -> Result<AdminAccess, ConfigError> {
    let token = match &args.admin_token_file {
        None => None,
        Some(path) => Some(AdminAccess::read_token(path).map_err(|e| FieldError::new("--admin-token-file", e))?),
    };
    Ok(AdminAccess {
        token,
        public_read: args.admin_public_read,
    })
}

fn dataplane(args: &RunArgs, edge: &EdgeConfig) -> Result<DataplaneConfig, ConfigError> {
    let workers = workers(args.workers)?;
    let steering: SteeringMode = parse_flag("--steering", &args.steering)?;
    let xdp = match &args.xdp_iface {
        None if args.syn_rate > 0 => return Err(ConfigError::SynRateWithoutXdp),
        None => None,
        Some(_) if matches!(steering, SteeringMode::Reuseport | SteeringMode::Shared) => {
            return Err(ConfigError::XdpWithoutEbpf);
        }
        Some(iface) => {
            // IFNAMSIZ is 16 including the terminating NUL.
            let valid = !iface.is_empty() && iface.len() < 16 && !iface.contains(['/', ' ', '\0']);
            if !valid {
                return Err(ConfigError::XdpIface(iface.clone()));
            }
            Some(XdpConfig {
                iface: iface.clone(),
                syn_guard: SynGuardConfig::new(args.syn_rate, args.syn_burst),
            })
        }
    };
    Ok(DataplaneConfig {
        listen: edge.listeners.iter().map(|l| l.addr).collect(),
        workers,
        steering,
        xdp,
        bpffs: args.bpffs.clone(),
    })
}

#[cfg(test)]
mod tests;
