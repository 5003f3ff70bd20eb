//! The error body for answers the HTTP/1 parser gives itself. actix-http answers a malformed request
//! line or header (400), an oversized head (431), a head that did not arrive in time (408) and a
//! few internal dispatch faults (500) before any service runs, with an empty body. Every connection's
//! stream is wrapped in [`JsonErrors`], which rewrites exactly those answers — an error status with
//! `content-length: 0` at the start of a write; every answer of the application has a JSON body — so
//! they carry the contract's error body too.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use actix_web::http::StatusCode;
use connector_core::ApiError;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A connection's stream, with the parser's bodiless error answers given the JSON error body.
pub struct JsonErrors<T> {
    inner: T,
    /// A rewritten answer still being written: its bytes, how many are written, and how many bytes
    /// of the caller's buffer it stands for.
    pending: Option<(Vec<u8>, usize, usize)>,
}

impl<T> JsonErrors<T> {
    pub fn new(inner: T) -> Self {
        Self {
            inner,
            pending: None,
        }
    }
}

/// The error the parser's answer stands for.
fn error_for(status: StatusCode) -> ApiError {
    match status {
        StatusCode::BAD_REQUEST => {
            ApiError::invalid_request("the request is not well-formed HTTP/1.1")
        }
        StatusCode::REQUEST_TIMEOUT => ApiError::new(
            status,
            connector_core::ErrorCode::RequestTimeout,
            "the request head did not arrive in time",
        ),
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => ApiError::new(
            status,
            connector_core::ErrorCode::RequestHeaderFieldsTooLarge,
            "the request head is too large",
        ),
        s if s.is_client_error() => ApiError::new(
            s,
            connector_core::ErrorCode::InvalidRequest,
            "the request is malformed",
        ),
        _ => ApiError::internal(),
    }
}

/// When `buf` starts with a bodiless error answer, the bytes to write instead: that answer with the
/// JSON error body, then the rest of `buf` unchanged.
pub fn rewrite(buf: &[u8]) -> Option<Vec<u8>> {
    let rest = buf.strip_prefix(b"HTTP/1.1 ")?;
    let code: u16 = std::str::from_utf8(rest.get(..3)?).ok()?.parse().ok()?;
    let status = StatusCode::from_u16(code).ok()?;
    if !(status.is_client_error() || status.is_server_error()) {
        return None;
    }
    let head_end = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&buf[..head_end]).ok()?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next()?;
    let headers: Vec<&str> = lines.collect();
    let is = |l: &str, name: &str| {
        l.split_once(':')
            .is_some_and(|(k, _)| k.trim().eq_ignore_ascii_case(name))
    };
    let empty = headers.iter().any(|l| {
        is(l, "content-length") && l.split_once(':').is_some_and(|(_, v)| v.trim() == "0")
    });
    if !empty || headers.iter().any(|l| is(l, "content-type")) {
        return None;
    }
    let body = error_for(status).body_json();
    let mut out = Vec::with_capacity(buf.len() + body.len() + 64);
    out.extend_from_slice(status_line.as_bytes());
    out.extend_from_slice(b"\r\n");
    for l in headers.iter().filter(|l| !is(l, "content-length")) {
        out.extend_from_slice(l.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"content-type: application/json\r\n");
    out.extend_from_slice(format!("content-length: {}\r\n\r\n", body.len()).as_bytes());
    out.extend_from_slice(body.as_bytes());
    out.extend_from_slice(&buf[head_end + 4..]);
    Some(out)
}

impl<T: AsyncRead + Unpin> AsyncRead for JsonErrors<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for JsonErrors<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if this.pending.is_none() {
            match rewrite(buf) {
                Some(bytes) => this.pending = Some((bytes, 0, buf.len())),
                None => return Pin::new(&mut this.inner).poll_write(cx, buf),
            }
        }
        // Write the rewritten answer whole, then report the caller's buffer as written.
        while let Some((bytes, written, stands_for)) = this.pending.as_mut() {
            if *written == bytes.len() {
                let n = *stands_for;
                this.pending = None;
                return Poll::Ready(Ok(n));
            }
            let n = ready!(Pin::new(&mut this.inner).poll_write(cx, &bytes[*written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            *written += n;
        }
        Poll::Ready(Ok(0))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrites_only_bodiless_error_answers() {
        let out = rewrite(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\ndate: x\r\n\r\n")
            .expect("rewritten");
        let text = String::from_utf8(out).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{head}");
        assert!(head.contains("connection: close"), "{head}");
        assert!(
            head.contains(&format!("content-length: {}", body.len())),
            "{head}"
        );
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["code"], "invalid_request");
        assert!(rewrite(
            b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\n\r\n"
        )
        .is_some());
        // Answers with a body, successes and partial heads are left alone.
        assert!(rewrite(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 20\r\ncontent-type: application/json\r\n\r\n{}").is_none());
        assert!(rewrite(b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n").is_none());
        assert!(rewrite(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n").is_none());
        assert!(rewrite(b"{\"a\":1}").is_none());
    }
}
