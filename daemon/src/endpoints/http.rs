//! The `metrics.listen` endpoint: a minimal HTTP/1.1 responder on the actix/tokio loop that
//! answers `GET /metrics` (and `HEAD`) with the OpenMetrics text of
//! [`super::metrics::Metrics`], one request per connection (`Connection: close`).
//!
//! A scrape reads memory only: the gauges are kept current by the connection actors as states
//! change (`super::metrics`, "Census"), so it costs no message to any actor and no sock_diag
//! dump, whatever the number of connections.
//!
//! Answers: 200 for `GET`/`HEAD /metrics`; 404 for a well-formed request of another path; 405
//! (with `Allow: GET, HEAD`) for another method on `/metrics`; 400 for a malformed request line
//! or header line, or a head the client cut short; 431 for a head longer than
//! [`HEAD_LIMIT`] bytes; 505 for an HTTP version other than 1.x; 408 when the head is not
//! complete within [`READ_TIMEOUT`]. The parser is [`super::http_request`].
//!
//! Bounds: at most [`MAX_CLIENTS`] clients are served at once; the next one is answered `503
//! Service Unavailable` with `Retry-After: 1` at once, without waiting (a scrape takes well
//! under a millisecond, so only clients that are slow to send their request hold the places).
//! The whole exchange is also bounded by the accept loop's 5 s (`super::server`).

use std::sync::Arc;
use std::time::Duration;

use slog::Logger;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

use super::control::Views;
use super::http_request::{parse, ParseError, Request, HEAD_LIMIT};
use super::metrics::Metrics;

/// Clients served at once.
pub const MAX_CLIENTS: usize = 8;
/// How long a client may take to send its request head.
pub const READ_TIMEOUT: Duration = Duration::from_secs(2);
/// What a client turned away for [`MAX_CLIENTS`] is told to wait (`Retry-After`, seconds).
const RETRY_AFTER: &str = "Retry-After: 1\r\n";
const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// What the endpoint serves from, shared by its clients.
#[derive(Clone)]
struct Endpoint {
    metrics: Metrics,
    /// One permit per client being served.
    places: Arc<Semaphore>,
}

/// Serve `listener` on the current actix/tokio loop until the process stops.
pub fn serve(listener: std::net::TcpListener, views: Views, log: Logger) -> std::io::Result<()> {
    listener.set_nonblocking(true)?;
    let listener = tokio::net::TcpListener::from_std(listener)?;
    let endpoint = Endpoint {
        metrics: views.metrics,
        places: Arc::new(Semaphore::new(MAX_CLIENTS)),
    };
    super::server::spawn(
        listener,
        "metrics endpoint",
        endpoint,
        log,
        |stream, endpoint| async move { serve_one(stream, &endpoint).await },
    );
    Ok(())
}

/// One answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// Code and reason, e.g. `404 Not Found`.
    pub status: &'static str,
    /// Header lines beyond the usual ones, each ending in CRLF.
    pub headers: &'static str,
    /// The body's content type.
    pub content_type: &'static str,
    /// The body.
    pub body: String,
    /// Send the head only (a `HEAD` request); `Content-Length` still gives the body's size.
    pub head_only: bool,
}

impl Response {
    fn text(status: &'static str, headers: &'static str, body: impl Into<String>) -> Response {
        Response {
            status,
            headers,
            content_type: "text/plain; charset=utf-8",
            body: body.into(),
            head_only: false,
        }
    }

    /// The bytes on the wire.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = format!(
            "HTTP/1.1 {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n{}\r\n",
            self.status,
            self.content_type,
            self.body.len(),
            self.headers
        )
        .into_bytes();
        if !self.head_only {
            out.extend_from_slice(self.body.as_bytes());
        }
        out
    }
}

/// The answer to the parser's verdict on what a client sent (at the end of its input, an
/// incomplete head is malformed).
pub fn respond(verdict: Result<Request<'_>, ParseError>, metrics: &Metrics) -> Response {
    let req = match verdict {
        Ok(req) => req,
        Err(e) => return Response::text(e.status(), "", format!("{e}\n")),
    };
    let mut r = if req.path != "/metrics" {
        Response::text("404 Not Found", "", "not found; try /metrics\n")
    } else if req.method != "GET" && req.method != "HEAD" {
        Response::text(
            "405 Method Not Allowed",
            "Allow: GET, HEAD\r\n",
            "GET or HEAD only\n",
        )
    } else {
        match metrics.encode() {
            Ok(body) => Response {
                status: "200 OK",
                headers: "",
                content_type: CONTENT_TYPE,
                body,
                head_only: false,
            },
            Err(e) => Response::text(
                "500 Internal Server Error",
                "",
                format!("encoding failed: {e}\n"),
            ),
        }
    };
    r.head_only = req.method == "HEAD";
    r
}

async fn serve_one(mut stream: TcpStream, endpoint: &Endpoint) -> std::io::Result<()> {
    let Ok(_place) = endpoint.places.clone().try_acquire_owned() else {
        let busy = Response::text(
            "503 Service Unavailable",
            RETRY_AFTER,
            format!("more than {MAX_CLIENTS} clients at once; retry\n"),
        );
        // Read what already arrived, so that closing sends a FIN rather than a reset.
        let mut sink = [0u8; 1024];
        let mut drained = 0;
        while drained <= HEAD_LIMIT {
            match stream.try_read(&mut sink) {
                Ok(n) if n > 0 => drained += n,
                _ => break,
            }
        }
        stream.write_all(&busy.to_bytes()).await?;
        return stream.shutdown().await;
    };
    let response =
        match tokio::time::timeout(READ_TIMEOUT, read_request(&mut stream, endpoint)).await {
            Ok(Ok(Some(r))) => r,
            // Closed without sending a byte: nobody to answer.
            Ok(Ok(None)) => return Ok(()),
            Ok(Err(e)) => return Err(e),
            Err(_) => Response::text(
                "408 Request Timeout",
                "",
                format!(
                    "no complete request head within {} s\n",
                    READ_TIMEOUT.as_secs()
                ),
            ),
        };
    stream.write_all(&response.to_bytes()).await?;
    stream.shutdown().await
}

/// Read until the parser decides or the client stops sending, and answer; None if the client
/// sent nothing. Holds at most [`HEAD_LIMIT`] + 1 KiB (the parser refuses beyond the limit).
async fn read_request(
    stream: &mut TcpStream,
    endpoint: &Endpoint,
) -> std::io::Result<Option<Response>> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        let n = stream.read(&mut chunk).await?;
        if n == 0 && buf.is_empty() {
            return Ok(None);
        }
        buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
        match parse(&buf) {
            Err(ParseError::Incomplete) if n > 0 => continue,
            verdict => return Ok(Some(respond(verdict, &endpoint.metrics))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn answer(request: &[u8]) -> Response {
        respond(parse(request), &Metrics::default())
    }

    #[test]
    fn refusals_by_kind() {
        for (request, status) in [
            (&b"\r\n\r\n"[..], "400 Bad Request"),
            (b"garbage\r\n\r\n", "400 Bad Request"),
            (b"GET /metrics\r\n\r\n", "400 Bad Request"),
            (
                b"GET /metrics HTTP/1.1\r\nbad header\r\n\r\n",
                "400 Bad Request",
            ),
            // A head cut short (at end of input) is malformed.
            (b"GET /metrics HTTP/1.1\r\n", "400 Bad Request"),
            (b"GET / HTTP/1.1\r\n\r\n", "404 Not Found"),
            (b"GET /metricsx HTTP/1.1\r\n\r\n", "404 Not Found"),
            (b"POST /other HTTP/1.1\r\n\r\n", "404 Not Found"),
            (b"POST /metrics HTTP/1.1\r\n\r\n", "405 Method Not Allowed"),
            (b"get /metrics HTTP/1.1\r\n\r\n", "405 Method Not Allowed"),
            (
                b"GET /metrics HTTP/2.0\r\n\r\n",
                "505 HTTP Version Not Supported",
            ),
            (b"GET /metrics HTTP/1.1\r\n\r\n", "200 OK"),
            (b"GET /metrics?name[]=x HTTP/1.0\r\n\r\n", "200 OK"),
        ] {
            let r = answer(request);
            assert_eq!(
                r.status,
                status,
                "{:?}: {r:?}",
                String::from_utf8_lossy(request)
            );
            let wire = String::from_utf8(r.to_bytes()).unwrap();
            assert!(
                wire.starts_with(&format!("HTTP/1.1 {status}\r\n")),
                "{wire}"
            );
            assert!(wire.contains("\r\nConnection: close\r\n"), "{wire}");
        }
        let r = answer(b"PUT /metrics HTTP/1.1\r\n\r\n");
        assert!(String::from_utf8(r.to_bytes())
            .unwrap()
            .contains("\r\nAllow: GET, HEAD\r\n"));
        let r = answer(b"GET /metrics HTTP/1.1\r\n\r\n");
        assert_eq!(r.content_type, CONTENT_TYPE);
        assert!(r.body.contains("mptcp_pmd_connections 0"), "{}", r.body);
        // HEAD: the head with the body's length, no body.
        let h = answer(b"HEAD /metrics HTTP/1.1\r\n\r\n");
        let wire = String::from_utf8(h.to_bytes()).unwrap();
        assert!(wire.ends_with("\r\n\r\n"), "{wire}");
        assert!(wire.contains(&format!("Content-Length: {}\r\n", r.body.len())));
    }

    /// A client of an endpoint served on 127.0.0.1 in this process: its response.
    async fn exchange(port: u16, send: &[u8], half_close: bool) -> String {
        let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        s.write_all(send).await.unwrap();
        if half_close {
            s.shutdown().await.unwrap();
        }
        let mut out = Vec::new();
        s.read_to_end(&mut out).await.unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn served_over_tcp_with_bounds() {
        let sys = actix::System::new();
        sys.block_on(async {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let port = l.local_addr().unwrap().port();
            let endpoint = Endpoint {
                metrics: Metrics::default(),
                places: Arc::new(Semaphore::new(MAX_CLIENTS)),
            };
            l.set_nonblocking(true).unwrap();
            let l = tokio::net::TcpListener::from_std(l).unwrap();
            let log = Logger::root(slog::Discard, slog::o!());
            super::super::server::spawn(l, "test", endpoint, log, |s, e| async move {
                serve_one(s, &e).await
            });

            let ok = exchange(port, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", false).await;
            assert!(ok.starts_with("HTTP/1.1 200 OK\r\n"), "{ok}");
            // A garbage first line is refused at once, while the client still holds its side
            // open (no waiting for the rest of a head).
            let t0 = Instant::now();
            let bad = exchange(port, b"garbage\r\n", false).await;
            assert!(bad.starts_with("HTTP/1.1 400 "), "{bad}");
            assert!(t0.elapsed() < READ_TIMEOUT, "{:?}", t0.elapsed());
            let empty = exchange(port, b"\r\n", false).await;
            assert!(empty.starts_with("HTTP/1.1 400 "), "{empty}");
            let cut = exchange(port, b"GET /metrics HT", true).await;
            assert!(cut.starts_with("HTTP/1.1 400 "), "{cut}");
            let nothing = exchange(port, b"", true).await;
            assert_eq!(nothing, "");
            let mut big = b"GET /metrics HTTP/1.1\r\nX: ".to_vec();
            big.resize(HEAD_LIMIT + 10, b'a');
            let big = exchange(port, &big, false).await;
            assert!(big.starts_with("HTTP/1.1 431 "), "{big}");

            // MAX_CLIENTS clients that send nothing hold every place: the next is turned away
            // at once; once they time out, a scrape is served again.
            let mut idle = Vec::new();
            for _ in 0..MAX_CLIENTS {
                idle.push(TcpStream::connect(("127.0.0.1", port)).await.unwrap());
            }
            // Let the accept loop take them all.
            tokio::time::sleep(Duration::from_millis(200)).await;
            let t0 = Instant::now();
            let busy = exchange(port, b"GET /metrics HTTP/1.1\r\n\r\n", false).await;
            assert!(busy.starts_with("HTTP/1.1 503 "), "{busy}");
            assert!(busy.contains("\r\nRetry-After: 1\r\n"), "{busy}");
            assert!(t0.elapsed() < Duration::from_secs(1), "{:?}", t0.elapsed());
            let mut timed_out = String::new();
            idle[0].read_to_string(&mut timed_out).await.unwrap();
            assert!(timed_out.starts_with("HTTP/1.1 408 "), "{timed_out}");
            assert!(t0.elapsed() < READ_TIMEOUT + Duration::from_secs(1));
            drop(idle);
            tokio::time::sleep(Duration::from_millis(100)).await;
            let again = exchange(port, b"GET /metrics HTTP/1.1\r\n\r\n", false).await;
            assert!(again.starts_with("HTTP/1.1 200 OK\r\n"), "{again}");
        });
    }
}
