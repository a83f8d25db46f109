//! Fuzz the generic netlink controller's decoder (family and multicast-group resolution):
//! every message of the input into `genl_ctrl::decode_family`, and the input as the replies to
//! a CTRL_CMD_GETFAMILY request (`transport::Replies` with a decoding callback, as
//! `genl::resolve_family` runs it). Decoding may fail; it must never panic (overflow checks
//! are on), hang or over-read.
#![no_main]

use libfuzzer_sys::fuzz_target;
use netlink_actor::genl_ctrl::decode_family;
use netlink_actor::transport::Replies;
use netlink_actor::wire::messages;

fuzz_target!(|data: &[u8]| {
    let mut seq = 0;
    for m in messages(data).take(4096) {
        let Ok(m) = m else { break };
        seq = m.seq();
        if let Ok(f) = decode_family(&m) {
            let _ = f.group("mptcp_pm_events");
        }
    }
    let mut replies = Replies::new("fuzz CTRL_CMD_GETFAMILY", seq);
    let _ = replies.feed(data, &mut |m| decode_family(m).map(|_| ()), None);
    let _ = replies.finish();
});
