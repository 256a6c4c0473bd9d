//! With `--docker`: keeps this manager answering the challenges the other
//! managers' orders published in the swarm, within moments of their
//! publication (config events) and at every resync in case an event was
//! missed. Runs beside the manager, so an order of this instance's never
//! delays answering another's.

use std::{collections::HashMap, sync::Arc, time::Duration};

use futures_util::StreamExt as _;
use rustls::ServerConfig;
use sha2::Digest as _;

use super::swarm_store::SwarmStore;
use crate::tls::{ChallengeBook, alpn_config};

/// How often the published challenges are read even without an event.
pub const RESYNC: Duration = Duration::from_secs(2);

/// Follows the published challenges into `book`, for the life of the
/// process.
pub async fn follow(store: SwarmStore, book: Arc<ChallengeBook>) {
    let mut events = store.engine().config_changes().boxed();
    let mut configs: HashMap<(String, String), Arc<ServerConfig>> = HashMap::new();
    loop {
        match store.challenges(super::manager::now()).await {
            Ok(published) => {
                let mut http = HashMap::new();
                let mut alpn = HashMap::new();
                for p in published {
                    match p.kind.as_str() {
                        "http-01" => {
                            http.insert(p.key, p.key_authorization);
                        }
                        _ => {
                            let key = (p.key.to_ascii_lowercase(), p.key_authorization);
                            let config = match configs.get(&key) {
                                Some(c) => c.clone(),
                                None => {
                                    let digest = sha2::Sha256::digest(key.1.as_bytes());
                                    match alpn_config(&key.0, &digest) {
                                        Ok(c) => c,
                                        Err(err) => {
                                            tracing::warn!(name = %key.0, "ACME: TLS-ALPN-01 answer: {err}");
                                            continue;
                                        }
                                    }
                                }
                            };
                            alpn.insert(key.0.clone(), config.clone());
                            configs.insert(key, config);
                        }
                    }
                }
                configs.retain(|(name, _), c| alpn.get(name).is_some_and(|a| Arc::ptr_eq(a, c)));
                book.replace_remote(http, alpn);
            }
            Err(err) => tracing::debug!("ACME: published challenges not read: {err}"),
        }
        tokio::select! {
            event = events.next() => {
                if !matches!(event, Some(Ok(()))) {
                    // The stream ended or failed: the engine went; resync
                    // on the timer and open a new stream.
                    tokio::time::sleep(RESYNC).await;
                    events = store.engine().config_changes().boxed();
                }
            }
            () = tokio::time::sleep(RESYNC) => {}
        }
    }
}
