//! The routing decision: route by host and path, then either look up the
//! backend a valid cookie names or pick a new one by SWRR.

use std::{hint::black_box, net::SocketAddr};

use criterion::{Criterion, criterion_group, criterion_main};
use proxy_user::{
    balance::Balancer,
    cookie::{Keyring, MAX_VALUE_LEN, Sticky, unix_now},
    services::ServicesConfig,
};

fn routing(c: &mut Criterion) {
    let mut text = String::new();
    for (i, prefix) in ["/", "/api", "/api/v2", "/static", "/ws"].iter().enumerate() {
        text.push_str(&format!(
            "[[services]]\nname = 's{i}'\nrule = {{ path_prefix = '{prefix}' }}\nbackends = ["
        ));
        for j in 0..5 {
            text.push_str(&format!(
                "{{ name = 'b{j}', url = 'http://192.0.2.{}:80{j}{i}', weight = {} }},",
                j + 1,
                j + 1
            ));
        }
        text.push_str("]\n");
    }
    let balancer = Balancer::new(ServicesConfig::from_toml_str(&text).expect("valid config"));
    let ring = Keyring::from_secrets(&["bench-key-bench-key-bench-key-00"]);
    let value = ring
        .encode(
            "s2",
            &Sticky {
                backend: "b3".to_owned(),
                issued_at: unix_now(),
            },
        )
        .expect("valid identity");

    c.bench_function("routing/route", |b| {
        b.iter(|| {
            let table = balancer.table();
            table
                .route(black_box(Some("example.com")), black_box("/api/v2/users"))
                .map(|r| r.service.backends.len())
        })
    });
    c.bench_function("routing/sticky_hit", |b| {
        b.iter(|| {
            let table = balancer.table();
            let svc = table
                .route(Some("example.com"), black_box("/api/v2/users"))
                .expect("routed")
                .service;
            let mut buf = [0u8; MAX_VALUE_LEN];
            let identity = ring
                .verify_in(
                    &svc.config.name,
                    black_box(value.as_bytes()),
                    unix_now(),
                    None,
                    &mut buf,
                )
                .ok()?
                .identity;
            let backend = svc.backend(identity)?;
            balancer.is_up(backend).then_some(backend.addr)
        })
    });
    c.bench_function("routing/new_session_swrr", |b| {
        b.iter(|| {
            let table = balancer.table();
            let svc = table.route(None, black_box("/static/app.js")).expect("routed").service;
            balancer.pick(svc, &[]).map(|b| -> SocketAddr { b.addr })
        })
    });
}

criterion_group!(benches, routing);
criterion_main!(benches);
