//! Unprivileged end-to-end tests of the L7 sticky proxy: whoami backends
//! and a proxy on real workers, all on 127.0.0.1:0, with real HTTP clients.

mod admin;
mod deadlines;
mod demo;
mod failover;
mod hibernate;
mod http;
mod hygiene;
mod interleave;
mod lifecycle;
mod routing;
mod sticky;
mod tools;
mod tunnel;
mod upstream;
