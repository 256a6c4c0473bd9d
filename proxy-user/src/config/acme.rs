//! `run`'s ACME flags → [`AcmeSettings`], checked before anything binds:
//! an https:// listener to serve the certificates, a contact address that
//! is one, an https directory URL, a readable CA root and an executable
//! DNS hook.

use std::{os::unix::fs::PermissionsExt as _, path::Path};

use rustls_pki_types::{CertificateDer, pem::PemObject as _};

use super::ConfigError;
use crate::{
    acme::{AcmeSettings, Challenge, DnsHook, LETS_ENCRYPT, LETS_ENCRYPT_STAGING},
    cli::AcmeArgs,
    error::FieldError,
    listener::{Listener, Scheme},
};

/// Whether the flags turn ACME on.
pub fn wanted(args: &AcmeArgs) -> bool {
    args.acme_email.is_some() || args.acme_directory.is_some()
}

/// The ACME settings, when the flags turn it on, for these listeners.
///
/// # Errors
/// The first problem, naming the flag.
pub fn acme(
    args: &AcmeArgs,
    state_dir: &Path,
    listeners: &[Listener],
    docker_host: Option<&str>,
) -> Result<Option<AcmeSettings>, ConfigError> {
    let https = listeners.iter().any(|l| l.scheme == Scheme::Https);
    let http = listeners.iter().any(|l| l.scheme == Scheme::Http);
    if !wanted(args) {
        for (flag, set) in [
            ("--acme-ca-root", args.acme_ca_root.is_some()),
            ("--acme-dns-hook", args.acme_dns_hook.is_some()),
        ] {
            if set {
                return Err(FieldError::new(flag, "ACME is off: give --acme-email (or --acme-directory)").into());
            }
        }
        return Ok(None);
    }
    if !https {
        return Err(FieldError::new(
            "--acme-email/--acme-directory",
            "certificates are obtained for https:// listeners and none is given (e.g. --listen https://0.0.0.0:443)",
        )
        .into());
    }
    let email = match &args.acme_email {
        Some(e) => {
            let e = e.trim();
            let valid = e.split_once('@').is_some_and(|(user, host)| {
                !user.is_empty() && host.contains('.') && !e.chars().any(|c| c.is_whitespace() || c == ',')
            });
            if !valid {
                return Err(FieldError::new("--acme-email", format!("{e:?} is not an email address")).into());
            }
            Some(e.to_owned())
        }
        None => None,
    };
    let directory = match args.acme_directory.as_deref().map(str::trim) {
        None | Some("letsencrypt") => LETS_ENCRYPT.to_owned(),
        Some("staging" | "letsencrypt-staging") => LETS_ENCRYPT_STAGING.to_owned(),
        Some(url) => {
            let parsed: http::Uri = url
                .parse()
                .map_err(|e| FieldError::new("--acme-directory", format!("{url:?}: {e}")))?;
            if parsed.scheme_str() != Some("https") || parsed.host().is_none() {
                return Err(FieldError::new(
                    "--acme-directory",
                    format!("{url:?}: an ACME directory is an https:// URL (RFC 8555), or `staging`"),
                )
                .into());
            }
            url.to_owned()
        }
    };
    if let Some(root) = &args.acme_ca_root {
        CertificateDer::from_pem_file(root)
            .map_err(|e| FieldError::new("--acme-ca-root", format!("{}: {e}", root.display())))?;
    }
    let dns_hook = match &args.acme_dns_hook {
        Some(program) => {
            let meta = std::fs::metadata(program)
                .map_err(|e| FieldError::new("--acme-dns-hook", format!("{}: {e}", program.display())))?;
            if !meta.is_file() || meta.permissions().mode() & 0o111 == 0 {
                return Err(FieldError::new(
                    "--acme-dns-hook",
                    format!("{}: not an executable file", program.display()),
                )
                .into());
            }
            Some(DnsHook {
                program: program.clone(),
            })
        }
        None => None,
    };
    let challenge = match args.acme_challenge.as_str() {
        "http-01" if !http => {
            return Err(FieldError::new(
                "--acme-challenge",
                "http-01 is answered on an http:// listener and none is given",
            )
            .into());
        }
        "http-01" => Challenge::Http01,
        "tls-alpn-01" => Challenge::TlsAlpn01,
        "dns-01" if dns_hook.is_none() => {
            return Err(FieldError::new("--acme-challenge", "dns-01 needs --acme-dns-hook").into());
        }
        "dns-01" => Challenge::Dns01,
        _ if http => Challenge::Http01,
        _ => Challenge::TlsAlpn01,
    };
    if args.acme_retry == 0 {
        return Err(FieldError::new("--acme-retry", "must be at least 1 second").into());
    }
    if args.acme_lock_ttl < 10 {
        return Err(FieldError::new("--acme-lock-ttl", "must be at least 10 seconds").into());
    }
    Ok(Some(AcmeSettings {
        email,
        directory,
        ca_root: args.acme_ca_root.clone(),
        dns_hook,
        challenge,
        state_dir: state_dir.to_owned(),
        retry_secs: args.acme_retry,
        lock_ttl_secs: args.acme_lock_ttl,
        docker_host: docker_host.map(str::to_owned),
    }))
}
