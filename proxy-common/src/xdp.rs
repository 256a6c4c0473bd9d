//! Types and the rate rule of the XDP program.
//!
//! The XDP program counts every TCP packet whose destination port has an
//! entry in `PORT_STATS` (user space creates one per published port) and,
//! when the guard is enabled, drops SYNs from IPv4 sources above a rate.

/// Key of `PORT_STATS`.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
#[repr(C)]
pub struct PortKey {
    /// Destination port, host byte order.
    pub port: u16,
    /// IP protocol ([`crate::IPPROTO_TCP`]).
    pub proto: u8,
    /// Always zero.
    pub _pad: u8,
}
const _: () = assert!(core::mem::size_of::<PortKey>() == 4);

impl PortKey {
    /// The key of a TCP port.
    #[inline(always)]
    pub const fn tcp(port: u16) -> Self {
        Self {
            port,
            proto: crate::IPPROTO_TCP,
            _pad: 0,
        }
    }
}

/// Value of `PORT_STATS` (one per CPU; user space sums them).
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct PortStats {
    /// Packets seen, including dropped SYNs.
    pub packets: u64,
    /// Bytes of those packets, from the Ethernet header on.
    pub bytes: u64,
    /// Packets with SYN set and ACK clear (connection attempts).
    pub syns: u64,
    /// SYNs dropped by the rate guard.
    pub syns_dropped: u64,
}
const _: () = assert!(core::mem::size_of::<PortStats>() == 32);

/// Value of the one-slot `SYN_GUARD` array.
///
/// The guard is GCRA, the virtual-scheduling form of a token bucket: a
/// source may send `burst` SYNs at once and one more every `interval_ns`.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct SynGuardConfig {
    /// Nanoseconds between SYNs at the sustained rate (`1e9 / rate`).
    pub interval_ns: u64,
    /// `burst * interval_ns`: how far ahead of now a source may run.
    pub tolerance_ns: u64,
    /// Non-zero when the guard is on.
    pub enabled: u32,
    /// Always zero.
    pub _pad: u32,
}
const _: () = assert!(core::mem::size_of::<SynGuardConfig>() == 24);

impl SynGuardConfig {
    /// Settings for `rate` SYNs per second with bursts of `burst`.
    /// A zero rate gives a disabled guard.
    pub const fn new(rate_per_sec: u32, burst: u32) -> Self {
        if rate_per_sec == 0 {
            return Self {
                interval_ns: 0,
                tolerance_ns: 0,
                enabled: 0,
                _pad: 0,
            };
        }
        let interval_ns = 1_000_000_000 / rate_per_sec as u64;
        let burst = if burst == 0 { 1 } else { burst };
        Self {
            interval_ns,
            tolerance_ns: interval_ns * burst as u64,
            enabled: 1,
            _pad: 0,
        }
    }
}

/// One GCRA step. `tat` is the source's theoretical arrival time (0 when
/// unseen). Returns the new `tat` when the SYN conforms, `None` when it is
/// over the rate and must be dropped (its `tat` stays unchanged).
#[inline(always)]
pub const fn gcra_admit(tat: u64, now_ns: u64, cfg: &SynGuardConfig) -> Option<u64> {
    let start = if tat > now_ns { tat } else { now_ns };
    let next = start + cfg.interval_ns;
    if next - now_ns > cfg.tolerance_ns {
        None
    } else {
        Some(next)
    }
}

#[cfg(feature = "user")]
mod pod {
    // SAFETY: each type is #[repr(C)], made of fixed-width integers with its
    // padding spelled out, so every bit pattern is valid and none is uninit.
    unsafe impl aya::Pod for super::PortKey {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::PortStats {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::SynGuardConfig {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_rate() {
        let cfg = SynGuardConfig::new(10, 3); // one per 100 ms, bursts of 3
        let mut tat = 0;
        let now = 1_000_000_000;
        for _ in 0..3 {
            tat = gcra_admit(tat, now, &cfg).expect("burst admitted");
        }
        assert_eq!(gcra_admit(tat, now, &cfg), None, "fourth SYN at once is over the rate");
        // 100 ms later one more conforms, and only one.
        let later = now + 100_000_000;
        tat = gcra_admit(tat, later, &cfg).expect("refilled");
        assert_eq!(gcra_admit(tat, later, &cfg), None);
        // After a long pause the full burst is back.
        let much_later = later + 10_000_000_000;
        for _ in 0..3 {
            tat = gcra_admit(tat, much_later, &cfg).expect("burst again");
        }
    }

    #[test]
    fn below_rate_always_passes() {
        let cfg = SynGuardConfig::new(100, 1);
        let mut tat = 0;
        for i in 1..1000u64 {
            tat = gcra_admit(tat, i * 20_000_000, &cfg).expect("50/s is below 100/s");
        }
    }

    #[test]
    fn zero_rate_is_disabled() {
        assert_eq!(SynGuardConfig::new(0, 5).enabled, 0);
        assert_eq!(SynGuardConfig::new(1, 0).tolerance_ns, 1_000_000_000);
    }
}
