//! Certificates from files: which files make a certificate, and reading
//! one (chain, key, the key matching the leaf, the names it serves).
//!
//! `--tls-cert-dir` takes the layouts people already have, each entry of
//! the directory being one certificate:
//! - `NAME/fullchain.pem` + `NAME/privkey.pem` (certbot's `live/NAME`; the
//!   directory may be `live` itself or the one above it),
//! - `NAME/cert.pem` + `NAME/key.pem`,
//! - `NAME.crt` or `NAME.pem` beside `NAME.key`,
//! - `NAME.pem` holding the chain and the key together.
//!
//! `--tls-cert` + `--tls-key` name one pair directly.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
};

use rustls::sign::CertifiedKey;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject as _};

/// Where one certificate's chain and key are (the same file when combined).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct CertFiles {
    /// The chain, leaf first.
    pub chain: PathBuf,
    /// The private key.
    pub key: PathBuf,
}

/// Why a certificate could not be used.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    /// A file could not be read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// No certificate in the chain file.
    #[error("{0}: no PEM certificate")]
    NoCertificate(PathBuf),
    /// No key, or one that does not parse.
    #[error("{path}: no usable PEM private key (PKCS#8, PKCS#1 or SEC1): {reason}")]
    Key {
        /// The file.
        path: PathBuf,
        /// The parser's word.
        reason: String,
    },
    /// A key rustls cannot sign with, or that is not the leaf's.
    #[error("{path}: {reason}")]
    Unusable {
        /// The chain file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// What the status page and the metrics show of a certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    /// DNS names it serves (SANs, else the subject's CN), lowercase;
    /// wildcards as `*.example.com`.
    pub names: Vec<String>,
    /// The issuer's distinguished name.
    pub issuer: String,
    /// Serial number, upper-case hex without leading zeros (as openssl
    /// prints it).
    pub serial: String,
    /// Not valid before, Unix seconds.
    pub not_before: i64,
    /// Not valid after, Unix seconds.
    pub not_after: i64,
    /// `ecdsa`, `rsa` or `ed25519`.
    pub key_type: &'static str,
}

/// A certificate ready to serve.
#[derive(Debug, Clone)]
pub struct LoadedCert {
    /// Chain and signing key, as rustls serves them.
    pub key: Arc<CertifiedKey>,
    /// What it is.
    pub info: CertInfo,
}

/// The certificates a directory holds, in name order.
///
/// # Errors
/// When the directory cannot be read.
pub fn scan_dir(dir: &Path) -> Result<Vec<CertFiles>, CertError> {
    let mut found = Vec::new();
    scan(dir, 0, &mut found)?;
    found.sort();
    found.dedup();
    Ok(found)
}

fn scan(dir: &Path, depth: usize, found: &mut Vec<CertFiles>) -> Result<(), CertError> {
    let read = |source| CertError::Read {
        path: dir.to_owned(),
        source,
    };
    if let Some(pair) = pair_in(dir) {
        found.push(pair);
        return Ok(());
    }
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(read)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    for path in entries {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        if name.starts_with('.') {
            continue;
        }
        if path.is_dir() {
            // `DIR/NAME/…` and certbot's `DIR/live/NAME/…`, no deeper; the
            // rest of certbot's directory holds no served certificate.
            if depth < 2 && !CERTBOT_OTHER.contains(&name) {
                scan(&path, depth + 1, found)?;
            }
            continue;
        }
        let Some((stem, ext)) = name.rsplit_once('.') else {
            continue;
        };
        if !matches!(ext, "pem" | "crt") || is_key_name(stem) || is_certbot_extra(stem) {
            continue;
        }
        let key = path.with_file_name(format!("{stem}.key"));
        let key = if key.is_file() { key } else { path.clone() };
        found.push(CertFiles { chain: path, key });
    }
    Ok(())
}

/// certbot's directories beside `live`.
const CERTBOT_OTHER: [&str; 6] = ["accounts", "archive", "csr", "keys", "renewal", "renewal-hooks"];

/// A directory holding one certificate as a pair of well-known names.
fn pair_in(dir: &Path) -> Option<CertFiles> {
    [("fullchain.pem", "privkey.pem"), ("cert.pem", "key.pem")]
        .into_iter()
        .map(|(c, k)| CertFiles {
            chain: dir.join(c),
            key: dir.join(k),
        })
        .find(|p| p.chain.is_file() && p.key.is_file())
}

fn is_key_name(stem: &str) -> bool {
    stem == "privkey" || stem == "key" || stem.ends_with("-key") || stem.ends_with(".key") || stem.ends_with("_key")
}

/// certbot's other files: parts of `fullchain.pem`, and the web-server
/// plugins' Diffie-Hellman parameters.
fn is_certbot_extra(stem: &str) -> bool {
    matches!(stem, "chain" | "cert" | "ssl-dhparams")
}

/// Reads and checks one certificate.
///
/// # Errors
/// A file that cannot be read, holds no certificate or key, or a key that
/// does not belong to the leaf.
pub fn load(files: &CertFiles) -> Result<LoadedCert, CertError> {
    let read = |path: &Path| {
        std::fs::read(path).map_err(|source| CertError::Read {
            path: path.to_owned(),
            source,
        })
    };
    let chain_pem = read(&files.chain)?;
    let key_pem = if files.key == files.chain {
        chain_pem.clone()
    } else {
        read(&files.key)?
    };
    from_pem(&chain_pem, &key_pem, files)
}

/// Checks one certificate given as PEM: `chain_pem` (leaf first) and
/// `key_pem`; `files` name them in errors.
///
/// # Errors
/// No certificate or key, or a key that does not belong to the leaf.
pub fn from_pem(chain_pem: &[u8], key_pem: &[u8], files: &CertFiles) -> Result<LoadedCert, CertError> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(chain_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| CertError::Unusable {
            path: files.chain.clone(),
            reason: format!("bad PEM: {e}"),
        })?;
    let Some(leaf) = chain.first().cloned() else {
        return Err(CertError::NoCertificate(files.chain.clone()));
    };
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| CertError::Key {
        path: files.key.clone(),
        reason: e.to_string(),
    })?;
    let info = describe(&leaf, &files.chain)?;
    let provider = rustls::crypto::aws_lc_rs::default_provider();
    let key = CertifiedKey::from_der(chain, key, &provider).map_err(|e| CertError::Unusable {
        path: files.chain.clone(),
        reason: match e {
            rustls::Error::InconsistentKeys(_) => {
                format!("the key in {} is not the certificate's", files.key.display())
            }
            other => other.to_string(),
        },
    })?;
    Ok(LoadedCert {
        key: Arc::new(key),
        info,
    })
}

/// Names, issuer, serial and expiry of a leaf certificate.
fn describe(leaf: &CertificateDer<'_>, path: &Path) -> Result<CertInfo, CertError> {
    use x509_parser::prelude::{FromDer as _, GeneralName, X509Certificate};
    let unusable = |reason: String| CertError::Unusable {
        path: path.to_owned(),
        reason,
    };
    let (_, cert) = X509Certificate::from_der(leaf).map_err(|e| unusable(format!("not an X.509 certificate: {e}")))?;
    let mut names: Vec<String> = match cert.subject_alternative_name() {
        Ok(Some(san)) => san
            .value
            .general_names
            .iter()
            .filter_map(|n| match n {
                GeneralName::DNSName(d) => Some(d.to_ascii_lowercase()),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    if names.is_empty() {
        names.extend(
            cert.subject()
                .iter_common_name()
                .filter_map(|cn| cn.as_str().ok())
                .map(str::to_ascii_lowercase),
        );
    }
    let key_type = match cert.public_key().algorithm.algorithm.to_id_string().as_str() {
        "1.2.840.10045.2.1" => "ecdsa",
        "1.2.840.113549.1.1.1" | "1.2.840.113549.1.1.10" => "rsa",
        "1.3.101.112" => "ed25519",
        other => return Err(unusable(format!("unsupported public key algorithm {other}"))),
    };
    Ok(CertInfo {
        names,
        issuer: cert.issuer().to_string(),
        serial: format!("{:X}", cert.serial),
        not_before: cert.validity().not_before.timestamp(),
        not_after: cert.validity().not_after.timestamp(),
        key_type,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, rel: &str, body: &str) {
        let p = dir.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, body).unwrap();
    }

    fn cert(names: &[&str]) -> (String, String) {
        let c = rcgen::generate_simple_self_signed(names.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>()).unwrap();
        (c.cert.pem(), c.signing_key.serialize_pem())
    }

    #[test]
    fn every_layout_is_found_and_loaded() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let (c, k) = cert(&["a.test"]);
        write(d, "live/a.test/fullchain.pem", &c);
        write(d, "live/a.test/privkey.pem", &k);
        write(d, "live/a.test/cert.pem", &c);
        write(d, "live/a.test/chain.pem", "");
        write(d, "live/README", "certbot");
        let (c, k) = cert(&["b.test"]);
        write(d, "b/cert.pem", &c);
        write(d, "b/key.pem", &k);
        let (c, k) = cert(&["*.c.test", "c.test"]);
        write(d, "c.crt", &c);
        write(d, "c.key", &k);
        let (c, k) = cert(&["d.test"]);
        write(d, "d.pem", &format!("{c}{k}"));
        let found = scan_dir(d).unwrap();
        let names: Vec<Vec<String>> = found.iter().map(|f| load(f).unwrap().info.names).collect();
        assert_eq!(
            names,
            vec![
                vec!["b.test".to_owned()],
                vec!["*.c.test".to_owned(), "c.test".to_owned()],
                vec!["d.test".to_owned()],
                vec!["a.test".to_owned()],
            ]
        );
        let loaded = load(&found[0]).unwrap();
        assert_eq!(loaded.info.key_type, "ecdsa");
        assert!(loaded.info.not_after > 0 && !loaded.info.serial.is_empty());
    }

    #[test]
    fn a_key_of_another_certificate_or_garbage_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let (c, _) = cert(&["a.test"]);
        let (_, other_key) = cert(&["b.test"]);
        write(d, "a/cert.pem", &c);
        write(d, "a/key.pem", &other_key);
        let err = load(&scan_dir(d).unwrap()[0]).unwrap_err().to_string();
        assert!(err.contains("is not the certificate's"), "{err}");
        write(
            d,
            "a/cert.pem",
            "-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n",
        );
        let err = load(&scan_dir(d).unwrap()[0]).unwrap_err().to_string();
        assert!(err.contains("cert.pem"), "{err}");
        write(d, "a/cert.pem", "");
        let err = load(&scan_dir(d).unwrap()[0]).unwrap_err().to_string();
        assert!(err.contains("no PEM certificate"), "{err}");
    }
}
