//! Rotating the manager join token, from which the cookie key is derived.

use std::{collections::BTreeSet, net::SocketAddr, time::Duration};

use super::changes::{create, labelled, serving};
use crate::harness::{
    client::get_with,
    swarm::{Network, docker, ensure_swarm},
};

/// What `n` requests carrying `cookie` reach.
fn answers(addr: SocketAddr, cookie: &str, n: usize) -> BTreeSet<String> {
    (0..n)
        .filter_map(|_| get_with(addr, "/", Some(cookie)).ok()?.whoami())
        .collect()
}

/// `docker swarm join-token --rotate manager` while clients are pinned.
/// The running instance notices on its next resync and signs with the new
/// key: an old cookie still sticks (and is re-signed), a new cookie is
/// accepted by a second instance started after the rotation (which knows
/// only the new key, so it rejects the old cookie but accepts the
/// re-signed one). A second rotation drops the oldest key: the first
/// instance no longer honours the original cookie, while the one issued
/// after the first rotation still sticks.
#[test]
#[ignore = "needs root and a Docker engine; run `cargo xtask test`"]
fn a_rotated_join_token_keeps_sessions_for_one_rotation() {
    const ROTATED: &str = "manager join token was rotated";
    ensure_swarm();
    let net = Network::new("rotate");
    let _svc = create("rotate", &labelled(&net, "2", &[]));
    let (mut first, a) = serving("127.0.0.1:18191", "127.0.0.1:19201", 2);
    let r = get_with(a, "/", None).expect("first request");
    let (c0, pinned0) = (r.set_cookie().expect("cookie"), r.whoami().expect("whoami"));

    docker(&["swarm", "join-token", "--rotate", "-q", "manager"]);
    first.wait_for_lines(ROTATED, 1, Duration::from_secs(20));
    let r = get_with(a, "/", Some(&c0)).expect("the old cookie after one rotation");
    assert_eq!(
        r.whoami().as_deref(),
        Some(pinned0.as_str()),
        "one rotation moved the session"
    );
    let c0_resigned = r.set_cookie().expect("a cookie of the previous key is re-signed");
    let r = get_with(a, "/", None).expect("a new session");
    let (c1, pinned1) = (r.set_cookie().expect("cookie"), r.whoami().expect("whoami"));

    let (second, b) = serving("127.0.0.1:18192", "127.0.0.1:19202", 2);
    assert!(second.stderr().contains("derived from the swarm's manager join token"));
    for (cookie, pinned, what) in [(&c1, &pinned1, "new"), (&c0_resigned, &pinned0, "re-signed")] {
        let r = get_with(b, "/", Some(cookie)).expect("second instance");
        assert_eq!(r.whoami().as_deref(), Some(pinned.as_str()), "{what} cookie moved");
        assert!(
            r.set_cookie().is_none(),
            "the second instance rejected the {what} cookie"
        );
    }
    let r = get_with(b, "/", Some(&c0)).expect("second instance, old cookie");
    assert!(
        r.set_cookie().is_some(),
        "an instance started after the rotation accepted a cookie of the old key"
    );

    docker(&["swarm", "join-token", "--rotate", "-q", "manager"]);
    first.wait_for_lines(ROTATED, 2, Duration::from_secs(20));
    // Rejected, each request is a new pick (round robin over both tasks).
    assert_eq!(
        answers(a, &c0, 4).len(),
        2,
        "the original cookie still verifies after two rotations"
    );
    assert_eq!(
        answers(a, &c1, 4),
        BTreeSet::from([pinned1]),
        "a cookie of the previous key lost its session"
    );
}
