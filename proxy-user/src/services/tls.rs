//! What a service asks of HTTPS: whether plain-HTTP requests are sent to
//! HTTPS, the `Strict-Transport-Security` header its HTTPS responses
//! carry, and the certificates it wants obtained automatically. Plain data, read by the request path; which certificates are
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
    /// Certificates to obtain automatically (ACME).
    pub acme: AcmeRequest,
}

/// The certificates a service asks ACME for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum AcmeRequest {
    /// None.
    #[default]
    None,
    /// One certificate for the hosts its rule names.
    RuleHosts,
    /// These certificates, each given by its names (the first is the
    /// main one), wildcards as `*.example.com`.
    Certificates(Vec<Vec<String>>),
}

impl AcmeRequest {
    /// The certificates asked for, given the hosts of the service's rule;
    /// of those, the ones no CA issues for (an address, a single label such
    /// as `localhost`) are left out rather than ordered in vain.
    pub fn certificates(&self, rule_hosts: &[String]) -> Vec<Vec<String>> {
        match self {
            Self::None => Vec::new(),
            Self::RuleHosts => {
                let hosts: Vec<String> = rule_hosts.iter().filter_map(|h| acme_name(h).ok()).collect();
                if hosts.is_empty() { Vec::new() } else { vec![hosts] }
            }
            Self::Certificates(c) => c.clone(),
        }
    }
}

/// Checks a name asked for a certificate: a DNS name of letters, digits
/// and hyphens in dot-separated labels, at least two of them, optionally
/// a `*.` wildcard in front; lower-cased.
///
/// # Errors
/// What is wrong with it.
pub fn acme_name(name: &str) -> Result<String, String> {
    let name = name.trim().trim_end_matches('.').to_ascii_lowercase();
    let bare = name.strip_prefix("*.").unwrap_or(&name);
    let labels: Vec<&str> = bare.split('.').collect();
    let valid = name.len() <= 253
        && labels.len() >= 2
        && labels.iter().all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
        && !labels.last().is_some_and(|tld| tld.bytes().all(|b| b.is_ascii_digit()));
    if valid {
        Ok(name)
    } else {
        Err(format!(
            "{name:?} is not a DNS name a CA issues for (labels of letters, digits and hyphens, at least two, \
             an optional leading *.; no IP address)"
        ))
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rule_hosts_a_ca_cannot_issue_for_are_left_out() {
        let hosts = |h: &[&str]| h.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        let got = AcmeRequest::RuleHosts.certificates(&hosts(&["a.example.com", "localhost", "10.0.0.1"]));
        assert_eq!(got, vec![hosts(&["a.example.com"])]);
        assert!(AcmeRequest::RuleHosts.certificates(&hosts(&["localhost"])).is_empty());
        assert!(AcmeRequest::RuleHosts.certificates(&[]).is_empty());
        assert!(AcmeRequest::None.certificates(&hosts(&["a.example.com"])).is_empty());
    }

    #[test]
    fn names_a_ca_issues_for() {
        assert_eq!(acme_name("Example.COM.").unwrap(), "example.com");
        assert_eq!(acme_name("*.w.test").unwrap(), "*.w.test");
        for bad in ["localhost", "10.0.0.1", "a..b", "-a.b", "a_b.c", "*.*.a.b", "a.*.b", ""] {
            assert!(acme_name(bad).is_err(), "{bad}");
        }
    }
}
