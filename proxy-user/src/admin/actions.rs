//! Write actions of the admin API and who may call them.
//!
//! * `POST /api/services/{service}/backends/{backend}/drain` and
//!   `…/undrain`: no new sessions for the backend (pinned ones stay), or
//!   new sessions again;
//! * `POST /api/reload`: re-read the configuration, as SIGHUP does.
//!
//! They need `Authorization: Bearer <token>` with the token of
//! `--admin-token-file`; without a token file they are disabled (403).
//! The token is compared in constant time.

use http::{HeaderMap, Method, StatusCode, header};
use serde::Serialize;
use subtle::ConstantTimeEq as _;

use super::{AdminState, Reply, json_status, text};
use crate::balance::BalanceError;

/// What a request's credentials allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Credentials {
    /// No `Authorization` header.
    None,
    /// A bearer token that matches.
    Valid,
    /// Something else.
    Invalid,
}

/// Checks the `Authorization` header against the configured token.
pub(super) fn credentials(state: &AdminState, headers: &HeaderMap) -> Credentials {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Credentials::None;
    };
    let Some(token) = &state.access.token else {
        return Credentials::Invalid;
    };
    // The scheme is case-insensitive (RFC 9110 §11.1).
    let presented = value
        .as_bytes()
        .split_at_checked(7)
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case(b"bearer "))
        .map(|(_, token)| token);
    match presented {
        Some(p) if bool::from(p.trim_ascii().ct_eq(token.as_bytes())) => Credentials::Valid,
        _ => Credentials::Invalid,
    }
}

/// 401 with the challenge a client needs.
pub(super) fn unauthorized(msg: &'static str) -> Reply {
    let mut r = text(StatusCode::UNAUTHORIZED, msg);
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        header::HeaderValue::from_static("Bearer realm=\"swarm-sticky admin\""),
    );
    r
}

#[derive(Serialize)]
struct Drained<'a> {
    service: &'a str,
    backend: &'a str,
    draining: bool,
}

#[derive(Serialize)]
struct Failure {
    error: String,
}

/// Serves a write action (`method` is not GET/HEAD).
pub(super) fn handle(state: &AdminState, method: &Method, path: &str, creds: Credentials) -> Reply {
    if state.access.token.is_none() {
        return text(
            StatusCode::FORBIDDEN,
            "write actions are disabled: start swarm-sticky with --admin-token-file\n",
        );
    }
    match creds {
        Credentials::Valid => {}
        Credentials::None => return unauthorized("this action needs Authorization: Bearer <token>\n"),
        Credentials::Invalid => return unauthorized("wrong token\n"),
    }
    if method != Method::POST {
        return text(StatusCode::METHOD_NOT_ALLOWED, "write actions are POST\n");
    }
    if path == "/api/reload" {
        return reload(state);
    }
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match parts.as_slice() {
        [
            "api",
            "services",
            service,
            "backends",
            backend,
            action @ ("drain" | "undrain"),
        ] => drain(state, service, backend, *action == "drain"),
        _ => text(StatusCode::NOT_FOUND, "no such action\n"),
    }
}

fn drain(state: &AdminState, service: &str, backend: &str, draining: bool) -> Reply {
    let Some(parts) = state.parts() else {
        return text(StatusCode::SERVICE_UNAVAILABLE, "starting\n");
    };
    match parts.balancer.set_draining(service, backend, draining) {
        Ok(()) => json_status(
            StatusCode::OK,
            &Drained {
                service,
                backend,
                draining,
            },
        ),
        Err(err @ (BalanceError::UnknownService(_) | BalanceError::UnknownBackend { .. })) => {
            json_status(StatusCode::NOT_FOUND, &Failure { error: err.to_string() })
        }
    }
}

fn reload(state: &AdminState) -> Reply {
    let Some(parts) = state.parts() else {
        return text(StatusCode::SERVICE_UNAVAILABLE, "starting\n");
    };
    tracing::info!("admin API: reloading the configuration");
    match (parts.reload)() {
        Ok(certificate_errors) => json_status(
            StatusCode::OK,
            &serde_json::json!({ "reloaded": true, "certificate_errors": certificate_errors }),
        ),
        Err(error) => json_status(
            StatusCode::UNPROCESSABLE_ENTITY,
            &Failure {
                error: error.to_string(),
            },
        ),
    }
}
