//! The answers the proxy gives itself: short plain-text responses, and
//! those that also close an HTTP/1 connection.

use bytes::Bytes;
use http::{
    HeaderValue, Response, StatusCode, Version,
    header::{CONNECTION, CONTENT_TYPE},
};
use http_body_util::{BodyExt as _, Full};

use super::ProxyBody;

/// A short plain-text response.
pub(super) fn plain(status: StatusCode, msg: &'static str) -> Response<ProxyBody> {
    text(status, Bytes::from_static(msg.as_bytes()))
}

/// A plain-text response with `body`.
pub(super) fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<ProxyBody> {
    let mut r = Response::new(Full::new(body.into()).map_err(|never| match never {}).boxed_unsync());
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    r
}

/// A refusal that also closes an HTTP/1 connection: what follows a
/// malformed request, or an unread body, on it cannot be trusted.
pub(super) fn closing(version: Version, status: StatusCode, msg: &'static str) -> Response<ProxyBody> {
    let mut r = plain(status, msg);
    if version < Version::HTTP_2 {
        r.headers_mut().insert(CONNECTION, HeaderValue::from_static("close"));
    }
    r
}
