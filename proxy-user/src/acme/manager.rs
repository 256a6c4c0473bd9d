//! Keeps every certificate the services ask for obtained and fresh: reads
//! the wanted names from the routing table, serves what the store holds,
//! orders what is missing or due, and schedules the next look at each
//! (renewal time, or a retry with back-off after a failure). A failure
//! never takes a name offline: the certificate it had stays in service
//! until it is replaced.
//!
//! With `--docker` every manager runs this; an order needs the name's lock
//! in the swarm, so one manager orders while the others adopt what it
//! stores (`manager/wanted.rs`: which certificates are wanted, and which
//! stored ones serve them).

mod wanted;

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex, PoisonError, atomic::Ordering},
    time::Duration,
};

use instant_acme::{Account, CertificateIdentifier};
use rustls_pki_types::CertificateDer;

use self::wanted::file_name;
use super::{
    AcmeSettings, AcmeStats, CertState, ManagedStatus, account,
    order::{self, Solvers},
    schedule,
    store::Store,
    swarm_store::Lock,
};
use crate::{
    balance::Balancer,
    tls::{CertFiles, ChallengeBook, LoadedCert, Tls, from_pem},
};

/// How often the routing table (and, with `--docker`, the store) is read.
const RESCAN: Duration = Duration::from_secs(2);

/// How soon to look again at a name another manager is ordering.
const HELD_RECHECK_SECS: i64 = 5;

/// A certificate asked for: its names, the main one first.
type Names = Vec<String>;

/// One certificate under management.
struct Managed {
    cert: Option<LoadedCert>,
    state: CertState,
    /// Unix seconds of the next look.
    next: i64,
    failures: u32,
    last_attempt: Option<i64>,
    error: Option<String>,
    /// Who orders it (this instance, or the manager holding its lock).
    holder: Option<String>,
}

/// The running manager.
pub struct Manager {
    settings: AcmeSettings,
    store: Store,
    book: Arc<ChallengeBook>,
    tls: Arc<Tls>,
    balancer: Arc<Balancer>,
    /// This instance, as locks and the status name it.
    me: String,
    account: Option<Account>,
    managed: BTreeMap<Names, Managed>,
    /// Certificates read from the store.
    stored: Vec<LoadedCert>,
    /// The same, by a digest of their PEM: not parsed again.
    parsed: std::collections::HashMap<[u8; 32], LoadedCert>,
    /// The store could not be read on the last pass.
    store_down: bool,
    status: Arc<Mutex<Vec<ManagedStatus>>>,
    stats: Arc<AcmeStats>,
}

/// Now, in Unix seconds.
pub fn now() -> i64 {
    secs(crate::cookie::unix_now())
}

fn secs(s: u64) -> i64 {
    i64::try_from(s).unwrap_or(i64::MAX / 4)
}

/// The parts a manager works with.
pub struct Parts {
    /// Where state lives.
    pub store: Store,
    /// Challenge answers.
    pub book: Arc<ChallengeBook>,
    /// Where certificates are served.
    pub tls: Arc<Tls>,
    /// Where the wanted names come from.
    pub balancer: Arc<Balancer>,
    /// This instance's name in locks and the status.
    pub me: String,
    /// Shown by `/api/status`.
    pub status: Arc<Mutex<Vec<ManagedStatus>>>,
    /// Counters.
    pub stats: Arc<AcmeStats>,
}

impl Manager {
    /// A manager for `settings` over `parts`.
    pub fn new(settings: AcmeSettings, parts: Parts) -> Self {
        Self {
            settings,
            store: parts.store,
            book: parts.book,
            tls: parts.tls,
            balancer: parts.balancer,
            me: parts.me,
            account: None,
            managed: BTreeMap::new(),
            stored: Vec::new(),
            parsed: std::collections::HashMap::new(),
            store_down: false,
            status: parts.status,
            stats: parts.stats,
        }
    }

    /// Runs for the life of the process.
    pub async fn run(mut self) {
        self.read_store().await;
        loop {
            if self.store.swarm().is_some() {
                // Another manager may have stored a certificate.
                self.read_store().await;
            }
            self.sync_wanted();
            let started = now();
            let due: Vec<Names> = self
                .managed
                .iter()
                .filter(|(_, m)| m.state != CertState::FromFile && m.next <= started)
                .map(|(n, _)| n.clone())
                .collect();
            for names in due {
                self.attend(&names).await;
                self.publish_status();
            }
            self.publish_status();
            let next = self
                .managed
                .values()
                .filter(|m| m.state != CertState::FromFile)
                .map(|m| m.next)
                .min()
                .unwrap_or(i64::MAX);
            let wait = u64::try_from(next.saturating_sub(now())).unwrap_or(0);
            tokio::time::sleep(Duration::from_secs(wait).min(RESCAN)).await;
        }
    }

    /// Orders or renews the certificate of `names` if this instance gets
    /// its lock, or reschedules it when the CA says it is not time yet.
    async fn attend(&mut self, names: &Names) {
        let Some(current) = self.managed.get(names).map(|m| m.cert.clone()) else {
            return;
        };
        if let Some(cert) = &current
            && let Some(next) = self.advice(cert).await
            && next > now()
        {
            if let Some(m) = self.managed.get_mut(names) {
                m.next = next;
            }
            return;
        }
        let lock = match self
            .store
            .lock(&names.join(","), now(), self.settings.lock_ttl_secs)
            .await
        {
            Ok(l) => l,
            Err(err) => {
                self.failed(names, format!("cannot take the order lock: {err}"));
                return;
            }
        };
        if let Lock::HeldBy(held) = &lock {
            if let Some(m) = self.managed.get_mut(names) {
                m.holder = Some(held.holder.clone());
                m.next = now() + HELD_RECHECK_SECS;
            }
            return;
        }
        // Another manager may have renewed it just before the lock was free
        // (on one host nobody else writes the store).
        if self.store.swarm().is_some() {
            self.read_store().await;
        }
        let renewed = self.managed.get(names).is_some_and(|m| m.next > now());
        if !renewed {
            self.order_locked(names).await;
        }
        self.store.unlock(&lock).await;
    }

    /// Places the order for `names`, holding its lock.
    async fn order_locked(&mut self, names: &Names) {
        let Some(m) = self.managed.get_mut(names) else { return };
        let current = m.cert.clone();
        m.state = if current.is_some() {
            CertState::Renewing
        } else {
            CertState::Ordering
        };
        m.last_attempt = Some(now());
        m.holder = Some(self.me.clone());
        self.publish_status();
        tracing::info!(names = %names.join(","), renewing = current.is_some(), "ACME: ordering");
        match self.order(names, current.as_ref()).await {
            Ok(cert) => {
                tracing::info!(names = %names.join(","), serial = %cert.info.serial, not_after = cert.info.not_after, "ACME: certificate obtained");
                if let Some(m) = self.managed.get_mut(names) {
                    m.next = schedule::renew_at(cert.info.not_before, cert.info.not_after);
                    m.cert = Some(cert);
                    m.state = CertState::Valid;
                    m.failures = 0;
                    m.error = None;
                }
                self.stats.issued.fetch_add(1, Ordering::Relaxed);
                self.install();
            }
            Err(err) => self.failed(names, err),
        }
    }

    /// Records a failure and schedules the retry.
    fn failed(&mut self, names: &Names, err: String) {
        let Some(m) = self.managed.get_mut(names) else { return };
        m.failures += 1;
        let wait = schedule::backoff(self.settings.retry_secs, m.failures);
        m.next = now() + secs(wait);
        m.state = CertState::Failed;
        self.stats.failed.fetch_add(1, Ordering::Relaxed);
        let kept = if m.cert.is_some() {
            "; the current certificate stays in service"
        } else {
            ""
        };
        tracing::error!(names = %names.join(","), failures = m.failures, retry_in_secs = wait, "ACME: order failed: {err}{kept}");
        m.error = Some(err);
    }

    /// When the CA suggests renewing `cert` (ARI), if it says.
    async fn advice(&mut self, cert: &LoadedCert) -> Option<i64> {
        let account = self.account().await.ok()?;
        let leaf: &CertificateDer<'_> = cert.key.cert.first()?;
        let id = CertificateIdentifier::try_from(leaf).ok()?;
        match account.renewal_info(&id).await {
            Ok((info, retry_after)) => {
                let window = info.suggested_window;
                let at = schedule::in_window(window.start.unix_timestamp(), window.end.unix_timestamp(), now());
                if at <= now() {
                    // The window is open: renew now.
                    return Some(at);
                }
                // Look again when the CA says to, in case the window moves.
                Some(at.min(now() + secs(retry_after.as_secs().max(60))))
            }
            Err(instant_acme::Error::Unsupported(_)) => None,
            Err(err) => {
                tracing::debug!("ACME: no renewal information: {err}");
                None
            }
        }
    }

    async fn account(&mut self) -> Result<Account, String> {
        if let Some(a) = &self.account {
            return Ok(a.clone());
        }
        let a = account::account(&self.settings, &self.store, now()).await?;
        self.account = Some(a.clone());
        Ok(a)
    }

    /// Places the order and stores what it brings.
    async fn order(&mut self, names: &Names, current: Option<&LoadedCert>) -> Result<LoadedCert, String> {
        let account = self.account().await?;
        let replaces = current
            .and_then(|c| c.key.cert.first())
            .and_then(|leaf| CertificateIdentifier::try_from(leaf).ok())
            .map(CertificateIdentifier::into_owned);
        let solvers = Solvers {
            book: &self.book,
            challenge: self.settings.challenge,
            dns: self.settings.dns_hook.as_ref(),
            swarm: self
                .store
                .swarm()
                .map(|s| (s, now() + secs(self.settings.lock_ttl_secs))),
        };
        let issued = match order::obtain(&account, names, &solvers, replaces.clone()).await {
            // A CA without renewal information refuses `replaces`.
            Err(order::OrderError::Acme(instant_acme::Error::Unsupported(_))) if replaces.is_some() => {
                order::obtain(&account, names, &solvers, None).await
            }
            other => other,
        }
        .map_err(|e| crate::error::chain(&e).to_string())?;
        let mut pem = issued.chain_pem.into_bytes();
        if !pem.ends_with(b"\n") {
            pem.push(b'\n');
        }
        pem.extend_from_slice(issued.key_pem.as_bytes());
        let label = CertFiles {
            chain: format!("acme:{}", names.join(",")).into(),
            key: format!("acme:{}", names.join(",")).into(),
        };
        let cert = from_pem(&pem, &pem, &label).map_err(|e| format!("the CA's certificate: {e}"))?;
        self.store.save_cert(names, &file_name(names), &pem).await?;
        Ok(cert)
    }

    fn publish_status(&self) {
        let status: Vec<ManagedStatus> = self
            .managed
            .iter()
            .map(|(names, m)| ManagedStatus {
                names: names.clone(),
                state: m.state,
                serial: m.cert.as_ref().map(|c| c.info.serial.clone()),
                not_after: m.cert.as_ref().map(|c| c.info.not_after),
                next_attempt: (m.next != i64::MAX).then_some(m.next),
                last_attempt: m.last_attempt,
                failures: m.failures,
                error: m.error.clone(),
                holder: m.holder.clone(),
            })
            .collect();
        *self.status.lock().unwrap_or_else(PoisonError::into_inner) = status;
    }
}
