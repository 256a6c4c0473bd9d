//! The request body on its way upstream: a deadline between chunks, and a
//! record of how it ended.
//!
//! A client that sends one byte of a body and stops would otherwise hold
//! its connection slot and a backend connection for ever; here the body
//! fails once no chunk arrived for the service's request-body timeout, and
//! the request is answered 408. The record ([`Upload`]) is what the
//! upstream pool reads before it takes a connection back: a connection
//! whose request body was not sent to its end is still busy (a backend that
//! answers before reading an upload does that), and must never be handed
//! to the next request.

use std::{
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicU8, Ordering},
    },
    task::{Context, Poll},
    time::Duration,
};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;

use super::BoxError;

const SENDING: u8 = 0;
const COMPLETE: u8 = 1;
const FAILED: u8 = 2;
const TIMED_OUT: u8 = 3;

/// How a request body's trip upstream went, shared between the body, the
/// response deadline (which starts once the body is sent) and the code
/// that pools the connection it travelled on.
#[derive(Debug, Default)]
pub(super) struct Upload {
    state: AtomicU8,
    ended: tokio::sync::Notify,
}

impl Upload {
    /// Every byte was handed to the upstream connection.
    pub(super) fn is_complete(&self) -> bool {
        self.state.load(Ordering::Relaxed) == COMPLETE
    }

    /// The client stopped sending for longer than the deadline.
    pub(super) fn timed_out(&self) -> bool {
        self.state.load(Ordering::Relaxed) == TIMED_OUT
    }

    /// Resolves once the body ended, whichever way.
    pub(super) async fn sent(&self) {
        // `notify_one` keeps a permit, so an end between the check and the
        // wait is not missed.
        while self.state.load(Ordering::Relaxed) == SENDING {
            self.ended.notified().await;
        }
    }

    fn set(&self, v: u8) {
        self.state.store(v, Ordering::Relaxed);
        self.ended.notify_one();
    }
}

/// The request body hit its deadline.
#[derive(Debug, thiserror::Error)]
#[error("request body: no data for {0:?}")]
pub(super) struct BodyTimeout(Duration);

/// A client's request body with a deadline between chunks.
pub(super) struct Deadlined {
    inner: Incoming,
    timeout: Duration,
    /// Armed while waiting for a chunk; reset (not reallocated) after each.
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
    armed: bool,
    upload: Arc<Upload>,
}

impl Deadlined {
    /// Wraps `inner`; its fate is recorded in the returned [`Upload`].
    pub(super) fn new(inner: Incoming, timeout: Duration) -> (Self, Arc<Upload>) {
        let upload = Arc::new(Upload::default());
        if inner.is_end_stream() {
            upload.set(COMPLETE);
        }
        let body = Self {
            inner,
            timeout,
            sleep: None,
            armed: false,
            upload: upload.clone(),
        };
        (body, upload)
    }
}

impl Body for Deadlined {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                this.armed = false;
                if this.inner.is_end_stream() {
                    this.upload.set(COMPLETE);
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(None) => {
                this.upload.set(COMPLETE);
                Poll::Ready(None)
            }
            Poll::Ready(Some(Err(err))) => {
                this.upload.set(FAILED);
                Poll::Ready(Some(Err(err.into())))
            }
            Poll::Pending => {
                let deadline = tokio::time::Instant::now() + this.timeout;
                let sleep = match &mut this.sleep {
                    Some(s) => {
                        if !this.armed {
                            s.as_mut().reset(deadline);
                        }
                        s
                    }
                    None => this.sleep.insert(Box::pin(tokio::time::sleep_until(deadline))),
                };
                this.armed = true;
                if sleep.as_mut().poll(cx).is_ready() {
                    this.upload.set(TIMED_OUT);
                    return Poll::Ready(Some(Err(BodyTimeout(this.timeout).into())));
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
