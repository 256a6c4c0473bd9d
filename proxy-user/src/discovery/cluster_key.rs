//! The cookie key every manager derives on its own, with no configuration.
//!
//! In swarm mode without `--cookie-key-file`, the key is HKDF-SHA256 over
//! the swarm's **manager join token**: a secret only managers can read, the
//! same on every manager. So every swarm-sticky in the cluster signs and
//! accepts the same cookies.
//!
//! Rotation (`docker swarm join-token --rotate manager`): [`follow`]
//! re-reads the token on every resync and, when it changed, signs with the
//! new key while the previous one still verifies ([`Keyring::rotate_to`]:
//! exactly those two). A cookie of the previous key is re-signed on its
//! next response. So one rotation keeps every session; a second rotation
//! drops the oldest key on every instance alike, and cookies that were not
//! re-signed in between get a new pick once. An instance started after a
//! rotation knows only the new key.

use std::time::Duration;

use hkdf::Hkdf;
use sha2::Sha256;
use tracing::{info, warn};

use super::engine::Engine;
use crate::cookie::{Keyring, KeyringHandle};

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

/// Why the derived key could not be read at start.
#[derive(Debug, thiserror::Error)]
pub enum ReadKeyError {
    /// No runtime to talk to the engine with.
    #[error("cannot start a runtime")]
    Runtime(#[source] std::io::Error),
    /// The engine did not answer or refused.
    #[error(transparent)]
    Engine(#[from] super::engine::EngineError),
}

/// Reads the manager join token of the engine at `host` once and derives
/// the key; `Ok(None)` when the node is not a manager. Blocking, on a
/// runtime of its own: for start-up and the command-line tools, which run
/// before (or without) the main runtime.
///
/// # Errors
/// When the engine does not answer.
pub fn read_blocking(host: &str) -> Result<Option<[u8; 32]>, ReadKeyError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(ReadKeyError::Runtime)?;
    let token = rt.block_on(async {
        let engine = Engine::connect(host).await?;
        engine.manager_join_token().await
    })?;
    Ok(token.as_deref().map(derive))
}

/// Follows the manager join token of the engine at `host`, re-read every
/// `every`, and rotates the cookie keys in `keyring` when it changes. `current`
/// is the key derived at start (`None`: the state directory's key signs,
/// because the token could not be read then; it is replaced, and still
/// verifies, once the token can be read). Runs until the task is dropped;
/// an engine that does not answer is retried on the next tick (the
/// discovery watcher reports it).
pub async fn follow(keyring: KeyringHandle, host: String, every: Duration, mut current: Option<[u8; 32]>) {
    let mut engine: Option<Engine> = None;
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    if current.is_some() {
        // Start-up has just read the token: the first look is a period on.
        tick.tick().await;
    }
    loop {
        tick.tick().await;
        if engine.is_none() {
            engine = Engine::connect(&host).await.ok();
        }
        let Some(e) = &engine else { continue };
        let token = match e.manager_join_token().await {
            Ok(Some(t)) => t,
            Ok(None) => continue,
            Err(err) => {
                tracing::debug!(error = %err, "reading the join token failed; retrying on the next resync");
                engine = None;
                continue;
            }
        };
        let key = derive(&token);
        if current == Some(key) {
            continue;
        }
        let ring: Keyring = keyring.load().rotate_to(&key);
        keyring.replace(ring);
        if current.is_some() {
            warn!(
                "the swarm's manager join token was rotated: cookies are signed with the new derived key; the previous one still verifies (a second rotation drops it)"
            );
        } else {
            info!("cookie key now derived from the swarm's manager join token; the previous key still verifies");
        }
        current = Some(key);
    }
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
