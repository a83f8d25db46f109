//! What a link's own counters say and how its segments reach them: the interface byte
//! counters of a namespace's device (`/sys/class/net/DEV/statistics`, what rtnetlink reports)
//! and a switch that makes a veth count every TCP segment as its own frame, as a NIC puts
//! them on the wire (a veth otherwise passes TSO/GSO super-packets, counting their headers
//! once). For comparing the daemon's metered byte counts with the interface's.

use crate::netns::{HarnessError, Netns};

/// Received and sent bytes of device `dev` in `ns` (the interface's own counters: link-layer
/// frames, the Ethernet header included on a veth).
pub fn byte_counters(ns: &Netns, dev: &str) -> Result<(u64, u64), HarnessError> {
    let read = |what: &str| -> Result<u64, HarnessError> {
        let path = format!("/sys/class/net/{dev}/statistics/{what}");
        let text = ns.run(&["cat", &path])?;
        text.trim().parse().map_err(|e| HarnessError::Spawn {
            cmd: format!("cat {path}"),
            source: std::io::Error::other(format!("{e}: {text:?}")),
        })
    };
    Ok((read("rx_bytes")?, read("tx_bytes")?))
}

/// `ip link set DEV gso_max_segs 1`: the stack then sends every segment on `dev` as its own
/// packet (no TSO/GSO batches), so the device counts each segment's headers.
pub fn one_segment_per_packet(ns: &Netns, dev: &str) -> Result<(), HarnessError> {
    ns.run(&["ip", "link", "set", "dev", dev, "gso_max_segs", "1"])
        .map(|_| ())
}
