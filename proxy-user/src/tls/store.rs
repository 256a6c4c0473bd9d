//! Which certificate a handshake gets. By the client's SNI name: the exact
//! name first, then the wildcard of its parent (`*.example.com` serves
//! `a.example.com`, not `example.com` nor `a.b.example.com`), then the
//! default, which is also what clients without SNI get. Among the
//! certificates of one name (an ECDSA and an RSA one), the first whose key
//! can sign with a scheme the client offers: ECDSA when it can, RSA for
//! the clients that only know RSA.
//!
//! The store is immutable; a reload builds a new one and swaps it in
//! ([`SniResolver::replace`]). Handshakes under way keep the one they
//! started with, connections keep their certificate, nothing is dropped.

use std::{borrow::Cow, collections::HashMap, sync::Arc};

use arc_swap::ArcSwap;
use rustls::{
    SignatureScheme,
    server::{ClientHello, ResolvesServerCert},
    sign::CertifiedKey,
};

use super::certs::LoadedCert;

/// The certificates in force, indexed for SNI.
#[derive(Debug, Default, Clone)]
pub struct CertStore {
    exact: HashMap<String, Vec<Arc<CertifiedKey>>>,
    /// By the parent of the wildcard: `example.com` for `*.example.com`.
    wildcard: HashMap<String, Vec<Arc<CertifiedKey>>>,
    default: Vec<Arc<CertifiedKey>>,
}

impl CertStore {
    /// Indexes `certs`; `certs[default]` (and the others for exactly its
    /// names, e.g. its RSA twin) is the default.
    pub fn build(certs: &[&LoadedCert], default: usize) -> Self {
        let mut order: Vec<&LoadedCert> = certs.to_vec();
        // Per name: ECDSA and Ed25519 before RSA (smaller, faster
        // handshakes), then the one that expires last.
        order.sort_by_key(|c| (c.info.key_type == "rsa", std::cmp::Reverse(c.info.not_after)));
        let mut store = Self::default();
        for cert in &order {
            for name in &cert.info.names {
                let (map, key) = match name.strip_prefix("*.") {
                    Some(parent) => (&mut store.wildcard, parent),
                    None => (&mut store.exact, name.as_str()),
                };
                map.entry(key.to_owned()).or_default().push(cert.key.clone());
            }
        }
        if let Some(first) = certs.get(default) {
            store.default = order
                .iter()
                .filter(|c| c.info.names == first.info.names)
                .map(|c| c.key.clone())
                .collect();
        }
        store
    }

    /// Adds the automatic certificates `acme` for the names no file
    /// certificate serves: a certificate from a file wins for its names.
    #[must_use]
    pub fn with_acme(mut self, acme: &[&LoadedCert]) -> Self {
        let mut added: Vec<(bool, String, Arc<CertifiedKey>)> = Vec::new();
        for cert in acme {
            for name in &cert.info.names {
                let (wild, key) = match name.strip_prefix("*.") {
                    Some(parent) => (true, parent),
                    None => (false, name.as_str()),
                };
                let map = if wild { &self.wildcard } else { &self.exact };
                if !map.contains_key(key) {
                    added.push((wild, key.to_owned(), cert.key.clone()));
                }
            }
        }
        for (wild, key, cert) in added {
            let map = if wild { &mut self.wildcard } else { &mut self.exact };
            map.entry(key).or_default().push(cert);
        }
        self
    }

    /// Whether a certificate of the store is for `name` under exactly
    /// that name (a wildcard for a wildcard).
    pub fn serves(&self, name: &str) -> bool {
        match name.strip_prefix("*.") {
            Some(parent) => self.wildcard.contains_key(parent),
            None => self.exact.contains_key(name),
        }
    }

    /// The certificates that may serve `sni`, best first.
    fn candidates(&self, sni: Option<&str>) -> &[Arc<CertifiedKey>] {
        let Some(name) = sni else { return &self.default };
        let name: Cow<'_, str> = if name.bytes().any(|b| b.is_ascii_uppercase()) {
            Cow::Owned(name.to_ascii_lowercase())
        } else {
            Cow::Borrowed(name)
        };
        if let Some(c) = self.exact.get(name.as_ref()) {
            return c;
        }
        if let Some((_, parent)) = name.split_once('.')
            && let Some(c) = self.wildcard.get(parent)
        {
            return c;
        }
        &self.default
    }

    /// The certificate for a client that sent `sni` and can verify
    /// `schemes`.
    pub fn pick(&self, sni: Option<&str>, schemes: &[SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        let candidates = self.candidates(sni);
        candidates
            .iter()
            .find(|c| c.key.choose_scheme(schemes).is_some())
            .or_else(|| candidates.first())
            .cloned()
    }
}

/// The rustls resolver over the store in force.
#[derive(Debug)]
pub struct SniResolver {
    store: ArcSwap<CertStore>,
}

impl SniResolver {
    /// A resolver over `store`.
    pub fn new(store: CertStore) -> Self {
        Self {
            store: ArcSwap::from_pointee(store),
        }
    }

    /// New handshakes use `store` from now on.
    pub fn replace(&self, store: CertStore) {
        self.store.store(Arc::new(store));
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.store.load().pick(hello.server_name(), hello.signature_schemes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::certs::CertInfo;

    fn cert(names: &[&str], alg: &'static rcgen::SignatureAlgorithm) -> LoadedCert {
        let key = rcgen::KeyPair::generate_for(alg).unwrap();
        let params = rcgen::CertificateParams::new(names.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>()).unwrap();
        let c = params.self_signed(&key).unwrap();
        let der = rustls_pki_types::PrivateKeyDer::try_from(key.serialize_der()).unwrap();
        let provider = rustls::crypto::aws_lc_rs::default_provider();
        let key = CertifiedKey::from_der(vec![c.der().clone()], der, &provider).unwrap();
        let rsa = std::ptr::eq(alg, &rcgen::PKCS_RSA_SHA256);
        LoadedCert {
            key: Arc::new(key),
            info: CertInfo {
                names: names.iter().map(|s| (*s).to_owned()).collect(),
                issuer: String::new(),
                serial: String::new(),
                not_before: 0,
                not_after: 0,
                key_type: if rsa { "rsa" } else { "ecdsa" },
            },
        }
    }

    const ECDSA: &[SignatureScheme] = &[SignatureScheme::ECDSA_NISTP256_SHA256, SignatureScheme::RSA_PSS_SHA256];
    const RSA_ONLY: &[SignatureScheme] = &[SignatureScheme::RSA_PSS_SHA256, SignatureScheme::RSA_PKCS1_SHA256];

    #[test]
    fn exact_then_wildcard_then_default_and_the_key_type_the_client_knows() {
        let a = cert(&["a.test"], &rcgen::PKCS_ECDSA_P256_SHA256);
        let wild = cert(&["*.w.test"], &rcgen::PKCS_ECDSA_P256_SHA256);
        let dflt = cert(&["default.test"], &rcgen::PKCS_ECDSA_P256_SHA256);
        let a_rsa = cert(&["a.test"], &rcgen::PKCS_RSA_SHA256);
        let store = CertStore::build(&[&a_rsa, &a, &wild, &dflt], 3);
        let same = |got: Option<Arc<CertifiedKey>>, want: &LoadedCert| Arc::ptr_eq(&got.unwrap(), &want.key);
        assert!(same(store.pick(Some("a.test"), ECDSA), &a));
        assert!(same(store.pick(Some("A.Test"), ECDSA), &a));
        assert!(same(store.pick(Some("a.test"), RSA_ONLY), &a_rsa));
        assert!(same(store.pick(Some("x.w.test"), ECDSA), &wild));
        assert!(same(store.pick(Some("w.test"), ECDSA), &dflt));
        assert!(same(store.pick(Some("y.x.w.test"), ECDSA), &dflt));
        assert!(same(store.pick(Some("other.test"), ECDSA), &dflt));
        assert!(same(store.pick(None, ECDSA), &dflt));
    }
}
