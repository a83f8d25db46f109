//! What the codecs cost in user space, per message, on bytes captured from the kernel: the
//! time and the heap allocations of decoding an event, a command's ACK and a sock_diag dump
//! reply, and of encoding a command. No sockets, no privileges.
//!
//! ```text
//! cargo run --release -p mptcp-pmd-netlink --example decode-cost [-- ROUNDS]
//! ```
//! Each case runs ROUNDS times (default 200 000) over its fixtures; the best of 5 runs is
//! printed (the machine may be shared).

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use mptcp_pmd_policies::{PmCommand, Token};
use netlink_actor::dump::{feed, Dump};
use netlink_actor::mptcp_pm::{decode_event, encode_command};
use netlink_actor::sock_diag::parse_subflow_reply;
use netlink_actor::transport::Replies;
use netlink_actor::wire::messages;

/// Counts allocations (the system allocator does the work).
struct Counting;

static ALLOCS: AtomicU64 = AtomicU64::new(0);

// SAFETY: every call is forwarded to the system allocator unchanged.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: forwarded with the caller's layout.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: `p` came from `alloc` above, with this layout.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: as for `dealloc`.
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

macro_rules! fixture {
    ($dir:literal, $name:literal) => {
        include_bytes!(concat!("../tests/fixtures/", $dir, "/", $name)).as_slice()
    };
}

const EVENTS: &[&[u8]] = &[
    fixture!("mptcp_pm", "ev_created_v4_client.bin"),
    fixture!("mptcp_pm", "ev_established_v4_client.bin"),
    fixture!("mptcp_pm", "ev_sub_established_v4_client.bin"),
    fixture!("mptcp_pm", "ev_sub_established_v6_server.bin"),
    fixture!("mptcp_pm", "ev_sub_closed_v4_client.bin"),
    fixture!("mptcp_pm", "ev_closed_any_client.bin"),
];

/// An ACK (NLMSG_ERROR, errno 0, capped) of request 7 of family 0x1c, as the kernel sends it.
fn ack() -> Vec<u8> {
    let mut m = Vec::new();
    m.extend_from_slice(&36u32.to_ne_bytes());
    m.extend_from_slice(&2u16.to_ne_bytes());
    m.extend_from_slice(&0x100u16.to_ne_bytes());
    m.extend_from_slice(&7u32.to_ne_bytes());
    m.extend_from_slice(&0u32.to_ne_bytes());
    m.extend_from_slice(&0i32.to_ne_bytes());
    m.extend_from_slice(&60u32.to_ne_bytes());
    m.extend_from_slice(&0x1cu16.to_ne_bytes());
    m.extend_from_slice(&5u16.to_ne_bytes());
    m.extend_from_slice(&7u32.to_ne_bytes());
    m.extend_from_slice(&0u32.to_ne_bytes());
    m
}

/// Runs `f` `rounds` times, 5 times over: the best time per call (ns) and the allocations
/// per call.
fn measure(rounds: u32, mut f: impl FnMut() -> usize) -> (f64, f64, usize) {
    let mut best = f64::MAX;
    let mut allocs = 0.0;
    let mut items = 0;
    for _ in 0..5 {
        let a0 = ALLOCS.load(Ordering::Relaxed);
        let t0 = Instant::now();
        for _ in 0..rounds {
            items = black_box(f());
        }
        let ns = t0.elapsed().as_nanos() as f64 / f64::from(rounds);
        best = best.min(ns);
        allocs = (ALLOCS.load(Ordering::Relaxed) - a0) as f64 / f64::from(rounds);
    }
    (best, allocs, items)
}

fn report(name: &str, per: &str, (ns, allocs, items): (f64, f64, usize)) {
    let items = items.max(1) as f64;
    println!(
        "{name:<34} {:>8.1} ns/{per:<8} {:>6.2} allocations/{per}",
        ns / items,
        allocs / items
    );
}

fn main() {
    let rounds: u32 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(200_000);

    report(
        "event: frame + decode_event",
        "event",
        measure(rounds, || {
            let mut n = 0;
            for e in EVENTS {
                for m in messages(e).flatten() {
                    n += usize::from(black_box(decode_event(&m)).is_ok());
                }
            }
            n
        }),
    );

    let ack = ack();
    report(
        "command ACK: Replies::feed",
        "ACK",
        measure(rounds, || {
            let mut r = Replies::new("t", 7);
            black_box(r.feed(&ack, &mut |_| Ok(()), None));
            usize::from(r.finish().is_ok())
        }),
    );

    let dumps: [&[u8]; 4] = [
        fixture!("sock_diag", "client_tcp_v4.bin"),
        fixture!("sock_diag", "client_tcp_v6.bin"),
        fixture!("sock_diag", "server_tcp_v4.bin"),
        fixture!("sock_diag", "server_tcp_v6.bin"),
    ];
    report(
        "subflow dump reply: feed (tcp_info)",
        "subflow",
        measure(rounds / 4, || {
            let mut n = 0;
            for d in dumps {
                let mut out = Dump::default();
                let _ = black_box(feed(d, 1, "t", parse_subflow_reply, &mut out));
                n += out.items.len();
            }
            n
        }),
    );

    let create = PmCommand::CreateSubflow {
        token: Token(0x9e77_56d0),
        local: "198.18.1.2"
            .parse()
            .unwrap_or(std::net::Ipv4Addr::LOCALHOST.into()),
        local_id: 1,
        if_index: None,
        remote: ([198, 19, 0, 2], 4242).into(),
        backup: false,
    };
    report(
        "encode_command(SUBFLOW_CREATE)",
        "command",
        measure(rounds, || {
            black_box(encode_command(0x1c, 1, &create)).map_or(0, |v| usize::from(!v.is_empty()))
        }),
    );
}
