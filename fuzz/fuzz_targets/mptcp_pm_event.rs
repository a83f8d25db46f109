//! Fuzz the `mptcp_pm` event decoder: arbitrary bytes framed as netlink messages, each decoded
//! as an event. Decoding may fail; it must never panic, hang or over-read.
#![no_main]

use libfuzzer_sys::fuzz_target;
use netlink_actor::mptcp_pm::{decode_addr, decode_event, decode_limits};
use netlink_actor::wire::messages;

fuzz_target!(|data: &[u8]| {
    for m in messages(data).take(4096) {
        let Ok(m) = m else { break };
        let _ = decode_event(&m);
        let _ = decode_addr(&m);
        let _ = decode_limits(&m);
    }
});
