//! The validated configuration of a `run`.
//!
//! [`Config::from_run_args`] turns the parsed command line (and the files
//! it names) into plain data, and rejects anything invalid before a single
//! socket is bound or a map is created. Each error names the offending
//! flag or field; the binary exits with status 64 (`EX_USAGE`) on them.

use std::{collections::HashSet, net::SocketAddr, path::PathBuf, time::Duration};

use proxy_common::{names::MAX_WORKERS, xdp::SynGuardConfig};

use crate::cli::{LogFormat, RunArgs, Steering};

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
    /// A service definition problem (from --backend or the config file),
    /// naming the field, e.g. `services[1].backends[0].url`.
    #[error("{field}: {message}")]
    Field {
        /// The flag or config path, e.g. `--backend[0]` or `services[1].cookie.name`.
        field: String,
        /// What is wrong with it.
        message: String,
    },
}

impl ConfigError {
    /// A problem with one named field.
    pub fn field(field: &str, message: impl Into<String>) -> Self {
        Self::Field {
            field: field.to_owned(),
            message: message.into(),
        }
    }
}

/// XDP attachment settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XdpConfig {
    /// Interface name.
    pub iface: String,
    /// SYN guard settings (disabled unless `--syn-rate` > 0).
    pub syn_guard: SynGuardConfig,
}

/// Everything the data plane (steering) needs.
#[derive(Debug, Clone)]
pub struct DataplaneConfig {
    /// Published addresses, in `--listen` order.
    pub listen: Vec<SocketAddr>,
    /// Number of workers.
    pub workers: usize,
    /// Steering mode.
    pub steering: Steering,
    /// XDP counters, when asked for.
    pub xdp: Option<XdpConfig>,
    /// bpffs mount point.
    pub bpffs: PathBuf,
}

/// Who may use the admin API.
#[derive(Clone, Default)]
pub struct AdminAccess {
    /// Bearer token for write actions (and for reads from off-host);
    /// `None` disables write actions.
    pub token: Option<String>,
    /// Read endpoints answer any client, not only loopback.
    pub public_read: bool,
}

impl std::fmt::Debug for AdminAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminAccess")
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("public_read", &self.public_read)
            .finish()
    }
}

/// Shortest admin token accepted: a guessable token is worse than none.
pub const MIN_ADMIN_TOKEN: usize = 16;

impl AdminAccess {
    /// Reads `--admin-token-file` (whitespace around the token is ignored).
    ///
    /// # Errors
    /// When the file cannot be read or the token is shorter than
    /// [`MIN_ADMIN_TOKEN`] characters.
    pub fn from_run_args(args: &RunArgs) -> Result<Self, ConfigError> {
        let token = match &args.admin_token_file {
            None => None,
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    ConfigError::field("--admin-token-file", format!("cannot read {}: {e}", path.display()))
                })?;
                let token = text.trim();
                if token.len() < MIN_ADMIN_TOKEN || token.chars().any(char::is_whitespace) {
                    return Err(ConfigError::field(
                        "--admin-token-file",
                        format!(
                            "{} must hold one token of at least {MIN_ADMIN_TOKEN} characters without spaces (e.g. `openssl rand -hex 32`)",
                            path.display()
                        ),
                    ));
                }
                Some(token.to_owned())
            }
        };
        Ok(Self {
            token,
            public_read: args.admin_public_read,
        })
    }
}

/// The validated configuration of `swarm-sticky run`.
#[derive(Debug, Clone)]
pub struct Config {
    /// Steering and XDP.
    pub dataplane: DataplaneConfig,
    /// Admin listener address.
    pub admin: SocketAddr,
    /// Admin API access.
    pub admin_access: AdminAccess,
    /// State directory (generated cookie key, …).
    pub state_dir: PathBuf,
    /// Grace period for in-flight requests on SIGTERM.
    pub grace_period: Duration,
    /// Open connections per worker.
    pub max_connections: usize,
    /// Log format.
    pub log_format: LogFormat,
}

impl Config {
    /// Validates the command line of `run`.
    ///
    /// # Errors
    /// The first problem found, naming the flag or field.
    pub fn from_run_args(args: &RunArgs) -> Result<Self, ConfigError> {
        let dataplane = dataplane_from_args(args)?;
        if args.max_connections == 0 {
            return Err(ConfigError::MaxConnections);
        }
        if args.docker && !args.docker_host.starts_with("unix:///") {
            return Err(ConfigError::DockerHost(args.docker_host.clone()));
        }
        if args.docker && args.resync == 0 {
            return Err(ConfigError::Resync);
        }
        Ok(Self {
            dataplane,
            admin: args.admin,
            admin_access: AdminAccess::from_run_args(args)?,
            state_dir: args.state_dir.clone(),
            grace_period: Duration::from_secs(args.grace_period),
            max_connections: args.max_connections,
            log_format: args.log_format,
        })
    }
}

/// The number of CPUs this process may run on (at least 1).
pub fn default_workers() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
}

fn dataplane_from_args(args: &RunArgs) -> Result<DataplaneConfig, ConfigError> {
    if args.listen.is_empty() {
        return Err(ConfigError::NoListen);
    }
    let mut seen = HashSet::new();
    for addr in &args.listen {
        if addr.port() == 0 {
            return Err(ConfigError::ListenPortZero(*addr));
        }
        if !seen.insert(*addr) {
            return Err(ConfigError::DuplicateListen(*addr));
        }
    }
    let workers = args.workers.unwrap_or_else(default_workers);
    if workers == 0 || workers > MAX_WORKERS as usize {
        return Err(ConfigError::Workers(workers));
    }
    let xdp = match &args.xdp_iface {
        None if args.syn_rate > 0 => return Err(ConfigError::SynRateWithoutXdp),
        None => None,
        Some(_) if matches!(args.steering, Steering::Reuseport | Steering::Shared) => {
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
        listen: args.listen.clone(),
        workers,
        steering: args.steering,
        xdp,
        bpffs: args.bpffs.clone(),
    })
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::*;
    use crate::cli::{Cli, Command};

    fn parse(args: &[&str]) -> Result<Config, ConfigError> {
        let cli = Cli::try_parse_from(["swarm-sticky", "run"].iter().chain(args)).expect("parses");
        let Command::Run(run) = cli.command else {
            panic!("run expected")
        };
        Config::from_run_args(&run)
    }

    #[test]
    fn defaults() {
        let c = parse(&["--listen", "0.0.0.0:8080"]).unwrap();
        assert_eq!(c.dataplane.listen, vec!["0.0.0.0:8080".parse::<SocketAddr>().unwrap()]);
        assert_eq!(c.dataplane.steering, Steering::Auto);
        assert_eq!(c.dataplane.workers, default_workers());
        assert_eq!(c.admin, "127.0.0.1:9090".parse::<SocketAddr>().unwrap());
        assert!(c.dataplane.xdp.is_none());
    }

    #[test]
    fn listen_repeats_and_takes_ipv6() {
        let c = parse(&["--listen", "0.0.0.0:8080", "--listen", "[::]:8080", "--workers", "4"]).unwrap();
        assert_eq!(c.dataplane.listen.len(), 2);
        assert_eq!(c.dataplane.workers, 4);
    }

    #[test]
    fn rejects_with_the_flag_named() {
        let cases: &[(&[&str], &str)] = &[
            (&[], "--listen"),
            (&["--listen", "127.0.0.1:0"], "port 0"),
            (&["--listen", "127.0.0.1:1", "--listen", "127.0.0.1:1"], "twice"),
            (&["--listen", "127.0.0.1:1", "--workers", "0"], "--workers"),
            (&["--listen", "127.0.0.1:1", "--workers", "65"], "--workers"),
            (&["--listen", "127.0.0.1:1", "--syn-rate", "10"], "--xdp-iface"),
            (
                &[
                    "--listen",
                    "127.0.0.1:1",
                    "--xdp-iface",
                    "eth0",
                    "--steering",
                    "reuseport",
                ],
                "reuseport",
            ),
            (
                &["--listen", "127.0.0.1:1", "--xdp-iface", "a-very-long-interface"],
                "--xdp-iface",
            ),
            (
                &["--listen", "127.0.0.1:1", "--max-connections", "0"],
                "--max-connections",
            ),
            (
                &[
                    "--listen",
                    "127.0.0.1:1",
                    "--docker",
                    "--docker-host",
                    "tcp://192.0.2.1:2375",
                ],
                "--docker-host",
            ),
            (&["--listen", "127.0.0.1:1", "--docker", "--resync", "0"], "--resync"),
        ];
        for (args, needle) in cases {
            let err = parse(args).expect_err("invalid").to_string();
            assert!(err.contains(needle), "{args:?}: {err}");
        }
    }

    #[test]
    fn syn_guard_from_flags() {
        let c = parse(&[
            "--listen",
            "127.0.0.1:1",
            "--xdp-iface",
            "eth0",
            "--syn-rate",
            "100",
            "--syn-burst",
            "5",
        ])
        .unwrap();
        let xdp = c.dataplane.xdp.unwrap();
        assert_eq!(xdp.syn_guard, SynGuardConfig::new(100, 5));
        assert_eq!(xdp.syn_guard.enabled, 1);
    }
}
