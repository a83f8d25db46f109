//! Netlink messages made up by the tests (a fake kernel's answers, edited fixtures), built with
//! neli, independently of the crate's encoders.

// Test helpers may unwrap: a builder that fails is a broken test.
#![allow(clippy::unwrap_used, dead_code)]

use std::io::Cursor;

use neli::consts::nl::NlmF;
use neli::genl::{AttrTypeBuilder, GenlmsghdrBuilder, Nlattr, NlattrBuilder};
use neli::nl::{NlPayload, NlmsghdrBuilder};
use neli::types::{Buffer, GenlBuffer};
use neli::{Size, ToBytes};

fn serialise(t: &impl ToBytes) -> Vec<u8> {
    let mut c = Cursor::new(Vec::new());
    t.to_bytes(&mut c).unwrap();
    c.into_inner()
}

/// One message: type `ty`, `flags`, `seq`, `payload`. As the kernel's, its length leaves out
/// the padding after an unaligned payload (which is there all the same).
pub fn message(ty: u16, flags: u16, seq: u32, payload: &[u8]) -> Vec<u8> {
    let m = NlmsghdrBuilder::default()
        .nl_type(ty)
        .nl_flags(NlmF::from_bits_retain(flags))
        .nl_seq(seq)
        .nl_payload(NlPayload::Payload(Buffer::from(payload)))
        .build()
        .unwrap();
    let mut bytes = serialise(&m);
    let len = u32::try_from(16 + payload.len()).unwrap();
    bytes[..4].copy_from_slice(&len.to_ne_bytes());
    bytes
}

/// One generic netlink attribute (type `ty`, the payload as given), serialised with padding.
pub fn attr(ty: u16, payload: &[u8]) -> Vec<u8> {
    serialise(&nlattr(ty, payload))
}

fn nlattr(ty: u16, payload: &[u8]) -> Nlattr<u16, Buffer> {
    NlattrBuilder::default()
        .nla_type(AttrTypeBuilder::default().nla_type(ty).build().unwrap())
        .nla_payload(Buffer::from(payload))
        .build()
        .unwrap()
}

/// A generic netlink message of family `family`: command `cmd` (version 1) and `attrs`, each a
/// (type, payload) pair, in order; flags 0 and sequence number 0, as multicast events carry.
pub fn genl(family: u16, cmd: u8, attrs: &[(u16, Vec<u8>)]) -> Vec<u8> {
    let list: GenlBuffer<u16, Buffer> = attrs.iter().map(|(t, p)| nlattr(*t, p)).collect();
    let g = GenlmsghdrBuilder::<u8, u16>::default()
        .cmd(cmd)
        .version(1)
        .attrs(list)
        .build()
        .unwrap();
    let m = NlmsghdrBuilder::default()
        .nl_type(family)
        .nl_flags(NlmF::empty())
        .nl_payload(NlPayload::Payload(g))
        .build()
        .unwrap();
    assert_eq!(m.padded_size(), serialise(&m).len());
    serialise(&m)
}
