//! The sticky decision without sockets: cookies that pin, fail over,
//! migrate, get rejected, renewed, re-signed, or move to their slot.

use std::{net::SocketAddr, sync::Arc};

use http::{HeaderMap, HeaderValue, header::COOKIE};

use super::*;
use crate::services::ServicesConfig;

/// The balancer and keys a request is decided with.
struct Fixture {
    balancer: Arc<Balancer>,
    keyring: arc_swap::ArcSwap<Keyring>,
}

fn inner() -> Fixture {
    let backends: Vec<(String, SocketAddr)> = vec![
        ("a".into(), "192.0.2.1:8000".parse().unwrap()),
        ("b".into(), "192.0.2.2:8000".parse().unwrap()),
    ];
    Fixture {
        balancer: Arc::new(Balancer::new(ServicesConfig::single("web", &backends))),
        keyring: arc_swap::ArcSwap::from_pointee(Keyring::from_secrets(&["unit-test-key-unit-test-key"])),
    }
}

/// The decision as a tuple: backend, decision, whether a cookie is set.
fn sticky_backend(inner: &Fixture, svc: &Service, headers: &HeaderMap) -> (Option<Arc<Backend>>, Decision, bool) {
    let a = affinity(&inner.balancer, &inner.keyring.load(), svc, headers);
    (a.backend, a.decision, a.set_cookie)
}

fn headers_with_cookie(name: &str, value: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(COOKIE, HeaderValue::from_str(&format!("x=1; {name}={value}")).unwrap());
    h
}

/// A valid cookie naming a live backend pins it without a new cookie; a
/// down backend or a forged value leads to a new pick and a new cookie.
#[test]
fn sticky_decision() {
    let inner = inner();
    let table = inner.balancer.table();
    let svc = &table.services[0];
    let name = svc.config.cookie.name.clone();
    let value = inner
        .keyring
        .load()
        .encode(
            "web",
            &Sticky {
                backend: "b".into(),
                issued_at: cookie::unix_now(),
            },
        )
        .unwrap();
    let (b, decision, new) = sticky_backend(&inner, svc, &headers_with_cookie(&name, &value));
    assert_eq!((b.map(|b| b.name.clone()), new), (Some("b".into()), false));
    assert_eq!(decision, Decision::Hit);

    let unknown = inner
        .keyring
        .load()
        .encode(
            "web",
            &Sticky {
                backend: "zz".into(),
                issued_at: cookie::unix_now(),
            },
        )
        .unwrap();
    assert!(matches!(
        sticky_backend(&inner, svc, &headers_with_cookie(&name, &unknown)),
        (None, Decision::Failover, true)
    ));

    let (b, decision, new) = sticky_backend(&inner, svc, &headers_with_cookie(&name, "http://192.0.2.1:8000"));
    assert_eq!(decision, Decision::Migrated);
    assert_eq!(
        (b.map(|b| b.name.clone()), new),
        (Some("a".into()), true),
        "Traefik v1 cookie of a current backend"
    );
    assert!(matches!(
        sticky_backend(&inner, svc, &headers_with_cookie(&name, "http://127.0.0.1:22")),
        (None, Decision::Rejected, true)
    ));
    assert!(matches!(
        sticky_backend(&inner, svc, &HeaderMap::new()),
        (None, Decision::New, true)
    ));
    // A character inside the tag (not the last, whose low bits must stay
    // zero in canonical base64): well-formed, but the signature fails.
    let at = value.len() - 3;
    let swapped = if &value[at..=at] == "A" { "B" } else { "A" };
    let forged = format!("{}{swapped}{}", &value[..at], &value[at + 1..]);
    assert!(matches!(
        sticky_backend(&inner, svc, &headers_with_cookie(&name, &forged)),
        (None, Decision::Rejected, true)
    ));
    let rejected: Vec<_> = RejectReason::ALL
        .into_iter()
        .map(|r| (r, svc.stats.rejected.get(r.index())))
        .filter(|(_, n)| *n > 0)
        .collect();
    assert_eq!(
        rejected,
        [(RejectReason::Malformed, 1), (RejectReason::Forged, 1)],
        "the plain URL of no backend is malformed, the edited value forged"
    );

    for _ in 0..svc.config.passive.failures {
        inner.balancer.record_failure(svc, svc.backend("b").unwrap());
    }
    assert!(
        matches!(
            sticky_backend(&inner, svc, &headers_with_cookie(&name, &value)),
            (None, Decision::Failover, true)
        ),
        "b is down"
    );
}

/// A cookie signed by the previous key still pins its backend and is
/// re-signed (a new cookie), so it outlives the next rotation as well.
#[test]
fn a_cookie_of_the_previous_key_is_re_signed() {
    let inner = inner();
    let table = inner.balancer.table();
    let svc = &table.services[0];
    let name = svc.config.cookie.name.clone();
    let sticky = Sticky {
        backend: "b".into(),
        issued_at: cookie::unix_now(),
    };
    let old = inner.keyring.load().encode("web", &sticky).unwrap();
    let rotated = inner.keyring.load().rotate_to(b"the-next-cluster-key-0123456789");
    inner.keyring.store(Arc::new(rotated));
    let (b, decision, new) = sticky_backend(&inner, svc, &headers_with_cookie(&name, &old));
    assert_eq!((b.map(|b| b.name.clone()), new), (Some("b".into()), true));
    assert_eq!(decision, Decision::Hit, "a re-signed cookie is still a hit");
    let current = inner.keyring.load().encode("web", &sticky).unwrap();
    let (b, _, new) = sticky_backend(&inner, svc, &headers_with_cookie(&name, &current));
    assert_eq!((b.map(|b| b.name.clone()), new), (Some("b".into()), false));
}

/// With a Max-Age, a valid cookie past half its life is renewed in place.
#[test]
fn cookie_renewal() {
    let inner = inner();
    let mut cfg = ServicesConfig::single(
        "web",
        &[
            ("a".into(), "192.0.2.1:8000".parse().unwrap()),
            ("b".into(), "192.0.2.2:8000".parse().unwrap()),
        ],
    );
    cfg.services[0].cookie.max_age = Some(std::time::Duration::from_secs(100));
    inner.balancer.replace(cfg);
    let table = inner.balancer.table();
    let svc = &table.services[0];
    let name = svc.config.cookie.name.clone();
    let young = inner
        .keyring
        .load()
        .encode(
            "web",
            &Sticky {
                backend: "a".into(),
                issued_at: cookie::unix_now() - 10,
            },
        )
        .unwrap();
    let old = inner
        .keyring
        .load()
        .encode(
            "web",
            &Sticky {
                backend: "a".into(),
                issued_at: cookie::unix_now() - 60,
            },
        )
        .unwrap();
    let (b, _, renew) = sticky_backend(&inner, svc, &headers_with_cookie(&name, &young));
    assert_eq!((b.map(|b| b.name.clone()), renew), (Some("a".into()), false));
    let (b, _, renew) = sticky_backend(&inner, svc, &headers_with_cookie(&name, &old));
    assert_eq!((b.map(|b| b.name.clone()), renew), (Some("a".into()), true));
}

/// With slot affinity (discovered tasks), a cookie naming a task that a
/// rolling update replaced moves to the task now in the same slot, with a
/// new cookie; without it, the same cookie gets a normal pick.
#[test]
fn a_replaced_task_hands_its_sessions_to_its_slot() {
    let backends: Vec<(String, SocketAddr)> = vec![
        ("newtask.1".into(), "192.0.2.1:8000".parse().unwrap()),
        ("other.2".into(), "192.0.2.2:8000".parse().unwrap()),
    ];
    let mut cfg = ServicesConfig::single("web", &backends);
    cfg.services[0].slot_affinity = true;
    let inner = Fixture {
        balancer: Arc::new(Balancer::new(cfg)),
        keyring: arc_swap::ArcSwap::from_pointee(Keyring::from_secrets(&["unit-test-key-unit-test-key"])),
    };
    let table = inner.balancer.table();
    let svc = &table.services[0];
    let sticky = Sticky {
        backend: "oldtask.1".into(),
        issued_at: cookie::unix_now(),
    };
    let value = inner.keyring.load().encode("web", &sticky).unwrap();
    let headers = headers_with_cookie(&svc.config.cookie.name, &value);
    let (b, _, new) = sticky_backend(&inner, svc, &headers);
    assert_eq!((b.map(|b| b.name.clone()), new), (Some("newtask.1".into()), true));

    let (b, _, new) = sticky_backend(&self::inner(), &self::inner().balancer.table().services[0], &headers);
    assert!(
        b.is_none() && new,
        "without slot affinity a gone backend means a normal pick"
    );
}

/// A `same-slot` service whose backends are `names`, with `waiting` slots,
/// and the headers of a cookie naming `cookie_for`.
fn slot_fixture(names: &[&str], waiting: &[&str], cookie_for: &str) -> (Fixture, HeaderMap) {
    let backends: Vec<(String, SocketAddr)> = names
        .iter()
        .enumerate()
        .map(|(i, n)| {
            (
                (*n).to_owned(),
                SocketAddr::from(([192, 0, 2, 1], 8000 + u16::try_from(i).unwrap())),
            )
        })
        .collect();
    let mut cfg = ServicesConfig::single("web", &backends);
    cfg.services[0].slot_affinity = true;
    cfg.services[0].waiting_slots = waiting.iter().map(|s| (*s).to_owned()).collect();
    let f = Fixture {
        balancer: Arc::new(Balancer::new(cfg)),
        keyring: arc_swap::ArcSwap::from_pointee(Keyring::from_secrets(&["unit-test-key-unit-test-key"])),
    };
    let sticky = Sticky {
        backend: cookie_for.into(),
        issued_at: cookie::unix_now(),
    };
    let value = f.keyring.load().encode("web", &sticky).unwrap();
    let name = f.balancer.table().services[0].config.cookie.name.clone();
    (f, headers_with_cookie(&name, &value))
}

/// A stop-first rolling update between its steps: the cookie's task is
/// gone and its slot's next task is not running yet. Another backend
/// serves, always the same one, and the cookie is left alone (it still
/// names slot 1); once the slot's task is in the table, the client moves
/// there with a new cookie.
#[test]
fn a_waiting_slot_is_served_by_a_stand_in_and_keeps_the_cookie() {
    let (f, headers) = slot_fixture(&["t2.2", "t3.3"], &["1"], "old.1");
    let table = f.balancer.table();
    let svc = &table.services[0];
    let (b, decision, set_cookie) = sticky_backend(&f, svc, &headers);
    let stand_in = b.expect("a stand-in").name.clone();
    assert_eq!((decision, set_cookie), (Decision::StandIn, false));
    for _ in 0..10 {
        let (again, _, _) = sticky_backend(&f, svc, &headers);
        assert_eq!(
            again.map(|b| b.name.clone()),
            Some(stand_in.clone()),
            "the stand-in changed"
        );
    }

    let (f, headers) = slot_fixture(&["new.1", "t2.2", "t3.3"], &[], "old.1");
    let (b, decision, set_cookie) = sticky_backend(&f, &f.balancer.table().services[0], &headers);
    assert_eq!(b.map(|b| b.name.clone()).as_deref(), Some("new.1"));
    assert_eq!((decision, set_cookie), (Decision::Failover, true));

    // A slot that is not waiting (scaled away) is a plain failover.
    let (f, headers) = slot_fixture(&["t2.2", "t3.3"], &[], "old.1");
    let (b, decision, set_cookie) = sticky_backend(&f, &f.balancer.table().services[0], &headers);
    assert_eq!((b.is_none(), decision, set_cookie), (true, Decision::Failover, true));
}

/// A backend discovery holds down (its node is down) is not used for the
/// client it is pinned to, nor for new sessions: the client fails over at
/// once, to its slot's running task when there is one.
#[test]
fn a_backend_held_down_fails_its_clients_over_at_once() {
    let backends: Vec<(String, SocketAddr)> = vec![
        ("lost.1".into(), "192.0.2.1:8000".parse().unwrap()),
        ("next.1".into(), "192.0.2.2:8000".parse().unwrap()),
        ("t2.2".into(), "192.0.2.3:8000".parse().unwrap()),
    ];
    let mut cfg = ServicesConfig::single("web", &backends);
    cfg.services[0].backends[0].down = Some("its node node3 is down".into());
    for slot_affinity in [false, true] {
        cfg.services[0].slot_affinity = slot_affinity;
        let f = Fixture {
            balancer: Arc::new(Balancer::new(cfg.clone())),
            keyring: arc_swap::ArcSwap::from_pointee(Keyring::from_secrets(&["unit-test-key-unit-test-key"])),
        };
        let table = f.balancer.table();
        let svc = &table.services[0];
        assert!(!f.balancer.is_up(&svc.backends[0]));
        for _ in 0..6 {
            let picked = f.balancer.pick(svc, &[]).expect("a pick");
            assert_ne!(picked.name, "lost.1", "a new session on a backend held down");
        }
        let value = f
            .keyring
            .load()
            .encode(
                "web",
                &Sticky {
                    backend: "lost.1".into(),
                    issued_at: cookie::unix_now(),
                },
            )
            .unwrap();
        let headers = headers_with_cookie(&svc.config.cookie.name, &value);
        let (b, decision, set_cookie) = sticky_backend(&f, svc, &headers);
        assert_eq!((decision, set_cookie), (Decision::Failover, true));
        let expected = slot_affinity.then(|| "next.1".to_owned());
        assert_eq!(b.map(|b| b.name.clone()), expected, "slot affinity {slot_affinity}");
    }
}
