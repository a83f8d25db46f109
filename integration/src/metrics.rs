//! Reading the daemon's Prometheus endpoint from inside a namespace: one scrape, and the
//! `name{labels} value` samples of its text body.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;

use crate::Netns;

/// The body (with the HTTP head) of `GET /metrics` on `127.0.0.1:port` inside `ns`.
pub fn scrape(ns: &Netns, port: u16) -> String {
    ns.exec(move || {
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    })
    .unwrap()
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
