//! The HTTPS client the ACME account speaks through. It trusts the
//! system's roots (`SSL_CERT_FILE` or `SSL_CERT_DIR` when set, else the
//! operating system's store) and, beside them, the root of
//! `--acme-ca-root`, for a CA whose own HTTPS a private root signs.

use std::{path::Path, sync::Arc};

use bytes::Bytes;
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use instant_acme::{BodyWrapper, HttpClient};
use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::{CertificateDer, pem::PemObject as _};

/// A client for the CA's directory, trusting the system's roots and
/// `extra_root`.
///
/// # Errors
/// When `extra_root` does not read, or no root at all is there to check
/// the CA with (an image without CA certificates and no `--acme-ca-root`).
pub fn http_client(extra_root: Option<&Path>) -> Result<Box<dyn HttpClient>, String> {
    let mut roots = RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    roots.add_parsable_certificates(native.certs);
    if let Some(path) = extra_root {
        for cert in CertificateDer::pem_file_iter(path).map_err(|e| format!("{}: {e}", path.display()))? {
            let cert = cert.map_err(|e| format!("{}: {e}", path.display()))?;
            roots.add(cert).map_err(|e| format!("{}: {e}", path.display()))?;
        }
    }
    if roots.is_empty() {
        return Err(
            "no CA certificates to check the ACME server's HTTPS with: the system has none \
             (in a container, mount the host's /etc/ssl/certs or set SSL_CERT_FILE) and --acme-ca-root is not given"
                .to_owned(),
        );
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(config)
        .https_only()
        .enable_http1()
        .enable_http2()
        .build();
    Ok(Box::new(
        Client::builder(TokioExecutor::new()).build::<_, BodyWrapper<Bytes>>(connector),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_root_that_does_not_read_is_named() {
        let err = http_client(Some(Path::new("/nonexistent/root.pem"))).err().unwrap();
        assert!(err.contains("/nonexistent/root.pem"), "{err}");
    }
}
