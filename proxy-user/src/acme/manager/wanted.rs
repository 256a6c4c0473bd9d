//! Which certificates are wanted (the services' ACME names, less those a
//! certificate file serves) and which stored certificates serve them: on
//! start, and with `--docker` on every pass, since another manager may
//! have stored a fresher one.

use sha2::Digest as _;

use super::{CertState, Managed, Manager, Names, now};
use crate::{
    acme::schedule,
    tls::{CertFiles, LoadedCert, from_pem},
};

/// The file a certificate of `names` is stored in (state directory).
pub(super) fn file_name(names: &[String]) -> String {
    let main = names.first().map_or("cert", String::as_str).replace('*', "_wildcard_");
    format!("{main}-{}.pem", crate::acme::swarm_store::digest(&[&names.join(",")]))
}

/// Whether `cert` serves every name of `names`.
fn covers(cert: &LoadedCert, names: &[String]) -> bool {
    names.iter().all(|n| cert.info.names.contains(n))
}

impl Manager {
    /// Reads the stored certificates and adopts, for each managed name
    /// set, one that lasts longer than the one served.
    pub(super) async fn read_store(&mut self) {
        let stored = match self.store.certs().await {
            Ok(s) => s,
            Err(err) => {
                // Once per outage (with `--docker` this runs every pass).
                if !self.store_down {
                    tracing::warn!("ACME: cannot read the stored certificates (the ones served stay): {err}");
                }
                self.store_down = true;
                return;
            }
        };
        if std::mem::take(&mut self.store_down) {
            tracing::info!("ACME: the stored certificates are readable again");
        }
        let mut certs = Vec::new();
        let mut parsed = std::collections::HashMap::new();
        for s in stored {
            // Parsed once: with `--docker` this runs every pass.
            let id: [u8; 32] = sha2::Sha256::digest(&s.pem).into();
            if let Some(cert) = self.parsed.remove(&id) {
                parsed.insert(id, cert.clone());
                certs.push(cert);
                continue;
            }
            let label = CertFiles {
                chain: format!("acme:{}", s.names.join(",")).into(),
                key: format!("acme:{}", s.names.join(",")).into(),
            };
            match from_pem(&s.pem, &s.pem, &label) {
                Ok(cert) => {
                    parsed.insert(id, cert.clone());
                    if s.stale {
                        // Sealed before a join-token rotation: seal again.
                        let names = if s.names.is_empty() {
                            cert.info.names.clone()
                        } else {
                            s.names.clone()
                        };
                        if let Err(err) = self.store.save_cert(&names, &file_name(&names), &s.pem).await {
                            tracing::warn!("ACME: cannot seal a certificate again: {err}");
                        }
                    }
                    certs.push(cert);
                }
                Err(err) => tracing::error!("ACME: stored certificate not usable: {err}"),
            }
        }
        self.stored = certs;
        self.parsed = parsed;
        let mut adopted = false;
        for (names, m) in &mut self.managed {
            let best = self
                .stored
                .iter()
                .filter(|c| covers(c, names))
                .max_by_key(|c| c.info.not_after)
                .cloned();
            let Some(best) = best else { continue };
            if m.cert.as_ref().is_some_and(|c| c.info.not_after >= best.info.not_after) {
                continue;
            }
            tracing::info!(names = %names.join(","), serial = %best.info.serial, "ACME: serving the stored certificate");
            m.next = schedule::renew_at(best.info.not_before, best.info.not_after);
            m.cert = Some(best);
            if m.state != CertState::FromFile {
                m.state = CertState::Valid;
            }
            m.failures = 0;
            m.error = None;
            adopted = true;
        }
        if adopted {
            self.install();
        }
    }

    /// Brings the managed set in line with what the services ask for now.
    pub(super) fn sync_wanted(&mut self) {
        let table = self.balancer.table();
        let mut wanted: Vec<Names> = Vec::new();
        for svc in &table.services {
            for mut n in svc.config.tls.acme.certificates(&svc.config.rule.hosts) {
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
                    holder: None,
                },
            );
        }
        if changed {
            self.install();
        }
    }

    /// Serves the managed certificates.
    pub(super) fn install(&self) {
        let certs: Vec<LoadedCert> = self
            .managed
            .values()
            .filter(|m| m.state != CertState::FromFile)
            .filter_map(|m| m.cert.clone())
            .collect();
        self.tls.set_automatic(certs);
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
