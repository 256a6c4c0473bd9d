//! DNS-01 through a command the operator provides, called the way lego's
//! `exec` provider calls its program, so that scripts written for it work
//! unchanged:
//!
//! ```text
//! HOOK present _acme-challenge.example.com. <value>
//! HOOK cleanup _acme-challenge.example.com. <value>
//! ```
//!
//! `present` must not return before the TXT record is published (the CA
//! looks it up right after). The command runs without a shell, with a
//! bounded time; its exit status decides, its output goes to the log.

use std::{path::PathBuf, process::Stdio, time::Duration};

/// How long one call may take: DNS providers' APIs can be slow, but a
/// hung script must not hold an order forever.
pub const HOOK_TIMEOUT: Duration = Duration::from_secs(120);

/// The DNS-01 hook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsHook {
    /// The program (`--acme-dns-hook`).
    pub program: PathBuf,
}

/// Why a hook call failed.
#[derive(Debug, thiserror::Error)]
pub enum HookError {
    /// The program could not be started.
    #[error("DNS hook {program}: cannot start: {source}")]
    Start {
        /// The program.
        program: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// It ran too long and was killed.
    #[error("DNS hook {program} {action}: no answer within {timeout:?}")]
    Timeout {
        /// The program.
        program: String,
        /// `present` or `cleanup`.
        action: &'static str,
        /// The limit.
        timeout: Duration,
    },
    /// It failed.
    #[error("DNS hook {program} {action} {fqdn}: {status}: {output}")]
    Failed {
        /// The program.
        program: String,
        /// `present` or `cleanup`.
        action: &'static str,
        /// The record's name.
        fqdn: String,
        /// Its exit status.
        status: std::process::ExitStatus,
        /// The end of what it wrote.
        output: String,
    },
}

/// The TXT record's name for `identifier` (a wildcard's is its parent's),
/// with the final dot lego passes.
pub fn record_name(identifier: &str) -> String {
    let name = identifier.strip_prefix("*.").unwrap_or(identifier);
    format!("_acme-challenge.{}.", name.trim_end_matches('.'))
}

impl DnsHook {
    /// Publishes `value` as a TXT record of `fqdn`.
    ///
    /// # Errors
    /// When the program cannot start, times out or fails.
    pub async fn present(&self, fqdn: &str, value: &str) -> Result<(), HookError> {
        self.call("present", fqdn, value).await
    }

    /// Removes what [`present`](Self::present) published.
    ///
    /// # Errors
    /// As `present`.
    pub async fn cleanup(&self, fqdn: &str, value: &str) -> Result<(), HookError> {
        self.call("cleanup", fqdn, value).await
    }

    async fn call(&self, action: &'static str, fqdn: &str, value: &str) -> Result<(), HookError> {
        let program = self.program.display().to_string();
        let child = tokio::process::Command::new(&self.program)
            .args([action, fqdn, value])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| HookError::Start {
                program: program.clone(),
                source,
            })?;
        let out = tokio::time::timeout(HOOK_TIMEOUT, child.wait_with_output())
            .await
            .map_err(|_| HookError::Timeout {
                program: program.clone(),
                action,
                timeout: HOOK_TIMEOUT,
            })?
            .map_err(|source| HookError::Start {
                program: program.clone(),
                source,
            })?;
        let mut output = String::from_utf8_lossy(&out.stderr).into_owned();
        output.push_str(&String::from_utf8_lossy(&out.stdout));
        let output = tail(output.trim(), 400);
        if out.status.success() {
            tracing::debug!(hook = %program, action, fqdn, output, "DNS hook done");
            Ok(())
        } else {
            Err(HookError::Failed {
                program,
                action,
                fqdn: fqdn.to_owned(),
                status: out.status,
                output,
            })
        }
    }
}

/// The last `max` bytes of `s`, at a character boundary.
fn tail(s: &str, max: usize) -> String {
    let mut start = s.len().saturating_sub(max);
    while !s.is_char_boundary(start) {
        start += 1;
    }
    s[start..].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_names_as_lego_passes_them() {
        assert_eq!(record_name("a.example.com"), "_acme-challenge.a.example.com.");
        assert_eq!(record_name("*.example.com"), "_acme-challenge.example.com.");
    }

    #[tokio::test]
    async fn a_failing_hook_says_what_it_printed() {
        let hook = DnsHook {
            program: "/bin/sh".into(),
        };
        // `sh present …` reads the file `present`: there is none.
        let err = hook.present("_acme-challenge.a.test.", "v").await.unwrap_err();
        assert!(matches!(err, HookError::Failed { .. }), "{err}");
        assert!(err.to_string().contains("present"), "{err}");
        let missing = DnsHook {
            program: "/nonexistent/hook".into(),
        };
        assert!(matches!(missing.present("x.", "v").await, Err(HookError::Start { .. })));
    }
}
