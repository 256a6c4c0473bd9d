//! Codec, keyring, header scan and Set-Cookie attributes.

use std::time::Duration;

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use http::{HeaderMap, HeaderValue, header::COOKIE};
use proptest::prelude::*;

use super::*;
use crate::services::{CookieConfig, SameSite, SecureMode};

fn ring() -> Keyring {
    Keyring::from_secrets(&["0123456789abcdef0123456789abcdef"])
}

fn sticky(b: &str) -> Sticky {
    Sticky {
        backend: b.to_owned(),
        issued_at: 1_700_000_000,
    }
}

/// A signed value decodes back to what was signed, and holds no address.
#[test]
fn round_trip() {
    let k = ring();
    let v = k.encode("web", &sticky("whoami-1")).unwrap();
    assert!(
        v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
        "{v}"
    );
    assert_eq!(
        k.decode("web", v.as_bytes(), 1_700_000_001, None).unwrap(),
        sticky("whoami-1")
    );
}

/// A cookie of one service is rejected by another.
#[test]
fn bound_to_the_service() {
    let k = ring();
    let v = k.encode("web", &sticky("a")).unwrap();
    assert_eq!(
        k.decode("api", v.as_bytes(), 1_700_000_001, None),
        Err(CookieError::BadTag)
    );
}

/// Rotation: a new first key signs, the previous one still verifies, a
/// dropped key no longer does.
#[test]
fn rotation() {
    let old = Keyring::from_secrets(&["old-key-old-key-old-key"]);
    let v = old.encode("s", &sticky("a")).unwrap();
    let rotated = Keyring::from_secrets(&["new-key-new-key-new-key", "old-key-old-key-old-key"]);
    assert!(rotated.decode("s", v.as_bytes(), 1_700_000_000, None).is_ok());
    let v2 = rotated.encode("s", &sticky("a")).unwrap();
    assert_eq!(
        old.decode("s", v2.as_bytes(), 1_700_000_000, None),
        Err(CookieError::UnknownKey)
    );
}

/// The cluster key's rotation keeps exactly the previous key: one
/// rotation keeps a cookie, a second one drops it; `verify_in` says which
/// cookies were signed by an older key.
#[test]
fn rotate_to_keeps_one_previous_key() {
    let now = 1_700_000_000;
    let mut buf = [0u8; MAX_VALUE_LEN];
    let k0 = ring();
    let c0 = k0.encode("s", &sticky("a")).unwrap();
    assert!(
        k0.verify_in("s", c0.as_bytes(), now, None, &mut buf)
            .unwrap()
            .current_key
    );
    let k1 = k0.rotate_to(b"the-key-after-one-rotation");
    assert_eq!(k1.len(), 2);
    let v = k1.verify_in("s", c0.as_bytes(), now, None, &mut buf).unwrap();
    assert_eq!((v.identity, v.current_key), ("a", false));
    let c1 = k1.encode("s", &sticky("a")).unwrap();
    assert!(
        k1.verify_in("s", c1.as_bytes(), now, None, &mut buf)
            .unwrap()
            .current_key
    );
    let k2 = k1.rotate_to(b"the-key-after-two-rotations");
    assert_eq!(k2.len(), 2);
    assert_eq!(
        k2.decode("s", c0.as_bytes(), now, None),
        Err(CookieError::UnknownKey),
        "two rotations lose the oldest"
    );
    assert!(k2.decode("s", c1.as_bytes(), now, None).is_ok());
    assert_eq!(
        k2.rotate_to(b"the-key-after-two-rotations").len(),
        2,
        "the same key: no change"
    );
}

/// A running rotation: the new key signs, the old ones still verify, the
/// ring stays bounded.
#[test]
fn rotated_while_running() {
    let old = ring();
    let v = old.encode("s", &sticky("a")).unwrap();
    let mut k = old.rotated(b"a-brand-new-key-a-brand-new-key");
    assert!(k.decode("s", v.as_bytes(), 1_700_000_000, None).is_ok());
    let v2 = k.encode("s", &sticky("a")).unwrap();
    let only_new = Keyring::from_secrets(&[b"a-brand-new-key-a-brand-new-key"]);
    assert!(only_new.decode("s", v2.as_bytes(), 1_700_000_000, None).is_ok());
    assert_eq!(
        k.rotated(b"a-brand-new-key-a-brand-new-key").len(),
        2,
        "the same key is not added twice"
    );
    for i in 0..20u8 {
        k = k.rotated(&[i; 32]);
    }
    assert_eq!(k.len(), MAX_KEYS);
}

/// Max-Age is enforced on verification, and the future is rejected.
#[test]
fn expiry() {
    let k = ring();
    let v = k.encode("s", &sticky("a")).unwrap();
    assert!(k.decode("s", v.as_bytes(), 1_700_000_100, Some(100)).is_ok());
    assert_eq!(
        k.decode("s", v.as_bytes(), 1_700_000_101, Some(100)),
        Err(CookieError::Expired)
    );
    assert_eq!(
        k.decode("s", v.as_bytes(), 1_699_000_000, None),
        Err(CookieError::Expired)
    );
}

/// Garbage of every kind is rejected without panicking.
#[test]
fn garbage() {
    let k = ring();
    let long = "A".repeat(8192);
    for v in [
        "",
        "x",
        "http://10.0.0.5:8000",
        "====",
        long.as_str(),
        "AQ",
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    ] {
        assert!(k.decode("s", v.as_bytes(), 0, None).is_err(), "{v}");
    }
    assert_eq!(k.encode("s", &sticky("")), Err(CookieError::Identity));
    assert_eq!(
        k.encode("s", &sticky(&"x".repeat(MAX_IDENTITY + 1))),
        Err(CookieError::Identity)
    );
}

/// The key file: first line signs, comments skipped, short keys refused.
#[test]
fn key_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keys");
    std::fs::write(&path, "# keys\nsecond-key-second-key\n\nfirst-key-first-key-1\n").unwrap();
    let k = Keyring::from_file(&path).unwrap();
    assert_eq!(k.len(), 2);
    std::fs::write(&path, "short\n").unwrap();
    assert!(matches!(
        Keyring::from_file(&path),
        Err(KeyringError::Short { line: 1, .. })
    ));
    std::fs::write(&path, "# only a comment\n").unwrap();
    assert!(matches!(Keyring::from_file(&path), Err(KeyringError::Empty(_))));
}

/// Without a key file a key is generated once (0600) and kept.
#[test]
fn generated_key_persists() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let a = Keyring::load_or_generate(&state).unwrap();
    let mode = std::fs::metadata(state.join(KEY_FILE_NAME))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let b = Keyring::load_or_generate(&state).unwrap();
    let v = a.encode("s", &sticky("x")).unwrap();
    assert!(b.decode("s", v.as_bytes(), 1_700_000_000, None).is_ok());
}

/// The byte scan finds our cookie among others and removal keeps the rest.
#[test]
fn cookie_header_scan_and_removal() {
    let mut h = HeaderMap::new();
    h.append(COOKIE, HeaderValue::from_static("a=1; _abcde=\"tok\" ;b=2"));
    h.append(COOKIE, HeaderValue::from_static("c=3"));
    assert_eq!(find_cookie(&h, "_abcde"), Some(&b"tok"[..]));
    assert_eq!(find_cookie(&h, "c"), Some(&b"3"[..]));
    assert_eq!(find_cookie(&h, "_abcd"), None);
    remove_cookie(&mut h, "_abcde");
    assert_eq!(h.get_all(COOKIE).iter().collect::<Vec<_>>(), vec!["a=1; b=2; c=3"]);
    let mut only = HeaderMap::new();
    only.insert(COOKIE, HeaderValue::from_static("_abcde=x"));
    remove_cookie(&mut only, "_abcde");
    assert!(only.get(COOKIE).is_none());
}

/// Set-Cookie attributes follow the config; SameSite=None forces Secure.
#[test]
fn set_cookie_attributes() {
    let mut c = CookieConfig::for_service("web");
    c.name = "SID".into();
    assert_eq!(
        set_cookie_value(&c, "v", false).unwrap(),
        "SID=v; Path=/; HttpOnly; SameSite=Lax"
    );
    assert_eq!(
        set_cookie_value(&c, "v", true).unwrap(),
        "SID=v; Path=/; HttpOnly; SameSite=Lax; Secure"
    );
    c.secure = SecureMode::Never;
    c.same_site = SameSite::None;
    c.http_only = false;
    c.max_age = Some(Duration::from_secs(60));
    c.domain = Some("example.com".into());
    c.path = "/app".into();
    assert_eq!(
        set_cookie_value(&c, "v", false).unwrap(),
        "SID=v; Path=/app; Domain=example.com; Max-Age=60; SameSite=None; Secure"
    );
    c.same_site = SameSite::Strict;
    c.secure = SecureMode::Always;
    assert_eq!(
        set_cookie_value(&c, "v", false).unwrap(),
        "SID=v; Path=/app; Domain=example.com; Max-Age=60; SameSite=Strict; Secure"
    );
}

proptest! {
    /// decode(encode(x)) == x for any identity and time.
    #[test]
    fn prop_round_trip(backend in "[a-zA-Z0-9._-]{1,128}", issued_at in 0u64..4_000_000_000) {
        let k = ring();
        let s = Sticky { backend, issued_at };
        let v = k.encode("svc", &s).unwrap();
        prop_assert_eq!(k.decode("svc", v.as_bytes(), issued_at, None).unwrap(), s);
    }

    /// Every single-byte change of a valid value (in its text or its raw
    /// bytes) is rejected.
    #[test]
    fn prop_mutation_rejected(backend in "[a-z0-9-]{1,40}", pos in any::<prop::sample::Index>(), byte in any::<u8>()) {
        let k = ring();
        let v = k.encode("svc", &Sticky { backend, issued_at: 1_700_000_000 }).unwrap();
        let mut text = v.clone().into_bytes();
        let i = pos.index(text.len());
        prop_assume!(text[i] != byte);
        text[i] = byte;
        prop_assert!(k.decode("svc", &text, 1_700_000_000, None).is_err());

        let mut raw = URL_SAFE_NO_PAD.decode(&v).unwrap();
        let j = pos.index(raw.len());
        raw[j] ^= byte.max(1);
        let mutated = URL_SAFE_NO_PAD.encode(raw);
        prop_assert!(k.decode("svc", mutated.as_bytes(), 1_700_000_000, None).is_err());
    }

    /// Arbitrary input never panics and is never accepted.
    #[test]
    fn prop_random_rejected(input in proptest::collection::vec(any::<u8>(), 0..300)) {
        prop_assert!(ring().decode("svc", &input, 1_700_000_000, None).is_err());
    }
}

/// `peek` reads what a cookie claims without a key; the key id it reports
/// is the signing key's.
#[test]
fn peek_reads_the_claimed_fields() {
    let keyring = Keyring::from_secrets(&["peek-test-key-peek-test-key"]);
    let sticky = Sticky {
        backend: "task.3".into(),
        issued_at: 1_700_000_000,
    };
    let value = keyring.encode("web", &sticky).unwrap();
    let seen = super::peek(value.as_bytes()).unwrap();
    assert_eq!((seen.backend.as_str(), seen.issued_at), ("task.3", 1_700_000_000));
    assert_eq!(Some(&seen.key_id), keyring.key_ids().first());
    assert_eq!(super::peek(b"not a cookie"), Err(CookieError::Base64));
    assert_eq!(super::peek(b"AQID"), Err(CookieError::Malformed));
}
