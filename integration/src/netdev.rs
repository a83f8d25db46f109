//! Interface byte counters of a namespace, as the kernel counts them (`/proc/net/dev`), read
//! cheaply enough to sample every few ms: from a thread inside the namespace
//! ([`crate::Netns::exec_bg`]), `/proc/thread-self/net/dev` is that namespace's table (no
//! `ip netns exec`, no process start per read).

use std::collections::BTreeMap;

/// The byte counters of one interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DevBytes {
    /// Bytes received.
    pub rx: u64,
    /// Bytes sent.
    pub tx: u64,
}

/// The interfaces of the calling thread's namespace and their byte counters.
pub fn read_here() -> std::io::Result<BTreeMap<String, DevBytes>> {
    Ok(parse(&std::fs::read_to_string(
        "/proc/thread-self/net/dev",
    )?))
}

/// Parse `/proc/net/dev`: two header lines, then `name: rx_bytes rx_packets ... (8 receive
/// fields) tx_bytes ...`.
pub fn parse(text: &str) -> BTreeMap<String, DevBytes> {
    text.lines()
        .skip(2)
        .filter_map(|l| {
            let (name, rest) = l.split_once(':')?;
            let f: Vec<u64> = rest
                .split_whitespace()
                .map(|v| v.parse().ok())
                .collect::<Option<_>>()?;
            Some((
                name.trim().to_string(),
                DevBytes {
                    rx: *f.first()?,
                    tx: *f.get(8)?,
                },
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_net_dev() {
        let t = "Inter-|   Receive                                                |  Transmit\n face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n    lo:     120       2    0    0    0     0          0         0      120       2    0    0    0     0       0          0\n    s0: 9876543   6543    0    1    0     0          0         0    43210     321    0    0    0     0       0          0\n";
        let m = parse(t);
        assert_eq!(m.len(), 2);
        assert_eq!(
            m["s0"],
            DevBytes {
                rx: 9_876_543,
                tx: 43_210
            }
        );
        assert_eq!(m["lo"].rx, 120);
    }
}
