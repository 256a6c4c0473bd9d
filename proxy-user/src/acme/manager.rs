//! Keeps every certificate the services ask for obtained and fresh: reads
//! the wanted names from the routing table, serves what the store already
//! holds, orders what is missing or due, and schedules the next look at
//! each (renewal time, or a retry with back-off after a failure). A
//! failure never takes a name offline: the certificate it had stays in
//! service until it is replaced.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use instant_acme::{Account, CertificateIdentifier, NewAccount};
use rustls_pki_types::CertificateDer;

use super::{
    AcmeSettings, AcmeStats, CertState, ManagedStatus,
    challenges::ChallengeBook,
    order::{self, Solvers},
    schedule,
    state_dir::StateDir,
};
use crate::{
    balance::Balancer,
    tls::{CertFiles, LoadedCert, Tls, from_pem},
};

/// How often the routing table is read for names added or removed.
const RESCAN: Duration = Duration::from_secs(2);

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
}

/// The running manager.
pub struct Manager {
    settings: AcmeSettings,
    store: StateDir,
    book: Arc<ChallengeBook>,
    tls: Arc<Tls>,
    balancer: Arc<Balancer>,
    account: Option<Account>,
    managed: BTreeMap<Names, Managed>,
    /// Certificates read from the store, not yet matched to a request.
    stored: Vec<LoadedCert>,
    status: Arc<Mutex<Vec<ManagedStatus>>>,
    stats: Arc<AcmeStats>,
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// The file a certificate of `names` is stored in.
fn file_name(names: &[String]) -> String {
    use sha2::Digest as _;
    let main = names.first().map_or("cert", String::as_str).replace('*', "_wildcard_");
    let digest = sha2::Sha256::digest(names.join(",").as_bytes());
    let short: String = digest[..4].iter().map(|b| format!("{b:02x}")).collect();
    format!("{main}-{short}.pem")
}

/// Whether `cert` serves every name of `names`.
fn covers(cert: &LoadedCert, names: &[String]) -> bool {
    names.iter().all(|n| cert.info.names.contains(n))
}

impl Manager {
    /// A manager for `settings`, answering challenges through `book`,
    /// serving through `tls`, with names from `balancer`'s table.
    pub fn new(
        settings: AcmeSettings,
        book: Arc<ChallengeBook>,
        tls: Arc<Tls>,
        balancer: Arc<Balancer>,
        status: Arc<Mutex<Vec<ManagedStatus>>>,
        stats: Arc<AcmeStats>,
    ) -> Self {
        let store = StateDir::new(&settings.state_dir, &settings.directory);
        Self {
            settings,
            store,
            book,
            tls,
            balancer,
            account: None,
            managed: BTreeMap::new(),
            stored: Vec::new(),
            status,
            stats,
        }
    }

    /// Runs for the life of the process.
    pub async fn run(mut self) {
        self.load_stored();
        loop {
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

    /// Reads the certificates the store holds.
    fn load_stored(&mut self) {
        let names = match self.store.list("certs") {
            Ok(n) => n,
            Err(err) => {
                tracing::error!("ACME: cannot read the stored certificates: {err}");
                return;
            }
        };
        for name in names {
            let path = format!("certs/{name}");
            let pem = match self.store.read(&path) {
                Ok(Some(pem)) => pem,
                Ok(None) => continue,
                Err(err) => {
                    tracing::error!("ACME: {err}");
                    continue;
                }
            };
            let files = CertFiles {
                chain: self.store.path().join(&path),
                key: self.store.path().join(&path),
            };
            match from_pem(&pem, &pem, &files) {
                Ok(cert) => self.stored.push(cert),
                Err(err) => tracing::error!("ACME: stored certificate not usable: {err}"),
            }
        }
    }

    /// Brings the managed set in line with what the services ask for now.
    fn sync_wanted(&mut self) {
        let table = self.balancer.table();
        let mut wanted: Vec<Names> = Vec::new();
        for svc in &table.services {
            for names in svc.config.tls.acme.certificates(&svc.config.rule.hosts) {
                let mut n = names.clone();
                let main = n.remove(0);
                n.sort();
                n.dedup();
                n.retain(|x| *x != main);
                n.insert(0, main);
                if !wanted.contains(&n) {
                    wanted.push(n);
                }
            }
        }
        drop(table);
        let before = self.managed.len();
        self.managed.retain(|names, _| wanted.contains(names));
        let mut changed = before != self.managed.len();
        for names in wanted {
            let from_file = names.iter().all(|n| self.tls.file_serves(n));
            if let Some(m) = self.managed.get_mut(&names) {
                if from_file != (m.state == CertState::FromFile) {
                    m.state = if from_file {
                        CertState::FromFile
                    } else {
                        CertState::Waiting
                    };
                    m.next = now();
                    changed = true;
                }
                continue;
            }
            changed = true;
            let cert = self
                .stored
                .iter()
                .filter(|c| covers(c, &names))
                .max_by_key(|c| c.info.not_after)
                .cloned();
            let (state, next) = match (&cert, from_file) {
                (_, true) => (CertState::FromFile, i64::MAX),
                (Some(c), false) => (
                    CertState::Valid,
                    schedule::renew_at(c.info.not_before, c.info.not_after),
                ),
                (None, false) => (CertState::Waiting, now()),
            };
            tracing::info!(names = %names.join(","), state = state.as_str(), "ACME: managing");
            self.managed.insert(
                names,
                Managed {
                    cert,
                    state,
                    next,
                    failures: 0,
                    last_attempt: None,
                    error: None,
                },
            );
        }
        if changed {
            self.install();
        }
    }

    /// Serves the managed certificates.
    fn install(&self) {
        let certs: Vec<LoadedCert> = self
            .managed
            .values()
            .filter(|m| m.state != CertState::FromFile)
            .filter_map(|m| m.cert.clone())
            .collect();
        self.tls.set_automatic(certs);
    }

    /// Orders or renews the certificate of `names`, or reschedules it
    /// when the CA says it is not time yet.
    async fn attend(&mut self, names: &Names) {
        let Some(m) = self.managed.get(names) else { return };
        let current = m.cert.clone();
        if let Some(cert) = &current
            && let Some(next) = self.advice(cert).await
            && next > now()
        {
            if let Some(m) = self.managed.get_mut(names) {
                m.next = next;
            }
            return;
        }
        let renewing = current.is_some();
        if let Some(m) = self.managed.get_mut(names) {
            m.state = if renewing {
                CertState::Renewing
            } else {
                CertState::Ordering
            };
            m.last_attempt = Some(now());
        }
        self.publish_status();
        tracing::info!(names = %names.join(","), renewing, "ACME: ordering");
        let outcome = self.order(names, current.as_ref()).await;
        let Some(m) = self.managed.get_mut(names) else { return };
        match outcome {
            Ok(cert) => {
                tracing::info!(names = %names.join(","), serial = %cert.info.serial, not_after = cert.info.not_after, "ACME: certificate obtained");
                m.next = schedule::renew_at(cert.info.not_before, cert.info.not_after);
                m.cert = Some(cert);
                m.state = CertState::Valid;
                m.failures = 0;
                m.error = None;
                self.stats.issued.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                self.install();
            }
            Err(err) => {
                m.failures += 1;
                let wait = schedule::backoff(self.settings.retry_secs, m.failures);
                m.next = now() + i64::try_from(wait).unwrap_or(i64::MAX / 2);
                m.state = CertState::Failed;
                m.error = Some(err.clone());
                self.stats.failed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let kept = if m.cert.is_some() {
                    "; the current certificate stays in service"
                } else {
                    ""
                };
                tracing::error!(names = %names.join(","), failures = m.failures, retry_in_secs = wait, "ACME: order failed: {err}{kept}");
            }
        }
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
                let recheck = now() + i64::try_from(retry_after.as_secs().max(60)).unwrap_or(i64::MAX / 2);
                Some(at.min(recheck))
            }
            Err(instant_acme::Error::Unsupported(_)) => None,
            Err(err) => {
                tracing::debug!("ACME: no renewal information: {err}");
                None
            }
        }
    }

    /// The ACME account: the stored one, else a new one (then stored).
    async fn account(&mut self) -> Result<Account, String> {
        if let Some(a) = &self.account {
            return Ok(a.clone());
        }
        let builder = || match &self.settings.ca_root {
            Some(root) => Account::builder_with_root(root),
            None => Account::builder(),
        };
        let stored = self.store.read("account.json").map_err(|e| e.to_string())?;
        let account = match stored {
            Some(json) => {
                let credentials = serde_json::from_slice(&json).map_err(|e| format!("stored ACME account: {e}"))?;
                builder()
                    .map_err(|e| e.to_string())?
                    .from_credentials(credentials)
                    .await
                    .map_err(|e| format!("ACME account: {e}"))?
            }
            None => {
                let contact = self.settings.email.as_ref().map(|e| format!("mailto:{e}"));
                let contact: Vec<&str> = contact.iter().map(String::as_str).collect();
                let (account, credentials) = builder()
                    .map_err(|e| e.to_string())?
                    .create(
                        &NewAccount {
                            contact: &contact,
                            terms_of_service_agreed: true,
                            only_return_existing: false,
                        },
                        self.settings.directory.clone(),
                        None,
                    )
                    .await
                    .map_err(|e| format!("create the ACME account: {e}"))?;
                let json = serde_json::to_vec(&credentials).map_err(|e| e.to_string())?;
                self.store.write("account.json", &json).map_err(|e| e.to_string())?;
                tracing::info!(id = account.id(), "ACME: account created");
                account
            }
        };
        self.account = Some(account.clone());
        Ok(account)
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
        };
        let issued = match order::obtain(&account, names, &solvers, replaces.clone()).await {
            // A CA without renewal information refuses `replaces`.
            Err(order::OrderError::Acme(instant_acme::Error::Unsupported(_))) if replaces.is_some() => {
                order::obtain(&account, names, &solvers, None).await
            }
            other => other,
        }
        .map_err(|e| e.to_string())?;
        let mut pem = issued.chain_pem.into_bytes();
        if !pem.ends_with(b"\n") {
            pem.push(b'\n');
        }
        pem.extend_from_slice(issued.key_pem.as_bytes());
        let path = format!("certs/{}", file_name(names));
        let files = CertFiles {
            chain: self.store.path().join(&path),
            key: self.store.path().join(&path),
        };
        let cert = from_pem(&pem, &pem, &files).map_err(|e| format!("the CA's certificate: {e}"))?;
        self.store.write(&path, &pem).map_err(|e| e.to_string())?;
        Ok(cert)
    }

    fn publish_status(&self) {
        let status: Vec<ManagedStatus> = self
            .managed
            .iter()
            .map(|(names, m)| ManagedStatus {
                names: names.clone(),
                state: m.state.as_str().to_owned(),
                serial: m.cert.as_ref().map(|c| c.info.serial.clone()),
                not_after: m.cert.as_ref().map(|c| c.info.not_after),
                next_attempt: (m.next != i64::MAX).then_some(m.next),
                last_attempt: m.last_attempt,
                failures: m.failures,
                error: m.error.clone(),
                holder: Some(crate::instance::instance().to_owned()),
            })
            .collect();
        *self.status.lock().unwrap_or_else(PoisonError::into_inner) = status;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_file_names_are_safe_and_distinct() {
        let a = file_name(&["a.test".to_owned()]);
        let w = file_name(&["*.a.test".to_owned()]);
        let both = file_name(&["a.test".to_owned(), "*.a.test".to_owned()]);
        assert!(a.starts_with("a.test-") && a.ends_with(".pem"), "{a}");
        assert!(w.starts_with("_wildcard_.a.test-"), "{w}");
        assert_ne!(a, both);
        assert!(!w.contains('*') && !w.contains('/'));
    }
}
