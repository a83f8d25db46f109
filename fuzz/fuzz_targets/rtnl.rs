//! Fuzz the rtnetlink decoder: the input as a datagram of multicast events (`decode_events`, as
//! `RtnlSocket::recv_batch` does), as one message payload (`parse_addr`, `parse_link`), and as
//! dump replies (`dump::feed` with the link and address reply parsers, as `RtnlSocket`'s
//! dumps do). Decoding may fail; it must never panic (overflow checks are on), hang or
//! over-read.
#![no_main]

use libfuzzer_sys::fuzz_target;
use netlink_actor::dump::{feed, Dump};
use netlink_actor::rtnl::{
    decode_events, parse_addr, parse_addr_reply, parse_link, parse_link_reply,
};
use netlink_actor::wire::messages;

fuzz_target!(|data: &[u8]| {
    let _ = decode_events(data);
    let _ = parse_addr(data);
    let _ = parse_link(data);
    // The sequence number the dump expects: the first message's, so fixtures are accepted.
    let seq = messages(data)
        .next()
        .and_then(|m| m.ok())
        .map_or(0, |m| m.seq());
    let mut links = Dump::default();
    let _ = feed(data, seq, "fuzz links", parse_link_reply, &mut links);
    let mut addrs = Dump::default();
    let _ = feed(data, seq, "fuzz addrs", parse_addr_reply, &mut addrs);
});
