//! The `metrics.listen` endpoint: a minimal HTTP/1.1 responder on the actix/tokio loop that
//! answers `GET /metrics` with the OpenMetrics text of [`super::metrics::Metrics`] (gauges
//! refreshed from the actors first), 404 for other paths and 405 for other methods. One request
//! per connection (`Connection: close`), headers capped at 8 KiB, 5 s per client.

use slog::Logger;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::control::Views;

const HEADER_LIMIT: usize = 8192;
const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Serve `listener` on the current actix/tokio loop until the process stops.
pub fn serve(listener: std::net::TcpListener, views: Views, log: Logger) -> std::io::Result<()> {
    listener.set_nonblocking(true)?;
    let listener = tokio::net::TcpListener::from_std(listener)?;
    super::server::spawn(
        listener,
        "metrics endpoint",
        views,
        log,
        |stream, views| async move { serve_one(stream, &views).await },
    );
    Ok(())
}

/// The status line, content type and body for a request head.
pub async fn respond(head: &str, views: &Views) -> (&'static str, &'static str, String) {
    let mut words = head.lines().next().unwrap_or("").split_whitespace();
    let (method, target) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("");
    if path != "/metrics" {
        return (
            "404 Not Found",
            "text/plain",
            "not found; try /metrics\n".into(),
        );
    }
    if method != "GET" && method != "HEAD" {
        return ("405 Method Not Allowed", "text/plain", "GET only\n".into());
    }
    // Refresh the gauges; a failure leaves the last values in place.
    let _ = views.status().await;
    match views.metrics.encode() {
        Ok(body) => ("200 OK", CONTENT_TYPE, body),
        Err(e) => (
            "500 Internal Server Error",
            "text/plain",
            format!("encoding failed: {e}\n"),
        ),
    }
}

async fn serve_one(mut stream: tokio::net::TcpStream, views: &Views) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") && !buf.windows(2).any(|w| w == b"\n\n") {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
        if buf.len() > HEADER_LIMIT {
            let r = "HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
            stream.write_all(r.as_bytes()).await?;
            return stream.shutdown().await;
        }
    }
    let head = String::from_utf8_lossy(&buf);
    let (status, ctype, body) = respond(&head, views).await;
    let head_only = head.starts_with("HEAD ");
    let mut out = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    if !head_only {
        out.push_str(&body);
    }
    stream.write_all(out.as_bytes()).await?;
    stream.shutdown().await
}
