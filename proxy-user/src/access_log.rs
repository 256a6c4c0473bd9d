//! The access log: one line per request, off by default
//! (`--access-log json|common`, to stdout or `--access-log-file`).
//!
//! Lines are written whole with one `write` each: on a file opened for
//! appending that keeps lines from several workers (and from two
//! processes during a hand-over) from interleaving. Writing is synchronous
//! on the worker thread, as in NGINX; a log destination that blocks slows
//! the proxy, so point it at a file or journald, not at a stalled pipe.
//! Cookie values are never logged. What the client sent (host, path) is
//! written with every byte outside printable ASCII as `\xHH` (and `\` as
//! `\\`), so a line shows exactly what arrived and cannot carry terminal
//! controls or bidirectional-text overrides into a viewer.

use std::{
    borrow::Cow,
    fs::File,
    io::Write as _,
    net::SocketAddr,
    path::{Path, PathBuf},
    time::{Duration, SystemTime},
};

use serde::Serialize;

use crate::sticky::Decision;

/// Line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessLogFormat {
    /// No access log (the default).
    Off,
    /// One JSON object per line.
    Json,
    /// NCSA common log format, followed by service, backend, sticky
    /// decision and duration.
    Common,
}

impl std::str::FromStr for AccessLogFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "off" => Ok(Self::Off),
            "json" => Ok(Self::Json),
            "common" => Ok(Self::Common),
            other => Err(format!("{other:?} is not one of off, json, common")),
        }
    }
}

/// Where the access log goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessLogConfig {
    /// The line format (`Off`: no log).
    pub format: AccessLogFormat,
    /// Append to this file; stdout without one.
    pub file: Option<PathBuf>,
}

/// Why the access log cannot be opened.
#[derive(Debug, thiserror::Error)]
#[error("--access-log-file {path}: {source}")]
pub struct AccessLogError {
    path: PathBuf,
    #[source]
    source: std::io::Error,
}

enum Sink {
    Stdout,
    File(File),
}

/// An open access log.
pub struct AccessLog {
    format: AccessLogFormat,
    sink: Sink,
}

impl std::fmt::Debug for AccessLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessLog")
            .field("format", &self.format)
            .finish_non_exhaustive()
    }
}

/// What one line says.
#[derive(Debug, Serialize)]
pub struct Entry<'a> {
    /// When the request head arrived (RFC 3339, UTC, milliseconds).
    pub time: String,
    /// The client's address.
    pub client: SocketAddr,
    /// Request method.
    pub method: &'a str,
    /// Host header (or the URI's authority), if any.
    pub host: Option<&'a str>,
    /// Path and query.
    pub path: &'a str,
    /// HTTP version, e.g. `HTTP/1.1`.
    pub protocol: &'a str,
    /// The routed service, if any.
    pub service: Option<&'a str>,
    /// The backend identity that answered, if any.
    pub backend: Option<&'a str>,
    /// The sticky decision, if a service was routed.
    pub decision: Option<Decision>,
    /// Response status.
    pub status: u16,
    /// Response Content-Length when known.
    pub bytes: Option<u64>,
    /// From the request head to the response head, in milliseconds.
    pub duration_ms: f64,
}

impl AccessLog {
    /// Opens the log `cfg` describes; `None` for [`AccessLogFormat::Off`].
    ///
    /// # Errors
    /// When the file cannot be opened for appending.
    pub fn open(cfg: &AccessLogConfig) -> Result<Option<Self>, AccessLogError> {
        Self::open_as(cfg.format, cfg.file.as_deref())
    }

    fn open_as(format: AccessLogFormat, file: Option<&Path>) -> Result<Option<Self>, AccessLogError> {
        if format == AccessLogFormat::Off {
            return Ok(None);
        }
        let sink = match file {
            None => Sink::Stdout,
            Some(path) => Sink::File(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .map_err(|source| AccessLogError {
                        path: path.to_owned(),
                        source,
                    })?,
            ),
        };
        Ok(Some(Self { format, sink }))
    }

    /// Writes one line. A failed write is reported at debug level only:
    /// the request it describes has been answered already.
    pub fn write(&self, entry: &Entry<'_>) {
        let host = entry.host.map(escape);
        let path = escape(entry.path);
        let entry = Entry {
            time: entry.time.clone(),
            host: host.as_deref(),
            path: &path,
            ..*entry
        };
        let mut line = match self.format {
            AccessLogFormat::Json => serde_json::to_string(&entry).unwrap_or_default(),
            AccessLogFormat::Common | AccessLogFormat::Off => common(&entry),
        };
        line.push('\n');
        let result = match &self.sink {
            Sink::Stdout => std::io::stdout().lock().write_all(line.as_bytes()),
            Sink::File(f) => (&*f).write_all(line.as_bytes()),
        };
        if let Err(err) = result {
            tracing::debug!(error = %err, "access log write failed");
        }
    }
}

/// `s` with bytes outside printable ASCII as `\xHH`, and `\` doubled.
pub fn escape(s: &str) -> Cow<'_, str> {
    if s.bytes().all(|b| (0x20..0x7f).contains(&b) && b != b'\\') {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for b in s.bytes() {
        match b {
            b'\\' => out.push_str("\\\\"),
            0x20..0x7f => out.push(char::from(b)),
            _ => out.push_str(&format!("\\x{b:02x}")),
        }
    }
    Cow::Owned(out)
}

/// `client - - [time] "METHOD path PROTO" status bytes "service" "backend" decision ms`.
fn common(e: &Entry<'_>) -> String {
    let dash = |v: Option<&str>| v.map_or_else(|| "-".to_owned(), |s| s.replace('"', "\\\""));
    format!(
        "{} - - [{}] \"{} {} {}\" {} {} \"{}\" \"{}\" {} {:.3}",
        e.client.ip(),
        clf_time(&e.time),
        e.method,
        e.path.replace('"', "%22"),
        e.protocol,
        e.status,
        e.bytes.map_or_else(|| "-".to_owned(), |b| b.to_string()),
        dash(e.service),
        dash(e.backend),
        e.decision.map_or("-", Decision::as_str),
        e.duration_ms,
    )
}

/// `2026-12-01T13:05:09.123Z` → `01/Dec/2026:13:05:09 +0000`.
fn clf_time(rfc3339: &str) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let (Some(y), Some(m), Some(d), Some(t)) = (
        rfc3339.get(0..4),
        rfc3339.get(5..7).and_then(|m| m.parse::<usize>().ok()),
        rfc3339.get(8..10),
        rfc3339.get(11..19),
    ) else {
        return rfc3339.to_owned();
    };
    let month = MONTHS.get(m.wrapping_sub(1)).copied().unwrap_or("???");
    format!("{d}/{month}/{y}:{t} +0000")
}

/// `t` as RFC 3339 in UTC with milliseconds.
pub fn rfc3339(t: SystemTime) -> String {
    let since = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or(Duration::ZERO);
    let secs = since.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(i64::try_from(days).unwrap_or(0));
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        since.subsec_millis()
    )
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian
/// calendar (the well-known era-based conversion).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, u32::try_from(m).unwrap_or(1), u32::try_from(d).unwrap_or(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_convert() {
        assert_eq!(rfc3339(SystemTime::UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let t = SystemTime::UNIX_EPOCH + Duration::from_millis(1_796_130_309_123);
        assert_eq!(rfc3339(t), "2026-12-01T13:05:09.123Z");
        // A leap day.
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(rfc3339(t), "2000-02-29T00:00:00.000Z");
        assert_eq!(clf_time("2026-12-01T13:05:09.123Z"), "01/Dec/2026:13:05:09 +0000");
    }

    fn entry() -> Entry<'static> {
        Entry {
            time: "2026-12-01T13:05:09.123Z".into(),
            client: "192.0.2.7:5555".parse().unwrap(),
            method: "GET",
            host: Some("a.example"),
            path: "/x?y=\"1\"",
            protocol: "HTTP/1.1",
            service: Some("web"),
            backend: Some("web-1"),
            decision: Some(Decision::Hit),
            status: 200,
            bytes: Some(12),
            duration_ms: 1.25,
        }
    }

    #[test]
    fn common_format_has_every_field() {
        assert_eq!(
            common(&entry()),
            "192.0.2.7 - - [01/Dec/2026:13:05:09 +0000] \"GET /x?y=%221%22 HTTP/1.1\" 200 12 \"web\" \"web-1\" hit 1.250"
        );
    }

    #[test]
    fn client_bytes_are_escaped() {
        assert_eq!(escape("/plain?a=1"), "/plain?a=1");
        assert_eq!(escape("/a\u{202e}b"), "/a\\xe2\\x80\\xaeb", "a bidi override");
        assert_eq!(escape("a\x1b[31m\n"), "a\\x1b[31m\\x0a");
        assert_eq!(escape("a\\b"), "a\\\\b");
    }

    #[test]
    fn json_format_is_one_object() {
        let v: serde_json::Value = serde_json::from_str(&serde_json::to_string(&entry()).unwrap()).unwrap();
        assert_eq!(v["client"], "192.0.2.7:5555");
        assert_eq!(v["decision"], "hit");
        assert_eq!(v["status"], 200);
        assert_eq!(v["path"], "/x?y=\"1\"");
    }
}
