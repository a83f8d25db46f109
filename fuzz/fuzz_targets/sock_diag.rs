//! Fuzz the sock_diag parsers: the input is used both as one reply payload
//! (`parse_mptcp_conn`, `parse_subflow`, `parse_inet_diag_msg`) and as a dump datagram fed
//! through `feed_dump` with both parsers, the way `DiagSocket` does, then joined.
#![no_main]

use libfuzzer_sys::fuzz_target;
use netlink_actor::nlmsg::messages;
use netlink_actor::sock_diag::{
    feed_dump, join, parse_inet_diag_msg, parse_mptcp_conn, parse_subflow, Dump,
};

fuzz_target!(|data: &[u8]| {
    let _ = parse_inet_diag_msg(data);
    let _ = parse_mptcp_conn(data);
    let _ = parse_subflow(data);
    // The sequence number the dump expects: the first message's, so fixtures are accepted.
    let seq = messages(data)
        .next()
        .and_then(|m| m.ok())
        .map(|m| m.header.seq)
        .unwrap_or(0);
    let mut conns = Dump::default();
    let _ = feed_dump(
        data,
        seq,
        "fuzz mptcp",
        |p| parse_mptcp_conn(p).map(Some),
        &mut conns,
    );
    let mut subs = Dump::default();
    let _ = feed_dump(data, seq, "fuzz tcp", parse_subflow, &mut subs);
    let _ = join(conns.items, subs.items);
});
