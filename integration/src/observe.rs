//! What the kernel reports, read with iproute2's `ss` (independent of our own decoders): the
//! established MPTCP subflows of a namespace, grouped by their connection's local token.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use crate::netns::Netns;

/// One subflow as `ss -tni` shows it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct SsSubflow {
    /// Local address and port.
    pub local: SocketAddr,
    /// Remote address and port.
    pub remote: SocketAddr,
    /// The `flags:` of tcp-ulp-mptcp (e.g. `Jjec`; a `b`/`B` marks backup).
    pub flags: String,
}

fn parse_addr(s: &str) -> Option<SocketAddr> {
    // "198.18.1.2%c1:52331" or "[2001:db8::2]:443" or "[2001:db8::2%c1]:443"
    let (host, port) = s.rsplit_once(':')?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let host = host.split('%').next()?;
    Some(SocketAddr::new(host.parse().ok()?, port.parse().ok()?))
}

/// Parse `ss -tniH state established` output: subflows by local token (hex, as ss prints it).
pub fn parse_ss(out: &str) -> BTreeMap<String, Vec<SsSubflow>> {
    let mut map: BTreeMap<String, Vec<SsSubflow>> = BTreeMap::new();
    let mut cur: Option<(SocketAddr, SocketAddr)> = None;
    for line in out.lines() {
        if !line.starts_with(char::is_whitespace) {
            let f: Vec<&str> = line.split_whitespace().collect();
            cur = match f.as_slice() {
                [_, _, l, r, ..] => parse_addr(l).zip(parse_addr(r)),
                _ => None,
            };
            continue;
        }
        let Some((local, remote)) = cur.take() else {
            continue;
        };
        let Some(ulp) = line.split("tcp-ulp-mptcp").nth(1) else {
            continue;
        };
        let mut flags = String::new();
        let mut token = None;
        for w in ulp.split_whitespace() {
            if let Some(v) = w.strip_prefix("flags:") {
                flags = v.to_string();
            }
            if let Some(v) = w.strip_prefix("token:") {
                // token:REM(id:x)/LOC(id:y)
                token = v
                    .split('/')
                    .nth(1)
                    .and_then(|t| t.split('(').next())
                    .map(str::to_string);
            }
        }
        if let Some(t) = token {
            map.entry(t).or_default().push(SsSubflow {
                local,
                remote,
                flags,
            });
        }
    }
    for v in map.values_mut() {
        v.sort();
    }
    map
}

/// The established MPTCP subflows in `ns`, by connection (local token), towards `port`.
pub fn subflows(ns: &Netns, port: u16) -> BTreeMap<String, Vec<SsSubflow>> {
    let out = ns
        .run(&["ss", "-tniH", "state", "established"])
        .unwrap_or_default();
    let mut m = parse_ss(&out);
    for v in m.values_mut() {
        v.retain(|s| s.remote.port() == port || s.local.port() == port);
    }
    m.retain(|_, v| !v.is_empty());
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ss_output() {
        let out = "0      0         198.18.0.2:54706 198.18.0.1:5000\n\t bbr rtt:0.047/0.026 tcp-ulp-mptcp flags:Mmec token:0000(id:0)/6749899c(id:0) seq:a3\n0      0      198.18.1.2%a1:52331 198.18.0.1:5000\n\t bbr tcp-ulp-mptcp flags:Jjec token:860bc4e8(id:0)/6749899c(id:1) seq:a3\n0 0 10.0.0.1:22 10.0.0.2:5555\n\t cubic rtt:1/1\n";
        let m = parse_ss(out);
        assert_eq!(m.len(), 1);
        let v = &m["6749899c"];
        assert_eq!(v.len(), 2);
        assert_eq!(v[1].local, "198.18.1.2:52331".parse().unwrap());
        assert_eq!(v[1].flags, "Jjec");
    }
}
