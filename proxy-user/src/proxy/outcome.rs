//! What became of one request: filled in by the request path, read by
//! the counters and the access log.

use std::sync::Arc;

use crate::{
    routing::{Backend, Service},
    sticky::Decision,
};

/// What became of one request, for the counters and the access log.
#[derive(Default)]
pub(super) struct Outcome {
    pub(super) service: Option<Arc<Service>>,
    pub(super) backend: Option<Arc<Backend>>,
    pub(super) decision: Option<Decision>,
}
