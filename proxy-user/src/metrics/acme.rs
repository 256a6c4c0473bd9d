//! The ACME part of `/metrics`: orders that succeeded and failed, and per
//! managed certificate its state, failures in a row and expiry, so that an
//! alert can fire on a renewal that keeps failing well before the
//! certificate runs out.

use prometheus_client::encoding::DescriptorEncoder;

use super::{Labels, Scrape, counter, float, gauge};

impl Scrape {
    pub(super) fn encode_acme(&self, enc: &mut DescriptorEncoder<'_>) -> std::fmt::Result {
        let Some((issued, failed, managed)) = &self.acme else {
            return Ok(());
        };
        counter(
            enc,
            "acme_certificates_obtained",
            "Certificates obtained from the ACME CA.",
            &[(Vec::new(), *issued)],
        )?;
        counter(
            enc,
            "acme_order_failures",
            "ACME orders that failed (each is retried with back-off).",
            &[(Vec::new(), *failed)],
        )?;
        let names = |m: &crate::acme::ManagedStatus| -> Labels { vec![("names", m.names.join(","))] };
        let failing: Vec<(Labels, f64)> = managed
            .iter()
            .map(|m| (names(m), float(u64::from(m.failures))))
            .collect();
        gauge(
            enc,
            "acme_consecutive_failures",
            "Failed attempts in a row for each managed certificate (0 once it is obtained).",
            &failing,
        )?;
        let now = i64::try_from(crate::cookie::unix_now()).unwrap_or(i64::MAX);
        #[expect(clippy::cast_precision_loss, reason = "seconds as a gauge")]
        let expiry: Vec<(Labels, f64)> = managed
            .iter()
            .filter_map(|m| m.not_after.map(|t| (names(m), (t - now) as f64)))
            .collect();
        gauge(
            enc,
            "acme_certificate_expiry_seconds",
            "Seconds until each managed certificate expires (negative: expired).",
            &expiry,
        )
    }
}
