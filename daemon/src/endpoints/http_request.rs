//! The metrics endpoint's request parser: the bytes a client sent so far -> a parsed request
//! head, "send more", or a typed refusal that names the HTTP status answering it. Pure (no I/O,
//! no clock, no allocation) and fuzzed (`fuzz/fuzz_targets/http_request.rs`); the I/O around it
//! is [`super::http`].
//!
//! What it accepts (RFC 9112, as strictly as a scraper needs and no further):
//! - a request line `METHOD SP TARGET SP HTTP/1.x`, single spaces, the method a token;
//! - a target in origin-form (`/path?query`) or absolute-form (`http://host/path?query`);
//! - header lines `name: value`, the name a token right before the colon, the value of visible
//!   characters, spaces, tabs and bytes >= 0x80 (no folded continuation lines);
//! - lines ending in CRLF or a bare LF; an empty line ends the head, within [`HEAD_LIMIT`] bytes.
//!
//! Header values are checked for their characters, not their meaning: `Host` is not required
//! and a body is never read (the endpoint answers one request per connection and closes it).
//! An empty line before the request line is refused rather than skipped.
//!
//! A decision is final: once [`parse`] returns anything but [`ParseError::Incomplete`], no
//! further bytes can change it, so the reader answers as soon as it has one (a garbage first
//! line gets its 400 without waiting for the rest of the head). The fuzz target checks this.

/// The longest request head accepted, empty line included; a longer one is
/// [`ParseError::TooLarge`] (431). A scraper's head is a few hundred bytes.
pub const HEAD_LIMIT: usize = 8192;

/// A well-formed request head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request<'a> {
    /// The method, as sent (methods are case-sensitive: `get` is not `GET`).
    pub method: &'a str,
    /// The target's path (`/` for an absolute-form target without one).
    pub path: &'a str,
    /// The target's query, without the `?`.
    pub query: Option<&'a str>,
    /// x of `HTTP/1.x`.
    pub minor_version: u8,
    /// Bytes of the head, up to and including its empty line.
    pub head_len: usize,
}

/// Why the bytes so far are not (yet) a request head.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// No empty line yet, and nothing wrong so far: read more (at end of input: 400).
    #[error("the request head is incomplete")]
    Incomplete,
    /// No empty line within [`HEAD_LIMIT`] bytes.
    #[error("the request head is longer than {HEAD_LIMIT} bytes")]
    TooLarge,
    /// The first line is empty.
    #[error("empty request line")]
    EmptyRequestLine,
    /// The first line is not three words separated by single spaces.
    #[error("malformed request line: expected METHOD SP TARGET SP HTTP/1.1")]
    RequestLine,
    /// The method is not a token.
    #[error("invalid method")]
    Method,
    /// The target is neither origin-form nor absolute-form, or has a byte outside 0x21..0x7e.
    #[error("invalid request target")]
    Target,
    /// The version is not `HTTP/<digit>.<digit>`.
    #[error("malformed HTTP version")]
    Version,
    /// A well-formed version other than 1.x.
    #[error("HTTP/{0} is not supported (HTTP/1.1 is)")]
    UnsupportedVersion(u8),
    /// A header line (1 = the first after the request line) is malformed.
    #[error("malformed header line {0}")]
    Header(usize),
}

impl ParseError {
    /// The status line's code and reason answering it.
    pub fn status(&self) -> &'static str {
        match self {
            ParseError::TooLarge => "431 Request Header Fields Too Large",
            ParseError::UnsupportedVersion(_) => "505 HTTP Version Not Supported",
            ParseError::Incomplete
            | ParseError::EmptyRequestLine
            | ParseError::RequestLine
            | ParseError::Method
            | ParseError::Target
            | ParseError::Version
            | ParseError::Header(_) => "400 Bad Request",
        }
    }
}

/// Parse the request head at the start of `buf` (the bytes received so far). Only the first
/// [`HEAD_LIMIT`] bytes are looked at; every complete line among them is checked in order, so
/// a malformed line is refused before the head is complete.
pub fn parse(buf: &[u8]) -> Result<Request<'_>, ParseError> {
    let window = buf.get(..HEAD_LIMIT).unwrap_or(buf);
    let mut start = 0;
    let mut request_line = None;
    let mut header = 0;
    while let Some(rest) = window.get(start..) {
        let Some(len) = rest.iter().position(|b| *b == b'\n') else {
            break;
        };
        let raw = rest.get(..len).unwrap_or_default();
        let line = raw.strip_suffix(b"\r").unwrap_or(raw);
        start += len + 1;
        match request_line {
            None => request_line = Some(parse_request_line(line)?),
            Some((method, path, query, minor_version)) if line.is_empty() => {
                return Ok(Request {
                    method,
                    path,
                    query,
                    minor_version,
                    head_len: start,
                });
            }
            Some(_) => {
                header += 1;
                check_header(line).map_err(|()| ParseError::Header(header))?;
            }
        }
    }
    if buf.len() > HEAD_LIMIT {
        Err(ParseError::TooLarge)
    } else {
        Err(ParseError::Incomplete)
    }
}

type RequestLine<'a> = (&'a str, &'a str, Option<&'a str>, u8);

fn parse_request_line(line: &[u8]) -> Result<RequestLine<'_>, ParseError> {
    if line.is_empty() {
        return Err(ParseError::EmptyRequestLine);
    }
    let mut words = line.split(|b| *b == b' ');
    let (Some(method), Some(target), Some(version), None) =
        (words.next(), words.next(), words.next(), words.next())
    else {
        return Err(ParseError::RequestLine);
    };
    if method.is_empty() || target.is_empty() || version.is_empty() {
        return Err(ParseError::RequestLine);
    }
    if !method.iter().all(|b| is_tchar(*b)) {
        return Err(ParseError::Method);
    }
    let method = ascii(method).ok_or(ParseError::Method)?;
    let (path, query) = parse_target(target)?;
    let minor = parse_version(version)?;
    Ok((method, path, query, minor))
}

/// Origin-form or absolute-form (`http`/`https`, any case) -> (path, query).
fn parse_target(target: &[u8]) -> Result<(&str, Option<&str>), ParseError> {
    if !target.iter().all(|b| (0x21..=0x7e).contains(b)) {
        return Err(ParseError::Target);
    }
    let target = ascii(target).ok_or(ParseError::Target)?;
    let path_and_query = if target.starts_with('/') {
        target
    } else {
        let scheme_end = target.find("://").ok_or(ParseError::Target)?;
        let scheme = target.get(..scheme_end).unwrap_or_default();
        if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
            return Err(ParseError::Target);
        }
        let after = target.get(scheme_end + 3..).unwrap_or_default();
        let authority_end = after.find(['/', '?']).unwrap_or(after.len());
        if authority_end == 0 {
            return Err(ParseError::Target);
        }
        after.get(authority_end..).unwrap_or_default()
    };
    let (path, query) = match path_and_query.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (path_and_query, None),
    };
    Ok((if path.is_empty() { "/" } else { path }, query))
}

/// `HTTP/1.x` -> x.
fn parse_version(version: &[u8]) -> Result<u8, ParseError> {
    let [b'H', b'T', b'T', b'P', b'/', major, b'.', minor] = version else {
        return Err(ParseError::Version);
    };
    if !major.is_ascii_digit() || !minor.is_ascii_digit() {
        return Err(ParseError::Version);
    }
    if *major != b'1' {
        return Err(ParseError::UnsupportedVersion(major - b'0'));
    }
    Ok(minor - b'0')
}

/// `name: value` with a token name and a value of field-content bytes.
fn check_header(line: &[u8]) -> Result<(), ()> {
    let colon = line.iter().position(|b| *b == b':').ok_or(())?;
    let (name, value) = (
        line.get(..colon).ok_or(())?,
        line.get(colon + 1..).ok_or(())?,
    );
    // A name is a token: no empty name, no space before the colon, no folded line (a line
    // starting with a space or tab is not a token either).
    if name.is_empty() || !name.iter().all(|b| is_tchar(*b)) {
        return Err(());
    }
    let field_byte = |b: &u8| *b == b'\t' || (0x20..=0x7e).contains(b) || *b >= 0x80;
    if value.iter().all(field_byte) {
        Ok(())
    } else {
        Err(())
    }
}

/// RFC 9110 tchar: the characters of a token (methods, header names).
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn ascii(bytes: &[u8]) -> Option<&str> {
    std::str::from_utf8(bytes).ok().filter(|s| s.is_ascii())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(text: &str) -> Request<'_> {
        parse(text.as_bytes()).unwrap_or_else(|e| panic!("{text:?}: {e}"))
    }

    fn err(bytes: &[u8]) -> ParseError {
        match parse(bytes) {
            Ok(r) => panic!("{:?} parsed as {r:?}", String::from_utf8_lossy(bytes)),
            Err(e) => e,
        }
    }

    #[test]
    fn scrapers_requests_parse() {
        let text = "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:9464\r\nUser-Agent: Prometheus/2.51.0\r\nAccept: application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5,*/*;q=0.1\r\nX-Prometheus-Scrape-Timeout-Seconds: 10\r\n\r\n";
        assert_eq!(
            ok(text),
            Request {
                method: "GET",
                path: "/metrics",
                query: None,
                minor_version: 1,
                head_len: text.len(),
            }
        );
        // Bare LF, HTTP/1.0, no headers, a query, and what follows the head is not read.
        let r = ok("HEAD /metrics?x=1 HTTP/1.0\n\nbody");
        assert_eq!(
            (r.method, r.path, r.query),
            ("HEAD", "/metrics", Some("x=1"))
        );
        assert_eq!((r.minor_version, r.head_len), (0, 28));
        let r = ok("GET http://localhost:9464/metrics HTTP/1.1\r\n\r\n");
        assert_eq!(r.path, "/metrics");
        let r = ok("GET HTTP://h?q HTTP/1.1\r\n\r\n");
        assert_eq!((r.path, r.query), ("/", Some("q")));
        // Header values may hold obs-text and tabs; methods are any token.
        let r = ok("PURGE /x HTTP/1.1\r\nX-A:\té v \r\nEmpty:\r\n\r\n");
        assert_eq!((r.method, r.path), ("PURGE", "/x"));
    }

    #[test]
    fn malformed_heads_are_refused_with_their_status() {
        let cases: &[(&[u8], ParseError)] = &[
            (b"\r\n\r\n", ParseError::EmptyRequestLine),
            (b"\n", ParseError::EmptyRequestLine),
            (b"garbage\r\n", ParseError::RequestLine),
            (b"GET /metrics\r\n\r\n", ParseError::RequestLine),
            (b"GET  /metrics HTTP/1.1\r\n\r\n", ParseError::RequestLine),
            (b"GET /metrics HTTP/1.1 extra\r\n", ParseError::RequestLine),
            (b" GET /metrics HTTP/1.1\r\n", ParseError::RequestLine),
            (b"G(T /metrics HTTP/1.1\r\n", ParseError::Method),
            (b"G\xc3\xa9T /metrics HTTP/1.1\r\n", ParseError::Method),
            (b"GET metrics HTTP/1.1\r\n", ParseError::Target),
            (b"GET ftp://h/metrics HTTP/1.1\r\n", ParseError::Target),
            (b"GET http:///metrics HTTP/1.1\r\n", ParseError::Target),
            (b"GET /m\x7fx HTTP/1.1\r\n", ParseError::Target),
            (b"GET /m\xc3\xa9 HTTP/1.1\r\n", ParseError::Target),
            (b"GET /metrics HTTP/1.1\r\r\n", ParseError::Version),
            (b"GET /metrics http/1.1\r\n", ParseError::Version),
            (b"GET /metrics HTTP/11\r\n", ParseError::Version),
            (b"GET /metrics HTTP/x.1\r\n", ParseError::Version),
            (
                b"GET /metrics HTTP/2.0\r\n",
                ParseError::UnsupportedVersion(2),
            ),
            (
                b"GET /metrics HTTP/0.9\r\n",
                ParseError::UnsupportedVersion(0),
            ),
            (b"GET / HTTP/1.1\r\nno colon\r\n\r\n", ParseError::Header(1)),
            (
                b"GET / HTTP/1.1\r\nA: 1\r\nB : 2\r\n\r\n",
                ParseError::Header(2),
            ),
            (b"GET / HTTP/1.1\r\n: v\r\n\r\n", ParseError::Header(1)),
            (
                b"GET / HTTP/1.1\r\nA: 1\r\n folded\r\n\r\n",
                ParseError::Header(2),
            ),
            (
                b"GET / HTTP/1.1\r\nA: b\x00c\r\n\r\n",
                ParseError::Header(1),
            ),
            (b"GET / HTTP/1.1\r\nA: b\rc\r\n\r\n", ParseError::Header(1)),
        ];
        for (bytes, want) in cases {
            assert_eq!(err(bytes), *want, "{:?}", String::from_utf8_lossy(bytes));
        }
        assert_eq!(ParseError::EmptyRequestLine.status(), "400 Bad Request");
        assert_eq!(ParseError::Header(3).status(), "400 Bad Request");
        assert_eq!(
            ParseError::UnsupportedVersion(2).status(),
            "505 HTTP Version Not Supported"
        );
        assert_eq!(
            ParseError::TooLarge.status(),
            "431 Request Header Fields Too Large"
        );
    }

    #[test]
    fn incomplete_until_the_empty_line_and_bounded() {
        for partial in [
            &b""[..],
            b"GET",
            b"GET /metrics HTTP/1.1",
            b"GET /metrics HTTP/1.1\r\n",
            b"GET /metrics HTTP/1.1\r\nHost: x\r\n",
            b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r",
        ] {
            assert_eq!(err(partial), ParseError::Incomplete, "{partial:?}");
        }
        // A head of exactly the limit fits; one byte more does not.
        let mut head = b"GET /metrics HTTP/1.1\r\nX: ".to_vec();
        head.resize(HEAD_LIMIT - 4, b'a');
        head.extend_from_slice(b"\r\n\r\n");
        assert_eq!(ok(std::str::from_utf8(&head).unwrap()).head_len, HEAD_LIMIT);
        let mut long = head.clone();
        long.insert(30, b'a');
        assert_eq!(err(&long), ParseError::TooLarge);
        // Up to the limit a head without its empty line may still come; past it, not.
        let endless = vec![b'a'; HEAD_LIMIT];
        assert_eq!(err(&endless), ParseError::Incomplete);
        assert_eq!(err(&[&endless[..], b"a"].concat()), ParseError::TooLarge);
    }

    #[test]
    fn a_decision_is_final() {
        // Every prefix of these inputs is Incomplete or the whole input's answer.
        let inputs: &[&[u8]] = &[
            b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\n\r\n",
            b"garbage\r\nmore garbage\r\n\r\n",
            b"GET / HTTP/1.1\r\nA: 1\r\nbad\r\n\r\n",
            b"GET /metrics HTTP/2.0\r\n\r\n",
        ];
        for input in inputs {
            let whole = parse(input);
            for n in 0..input.len() {
                let prefix = parse(&input[..n]);
                assert!(
                    prefix == Err(ParseError::Incomplete) || prefix == whole,
                    "{:?}: prefix {n} gave {prefix:?}, the whole {whole:?}",
                    String::from_utf8_lossy(input)
                );
            }
        }
    }
}
