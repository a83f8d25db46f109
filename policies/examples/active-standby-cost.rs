//! What one round of the active-standby policy costs per connection, the part of the daemon's
//! cost that grows with the number of such connections and the sampling rate (every
//! `sample_ms`, 20 ms by default): a sample round in the steady state (only the detectors
//! run), and a full round (what every event, tick and sample round after a failure runs).
//!
//! ```text
//! cargo run --release -p mptcp-pmd-policies --example active-standby-cost [-- ROUNDS]
//! ```
//! One connection with a primary and a standby subflow; ROUNDS (default 1 000 000) of each.
#![allow(clippy::unwrap_used, clippy::expect_used)] // an example: failing loudly is the point

use std::hint::black_box;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mptcp_pmd_policies::active_standby::{ActiveStandby, Tunables};
use mptcp_pmd_policies::addrmatch::InterfaceGlob;
use mptcp_pmd_policies::{
    ConnFlags, ConnInfo, ConnTimers, Connection, Ctx, LocalAddr, PmEvent, Policy, SubflowInfo,
    SubflowKey, SubflowSample, Token,
};

fn main() {
    let rounds: u32 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let token = Token(1);
    let sa = |s: &str| s.parse::<SocketAddr>().unwrap();
    let locals = [
        LocalAddr {
            addr: "10.0.1.1".parse().unwrap(),
            if_index: 1,
            if_name: "eth0".into(),
            backup: false,
        },
        LocalAddr {
            addr: "10.0.2.1".parse().unwrap(),
            if_index: 2,
            if_name: "wwan0".into(),
            backup: false,
        },
    ];
    let info = ConnInfo {
        token,
        local: sa("10.0.1.1:40000"),
        remote: sa("10.0.9.1:80"),
        loc_id: 0,
        rem_id: 0,
        flags: ConnFlags::default(),
    };
    let t0 = Instant::now();
    let mut c = Connection::new(token, ConnTimers::default());
    c.handle_event(t0, &PmEvent::Created(info));
    c.handle_event(t0, &PmEvent::Established(info));
    let standby = SubflowInfo {
        token,
        local: sa("10.0.2.1:50000"),
        remote: sa("10.0.9.1:80"),
        loc_id: 1,
        rem_id: 0,
        backup: true,
        if_idx: None,
        error: None,
        reset_reason: None,
        reset_flags: None,
    };
    let mut p = ActiveStandby::new(vec![InterfaceGlob("wwan*".into())], Tunables::default());
    fn ctx<'a>(c: &'a Connection, locals: &'a [LocalAddr], now: Instant) -> Ctx<'a> {
        Ctx {
            now,
            conn: c,
            locals,
            listeners: &[],
        }
    }
    c.handle_decisions(t0, p.on_tick(&ctx(&c, &locals, t0)));
    while c.poll_command().is_some() {}
    c.handle_event(t0, &PmEvent::SubEstablished(standby));
    let keys: Vec<SubflowKey> = c.subflows().iter().filter_map(|s| s.key()).collect();
    assert_eq!(keys.len(), 2);

    let sample = |i: u32| SubflowSample {
        tcp_state: 1,
        srtt_us: 3000,
        rttvar_us: 1000,
        bytes_acked: u64::from(i) * 640,
        last_ack_recv_ms: 2,
        last_data_sent_ms: 2,
        ..SubflowSample::default()
    };
    let mut now = t0;
    let mut time = |name: &str, full: bool, p: &mut ActiveStandby, c: &mut Connection| {
        let start = Instant::now();
        for i in 0..rounds {
            now += Duration::from_millis(20);
            let s = sample(i);
            c.handle_samples(now, &[(keys[0], s), (keys[1], s)]);
            let ds = if full {
                p.on_tick(&ctx(c, &locals, now))
            } else {
                p.on_samples(&ctx(c, &locals, now))
            };
            assert!(black_box(ds).is_empty());
        }
        let per = start.elapsed().as_secs_f64() * 1e9 / f64::from(rounds);
        println!("{name:<36} {per:>8.0} ns per connection and round (samples stored included)");
    };
    time("sample round, steady state", false, &mut p, &mut c);
    time(
        "full round (event, tick, after a failure)",
        true,
        &mut p,
        &mut c,
    );
}
