//! A service's routing rule: hosts and path prefixes, each with
//! alternatives, and whether the matched prefix is stripped.

use super::path;

/// A routing rule: a host (exact, case-insensitive, without port) and a
/// path prefix must both match; within each, any of the listed values may.
/// A prefix matches on segment boundaries of the normalised path (see
/// [`path`]). Among the services that match, the longest matching prefix
/// wins, and a rule with hosts beats one without.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// Lower-case host names without a trailing dot; empty: any host.
    pub hosts: Vec<String>,
    /// Path prefixes, each starting with `/` (at least one; `/` matches
    /// every path).
    pub path_prefixes: Vec<String>,
    /// Remove the matched prefix from the path before forwarding, and
    /// name it in `X-Forwarded-Prefix` (Traefik v1's `PathPrefixStrip`).
    pub strip_prefix: bool,
}

impl Default for Rule {
    /// Any host, every path.
    fn default() -> Self {
        Self {
            hosts: Vec::new(),
            path_prefixes: vec!["/".to_owned()],
            strip_prefix: false,
        }
    }
}

impl std::fmt::Display for Rule {
    /// The rule in Traefik v1's words, e.g. `Host:a.example,b.example PathPrefixStrip:/api`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if !self.hosts.is_empty() {
            write!(f, "Host:{} ", self.hosts.join(","))?;
        }
        let matcher = if self.strip_prefix {
            "PathPrefixStrip"
        } else {
            "PathPrefix"
        };
        write!(f, "{matcher}:{}", self.path_prefixes.join(","))
    }
}

impl Rule {
    /// The longest prefix of this rule that a request for `host`
    /// (lower-case, no port, no trailing dot) and the normalised `path`
    /// ([`path::normalize`]) is under, if the host matches.
    pub fn matched_prefix(&self, host: Option<&str>, path: &str) -> Option<&str> {
        let host_ok =
            self.hosts.is_empty() || host.is_some_and(|h| self.hosts.iter().any(|r| r.eq_ignore_ascii_case(h)));
        if !host_ok {
            return None;
        }
        self.path_prefixes
            .iter()
            .filter(|p| path::prefix_matches(p, path))
            .max_by_key(|p| p.len())
            .map(String::as_str)
    }
}
