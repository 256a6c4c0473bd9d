//! One ACME order, from the new order to the issued chain: publish a
//! challenge per authorization, tell the CA to validate, wait for it,
//! send a CSR for a new P-256 key, and fetch the certificate. Whatever an
//! order published is withdrawn when it ends, in success or failure.
//!
//! The challenge of each name: DNS-01 for a wildcard (the only one a CA
//! accepts for it), the configured one for the others.

use std::time::Duration;

use instant_acme::{
    Account, AuthorizationStatus, CertificateIdentifier, ChallengeType, Identifier, NewOrder, OrderStatus, RetryPolicy,
};

use super::{
    Challenge,
    dns_hook::{self, DnsHook, HookError},
    swarm_store::SwarmStore,
};
use crate::tls::{ChallengeBook, alpn_config};

/// How long the CA may take to validate every challenge of an order.
const VALIDATION_TIMEOUT: Duration = Duration::from_secs(120);

/// How long it may take to issue once the CSR is in.
const ISSUE_TIMEOUT: Duration = Duration::from_secs(120);

/// A certificate the CA issued and the key it certifies.
pub struct Issued {
    /// The chain, leaf first, PEM.
    pub chain_pem: String,
    /// The private key, PKCS#8 PEM.
    pub key_pem: String,
}

/// What can answer challenges on this instance.
pub struct Solvers<'a> {
    /// Where HTTP-01 and TLS-ALPN-01 answers are published.
    pub book: &'a ChallengeBook,
    /// The challenge for names that are not wildcards.
    pub challenge: Challenge,
    /// The DNS-01 hook, when configured.
    pub dns: Option<&'a DnsHook>,
    /// With `--docker`: where the other managers read this order's
    /// HTTP-01 and TLS-ALPN-01 answers, and until when (Unix seconds)
    /// they stand if this instance dies before withdrawing them.
    pub swarm: Option<(&'a SwarmStore, i64)>,
}

/// How long the other managers are given to see a published challenge
/// before the CA is told to validate: they follow config events, which
/// arrive within milliseconds, and resync every [`super::watch::RESYNC`]
/// should one be missed.
const PROPAGATION: Duration = Duration::from_millis(2500);

/// Why an order failed.
#[derive(Debug, thiserror::Error)]
pub enum OrderError {
    /// The CA answered with an error, or could not be reached.
    #[error("{0}")]
    Acme(#[from] instant_acme::Error),
    /// No challenge this instance can answer is offered for the name.
    #[error("{name}: no challenge this instance can answer ({why})")]
    NoChallenge {
        /// The name.
        name: String,
        /// What is missing.
        why: &'static str,
    },
    /// The DNS-01 hook failed.
    #[error("{0}")]
    Hook(#[from] HookError),
    /// The CA did not validate a name.
    #[error("validation failed: {0}")]
    Invalid(String),
    /// An authorization in a state an order cannot go on from.
    #[error("{name}: authorization is {status:?}")]
    Authorization {
        /// The name.
        name: String,
        /// Its state.
        status: AuthorizationStatus,
    },
    /// The key, CSR or validation certificate could not be made.
    #[error("{0}")]
    Local(String),
}

/// One answer this order published (with the swarm config's ID, when
/// shared).
enum Published {
    Http(String, Option<String>),
    Alpn(String, Option<String>),
    Dns(String, String),
}

/// The challenge type for `name` (`*.` for a wildcard).
fn pick(name: &str, solvers: &Solvers<'_>) -> Result<ChallengeType, OrderError> {
    let none = |why| OrderError::NoChallenge {
        name: name.to_owned(),
        why,
    };
    if name.starts_with("*.") {
        return match solvers.dns {
            Some(_) => Ok(ChallengeType::Dns01),
            None => Err(none("a wildcard needs DNS-01: --acme-dns-hook")),
        };
    }
    match solvers.challenge {
        Challenge::Http01 => Ok(ChallengeType::Http01),
        Challenge::TlsAlpn01 => Ok(ChallengeType::TlsAlpn01),
        Challenge::Dns01 if solvers.dns.is_some() => Ok(ChallengeType::Dns01),
        Challenge::Dns01 => Err(none("dns-01 needs --acme-dns-hook")),
    }
}

/// Orders a certificate for `names` (replacing the certificate `replaces`
/// names, if any) and returns it once issued.
///
/// # Errors
/// When the CA refuses, a challenge cannot be answered or fails, or the
/// CA does not issue in time.
pub async fn obtain(
    account: &Account,
    names: &[String],
    solvers: &Solvers<'_>,
    replaces: Option<CertificateIdentifier<'static>>,
) -> Result<Issued, OrderError> {
    // A wildcard is asked for as `*.name`; its authorization is the
    // parent's, marked wildcard.
    let identifiers: Vec<Identifier> = names.iter().map(|n| Identifier::Dns(n.clone())).collect();
    let mut new_order = NewOrder::new(&identifiers);
    if let Some(id) = replaces {
        // Renewal information: the CA may exempt a replacement from its
        // rate limits.
        new_order = new_order.replaces(id);
    }
    let mut order = account.new_order(&new_order).await?;
    let mut published = Vec::new();
    let outcome = validate(&mut order, solvers, &mut published).await;
    withdraw(published, solvers).await;
    outcome?;
    let local = |e: rcgen::Error| OrderError::Local(e.to_string());
    let key = rcgen::KeyPair::generate().map_err(local)?;
    let mut params = rcgen::CertificateParams::new(names.to_vec()).map_err(local)?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    let csr = params.serialize_request(&key).map_err(local)?;
    order.finalize_csr(csr.der()).await?;
    let chain_pem = order
        .poll_certificate(
            &RetryPolicy::new()
                .initial_delay(Duration::from_millis(500))
                .timeout(ISSUE_TIMEOUT),
        )
        .await?;
    Ok(Issued {
        chain_pem,
        key_pem: key.serialize_pem(),
    })
}

/// Publishes and readies every pending authorization's challenge, then
/// waits for the order to be ready.
async fn validate(
    order: &mut instant_acme::Order,
    solvers: &Solvers<'_>,
    published: &mut Vec<Published>,
) -> Result<(), OrderError> {
    let mut authorizations = order.authorizations();
    while let Some(auth) = authorizations.next().await {
        let mut auth = auth?;
        let name = auth.identifier().to_string();
        match auth.status {
            AuthorizationStatus::Pending => {}
            // Validated earlier for this account: nothing to answer.
            AuthorizationStatus::Valid => continue,
            status => return Err(OrderError::Authorization { name, status }),
        }
        let kind = pick(&name, solvers)?;
        let mut challenge = auth.challenge(kind.clone()).ok_or_else(|| OrderError::NoChallenge {
            name: name.clone(),
            why: "the CA does not offer the challenge type this instance answers",
        })?;
        let key_authorization = challenge.key_authorization();
        let share = async |kind: &str, key: &str| match solvers.swarm {
            Some((store, until)) => store
                .publish(kind, key, key_authorization.as_str(), until)
                .await
                .map(Some)
                .map_err(|e| OrderError::Local(crate::error::chain(&e).to_string())),
            None => Ok(None),
        };
        match kind {
            ChallengeType::Http01 => {
                solvers.book.publish_http(&challenge.token, key_authorization.as_str());
                published.push(Published::Http(challenge.token.clone(), None));
                if let Some(id) = share("http-01", &challenge.token).await? {
                    published.push(Published::Http(challenge.token.clone(), Some(id)));
                }
            }
            ChallengeType::TlsAlpn01 => {
                let config = alpn_config(&name, key_authorization.digest().as_ref()).map_err(OrderError::Local)?;
                solvers.book.publish_alpn(&name, config);
                published.push(Published::Alpn(name.clone(), None));
                if let Some(id) = share("tls-alpn-01", &name).await? {
                    published.push(Published::Alpn(name.clone(), Some(id)));
                }
            }
            _ => {
                let hook = solvers
                    .dns
                    .ok_or_else(|| OrderError::Local("DNS-01 without a hook".to_owned()))?;
                let fqdn = dns_hook::record_name(&name);
                let value = key_authorization.dns_value();
                hook.present(&fqdn, &value).await?;
                published.push(Published::Dns(fqdn, value));
            }
        }
        tracing::debug!(name = %name, challenge = ?kind, "challenge published");
        if solvers.swarm.is_some() && kind != ChallengeType::Dns01 {
            tokio::time::sleep(PROPAGATION).await;
        }
        challenge.set_ready().await?;
    }
    let status = order
        .poll_ready(
            &RetryPolicy::new()
                .initial_delay(Duration::from_millis(500))
                .timeout(VALIDATION_TIMEOUT),
        )
        .await?;
    if status == OrderStatus::Ready {
        return Ok(());
    }
    Err(OrderError::Invalid(reasons(order).await))
}

/// What the CA said about the challenges that failed.
async fn reasons(order: &mut instant_acme::Order) -> String {
    let mut out = Vec::new();
    if let Some(problem) = &order.state().error {
        out.push(problem.to_string());
    }
    let mut authorizations = order.authorizations();
    while let Some(Ok(mut auth)) = authorizations.next().await {
        let name = auth.identifier().to_string();
        if let Ok(state) = auth.refresh().await {
            for c in &state.challenges {
                if let Some(problem) = &c.error {
                    out.push(format!("{name} ({:?}): {problem}", c.r#type));
                }
            }
        }
    }
    if out.is_empty() {
        "the order is invalid".to_owned()
    } else {
        out.join("; ")
    }
}

/// Withdraws what an order published; a hook that fails to clean up is
/// logged (the record is harmless, the certificate is not at stake).
async fn withdraw(published: Vec<Published>, solvers: &Solvers<'_>) {
    for p in published {
        match p {
            Published::Http(token, None) => solvers.book.withdraw_http(&token),
            Published::Alpn(name, None) => solvers.book.withdraw_alpn(&name),
            Published::Http(_, Some(id)) | Published::Alpn(_, Some(id)) => {
                if let Some((store, _)) = solvers.swarm {
                    store.withdraw(&id).await;
                }
            }
            Published::Dns(fqdn, value) => {
                if let Some(hook) = solvers.dns
                    && let Err(err) = hook.cleanup(&fqdn, &value).await
                {
                    tracing::warn!("{err}");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenge_choice() {
        let book = ChallengeBook::default();
        let hook = DnsHook {
            program: "/bin/true".into(),
        };
        let s = |challenge, dns| Solvers {
            book: &book,
            challenge,
            dns: if dns { Some(&hook) } else { None },
            swarm: None,
        };
        assert_eq!(
            pick("a.test", &s(Challenge::Http01, true)).unwrap(),
            ChallengeType::Http01
        );
        assert_eq!(
            pick("a.test", &s(Challenge::TlsAlpn01, true)).unwrap(),
            ChallengeType::TlsAlpn01
        );
        assert_eq!(
            pick("a.test", &s(Challenge::Dns01, true)).unwrap(),
            ChallengeType::Dns01
        );
        assert_eq!(
            pick("*.a.test", &s(Challenge::Http01, true)).unwrap(),
            ChallengeType::Dns01
        );
        let err = pick("*.a.test", &s(Challenge::Http01, false)).unwrap_err();
        assert!(err.to_string().contains("--acme-dns-hook"), "{err}");
        assert!(pick("a.test", &s(Challenge::Dns01, false)).is_err());
    }
}
