//! The certificates of the configured sources and what happened when they
//! were last read. A refresh re-reads only the sources whose files changed
//! (size, time or inode, through symlinks, so certbot's `live/` links
//! count), and a source that fails keeps its last good certificate in
//! service with the error beside it: a half-written file or a key that is
//! not the certificate's never takes a name offline.

use std::{
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
};

use super::{
    certs::{self, CertFiles, LoadedCert},
    store::CertStore,
};

/// What identifies a version of a file.
type Stamp = Option<(u64, i64, i64, u64)>;

fn stamp(path: &Path) -> Stamp {
    let m = std::fs::metadata(path).ok()?;
    Some((m.ino(), m.mtime(), m.mtime_nsec(), m.len()))
}

struct Entry {
    files: CertFiles,
    stamps: (Stamp, Stamp),
    good: Option<LoadedCert>,
    error: Option<String>,
}

/// One certificate source, as `/api/status` shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CertStatus {
    /// The chain file.
    pub source: PathBuf,
    /// Names served (empty when the source never loaded).
    pub names: Vec<String>,
    /// Issuer's distinguished name.
    pub issuer: Option<String>,
    /// Serial number, upper-case hex.
    pub serial: Option<String>,
    /// Not valid after, Unix seconds.
    pub not_after: Option<i64>,
    /// `ecdsa`, `rsa` or `ed25519`.
    pub key_type: Option<&'static str>,
    /// Served to clients without SNI or with an unknown name.
    pub default: bool,
    /// The last read failed (the previous certificate, if any, is served).
    pub error: Option<String>,
}

/// The sources and their certificates.
pub struct Library {
    /// `--tls-cert-dir`.
    dir: Option<PathBuf>,
    /// `--tls-cert` + `--tls-key`: the default certificate.
    pair: Option<CertFiles>,
    entries: Vec<Entry>,
    /// The directory itself could not be read.
    dir_error: Option<String>,
    /// Log what each refresh loads (not when only checking).
    log: bool,
}

impl Library {
    /// Sources not read yet.
    pub fn new(dir: Option<PathBuf>, pair: Option<CertFiles>) -> Self {
        Self {
            dir,
            pair,
            entries: Vec::new(),
            dir_error: None,
            log: true,
        }
    }

    /// The same, with nothing logged (a configuration check).
    pub fn quiet(self) -> Self {
        Self { log: false, ..self }
    }

    /// The certificate files the sources name now.
    fn candidates(&mut self) -> Vec<CertFiles> {
        let mut files: Vec<CertFiles> = self.pair.iter().cloned().collect();
        if let Some(dir) = &self.dir {
            match certs::scan_dir(dir) {
                Ok(found) => {
                    self.dir_error = None;
                    files.extend(found.into_iter().filter(|f| Some(f) != self.pair.as_ref()));
                }
                Err(err) => {
                    // Keep what the directory held: an unreadable directory
                    // is an accident more often than a wish to stop serving.
                    self.dir_error = Some(err.to_string());
                    files.extend(
                        self.entries
                            .iter()
                            .map(|e| e.files.clone())
                            .filter(|f| Some(f) != self.pair.as_ref()),
                    );
                }
            }
        }
        files
    }

    /// Whether a refresh would read anything.
    pub fn changed(&mut self) -> bool {
        let files = self.candidates();
        files.len() != self.entries.len()
            || files
                .iter()
                .zip(&self.entries)
                .any(|(f, e)| *f != e.files || (stamp(&f.chain), stamp(&f.key)) != e.stamps)
    }

    /// Re-reads the sources whose files changed; returns the errors of
    /// this refresh (each also logged).
    pub fn refresh(&mut self) -> Vec<String> {
        let files = self.candidates();
        let mut old = std::mem::take(&mut self.entries);
        let mut errors: Vec<String> = self.dir_error.iter().cloned().collect();
        for f in files {
            let stamps = (stamp(&f.chain), stamp(&f.key));
            let previous = old.iter().position(|e| e.files == f).map(|i| old.swap_remove(i));
            let entry = match previous {
                Some(e) if e.stamps == stamps => e,
                previous => {
                    let good = previous.and_then(|e| e.good);
                    match certs::load(&f) {
                        Ok(cert) => {
                            if self.log {
                                tracing::info!(source = %f.chain.display(), names = %cert.info.names.join(","), serial = %cert.info.serial, "certificate loaded");
                            }
                            Entry {
                                files: f,
                                stamps,
                                good: Some(cert),
                                error: None,
                            }
                        }
                        Err(err) => {
                            let kept = if good.is_some() {
                                "; the previous certificate stays in service"
                            } else {
                                ""
                            };
                            if self.log {
                                tracing::error!("certificate not loaded: {err}{kept}");
                            }
                            errors.push(err.to_string());
                            Entry {
                                files: f,
                                stamps,
                                good,
                                error: Some(err.to_string()),
                            }
                        }
                    }
                }
            };
            self.entries.push(entry);
        }
        for gone in old {
            tracing::info!(source = %gone.files.chain.display(), "certificate removed");
        }
        errors
    }

    fn default_index(&self, good: &[&Entry]) -> usize {
        let named_default = |e: &&Entry| {
            let stem = |p: &Path| p.file_stem().and_then(|s| s.to_str()).map(str::to_owned);
            let parent = e
                .files
                .chain
                .parent()
                .and_then(|p| p.file_name())
                .and_then(|s| s.to_str());
            stem(&e.files.chain).as_deref() == Some("default") || parent == Some("default")
        };
        good.iter()
            .position(|e| Some(&e.files) == self.pair.as_ref())
            .or_else(|| good.iter().position(named_default))
            .unwrap_or(0)
    }

    /// The SNI index of the certificates in service.
    pub fn store(&self) -> CertStore {
        let good: Vec<&Entry> = self.entries.iter().filter(|e| e.good.is_some()).collect();
        let default = self.default_index(&good);
        let certs: Vec<&LoadedCert> = good.iter().filter_map(|e| e.good.as_ref()).collect();
        CertStore::build(&certs, default)
    }

    /// Number of certificates in service.
    pub fn serving(&self) -> usize {
        self.entries.iter().filter(|e| e.good.is_some()).count()
    }

    /// Every source with its certificate and last error.
    pub fn status(&self) -> Vec<CertStatus> {
        let good: Vec<&Entry> = self.entries.iter().filter(|e| e.good.is_some()).collect();
        let default = good.get(self.default_index(&good)).map(|e| e.files.clone());
        let mut out: Vec<CertStatus> = self
            .entries
            .iter()
            .map(|e| {
                let info = e.good.as_ref().map(|g| &g.info);
                CertStatus {
                    source: e.files.chain.clone(),
                    names: info.map(|i| i.names.clone()).unwrap_or_default(),
                    issuer: info.map(|i| i.issuer.clone()),
                    serial: info.map(|i| i.serial.clone()),
                    not_after: info.map(|i| i.not_after),
                    key_type: info.map(|i| i.key_type),
                    default: Some(&e.files) == default.as_ref(),
                    error: e.error.clone(),
                }
            })
            .collect();
        if let (Some(dir), Some(err)) = (&self.dir, &self.dir_error) {
            out.push(CertStatus {
                source: dir.clone(),
                names: Vec::new(),
                issuer: None,
                serial: None,
                not_after: None,
                key_type: None,
                default: false,
                error: Some(err.clone()),
            });
        }
        out
    }
}
