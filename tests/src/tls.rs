//! End-to-end tests of HTTPS termination: a real swarm-sticky process with
//! an HTTPS listener, certificates made by openssl, and real clients (curl,
//! `openssl s_client`, testssl.sh, a rustls client), and Let's Encrypt's
//! test CA (Pebble) for automatic certificates. Loopback only;
//! unprivileged.

mod acme;
mod certificates;
mod handshake;
mod proxy_protocol;
mod reload;
mod resumption;
mod semantics;
