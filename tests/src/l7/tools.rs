//! The support subcommands and the access log, run as a user would:
//! `swarm-sticky cookie decode` on valid, tampered and expired cookies,
//! `swarm-sticky check-config` on good and bad files, and the access log
//! lines of real requests.

use std::process::Command;

use proxy_user::cookie::{Keyring, Sticky, unix_now};

use crate::harness::{
    backend::Whoami,
    binary, client,
    instance::{Instance, wait_until},
};

fn swarm_sticky(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(binary()).args(args).output().expect("run swarm-sticky");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A cookie issued by a running instance decodes as valid with the same
/// state directory; one changed character makes it invalid (signature);
/// an old one is expired under a Max-Age; another key cannot verify it.
#[test]
fn cookie_decode_valid_tampered_expired() {
    let dir = tempfile::tempdir().unwrap();
    let w1 = Whoami::start("w1");
    let backend = format!("w1=http://{}", w1.addr);
    let state = dir.path().display().to_string();
    let i = Instance::start(dir.path(), &["--backend", &backend]);
    let cookie = client::get(i.listen, "/").unwrap().set_cookie().unwrap();
    drop(i);

    let (code, out, err) = swarm_sticky(&[
        "cookie",
        "decode",
        &cookie,
        "--state-dir",
        &state,
        "--backend",
        &backend,
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("service:     default"), "{out}");
    assert!(out.contains("backend:     w1\n"), "{out}");
    assert!(out.contains("valid:       yes"), "{out}");

    let (name, value) = cookie.split_once('=').unwrap();
    // A character inside the tag (not the last one, whose low bits
    // must stay zero in canonical base64): a signature mismatch.
    let mid = value.len() - 3;
    let swapped = if &value[mid..=mid] == "A" { "B" } else { "A" };
    let tampered = format!("{name}={}{swapped}{}", &value[..mid], &value[mid + 1..]);
    let (code, out, _) = swarm_sticky(&[
        "cookie",
        "decode",
        &tampered,
        "--state-dir",
        &state,
        "--backend",
        &backend,
    ]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("valid:       no: the signature does not verify"), "{out}");

    // An hour-old cookie signed with the same key, checked with a Max-Age.
    let keyring = Keyring::from_file(&dir.path().join(proxy_user::cookie::KEY_FILE_NAME)).unwrap();
    let old = keyring
        .encode(
            "default",
            &Sticky {
                backend: "w1".into(),
                issued_at: unix_now() - 3600,
            },
        )
        .unwrap();
    let args = [
        "cookie",
        "decode",
        &old,
        "--state-dir",
        &state,
        "--service",
        "default",
        "--json",
    ];
    let (code, out, _) = swarm_sticky(&args);
    assert_eq!(code, 0, "valid without a Max-Age: {out}");
    let (code, out, _) = swarm_sticky(&[&args[..], &["--max-age", "60"]].concat());
    assert_eq!(code, 1, "{out}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["valid"], false);
    assert!(v["reason"].as_str().unwrap().starts_with("expired"), "{v}");
    assert_eq!(v["backend"], "w1");
    assert!(v["age_secs"].as_i64().unwrap() >= 3600);

    let other = tempfile::tempdir().unwrap();
    let key_file = other.path().join("keys");
    std::fs::write(&key_file, "another-secret-another-secret\n").unwrap();
    let key_arg = key_file.display().to_string();
    let (code, out, _) = swarm_sticky(&[
        "cookie",
        "decode",
        &cookie,
        "--cookie-key-file",
        &key_arg,
        "--service",
        "default",
    ]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("a key this keyring does not hold"), "{out}");

    let (code, _, err) = swarm_sticky(&["cookie", "decode", &cookie, "--state-dir", &state]);
    assert_eq!(code, 64, "no service named: {err}");
    assert!(err.contains("--service"), "{err}");
}

/// `check-config` describes a valid file and exits 0; an invalid one
/// exits 64 naming the field; nothing is bound either way.
#[test]
fn check_config_describes_or_names_the_field() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/config.example.toml");
    let (code, out, err) = swarm_sticky(&["check-config", example]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.starts_with("configuration is valid: 2 services"), "{out}");
    assert!(
        out.contains("service \"api\": requests matching Host:example.com PathPrefix:/api"),
        "{out}"
    );
    assert!(out.contains("api-1") && out.contains("weight 2"), "{out}");

    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[[services]]\nname = \"web\"\n[[services.backends]]\nname = \"a\"\nurl = \"ftp://x\"\n",
    )
    .unwrap();
    let (code, out, err) = swarm_sticky(&["check-config", &bad.display().to_string()]);
    assert_eq!(code, 64, "{out}{err}");
    assert!(err.contains("services[0].backends[0].url"), "{err}");
}

/// With `--access-log json --access-log-file`, every request is one JSON
/// line with client, service, backend, decision, status and duration; the
/// common format has the same facts in NCSA order.
#[test]
fn access_log_lines() {
    let dir = tempfile::tempdir().unwrap();
    let w1 = Whoami::start("w1");
    let backend = format!("w1=http://{}", w1.addr);
    let log = dir.path().join("access.log");
    let log_arg = log.display().to_string();
    let i = Instance::start(
        dir.path(),
        &[
            "--backend",
            &backend,
            "--access-log",
            "json",
            "--access-log-file",
            &log_arg,
        ],
    );
    let first = client::get(i.listen, "/hello?x=1").unwrap();
    let cookie = first.set_cookie().unwrap();
    client::get_with(i.listen, "/again", Some(&cookie)).unwrap();
    let read = || std::fs::read_to_string(&log).unwrap_or_default();
    wait_until("two access log lines", std::time::Duration::from_secs(5), || {
        read().lines().count() >= 2
    });
    let lines: Vec<serde_json::Value> = read().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert_eq!(lines[0]["path"], "/hello?x=1");
    assert_eq!(lines[0]["decision"], "new");
    assert_eq!(lines[1]["decision"], "hit");
    for l in &lines {
        assert_eq!(l["service"], "default");
        assert_eq!(l["backend"], "w1");
        assert_eq!(l["status"], 200);
        assert_eq!(l["method"], "GET");
        assert!(l["client"].as_str().unwrap().starts_with("127.0.0.1:"), "{l}");
        assert!(l["duration_ms"].as_f64().unwrap() > 0.0, "{l}");
        assert!(
            !l.to_string().contains(cookie.split_once('=').unwrap().1),
            "no cookie value in the log"
        );
    }
    drop(i);

    let clf = dir.path().join("common.log");
    let clf_arg = clf.display().to_string();
    let i = Instance::start(
        dir.path(),
        &[
            "--backend",
            &backend,
            "--access-log",
            "common",
            "--access-log-file",
            &clf_arg,
        ],
    );
    client::get(i.listen, "/x").unwrap();
    wait_until("a common log line", std::time::Duration::from_secs(5), || {
        std::fs::read_to_string(&clf).is_ok_and(|t| t.ends_with('\n'))
    });
    let line = std::fs::read_to_string(&clf).unwrap();
    assert!(line.starts_with("127.0.0.1 - - ["), "{line}");
    assert!(line.contains("] \"GET /x HTTP/1.1\" 200 "), "{line}");
    assert!(line.contains(" \"default\" \"w1\" new "), "{line}");
}
