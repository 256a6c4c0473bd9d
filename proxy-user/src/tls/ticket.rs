//! Session tickets every manager can open. A ticket is the session state
//! sealed with AES-256-GCM under a key derived from the cookie key (with
//! `--docker`, the swarm's manager join token) and the current period of
//! [`PERIOD`]: every instance with the same cookie key derives the same
//! ticket keys with no coordination, so a client that resumes on another
//! manager gets an abbreviated handshake. Keys change every period by
//! themselves, and a ticket of the previous period still opens, so a
//! ticket lives between one and two periods (one of the next period opens
//! too: managers' clocks are close, not equal).
//!
//! Layout: `key id (4) | period (4, big-endian) | nonce (12) | sealed`,
//! the first eight bytes authenticated as associated data. A ticket whose
//! key id is not in the keyring, whose period is neither the current nor
//! the previous one, or that does not open, is ignored: the client gets a
//! full handshake.

use std::sync::{Arc, Mutex, PoisonError};

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use rand::RngCore as _;

use crate::cookie::{KeyringHandle, unix_now};

/// How long one ticket key is used to seal (HAProxy's and rustls's own
/// rotation are of this order: short enough to bound what a stolen key
/// opens, long enough that returning clients resume).
pub const PERIOD: u64 = 6 * 3600;

/// The derivation label, so that no other use of the key shares these.
const LABEL: &[u8] = b"tls-session-ticket";

const HEADER_LEN: usize = 8;

/// A ticket key: (cookie key id, period, AEAD key).
type DerivedKey = ([u8; 4], u32, Arc<LessSafeKey>);

/// Seals and opens tickets with keys derived from the keyring in force.
pub struct ClusterTicketer {
    keyring: KeyringHandle,
    /// Derived keys; a handful at most.
    keys: Mutex<Vec<DerivedKey>>,
}

impl std::fmt::Debug for ClusterTicketer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterTicketer").finish_non_exhaustive()
    }
}

impl ClusterTicketer {
    /// Tickets under the keys of `keyring` (followed when it rotates).
    pub fn new(keyring: KeyringHandle) -> Self {
        Self {
            keyring,
            keys: Mutex::new(Vec::new()),
        }
    }

    fn period_now() -> u32 {
        u32::try_from(unix_now() / PERIOD).unwrap_or(u32::MAX)
    }

    /// The AEAD key of `id` for `period`, derived once.
    fn key(&self, id: [u8; 4], period: u32) -> Option<Arc<LessSafeKey>> {
        let mut keys = self.keys.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((_, _, k)) = keys.iter().find(|(i, p, _)| *i == id && *p == period) {
            return Some(k.clone());
        }
        let secret = self.keyring.load().derive(id, LABEL, &period.to_be_bytes())?;
        let key = Arc::new(LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &secret).ok()?));
        // Keys of older periods (or rotated-out cookie keys) go first.
        if keys.len() >= 4 {
            keys.remove(0);
        }
        keys.push((id, period, key.clone()));
        Some(key)
    }
}

impl rustls::server::ProducesTickets for ClusterTicketer {
    fn enabled(&self) -> bool {
        true
    }

    fn lifetime(&self) -> u32 {
        u32::try_from(PERIOD).unwrap_or(u32::MAX)
    }

    fn encrypt(&self, plain: &[u8]) -> Option<Vec<u8>> {
        let id = self.keyring.load().signing_id();
        let period = Self::period_now();
        let key = self.key(id, period)?;
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        let mut out = Vec::with_capacity(HEADER_LEN + NONCE_LEN + plain.len() + AES_256_GCM.tag_len());
        out.extend_from_slice(&id);
        out.extend_from_slice(&period.to_be_bytes());
        out.extend_from_slice(&nonce);
        let mut sealed = plain.to_vec();
        let aad = Aad::from(<[u8; HEADER_LEN]>::try_from(&out[..HEADER_LEN]).ok()?);
        key.seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), aad, &mut sealed)
            .ok()?;
        out.extend_from_slice(&sealed);
        Some(out)
    }

    fn decrypt(&self, cipher: &[u8]) -> Option<Vec<u8>> {
        if cipher.len() < HEADER_LEN + NONCE_LEN + AES_256_GCM.tag_len() {
            return None;
        }
        let (header, rest) = cipher.split_at(HEADER_LEN);
        let id: [u8; 4] = header[..4].try_into().ok()?;
        let period = u32::from_be_bytes(header[4..].try_into().ok()?);
        // The previous period (the ticket's second half of life), and the
        // next one: a manager whose clock is a little ahead of ours may
        // have sealed it just after a period boundary.
        let now = Self::period_now();
        if period.abs_diff(now) > 1 {
            return None;
        }
        let key = self.key(id, period)?;
        let (nonce, sealed) = rest.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let aad = Aad::from(<[u8; HEADER_LEN]>::try_from(header).ok()?);
        let mut buf = sealed.to_vec();
        let plain = key.open_in_place(nonce, aad, &mut buf).ok()?;
        Some(plain.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use rustls::server::ProducesTickets as _;

    use super::*;
    use crate::cookie::Keyring;

    fn ticketer(secret: &str) -> ClusterTicketer {
        ClusterTicketer::new(KeyringHandle::new(Keyring::from_secrets(&[secret])))
    }

    #[test]
    fn a_ticket_opens_on_every_instance_with_the_same_key_only() {
        let a = ticketer("the-swarm-wide-secret-0123456789");
        let b = ticketer("the-swarm-wide-secret-0123456789");
        let other = ticketer("another-swarm-secret-0123456789ab");
        let t = a.encrypt(b"session state").unwrap();
        assert_eq!(b.decrypt(&t).unwrap(), b"session state");
        assert!(other.decrypt(&t).is_none());
        // Two tickets of the same state differ (fresh nonce).
        assert_ne!(a.encrypt(b"session state").unwrap(), t);
    }

    #[test]
    fn forged_truncated_or_old_tickets_are_ignored() {
        let a = ticketer("the-swarm-wide-secret-0123456789");
        let t = a.encrypt(b"session state").unwrap();
        for i in 0..t.len() {
            let mut bad = t.clone();
            bad[i] ^= 1;
            assert!(a.decrypt(&bad).is_none(), "byte {i} flipped");
        }
        assert!(a.decrypt(&t[..t.len() - 1]).is_none());
        assert!(a.decrypt(&[]).is_none());
        // The same ticket sealed two periods ago (or ahead) does not open.
        let id = a.keyring.load().signing_id();
        let ahead = ClusterTicketer::period_now() + 2;
        assert!(a.decrypt(&sealed_in(&a, id, ahead)).is_none());
        let old = ClusterTicketer::period_now() - 2;
        assert!(a.decrypt(&sealed_in(&a, id, old)).is_none());
    }

    fn sealed_in(t: &ClusterTicketer, id: [u8; 4], period: u32) -> Vec<u8> {
        let key = t.key(id, period).unwrap();
        let mut header = [0u8; HEADER_LEN];
        header[..4].copy_from_slice(&id);
        header[4..].copy_from_slice(&period.to_be_bytes());
        let mut sealed = b"session state".to_vec();
        key.seal_in_place_append_tag(Nonce::assume_unique_for_key([0; 12]), Aad::from(header), &mut sealed)
            .unwrap();
        [&header[..], &[0; 12], &sealed].concat()
    }

    #[test]
    fn tickets_of_the_neighbouring_periods_open() {
        let a = ticketer("the-swarm-wide-secret-0123456789");
        let id = a.keyring.load().signing_id();
        let now = ClusterTicketer::period_now();
        for period in [now - 1, now, now + 1] {
            assert_eq!(a.decrypt(&sealed_in(&a, id, period)).unwrap(), b"session state");
        }
    }

    #[test]
    fn tickets_survive_a_key_rotation() {
        let handle = KeyringHandle::new(Keyring::from_secrets(&["the-swarm-wide-secret-0123456789"]));
        let a = ClusterTicketer::new(handle.clone());
        let t = a.encrypt(b"s").unwrap();
        handle.replace(handle.load().rotate_to(b"the-next-swarm-secret-0123456789"));
        assert_eq!(a.decrypt(&t).unwrap(), b"s");
    }
}
