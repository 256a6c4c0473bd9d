//! The cookie key every manager derives on its own, with no configuration.
//!
//! In swarm mode without `--cookie-key-file`, the key is HKDF-SHA256 over
//! the swarm's **manager join token**: a secret only managers can read, the
//! same on every manager. So every swarm-sticky in the cluster signs and
//! accepts the same cookies. Rotating the manager token
//! (`docker swarm join-token --rotate manager`) derives a new key: each
//! running swarm-sticky keeps accepting cookies signed with the key it had
//! before (in memory), so sessions survive the rotation on managers that
//! were running; a manager started after the rotation knows only the new
//! key, and its clients get a new cookie (and possibly another replica)
//! once.

use hkdf::Hkdf;
use sha2::Sha256;

/// Domain separation: a key for this purpose only, and a version that
/// changes if the derivation ever does.
const SALT: &[u8] = b"swarm-sticky/cookie-key/v1";
const INFO: &[u8] = b"sticky cookie HMAC-SHA256 key";

/// The 32-byte cookie key derived from a manager join token.
pub fn derive(manager_join_token: &str) -> [u8; 32] {
    let hk = Hkdf::<Sha256>::new(Some(SALT), manager_join_token.trim().as_bytes());
    let mut key = [0u8; 32];
    hk.expand(INFO, &mut key)
        .expect("32 bytes is below HKDF-SHA256's 255 * 32 byte output limit");
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_token_same_key_other_token_other_key() {
        let a = "SWMTKN-1-3pu6hszjas19xyp7ghgosyx9k8atbfcr8p2is99znpy26u2lkl-7p73s1dx5in4tatdymyhg9hu2";
        let b = "SWMTKN-1-3pu6hszjas19xyp7ghgosyx9k8atbfcr8p2is99znpy26u2lkl-1awxwuwd3z9j1z3puu7rcgdbx";
        assert_eq!(derive(a), derive(a));
        assert_eq!(
            derive(a),
            derive(&format!("{a}\n")),
            "surrounding whitespace does not matter"
        );
        assert_ne!(derive(a), derive(b));
        assert_ne!(derive(a), [0u8; 32]);
    }
}
