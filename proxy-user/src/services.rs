//! The service model: which requests go to which backends, how the sticky
//! cookie of each service looks, and what it asks of HTTPS.
//!
//! Sources are the command line (`--backend NAME=URL`, one service routed
//! with `PathPrefix:/`) and a TOML file (`--config`, several services; see
//! `docs/config.example.toml`). Both are validated here into plain data
//! ([`ServicesConfig`]) before anything binds; errors name the field, e.g.
//! `services[1].backends[0].url: …`. This module does not route requests
//! (see [`crate::balance`]) nor sign cookies (see [`crate::cookie`]).

mod cookie;
mod file;
pub mod path;
mod rule;
mod tls;
mod validate;

use std::{
    net::{IpAddr, SocketAddr},
    time::Duration,
};

use self::validate::{validate, validate_name};
pub use self::{
    cookie::{CookieConfig, CookieOverrides, SameSite, SecureMode, default_cookie_name},
    rule::Rule,
    tls::{AcmeRequest, HSTS_PRELOAD_MIN_MAX_AGE, Hsts, TlsPolicy, acme_name},
    validate::{Claims, validate_service},
};
use crate::error::FieldError;

/// Name of the service formed by the `--backend` flags.
pub const CLI_SERVICE: &str = "default";

/// All services plus the settings shared by the proxy.
#[derive(Debug, Clone, PartialEq)]
pub struct ServicesConfig {
    /// Services in declaration order.
    pub services: Vec<ServiceConfig>,
    /// Peers whose `X-Forwarded-*` headers are believed (default: none).
    pub trusted_proxies: Vec<IpAddr>,
    /// Timeouts and limits of the HTTP proxy.
    pub limits: Limits,
}

/// Timeouts and limits of the HTTP proxy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Time a client has to send a complete request head, also the idle
    /// time allowed between keep-alive requests (default 10 s). Expiry
    /// answers 408 when part of a request had arrived.
    pub header_read_timeout: Duration,
    /// Largest request head in bytes (default 64 KiB, at least 8 KiB);
    /// larger ones get 431.
    pub max_header_bytes: usize,
    /// Time to open a TCP connection to a backend (default 2 s).
    pub connect_timeout: Duration,
    /// Idle keep-alive connections kept per backend and worker (default
    /// 1024): a burst's connections wait for the next burst instead of
    /// being closed and opened again (an HTTP/2 client multiplexes
    /// hundreds of requests onto them); one idle for 4 s is not reused.
    pub pool_idle_per_backend: usize,
    /// An HTTP/2 client connection without a request for this long is
    /// closed gracefully (default 60 s; HTTP/1 idles under
    /// `header_read_timeout`).
    pub idle_timeout: Duration,
    /// Longest wait for the next chunk of a request body (default 30 s);
    /// expiry answers 408 (or, once the backend answered, ends the upload).
    /// A service may set its own ([`ServiceTimeouts`]).
    pub request_body_timeout: Duration,
    /// Longest wait for a backend's response head once the request is
    /// sent (default 60 s, as nginx's `proxy_read_timeout`); expiry answers
    /// 504, or retries on another backend where the retry rules allow. A
    /// service may set its own ([`ServiceTimeouts`]).
    pub response_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            max_header_bytes: 64 * 1024,
            connect_timeout: Duration::from_secs(2),
            pool_idle_per_backend: 1024,
            idle_timeout: Duration::from_secs(60),
            request_body_timeout: Duration::from_secs(30),
            response_timeout: Duration::from_secs(60),
        }
    }
}

/// A service's own deadlines; `None` takes the table's [`Limits`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ServiceTimeouts {
    /// See [`Limits::request_body_timeout`].
    pub request_body: Option<Duration>,
    /// See [`Limits::response_timeout`].
    pub response: Option<Duration>,
}

/// The upgrade protocol a service allows unless it names others.
pub const DEFAULT_UPGRADE: &str = "websocket";

/// One service: a rule, backends, cookie and health settings.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceConfig {
    /// Unique name (also the seed of the default cookie name).
    pub name: String,
    /// Which requests belong to the service.
    pub rule: Rule,
    /// Backends, with unique names.
    pub backends: Vec<BackendConfig>,
    /// The sticky cookie.
    pub cookie: CookieConfig,
    /// Optional active HTTP health check.
    pub health: Option<HealthCheckConfig>,
    /// Passive health: connect failures take a backend out for a while.
    pub passive: PassiveHealthConfig,
    /// Backend names are `<task>.<slot>` (discovered Swarm tasks): a cookie
    /// naming a task that is gone moves to the task now in the same slot
    /// (a rolling update's replacement), with a new cookie.
    pub slot_affinity: bool,
    /// Slots (with `slot_affinity`) whose task is on its way and not yet
    /// running (Swarm's stop-first rolling update): a cookie naming the
    /// slot's previous task is served by a stand-in and keeps its slot.
    pub waiting_slots: Vec<String>,
    /// Deadlines that differ from the table's limits.
    pub timeouts: ServiceTimeouts,
    /// Protocols (lower-case, e.g. `websocket`) a client may upgrade to;
    /// an `Upgrade` naming none of them is forwarded as a plain request.
    pub upgrades: Vec<String>,
    /// Redirect to HTTPS and HSTS (default: neither).
    pub tls: TlsPolicy,
}

/// A static backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendConfig {
    /// Identity named by the sticky cookie (unique within the service).
    pub name: String,
    /// Where to connect.
    pub addr: SocketAddr,
    /// Relative weight for new sessions (default 1, 0 = no new sessions).
    pub weight: u32,
    /// Network namespace to open connections from (a Docker overlay's,
    /// for discovered tasks); `None`: this process's own.
    pub via: Option<std::path::PathBuf>,
    /// Why discovery holds it down (its node is not ready, its container
    /// fails its HEALTHCHECK): it takes no sessions, and a cookie naming
    /// it fails over at once. `None` for configured backends.
    pub down: Option<String>,
    /// The Swarm task behind a discovered backend (for the admin API).
    pub task: Option<TaskInfo>,
}

/// Where a discovered backend runs.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TaskInfo {
    /// Swarm task ID.
    pub task: String,
    /// Container ID, once the task has one.
    pub container: Option<String>,
    /// Node ID.
    pub node: Option<String>,
}

/// Active HTTP health check of a service's backends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheckConfig {
    /// Path requested with GET (default `/`).
    pub path: String,
    /// Time between checks (default 5 s).
    pub interval: Duration,
    /// Time allowed for one check (default 1 s).
    pub timeout: Duration,
    /// Status that counts as healthy (default 200).
    pub expected_status: u16,
}

/// Passive health settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PassiveHealthConfig {
    /// Consecutive connect failures that take a backend down (default 3).
    pub failures: u32,
    /// How long it stays down (default 10 s).
    pub backoff: Duration,
}

impl Default for PassiveHealthConfig {
    fn default() -> Self {
        Self {
            failures: 3,
            backoff: Duration::from_secs(10),
        }
    }
}

/// Builds the services from `--config`, `--backend` and `--cookie-name`.
///
/// The `--backend` flags form the service [`CLI_SERVICE`] (PathPrefix `/`);
/// the config file may add more. `--cookie-name` names the cookie of every
/// service that does not set one, and must then apply to exactly one. With
/// `docker`, no static service is needed.
///
/// # Errors
/// The first invalid field, named (`--backend[2]: …`, `services[0].rule: …`).
pub fn from_flags(
    config: Option<&std::path::Path>,
    static_backends: &[String],
    cookie_name: Option<&str>,
    docker: bool,
) -> Result<ServicesConfig, FieldError> {
    if let Some(name) = cookie_name {
        validate::validate_cookie_name("--cookie-name", name)?;
    }
    let mut cfg = match config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| FieldError::new("--config", format!("cannot read {}: {e}", path.display())))?;
            file::parse(&text, cookie_name)?
        }
        None => ServicesConfig {
            services: Vec::new(),
            trusted_proxies: Vec::new(),
            limits: Limits::default(),
        },
    };
    if !static_backends.is_empty() {
        let mut backends = Vec::new();
        for (i, spec) in static_backends.iter().enumerate() {
            let field = format!("--backend[{i}]");
            let (name, url) = spec
                .split_once('=')
                .ok_or_else(|| FieldError::new(&field, format!("{spec:?} is not NAME=URL")))?;
            validate_name(&field, name)?;
            let addr = parse_backend_url(&field, url)?;
            backends.push(BackendConfig {
                name: name.to_owned(),
                addr,
                weight: 1,
                via: None,
                down: None,
                task: None,
            });
        }
        let mut cookie = CookieConfig::for_service(CLI_SERVICE);
        if let Some(name) = cookie_name {
            name.clone_into(&mut cookie.name);
        }
        cfg.services.push(ServiceConfig {
            name: CLI_SERVICE.to_owned(),
            rule: Rule::default(),
            backends,
            cookie,
            health: None,
            passive: PassiveHealthConfig::default(),
            slot_affinity: false,
            waiting_slots: Vec::new(),
            timeouts: ServiceTimeouts::default(),
            upgrades: vec![DEFAULT_UPGRADE.to_owned()],
            tls: TlsPolicy::default(),
        });
    }
    validate(&cfg, cookie_name.is_some(), docker)?;
    Ok(cfg)
}

impl ServicesConfig {
    /// Parses and validates a TOML configuration (the `--config` format).
    ///
    /// # Errors
    /// The first invalid field, named.
    pub fn from_toml_str(text: &str) -> Result<Self, FieldError> {
        let cfg = file::parse(text, None)?;
        validate(&cfg, false, false)?;
        Ok(cfg)
    }

    /// One service `name` routed with `PathPrefix:/` over `backends`
    /// (name, address), with default settings: what `--backend` builds.
    pub fn single(name: &str, backends: &[(String, SocketAddr)]) -> Self {
        Self {
            services: vec![ServiceConfig {
                name: name.to_owned(),
                rule: Rule::default(),
                backends: backends
                    .iter()
                    .map(|(n, a)| BackendConfig {
                        name: n.clone(),
                        addr: *a,
                        weight: 1,
                        via: None,
                        down: None,
                        task: None,
                    })
                    .collect(),
                cookie: CookieConfig::for_service(name),
                health: None,
                passive: PassiveHealthConfig::default(),
                slot_affinity: false,
                waiting_slots: Vec::new(),
                timeouts: ServiceTimeouts::default(),
                upgrades: vec![DEFAULT_UPGRADE.to_owned()],
                tls: TlsPolicy::default(),
            }],
            trusted_proxies: Vec::new(),
            limits: Limits::default(),
        }
    }
}

/// Parses `http://host:port` (IP literal or a resolvable name) to an address.
pub(crate) fn parse_backend_url(field: &str, url: &str) -> Result<SocketAddr, FieldError> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| FieldError::new(field, format!("{url:?} must start with http://")))?;
    let hostport = rest.strip_suffix('/').unwrap_or(rest);
    if hostport.is_empty() || hostport.contains(['/', '?', '#', '@']) {
        return Err(FieldError::new(
            field,
            format!("{url:?} must be http://HOST:PORT without a path"),
        ));
    }
    if let Ok(addr) = hostport.parse::<SocketAddr>() {
        if addr.port() == 0 {
            return Err(FieldError::new(field, format!("{url:?} has port 0")));
        }
        return Ok(addr);
    }
    if !hostport
        .rsplit_once(':')
        .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p > 0))
    {
        return Err(FieldError::new(
            field,
            format!("{url:?} needs a port, e.g. http://10.0.0.5:8000"),
        ));
    }
    use std::net::ToSocketAddrs as _;
    hostport
        .to_socket_addrs()
        .ok()
        .and_then(|mut it| it.next())
        .ok_or_else(|| FieldError::new(field, format!("cannot resolve {hostport:?}")))
}

#[cfg(test)]
mod tests;
