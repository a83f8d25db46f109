//! Fuzz the sock_diag parsers: the input is used both as one reply payload
//! (`parse_mptcp_conn`, `parse_subflow`, `parse_inet_diag_msg`) and as a dump datagram fed
//! through `dump::feed` with both reply parsers, the way `DiagSocket` does, then joined; and
//! as the answers to a batch of exact lookups (`LookupBatch::feed`, the sampler's path).
#![no_main]

use libfuzzer_sys::fuzz_target;
use netlink_actor::dump::{feed, Dump};
use netlink_actor::sock_diag::lookup::LookupBatch;
use netlink_actor::sock_diag::{
    join, parse_inet_diag_msg, parse_mptcp_conn, parse_mptcp_reply, parse_subflow,
    parse_subflow_reply,
};
use netlink_actor::wire::messages;

fuzz_target!(|data: &[u8]| {
    let _ = parse_inet_diag_msg(data);
    let _ = parse_mptcp_conn(data);
    let _ = parse_subflow(data);
    // The sequence number the dump expects: the first message's, so fixtures are accepted.
    let seq = messages(data)
        .next()
        .and_then(|m| m.ok())
        .map(|m| m.seq())
        .unwrap_or(0);
    let mut conns = Dump::default();
    let _ = feed(data, seq, "fuzz mptcp", parse_mptcp_reply, &mut conns);
    let mut subs = Dump::default();
    let _ = feed(data, seq, "fuzz tcp", parse_subflow_reply, &mut subs);
    let _ = join(conns.items, subs.items);
    // A batch whose sequence numbers start at the first message's (and wrap past u32::MAX).
    for first in [seq, seq.wrapping_sub(1), u32::MAX] {
        let mut batch = LookupBatch::new(first, 4);
        batch.feed(data);
        batch.feed(data);
        let _ = (batch.complete(), batch.answers().len());
    }
});
