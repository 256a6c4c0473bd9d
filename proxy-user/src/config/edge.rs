//! The listeners of `run`: `--listen` with its schemes, the TLS settings
//! they need, and the networks trusted for PROXY protocol headers. The
//! certificates are read here once, so that a missing or broken one stops
//! the start with exit 64 before anything binds.

use std::collections::HashSet;

use super::ConfigError;
use crate::{
    cli::TlsArgs,
    error::FieldError,
    listener::{Cidr, Listener, Scheme},
    tls::{self, CertFiles, MinVersion, TlsSettings},
};

/// The listeners and what they need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EdgeConfig {
    /// In `--listen` order.
    pub listeners: Vec<Listener>,
    /// With an `https://` listener.
    pub tls: Option<TlsSettings>,
    /// `--proxy-protocol-from`.
    pub proxy_protocol_from: Vec<Cidr>,
}

/// Parses and checks `--listen`, the TLS flags and `--proxy-protocol-from`;
/// with `automatic` (ACME on), an https:// listener may start without a
/// certificate file.
///
/// # Errors
/// The first problem, naming the flag.
pub fn edge(listen: &[String], args: &TlsArgs, automatic: bool) -> Result<EdgeConfig, ConfigError> {
    if listen.is_empty() {
        return Err(ConfigError::NoListen);
    }
    let mut listeners = Vec::new();
    let mut seen = HashSet::new();
    for spec in listen {
        let l: Listener = spec.trim().parse().map_err(|e| FieldError::new("--listen", e))?;
        if l.addr.port() == 0 {
            return Err(ConfigError::ListenPortZero(l.addr));
        }
        if !seen.insert(l.addr) {
            return Err(ConfigError::DuplicateListen(l.addr));
        }
        listeners.push(l);
    }
    let proxy_protocol_from = args
        .proxy_protocol_from
        .iter()
        .map(|c| c.trim().parse::<Cidr>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| FieldError::new("--proxy-protocol-from", e))?;
    let reads_proxy = listeners.iter().any(|l| l.proxy_protocol);
    if reads_proxy && proxy_protocol_from.is_empty() {
        return Err(FieldError::new(
            "--listen",
            "a +proxy listener believes PROXY headers only from --proxy-protocol-from, and none is given",
        )
        .into());
    }
    if !reads_proxy && !proxy_protocol_from.is_empty() {
        return Err(FieldError::new(
            "--proxy-protocol-from",
            "no listener reads PROXY headers (use http+proxy:// or https+proxy:// in --listen)",
        )
        .into());
    }
    let https = listeners.iter().any(|l| l.scheme == Scheme::Https);
    let certs_given = args.tls_cert_dir.is_some() || args.tls_cert.is_some();
    let tls = match (https, certs_given || automatic) {
        (true, true) => Some(tls_settings(args, automatic)?),
        (true, false) => {
            return Err(FieldError::new(
                "--listen",
                "an https:// listener needs certificates: --tls-cert-dir DIR, --tls-cert and --tls-key, or ACME (--acme-email)",
            )
            .into());
        }
        // ACME without an https:// listener is refused by its own check.
        (false, _) if certs_given => {
            return Err(FieldError::new(
                "--tls-cert-dir/--tls-cert",
                "certificates are given but no listener is https:// (e.g. --listen https://0.0.0.0:443)",
            )
            .into());
        }
        (false, _) => None,
    };
    Ok(EdgeConfig {
        listeners,
        tls,
        proxy_protocol_from,
    })
}

fn tls_settings(args: &TlsArgs, automatic: bool) -> Result<TlsSettings, ConfigError> {
    if args.tls_handshake_timeout == 0 {
        return Err(FieldError::new("--tls-handshake-timeout", "must be at least 1 second").into());
    }
    let cert = match (&args.tls_cert, &args.tls_key) {
        (Some(chain), Some(key)) => Some(CertFiles {
            chain: chain.clone(),
            key: key.clone(),
        }),
        _ => None,
    };
    let min_version = if args.tls_min_version == "1.3" {
        MinVersion::Tls13
    } else {
        MinVersion::Tls12
    };
    let mut settings = TlsSettings::new(args.tls_cert_dir.clone(), cert, min_version, args.tls_handshake_timeout);
    settings.automatic = automatic;
    checked_tls(settings, "--tls-cert-dir/--tls-cert")
}

/// `settings`, once their certificates load; otherwise an error naming
/// `field`.
pub(super) fn checked_tls(settings: TlsSettings, field: &str) -> Result<TlsSettings, ConfigError> {
    tls::check(&settings).map_err(|e| FieldError::new(field, e.to_string()))?;
    Ok(settings)
}
