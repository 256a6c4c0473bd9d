//! `Cookie` and `Set-Cookie` headers: a byte scan for our cookie (no
//! allocation, no full parse), its removal from the upstream request (the
//! other cookies stay, like HAProxy's `indirect`), and the `Set-Cookie`
//! value with the service's attributes.

use http::{HeaderMap, HeaderValue, header::COOKIE};

use crate::services::{CookieConfig, SameSite, SecureMode};

/// Splits one `Cookie` header value into `(name, value)` pairs.
fn pairs(header: &[u8]) -> impl Iterator<Item = (&[u8], &[u8])> {
    header.split(|&b| b == b';').filter_map(|part| {
        let part = part.trim_ascii();
        let eq = part.iter().position(|&b| b == b'=')?;
        let (name, value) = (part[..eq].trim_ascii(), part[eq + 1..].trim_ascii());
        // RFC 6265 allows a quoted value.
        let value = value
            .strip_prefix(b"\"")
            .and_then(|v| v.strip_suffix(b"\""))
            .unwrap_or(value);
        Some((name, value))
    })
}

/// The value of the first cookie called `name` in any `Cookie` header.
pub fn find_cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h [u8]> {
    headers
        .get_all(COOKIE)
        .iter()
        .find_map(|h| pairs(h.as_bytes()).find(|(n, _)| *n == name.as_bytes()).map(|(_, v)| v))
}

/// Removes every cookie called `name`, keeping the others (and merging
/// several `Cookie` headers into one, as HTTP/1.1 upstreams expect).
pub fn remove_cookie(headers: &mut HeaderMap, name: &str) {
    let values = headers.get_all(COOKIE);
    let mut iter = values.iter();
    let Some(first) = iter.next() else { return };
    let several = iter.next().is_some();
    let ours = |h: &HeaderValue| pairs(h.as_bytes()).any(|(n, _)| n == name.as_bytes());
    if !several && !ours(first) {
        return;
    }
    let mut out: Vec<u8> = Vec::new();
    for h in headers.get_all(COOKIE) {
        for part in h.as_bytes().split(|&b| b == b';') {
            let trimmed = part.trim_ascii();
            if trimmed.is_empty() {
                continue;
            }
            let pname = trimmed.split(|&b| b == b'=').next().unwrap_or_default().trim_ascii();
            if pname == name.as_bytes() {
                continue;
            }
            if !out.is_empty() {
                out.extend_from_slice(b"; ");
            }
            out.extend_from_slice(trimmed);
        }
    }
    headers.remove(COOKIE);
    if !out.is_empty() {
        // The bytes came from valid header values, minus some pairs.
        if let Ok(v) = HeaderValue::from_bytes(&out) {
            headers.insert(COOKIE, v);
        }
    }
}

/// The `Set-Cookie` value for `value` under `cfg`; `secure_request` says
/// whether the request came over TLS (or a trusted `X-Forwarded-Proto:
/// https`), which decides `Secure` in auto mode. `SameSite=None` always
/// gets `Secure` (browsers reject it otherwise). `None` only for a
/// configuration that was not validated (every source of services goes
/// through `services::validate_service`).
pub fn set_cookie_value(cfg: &CookieConfig, value: &str, secure_request: bool) -> Option<HeaderValue> {
    let secure = match cfg.secure {
        SecureMode::Always => true,
        SecureMode::Never => false,
        SecureMode::Auto => secure_request,
    } || cfg.same_site == SameSite::None;
    let mut s = String::with_capacity(cfg.name.len() + value.len() + 64);
    s.push_str(&cfg.name);
    s.push('=');
    s.push_str(value);
    s.push_str("; Path=");
    s.push_str(&cfg.path);
    if let Some(d) = &cfg.domain {
        s.push_str("; Domain=");
        s.push_str(d);
    }
    if let Some(age) = cfg.max_age {
        s.push_str("; Max-Age=");
        s.push_str(&age.as_secs().to_string());
    }
    if cfg.http_only {
        s.push_str("; HttpOnly");
    }
    s.push_str("; SameSite=");
    s.push_str(cfg.same_site.as_str());
    if secure {
        s.push_str("; Secure");
    }
    // Name, path and domain are validated (visible ASCII) and the value is
    // base64url, so this only fails for a config that bypassed validation.
    HeaderValue::from_str(&s).ok()
}
