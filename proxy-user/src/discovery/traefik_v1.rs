//! The name Traefik v1 gave a Swarm service's sticky cookie, so that a
//! client's existing Traefik cookie is read under the same name and its
//! session survives the migration.
//!
//! What Traefik v1 (1.x, Docker provider in swarm mode) does:
//!
//! * the backend of a service is `backend-` + `Normalize(name)`, where the
//!   name is the `traefik.backend` label or else the service name, and
//!   `Normalize` joins the runs of letters and digits with `-`
//!   (`mystack_web` → `mystack-web`);
//! * with `traefik.backend.loadbalancer.stickiness.cookieName` the cookie is
//!   that name, with every character outside RFC 2616's token set replaced
//!   by `_`;
//! * else it is `_` + the first 5 hex digits of
//!   SHA-1(`_TRAEFIK_BACKEND_` + backend): `_a49bc` for the tutorial's
//!   `whoami-service`.
//!
//! Its value is the task's URL (`http://10.0.1.3:8000`); the proxy honours
//! such a value once when it names a current task (see the cookie docs).
//! SHA-1 here only reproduces a name; it protects nothing.

use sha1::{Digest as _, Sha1};

/// Traefik v1's `provider.Normalize`: runs of letters and digits joined by `-`.
pub fn normalize(name: &str) -> String {
    name.split(|c: char| !c.is_alphabetic() && !c.is_numeric())
        .filter(|part| !part.is_empty())
        .collect::<Vec<_>>()
        .join("-")
}

/// The Traefik v1 backend of a Swarm service: `backend-<Normalize(name)>`,
/// with the `traefik.backend` label's value, if any, as the name.
pub fn backend_name(service: &str, backend_label: Option<&str>) -> String {
    let name = backend_label.filter(|b| !b.is_empty()).unwrap_or(service);
    format!("backend-{}", normalize(name))
}

/// The default sticky cookie name of a Traefik v1 backend:
/// `_` + 5 hex digits of SHA-1(`_TRAEFIK_BACKEND_<backend>`).
pub fn generated_cookie_name(backend: &str) -> String {
    let digest = Sha1::digest(format!("_TRAEFIK_BACKEND_{backend}").as_bytes());
    let hex: String = digest.iter().take(3).map(|b| format!("{b:02x}")).collect();
    format!("_{}", &hex[..5])
}

/// A `stickiness.cookieName` as Traefik v1 used it: characters outside the
/// RFC 2616 token set become `_`.
pub fn sanitize_cookie_name(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "!#$%&'*+-.^`|~".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The cookie name Traefik v1 used for `service` when no cookie name was
/// given (the `traefik.backend` label, if any, names the backend).
pub fn cookie_name(service: &str, backend_label: Option<&str>) -> String {
    generated_cookie_name(&backend_name(service, backend_label))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The derivation: the classic tutorial's `whoami-service` answered
    /// `Set-Cookie: _a49bc=…` under Traefik v1; the others were computed
    /// with `printf '_TRAEFIK_BACKEND_backend-web' | sha1sum`.
    #[test]
    fn default_names() {
        for (service, label, expected) in [
            ("whoami-service", None, "_a49bc"),
            ("whoami-service", Some("web"), "_40e28"),
            ("mystack_web", None, "_439a0"),
        ] {
            assert_eq!(cookie_name(service, label), expected, "{service} {label:?}");
        }
    }

    /// `Normalize` joins letter/digit runs with `-`; the backend label wins
    /// over the service name, and an empty one is ignored.
    #[test]
    fn backend_names() {
        assert_eq!(normalize("mystack_web"), "mystack-web");
        assert_eq!(normalize("a..b__c-"), "a-b-c");
        assert_eq!(normalize("svc.1"), "svc-1");
        assert_eq!(backend_name("mystack_web", None), "backend-mystack-web");
        assert_eq!(backend_name("x", Some("my.backend")), "backend-my-backend");
        assert_eq!(backend_name("x", Some("")), "backend-x");
    }

    /// Token characters stay, everything else becomes `_`.
    #[test]
    fn cookie_names_are_sanitized_like_traefik_v1() {
        assert_eq!(sanitize_cookie_name("my_cookie"), "my_cookie");
        assert_eq!(sanitize_cookie_name("a b;c=d/é"), "a_b_c_d__");
        assert_eq!(sanitize_cookie_name("x-1.2~!"), "x-1.2~!");
    }
}
