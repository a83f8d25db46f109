//! What the kernel reports: read with iproute2's `ss` (independent of our own decoders), the
//! established MPTCP subflows of a namespace grouped by their connection's local token; and
//! ([`EventLog`]) every `mptcp_pm` event of a namespace, time-stamped when it arrives.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use mptcp_pmd_policies::PmEvent;
use netlink_actor::genl::PmEventSocket;
use netlink_actor::Error as GenlError;

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
    /// tcp_info `bytes_acked` (0 when ss omits it).
    pub bytes_acked: u64,
    /// tcp_info smoothed RTT, µs (ss prints ms with three decimals).
    pub srtt_us: Option<u64>,
    /// tcp_info `unacked` segments (0 when ss omits it).
    pub unacked: u64,
}

impl SsSubflow {
    /// Whether this host asked for the backup flag (`b` in the flags).
    pub fn backup(&self) -> bool {
        self.flags.contains('b')
    }

    /// The smoothed RTT in ms.
    pub fn srtt_ms(&self) -> Option<f64> {
        self.srtt_us.map(|us| us as f64 / 1000.0)
    }
}

fn parse_addr(s: &str) -> Option<SocketAddr> {
    // "198.18.1.2%c1:52331", "[2001:db8::2]:443", "[2001:db8::2%c1]:443" or, for a socket
    // bound to a device (our joins), "[2001:db8:1::2]%c1:52331"
    let (host, port) = s.rsplit_once(':')?;
    let host = host.split('%').next()?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
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
        let mut sf = SsSubflow {
            local,
            remote,
            flags: String::new(),
            bytes_acked: 0,
            srtt_us: None,
            unacked: 0,
        };
        for w in line.split_whitespace() {
            if let Some(v) = w.strip_prefix("bytes_acked:") {
                sf.bytes_acked = v.parse().unwrap_or(0);
            } else if let Some(v) = w.strip_prefix("rtt:") {
                sf.srtt_us = v
                    .split('/')
                    .next()
                    .and_then(|x| x.parse::<f64>().ok())
                    .map(|ms| (ms * 1000.0).round() as u64);
            } else if let Some(v) = w.strip_prefix("unacked:") {
                sf.unacked = v.parse().unwrap_or(0);
            }
        }
        let mut token = None;
        for w in ulp.split_whitespace() {
            if let Some(v) = w.strip_prefix("flags:") {
                sf.flags = v.to_string();
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
            map.entry(t).or_default().push(sf);
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

/// A counter of the namespace's `/proc/net/snmp` or `/proc/net/netstat` (e.g. `Tcp`
/// `OutRsts`, `MPTcpExt` `AddAddrDrop`): the kernel's own account of what it dropped or
/// refused, where no event says it.
pub fn mib(ns: &Netns, group: &str, name: &str) -> Option<u64> {
    let text = ns
        .run(&["cat", "/proc/net/snmp", "/proc/net/netstat"])
        .ok()?;
    let prefix = format!("{group}:");
    let mut rows = text.lines().filter(|l| l.starts_with(&prefix));
    let (names, values) = (rows.next()?, rows.next()?);
    let i = names.split_whitespace().position(|n| n == name)?;
    values.split_whitespace().nth(i)?.parse().ok()
}

/// One event and when the harness received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stamped {
    /// When the reader thread got it from the socket.
    pub at: Instant,
    /// The decoded event.
    pub event: PmEvent,
}

/// The `mptcp_pm_events` of one namespace, read on a background thread as soon as the kernel
/// sends them (so the time stamps do not depend on when a test looks) and kept until a test
/// claims them. Dropping it closes the socket: the namespace then has one listener fewer, which
/// matters to the userspace PM (it accepts joins only while someone listens).
pub struct EventLog {
    side: String,
    rx: mpsc::Receiver<Result<Stamped, String>>,
    pending: Vec<Stamped>,
    stop: Arc<AtomicBool>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl EventLog {
    /// Subscribe to `mptcp_pm_events` in `ns`; `side` names it in failure messages.
    pub fn open(ns: &Netns, side: &str) -> EventLog {
        EventLog::open_reacting(ns, side, |_| {})
    }

    /// Like [`EventLog::open`], and `react` sees every event on the reader thread the moment
    /// it arrives, before it is logged: a stand-in for a daemon that answers an event with a
    /// command, without the test's polling delay in between.
    pub fn open_reacting(
        ns: &Netns,
        side: &str,
        react: impl FnMut(&Stamped) + Send + 'static,
    ) -> EventLog {
        let sock = ns
            .exec(|| PmEventSocket::open(4 << 20))
            .expect("enter netns")
            .expect("open mptcp_pm events socket");
        sock.set_nonblocking(true)
            .expect("non-blocking events socket");
        let (tx, rx) = mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = Arc::clone(&stop);
        let reader = std::thread::spawn(move || read_events(sock, &tx, &stop2, react));
        EventLog {
            side: side.to_string(),
            rx,
            pending: Vec::new(),
            stop,
            reader: Some(reader),
        }
    }

    fn pull(&mut self) {
        while let Ok(r) = self.rx.try_recv() {
            match r {
                Ok(s) => self.pending.push(s),
                Err(e) => panic!("{}: {e}", self.side),
            }
        }
    }

    /// Wait up to `timeout` for the first unclaimed event matching `pred`, and claim it.
    pub fn try_wait(
        &mut self,
        timeout: Duration,
        pred: impl Fn(&PmEvent) -> bool,
    ) -> Option<Stamped> {
        let end = Instant::now() + timeout;
        loop {
            self.pull();
            if let Some(i) = self.pending.iter().position(|s| pred(&s.event)) {
                return Some(self.pending.remove(i));
            }
            if Instant::now() >= end {
                return None;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Like [`EventLog::try_wait`]; panics with every unclaimed event when none matches.
    pub fn wait(
        &mut self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&PmEvent) -> bool,
    ) -> Stamped {
        match self.try_wait(timeout, pred) {
            Some(s) => s,
            None => {
                let seen = self.unclaimed();
                panic!(
                    "{}: no {what} within {timeout:?}; unclaimed: {seen:#?}",
                    self.side
                )
            }
        }
    }

    /// The unclaimed events received so far (left in place).
    pub fn unclaimed(&mut self) -> Vec<PmEvent> {
        self.pull();
        self.pending.iter().map(|s| s.event.clone()).collect()
    }

    /// Forget every unclaimed event.
    pub fn clear(&mut self) {
        self.pull();
        self.pending.clear();
    }
}

impl Drop for EventLog {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.reader.take() {
            let _ = h.join();
        }
    }
}

/// The reader thread: poll(2) with a short timeout so that a stop request is seen promptly.
fn read_events(
    mut sock: PmEventSocket,
    tx: &mpsc::Sender<Result<Stamped, String>>,
    stop: &AtomicBool,
    mut react: impl FnMut(&Stamped),
) {
    let fd = sock.as_raw_fd();
    while !stop.load(Ordering::Relaxed) {
        let mut pfd = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd for an fd this thread owns (through `sock`).
        if unsafe { libc::poll(&mut pfd, 1, 20) } <= 0 {
            continue;
        }
        loop {
            match sock.recv_batch() {
                Ok(batch) => {
                    let at = Instant::now();
                    for ev in batch {
                        let msg = ev
                            .map(|d| Stamped { at, event: d.event })
                            .map_err(|e| format!("undecodable event: {e}"));
                        if let Ok(s) = &msg {
                            react(s);
                        }
                        if tx.send(msg).is_err() {
                            return;
                        }
                    }
                }
                Err(GenlError::WouldBlock) => break,
                Err(e) => {
                    let _ = tx.send(Err(e.to_string()));
                    return;
                }
            }
        }
    }
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
        let v6 = "0 0 [2001:db8:1::2]%c1:44554 [2001:db8:11::2]:5000\n\t tcp-ulp-mptcp flags:Jjec token:0000(id:0)/11223344(id:2) seq:a3\n";
        let m = parse_ss(v6);
        assert_eq!(
            m["11223344"][0].local,
            "[2001:db8:1::2]:44554".parse().unwrap()
        );
    }

    #[test]
    fn parses_tcp_info_fields_and_the_backup_flag() {
        let out = "0 0 198.18.0.2:41000 198.19.0.2:5490\n\t cubic wscale:7,7 rto:204 rtt:3.5/1.25 mss:1448 bytes_sent:2000 bytes_acked:1449 unacked:3 minrtt:0.1 tcp-ulp-mptcp flags:Mmec token:0000(id:0)/1a2b(id:0) seq:1\n0 0 198.18.1.2%c1:42000 198.19.0.2:5490\n\t cubic rtt:1/0.5 tcp-ulp-mptcp flags:Jjecb token:0000(id:0)/1a2b(id:1) seq:1\n0 0 10.0.0.1:22 10.0.0.2:5555\n\t cubic rtt:1/1\n";
        let m = parse_ss(out);
        assert_eq!(m.len(), 1);
        let sfs = &m["1a2b"];
        assert_eq!(sfs.len(), 2);
        assert_eq!(sfs[0].bytes_acked, 1449);
        assert_eq!(sfs[0].srtt_ms(), Some(3.5));
        assert_eq!(sfs[0].unacked, 3);
        assert!(!sfs[0].backup() && sfs[1].backup());
        assert_eq!(sfs[1].local, "198.18.1.2:42000".parse().unwrap());
        assert_eq!(sfs[1].bytes_acked, 0);
        assert_eq!(sfs[1].srtt_ms(), Some(1.0));
    }
}
