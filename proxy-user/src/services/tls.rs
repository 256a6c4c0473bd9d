//! What a service asks of HTTPS: whether plain-HTTP requests are sent to
//! HTTPS, and the `Strict-Transport-Security` header its HTTPS responses
//! carry. Plain data, read by the request path; which certificates are
//! served and on which listeners is not decided here (every service is
//! served on every listener, plain and TLS).

use http::HeaderValue;

/// The shortest `max-age` hstspreload.org accepts for preloading: one year.
pub const HSTS_PRELOAD_MIN_MAX_AGE: u64 = 31_536_000;

/// What a service asks of HTTPS (default: nothing, no redirect, no HSTS).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsPolicy {
    /// A request that arrived over plain HTTP is answered with a redirect
    /// to the same URL over `https` instead of being proxied.
    pub redirect_https: bool,
    /// The `Strict-Transport-Security` header of responses sent over TLS
    /// (`None`: no header).
    pub hsts: Option<Hsts>,
}

/// A `Strict-Transport-Security` header (RFC 6797).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hsts {
    /// Seconds browsers keep to HTTPS; 0 tells them to forget the host.
    pub max_age: u64,
    /// The policy covers the host's subdomains too.
    pub include_subdomains: bool,
    /// Consent to browsers' preload lists; needs `include_subdomains` and a
    /// `max_age` of at least [`HSTS_PRELOAD_MIN_MAX_AGE`] (checked by
    /// [`super::validate_service`]).
    pub preload: bool,
}

impl Hsts {
    /// The header's value, e.g. `max-age=31536000; includeSubDomains; preload`.
    pub fn header_value(&self) -> HeaderValue {
        let mut value = format!("max-age={}", self.max_age);
        if self.include_subdomains {
            value.push_str("; includeSubDomains");
        }
        if self.preload {
            value.push_str("; preload");
        }
        HeaderValue::try_from(value).expect("digits and fixed ASCII directives are a valid header value")
    }
}
