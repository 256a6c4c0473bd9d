//! swarm-sticky: sticky sessions for Docker Swarm.
//!
//! # Layout
//!
//! From the edge of the process inwards (a module uses only those below
//! it; `docs/architecture.md` draws the two data flows):
//!
//! * [`cli`]: the flags (imports nothing of the library); [`config`]: the
//!   only reader of them, into typed, validated configuration;
//!   [`app`]: builds every part from a [`config::Config`] and runs it.
//! * The data plane: [`dataplane`] (how connections reach the workers: the
//!   eBPF `sk_lookup` program with pinned maps and hand-over, XDP counters
//!   and the SYN guard, or SO_REUSEPORT), [`worker`] (worker threads, each
//!   with its own runtime and sockets), [`alloc`] (the allocator, and
//!   handing idle connections' memory back).
//! * The request path: [`proxy`] (the hyper reverse proxy the workers
//!   serve: route, choose, send, respond), [`sticky`] (which backend, and
//!   the cookie that keeps it), [`cookie`] (the signed cookie's format and
//!   keys), [`balance`] (the table in force, SWRR, drain, health),
//!   [`routing`] (the table: services, backends, [`routing::Table::route`]),
//!   [`netns`] (sockets opened inside an overlay's namespace),
//!   [`access_log`].
//! * The control plane: [`discovery`] (Swarm services and tasks from the
//!   Docker API, as service configurations), [`sources`] (static and
//!   discovered services merged, handed to the balancer), [`services`]
//!   (the service model and its validation, one door for every source).
//! * Observing: [`admin`] (health, readiness, JSON API, dashboard, write
//!   actions), [`status`] (the live view of services and backends),
//!   [`metrics`] (Prometheus), [`stats`] (the request counters).
//! * Tools: [`demo`] (the built-in whoami backend and the demo),
//!   [`inspect`] (`cookie decode`, `check-config`), [`probe`] (a
//!   HEALTHCHECK without curl), [`image`] (container images of this
//!   binary: swarm-sticky's own and the anchor's); [`instance`] (this
//!   process among overlapping ones), [`error`]: error helpers for all.

pub mod access_log;
pub mod acme;
pub mod admin;
pub mod alloc;
pub mod app;
pub mod balance;
pub mod cli;
pub mod config;
pub mod cookie;
pub mod dataplane;
pub mod demo;
pub mod discovery;
pub mod error;
pub mod image;
pub mod inspect;
pub mod instance;
pub mod listener;
pub mod metrics;
pub mod netns;
pub mod oneshot;
pub mod probe;
pub mod proxy;
pub mod routing;
pub mod services;
pub mod sources;
pub mod stats;
pub mod status;
pub mod sticky;
pub mod tls;
pub mod worker;
