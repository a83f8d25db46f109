//! Fuzz what every family shares (`netlink_actor::wire`, over neli): the framing of a
//! datagram into messages, the kernel's verdicts (`error_verdict`: NLMSG_ERROR with its
//! extended-ACK attributes, capped or not; `done_verdict`: a dump's NLMSG_DONE), the genl
//! header, nested attributes in both formats with every typed read, and the reply matching of
//! `transport::Replies` (sequence numbers, ACK / error / DONE, a trace of each reply). It must
//! never panic (overflow checks are on), hang or over-read.
#![no_main]

use libfuzzer_sys::fuzz_target;
use netlink_actor::transport::Replies;
use netlink_actor::wire::{
    attrs, done_verdict, error_verdict, genl_header, messages, rtattrs, Attr, Attrs,
};

/// Walks a run of attributes, reading each as every type, nested ones to `depth` levels.
fn walk(run: Attrs<'_>, depth: u8) {
    for a in run.take(1024) {
        let Ok(a) = a else { break };
        read(&a);
        if depth > 0 {
            walk(a.attrs(), depth - 1);
            walk(a.rtattrs(), depth - 1);
        }
    }
}

fn read(a: &Attr<'_>) {
    let _ = (a.u8("u8"), a.u16("u16"), a.u16_be("be16"), a.u32("u32"));
    let _ = (a.i32("i32"), a.u64("u64"), a.ipv4("v4"), a.ipv6("v6"));
    let _ = a.string();
}

fuzz_target!(|data: &[u8]| {
    let mut seq = None;
    let mut it = messages(data);
    for m in it.by_ref().take(4096) {
        let Ok(m) = m else { break };
        seq.get_or_insert(m.seq());
        let _ = error_verdict(&m);
        let _ = done_verdict(&m);
        if let Ok((_, run)) = genl_header(&m) {
            walk(attrs(run), 3);
        }
        walk(rtattrs(m.payload()), 3);
    }
    let _ = it.rest();
    let mut trace = Vec::new();
    let mut replies = Replies::new("fuzz request", seq.unwrap_or(0));
    let _ = replies.feed(data, &mut |m| genl_header(m).map(|_| ()), Some(&mut trace));
    let _ = replies.finish();
});
