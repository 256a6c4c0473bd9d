//! The ACME challenges being answered now: HTTP-01 key authorizations by token
//! (served on every plain listener at `/.well-known/acme-challenge/`) and
//! TLS-ALPN-01 certificates by name (served to handshakes that offer only
//! ALPN `acme-tls/1`). An order publishes its challenges here before it
//! tells the CA to validate, and withdraws them when it ends.
//!
//! Reads happen only on the challenge paths (a path prefix, an ALPN
//! value), never on ordinary requests or handshakes.

use std::{
    collections::HashMap,
    sync::{Arc, PoisonError, RwLock},
};

use rustls::{
    ServerConfig,
    server::{ClientHello, ResolvesServerCert},
    sign::CertifiedKey,
};

/// The ALPN protocol of TLS-ALPN-01 (RFC 8737).
pub const ACME_TLS_ALPN: &[u8] = b"acme-tls/1";

/// Where HTTP-01 challenges are fetched.
pub const HTTP_CHALLENGE_PATH: &str = "/.well-known/acme-challenge/";

/// The challenges published now: by this instance's orders, and (with
/// `--docker`) by the other managers' (kept apart, so that a resync of
/// theirs never withdraws one of ours).
#[derive(Default)]
pub struct ChallengeBook {
    /// HTTP-01: token → key authorization.
    http: RwLock<HashMap<String, String>>,
    /// TLS-ALPN-01: lower-case name → a server configuration that presents
    /// the name's validation certificate and speaks only `acme-tls/1`.
    alpn: RwLock<HashMap<String, Arc<ServerConfig>>>,
    /// The other managers' HTTP-01 answers.
    remote_http: RwLock<HashMap<String, String>>,
    /// The other managers' TLS-ALPN-01 answers.
    remote_alpn: RwLock<HashMap<String, Arc<ServerConfig>>>,
}

impl ChallengeBook {
    /// The key authorization of the HTTP-01 request for `path`, if it is
    /// one of a published challenge.
    pub fn http_answer(&self, path: &str) -> Option<String> {
        let token = path.strip_prefix(HTTP_CHALLENGE_PATH)?;
        let local = self
            .http
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(token)
            .cloned();
        local.or_else(|| {
            let remote = self.remote_http.read().unwrap_or_else(PoisonError::into_inner);
            remote.get(token).cloned()
        })
    }

    /// The TLS configuration that answers TLS-ALPN-01 for `name`.
    pub fn alpn_answer(&self, name: &str) -> Option<Arc<ServerConfig>> {
        let name = name.to_ascii_lowercase();
        let local = self
            .alpn
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&name)
            .cloned();
        local.or_else(|| {
            let remote = self.remote_alpn.read().unwrap_or_else(PoisonError::into_inner);
            remote.get(&name).cloned()
        })
    }

    /// Replaces the other managers' answers with `http` (token → key
    /// authorization) and `alpn` (name → configuration).
    pub fn replace_remote(&self, http: HashMap<String, String>, alpn: HashMap<String, Arc<ServerConfig>>) {
        *self.remote_http.write().unwrap_or_else(PoisonError::into_inner) = http;
        *self.remote_alpn.write().unwrap_or_else(PoisonError::into_inner) = alpn;
    }

    /// Publishes an HTTP-01 answer.
    pub fn publish_http(&self, token: &str, key_authorization: &str) {
        let mut map = self.http.write().unwrap_or_else(PoisonError::into_inner);
        map.insert(token.to_owned(), key_authorization.to_owned());
    }

    /// Withdraws an HTTP-01 answer.
    pub fn withdraw_http(&self, token: &str) {
        self.http.write().unwrap_or_else(PoisonError::into_inner).remove(token);
    }

    /// Publishes the TLS-ALPN-01 answer for `name`.
    pub fn publish_alpn(&self, name: &str, config: Arc<ServerConfig>) {
        let mut map = self.alpn.write().unwrap_or_else(PoisonError::into_inner);
        map.insert(name.to_ascii_lowercase(), config);
    }

    /// Withdraws the TLS-ALPN-01 answer for `name`.
    pub fn withdraw_alpn(&self, name: &str) {
        let mut map = self.alpn.write().unwrap_or_else(PoisonError::into_inner);
        map.remove(&name.to_ascii_lowercase());
    }
}

/// The TLS-ALPN-01 answer for `name`: a self-signed certificate for the
/// name carrying the SHA-256 `digest` of the key authorization in its
/// critical `acmeIdentifier` extension, offered only over `acme-tls/1`.
///
/// # Errors
/// When the certificate cannot be made.
pub fn alpn_config(name: &str, digest: &[u8]) -> Result<Arc<ServerConfig>, String> {
    if digest.len() != 32 {
        return Err(format!("a SHA-256 digest has 32 bytes, not {}", digest.len()));
    }
    let key = rcgen::KeyPair::generate().map_err(|e| e.to_string())?;
    let mut params = rcgen::CertificateParams::new(vec![name.to_owned()]).map_err(|e| e.to_string())?;
    params.custom_extensions = vec![rcgen::CustomExtension::new_acme_identifier(digest)];
    let cert = params.self_signed(&key).map_err(|e| e.to_string())?;
    let der = rustls_pki_types::PrivateKeyDer::try_from(key.serialize_der()).map_err(str::to_owned)?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let signing = provider.key_provider.load_private_key(der).map_err(|e| e.to_string())?;
    // Not `with_single_cert`: it parses the certificate as a client would,
    // and the critical acmeIdentifier extension is one no client knows.
    let certified = Arc::new(CertifiedKey::new(vec![cert.der().clone()], signing));
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(Validation(certified)));
    config.alpn_protocols = vec![ACME_TLS_ALPN.to_vec()];
    Ok(Arc::new(config))
}

/// The validation certificate, whatever the client asks.
#[derive(Debug)]
struct Validation(Arc<CertifiedKey>);

impl ResolvesServerCert for Validation {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_only_published_tokens_under_the_challenge_path() {
        let book = ChallengeBook::default();
        book.publish_http("tok", "tok.thumb");
        assert_eq!(
            book.http_answer("/.well-known/acme-challenge/tok").as_deref(),
            Some("tok.thumb")
        );
        assert_eq!(book.http_answer("/.well-known/acme-challenge/other"), None);
        assert_eq!(book.http_answer("/tok"), None);
        book.withdraw_http("tok");
        assert_eq!(book.http_answer("/.well-known/acme-challenge/tok"), None);
    }

    #[test]
    fn alpn_answers_by_name_case_blind() {
        let book = ChallengeBook::default();
        let config = alpn_config("a.test", &[7; 32]).unwrap();
        assert_eq!(config.alpn_protocols, vec![ACME_TLS_ALPN.to_vec()]);
        book.publish_alpn("A.test", config);
        assert!(book.alpn_answer("a.TEST").is_some());
        book.withdraw_alpn("a.test");
        assert!(book.alpn_answer("a.test").is_none());
    }

    #[test]
    fn remote_answers_count_and_never_hide_local_ones() {
        let book = ChallengeBook::default();
        book.publish_http("mine", "mine.k");
        let remote = HashMap::from([("theirs".to_owned(), "theirs.k".to_owned())]);
        book.replace_remote(remote, HashMap::new());
        let path = |t: &str| format!("{HTTP_CHALLENGE_PATH}{t}");
        assert_eq!(book.http_answer(&path("theirs")).as_deref(), Some("theirs.k"));
        assert_eq!(book.http_answer(&path("mine")).as_deref(), Some("mine.k"));
        book.replace_remote(HashMap::new(), HashMap::new());
        assert_eq!(book.http_answer(&path("theirs")), None);
        assert_eq!(book.http_answer(&path("mine")).as_deref(), Some("mine.k"));
    }
}
