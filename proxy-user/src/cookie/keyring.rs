//! Cookie keys: `--cookie-key-file` (one key per line; the first signs, the
//! others still verify, which is how keys rotate), or one random 32-byte key
//! generated once and kept in `<state-dir>/cookie.key` (mode 0600) so that
//! restarts keep sessions. All managers of a swarm must share the keys.

use std::{
    io::Write as _,
    os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _},
    path::{Path, PathBuf},
    sync::Arc,
};

use rand::RngCore as _;

use super::Key;

/// File name of the generated key inside the state directory.
pub const KEY_FILE_NAME: &str = "cookie.key";

/// Most keys a rotated keyring keeps (the signing key included).
pub const MAX_KEYS: usize = 8;

/// Shortest key line accepted, in bytes.
const MIN_KEY_LEN: usize = 16;

/// Why the keys could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum KeyringError {
    /// The file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// No key in the file.
    #[error("{0}: no key (one key per line, at least 16 characters)")]
    Empty(PathBuf),
    /// A key that is too short.
    #[error("{path}:{line}: a key needs at least {MIN_KEY_LEN} characters")]
    Short {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
    },
}

/// The cookie keys: the first signs, every one verifies.
#[derive(Debug, Clone)]
pub struct Keyring {
    keys: Vec<Key>,
}

impl Keyring {
    /// A keyring from secrets, the first signing.
    ///
    /// # Panics
    /// When `secrets` is empty (an invariant of every caller).
    pub fn from_secrets<S: AsRef<[u8]>>(secrets: &[S]) -> Self {
        assert!(!secrets.is_empty(), "a keyring needs at least one key");
        Self {
            keys: secrets.iter().map(|s| Key::new(s.as_ref())).collect(),
        }
    }

    /// A keyring with one fresh random 32-byte key (not persisted).
    pub fn random() -> Self {
        let mut secret = [0u8; 32];
        rand::rng().fill_bytes(&mut secret);
        Self::from_secrets(&[hex(&secret)])
    }

    /// Reads a key file: one key per line (surrounding spaces trimmed, blank
    /// lines and `#` comments skipped); the first line signs.
    ///
    /// # Errors
    /// When the file cannot be read, has no key or a key is too short.
    pub fn from_file(path: &Path) -> Result<Self, KeyringError> {
        let text = std::fs::read_to_string(path).map_err(|source| KeyringError::Io {
            path: path.into(),
            source,
        })?;
        let mut secrets = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if line.len() < MIN_KEY_LEN {
                return Err(KeyringError::Short {
                    path: path.into(),
                    line: i + 1,
                });
            }
            secrets.push(line.to_owned());
        }
        if secrets.is_empty() {
            return Err(KeyringError::Empty(path.into()));
        }
        Ok(Self::from_secrets(&secrets))
    }

    /// Loads `<state_dir>/cookie.key`, creating the directory (0700) and a
    /// random key (0600) on first use.
    ///
    /// # Errors
    /// When the directory or file cannot be created or read.
    pub fn load_or_generate(state_dir: &Path) -> Result<Self, KeyringError> {
        let path = state_dir.join(KEY_FILE_NAME);
        match Self::from_file(&path) {
            Ok(k) => return Ok(k),
            Err(KeyringError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let io = |p: &Path| {
            let p = p.to_path_buf();
            move |source| KeyringError::Io { path: p, source }
        };
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(state_dir)
            .map_err(io(state_dir))?;
        let mut secret = [0u8; 32];
        rand::rng().fill_bytes(&mut secret);
        let line = hex(&secret);
        // create_new: two processes starting together must not overwrite
        // each other's key; the loser reads the winner's.
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
        {
            Ok(mut f) => {
                f.write_all(format!("{line}\n").as_bytes())
                    .and_then(|()| f.sync_all())
                    .map_err(io(&path))?;
                tracing::info!(path = %path.display(), "generated a new cookie key");
                Ok(Self::from_secrets(&[line]))
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Self::from_file(&path),
            Err(e) => Err(KeyringError::Io { path, source: e }),
        }
    }

    /// A keyring whose first (signing) key is `secret`, followed by the keys
    /// of `self` (which keep verifying), at most [`MAX_KEYS`] in all. Used
    /// when a key is rotated while running.
    pub fn rotated(&self, secret: &[u8]) -> Self {
        let new = Key::new(secret);
        let mut keys = vec![new.clone()];
        keys.extend(self.keys.iter().filter(|k| k.id != new.id).take(MAX_KEYS - 1).cloned());
        Self { keys }
    }

    /// A keyring of exactly two keys: `secret` signs, and the key that
    /// signed until now still verifies. What the cluster key does when the
    /// manager join token is rotated: every instance keeps the same two
    /// keys, whenever it started, so one rotation keeps sessions and a
    /// second one drops the oldest key everywhere alike.
    /// Rotating to the key that signs already changes nothing.
    pub fn rotate_to(&self, secret: &[u8]) -> Self {
        let new = Key::new(secret);
        if self.keys[0].id == new.id {
            return self.clone();
        }
        Self {
            keys: vec![new, self.keys[0].clone()],
        }
    }

    /// Whether `key_id` is the signing key's id.
    pub(super) fn is_signing(&self, key_id: &[u8]) -> bool {
        self.keys[0].id == key_id
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Always false: a keyring has a signing key.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The signing key's id.
    pub fn signing_id(&self) -> [u8; 4] {
        self.keys[0].id
    }

    /// A 32-byte secret derived from the key `id` for another use
    /// (`label`, e.g. TLS session tickets, and a `context` such as a time
    /// period); `None` when no key has that id. Every instance with the
    /// same keys derives the same secret.
    pub fn derive(&self, id: [u8; 4], label: &[u8], context: &[u8]) -> Option<[u8; 32]> {
        self.key_by_id(&id).map(|k| k.derive(label, context))
    }

    pub(super) fn ids(&self) -> Vec<[u8; 4]> {
        self.keys.iter().map(|k| k.id).collect()
    }

    pub(super) fn signing_key(&self) -> &Key {
        &self.keys[0]
    }

    pub(super) fn key_by_id(&self, id: &[u8]) -> Option<&Key> {
        self.keys.iter().find(|k| k.id == id)
    }
}

/// The keys in force, shared: the request path reads them on every
/// request (lock-free), and the cluster key follower replaces them when
/// the swarm's join token rotates.
#[derive(Debug, Clone)]
pub struct KeyringHandle(Arc<arc_swap::ArcSwap<Keyring>>);

impl KeyringHandle {
    /// A handle on `keyring`.
    pub fn new(keyring: Keyring) -> Self {
        Self(Arc::new(arc_swap::ArcSwap::from_pointee(keyring)))
    }

    /// The keys now, for one request.
    pub fn load(&self) -> arc_swap::Guard<Arc<Keyring>> {
        self.0.load()
    }

    /// The keys now, kept.
    pub fn load_full(&self) -> Arc<Keyring> {
        self.0.load_full()
    }

    /// Puts `keyring` in force: cookies are signed with its first key from
    /// now on (the per-second Set-Cookie cache follows), and a valid
    /// cookie of another of its keys is re-signed on its next response.
    pub fn replace(&self, keyring: Keyring) {
        self.0.store(Arc::new(keyring));
        tracing::info!("cookie keys replaced");
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
