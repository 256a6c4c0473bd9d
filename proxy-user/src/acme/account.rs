//! The ACME account: the stored one, else a new one, created once and
//! stored for every later start (and, with `--docker`, every manager:
//! created under a lock, so two managers starting together make one).

use std::time::Duration;

use instant_acme::{Account, AccountBuilder, NewAccount};

use super::{AcmeSettings, client, store::Store, swarm_store::Lock};

/// How long the account lock is held at most.
const ACCOUNT_LOCK_SECS: u64 = 120;

fn builder(settings: &AcmeSettings) -> Result<AccountBuilder, String> {
    let http = client::http_client(settings.ca_root.as_deref()).map_err(|e| format!("ACME client: {e}"))?;
    Ok(Account::builder_with_http(http))
}

async fn restore(settings: &AcmeSettings, store: &Store) -> Result<Option<Account>, String> {
    let Some((json, stale)) = store.account().await? else {
        return Ok(None);
    };
    let credentials = serde_json::from_slice(&json).map_err(|e| format!("stored ACME account: {e}"))?;
    let account = builder(settings)?
        .from_credentials(credentials)
        .await
        .map_err(|e| format!("ACME account: {e}"))?;
    if stale {
        // Sealed under the key before a join-token rotation: seal it
        // again before a second rotation makes it unreadable.
        store.save_account(&json).await?;
    }
    Ok(Some(account))
}

/// The account of `settings`' CA in `store`.
///
/// # Errors
/// When the CA or the store cannot be reached, or another manager is
/// creating the account right now (the caller retries).
pub async fn account(settings: &AcmeSettings, store: &Store, now: i64) -> Result<Account, String> {
    if let Some(a) = restore(settings, store).await? {
        return Ok(a);
    }
    let lock = store.lock("account", now, ACCOUNT_LOCK_SECS).await?;
    if let Lock::HeldBy(held) = &lock {
        return Err(format!("the ACME account is being created by {}", held.holder));
    }
    // Another manager may have finished between the read and the lock.
    let result = match restore(settings, store).await {
        Ok(Some(a)) => Ok(a),
        Ok(None) => create(settings, store).await,
        Err(e) => Err(e),
    };
    store.unlock(&lock).await;
    result
}

async fn create(settings: &AcmeSettings, store: &Store) -> Result<Account, String> {
    let contact = settings.email.as_ref().map(|e| format!("mailto:{e}"));
    let contact: Vec<&str> = contact.iter().map(String::as_str).collect();
    let created = tokio::time::timeout(
        Duration::from_secs(60),
        builder(settings)?.create(
            &NewAccount {
                contact: &contact,
                terms_of_service_agreed: true,
                only_return_existing: false,
            },
            settings.directory.clone(),
            None,
        ),
    )
    .await
    .map_err(|_| "create the ACME account: no answer within 60s".to_owned())?;
    let (account, credentials) = created.map_err(|e| format!("create the ACME account: {e}"))?;
    let json = serde_json::to_vec(&credentials).map_err(|e| e.to_string())?;
    store.save_account(&json).await?;
    tracing::info!(id = account.id(), "ACME: account created");
    Ok(account)
}
