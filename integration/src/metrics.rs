//! Reading the daemon's Prometheus endpoint from inside a namespace: one scrape (from any
//! thread, or from one already in the namespace), and the `name{labels} value` samples of its
//! text body.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use crate::Netns;

/// The body (with the HTTP head) of `GET /metrics` on `127.0.0.1:port` inside `ns`.
pub fn scrape(ns: &Netns, port: u16) -> String {
    ns.exec(move || get(port)).unwrap().unwrap()
}

/// `GET /metrics` on `127.0.0.1:port` in the calling thread's namespace: the response, HTTP
/// head included (each read waits 30 s at most, so a stuck daemon fails the caller).
pub fn get(port: u16) -> std::io::Result<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out)
}

/// `name{labels} value` lines of a Prometheus text body.
pub fn samples(body: &str) -> BTreeMap<String, f64> {
    body.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            Some((k.to_string(), v.parse().ok()?))
        })
        .collect()
}
