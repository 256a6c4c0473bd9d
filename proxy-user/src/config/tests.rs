//! Flags into configuration: defaults, every flag named in its error, and
//! the names clap accepts parsed by the types that own them.

use std::net::SocketAddr;

use clap::{CommandFactory as _, Parser as _};

use super::*;
use crate::{
    access_log::AccessLogFormat,
    cli::{Cli, Command},
};

fn parse(args: &[&str]) -> Result<Config, ConfigError> {
    let cli = Cli::try_parse_from(["swarm-sticky", "run"].iter().chain(args)).expect("parses");
    let Command::Run(run) = cli.command else {
        panic!("run expected")
    };
    Config::from_run_args(&run)
}

const BACKEND: [&str; 2] = ["--backend", "a=http://127.0.0.1:9"];

fn with_backend<'a>(args: &[&'a str]) -> Vec<&'a str> {
    let mut v: Vec<&str> = args.to_vec();
    v.extend(BACKEND);
    v
}

#[test]
fn defaults() {
    let c = parse(&with_backend(&["--listen", "0.0.0.0:8080"])).unwrap();
    assert_eq!(c.dataplane.listen, vec!["0.0.0.0:8080".parse::<SocketAddr>().unwrap()]);
    assert_eq!(c.dataplane.steering, SteeringMode::Auto);
    assert_eq!(c.dataplane.workers, default_workers());
    assert_eq!(c.dataplane.bpffs, std::path::Path::new(cli::DEFAULT_BPFFS));
    assert_eq!(c.admin, cli::DEFAULT_ADMIN.parse::<SocketAddr>().unwrap());
    assert!(c.dataplane.xdp.is_none());
    assert!(c.docker.is_none());
    assert_eq!(c.keys, KeySource::StateDir(cli::DEFAULT_STATE_DIR.into()));
    assert_eq!(c.access_log.format, AccessLogFormat::Off);
    assert_eq!(c.log_format, LogFormat::Text);
    assert_eq!(c.services.services.len(), 1, "the services are read once, here");
}

#[test]
fn listen_repeats_and_takes_ipv6() {
    let c = parse(&with_backend(&[
        "--listen",
        "0.0.0.0:8080",
        "--listen",
        "[::]:8080",
        "--workers",
        "4",
    ]))
    .unwrap();
    assert_eq!(c.dataplane.listen.len(), 2);
    assert_eq!(c.dataplane.workers, 4);
}

#[test]
fn rejects_with_the_flag_named() {
    let cases: &[(&[&str], &str)] = &[
        (&[], "--listen"),
        (&["--listen", "127.0.0.1:0"], "port 0"),
        (&["--listen", "127.0.0.1:1", "--listen", "127.0.0.1:1"], "twice"),
        (&["--listen", "127.0.0.1:1", "--workers", "0"], "--workers"),
        (&["--listen", "127.0.0.1:1", "--workers", "65"], "--workers"),
        (&["--listen", "127.0.0.1:1", "--syn-rate", "10"], "--xdp-iface"),
        (
            &[
                "--listen",
                "127.0.0.1:1",
                "--xdp-iface",
                "eth0",
                "--steering",
                "reuseport",
            ],
            "reuseport",
        ),
        (
            &["--listen", "127.0.0.1:1", "--xdp-iface", "a-very-long-interface"],
            "--xdp-iface",
        ),
        (
            &["--listen", "127.0.0.1:1", "--max-connections", "0"],
            "--max-connections",
        ),
        (
            &[
                "--listen",
                "127.0.0.1:1",
                "--docker",
                "--docker-host",
                "tcp://192.0.2.1:2375",
            ],
            "--docker-host",
        ),
        (&["--listen", "127.0.0.1:1", "--docker", "--resync", "0"], "--resync"),
        (&["--listen", "127.0.0.1:1", "--backend", "nourl"], "--backend[0]"),
    ];
    for (args, needle) in cases {
        let err = parse(&with_backend(args)).expect_err("invalid").to_string();
        assert!(err.contains(needle), "{args:?}: {err}");
    }
}

#[test]
fn syn_guard_from_flags() {
    let c = parse(&with_backend(&[
        "--listen",
        "127.0.0.1:1",
        "--xdp-iface",
        "eth0",
        "--syn-rate",
        "100",
        "--syn-burst",
        "5",
    ]))
    .unwrap();
    let xdp = c.dataplane.xdp.unwrap();
    assert_eq!(xdp.syn_guard, SynGuardConfig::new(100, 5));
    assert_eq!(xdp.syn_guard.enabled, 1);
}

/// With `--docker` the key comes from the cluster unless a key file is
/// given, and the same flags mean the same keys to `cookie decode`.
#[test]
fn key_sources_follow_the_flags() {
    let c = parse(&["--listen", "127.0.0.1:1", "--docker", "--state-dir", "/s"]).unwrap();
    let cluster = KeySource::Cluster {
        docker_host: cli::DEFAULT_DOCKER_HOST.into(),
        state_dir: "/s".into(),
    };
    assert_eq!(c.keys, cluster);
    assert!(
        c.services.services.is_empty(),
        "with --docker no static service is needed"
    );
    let c = parse(&["--listen", "127.0.0.1:1", "--docker", "--cookie-key-file", "/k"]).unwrap();
    assert_eq!(c.keys, KeySource::File("/k".into()));

    let cli = Cli::try_parse_from(["swarm-sticky", "cookie", "decode", "v", "--docker", "--state-dir", "/s"]).unwrap();
    let Command::Cookie(crate::cli::CookieCommand::Decode(args)) = cli.command else {
        panic!("decode expected")
    };
    assert_eq!(decode_config(&args).unwrap().1, cluster);
}

/// Every value clap offers for an enum-like flag parses into the type
/// that owns it: the two lists cannot drift apart.
#[test]
fn every_offered_value_parses() {
    let cmd = Cli::command();
    let run = cmd.find_subcommand("run").expect("run");
    let values = |flag: &str| -> Vec<String> {
        run.get_arguments()
            .find(|a| a.get_id() == flag)
            .unwrap_or_else(|| panic!("no {flag}"))
            .get_possible_values()
            .iter()
            .map(|v| v.get_name().to_owned())
            .collect()
    };
    let steering = values("steering");
    assert_eq!(steering.len(), SteeringMode::NAMES.len());
    for v in steering {
        assert!(v.parse::<SteeringMode>().is_ok(), "--steering {v}");
    }
    for v in values("access_log") {
        assert!(v.parse::<AccessLogFormat>().is_ok(), "--access-log {v}");
    }
    for v in values("log_format") {
        let c = parse(&with_backend(&["--listen", "127.0.0.1:1", "--log-format", &v])).unwrap();
        assert_eq!(c.log_format == LogFormat::Json, v == "json");
    }
}

/// ACME is checked before anything binds: it needs an https:// listener, a
/// contact that is an address, an https directory, a readable CA root, an
/// executable hook for dns-01 and a plain listener for http-01.
#[test]
fn acme_flags_are_checked() {
    use crate::acme::{Challenge, LETS_ENCRYPT, LETS_ENCRYPT_STAGING};
    let dir = tempfile::tempdir().unwrap();
    let hook = dir.path().join("hook.sh");
    std::fs::write(&hook, "#!/bin/sh\n").unwrap();
    let plain_file = dir.path().join("plain");
    std::fs::write(&plain_file, "").unwrap();
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let (hook, plain_file) = (hook.display().to_string(), plain_file.display().to_string());
    let both = ["--listen", "http://127.0.0.1:1", "--listen", "https://127.0.0.1:2"];
    let with = |extra: &[&str]| {
        let mut a: Vec<&str> = both.to_vec();
        a.extend(extra);
        parse(&with_backend(&a))
    };
    let c = with(&["--acme-email", "ops@example.com"]).unwrap();
    let acme = c.acme.unwrap();
    assert_eq!(acme.directory, LETS_ENCRYPT);
    assert_eq!(acme.challenge, Challenge::Http01, "a plain listener: http-01");
    assert!(c.edge.tls.unwrap().automatic, "TLS starts without a certificate file");
    let c = with(&[
        "--acme-directory",
        "staging",
        "--acme-challenge",
        "dns-01",
        "--acme-dns-hook",
        &hook,
    ])
    .unwrap();
    let acme = c.acme.unwrap();
    assert_eq!(
        (acme.directory.as_str(), acme.challenge),
        (LETS_ENCRYPT_STAGING, Challenge::Dns01)
    );
    assert_eq!(acme.email, None);
    let c = parse(&with_backend(&[
        "--listen",
        "https://127.0.0.1:2",
        "--acme-email",
        "a@b.example",
    ]))
    .unwrap();
    assert_eq!(c.acme.unwrap().challenge, Challenge::TlsAlpn01, "TLS only: tls-alpn-01");
    assert!(
        parse(&with_backend(&["--listen", "127.0.0.1:1"]))
            .unwrap()
            .acme
            .is_none(),
        "off by default"
    );

    let cases: &[(&[&str], &str)] = &[
        (&["--acme-email", "not-an-address"], "--acme-email"),
        (&["--acme-directory", "http://ca.example/dir"], "https:// URL"),
        (
            &["--acme-email", "a@b.example", "--acme-ca-root", "/nonexistent.pem"],
            "--acme-ca-root",
        ),
        (
            &["--acme-email", "a@b.example", "--acme-dns-hook", "/nonexistent"],
            "--acme-dns-hook",
        ),
        (
            &["--acme-email", "a@b.example", "--acme-dns-hook", &plain_file],
            "not an executable",
        ),
        (
            &["--acme-email", "a@b.example", "--acme-challenge", "dns-01"],
            "needs --acme-dns-hook",
        ),
        (&["--acme-email", "a@b.example", "--acme-retry", "0"], "--acme-retry"),
        (
            &["--acme-email", "a@b.example", "--acme-lock-ttl", "5"],
            "--acme-lock-ttl",
        ),
    ];
    for (extra, needle) in cases {
        let err = with(extra).expect_err("invalid").to_string();
        assert!(err.contains(needle), "{extra:?}: {err}");
    }
    let err = parse(&with_backend(&[
        "--listen",
        "127.0.0.1:1",
        "--acme-email",
        "a@b.example",
    ]))
    .expect_err("no https listener")
    .to_string();
    assert!(err.contains("https:// listeners"), "{err}");
    let err = parse(&with_backend(&[
        "--listen",
        "https://127.0.0.1:2",
        "--acme-email",
        "a@b.example",
        "--acme-challenge",
        "http-01",
    ]))
    .expect_err("no plain listener")
    .to_string();
    assert!(err.contains("http:// listener"), "{err}");
}
