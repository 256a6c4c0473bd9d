//! `swarm-sticky acme status`: what a running instance's `/api/status`
//! says of the certificates ACME manages, as a table (or the JSON).

use std::{fmt::Write as _, net::SocketAddr, time::Duration};

use super::ManagedStatus;

/// How long the admin API has to answer.
const TIMEOUT: Duration = Duration::from_secs(5);

/// Why the status could not be shown.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The admin API did not answer.
    #[error("{admin}: {reason} (is swarm-sticky running with this --admin?)")]
    Unreachable {
        /// The admin address.
        admin: SocketAddr,
        /// What happened.
        reason: String,
    },
    /// It answered something else than a status.
    #[error("{0}")]
    Answer(String),
    /// ACME is off on that instance.
    #[error("ACME is off on this instance (no --acme-email or --acme-directory)")]
    Off,
}

/// The managed certificates of the instance whose admin API is `admin`.
///
/// # Errors
/// When it cannot be asked, or ACME is off there.
pub async fn fetch(admin: SocketAddr) -> Result<Vec<ManagedStatus>, ReportError> {
    let unreachable = |reason: String| ReportError::Unreachable { admin, reason };
    let body = tokio::time::timeout(TIMEOUT, get(admin, "/api/status"))
        .await
        .map_err(|_| unreachable(format!("no answer within {TIMEOUT:?}")))?
        .map_err(|e| unreachable(e.to_string()))?;
    let status: serde_json::Value =
        serde_json::from_slice(&body).map_err(|e| ReportError::Answer(format!("/api/status: {e}")))?;
    let acme = status.get("tls").and_then(|t| t.get("acme")).ok_or(ReportError::Off)?;
    serde_json::from_value(acme.clone()).map_err(|e| ReportError::Answer(format!("/api/status tls.acme: {e}")))
}

async fn get(admin: SocketAddr, path: &str) -> Result<bytes::Bytes, crate::oneshot::GetError> {
    let stream = tokio::net::TcpStream::connect(admin).await?;
    crate::oneshot::get_ok(stream, &admin.to_string(), path).await
}

/// A time as the table shows it: RFC 3339, UTC.
fn when(unix: Option<i64>) -> String {
    match unix.and_then(|t| u64::try_from(t).ok()) {
        Some(t) => crate::access_log::rfc3339(std::time::UNIX_EPOCH + Duration::from_secs(t)),
        None => "-".to_owned(),
    }
}

/// The table `acme status` prints.
pub fn table(managed: &[ManagedStatus]) -> String {
    if managed.is_empty() {
        return "no certificate is asked for: no service declares ACME names \
                (swarm-sticky.tls.acme, Traefik certresolver/domains, v1 https entry point with a Host rule)\n"
            .to_owned();
    }
    let mut out = String::new();
    for m in managed {
        let _ = writeln!(out, "{}", m.names.join(", "));
        let _ = writeln!(out, "  state         {}", m.state.as_str());
        let _ = writeln!(out, "  serial        {}", m.serial.as_deref().unwrap_or("-"));
        let _ = writeln!(out, "  expires       {}", when(m.not_after));
        let _ = writeln!(out, "  next attempt  {}", when(m.next_attempt));
        let _ = writeln!(out, "  last attempt  {}", when(m.last_attempt));
        let _ = writeln!(out, "  ordered by    {}", m.holder.as_deref().unwrap_or("-"));
        if m.failures > 0 {
            let _ = writeln!(out, "  failures      {} in a row", m.failures);
        }
        if let Some(e) = &m.error {
            let _ = writeln!(out, "  last error    {e}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_dates() {
        assert_eq!(when(Some(1_798_761_599)), "2026-12-31T23:59:59.000Z");
        assert_eq!(when(None), "-");
    }
}
