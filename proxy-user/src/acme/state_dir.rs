//! ACME state kept on this host, when no swarm is there to share it: the
//! account and the certificates under `<state-dir>/acme/<CA>/`, one
//! directory per ACME directory URL (an account belongs to one CA), the
//! directories 0700 and the files 0600, each written whole (a temporary
//! file renamed over the old one), so a crash never leaves half a key.

use std::{
    io::Write as _,
    os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _},
    path::{Path, PathBuf},
};

use sha2::Digest as _;

/// Why the state could not be read or written.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {source}")]
pub struct StoreError {
    /// The file or directory.
    pub path: PathBuf,
    /// The cause.
    #[source]
    pub source: std::io::Error,
}

/// The ACME state of one CA in the state directory.
#[derive(Debug, Clone)]
pub struct StateDir {
    dir: PathBuf,
}

/// A file-safe directory name for a CA: its host and a digest of the
/// whole URL (two directories of one host are two CAs).
fn ca_dir_name(directory_url: &str) -> String {
    let host: String = directory_url
        .split("://")
        .nth(1)
        .unwrap_or(directory_url)
        .split(['/', '?'])
        .next()
        .unwrap_or_default()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let digest = sha2::Sha256::digest(directory_url.as_bytes());
    format!("{host}-{}", hex(&digest[..4]))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl StateDir {
    /// The state of the CA at `directory_url` under `state_dir`.
    pub fn new(state_dir: &Path, directory_url: &str) -> Self {
        Self {
            dir: state_dir.join("acme").join(ca_dir_name(directory_url)),
        }
    }

    /// Where it is.
    #[cfg(test)]
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// The content of `name` (a path relative to the CA's directory), if
    /// it exists.
    ///
    /// # Errors
    /// When it exists and cannot be read.
    pub fn read(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let path = self.dir.join(name);
        match std::fs::read(&path) {
            Ok(data) => Ok(Some(data)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(StoreError { path, source }),
        }
    }

    /// Replaces `name` with `data`, readable by the owner only.
    ///
    /// # Errors
    /// When a directory or the file cannot be written.
    pub fn write(&self, name: &str, data: &[u8]) -> Result<(), StoreError> {
        let path = self.dir.join(name);
        let parent = path.parent().unwrap_or(&self.dir).to_owned();
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&parent)
            .map_err(|source| StoreError {
                path: parent.clone(),
                source,
            })?;
        let tmp = path.with_extension("tmp");
        let err = |source| StoreError {
            path: tmp.clone(),
            source,
        };
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(err)?;
        file.write_all(data).map_err(err)?;
        file.sync_all().map_err(err)?;
        std::fs::rename(&tmp, &path).map_err(|source| StoreError { path, source })
    }

    /// The names of the files in the subdirectory `sub`, sorted.
    ///
    /// # Errors
    /// When it exists and cannot be read.
    pub fn list(&self, sub: &str) -> Result<Vec<String>, StoreError> {
        let path = self.dir.join(sub);
        let entries = match std::fs::read_dir(&path) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => return Err(StoreError { path, source }),
        };
        let mut names: Vec<String> = entries
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| !n.ends_with(".tmp"))
            .collect();
        names.sort();
        Ok(names)
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    #[test]
    fn files_are_private_and_per_ca() {
        let root = tempfile::tempdir().unwrap();
        let a = StateDir::new(root.path(), "https://acme-v02.api.letsencrypt.org/directory");
        let b = StateDir::new(root.path(), "https://acme-staging-v02.api.letsencrypt.org/directory");
        assert_ne!(a.path(), b.path());
        let name = a.path().file_name().unwrap().to_str().unwrap();
        assert!(name.starts_with("acme-v02.api.letsencrypt.org-"), "{name}");
        assert_eq!(a.read("account.json").unwrap(), None);
        a.write("account.json", b"{}").unwrap();
        a.write("certs/x.pem", b"pem").unwrap();
        a.write("certs/x.pem", b"pem2").unwrap();
        assert_eq!(a.read("certs/x.pem").unwrap().as_deref(), Some(&b"pem2"[..]));
        assert_eq!(a.list("certs").unwrap(), vec!["x.pem".to_owned()]);
        assert_eq!(b.list("certs").unwrap(), Vec::<String>::new());
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&a.path().join("account.json")), 0o600);
        assert_eq!(mode(&a.path().join("certs/x.pem")), 0o600);
        assert_eq!(mode(&a.path().join("certs")), 0o700);
        assert_eq!(mode(a.path()), 0o700);
    }
}
