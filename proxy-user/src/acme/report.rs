//! `swarm-sticky acme status`: what a running instance's `/api/status`
//! says of the certificates ACME manages, as a table (or the JSON).

use std::{fmt::Write as _, net::SocketAddr, time::Duration};

use bytes::Bytes;
use http::{Request, header};
use http_body_util::{BodyExt as _, Empty};
use hyper_util::rt::TokioIo;

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

async fn get(admin: SocketAddr, path: &str) -> Result<Bytes, Box<dyn std::error::Error + Send + Sync>> {
    let stream = tokio::net::TcpStream::connect(admin).await?;
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let req = Request::get(path)
        .header(header::HOST, admin.to_string())
        .body(Empty::<Bytes>::new())?;
    let resp = send.send_request(req).await?;
    let status = resp.status();
    let body = resp.into_body().collect().await?.to_bytes();
    if !status.is_success() {
        return Err(format!("{path}: {status}: {}", String::from_utf8_lossy(&body).trim()).into());
    }
    Ok(body)
}

/// A time as the table shows it: UTC, to the second.
fn when(unix: Option<i64>) -> String {
    let Some(t) = unix else { return "-".to_owned() };
    let days = t.div_euclid(86_400);
    let secs = t.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
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
        let _ = writeln!(out, "  state         {}", m.state);
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
        assert_eq!(when(Some(0)), "1970-01-01 00:00:00Z");
        assert_eq!(when(Some(1_798_761_599)), "2026-12-31 23:59:59Z");
        assert_eq!(when(Some(951_782_400)), "2000-02-29 00:00:00Z");
        assert_eq!(when(None), "-");
    }
}
