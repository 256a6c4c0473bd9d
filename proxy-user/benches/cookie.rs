//! Sticky cookie sign and verify (target: < 1 µs each), and the Cookie
//! header scan.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use http::{HeaderMap, HeaderValue, header::COOKIE};
use proxy_user::cookie::{Keyring, Sticky, find_cookie, unix_now};

fn cookie(c: &mut Criterion) {
    let ring = Keyring::from_secrets(&["bench-key-bench-key-bench-key-00"]);
    let sticky = Sticky {
        backend: "whoami-1".to_owned(),
        issued_at: unix_now(),
    };
    let value = ring.encode("web", &sticky).expect("valid identity");
    c.bench_function("cookie/sign", |b| {
        b.iter(|| ring.encode(black_box("web"), black_box(&sticky)))
    });
    c.bench_function("cookie/verify", |b| {
        b.iter(|| ring.decode(black_box("web"), black_box(value.as_bytes()), unix_now(), Some(86_400)))
    });
    let mut forged = value.clone().into_bytes();
    forged[10] ^= 1;
    c.bench_function("cookie/reject_forged", |b| {
        b.iter(|| ring.decode(black_box("web"), black_box(&forged), unix_now(), None))
    });
    let mut headers = HeaderMap::new();
    let header = format!("_ga=GA1.2.3; theme=dark; _d4bd0={value}; lang=en");
    headers.insert(COOKIE, HeaderValue::from_str(&header).expect("valid header"));
    c.bench_function("cookie/find_in_header", |b| {
        b.iter(|| find_cookie(black_box(&headers), "_d4bd0"))
    });
}

criterion_group!(benches, cookie);
criterion_main!(benches);
