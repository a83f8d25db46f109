//! The `mptcp_pm` codec on bytes captured from a real kernel (Linux 6.18).
//!
//! Capture: the files in `tests/fixtures/mptcp_pm/` were written by the real-kernel scenarios
//! of `integration/tests/kernel_pm.rs`:
//! `MPTCP_PM_FIXTURE_DIR=$PWD/netlink-actor/tests/fixtures/mptcp_pm cargo test -p integration
//! --test kernel_pm -- --test-threads=1` (as root). `ev_*` are single netlink messages received
//! on `mptcp_pm_events` (client / server namespace), `cmd_*` are requests the kernel ACKed,
//! `reply_*` are the kernel's answers. The same run's `ip mptcp monitor` output is in
//! `monitor_*.txt`: the expected values below were read from it (an independent decoder), not
//! from ours. Re-capturing changes tokens and ports: update the constants here from the new
//! monitor files.

// Test helpers outside #[test] functions may unwrap/panic too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::{IpAddr, SocketAddr};

use mptcp_pmd_policies::{ConnFlags, ConnInfo, PmCommand, PmEvent, SubflowInfo, SubflowKey, Token};
use netlink_actor::mptcp_pm::*;
use netlink_actor::wire::{attrs, messages, Message, NLA_F_NESTED};
use netlink_actor::DecodeError;

mod common;

/// The family id on the capture machine (only checked against, never assumed at run time).
const FAMILY: u16 = 0x1c;

macro_rules! fixture {
    ($name:literal) => {
        include_bytes!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/mptcp_pm/",
            $name
        ))
        .as_slice()
    };
}

fn one(bytes: &[u8]) -> Message<'_> {
    let mut it = messages(bytes);
    let m = it.next().unwrap().unwrap();
    assert!(it.next().is_none(), "one message per fixture");
    m
}

fn decode(bytes: &[u8]) -> PmEvent {
    let m = one(bytes);
    assert_eq!(m.ty(), FAMILY);
    let d = decode_event(&m).unwrap();
    assert!(d.unknown_attrs.is_empty(), "{:?}", d.unknown_attrs);
    d.event
}

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

// Values from monitor_client_v4.txt / monitor_server_v4.txt.
const C4_TOKEN: Token = Token(0x9e77_56d0);
const S4_TOKEN: Token = Token(0x2bb8_7f08);
const C4_LOCAL0: &str = "198.18.0.2:42389";
const C4_LOCAL1: &str = "198.18.1.2:58807";
const S4: &str = "198.19.0.2:4242";
// Values from monitor_client_v6.txt / monitor_server_v6.txt.
const C6_TOKEN: Token = Token(0x8575_8047);
const S6_TOKEN: Token = Token(0xda44_18ef);
const C6_LOCAL0: &str = "[2001:db8::2]:44691";
const C6_LOCAL1: &str = "[2001:db8:1::2]:38049";
const S6: &str = "[2001:db8:10::2]:4242";

fn conn(token: Token, local: &str, remote: &str, server_side: bool) -> ConnInfo {
    ConnInfo {
        token,
        local: sa(local),
        remote: sa(remote),
        loc_id: 0,
        rem_id: 0,
        flags: ConnFlags {
            deny_join_id0: false,
            server_side,
        },
    }
}

fn sub(token: Token, local: &str, remote: &str, ids: (u8, u8), backup: bool) -> SubflowInfo {
    SubflowInfo {
        token,
        local: sa(local),
        remote: sa(remote),
        loc_id: ids.0,
        rem_id: ids.1,
        backup,
        if_idx: None,
        error: None,
        reset_reason: None,
        reset_flags: None,
    }
}

#[test]
fn created_and_established_v4_both_sides() {
    let c = conn(C4_TOKEN, C4_LOCAL0, S4, false);
    let s = conn(S4_TOKEN, S4, C4_LOCAL0, true);
    assert_eq!(
        decode(fixture!("ev_created_v4_client.bin")),
        PmEvent::Created(c)
    );
    assert_eq!(
        decode(fixture!("ev_established_v4_client.bin")),
        PmEvent::Established(c)
    );
    assert_eq!(
        decode(fixture!("ev_created_v4_server.bin")),
        PmEvent::Created(s)
    );
    assert_eq!(
        decode(fixture!("ev_established_v4_server.bin")),
        PmEvent::Established(s)
    );
}

#[test]
fn created_and_established_v6_both_sides() {
    let c = conn(C6_TOKEN, C6_LOCAL0, S6, false);
    let s = conn(S6_TOKEN, S6, C6_LOCAL0, true);
    assert_eq!(
        decode(fixture!("ev_created_v6_client.bin")),
        PmEvent::Created(c)
    );
    assert_eq!(
        decode(fixture!("ev_established_v6_client.bin")),
        PmEvent::Established(c)
    );
    assert_eq!(
        decode(fixture!("ev_created_v6_server.bin")),
        PmEvent::Created(s)
    );
    assert_eq!(
        decode(fixture!("ev_established_v6_server.bin")),
        PmEvent::Established(s)
    );
}

#[test]
fn server_side_from_flags_bit_or_attribute() {
    // 6.18 sends both MPTCP_ATTR_SERVER_SIDE=1 and FLAGS=SERVER_SIDE on the server: each alone
    // must be enough.
    let raw = fixture!("ev_created_v4_server.bin");
    let m = one(raw);
    let kept: Vec<(u16, Vec<u8>)> = attrs(&m.payload()[4..])
        .map(|a| a.unwrap())
        .map(|a| (a.ty(), a.payload().to_vec()))
        .collect();
    assert!(kept.iter().any(|a| a.0 == MPTCP_ATTR_SERVER_SIDE));
    assert!(kept.iter().any(|a| a.0 == MPTCP_ATTR_FLAGS));
    for drop in [MPTCP_ATTR_SERVER_SIDE, MPTCP_ATTR_FLAGS] {
        let without: Vec<_> = kept.iter().filter(|a| a.0 != drop).cloned().collect();
        let bytes = common::genl(FAMILY, MPTCP_EVENT_CREATED, &without);
        let PmEvent::Created(c) = decode(&bytes) else {
            panic!("not CREATED")
        };
        assert!(c.flags.server_side, "without attr {drop}");
    }
    // FLAGS bit0 is deny_join_id0, independent of server side.
    let mut list: Vec<_> = kept
        .iter()
        .filter(|a| a.0 != MPTCP_ATTR_FLAGS && a.0 != MPTCP_ATTR_SERVER_SIDE)
        .cloned()
        .collect();
    list.push((
        MPTCP_ATTR_FLAGS,
        MPTCP_PM_EV_FLAG_DENY_JOIN_ID0.to_ne_bytes().to_vec(),
    ));
    let PmEvent::Created(c) = decode(&common::genl(FAMILY, MPTCP_EVENT_CREATED, &list)) else {
        panic!("not CREATED")
    };
    assert_eq!(
        c.flags,
        ConnFlags {
            deny_join_id0: true,
            server_side: false
        }
    );
}

#[test]
fn subflow_events_v4() {
    let c = sub(C4_TOKEN, C4_LOCAL1, S4, (1, 0), false);
    let s = sub(S4_TOKEN, S4, C4_LOCAL1, (0, 1), false);
    let s_bkup = SubflowInfo { backup: true, ..s };
    assert_eq!(
        decode(fixture!("ev_sub_established_v4_client.bin")),
        PmEvent::SubEstablished(c)
    );
    assert_eq!(
        decode(fixture!("ev_sub_established_v4_server.bin")),
        PmEvent::SubEstablished(s)
    );
    assert_eq!(
        decode(fixture!("ev_sub_priority_v4_server.bin")),
        PmEvent::SubPriority(s_bkup)
    );
    assert_eq!(
        decode(fixture!("ev_sub_closed_v4_client.bin")),
        PmEvent::SubClosed(c)
    );
    assert_eq!(
        decode(fixture!("ev_sub_closed_v4_server.bin")),
        PmEvent::SubClosed(s_bkup)
    );
}

#[test]
fn subflow_events_v6() {
    let c = sub(C6_TOKEN, C6_LOCAL1, S6, (1, 0), false);
    let s = sub(S6_TOKEN, S6, C6_LOCAL1, (0, 1), false);
    let s_bkup = SubflowInfo { backup: true, ..s };
    assert_eq!(
        decode(fixture!("ev_sub_established_v6_client.bin")),
        PmEvent::SubEstablished(c)
    );
    assert_eq!(
        decode(fixture!("ev_sub_established_v6_server.bin")),
        PmEvent::SubEstablished(s)
    );
    assert_eq!(
        decode(fixture!("ev_sub_priority_v6_server.bin")),
        PmEvent::SubPriority(s_bkup)
    );
    assert_eq!(
        decode(fixture!("ev_sub_closed_v6_client.bin")),
        PmEvent::SubClosed(c)
    );
    assert_eq!(
        decode(fixture!("ev_sub_closed_v6_server.bin")),
        PmEvent::SubClosed(s_bkup)
    );
}

#[test]
fn announced_removed_closed() {
    assert_eq!(
        decode(fixture!("ev_announced_v4_client.bin")),
        PmEvent::Announced {
            token: C4_TOKEN,
            rem_id: 5,
            addr: ip("198.19.1.2"),
            port: Some(4242),
        }
    );
    assert_eq!(
        decode(fixture!("ev_announced_v6_client.bin")),
        PmEvent::Announced {
            token: C6_TOKEN,
            rem_id: 5,
            addr: ip("2001:db8:11::2"),
            port: Some(4242),
        }
    );
    assert_eq!(
        decode(fixture!("ev_removed_any_client.bin")),
        PmEvent::Removed {
            token: C6_TOKEN,
            rem_id: 5
        }
    );
    assert_eq!(
        decode(fixture!("ev_closed_any_client.bin")),
        PmEvent::Closed { token: C6_TOKEN }
    );
    assert_eq!(
        decode(fixture!("ev_closed_any_server.bin")),
        PmEvent::Closed { token: S6_TOKEN }
    );
}

#[test]
fn listener_events() {
    assert_eq!(
        decode(fixture!("ev_listener_created_v4_server.bin")),
        PmEvent::ListenerCreated { addr: sa(S4) }
    );
    assert_eq!(
        decode(fixture!("ev_listener_closed_v4_server.bin")),
        PmEvent::ListenerClosed { addr: sa(S4) }
    );
    assert_eq!(
        decode(fixture!("ev_listener_created_v6_server.bin")),
        PmEvent::ListenerCreated { addr: sa(S6) }
    );
    assert_eq!(
        decode(fixture!("ev_listener_closed_v6_server.bin")),
        PmEvent::ListenerClosed { addr: sa(S6) }
    );
}

#[test]
fn event_ports_are_big_endian() {
    // In the captured CREATED, SPORT is the bytes a5 95: 0xa595 = 42389 big-endian (the little
    // endian reading would be 38309).
    let raw = fixture!("ev_created_v4_client.bin");
    let m = one(raw);
    let sport = attrs(&m.payload()[4..])
        .map(|a| a.unwrap())
        .find(|a| a.ty() == MPTCP_ATTR_SPORT)
        .unwrap();
    assert_eq!(sport.payload(), &[0xa5, 0x95]);
    let PmEvent::Created(c) = decode(raw) else {
        panic!()
    };
    assert_eq!(c.local.port(), 42389);
    assert_eq!(c.remote.port(), 4242);
}

fn create_v4() -> PmCommand {
    PmCommand::CreateSubflow {
        token: C4_TOKEN,
        local: ip("198.18.1.2"),
        local_id: 1,
        if_index: None,
        remote: sa(S4),
        backup: false,
    }
}

fn key(local: &str, remote: &str) -> SubflowKey {
    SubflowKey {
        local: sa(local),
        remote: sa(remote),
    }
}

#[test]
fn command_encodings_match_kernel_accepted_bytes() {
    let cases: Vec<(u32, PmCommand, &[u8])> = vec![
        (1, create_v4(), fixture!("cmd_subflow_create_v4.bin")),
        (
            1,
            PmCommand::CreateSubflow {
                token: C6_TOKEN,
                local: ip("2001:db8:1::2"),
                local_id: 1,
                if_index: None,
                remote: sa(S6),
                backup: false,
            },
            fixture!("cmd_subflow_create_v6.bin"),
        ),
        (
            2,
            PmCommand::SetBackup {
                token: C4_TOKEN,
                key: key(C4_LOCAL1, S4),
                backup: true,
            },
            fixture!("cmd_set_flags_v4.bin"),
        ),
        (
            2,
            PmCommand::SetBackup {
                token: C6_TOKEN,
                key: key(C6_LOCAL1, S6),
                backup: true,
            },
            fixture!("cmd_set_flags_v6.bin"),
        ),
        (
            3,
            PmCommand::DestroySubflow {
                token: C4_TOKEN,
                key: key(C4_LOCAL1, S4),
            },
            fixture!("cmd_subflow_destroy_v4.bin"),
        ),
        (
            3,
            PmCommand::DestroySubflow {
                token: C6_TOKEN,
                key: key(C6_LOCAL1, S6),
            },
            fixture!("cmd_subflow_destroy_v6.bin"),
        ),
        (
            1,
            PmCommand::Announce {
                token: S4_TOKEN,
                id: 5,
                addr: ip("198.19.1.2"),
                port: None,
            },
            fixture!("cmd_announce_v4.bin"),
        ),
        (
            1,
            PmCommand::Announce {
                token: S6_TOKEN,
                id: 5,
                addr: ip("2001:db8:11::2"),
                port: None,
            },
            fixture!("cmd_announce_v6.bin"),
        ),
        (
            2,
            PmCommand::Remove {
                token: S4_TOKEN,
                id: 5,
            },
            fixture!("cmd_remove_v4.bin"),
        ),
        (
            2,
            PmCommand::Remove {
                token: S6_TOKEN,
                id: 5,
            },
            fixture!("cmd_remove_v6.bin"),
        ),
    ];
    for (seq, cmd, want) in cases {
        assert_eq!(encode_command(FAMILY, seq, &cmd).unwrap(), want, "{cmd:?}");
    }
}

#[test]
fn subflow_create_layout_per_uapi() {
    // Walk the encoded bytes (equal to the kernel-accepted ones, above) and check each field.
    let bytes = encode_command(FAMILY, 9, &create_v4()).unwrap();
    let m = one(&bytes);
    assert_eq!(m.flags(), 0x01 | 0x04, "REQUEST|ACK");
    assert_eq!(m.seq(), 9);
    assert_eq!(&m.payload()[..4], &[MPTCP_PM_CMD_SUBFLOW_CREATE, 1, 0, 0]);
    let top: Vec<_> = attrs(&m.payload()[4..]).map(|a| a.unwrap()).collect();
    assert_eq!(top.len(), 3);
    assert_eq!(top[0].ty(), MPTCP_PM_ATTR_TOKEN);
    assert_eq!(top[0].payload(), &C4_TOKEN.0.to_ne_bytes());
    assert_eq!((top[1].ty(), top[1].nested()), (MPTCP_PM_ATTR_ADDR, true));
    assert_eq!(
        (top[2].ty(), top[2].nested()),
        (MPTCP_PM_ATTR_ADDR_REMOTE, true)
    );
    // NLA_F_NESTED is really on the wire.
    let raw_ty = u16::from_ne_bytes([bytes[16 + 4 + 8 + 2], bytes[16 + 4 + 8 + 3]]);
    assert_eq!(raw_ty, MPTCP_PM_ATTR_ADDR | NLA_F_NESTED);
    let local: Vec<_> = top[1].attrs().map(|a| a.unwrap()).collect();
    let l: Vec<_> = local.iter().map(|a| (a.ty(), a.payload())).collect();
    assert_eq!(
        l,
        vec![
            (MPTCP_PM_ADDR_ATTR_FAMILY, &AF_INET.to_ne_bytes()[..]),
            (MPTCP_PM_ADDR_ATTR_ADDR4, &[198, 18, 1, 2][..]),
            (MPTCP_PM_ADDR_ATTR_ID, &[1][..]),
        ]
    );
    let remote: Vec<_> = top[2].attrs().map(|a| a.unwrap()).collect();
    let r: Vec<_> = remote.iter().map(|a| (a.ty(), a.payload())).collect();
    assert_eq!(
        r,
        vec![
            (MPTCP_PM_ADDR_ATTR_FAMILY, &AF_INET.to_ne_bytes()[..]),
            (MPTCP_PM_ADDR_ATTR_ADDR4, &[198, 19, 0, 2][..]),
            (MPTCP_PM_ADDR_ATTR_PORT, &4242u16.to_ne_bytes()[..]),
        ]
    );
}

#[test]
fn command_ports_are_host_order() {
    // Opposite of events: 4242 = 0x1092 is sent as 92 10 on this little-endian machine.
    let bytes = fixture!("cmd_subflow_create_v4.bin");
    let m = one(bytes);
    let remote = attrs(&m.payload()[4..])
        .map(|a| a.unwrap())
        .find(|a| a.ty() == MPTCP_PM_ATTR_ADDR_REMOTE)
        .unwrap();
    let port = remote
        .attrs()
        .map(|a| a.unwrap())
        .find(|a| a.ty() == MPTCP_PM_ADDR_ATTR_PORT)
        .unwrap();
    assert_eq!(port.payload(), &4242u16.to_ne_bytes());
    if cfg!(target_endian = "little") {
        assert_eq!(port.payload(), &[0x92, 0x10]);
    }
}

#[test]
fn optional_create_fields() {
    let cmd = PmCommand::CreateSubflow {
        token: Token(1),
        local: ip("2001:db8::1"),
        local_id: 3,
        if_index: Some(7),
        remote: sa("[2001:db8::2]:80"),
        backup: true,
    };
    let bytes = encode_command(FAMILY, 1, &cmd).unwrap();
    let m = one(&bytes);
    let addr = attrs(&m.payload()[4..])
        .map(|a| a.unwrap())
        .find(|a| a.ty() == MPTCP_PM_ATTR_ADDR)
        .unwrap();
    let inner: Vec<_> = addr.attrs().map(|a| a.unwrap()).collect();
    let get = |ty| inner.iter().find(|a| a.ty() == ty).unwrap();
    assert_eq!(get(MPTCP_PM_ADDR_ATTR_FAMILY).u16("f").unwrap(), AF_INET6);
    assert_eq!(
        get(MPTCP_PM_ADDR_ATTR_FLAGS).u32("f").unwrap(),
        MPTCP_PM_ADDR_FLAG_BACKUP
    );
    assert_eq!(get(MPTCP_PM_ADDR_ATTR_IF_IDX).i32("i").unwrap(), 7);
    assert_eq!(
        get(MPTCP_PM_ADDR_ATTR_ADDR6).ipv6("a").unwrap(),
        "2001:db8::1".parse::<std::net::Ipv6Addr>().unwrap()
    );
}

#[test]
fn limits_and_get_addr() {
    assert_eq!(
        encode_get_limits(FAMILY, 1).unwrap(),
        fixture!("cmd_get_limits.bin"),
        "GET_LIMITS request"
    );
    assert_eq!(
        decode_limits(&one(fixture!("reply_get_limits.bin"))).unwrap(),
        Limits {
            subflows: 8,
            add_addr_accepted: 8
        }
    );
    assert_eq!(
        encode_set_limits(
            FAMILY,
            2,
            &Limits {
                subflows: 3,
                add_addr_accepted: 2
            }
        )
        .unwrap(),
        fixture!("cmd_set_limits.bin")
    );
    // GET_ADDR dump for the connection with token 0x5523bbcc (same_pair test: local id 7).
    assert_eq!(
        encode_get_addrs(FAMILY, 4, Some(Token(0x5523_bbcc))).unwrap(),
        fixture!("cmd_get_addr.bin")
    );
    assert_eq!(
        decode_addr(&one(fixture!("reply_get_addr.bin"))).unwrap(),
        PmAddr {
            id: 7,
            addr: ip("198.18.1.2"),
            port: None,
            flags: MPTCP_PM_ADDR_FLAG_SUBFLOW,
            if_index: None,
        }
    );
}

// ---- malformed input: errors, never panics ----

/// Rebuild a captured event with `edit` applied to its attribute list.
fn rebuild(raw: &[u8], cmd: Option<u8>, edit: impl FnOnce(&mut Vec<(u16, Vec<u8>)>)) -> Vec<u8> {
    let m = one(raw);
    let mut list: Vec<(u16, Vec<u8>)> = attrs(&m.payload()[4..])
        .map(|a| a.unwrap())
        .map(|a| (a.ty(), a.payload().to_vec()))
        .collect();
    edit(&mut list);
    common::genl(FAMILY, cmd.unwrap_or(m.payload()[0]), &list)
}

fn decode_err(bytes: &[u8]) -> DecodeError {
    decode_event(&one(bytes)).unwrap_err()
}

#[test]
fn missing_token_names_attribute_and_event() {
    let bytes = rebuild(fixture!("ev_sub_established_v4_client.bin"), None, |l| {
        l.retain(|(t, _)| *t != MPTCP_ATTR_TOKEN)
    });
    let e = decode_err(&bytes);
    assert_eq!(
        e,
        DecodeError::Missing {
            msg: "MPTCP_EVENT_SUB_ESTABLISHED",
            what: "MPTCP_ATTR_TOKEN"
        }
    );
}

#[test]
fn missing_address_is_an_error() {
    let bytes = rebuild(fixture!("ev_created_v6_client.bin"), None, |l| {
        l.retain(|(t, _)| *t != MPTCP_ATTR_DADDR6)
    });
    let e = decode_err(&bytes).to_string();
    assert!(
        e.contains("MPTCP_ATTR_DADDR6") && e.contains("MPTCP_EVENT_CREATED"),
        "{e}"
    );
    // FAMILY says v4 but only v6 addresses are there.
    let bytes = rebuild(fixture!("ev_created_v6_client.bin"), None, |l| {
        for (t, p) in l.iter_mut() {
            if *t == MPTCP_ATTR_FAMILY {
                *p = AF_INET.to_ne_bytes().to_vec();
            }
        }
    });
    assert!(decode_err(&bytes).to_string().contains("MPTCP_ATTR_SADDR4"));
}

#[test]
fn wrong_attribute_size_names_attribute_and_event() {
    let bytes = rebuild(fixture!("ev_closed_any_client.bin"), None, |l| {
        l[0].1.truncate(2)
    });
    let e = decode_err(&bytes);
    let s = e.to_string();
    assert!(s.contains("MPTCP_EVENT_CLOSED"), "{s}");
    assert!(s.contains("MPTCP_ATTR_TOKEN"), "{s}");
    assert!(matches!(e, DecodeError::Context { .. }));
}

#[test]
fn truncated_attribute_is_an_error() {
    // The last attribute (BACKUP, 8 bytes with padding) claims 16: it runs past the message.
    let mut bytes = fixture!("ev_sub_established_v4_client.bin").to_vec();
    let at = bytes.len() - 8;
    bytes[at..at + 2].copy_from_slice(&16u16.to_ne_bytes());
    let e = decode_err(&bytes);
    assert!(e.to_string().contains("MPTCP_EVENT_SUB_ESTABLISHED"), "{e}");
    assert!(e.to_string().contains("nlattr"), "{e}");
    // A genl header cut short.
    let short = common::message(FAMILY, 0, 0, &[1, 1]);
    assert!(matches!(
        decode_err(&short),
        DecodeError::Truncated {
            what: "genlmsghdr",
            ..
        }
    ));
}

#[test]
fn unknown_attribute_is_collected_not_fatal() {
    let bytes = rebuild(fixture!("ev_sub_closed_v4_server.bin"), None, |l| {
        l.push((99, vec![1, 2, 3, 4]));
        l.push((MPTCP_ATTR_TIMEOUT, vec![0; 4]));
    });
    let d = decode_event(&one(&bytes)).unwrap();
    assert_eq!(d.unknown_attrs, vec![99]);
    assert_eq!(d.event, decode(fixture!("ev_sub_closed_v4_server.bin")));
}

#[test]
fn unknown_event_is_carried_with_token() {
    let bytes = rebuild(fixture!("ev_closed_any_client.bin"), Some(42), |_| {});
    let d = decode_event(&one(&bytes)).unwrap();
    assert_eq!(
        d.event,
        PmEvent::Unknown {
            kind: 42,
            token: Some(C6_TOKEN)
        }
    );
    let bytes = rebuild(
        fixture!("ev_listener_created_v4_server.bin"),
        Some(200),
        |_| {},
    );
    assert_eq!(
        decode_event(&one(&bytes)).unwrap().event,
        PmEvent::Unknown {
            kind: 200,
            token: None
        }
    );
}

#[test]
fn optional_subflow_attributes_decode() {
    let bytes = rebuild(fixture!("ev_sub_closed_v4_client.bin"), None, |l| {
        l.push((MPTCP_ATTR_IF_IDX, 3i32.to_ne_bytes().to_vec()));
        l.push((MPTCP_ATTR_ERROR, vec![110]));
        l.push((MPTCP_ATTR_RESET_REASON, 1u32.to_ne_bytes().to_vec()));
        l.push((MPTCP_ATTR_RESET_FLAGS, 2u32.to_ne_bytes().to_vec()));
    });
    let PmEvent::SubClosed(s) = decode(&bytes) else {
        panic!()
    };
    assert_eq!(
        (s.if_idx, s.error, s.reset_reason, s.reset_flags),
        (Some(3), Some(110), Some(1), Some(2))
    );
}

#[test]
fn bad_family_is_invalid() {
    let bytes = rebuild(fixture!("ev_listener_created_v4_server.bin"), None, |l| {
        for (t, p) in l.iter_mut() {
            if *t == MPTCP_ATTR_FAMILY {
                *p = 99u16.to_ne_bytes().to_vec();
            }
        }
    });
    assert!(decode_err(&bytes)
        .to_string()
        .contains("invalid MPTCP_ATTR_FAMILY: 99"));
}

// ---- ANNOUNCE with a port (server side, userspace PM) ----
//
// Captured by `integration/tests/kernel_announce.rs` (announced_port_*):
// `MPTCP_PM_FIXTURE_DIR=$PWD/netlink-actor/tests/fixtures/mptcp_pm cargo test -p integration
// --test kernel_announce announced_port` (as root). The server tokens are read from
// `ss_announce_port_<v4|v6>.txt` (iproute2's `token:.../LOC`), the ports are the test's.

/// Server token of the v4 capture (ss_announce_port_v4.txt: `token:0000(id:0)/ae3bd1a2`).
const SP4_TOKEN: Token = Token(0xae3b_d1a2);
/// Server token of the v6 capture (ss_announce_port_v6.txt: `token:0000(id:0)/4916ce21`).
const SP6_TOKEN: Token = Token(0x4916_ce21);

#[test]
fn announce_with_port_matches_kernel_accepted_bytes() {
    let v4 = PmCommand::Announce {
        token: SP4_TOKEN,
        id: 1,
        addr: ip("198.19.1.2"),
        port: Some(6000),
    };
    assert_eq!(
        encode_command(FAMILY, 1, &v4).unwrap(),
        fixture!("cmd_announce_port_v4.bin")
    );
    // The IPv6 one went out second on its socket (seq 2).
    let v6 = PmCommand::Announce {
        token: SP6_TOKEN,
        id: 1,
        addr: ip("2001:db8:11::2"),
        port: Some(6100),
    };
    assert_eq!(
        encode_command(FAMILY, 2, &v6).unwrap(),
        fixture!("cmd_announce_port_v6.bin")
    );
}

#[test]
fn announce_layout_per_uapi() {
    // Walk the kernel-accepted bytes field by field, independently of the encoder:
    // TOKEN, then ADDR{FAMILY, ADDR4, ID, PORT (host order), FLAGS=SIGNAL}.
    let m = one(fixture!("cmd_announce_port_v4.bin"));
    assert_eq!(m.flags(), 0x01 | 0x04, "REQUEST|ACK");
    assert_eq!(&m.payload()[..4], &[MPTCP_PM_CMD_ANNOUNCE, 1, 0, 0]);
    let top: Vec<_> = attrs(&m.payload()[4..]).map(|a| a.unwrap()).collect();
    assert_eq!(top.len(), 2);
    assert_eq!(
        (top[0].ty(), top[0].payload()),
        (MPTCP_PM_ATTR_TOKEN, &SP4_TOKEN.0.to_ne_bytes()[..])
    );
    assert_eq!((top[1].ty(), top[1].nested()), (MPTCP_PM_ATTR_ADDR, true));
    let inner: Vec<_> = top[1].attrs().map(|a| a.unwrap()).collect();
    let l: Vec<_> = inner.iter().map(|a| (a.ty(), a.payload())).collect();
    assert_eq!(
        l,
        vec![
            (MPTCP_PM_ADDR_ATTR_FAMILY, &AF_INET.to_ne_bytes()[..]),
            (MPTCP_PM_ADDR_ATTR_ADDR4, &[198, 19, 1, 2][..]),
            (MPTCP_PM_ADDR_ATTR_ID, &[1][..]),
            (MPTCP_PM_ADDR_ATTR_PORT, &6000u16.to_ne_bytes()[..]),
            (
                MPTCP_PM_ADDR_ATTR_FLAGS,
                &MPTCP_PM_ADDR_FLAG_SIGNAL.to_ne_bytes()[..]
            ),
        ]
    );
    // REMOVE: TOKEN and LOC_ID (u8) only.
    let m = one(fixture!("cmd_remove_v4.bin"));
    assert_eq!(&m.payload()[..4], &[MPTCP_PM_CMD_REMOVE, 1, 0, 0]);
    let top: Vec<_> = attrs(&m.payload()[4..]).map(|a| a.unwrap()).collect();
    let t: Vec<_> = top.iter().map(|a| (a.ty(), a.payload())).collect();
    assert_eq!(
        t,
        vec![
            (MPTCP_PM_ATTR_TOKEN, &S4_TOKEN.0.to_ne_bytes()[..]),
            (MPTCP_PM_ATTR_LOC_ID, &[5][..]),
        ]
    );
}

#[test]
fn get_addr_gives_the_announced_port_back() {
    // The kernel read the host-order port as sent: its GET_ADDR reply carries it back.
    assert_eq!(
        decode_addr(&one(fixture!("reply_get_addr_announce_port_v4.bin"))).unwrap(),
        PmAddr {
            id: 1,
            addr: ip("198.19.1.2"),
            port: Some(6000),
            flags: MPTCP_PM_ADDR_FLAG_SIGNAL,
            if_index: None,
        }
    );
    assert_eq!(
        decode_addr(&one(fixture!("reply_get_addr_announce_port_v6.bin"))).unwrap(),
        PmAddr {
            id: 1,
            addr: ip("2001:db8:11::2"),
            port: Some(6100),
            flags: MPTCP_PM_ADDR_FLAG_SIGNAL,
            if_index: None,
        }
    );
}
