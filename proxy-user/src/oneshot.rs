//! One HTTP/1.1 GET on a connection of its own, its body read whole: what
//! the tools (`probe`, `acme status`) ask a local admin API, and the raw
//! calls discovery makes to the Docker socket. Not the request path: that
//! has the pooled upstream connections of `proxy/`.

use bytes::Bytes;
use http::{HeaderValue, Request, Response, header};
use http_body_util::{BodyExt as _, Empty};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};

/// What a GET can fail with.
pub type GetError = Box<dyn std::error::Error + Send + Sync>;

/// `GET path` with `Host: host` (and `User-Agent: user_agent`, if given)
/// on `stream`; the response with its whole body. The caller bounds the
/// time.
///
/// # Errors
/// The connection, the request or the body failed.
pub async fn get<S>(stream: S, host: &str, path: &str, user_agent: Option<&str>) -> Result<Response<Bytes>, GetError>
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        // The connection ends with the response; its error, if any,
        // surfaces through the request below.
        let _ = conn.await;
    });
    let mut req = Request::get(path).header(header::HOST, host);
    if let Some(ua) = user_agent {
        req = req.header(header::USER_AGENT, HeaderValue::from_str(ua)?);
    }
    let resp = send.send_request(req.body(Empty::<Bytes>::new())?).await?;
    let (parts, body) = resp.into_parts();
    let body = body.collect().await?.to_bytes();
    Ok(Response::from_parts(parts, body))
}

/// The body of a 2xx answer to [`get`]; another status is an error
/// naming it, with the body.
///
/// # Errors
/// As [`get`], and a status that is not 2xx.
pub async fn get_ok<S>(stream: S, host: &str, path: &str) -> Result<Bytes, GetError>
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let resp = get(stream, host, path, None).await?;
    if !resp.status().is_success() {
        let text = String::from_utf8_lossy(resp.body());
        return Err(format!("{}: {}", resp.status(), text.trim()).into());
    }
    Ok(resp.into_body())
}
