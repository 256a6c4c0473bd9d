//! ACME state sealed for the swarm: AES-256-GCM under a key derived from
//! the cookie keyring (with `--docker`, from the swarm's manager join
//! token, so every manager derives it and nobody else can), bound to what
//! the object is (its kind and names) so that a sealed key cannot be
//! passed off as another name's.
//!
//! Layout: `key id (4) | nonce (12) | ciphertext and tag`. After a
//! join-token rotation the keyring still holds the previous key: what was
//! sealed under it opens, and [`Opened::stale`] says to seal it again.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use rand::RngCore as _;

use crate::cookie::KeyringHandle;

/// The derivation label: no other use of the keyring shares this key.
const LABEL: &[u8] = b"acme-state";

/// Why sealed data did not open.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    /// Shorter than a header and a tag.
    #[error("sealed ACME state: truncated")]
    Truncated,
    /// Sealed under a key this instance does not hold (another cluster,
    /// or two join-token rotations ago).
    #[error("sealed ACME state: sealed under a key this instance does not have")]
    UnknownKey,
    /// The key is known but the data does not authenticate.
    #[error("sealed ACME state: does not authenticate (altered, or sealed for another object)")]
    Forged,
}

/// What opened, and whether it should be sealed again.
pub struct Opened {
    /// The plain data.
    pub data: Vec<u8>,
    /// Sealed under a key that no longer signs.
    pub stale: bool,
}

/// Seals and opens ACME state with keys from a keyring.
#[derive(Clone)]
pub struct Sealer {
    keyring: KeyringHandle,
}

impl Sealer {
    /// A sealer over `keyring` (followed as it rotates).
    pub fn new(keyring: KeyringHandle) -> Self {
        Self { keyring }
    }

    fn key(&self, id: [u8; 4]) -> Option<LessSafeKey> {
        let secret = self.keyring.load().derive(id, LABEL, b"")?;
        Some(LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &secret).ok()?))
    }

    /// `data` sealed for the object `what`.
    pub fn seal(&self, what: &str, data: &[u8]) -> Vec<u8> {
        let id = self.keyring.load().signing_id();
        let key = self
            .key(id)
            .expect("the signing key of a keyring derives an AES-256 key");
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        let mut sealed = data.to_vec();
        key.seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), aad(id, what), &mut sealed)
            .expect("AES-GCM seals any length a config holds");
        let mut out = Vec::with_capacity(4 + NONCE_LEN + sealed.len());
        out.extend_from_slice(&id);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        out
    }

    /// Opens what [`seal`](Self::seal) sealed for `what`.
    ///
    /// # Errors
    /// Truncated, sealed under an unknown key, or altered.
    pub fn open(&self, what: &str, sealed: &[u8]) -> Result<Opened, SealError> {
        if sealed.len() < 4 + NONCE_LEN + AES_256_GCM.tag_len() {
            return Err(SealError::Truncated);
        }
        let (id, rest) = sealed.split_at(4);
        let id: [u8; 4] = id.try_into().map_err(|_| SealError::Truncated)?;
        let key = self.key(id).ok_or(SealError::UnknownKey)?;
        let (nonce, body) = rest.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| SealError::Truncated)?;
        let mut buf = body.to_vec();
        let data = key
            .open_in_place(nonce, aad(id, what), &mut buf)
            .map_err(|_| SealError::Forged)?
            .to_vec();
        Ok(Opened {
            data,
            stale: id != self.keyring.load().signing_id(),
        })
    }
}

fn aad(id: [u8; 4], what: &str) -> Aad<Vec<u8>> {
    let mut a = Vec::with_capacity(4 + what.len());
    a.extend_from_slice(&id);
    a.extend_from_slice(what.as_bytes());
    Aad::from(a)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cookie::Keyring;

    #[test]
    fn opens_its_own_refuses_forgeries_and_follows_a_rotation() {
        let keyring = KeyringHandle::new(Keyring::from_secrets(&[[1u8; 32]]));
        let sealer = Sealer::new(keyring.clone());
        let sealed = sealer.seal("cert a.test", b"-----BEGIN PRIVATE KEY-----");
        assert!(!sealed.windows(11).any(|w| w == b"PRIVATE KEY"), "not in clear text");
        let opened = sealer.open("cert a.test", &sealed).unwrap();
        assert_eq!(opened.data, b"-----BEGIN PRIVATE KEY-----");
        assert!(!opened.stale);
        assert!(matches!(sealer.open("cert b.test", &sealed), Err(SealError::Forged)));
        let mut altered = sealed.clone();
        *altered.last_mut().unwrap() ^= 1;
        assert!(matches!(sealer.open("cert a.test", &altered), Err(SealError::Forged)));
        assert!(matches!(
            sealer.open("cert a.test", &sealed[..10]),
            Err(SealError::Truncated)
        ));
        // One rotation: still opens, marked stale; two: gone.
        keyring.replace(keyring.load().rotate_to(&[2u8; 32]));
        assert!(sealer.open("cert a.test", &sealed).unwrap().stale);
        keyring.replace(keyring.load().rotate_to(&[3u8; 32]));
        assert!(matches!(
            sealer.open("cert a.test", &sealed),
            Err(SealError::UnknownKey)
        ));
        let other = Sealer::new(KeyringHandle::new(Keyring::from_secrets(&[[9u8; 32]])));
        assert!(matches!(
            other.open("cert a.test", &sealer.seal("x", b"y")),
            Err(SealError::UnknownKey)
        ));
    }
}
