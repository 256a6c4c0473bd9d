//! Fuzzes the sticky cookie decoder and the Cookie header scan: no input
//! may panic, and no input that the fuzzer can produce without the key may
//! verify. Run with `cargo +nightly fuzz run cookie_decode` (from `fuzz/`;
//! set SWARM_STICKY_SKIP_EBPF=1 to skip the eBPF object).
#![no_main]

use libfuzzer_sys::fuzz_target;
use proxy_user::cookie::{Keyring, find_cookie, peek};

fuzz_target!(|data: &[u8]| {
    let ring = Keyring::from_secrets(&["fuzz-key-fuzz-key-fuzz-key"]);
    assert!(ring.decode("svc", data, 1_700_000_000, Some(3600)).is_err());
    // The support tool's unverified read must not panic either.
    let _ = peek(data);
    if let Ok(v) = http::HeaderValue::from_bytes(data) {
        let mut h = http::HeaderMap::new();
        h.insert(http::header::COOKIE, v);
        if let Some(value) = find_cookie(&h, "_abcde") {
            let _ = ring.decode("svc", value, 1_700_000_000, None);
        }
    }
});
