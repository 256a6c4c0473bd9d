//! The command line: `swarm-sticky run | demo | whoami | probe | cookie
//! decode | check-config` (and the hidden `anchor`).
//!
//! Every flag of `run` also reads a `SWARM_STICKY_*` environment variable
//! (listed in `--help`); repeatable flags take a comma-separated list there.
//! This module only describes the flags: it imports nothing of the library,
//! and [`crate::config`] alone turns them into configuration. Flags that
//! `run` and `cookie decode` share are groups ([`ServiceArgs`],
//! [`KeyArgs`], [`DockerArgs`]) that both flatten, so they cannot drift
//! apart. The defaults are the constants below, which the demo uses too.

use std::{net::SocketAddr, path::PathBuf};

use clap::{
    Args, Parser, Subcommand,
    builder::{PossibleValue, PossibleValuesParser},
};

/// Admin listener of `run`.
pub const DEFAULT_ADMIN: &str = "127.0.0.1:9090";
/// Where the generated cookie key and other state live.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/swarm-sticky";
/// The Docker API.
pub const DEFAULT_DOCKER_HOST: &str = "unix:///var/run/docker.sock";
/// Where the engine keeps its network namespaces (`<exec-root>/netns`).
pub const DEFAULT_DOCKER_NETNS_DIR: &str = "/var/run/docker/netns";
/// Seconds between full re-lists of the Docker API.
pub const DEFAULT_RESYNC_SECS: u64 = 5;
/// Where bpffs is (or gets) mounted.
pub const DEFAULT_BPFFS: &str = "/sys/fs/bpf";
/// Seconds to finish in-flight requests after SIGTERM.
pub const DEFAULT_GRACE_PERIOD_SECS: u64 = 30;
/// Open client connections per worker.
pub const DEFAULT_MAX_CONNECTIONS: usize = 25_000;
/// SYNs allowed above the SYN guard's rate.
pub const DEFAULT_SYN_BURST: u32 = 20;
/// The balancer address of `demo`.
pub const DEFAULT_DEMO_LISTEN: &str = "127.0.0.1:8080";
/// Default HTTPS address of `demo`.
pub const DEFAULT_DEMO_TLS_LISTEN: &str = "127.0.0.1:8443";
/// Default of `--acme-retry`: the first wait after a failed order, in
/// seconds (doubled after each failure in a row, up to an hour).
pub const DEFAULT_ACME_RETRY_SECS: u64 = 60;

/// Default of `--acme-lock-ttl`: longer than an order takes (validation
/// and issuance are bounded by two minutes each, a DNS hook call by two).
pub const DEFAULT_ACME_LOCK_TTL_SECS: u64 = 600;

/// Default of `--tls-handshake-timeout`.
pub const DEFAULT_TLS_HANDSHAKE_TIMEOUT_SECS: u64 = 10;

/// Sticky sessions for Docker Swarm.
#[derive(Debug, Parser)]
#[command(name = "swarm-sticky", version, about, propagate_version = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the published listeners (the main job).
    Run(Box<RunArgs>),
    /// Start three built-in whoami backends and the balancer on 127.0.0.1:8080.
    Demo(DemoArgs),
    /// Serve the built-in whoami backend (`I'm <name>` and the request).
    Whoami(WhoamiArgs),
    /// Inspect sticky cookies (support work).
    #[command(subcommand)]
    Cookie(CookieCommand),
    /// Validate a configuration file and print what it would do.
    CheckConfig(CheckConfigArgs),
    /// Automatic certificates (ACME) of a running instance.
    #[command(subcommand)]
    Acme(AcmeCommand),
    /// GET a URL and exit 0 on a 2xx answer, 1 otherwise (a HEALTHCHECK
    /// for images without curl).
    Probe(ProbeArgs),
    /// Build swarm-sticky's container image from this binary on the local
    /// engine (no registry; `deploy/swarm-sticky.yml` runs it).
    Image(ImageArgs),
    /// Wait for SIGTERM and exit (the anchor task that gives this node a
    /// namespace on an overlay network; started by `run --docker`).
    #[command(hide = true)]
    Anchor,
}

/// `swarm-sticky acme …`.
#[derive(Debug, Subcommand)]
pub enum AcmeCommand {
    /// Print each managed certificate: state (valid, ordering, renewing,
    /// failed with the reason), expiry, next and last attempt, and which
    /// instance orders it, from the admin API.
    Status(AcmeStatusArgs),
}

/// Flags of `swarm-sticky acme status`.
#[derive(Debug, Args)]
pub struct AcmeStatusArgs {
    /// The instance's admin address.
    #[arg(long, value_name = "ADDR", env = "SWARM_STICKY_ADMIN", default_value = DEFAULT_ADMIN)]
    pub admin: SocketAddr,

    /// Print the JSON of /api/status's tls.acme instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// `swarm-sticky cookie …`.
#[derive(Debug, Subcommand)]
pub enum CookieCommand {
    /// Print what a cookie says: service, backend identity, issued-at, and
    /// whether it is valid (or why not), using the configured key.
    Decode(CookieDecodeArgs),
}

/// Which services exist: shared by `run` and `cookie decode`.
#[derive(Debug, Args)]
pub struct ServiceArgs {
    /// TOML configuration file with services, rules, backends and health checks.
    #[arg(long, value_name = "FILE", env = "SWARM_STICKY_CONFIG")]
    pub config: Option<PathBuf>,

    /// Static backend NAME=URL (repeatable); together they form one service
    /// routed with PathPrefix:/.
    #[arg(
        long = "backend",
        value_name = "NAME=URL",
        env = "SWARM_STICKY_BACKEND",
        value_delimiter = ','
    )]
    pub backends: Vec<String>,

    /// Name of the sticky cookie (default: `_` and five hex digits derived
    /// from the service name).
    #[arg(long, value_name = "NAME", env = "SWARM_STICKY_COOKIE_NAME")]
    pub cookie_name: Option<String>,
}

/// Where the cookie keys come from: shared by `run` and `cookie decode`.
#[derive(Debug, Args)]
pub struct KeyArgs {
    /// File with the cookie signing key(s): one per line, the first signs,
    /// all verify. Default: with --docker, a key derived from the swarm's
    /// manager join token; otherwise a random key kept in the state directory.
    #[arg(long, value_name = "PATH", env = "SWARM_STICKY_COOKIE_KEY_FILE")]
    pub cookie_key_file: Option<PathBuf>,

    /// Directory for the generated cookie key and other state.
    #[arg(long, value_name = "DIR", env = "SWARM_STICKY_STATE_DIR", default_value = DEFAULT_STATE_DIR)]
    pub state_dir: PathBuf,
}

/// The Docker API: shared by `run` and `cookie decode`.
#[derive(Debug, Args)]
pub struct DockerArgs {
    /// Discover services and their tasks from the Docker API (Swarm
    /// services selected by labels; see the README), and derive the cookie
    /// key from the swarm's manager join token.
    #[arg(long, env = "SWARM_STICKY_DOCKER")]
    pub docker: bool,

    /// The Docker API.
    #[arg(long, value_name = "URL", env = "SWARM_STICKY_DOCKER_HOST", default_value = DEFAULT_DOCKER_HOST)]
    pub docker_host: String,
}

/// Flags of `swarm-sticky cookie decode`.
#[derive(Debug, Args)]
pub struct CookieDecodeArgs {
    /// The cookie: its value, or `name=value` as in a Cookie header.
    #[arg(value_name = "VALUE")]
    pub value: String,

    /// The service the cookie belongs to (default: every service of the
    /// configuration is tried, and the cookie name picks when given).
    #[arg(long, value_name = "NAME")]
    pub service: Option<String>,

    /// Services, as given to `run`.
    #[command(flatten)]
    pub services: ServiceArgs,

    /// Keys, as given to `run`.
    #[command(flatten)]
    pub keys: KeyArgs,

    /// The Docker API, as given to `run`.
    #[command(flatten)]
    pub docker: DockerArgs,

    /// Reject cookies older than this many seconds (default: the service's Max-Age).
    #[arg(long, value_name = "SECS")]
    pub max_age: Option<u64>,

    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Flags of `swarm-sticky check-config`.
#[derive(Debug, Args)]
pub struct CheckConfigArgs {
    /// The TOML configuration file.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
}

fn steering_values() -> PossibleValuesParser {
    PossibleValuesParser::new([
        PossibleValue::new("auto").help("eBPF when this process may load it, SO_REUSEPORT otherwise (with a warning)"),
        PossibleValue::new("ebpf").help("eBPF sk_lookup only; exit with an error when it cannot be loaded"),
        PossibleValue::new("reuseport").help("one SO_REUSEPORT listening socket per worker on each published address"),
        PossibleValue::new("shared")
            .help("one socket per published address that every worker accepts from (a benchmark baseline)"),
    ])
}

fn log_format_values() -> PossibleValuesParser {
    PossibleValuesParser::new([
        PossibleValue::new("text").help("human-readable lines on stderr"),
        PossibleValue::new("json").help("one JSON object per line on stdout"),
    ])
}

fn access_log_values() -> PossibleValuesParser {
    PossibleValuesParser::new([
        PossibleValue::new("off").help("no access log"),
        PossibleValue::new("json").help("one JSON object per request"),
        PossibleValue::new("common")
            .help("NCSA common log format, then service, backend, sticky decision and duration"),
    ])
}

/// Flags of `swarm-sticky run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Published listener (repeatable, or comma-separated): ADDR or
    /// http://ADDR for plain HTTP, https://ADDR for HTTPS (needs
    /// --tls-cert-dir or --tls-cert); http+proxy:// and https+proxy:// also
    /// read PROXY protocol headers from --proxy-protocol-from. E.g.
    /// 0.0.0.0:80, https://0.0.0.0:443, https+proxy://[::]:443.
    #[arg(
        long = "listen",
        value_name = "LISTENER",
        env = "SWARM_STICKY_LISTEN",
        value_delimiter = ','
    )]
    pub listen: Vec<String>,

    /// HTTPS: certificates, versions, PROXY protocol.
    #[command(flatten)]
    pub tls: TlsArgs,

    /// Automatic certificates (ACME).
    #[command(flatten)]
    pub acme: AcmeArgs,

    /// Which services exist.
    #[command(flatten)]
    pub services: ServiceArgs,

    /// Where the cookie keys come from.
    #[command(flatten)]
    pub keys: KeyArgs,

    /// The Docker API.
    #[command(flatten)]
    pub docker: DockerArgs,

    /// Where the engine keeps its network namespaces (`<exec-root>/netns`).
    #[arg(long, value_name = "DIR", env = "SWARM_STICKY_DOCKER_NETNS_DIR", default_value = DEFAULT_DOCKER_NETNS_DIR)]
    pub docker_netns_dir: PathBuf,

    /// The Swarm stack this instance runs in (the stack file sets it): the
    /// anchors it makes join the stack, so that `docker stack rm` removes
    /// them with it, and none is made once the stack is being removed.
    #[arg(long, value_name = "NAME", env = "SWARM_STICKY_STACK")]
    pub stack: Option<String>,

    /// Seconds between full re-lists of the Docker API (events trigger
    /// re-lists in between).
    #[arg(long, value_name = "SECS", env = "SWARM_STICKY_RESYNC", default_value_t = DEFAULT_RESYNC_SECS)]
    pub resync: u64,

    /// Admin listener (JSON API, metrics, dashboard).
    #[arg(long, value_name = "ADDR", env = "SWARM_STICKY_ADMIN", default_value = DEFAULT_ADMIN)]
    pub admin: SocketAddr,

    /// Worker threads, each with its own listening socket and runtime
    /// (default: the number of CPUs).
    #[arg(long, value_name = "N", env = "SWARM_STICKY_WORKERS")]
    pub workers: Option<usize>,

    /// How connections for the published addresses reach the workers.
    #[arg(long, env = "SWARM_STICKY_STEERING", default_value = "auto", value_parser = steering_values())]
    pub steering: String,

    /// Interface to attach the XDP counters (and SYN guard) to.
    #[arg(long, value_name = "IFACE", env = "SWARM_STICKY_XDP_IFACE")]
    pub xdp_iface: Option<String>,

    /// SYN guard: new connections per second allowed from one IPv4 source
    /// (needs --xdp-iface; 0 turns the guard off).
    #[arg(long, value_name = "N", env = "SWARM_STICKY_SYN_RATE", default_value_t = 0)]
    pub syn_rate: u32,

    /// SYN guard: burst of SYNs allowed above the rate.
    #[arg(long, value_name = "N", env = "SWARM_STICKY_SYN_BURST", default_value_t = DEFAULT_SYN_BURST)]
    pub syn_burst: u32,

    /// Where bpffs is (or gets) mounted; pins live in `swarm-sticky/` below it.
    #[arg(long, value_name = "DIR", env = "SWARM_STICKY_BPFFS", default_value = DEFAULT_BPFFS)]
    pub bpffs: PathBuf,

    /// Seconds to finish in-flight requests after SIGTERM.
    #[arg(long, value_name = "SECS", env = "SWARM_STICKY_GRACE_PERIOD", default_value_t = DEFAULT_GRACE_PERIOD_SECS)]
    pub grace_period: u64,

    /// Open client connections per worker; more wait in the accept queue.
    #[arg(long, value_name = "N", env = "SWARM_STICKY_MAX_CONNECTIONS", default_value_t = DEFAULT_MAX_CONNECTIONS)]
    pub max_connections: usize,

    /// Log format on stderr.
    #[arg(long, env = "SWARM_STICKY_LOG_FORMAT", default_value = "text", value_parser = log_format_values())]
    pub log_format: String,

    /// Access log: one line per request.
    #[arg(long, env = "SWARM_STICKY_ACCESS_LOG", default_value = "off", value_parser = access_log_values())]
    pub access_log: String,

    /// Append the access log to this file instead of stdout.
    #[arg(long, value_name = "PATH", env = "SWARM_STICKY_ACCESS_LOG_FILE")]
    pub access_log_file: Option<PathBuf>,

    /// File holding the bearer token for the admin API's write actions
    /// (drain, undrain, reload). Without it they are disabled.
    #[arg(long, value_name = "PATH", env = "SWARM_STICKY_ADMIN_TOKEN_FILE")]
    pub admin_token_file: Option<PathBuf>,

    /// Let the admin API's read endpoints and dashboard answer clients
    /// other than loopback (by default they answer loopback only, or a
    /// client with the bearer token).
    #[arg(long, env = "SWARM_STICKY_ADMIN_PUBLIC_READ")]
    pub admin_public_read: bool,
}

/// Automatic certificates of `run`.
#[derive(Debug, Args)]
pub struct AcmeArgs {
    /// Obtain and renew certificates automatically (ACME) for the names
    /// the services declare (labels swarm-sticky.tls.acme, Traefik's
    /// certresolver/domains, or Traefik v1's https entry point with a Host
    /// rule; [services.tls] acme in a --config file), with this contact
    /// address on the CA account.
    #[arg(long, value_name = "EMAIL", env = "SWARM_STICKY_ACME_EMAIL")]
    pub acme_email: Option<String>,

    /// The CA's ACME directory URL (also turns ACME on): Let's Encrypt by
    /// default; `staging` for Let's Encrypt's staging CA.
    #[arg(long, value_name = "URL", env = "SWARM_STICKY_ACME_DIRECTORY")]
    pub acme_directory: Option<String>,

    /// A root certificate (PEM) to trust for the CA's own HTTPS, beside the
    /// system's (SSL_CERT_FILE, SSL_CERT_DIR, or the OS store): a private CA.
    #[arg(long, value_name = "PATH", env = "SWARM_STICKY_ACME_CA_ROOT")]
    pub acme_ca_root: Option<PathBuf>,

    /// Answer DNS-01 challenges (needed for wildcard names) with this
    /// program, called as lego's exec provider calls it: `PROGRAM present
    /// _acme-challenge.NAME. VALUE`, then `PROGRAM cleanup …`.
    #[arg(long, value_name = "PROGRAM", env = "SWARM_STICKY_ACME_DNS_HOOK")]
    pub acme_dns_hook: Option<PathBuf>,

    /// The challenge for names that are not wildcards: `auto` is http-01
    /// with an http:// listener (port 80 must reach it), else tls-alpn-01
    /// (port 443 must reach an https:// listener); dns-01 needs
    /// --acme-dns-hook. Wildcards always use dns-01.
    #[arg(long, value_name = "TYPE", env = "SWARM_STICKY_ACME_CHALLENGE", default_value = "auto",
          value_parser = ["auto", "http-01", "tls-alpn-01", "dns-01"])]
    pub acme_challenge: String,

    /// Seconds an order lock holds (with --docker, the managers share one
    /// per certificate): a manager that dies mid-order is taken over by
    /// another after this.
    #[arg(long, value_name = "SECS", env = "SWARM_STICKY_ACME_LOCK_TTL", default_value_t = DEFAULT_ACME_LOCK_TTL_SECS)]
    pub acme_lock_ttl: u64,

    /// Seconds to wait before retrying a failed order; doubled after each
    /// failure in a row, up to an hour.
    #[arg(long, value_name = "SECS", env = "SWARM_STICKY_ACME_RETRY", default_value_t = DEFAULT_ACME_RETRY_SECS)]
    pub acme_retry: u64,
}

/// HTTPS and the PROXY protocol of `run`'s listeners.
#[derive(Debug, Args)]
pub struct TlsArgs {
    /// Directory of certificates, one per entry: NAME/fullchain.pem +
    /// NAME/privkey.pem (certbot's live/), NAME/cert.pem + NAME/key.pem,
    /// NAME.pem (or .crt) + NAME.key, or NAME.pem holding chain and key.
    /// Chosen by SNI; re-read on change, SIGHUP and the admin reload.
    #[arg(long, value_name = "DIR", env = "SWARM_STICKY_TLS_CERT_DIR")]
    pub tls_cert_dir: Option<PathBuf>,

    /// A certificate chain (PEM) to serve, also to clients without SNI or
    /// with a name no certificate has (needs --tls-key).
    #[arg(long, value_name = "PATH", env = "SWARM_STICKY_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// The private key (PEM: PKCS#8, PKCS#1 or SEC1) of --tls-cert.
    #[arg(long, value_name = "PATH", env = "SWARM_STICKY_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// Oldest TLS version accepted.
    #[arg(long, value_name = "VERSION", env = "SWARM_STICKY_TLS_MIN_VERSION", default_value = "1.2", value_parser = ["1.2", "1.3"])]
    pub tls_min_version: String,

    /// Seconds a client has for the whole TLS handshake.
    #[arg(long, value_name = "SECS", env = "SWARM_STICKY_TLS_HANDSHAKE_TIMEOUT", default_value_t = DEFAULT_TLS_HANDSHAKE_TIMEOUT_SECS)]
    pub tls_handshake_timeout: u64,

    /// Networks whose PROXY protocol headers are believed on +proxy
    /// listeners (repeatable, or comma-separated), e.g. 10.0.0.0/8. From
    /// other sources a header is refused.
    #[arg(
        long,
        value_name = "CIDR",
        env = "SWARM_STICKY_PROXY_PROTOCOL_FROM",
        value_delimiter = ','
    )]
    pub proxy_protocol_from: Vec<String>,
}

/// Flags of `swarm-sticky demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Address of the balancer.
    #[arg(long, value_name = "ADDR", env = "SWARM_STICKY_LISTEN", default_value = DEFAULT_DEMO_LISTEN)]
    pub listen: SocketAddr,

    /// Address of the balancer's HTTPS listener (a certificate for
    /// localhost is generated).
    #[arg(long, value_name = "ADDR", default_value = DEFAULT_DEMO_TLS_LISTEN)]
    pub tls_listen: SocketAddr,

    /// Workers (default: the number of CPUs).
    #[arg(long, value_name = "N", env = "SWARM_STICKY_WORKERS")]
    pub workers: Option<usize>,
}

/// Flags of `swarm-sticky whoami`.
#[derive(Debug, Args)]
pub struct WhoamiArgs {
    /// Address to listen on.
    #[arg(
        long,
        value_name = "ADDR",
        env = "SWARM_STICKY_WHOAMI_LISTEN",
        default_value = "127.0.0.1:8000"
    )]
    pub listen: SocketAddr,

    /// Name in the answer (default: the host name).
    #[arg(long, value_name = "NAME", env = "SWARM_STICKY_WHOAMI_NAME")]
    pub name: Option<String>,
}

/// Flags of `swarm-sticky probe`.
#[derive(Debug, Args)]
pub struct ProbeArgs {
    /// `http://IP[:PORT]/PATH` (or `localhost`) to GET.
    #[arg(value_name = "URL")]
    pub url: String,

    /// Seconds to wait for the answer.
    #[arg(long, value_name = "SECS", default_value_t = 3)]
    pub timeout: u64,

    /// Count only an answer from a swarm-sticky in this probe's own PID
    /// namespace (its container): while two instances share the admin
    /// port during an update, each container's HEALTHCHECK judges its own.
    #[arg(long)]
    pub this_container: bool,
}

/// Flags of `swarm-sticky image`.
#[derive(Debug, Args)]
pub struct ImageArgs {
    /// Tags to give the image (repeatable; default `swarm-sticky:<version>`
    /// and `swarm-sticky:latest`).
    #[arg(long = "tag", value_name = "NAME:TAG")]
    pub tags: Vec<String>,

    /// The Docker API to build on.
    #[arg(long, value_name = "URL", env = "DOCKER_HOST", default_value = DEFAULT_DOCKER_HOST)]
    pub docker_host: String,
}
